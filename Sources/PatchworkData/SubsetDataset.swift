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

    public func sample(_ index: Int) throws -> (image: Tensor, label: Int) {
        guard index >= 0 && index < count else { throw DataError("subset: sample \(index) is outside 0..<\(count)") }
        return try base.sample(indices[index])
    }
}
