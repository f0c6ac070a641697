// vit_nano's training-step gradients in bf16 against fp32, at the same weights, over the first
// BATCHES (default 32) ShapeTex training batches of 64 images. For each parameter tensor, relative
// to the norm of its fp32 gradient averaged over the batches (|ḡ|):
//   - noise: the root-mean-square distance of one batch's fp32 gradient from ḡ (minibatch noise);
//   - error: the root-mean-square distance of one batch's bf16 gradient from its fp32 gradient;
//   - mean error: the distance between the two gradients averaged over the batches;
//   - bias ratio: mean error ÷ (error / √BATCHES). About 1 when the batches' errors are
//     independent and average out; √BATCHES when every batch errs the same way.
//
//   BF16GradientNoise init|WEIGHTS [BATCHES]   (WEIGHTS: a vit_nano weights.safetensors from `patchwork train`)
import Foundation
import Patchwork
import PatchworkData
import PatchworkModels
import PatchworkNN
import PatchworkTrain

let arguments = CommandLine.arguments
guard arguments.count == 2 || arguments.count == 3, let batches = Int(arguments.count == 3 ? arguments[2] : "32"), batches > 1 else {
    print("usage: BF16GradientNoise init|WEIGHTS [BATCHES > 1]")
    exit(2)
}
let model = try Models.create("vit_nano", numClasses: ShapeTex.classCount)
if arguments[1] != "init" { try model.load(from: arguments[1]) }
let loader = DataLoader(dataset: try ShapeTex(split: .train), batchSize: 64, shuffle: true, dropLast: true, seed: 0, prefetch: 0)

func step(_ batch: Batch, _ precision: Precision) -> (loss: Double, gradients: [String: [Double]]) {
    Precision.with(precision) {
        let input = standardize(batch.images)
        let (loss, gradients) = valueAndGrad(model) { crossEntropy(logits: model.logits(input), labels: batch.labels) }
        return (Double(loss.item()), gradients.mapValues { $0.contiguous().scalars.map(Double.init) })
    }
}
func norm(_ v: [Double]) -> Double { sqrt(v.reduce(0) { $0 + $1 * $1 }) }
func accumulate(_ sum: inout [Double]?, _ v: [Double]) { sum = sum.map { zip($0, v).map(+) } ?? v }

var fp32Sum: [String: [Double]] = [:], errorSum: [String: [Double]] = [:]
var fp32Squares: [String: Double] = [:], errorSquares: [String: Double] = [:]
var lossDifference = 0.0
for index in 0..<batches {
    let batch = try loader.batch(epoch: 0, index: index)
    let fp32 = step(batch, .fp32), bf16 = step(batch, .bf16)
    lossDifference += bf16.loss - fp32.loss
    for (name, g) in fp32.gradients {
        let error = zip(bf16.gradients[name]!, g).map(-)
        accumulate(&fp32Sum[name], g)
        accumulate(&errorSum[name], error)
        fp32Squares[name, default: 0] += norm(g) * norm(g)
        errorSquares[name, default: 0] += norm(error) * norm(error)
    }
}

struct Row { var name: String; var noise, error, meanError, biasRatio: Double }
let n = Double(batches)
let rows = fp32Sum.keys.sorted().map { name -> Row in
    let mean = norm(fp32Sum[name]!) / n
    let noise = sqrt(max(fp32Squares[name]! / n - mean * mean, 0))
    let error = sqrt(errorSquares[name]! / n)
    let meanError = norm(errorSum[name]!) / n
    return Row(name: name, noise: noise / mean, error: error / mean, meanError: meanError / mean,
               biasRatio: meanError / (error / sqrt(n)))
}
print("vit_nano at \(arguments[1]), \(batches) batches of 64: mean loss bf16 − fp32 \(lossDifference / n)")
print("tensor".padding(toLength: 28, withPad: " ", startingAt: 0) + "     noise     error  mean error  bias ratio   (relative to |ḡ|)")
for r in rows.sorted(by: { $0.error > $1.error }) {
    print(r.name.padding(toLength: 28, withPad: " ", startingAt: 0)
          + String(format: "%10.3f%10.4f%12.4f%12.2f", r.noise, r.error, r.meanError, r.biasRatio))
}
func range(_ values: [Double]) -> String {
    let s = values.sorted()
    return String(format: "min %.4f  median %.4f  max %.4f", s[0], s[s.count / 2], s[s.count - 1])
}
print("over \(rows.count) tensors:")
print("  noise          " + range(rows.map(\.noise)))
print("  error          " + range(rows.map(\.error)))
print("  mean error     " + range(rows.map(\.meanError)))
print("  bias ratio     " + range(rows.map(\.biasRatio)))
print("  error ÷ noise  " + range(rows.map { $0.error / $0.noise }))
