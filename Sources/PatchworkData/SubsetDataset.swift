import Foundation
import Patchwork

/// `count` samples of a dataset drawn at random with `seed` (without replacement), in index order, so that a
/// quick look at a class-sorted folder (ImageNet's validation layout) still covers its classes.
public struct SubsetDataset: Dataset {
    public let base: any Dataset
    public let indices: [Int]
    public var count: Int { indices.count }
    public var classNames: [String] { base.classNames }
    public var imageShape: [Int] { base.imageShape }

    public init(_ base: any Dataset, count: Int, seed: UInt64 = 0) {
        let n = min(max(count, 0), base.count)
        var all = Array(0..<base.count)
        let g = Generator(seed: Generator.derivedSeed(seed, 0x5B5E7))
        for i in 0..<n { all.swapAt(i, i + g.nextInt(below: base.count - i)) }
        self.base = base
        self.indices = all.prefix(n).sorted()
    }

    /// `base` cut in two at random (seeded): `count` images held out for validation, the rest to train on.
    public static func holdingOut(_ count: Int, of base: any Dataset, seed: UInt64) throws -> (train: SubsetDataset, validation: SubsetDataset) {
        guard count >= 1 && count < base.count else {
            throw DataError("cannot hold out \(count) of \(base.count) training images for validation (need 1 ≤ N < \(base.count))")
        }
        let validation = SubsetDataset(base, count: count, seed: Generator.derivedSeed(seed, 0x7A11D))
        let held = Set(validation.indices)
        return (SubsetDataset(base, indices: (0..<base.count).filter { !held.contains($0) }), validation)
    }

    /// The samples at `indices` of `base`, in that order.
    public init(_ base: any Dataset, indices: [Int]) {
        self.base = base
        self.indices = indices
    }

    public func sample(_ index: Int) throws -> (image: Tensor, label: Int) {
        guard index >= 0 && index < count else { throw DataError("subset: sample \(index) is outside 0..<\(count)") }
        return try base.sample(indices[index])
    }
}
