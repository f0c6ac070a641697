import Foundation
import XCTest
import Patchwork
import PatchworkAnalysis
import PatchworkData
import PatchworkModels
import PatchworkNN
import PatchworkTrain

/// A three-layer CNN small enough to train in a second or two on 16×16
/// ShapeTex, for the analyses' known-answer tests.
final class TinyCNN: Module, ImageClassifier {
    @Child(key: "conv1") var conv1 = Conv2d(3, 16, kernelSize: 3, padding: 1)
    @Child(key: "conv2") var conv2 = Conv2d(16, 32, kernelSize: 3, stride: 2, padding: 1)
    @Child(key: "conv3") var conv3 = Conv2d(32, 64, kernelSize: 3, stride: 2, padding: 1)
    @Child(key: "fc") var fc: Linear

    init(classes: Int) {
        _fc.wrappedValue = Linear(64, classes)
        super.init()
    }

    func forwardIntermediates(_ x: Tensor) -> [(name: String, value: Tensor)] {
        let a = conv1(x).relu(), b = conv2(a).relu(), c = conv3(b).relu()
        return [("conv1", a), ("conv2", b), ("conv3", c)]
    }
    func forwardFeatures(_ x: Tensor) -> Tensor { forwardIntermediates(x).last!.value }
    func forwardHead(_ features: Tensor, preLogits: Bool) -> Tensor {
        let pooled = features.mean(alongAxes: [1, 2])
        return preLogits ? pooled : fc(pooled)
    }
    func resetClassifier(numClasses: Int) { fc = Linear(64, numClasses) }
    override func callAsFunction(_ x: Tensor) -> Tensor { logits(x) }
}

/// A classifier built to see only texture: two 3×3 convolutions (a 5×5
/// receptive field, too small for any shape, as BagNet's local patches),
/// pooled over the image weighted by local contrast (the 3×3 variance), so
/// flat background, which texture-only images never show, does not count.
final class TextureNet: Module, ImageClassifier {
    @Child(key: "conv1") var conv1 = Conv2d(3, 32, kernelSize: 3, padding: 1)
    @Child(key: "conv2") var conv2 = Conv2d(32, 32, kernelSize: 3, padding: 1)
    @Child(key: "fc") var fc = Linear(32, 10)

    func contrast(_ x: Tensor) -> Tensor {
        withoutGrad {
            let m = avgPool2d(x, kernel: (3, 3), stride: (1, 1), padding: (1, 1), countIncludePad: false)
            let m2 = avgPool2d(x * x, kernel: (3, 3), stride: (1, 1), padding: (1, 1), countIncludePad: false)
            return (m2 - m * m).sum(alongAxes: [3], keepDims: true).maximum(Tensor(0)) + 1e-6
        }
    }
    func forwardIntermediates(_ x: Tensor) -> [(name: String, value: Tensor)] {
        let a = conv1(x).relu(), b = conv2(a).relu()
        return [("conv1", a), ("conv2", b)]
    }
    func forwardFeatures(_ x: Tensor) -> Tensor {
        let w = contrast(x)
        return forwardIntermediates(x).last!.value * (w / w.sum(alongAxes: [1, 2], keepDims: true))
    }
    func forwardHead(_ features: Tensor, preLogits: Bool) -> Tensor {
        let pooled = features.sum(alongAxes: [1, 2])
        return preLogits ? pooled : fc(pooled)
    }
    func resetClassifier(numClasses: Int) { fc = Linear(32, numClasses) }
    override func callAsFunction(_ x: Tensor) -> Tensor { logits(x) }
}

/// A classifier built to see only shape: its input is the silhouette (the
/// pixels whose colour differs from the corner pixel's by more than 0.15 in
/// L1, pixel units; inputs arrive standardised as (x − 0.5)·4, hence 0.6),
/// which is the same whatever the texture inside, fed to a TinyCNN.
final class SilhouetteNet: Module, ImageClassifier {
    @Child(key: "net") var net = TinyCNN(classes: 10)

    func silhouette(_ x: Tensor) -> Tensor {
        withoutGrad {
            let corner = x.sliced(axis: 1, start: 0, end: 1).sliced(axis: 2, start: 0, end: 1)
            let mask = (x - corner).abs().sum(alongAxes: [3], keepDims: true).greater(0.6)
            return mask.expanded(to: x.shape)
        }
    }
    func forwardIntermediates(_ x: Tensor) -> [(name: String, value: Tensor)] { net.forwardIntermediates(silhouette(x)) }
    func forwardFeatures(_ x: Tensor) -> Tensor { net.forwardFeatures(silhouette(x)) }
    func forwardHead(_ features: Tensor, preLogits: Bool) -> Tensor { net.forwardHead(features, preLogits: preLogits) }
    func resetClassifier(numClasses: Int) { net.resetClassifier(numClasses: numClasses) }
    override func callAsFunction(_ x: Tensor) -> Tensor { logits(x) }
}

/// Trains a TinyCNN (or `make()`'s model) on `dataset` with AdamW (full passes, batches of 50, fixed seeds).
func trainTinyCNN(on dataset: any Dataset, epochs: Int, seed: UInt64 = 1, learningRate: Float = 3e-3) throws -> TinyCNN {
    try train(TinyCNN(classes: 10), on: dataset, epochs: epochs, seed: seed, learningRate: learningRate)
}

func train<M: Module & ImageClassifier>(_ make: @autoclosure () -> M, on dataset: any Dataset, epochs: Int, seed: UInt64 = 1,
                                        learningRate: Float = 3e-3) throws -> M {
    Generator.global.reseed(seed)
    let model = make()
    let set = try ImageSet(dataset, count: nil)
    let optimizer = AdamW(learningRate: learningRate, weightDecay: 0)
    model.train(true)
    let order = Generator(seed: seed + 1)
    for _ in 0..<epochs {
        var indices = Array(0..<set.count)
        for i in stride(from: indices.count - 1, to: 0, by: -1) { indices.swapAt(i, order.nextInt(below: i + 1)) }
        for start in stride(from: 0, to: indices.count, by: 50) {
            let batch = Array(indices[start..<min(indices.count, start + 50)])
            let x = set.images.indexSelect(axis: 0, indices: batch)
            let y = batch.map { set.labels[$0] }
            let (_, grads) = valueAndGrad(model) { crossEntropy(logits: model.logits(standardize(x)), labels: y) }
            optimizer.step(model, gradients: grads)
        }
    }
    model.eval()
    return model
}

func temporaryFolder(_ name: String) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("patchwork-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}
