import Foundation
import Patchwork
import PatchworkData
import PatchworkModels
import PatchworkTrain

/// A trained classifier as the analyses use it: the model (in eval mode),
/// how its images are prepared (`ModelInput`: a run's own pipeline, or a
/// published checkpoint's evaluation transform), and a batch size. Images
/// given to it are [B, H, W, C] in [0, 1]; every perturbation an analysis
/// makes happens in that pixel space, before `input.normalized`.
public struct AnalysisModel {
    public let model: ImageClassifier
    public let input: ModelInput
    public var batchSize: Int
    /// The classes the weights predict, when loaded from a file.
    public let classCount: Int?

    public init(_ model: ImageClassifier, input: ModelInput, batchSize: Int = 100, classCount: Int? = nil) {
        model.eval()
        self.model = model; self.input = input; self.batchSize = max(1, batchSize); self.classCount = classCount
    }

    /// Variant `name` with `weights` (a run's weights or checkpoint, or a
    /// published checkpoint), through `loadTrainedModel`; `classes` is
    /// checked against the weights when given. The input is the weights' own
    /// (`TrainedModel.input`) unless `input` overrides it. Any failure (weights
    /// of another model, another class count, a missing file) throws an
    /// `AnalysisError` naming the weights and the model.
    public static func load(_ name: String, weights: String, classes: Int?, imageSize: Int? = nil, input: ModelInput? = nil,
                            batchSize: Int = 100) throws -> AnalysisModel {
        _ = try Models.variant(name)
        let loaded: TrainedModel
        do {
            loaded = try loadTrainedModel(name, weights: weights, classes: classes, imageSize: imageSize)
        } catch {
            throw AnalysisError("cannot use \(weights) as the weights of \(name): \(error)")
        }
        return AnalysisModel(loaded.model, input: input ?? loaded.input, batchSize: batchSize, classCount: loaded.classCount)
    }

    /// Logits [B, classes] of pixel-space images (no gradient).
    public func logits(_ images: Tensor) -> Tensor {
        let n = images.shape[0]
        if n <= batchSize { return withoutGrad { model.logits(input.normalized(images.contiguous())) } }
        var parts: [Tensor] = []
        var start = 0
        while start < n {
            let end = min(n, start + batchSize)
            let batch = images.sliced(axis: 0, start: start, end: end).contiguous()
            parts.append(withoutGrad { model.logits(input.normalized(batch)) })
            start = end
        }
        return concat(parts, axis: 0)
    }

    /// How many classes the model predicts: `classCount` when its weights said,
    /// otherwise the width of its logits for the first of `images`.
    public func classes(probing images: Tensor) -> Int {
        classCount ?? logits(images.sliced(axis: 0, start: 0, end: 1)).shape[1]
    }

    /// The arg-max class of each image.
    public func predictions(_ images: Tensor) -> [Int] { argmaxRows(logits(images)) }

    /// Fraction of `images` classified as `labels`.
    public func accuracy(_ images: Tensor, labels: [Int]) -> Double {
        guard !labels.isEmpty else { return .nan }
        let p = predictions(images)
        return Double(zip(p, labels).filter { $0 == $1 }.count) / Double(labels.count)
    }
}

/// Row-wise arg-max of a [B, K] tensor.
public func argmaxRows(_ logits: Tensor) -> [Int] {
    let k = logits.shape[1], v = logits.contiguous().scalars
    return (0..<logits.shape[0]).map { b in
        var best = 0
        for j in 1..<k where v[b * k + j] > v[b * k + best] { best = j }
        return best
    }
}

/// Per-row cross-entropy −log softmax(logits)[label], in Double.
public func crossEntropyRows(_ logits: Tensor, labels: [Int]) -> [Double] {
    let k = logits.shape[1], v = logits.contiguous().scalars
    return labels.enumerated().map { b, y in
        let row = v[(b * k)..<(b * k + k)]
        let m = Double(row.max()!)
        let lse = m + log(row.reduce(0.0) { $0 + exp(Double($1) - m) })
        return lse - Double(row[b * k + y])
    }
}

/// A fixed evaluation set: images [N, H, W, C] in [0, 1] with labels.
public struct ImageSet {
    public var images: Tensor
    public var labels: [Int]
    /// Which samples of the source dataset these are.
    public var indices: [Int]
    public var count: Int { labels.count }
    public var height: Int { images.shape[1] }
    public var width: Int { images.shape[2] }
    public var channels: Int { images.shape[3] }

    public init(images: Tensor, labels: [Int], indices: [Int]) {
        self.images = images; self.labels = labels; self.indices = indices
    }

    /// `count` samples of `dataset` (all when nil or larger): a random subset
    /// drawn with `seed`, in index order. Random rather than evenly spaced,
    /// so that neither class-sorted folders nor ShapeTex's cycling labels
    /// (label = index mod 10, which a stride like 6.67 would alias to 3
    /// classes) leave classes out.
    public init(_ dataset: any Dataset, count: Int?, seed: UInt64 = 0) throws {
        let n = min(count ?? dataset.count, dataset.count)
        guard n > 0 else { throw AnalysisError("the dataset has no images to analyse (asked for \(count.map(String.init) ?? "all"), it has \(dataset.count))") }
        var indices = Array(0..<dataset.count)
        if n < dataset.count {
            let g = Generator(seed: Generator.derivedSeed(seed, 0x5EB5E7))
            for i in 0..<n { indices.swapAt(i, i + g.nextInt(below: dataset.count - i)) }
            indices = Array(indices[0..<n]).sorted()
        }
        var images: [Tensor] = [], labels: [Int] = []
        for i in indices {
            let s = try dataset.sample(i)
            images.append(s.image); labels.append(s.label)
        }
        self.init(images: stack(images, axis: 0), labels: labels, indices: indices)
    }

    /// The images as a flat row-major array.
    public var pixels: [Float] { images.contiguous().scalars }

    /// Images replaced by `pixels` (same shape).
    public func with(pixels: [Float]) -> ImageSet {
        ImageSet(images: Tensor(pixels, shape: images.shape), labels: labels, indices: indices)
    }
}

/// Progress lines on long work (stdout, flushed: pipes are block-buffered).
public typealias ProgressHandler = (String) -> Void

public let printProgress: ProgressHandler = { line in
    print(line)
    fflush(stdout)
}
