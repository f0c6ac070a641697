import XCTest
import Patchwork

final class ConvPoolTests: XCTestCase {
    private func pair(_ c: OpCase, _ key: String) -> (Int, Int) {
        let v = c.ints(key)
        return (v[0], v[1])
    }

    private func convolve(_ c: OpCase, _ x: Tensor, _ w: Tensor, _ b: Tensor?) -> Tensor {
        conv2d(x, weight: w, bias: b, stride: pair(c, "stride"), padding: pair(c, "padding"),
               dilation: pair(c, "dilation"), groups: c.int("groups"))
    }

    private func pool(_ c: OpCase, _ x: Tensor) -> Tensor {
        switch c.op.replacingOccurrences(of: "_grad", with: "") {
        case "max_pool2d":
            return maxPool2d(x, kernel: pair(c, "kernel"), stride: c.has("stride") ? pair(c, "stride") : nil,
                             padding: c.has("padding") ? pair(c, "padding") : (0, 0),
                             ceilMode: c.has("ceil_mode") ? c.bool("ceil_mode") : false)
        case "avg_pool2d":
            return avgPool2d(x, kernel: pair(c, "kernel"), stride: c.has("stride") ? pair(c, "stride") : nil,
                             padding: c.has("padding") ? pair(c, "padding") : (0, 0),
                             ceilMode: c.has("ceil_mode") ? c.bool("ceil_mode") : false,
                             countIncludePad: c.has("count_include_pad") ? c.bool("count_include_pad") : true)
        default:
            return adaptiveAvgPool2d(x, outputSize: pair(c, "output_size"))
        }
    }

    func testConvAndPoolingMatchPyTorch() {
        var ops: [String: (OpCase, [Tensor]) -> [Tensor]] = [:]
        ops["conv2d"] = { c, t in [self.convolve(c, t[0], t[1], t.count > 2 ? t[2] : nil)] }
        ops["conv2d_grad"] = { c, t in
            // inputs x, w, (bias), v; outputs y and the gradients of sum(y * v).
            let v = t[t.count - 1], params = Array(t.dropLast())
            let y = self.convolve(c, params[0], params[1], params.count > 2 ? params[2] : nil)
            let grads = valueAndGradient(at: params) { p in
                (self.convolve(c, p[0], p[1], p.count > 2 ? p[2] : nil) * v).sum()
            }.gradients
            return [y] + grads
        }
        for kind in ["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d"] {
            ops[kind] = { c, t in [self.pool(c, t[0])] }
            ops[kind + "_grad"] = { c, t in
                [self.pool(c, t[0]), gradient(at: t[0]) { (self.pool(c, $0) * t[1]).sum() }]
            }
        }
        checkReferenceCases("conv", atol: 1e-4, rtol: 1e-4, ops: ops)
    }

    // MARK: Larger shapes against a direct loop (band splits, threaded paths)

    private struct Params {
        var stride = (1, 1), padding = (0, 0), dilation = (1, 1), groups = 1
    }

    /// Direct convolution and its two gradients by the defining sums, in Double.
    private func naive(_ x: Tensor, _ w: Tensor, _ g: Tensor, _ p: Params) -> (y: Tensor, dx: Tensor, dw: Tensor) {
        let (b, h, wd, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (o, kh, kw, cg) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
        let (ho, wo) = (g.shape[1], g.shape[2])
        let og = o / p.groups
        let xs = x.scalars, ws = w.scalars, gs = g.scalars
        var y = [Double](repeating: 0, count: b * ho * wo * o)
        var dx = [Double](repeating: 0, count: xs.count), dw = [Double](repeating: 0, count: ws.count)
        for n in 0..<b {
            for i in 0..<ho {
                for j in 0..<wo {
                    for oc in 0..<o {
                        let grp = oc / og
                        let yi = ((n * ho + i) * wo + j) * o + oc
                        for r in 0..<kh {
                            let ih = i * p.stride.0 - p.padding.0 + r * p.dilation.0
                            if ih < 0 || ih >= h { continue }
                            for s in 0..<kw {
                                let iw = j * p.stride.1 - p.padding.1 + s * p.dilation.1
                                if iw < 0 || iw >= wd { continue }
                                for k in 0..<cg {
                                    let xi = ((n * h + ih) * wd + iw) * c + grp * cg + k
                                    let wi = ((oc * kh + r) * kw + s) * cg + k
                                    y[yi] += Double(xs[xi]) * Double(ws[wi])
                                    dx[xi] += Double(gs[yi]) * Double(ws[wi])
                                    dw[wi] += Double(gs[yi]) * Double(xs[xi])
                                }
                            }
                        }
                    }
                }
            }
        }
        return (Tensor(y.map { Float($0) }, shape: g.shape), Tensor(dx.map { Float($0) }, shape: x.shape),
                Tensor(dw.map { Float($0) }, shape: w.shape))
    }

    func testLargerConvolutionsMatchDirectLoops() {
        let gen = Generator(seed: 11)
        // (batch, H, W, C, O, kernel, params): bands of im2col rows, one vs several images, all paths.
        let configs: [(Int, Int, Int, Int, Int, (Int, Int), Params)] = [
            (3, 40, 38, 32, 16, (3, 3), Params(padding: (1, 1))),
            (1, 40, 38, 32, 16, (3, 3), Params(stride: (2, 2), padding: (1, 1))),
            (2, 30, 30, 16, 24, (3, 3), Params(padding: (2, 2), dilation: (2, 2), groups: 4)),
            (2, 20, 21, 64, 64, (7, 7), Params(padding: (3, 3), groups: 64)),
            (1, 19, 20, 40, 40, (3, 3), Params(stride: (2, 2), padding: (1, 1), groups: 40)),
            (2, 9, 13, 20, 20, (3, 3), Params(padding: (3, 0), groups: 20)),  // padding beyond the kernel span
            (1, 10, 17, 35, 35, (3, 5), Params(stride: (1, 1), padding: (1, 2), dilation: (2, 2), groups: 35)),
            (1, 11, 12, 16, 16, (2, 3), Params(stride: (3, 2), padding: (1, 1), dilation: (2, 1), groups: 16)),
            (2, 12, 14, 7, 9, (3, 4), Params(stride: (1, 2), padding: (2, 1), dilation: (1, 2))),
            (3, 16, 16, 48, 40, (1, 1), Params()),
            (2, 16, 15, 24, 16, (1, 1), Params(groups: 2)),
        ]
        for (b, h, w, c, o, k, p) in configs {
            let name = "B\(b) \(h)x\(w)x\(c)→\(o) k\(k) s\(p.stride) p\(p.padding) d\(p.dilation) g\(p.groups)"
            let x = Tensor.randomNormal([b, h, w, c], generator: gen)
            let wt = Tensor.randomNormal([o, k.0, k.1, c / p.groups], std: 0.2, generator: gen)
            let y = conv2d(x, weight: wt, stride: p.stride, padding: p.padding, dilation: p.dilation, groups: p.groups)
            let g = Tensor.randomNormal(y.shape, generator: gen)
            let ref = naive(x, wt, g, p)
            assertClose(y, ref.y, atol: 1e-4, rtol: 1e-4, "\(name): forward")
            let dx = conv2dInputGradient(g, weight: wt, inputSize: (h, w), stride: p.stride, padding: p.padding,
                                         dilation: p.dilation, groups: p.groups)
            assertClose(dx, ref.dx, atol: 1e-4, rtol: 1e-4, "\(name): input gradient")
            let dw = conv2dWeightGradient(x, g, kernelSize: k, stride: p.stride, padding: p.padding,
                                          dilation: p.dilation, groups: p.groups)
            assertClose(dw, ref.dw, atol: 5e-4, rtol: 1e-4, "\(name): weight gradient")
        }
    }

    func testConvolutionOfStridedViewsAndBias() {
        // A permuted (non-contiguous) input and weight give the same result as contiguous copies.
        let gen = Generator(seed: 12)
        let x = Tensor.randomNormal([2, 4, 5, 6], generator: gen)
        let w = Tensor.randomNormal([5, 3, 3, 6], generator: gen)
        let bias = Tensor.randomNormal([5], generator: gen)
        let xv = x.permuted([0, 3, 1, 2]).permuted([0, 2, 3, 1])  // same view, strides intact
        let xt = x.transposed(1, 2).contiguous().transposed(1, 2)  // same values, non-contiguous
        let wt = w.permuted([3, 0, 1, 2]).contiguous().permuted([1, 2, 3, 0])
        XCTAssertFalse(xt.isContiguous)
        let expected = conv2d(x, weight: w, bias: bias, padding: (1, 1))
        assertClose(conv2d(xt, weight: wt, bias: bias, padding: (1, 1)), expected, "strided views")
        assertClose(conv2d(xv, weight: w, bias: bias, padding: (1, 1)), expected, "permuted views")
        let noBias = conv2d(x, weight: w, padding: (1, 1))
        assertClose(noBias + bias, expected, "bias fused")
    }

    // MARK: Finite differences

    func testConvolutionGradients() {
        let gen = Generator(seed: 13)
        func rnd(_ s: [Int], _ std: Float = 1) -> Tensor { Tensor.randomNormal(s, std: std, generator: gen) }
        checkGradients([rnd([2, 5, 6, 3]), rnd([4, 3, 3, 3], 0.5), rnd([4])], "conv2d 3x3 s2 p1") {
            conv2d($0[0], weight: $0[1], bias: $0[2], stride: (2, 2), padding: (1, 1))
        }
        checkGradients([rnd([1, 6, 5, 4]), rnd([4, 2, 3, 2], 0.5)], "conv2d 2x3 groups 2 dilation (2,1)") {
            conv2d($0[0], weight: $0[1], stride: (1, 2), padding: (2, 1), dilation: (2, 1), groups: 2)
        }
        checkGradients([rnd([2, 3, 4, 6]), rnd([5, 1, 1, 6], 0.5), rnd([5])], "conv2d pointwise") {
            conv2d($0[0], weight: $0[1], bias: $0[2])
        }
        checkGradients([rnd([2, 5, 4, 18]), rnd([18, 3, 3, 1], 0.5), rnd([18])], "conv2d depthwise") {
            conv2d($0[0], weight: $0[1], bias: $0[2], stride: (2, 1), padding: (1, 1), groups: 18)
        }
        checkGradients([rnd([1, 4, 5, 3]), rnd([6, 3, 3, 1], 0.5), rnd([6])], "conv2d depthwise multiplier 2") {
            conv2d($0[0], weight: $0[1], bias: $0[2], padding: (1, 1), groups: 3)
        }
    }

    func testConvolutionBackwardOpGradients() {
        let gen = Generator(seed: 14)
        func rnd(_ s: [Int], _ std: Float = 1) -> Tensor { Tensor.randomNormal(s, std: std, generator: gen) }
        // Each backward op against finite differences in both of its arguments.
        let cases: [(String, [Int], [Int], Params)] = [
            ("general", [2, 6, 5, 4], [6, 3, 2, 2], Params(stride: (2, 1), padding: (1, 1), groups: 2)),
            ("pointwise", [2, 3, 3, 4], [5, 1, 1, 4], Params()),
            ("depthwise", [1, 5, 6, 17], [17, 3, 3, 1], Params(stride: (2, 2), padding: (1, 1), dilation: (1, 2), groups: 17)),
        ]
        for (name, xShape, wShape, p) in cases {
            let x = rnd(xShape), w = rnd(wShape, 0.5)
            let y = conv2d(x, weight: w, stride: p.stride, padding: p.padding, dilation: p.dilation, groups: p.groups)
            let g = rnd(y.shape)
            checkGradients([g, w], "conv2dInputGradient \(name)") {
                conv2dInputGradient($0[0], weight: $0[1], inputSize: (xShape[1], xShape[2]), stride: p.stride,
                                    padding: p.padding, dilation: p.dilation, groups: p.groups)
            }
            checkGradients([x, g], "conv2dWeightGradient \(name)") {
                conv2dWeightGradient($0[0], $0[1], kernelSize: (wShape[1], wShape[2]), stride: p.stride,
                                     padding: p.padding, dilation: p.dilation, groups: p.groups)
            }
        }
    }

    /// Distinct values 0.05 apart in shuffled order: no max ties within ±eps.
    private func distinct(_ shape: [Int], seed: UInt64) -> Tensor {
        let n = shape.reduce(1, *)
        var values = (0..<n).map { Float($0) * 0.05 - Float(n) * 0.025 }
        var rng = Generator(seed: seed)
        values.shuffle(using: &rng)
        return Tensor(values, shape: shape)
    }

    func testPoolingGradients() {
        let x = distinct([2, 7, 6, 3], seed: 15)
        checkGradients([x], "maxPool2d k3 s2 p1 ceil") { maxPool2d($0[0], kernel: (3, 3), stride: (2, 2), padding: (1, 1), ceilMode: true) }
        checkGradients([x], "maxPool2d k2") { maxPool2d($0[0], kernel: (2, 2)) }
        checkGradients([x], "avgPool2d k3 s2 p1 ceil exclude pad") {
            avgPool2d($0[0], kernel: (3, 3), stride: (2, 2), padding: (1, 1), ceilMode: true, countIncludePad: false)
        }
        checkGradients([x], "avgPool2d k3 s1 p1 include pad") { avgPool2d($0[0], kernel: (3, 3), stride: (1, 1), padding: (1, 1)) }
        checkGradients([x], "adaptiveAvgPool2d 7x6→3x4") { adaptiveAvgPool2d($0[0], outputSize: (3, 4)) }
        checkGradients([x], "adaptiveAvgPool2d 7x6→1x1") { adaptiveAvgPool2d($0[0], outputSize: (1, 1)) }

        // The backward ops: ∇ₓ Σ pool(x)·v is linear in v; differentiate it in v (and in x: zero).
        let pools: [(String, (Tensor) -> Tensor)] = [
            ("maxPool2d", { maxPool2d($0, kernel: (3, 3), stride: (2, 2), padding: (1, 1), ceilMode: true) }),
            ("avgPool2d", { avgPool2d($0, kernel: (3, 3), stride: (2, 2), padding: (1, 1), ceilMode: true, countIncludePad: false) }),
            ("adaptiveAvgPool2d", { adaptiveAvgPool2d($0, outputSize: (3, 4)) }),
        ]
        for (name, f) in pools {
            let v = Tensor.randomNormal(withoutGrad { f(x) }.shape, generator: Generator(seed: 16))
            checkGradients([x, v], "\(name) backward op") { t in
                valueAndGradient(at: [t[0]], createGraph: true) { (f($0[0]) * t[1]).sum() }.gradients[0]
            }
        }
    }

    // MARK: Second derivatives

    func testHessianVectorProductThroughConvolutionsAndPools() {
        // H·v by double backward vs (∇L(p+εv) − ∇L(p−εv)) / 2ε, for the input and the weights.
        let gen = Generator(seed: 17)
        let target = Tensor.randomNormal([2, 2, 2, 6], generator: gen)
        let x = Tensor.randomNormal([2, 7, 6, 3], generator: gen)
        let w1 = Tensor.randomNormal([6, 3, 3, 3], std: 0.4, generator: gen)
        let b1 = Tensor.randomNormal([6], std: 0.1, generator: gen)
        let w2 = Tensor.randomNormal([6, 3, 3, 1], std: 0.4, generator: gen)
        let w3 = Tensor.randomNormal([6, 1, 1, 3], std: 0.4, generator: gen)
        let params = [x, w1, b1, w2, w3]
        let dirs = params.enumerated().map { Tensor.randomNormal($0.element.shape, generator: Generator(seed: 30 + UInt64($0.offset))) }
        func loss(_ p: [Tensor]) -> Tensor {
            let h1 = conv2d(p[0], weight: p[1], bias: p[2], stride: (1, 1), padding: (1, 1)).tanh()       // general
            let h2 = conv2d(h1, weight: p[3], stride: (2, 2), padding: (1, 1), dilation: (1, 2), groups: 6)  // depthwise
            let h3 = avgPool2d(h2.gelu(), kernel: (2, 2), stride: (1, 1), padding: (1, 1), ceilMode: true, countIncludePad: false)
            let h4 = conv2d(h3.sigmoid(), weight: p[4], groups: 2)                                        // pointwise, grouped
            return (adaptiveAvgPool2d(h4, outputSize: (2, 2)) - target).square().mean() + h1.square().mean()
        }
        func grads(_ p: [Tensor]) -> [Tensor] { valueAndGradient(at: p) { loss($0) }.gradients }
        let leaves = params.map { $0.requiringGrad() }
        let first = valueAndGradient(at: leaves, createGraph: true) { loss($0) }.gradients
        var gv = (first[0] * dirs[0]).sum()
        for k in 1..<params.count { gv = gv + (first[k] * dirs[k]).sum() }
        gv.backward()
        // The network is strongly curved (tanh, GELU, sigmoid): the central difference's
        // O(ε²) error is ~4e-3 at ε = 1e-2, ~4e-4 at ε = 3e-3 (checked to shrink as ε²).
        let eps: Float = 3e-3
        let plus = grads(zip(params, dirs).map { $0 + $1 * eps })
        let minus = grads(zip(params, dirs).map { $0 - $1 * eps })
        for k in 0..<params.count {
            let numeric = (plus[k] - minus[k]) / (2 * eps)
            let hv = leaves[k].grad!
            assertClose(hv, numeric, atol: 1e-3, rtol: 2e-2, "Hessian-vector product, parameter \(k)")
            XCTAssertGreaterThan(hv.abs().max().item(), 1e-4, "H·v of parameter \(k) must not be trivially zero")
        }
    }

    func testSecondDerivativeOfInputGradient() {
        // d/d(x, w) of Σ (∂/∂x Σ conv(x, w)·u)·v — for conv, ∂/∂x is linear in w and
        // independent of x, so compare with finite differences of the first gradients.
        let gen = Generator(seed: 18)
        let x = Tensor.randomNormal([2, 6, 5, 4], generator: gen)
        let w = Tensor.randomNormal([6, 3, 3, 2], std: 0.5, generator: gen)
        let u = Tensor.randomNormal([2, 3, 3, 6], generator: gen)
        let v = Tensor.randomNormal([2, 6, 5, 4], generator: gen)
        func objective(_ p: [Tensor]) -> Tensor {
            let gx = valueAndGradient(at: [p[0], p[1]], createGraph: true) { q in
                (conv2d(q[0], weight: q[1], stride: (2, 2), padding: (1, 1), groups: 2).tanh() * u).sum()
            }.gradients[0]
            return (gx * v).sum()
        }
        checkGradients([x, w], "gradient of Σ ∂x·v (tanh ∘ conv)") { objective($0) }
    }

    // MARK: Argument errors

    func testArgumentMistakesStopWithAClearMessage() {
        assertStops(containing: ["conv2d", "channel mismatch", "[1, 5, 5, 3]", "[4, 3, 3, 2]"]) {
            _ = conv2d(Tensor.zeros([1, 5, 5, 3]), weight: Tensor.zeros([4, 3, 3, 2]))
        }
        assertStops(containing: ["conv2d", "groups 2", "3 input channels"]) {
            _ = conv2d(Tensor.zeros([1, 5, 5, 3]), weight: Tensor.zeros([4, 3, 3, 1]), groups: 2)
        }
        assertStops(containing: ["conv2d", "larger than the padded input", "6x6"]) {
            _ = conv2d(Tensor.zeros([1, 4, 4, 2]), weight: Tensor.zeros([3, 7, 7, 2]), padding: (1, 1))
        }
        assertStops(containing: ["conv2d", "bias", "[3]", "[4]"]) {
            _ = conv2d(Tensor.zeros([1, 4, 4, 2]), weight: Tensor.zeros([4, 3, 3, 2]), bias: Tensor.zeros([3]))
        }
        assertStops(containing: ["max_pool2d", "padding (2, 2)", "kernel (3, 3)"]) {
            _ = maxPool2d(Tensor.zeros([1, 8, 8, 2]), kernel: (3, 3), padding: (2, 2))
        }
        assertStops(containing: ["conv2d_input_gradient", "[1, 3, 3, 4]"]) {
            _ = conv2dInputGradient(Tensor.zeros([1, 3, 3, 4]), weight: Tensor.zeros([4, 3, 3, 2]), inputSize: (8, 8))
        }
    }

    /// Max pooling's first-maximum and NaN rules, in the vector part (16 channels) and the tail:
    /// ties go to the window's first position, a NaN wins wherever it is (as PyTorch).
    func testMaxPoolTiesAndNaNInVectorAndTail() {
        var values = [Float](repeating: 0, count: 2 * 2 * 20)
        for channel in [3, 19] { values[(1 * 2 + 0) * 20 + channel] = .nan }  // row 1, column 0
        let x = Tensor(values, shape: [1, 2, 2, 20])
        let (y, grads) = valueAndGradient(at: [x]) { maxPool2d($0[0], kernel: (2, 2)).sum() }
        let pooled = maxPool2d(x, kernel: (2, 2)).scalars
        for channel in 0..<20 {
            let hasNaN = channel == 3 || channel == 19
            XCTAssertEqual(pooled[channel].isNaN, hasNaN, "channel \(channel)")
            let dx = grads[0].scalars
            XCTAssertEqual(dx[(hasNaN ? 2 : 0) * 20 + channel], 1, "channel \(channel): gradient at the winning position")
        }
        XCTAssertTrue(y.item().isNaN)
    }
}
