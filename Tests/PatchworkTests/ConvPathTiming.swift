import Foundation
import XCTest
@testable import Patchwork

/// A/B timing of the two convolution paths (im2col + GEMM / depthwise loops vs
/// oneDNN's primitives) on the convolution shapes of the small benchmark cases,
/// in one process, interleaved. A measurement, not a check: it runs only with
/// PATCHWORK_CONV_TIMING=1 (see docs/PERFORMANCE.md) and prints a table:
///   PATCHWORK_CONV_TIMING=1 swift test -c release --filter ConvPathTiming
final class ConvPathTiming: XCTestCase {
    private struct Shape {
        let label: String
        let batch, size, channels, outChannels, kernel, stride, padding, groups: Int
    }

    func testTimeBothPaths() throws {
        guard ProcessInfo.processInfo.environment["PATCHWORK_CONV_TIMING"] == "1" else {
            throw XCTSkip("timing only: set PATCHWORK_CONV_TIMING=1")
        }
        let reps = Int(ProcessInfo.processInfo.environment["PATCHWORK_CONV_TIMING_REPS"] ?? "") ?? 15
        let b = 64
        let shapes: [Shape] = [
            Shape(label: "resnet18h stem 3→32 3x3 @32", batch: b, size: 32, channels: 3, outChannels: 32, kernel: 3, stride: 1, padding: 1, groups: 1),
            Shape(label: "resnet18h 32→32 3x3 @32", batch: b, size: 32, channels: 32, outChannels: 32, kernel: 3, stride: 1, padding: 1, groups: 1),
            Shape(label: "resnet18h 32→64 3x3 s2 @32", batch: b, size: 32, channels: 32, outChannels: 64, kernel: 3, stride: 2, padding: 1, groups: 1),
            Shape(label: "resnet18h 64→64 3x3 @16", batch: b, size: 16, channels: 64, outChannels: 64, kernel: 3, stride: 1, padding: 1, groups: 1),
            Shape(label: "resnet18h 64→128 3x3 s2 @16", batch: b, size: 16, channels: 64, outChannels: 128, kernel: 3, stride: 2, padding: 1, groups: 1),
            Shape(label: "resnet18h 128→128 3x3 @8", batch: b, size: 8, channels: 128, outChannels: 128, kernel: 3, stride: 1, padding: 1, groups: 1),
            Shape(label: "resnet18h 128→256 3x3 s2 @8", batch: b, size: 8, channels: 128, outChannels: 256, kernel: 3, stride: 2, padding: 1, groups: 1),
            Shape(label: "resnet18h 256→256 3x3 @4", batch: b, size: 4, channels: 256, outChannels: 256, kernel: 3, stride: 1, padding: 1, groups: 1),
            Shape(label: "resnet18h 32→64 1x1 s2 @32", batch: b, size: 32, channels: 32, outChannels: 64, kernel: 1, stride: 2, padding: 0, groups: 1),
            Shape(label: "resnet18h 128→256 1x1 s2 @8", batch: b, size: 8, channels: 128, outChannels: 256, kernel: 1, stride: 2, padding: 0, groups: 1),
            Shape(label: "vitc stem 3→48 3x3 s2 @32", batch: b, size: 32, channels: 3, outChannels: 48, kernel: 3, stride: 2, padding: 1, groups: 1),
            Shape(label: "vitc 48→96 3x3 s2 @16", batch: b, size: 16, channels: 48, outChannels: 96, kernel: 3, stride: 2, padding: 1, groups: 1),
            Shape(label: "vitc 96→192 3x3 @8", batch: b, size: 8, channels: 96, outChannels: 192, kernel: 3, stride: 1, padding: 1, groups: 1),
            Shape(label: "vit-hybrid stem 3→64 7x7 s2 @32", batch: b, size: 32, channels: 3, outChannels: 64, kernel: 7, stride: 2, padding: 3, groups: 1),
            Shape(label: "pvtv2 stem 3→32 7x7 s4 @32", batch: b, size: 32, channels: 3, outChannels: 32, kernel: 7, stride: 4, padding: 3, groups: 1),
            Shape(label: "depthwise 64 3x3 @16", batch: b, size: 16, channels: 64, outChannels: 64, kernel: 3, stride: 1, padding: 1, groups: 64),
            Shape(label: "depthwise 256 3x3 @16", batch: b, size: 16, channels: 256, outChannels: 256, kernel: 3, stride: 1, padding: 1, groups: 256),
            Shape(label: "depthwise 128 3x3 s2 @8", batch: b, size: 8, channels: 128, outChannels: 128, kernel: 3, stride: 2, padding: 1, groups: 128),
            Shape(label: "depthwise 512 3x3 @4", batch: b, size: 4, channels: 512, outChannels: 512, kernel: 3, stride: 1, padding: 1, groups: 512),
        ]
        defer { ConvKernels.path = ConvKernels.defaultPath }
        print("conv path A/B: fastest of \(reps) interleaved runs, ms (im2col+GEMM or loops | oneDNN primitive | ratio old/new)")
        for s in shapes {
            let geo = ConvGeometry(op: "timing", input: [s.batch, s.size, s.size, s.channels],
                                   weight: [s.outChannels, s.kernel, s.kernel, s.channels / s.groups],
                                   stride: (s.stride, s.stride), padding: (s.padding, s.padding), dilation: (1, 1), groups: s.groups)
            let gen = Generator(seed: 1)
            let x = Tensor.randomNormal(geo.inputShape, generator: gen)
            let w = Tensor.randomNormal(geo.weightShape, generator: gen)
            let g = Tensor.randomNormal(geo.outputShape, generator: gen)
            let out = TensorStorage(count: geo.outputShape.reduce(1, *))
            let dx = TensorStorage(count: geo.inputShape.reduce(1, *))
            let dw = TensorStorage(count: geo.weightShape.reduce(1, *))
            var line = s.label.padding(toLength: 34, withPad: " ", startingAt: 0)
            let passes: [(String, DnnlConv.Pass, () -> Void)] = [
                ("fwd", .forward, { ConvKernels.forward(x.base, w.base, bias: nil, out.pointer, geo) }),
                ("bwd-data", .inputGradient, { ConvKernels.inputGradient(g.base, w.base, dx.pointer, geo) }),
                ("bwd-weights", .weightGradient, { ConvKernels.weightGradient(x.base, g.base, dw.pointer, geo) }),
            ]
            for (name, pass, body) in passes {
                guard let built = DnnlConv.primitive(pass, geo) else { line += " \(name): no primitive |"; continue }
                var times: [ConvKernels.Path: [Double]] = [.im2colGemm: [], .primitive: []]
                for rep in 0..<(reps + 1) {
                    let order: [ConvKernels.Path] = rep % 2 == 0 ? [.im2colGemm, .primitive] : [.primitive, .im2colGemm]
                    for path in order {
                        ConvKernels.path = path
                        let start = DispatchTime.now().uptimeNanoseconds
                        body()
                        let ms = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
                        if rep > 0 { times[path]!.append(ms) }  // the first round warms caches and builds primitives
                    }
                }
                // The fastest run: on this shared 2-core machine a run is only ever
                // slowed down (a descheduled OpenMP thread stalls the team), never sped up.
                let old = times[.im2colGemm]!.min()!, new = times[.primitive]!.min()!
                line += String(format: " %@ %.2f | %.2f | %.2fx (%@) |", name, old, new, old / new, built.implementation)
            }
            print(line)
            withExtendedLifetime((x, w, g, out, dx, dw)) {}
        }
    }
}
