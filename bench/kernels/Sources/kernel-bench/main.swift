import Foundation
import Patchwork

// Each case runs its op `reps` times per sample; the best of `samples` samples is reported,
// which is the measure least moved by other processes on a shared machine.
func best(samples: Int = 15, reps: Int = 5, _ body: () -> Void) -> Double {
    body()
    var t = Double.infinity
    for _ in 0..<samples {
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<reps { body() }
        t = min(t, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e3 / Double(reps))
    }
    return t
}

let only = Set(CommandLine.arguments.dropFirst())
func run(_ name: String, _ body: () -> Void) {
    if !only.isEmpty && !only.contains(where: { name.hasPrefix($0) }) { return }
    let us = best(body)
    print(String(format: "%-34@ %10.1f us", name as NSString, us))
}

let x = Tensor.randomNormal([64, 197, 384])            // ViT-S tokens, batch 64
let y = Tensor.randomNormal([64, 197, 384])
let bias = Tensor.randomNormal([384])
let attn = Tensor.randomNormal([64 * 6, 197, 197])     // attention logits
let map = Tensor.randomNormal([64, 16, 16, 128])       // a CNN / hybrid feature map
let dw = Tensor.randomNormal([128, 3, 3, 1])           // depthwise 3x3 weight
let w = Tensor.randomNormal([384]), b = Tensor.randomNormal([384])
let c128 = Tensor.randomNormal([128])

run("add") { _ = x + y }
run("mul bias [C]") { _ = x * bias }
run("add scalar") { _ = x + 1 }
run("relu") { _ = x.relu() }
run("gelu") { _ = x.gelu() }
run("silu") { _ = x.silu() }
run("exp") { _ = x.exp() }
run("sigmoid") { _ = x.sigmoid() }
run("softmax 197") { _ = attn.softmax(axis: -1) }
run("sum last axis") { _ = x.sum(axis: -1) }
run("sum axis 1") { _ = x.sum(axis: 1) }
run("transpose contiguous") { _ = x.transposed(1, 2).contiguous() }
run("layerNorm") { _ = layerNorm(x, weight: w, bias: b) }
run("batchNormTraining") { _ = batchNormTraining(map, weight: c128, bias: c128) }
run("groupNorm") { _ = groupNorm(map, groups: 8, weight: c128, bias: c128) }
run("depthwise 3x3") { _ = conv2d(map, weight: dw, padding: (1, 1), groups: 128) }
run("maxPool 3x3 s2") { _ = maxPool2d(map, kernel: (3, 3), stride: (2, 2), padding: (1, 1)) }
run("avgPool 2x2") { _ = avgPool2d(map, kernel: (2, 2)) }
run("backward gelu") { _ = valueAndGradient(at: [x]) { $0[0].gelu().sum() } }
run("backward softmax 197") { _ = valueAndGradient(at: [attn]) { ($0[0].softmax(axis: -1) * attn).sum() } }
run("backward layerNorm") { _ = valueAndGradient(at: [x, w, b]) { layerNorm($0[0], weight: $0[1], bias: $0[2]).sum() } }
run("backward batchNorm") { _ = valueAndGradient(at: [map, c128, c128]) { batchNormTraining($0[0], weight: $0[1], bias: $0[2]).output.sum() } }
run("backward depthwise 3x3") { _ = valueAndGradient(at: [map, dw]) { conv2d($0[0], weight: $0[1], padding: (1, 1), groups: 128).sum() } }
run("backward maxPool") { _ = valueAndGradient(at: [map]) { maxPool2d($0[0], kernel: (3, 3), stride: (2, 2), padding: (1, 1)).sum() } }
