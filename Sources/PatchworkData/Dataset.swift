import Foundation
import Patchwork

/// A labelled image dataset. Images are channels-last [H, W, C] Float32 in [0, 1].
public protocol Dataset: Sendable {
    /// Number of samples.
    var count: Int { get }
    /// Class names, indexed by label.
    var classNames: [String] { get }
    /// [H, W, C] of every image (datasets of mixed sizes resize on load).
    var imageShape: [Int] { get }
    /// Sample `index` (0..<count). Throws `DataError` naming the file for
    /// unreadable or corrupt data found only when the sample is read.
    func sample(_ index: Int) throws -> (image: Tensor, label: Int)
}

/// A batch ready for the model.
public struct Batch: Sendable {
    /// [B, H, W, C]
    public var images: Tensor
    public var labels: [Int]
    /// Soft targets [B, classes] when mixup/cutmix made them; otherwise nil (use `labels`).
    public var targets: Tensor?

    public init(images: Tensor, labels: [Int], targets: Tensor? = nil) {
        self.images = images; self.labels = labels; self.targets = targets
    }
}

/// Bad or missing data: says which file or value.
public struct DataError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A per-image transform (augmentation or preprocessing) drawing any
/// randomness from `generator`, so a seeded loader is reproducible.
public protocol ImageTransform: Sendable {
    func callAsFunction(_ image: Tensor, generator: Generator) -> Tensor
}

/// A transform of a whole batch (mixup, cutmix).
public protocol BatchTransform: Sendable {
    func callAsFunction(_ batch: Batch, classes: Int, generator: Generator) -> Batch
}
