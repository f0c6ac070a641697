import XCTest
@testable import Patchwork

/// oneDNN's convolution primitives (`DnnlConv`) against the im2col + GEMM and
/// depthwise loops of `ConvKernels`, which ConvPoolTests checks against
/// PyTorch and against the defining sums.
final class ConvPrimitiveTests: XCTestCase {
    private struct Case {
        let batch, height, width, channels, outChannels: Int
        let kernel: (Int, Int)
        var stride = (1, 1), padding = (0, 0), dilation = (1, 1), groups = 1
        var bias = false

        var name: String {
            "B\(batch) \(height)x\(width)x\(channels)→\(outChannels) k\(kernel) s\(stride) p\(padding) d\(dilation) g\(groups)\(bias ? " bias" : "")"
        }
        func geometry() -> ConvGeometry {
            ConvGeometry(op: "test", input: [batch, height, width, channels],
                         weight: [outChannels, kernel.0, kernel.1, channels / groups],
                         stride: stride, padding: padding, dilation: dilation, groups: groups)
        }
    }

    override func tearDown() {
        ConvKernels.path = ConvKernels.defaultPath
        super.tearDown()
    }

    /// conv2d, its input gradient and its weight gradient on one path.
    private func run(_ c: Case, _ path: ConvKernels.Path, x: Tensor, w: Tensor, b: Tensor?, g: Tensor) -> [Tensor] {
        ConvKernels.path = path
        defer { ConvKernels.path = ConvKernels.defaultPath }
        return [
            conv2d(x, weight: w, bias: b, stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups),
            conv2dInputGradient(g, weight: w, inputSize: (c.height, c.width), stride: c.stride, padding: c.padding,
                                dilation: c.dilation, groups: c.groups),
            conv2dWeightGradient(x, g, kernelSize: c.kernel, stride: c.stride, padding: c.padding,
                                 dilation: c.dilation, groups: c.groups),
        ]
    }

    func testPrimitiveMatchesIm2colPath() {
        let gen = Generator(seed: 41)
        let cases: [Case] = [
            Case(batch: 4, height: 32, width: 32, channels: 64, outChannels: 64, kernel: (3, 3), padding: (1, 1)),
            Case(batch: 2, height: 32, width: 32, channels: 3, outChannels: 24, kernel: (3, 3), stride: (2, 2), padding: (1, 1), bias: true),
            Case(batch: 1, height: 17, width: 15, channels: 5, outChannels: 7, kernel: (3, 3), padding: (1, 1), bias: true),
            Case(batch: 3, height: 16, width: 16, channels: 32, outChannels: 48, kernel: (3, 3), stride: (2, 2), padding: (1, 1)),
            Case(batch: 2, height: 13, width: 11, channels: 12, outChannels: 20, kernel: (5, 3), stride: (2, 1), padding: (2, 1)),
            Case(batch: 2, height: 20, width: 19, channels: 16, outChannels: 16, kernel: (3, 3), padding: (2, 2), dilation: (2, 2)),
            Case(batch: 2, height: 12, width: 14, channels: 16, outChannels: 24, kernel: (3, 3), padding: (1, 1), groups: 4, bias: true),
            Case(batch: 2, height: 14, width: 14, channels: 32, outChannels: 32, kernel: (3, 3), padding: (1, 1), groups: 32),
            Case(batch: 1, height: 15, width: 13, channels: 24, outChannels: 24, kernel: (3, 3), stride: (2, 2), padding: (1, 1), groups: 24, bias: true),
            Case(batch: 2, height: 9, width: 9, channels: 40, outChannels: 40, kernel: (7, 7), padding: (3, 3), groups: 40),
            Case(batch: 2, height: 8, width: 9, channels: 24, outChannels: 40, kernel: (1, 1), bias: true),
            Case(batch: 1, height: 9, width: 8, channels: 16, outChannels: 8, kernel: (1, 1), stride: (2, 2)),
            Case(batch: 2, height: 32, width: 32, channels: 3, outChannels: 64, kernel: (4, 4), stride: (4, 4)),  // patch stem
            Case(batch: 1, height: 7, width: 10, channels: 6, outChannels: 9, kernel: (2, 3), stride: (3, 2), padding: (1, 0), dilation: (2, 1)),
            Case(batch: 1, height: 5, width: 5, channels: 4, outChannels: 4, kernel: (3, 3), padding: (3, 0)),  // padding beyond the span
            Case(batch: 3, height: 2, width: 2, channels: 24, outChannels: 24, kernel: (3, 3), padding: (1, 1), groups: 24),  // PVTv2's last stages
            Case(batch: 3, height: 1, width: 1, channels: 24, outChannels: 24, kernel: (3, 3), padding: (1, 1), groups: 24),
        ]
        var built = 0
        for c in cases {
            let x = Tensor.randomNormal([c.batch, c.height, c.width, c.channels], generator: gen)
            let w = Tensor.randomNormal([c.outChannels, c.kernel.0, c.kernel.1, c.channels / c.groups], std: 0.3, generator: gen)
            let b = c.bias ? Tensor.randomNormal([c.outChannels], generator: gen) : nil
            let geo = c.geometry()
            let g = Tensor.randomNormal(geo.outputShape, generator: gen)
            let reference = run(c, .im2colGemm, x: x, w: w, b: b, g: g)
            let primitive = run(c, .primitive, x: x, w: w, b: b, g: g)
            for (k, what) in ["forward", "input gradient", "weight gradient"].enumerated() {
                XCTAssertEqual(primitive[k].shape, reference[k].shape, "\(c.name): \(what) shape")
                assertClose(primitive[k], reference[k], atol: 1e-4, rtol: 1e-4, "\(c.name): \(what)")
            }
            let passes: [DnnlConv.Pass] = [.forward, .inputGradient, .weightGradient]
            built += passes.filter { DnnlConv.primitive($0, geo) != nil }.count
        }
        // The comparison means something only where a primitive ran: the
        // common 3x3 convolution must have all three, and most cases some.
        let common = cases[0].geometry()
        for pass in [DnnlConv.Pass.forward, .inputGradient, .weightGradient] {
            XCTAssertNotNil(DnnlConv.primitive(pass, common), "no oneDNN primitive for \(pass) on \(cases[0].name)")
        }
        XCTAssertGreaterThan(built, cases.count * 2, "oneDNN built only \(built) of \(cases.count * 3) primitives")
    }

    /// oneDNN's own im2col + GEMM convolution ("gemm:jit") is never kept: it is
    /// what oneDNN 2.6 falls back to on AVX2 for a depthwise weight gradient on
    /// tiny maps (PVTv2's last stages, 2x2 and 1x1), where it took 8-11 ms a
    /// call; on our loops pvtv2-s's whole training step fell from 90 to 55 ms.
    /// Those shapes must get a JIT kernel or nil (our loops).
    func testGemmBasedConvolutionsAreLeftToOurLoops() {
        let cases: [Case] = [
            Case(batch: 4, height: 2, width: 2, channels: 64, outChannels: 64, kernel: (3, 3), padding: (1, 1), groups: 64),
            Case(batch: 4, height: 1, width: 1, channels: 64, outChannels: 64, kernel: (3, 3), padding: (1, 1), groups: 64),
            Case(batch: 4, height: 2, width: 1, channels: 16, outChannels: 32, kernel: (3, 3), stride: (2, 2), padding: (1, 1)),
        ]
        for c in cases {
            for pass in [DnnlConv.Pass.forward, .inputGradient, .weightGradient] {
                if let built = DnnlConv.primitive(pass, c.geometry()) {
                    XCTAssertFalse(built.implementation.contains("gemm:"),
                                   "\(c.name) \(pass): kept oneDNN's \(built.implementation)")
                }
            }
        }
    }

    func testPrimitiveCacheReturnsTheSamePrimitive() {
        let geo = Case(batch: 2, height: 10, width: 10, channels: 8, outChannels: 8, kernel: (3, 3), padding: (1, 1)).geometry()
        let first = DnnlConv.primitive(.forward, geo, hasBias: true)
        XCTAssertNotNil(first)
        XCTAssertTrue(first === DnnlConv.primitive(.forward, geo, hasBias: true))
        XCTAssertFalse(first === DnnlConv.primitive(.forward, geo, hasBias: false), "bias is part of the key")
    }

    /// Under bf16 a convolution whose GEMM pays runs on a bf16 primitive: each pass equals the fp32
    /// convolution of its two inputs rounded to bf16 (exact products, fp32 sums), and differs from
    /// the unrounded one by bf16's rounding. One that does not pay stays fp32 (bit-identical).
    func testBF16PrimitivesMultiplyTheRoundedInputs() throws {
        let c = Case(batch: 4, height: 16, width: 16, channels: 128, outChannels: 128, kernel: (3, 3), padding: (1, 1), bias: true)
        let geo = c.geometry()
        XCTAssertTrue(Precision.with(.bf16) { DnnlConv.runsInBF16(geo) }, "\(c.name) should pay in bf16")
        XCTAssertFalse(DnnlConv.runsInBF16(geo), "fp32 runs nothing in bf16")
        for pass in [DnnlConv.Pass.forward, .inputGradient, .weightGradient] {
            guard let built = DnnlConv.primitive(pass, geo, hasBias: pass == .forward, bf16: true) else {
                throw XCTSkip("oneDNN has no bf16 \(pass) convolution on this CPU")
            }
            XCTAssertTrue(built.bf16)
        }
        let gen = Generator(seed: 43)
        let x = Tensor.randomNormal([c.batch, c.height, c.width, c.channels], generator: gen)
        let w = Tensor.randomNormal([c.outChannels, 3, 3, c.channels], std: 0.05, generator: gen)
        let b = Tensor.randomNormal([c.outChannels], generator: gen)
        let g = Tensor.randomNormal(geo.outputShape, generator: gen)
        let bf16 = Precision.with(.bf16) { run(c, .automatic, x: x, w: w, b: b, g: g) }
        let exact = run(c, .im2colGemm, x: x, w: w, b: b, g: g)
        // forward: x, w rounded; input gradient: g, w rounded; weight gradient: x, g rounded.
        let (xr, wr, gr) = (roundedToBF16(x), roundedToBF16(w), roundedToBF16(g))
        let rounded = [run(c, .im2colGemm, x: xr, w: wr, b: b, g: g)[0],
                       run(c, .im2colGemm, x: x, w: wr, b: b, g: gr)[1],
                       run(c, .im2colGemm, x: xr, w: w, b: b, g: gr)[2]]
        for (k, what) in ["forward", "input gradient", "weight gradient"].enumerated() {
            assertClose(bf16[k], rounded[k], atol: 1e-4, rtol: 1e-4, "\(what) against the rounded inputs' product")
            let error = (bf16[k] - exact[k]).abs().max().item() / exact[k].abs().max().item()
            XCTAssertGreaterThan(error, 1e-4, "\(what): no bf16 rounding seen (relative \(error))")
            XCTAssertLessThan(error, 2e-2, "\(what): more than bf16's rounding (relative \(error))")
        }
        // A stem on 3 channels does not pay: its passes stay fp32, bit for bit.
        let stem = Case(batch: 2, height: 16, width: 16, channels: 3, outChannels: 16, kernel: (3, 3), padding: (1, 1))
        XCTAssertFalse(Precision.with(.bf16) { DnnlConv.runsInBF16(stem.geometry()) })
        let sx = Tensor.randomNormal([2, 16, 16, 3], generator: gen), sw = Tensor.randomNormal([16, 3, 3, 3], generator: gen)
        let sg = Tensor.randomNormal(stem.geometry().outputShape, generator: gen)
        let stemBF16 = Precision.with(.bf16) { run(stem, .automatic, x: sx, w: sw, b: nil, g: sg) }
        let stemFP32 = run(stem, .automatic, x: sx, w: sw, b: nil, g: sg)
        for k in 0..<3 { XCTAssertEqual(stemBF16[k].scalars, stemFP32[k].scalars, "stem pass \(k)") }
    }

    func testDoubleBackwardOnPrimitivePathMatchesIm2colPath() {
        // Gradients of a gradient: the first-order results come from the chosen
        // kernels, their derivatives from the differentiable conv ops again.
        let gen = Generator(seed: 42)
        let x = Tensor.randomNormal([2, 9, 8, 5], generator: gen)
        let w1 = Tensor.randomNormal([8, 3, 3, 5], std: 0.4, generator: gen)
        let b1 = Tensor.randomNormal([8], std: 0.1, generator: gen)
        let w2 = Tensor.randomNormal([12, 3, 3, 2], std: 0.4, generator: gen)
        let dirs = [x, w1, b1, w2].enumerated().map {
            Tensor.randomNormal($0.element.shape, generator: Generator(seed: 50 + UInt64($0.offset)))
        }
        func hessianVector(_ path: ConvKernels.Path) -> [Tensor] {
            ConvKernels.path = path
            defer { ConvKernels.path = ConvKernels.defaultPath }
            let leaves = [x, w1, b1, w2].map { $0.requiringGrad() }
            let first = valueAndGradient(at: leaves, createGraph: true) { p in
                let h = conv2d(p[0], weight: p[1], bias: p[2], stride: (2, 1), padding: (1, 1)).tanh()
                return conv2d(h, weight: p[3], padding: (2, 2), dilation: (2, 2), groups: 4).square().mean()
            }.gradients
            var gv = (first[0] * dirs[0]).sum()
            for k in 1..<first.count { gv = gv + (first[k] * dirs[k]).sum() }
            gv.backward()
            return leaves.map { $0.grad! }
        }
        let reference = hessianVector(.im2colGemm)
        let primitive = hessianVector(.primitive)
        for k in reference.indices {
            assertClose(primitive[k], reference[k], atol: 1e-4, rtol: 1e-3, "H·v of parameter \(k)")
            XCTAssertGreaterThan(primitive[k].abs().max().item(), 1e-4, "H·v of parameter \(k) must not be trivially zero")
        }
    }
}
