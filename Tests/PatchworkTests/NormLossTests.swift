import XCTest
import Patchwork

final class NormLossTests: XCTestCase {
    /// Gradients of Σ f(inputs)·gy with respect to `inputs`.
    private func vjp(_ inputs: [Tensor], _ gy: Tensor, _ f: @escaping ([Tensor]) -> Tensor) -> [Tensor] {
        valueAndGradient(at: inputs) { (f($0) * gy).sum() }.gradients
    }

    func testNormAndLossOpsMatchPyTorch() {
        var ops: [String: (OpCase, [Tensor]) -> [Tensor]] = [:]
        ops["softmax"] = { c, x in [x[0].softmax(axis: c.int("axis"))] }
        ops["log_softmax"] = { c, x in [x[0].logSoftmax(axis: c.int("axis"))] }
        ops["layer_norm"] = { c, x in
            [layerNorm(x[0], weight: x.count > 1 ? x[1] : nil, bias: x.count > 2 ? x[2] : nil, eps: c.float("eps"))]
        }
        ops["batch_norm_eval"] = { c, x in
            [batchNorm(x[0], mean: x[1], variance: x[2], weight: x.count > 3 ? x[3] : nil, bias: x.count > 4 ? x[4] : nil,
                       eps: c.float("eps"))]
        }
        ops["batch_norm_train"] = { c, x in
            let r = batchNormTraining(x[0], weight: x.count > 1 ? x[1] : nil, bias: x.count > 2 ? x[2] : nil, eps: c.float("eps"))
            return [r.output, r.mean, r.unbiasedVariance]
        }
        ops["group_norm"] = { c, x in
            [groupNorm(x[0], groups: c.int("groups"), weight: x.count > 1 ? x[1] : nil, bias: x.count > 2 ? x[2] : nil,
                       eps: c.float("eps"))]
        }
        ops["cross_entropy"] = { c, x in
            [crossEntropy(logits: x[0], labels: c.ints("labels"), labelSmoothing: c.float("labelSmoothing"))]
        }
        ops["cross_entropy_soft"] = { c, x in
            [crossEntropy(logits: x[0], softTargets: x[1], labelSmoothing: c.float("labelSmoothing"))]
        }
        // PyTorch's own gradients (the last input is the output gradient).
        ops["softmax_grad"] = { _, x in self.vjp([x[0]], x[1]) { $0[0].softmax() } }
        ops["log_softmax_grad"] = { _, x in self.vjp([x[0]], x[1]) { $0[0].logSoftmax() } }
        ops["layer_norm_grad"] = { c, x in
            self.vjp(Array(x[0..<3]), x[3]) { layerNorm($0[0], weight: $0[1], bias: $0[2], eps: c.float("eps")) }
        }
        ops["batch_norm_train_grad"] = { c, x in
            self.vjp(Array(x[0..<3]), x[3]) { batchNormTraining($0[0], weight: $0[1], bias: $0[2], eps: c.float("eps")).output }
        }
        ops["group_norm_grad"] = { c, x in
            self.vjp(Array(x[0..<3]), x[3]) {
                groupNorm($0[0], groups: c.int("groups"), weight: $0[1], bias: $0[2], eps: c.float("eps"))
            }
        }
        ops["cross_entropy_grad"] = { c, x in
            valueAndGradient(at: x) {
                crossEntropy(logits: $0[0], labels: c.ints("labels"), labelSmoothing: c.float("labelSmoothing"))
            }.gradients
        }
        ops["cross_entropy_soft_grad"] = { c, x in
            valueAndGradient(at: x) {
                crossEntropy(logits: $0[0], softTargets: $0[1], labelSmoothing: c.float("labelSmoothing"))
            }.gradients
        }
        checkReferenceCases("norm", atol: 2e-5, rtol: 1e-4, ops: ops)
    }

    func testSoftmaxGradients() {
        let x = Tensor.randomNormal([2, 3, 4], std: 1.5, generator: Generator(seed: 1))
        for axis in [-1, 0, 1] {
            checkGradients([x], "softmax axis \(axis)") { $0[0].softmax(axis: axis) }
            checkGradients([x], "logSoftmax axis \(axis)") { $0[0].logSoftmax(axis: axis) }
        }
        let ragged = Tensor.randomNormal([2, 19], generator: Generator(seed: 2))
        checkGradients([ragged], "softmax row of 19") { $0[0].softmax() }
    }

    func testSoftmaxMasksAndLargeRowsAcrossThreads() {
        // -inf entries (attention masks) get exactly 0; a fully masked row is NaN, as in PyTorch.
        let masked = Tensor([0, -.infinity, 1, -.infinity, -.infinity, -.infinity, -.infinity, -.infinity], shape: [2, 4])
        let s = masked.softmax().scalars
        let e = Float(M_E)
        XCTAssertEqual(s[0], 1 / (1 + e), accuracy: 1e-6)
        XCTAssertEqual(s[1], 0)
        XCTAssertEqual(s[2], e / (1 + e), accuracy: 1e-6)
        XCTAssertTrue(s[4].isNaN)
        XCTAssertEqual(masked.logSoftmax().scalars[1], -.infinity)
        // Rows split over threads agree with the same formula written in ops.
        let x = Tensor.randomNormal([300, 97], std: 3, generator: Generator(seed: 3))
        let shifted = x - x.max(axis: -1, keepDims: true)
        let expected = shifted.exp() / shifted.exp().sum(axis: -1, keepDims: true)
        assertClose(x.softmax(), expected, atol: 1e-6, rtol: 1e-4, "softmax [300, 97]")
        assertClose(x.logSoftmax(), shifted - shifted.exp().sum(axis: -1, keepDims: true).log(), atol: 1e-5, rtol: 1e-5,
                    "logSoftmax [300, 97]")
        assertClose(x.softmax().sum(axis: -1), Tensor.ones([300]), atol: 1e-5, rtol: 0, "rows sum to 1")
    }

    func testNormalizationGradients() {
        let g = Generator(seed: 4)
        let x = Tensor.randomNormal([2, 3, 20], generator: g)
        let w = Tensor.randomNormal([20], generator: g), b = Tensor.randomNormal([20], generator: g)
        checkGradients([x, w, b], "layerNorm affine") { layerNorm($0[0], weight: $0[1], bias: $0[2]) }
        checkGradients([x], "layerNorm plain") { layerNorm($0[0], eps: 1e-6) }

        let map = Tensor.randomNormal([2, 2, 3, 4], std: 2, generator: g) + 1
        let w4 = Tensor.randomNormal([4], generator: g), b4 = Tensor.randomNormal([4], generator: g)
        let mean = Tensor.randomNormal([4], generator: g), variance = Tensor.randomNormal([4], generator: g).abs() + 0.5
        checkGradients([map, mean, variance, w4, b4], "batchNorm eval") {
            batchNorm($0[0], mean: $0[1], variance: $0[2], weight: $0[3], bias: $0[4])
        }
        checkGradients([map, w4, b4], "batchNormTraining output") {
            batchNormTraining($0[0], weight: $0[1], bias: $0[2]).output
        }
        let tokens = Tensor.randomNormal([3, 2, 5], generator: g)
        checkGradients([tokens], "batchNormTraining tokens, no affine") { batchNormTraining($0[0]).output }
        checkGradients([map], "batchNormTraining mean") { batchNormTraining($0[0]).mean }
        checkGradients([map], "batchNormTraining unbiased variance") { batchNormTraining($0[0]).unbiasedVariance }

        let gmap = Tensor.randomNormal([2, 2, 3, 6], generator: g)
        let w6 = Tensor.randomNormal([6], generator: g), b6 = Tensor.randomNormal([6], generator: g)
        for groups in [1, 2, 3] {
            checkGradients([gmap, w6, b6], "groupNorm \(groups) groups") {
                groupNorm($0[0], groups: groups, weight: $0[1], bias: $0[2])
            }
        }
        checkGradients([tokens], "groupNorm tokens, no affine") { groupNorm($0[0], groups: 5) }
    }

    func testNormalizationsAcrossThreadsMatchComposedOps() {
        // Sizes large enough for the kernels to split over threads; the same
        // formulas written with reductions are the reference.
        let g = Generator(seed: 5)
        let x = Tensor.randomNormal([4, 16, 16, 48], std: 2, generator: g) + 3
        let w = Tensor.randomNormal([48], generator: g), b = Tensor.randomNormal([48], generator: g)
        func normalized(_ v: Tensor, _ axes: [Int]) -> Tensor {
            let c = v - v.mean(alongAxes: axes, keepDims: true)
            return c * (c.square().mean(alongAxes: axes, keepDims: true) + 1e-5).rsqrt()
        }
        assertClose(layerNorm(x, weight: w, bias: b), normalized(x, [3]) * w + b, atol: 1e-4, rtol: 1e-4, "layerNorm")
        let bn = batchNormTraining(x, weight: w, bias: b)
        assertClose(bn.output, normalized(x, [0, 1, 2]) * w + b, atol: 1e-4, rtol: 1e-4, "batchNormTraining")
        assertClose(bn.mean, x.mean(alongAxes: [0, 1, 2]), atol: 1e-5, rtol: 1e-5, "batch mean")
        assertClose(bn.unbiasedVariance, x.variance(alongAxes: [0, 1, 2], correction: 1), atol: 1e-4, rtol: 1e-4, "batch variance")
        let grouped = normalized(x.reshaped([4, 256, 6, 8]), [1, 3]).reshaped(x.shape)
        assertClose(groupNorm(x, groups: 6, weight: w, bias: b), grouped * w + b, atol: 1e-4, rtol: 1e-4, "groupNorm")
        let one = Tensor.randomNormal([1, 40, 40, 16], generator: g)
        assertClose(groupNorm(one, groups: 1), normalized(one, [1, 2, 3]), atol: 1e-4, rtol: 1e-4, "groupNorm one sample")
        // A view (non-contiguous input) normalises its logical values.
        let view = x.permuted([0, 2, 1, 3])
        assertClose(layerNorm(view), normalized(view.contiguous(), [3]), atol: 1e-4, rtol: 1e-4, "layerNorm of a view")
    }

    /// Evaluation batch norm with the shortcut add and ReLU in its pass equals the three ops in turn:
    /// values bit for bit, and the gradients of every argument (20 channels: a 16-lane vector and a tail).
    func testBatchNormWithResidualAndReLUEqualsTheOpsInTurn() {
        let g = Generator(seed: 12)
        let x = Tensor.randomNormal([3, 5, 7, 20], std: 2, generator: g)
        let residual = Tensor.randomNormal([3, 5, 7, 20], generator: g)
        let w = Tensor.randomNormal([20], generator: g), b = Tensor.randomNormal([20], generator: g)
        let mean = Tensor.randomNormal([20], generator: g), variance = Tensor.randomNormal([20], generator: g).abs() + 0.5
        let upstream = Tensor.randomNormal(x.shape, generator: g)
        for (adds, relu) in [(true, true), (false, true), (true, false)] {
            let name = "residual \(adds), relu \(relu)"
            func inTurn(_ t: [Tensor]) -> Tensor {
                let y = batchNorm(t[0], mean: t[1], variance: t[2], weight: t[3], bias: t[4]) + (adds ? t[5] : Tensor(0))
                return relu ? y.relu() : y
            }
            func fused(_ t: [Tensor]) -> Tensor {
                batchNorm(t[0], mean: t[1], variance: t[2], weight: t[3], bias: t[4], adding: adds ? t[5] : nil, relu: relu)
            }
            let inputs = [x, mean, variance, w, b, residual]
            assertClose(fused(inputs), inTurn(inputs), atol: 0, rtol: 0, "\(name): values")
            if relu { XCTAssertTrue(fused(inputs).scalars.contains(0) && fused(inputs).scalars.contains { $0 > 0 }, name) }
            let want = valueAndGradient(at: inputs) { (inTurn($0) * upstream).sum() }.gradients
            let got = valueAndGradient(at: inputs) { (fused($0) * upstream).sum() }.gradients
            for (i, arg) in ["x", "mean", "variance", "weight", "bias", "residual"].enumerated() where adds || i < 5 {
                assertClose(got[i], want[i], atol: 1e-5, rtol: 1e-5, "\(name): gradient of \(arg)")
            }
        }
    }

    func testCrossEntropyGradients() {
        let g = Generator(seed: 6)
        let logits = Tensor.randomNormal([4, 6], std: 2, generator: g)
        let labels = [5, 0, 2, 2]
        for smoothing: Float in [0, 0.1] {
            checkGradients([logits], "crossEntropy labels, smoothing \(smoothing)") {
                crossEntropy(logits: $0[0], labels: labels, labelSmoothing: smoothing)
            }
        }
        let targets = Tensor.randomNormal([4, 6], generator: g).softmax()
        checkGradients([logits, targets], "crossEntropy soft targets") { crossEntropy(logits: $0[0], softTargets: $0[1]) }
        checkGradients([logits, targets], "crossEntropy soft targets, smoothing") {
            crossEntropy(logits: $0[0], softTargets: $0[1], labelSmoothing: 0.2)
        }
        // Hard labels equal one-hot soft targets.
        var onehot = [Float](repeating: 0, count: 24)
        for (i, l) in labels.enumerated() { onehot[i * 6 + l] = 1 }
        XCTAssertEqual(crossEntropy(logits: logits, labels: labels, labelSmoothing: 0.1).item(),
                       crossEntropy(logits: logits, softTargets: Tensor(onehot, shape: [4, 6]), labelSmoothing: 0.1).item(),
                       accuracy: 1e-5)
    }

    /// H·v of `loss` at `params` along `v`, by double backward.
    private func hessianVectorProduct(_ params: [Tensor], _ v: [Tensor], _ loss: @escaping ([Tensor]) -> Tensor) -> [Tensor] {
        let leaves = params.map { $0.requiringGrad() }
        let first = valueAndGradient(at: leaves, createGraph: true) { loss($0) }.gradients
        zip(first, v).map { ($0 * $1).sum() }.reduce(Tensor(0), +).backward()
        return leaves.enumerated().map { k, leaf in leaf.grad ?? Tensor.zeros(params[k].shape) }
    }

    /// Checks H·v by double backward against central differences of first
    /// gradients and against the exact H·v of `reference`, the same loss
    /// written with elementary ops only.
    ///
    /// Normalisations have large third derivatives, so the difference step is
    /// small (2e-3; the truncation error falls as its square, measured: 0.12 at
    /// 1e-2, 0.011 at 3e-3 on a layer norm whose H·v is about 30).
    private func checkHessianVectorProduct(_ params: [Tensor], _ name: String, seed: UInt64,
                                           file: StaticString = #filePath, line: UInt = #line,
                                           loss: @escaping ([Tensor]) -> Tensor, reference: @escaping ([Tensor]) -> Tensor) {
        let g = Generator(seed: seed)
        let v = params.map { Tensor.randomNormal($0.shape, generator: g) }
        let hv = hessianVectorProduct(params, v, loss)
        let exact = hessianVectorProduct(params, v, reference)
        let eps: Float = 2e-3
        let plus = valueAndGradient(at: zip(params, v).map { $0 + $1 * eps }) { loss($0) }.gradients
        let minus = valueAndGradient(at: zip(params, v).map { $0 - $1 * eps }) { loss($0) }.gradients
        var largest: Float = 0
        for k in params.indices {
            largest = max(largest, hv[k].abs().max().item())
            assertClose(hv[k], exact[k], atol: 1e-4, rtol: 1e-3, "\(name): H·v vs composed ops, parameter \(k)",
                        file: file, line: line)
            assertClose(hv[k], (plus[k] - minus[k]) / (2 * eps), atol: 5e-3, rtol: 2e-2,
                        "\(name): H·v vs finite differences, parameter \(k)", file: file, line: line)
        }
        XCTAssertGreaterThan(largest, 1e-2, "\(name): H·v must not be trivially zero", file: file, line: line)
    }

    func testSecondDerivativesThroughSoftmaxAndNorms() {
        // Elementary-op versions of each fused op, for the exact comparison.
        func normalized(_ t: Tensor, view: [Int], axes: [Int]) -> Tensor {
            let r = t.reshaped(view)
            let c = r - r.mean(alongAxes: axes, keepDims: true)
            return (c * (c.square().mean(alongAxes: axes, keepDims: true) + 1e-5).rsqrt()).reshaped(t.shape)
        }
        func logSoftmax(_ t: Tensor, axis: Int = -1) -> Tensor {
            let c = t - t.max(axis: axis, keepDims: true).detached()
            return c - c.exp().sum(axis: axis, keepDims: true).log()
        }
        func softmax(_ t: Tensor, axis: Int = -1) -> Tensor { logSoftmax(t, axis: axis).exp() }

        let g = Generator(seed: 7)
        let x = Tensor.randomNormal([4, 6], generator: g)
        let target = Tensor.randomNormal([4, 5], generator: g)
        let w = Tensor.randomNormal([5, 6], std: 0.5, generator: g)
        let gamma = Tensor.randomNormal([5], std: 0.3, generator: g) + 1, beta = Tensor.randomNormal([5], std: 0.3, generator: g)
        var onehot = [Float](repeating: 0.02, count: 20)
        for (i, l) in [0, 4, 2, 1].enumerated() { onehot[i * 5 + l] += 0.9 }
        let smoothed = Tensor(onehot, shape: [4, 5])
        checkHessianVectorProduct([w, gamma, beta], "softmax + layerNorm", seed: 8, loss: { p in
            let h = layerNorm(linear(x, weight: p[0]), weight: p[1], bias: p[2])
            return (h.softmax() * target).sum() + (h.softmax(axis: 0) * target).sum() * 0.5
                + crossEntropy(logits: h * 2, labels: [0, 4, 2, 1], labelSmoothing: 0.1)
        }, reference: { p in
            let h = normalized(linear(x, weight: p[0]), view: [4, 5], axes: [1]) * p[1] + p[2]
            return (softmax(h) * target).sum() + (softmax(h, axis: 0) * target).sum() * 0.5
                - (logSoftmax(h * 2) * smoothed).sum() / 4
        })

        let maps = Tensor.randomNormal([2, 3, 2, 4], generator: g)
        let t6 = Tensor.randomNormal([2, 3, 2, 6], generator: g)
        let w2 = Tensor.randomNormal([6, 4], std: 0.5, generator: g)
        let gamma6 = Tensor.randomNormal([6], std: 0.3, generator: g) + 1, beta6 = Tensor.randomNormal([6], std: 0.3, generator: g)
        let soft = t6.reshaped([12, 6]).softmax()
        checkHessianVectorProduct([w2, gamma6, beta6], "batchNormTraining + groupNorm", seed: 9, loss: { p in
            let h = linear(maps, weight: p[0])
            let bn = batchNormTraining(h, weight: p[1], bias: p[2])
            let gn = groupNorm(h, groups: 3, weight: p[1], bias: p[2])
            return (bn.output.tanh() * t6).sum() + (gn.sigmoid() * t6).sum() + bn.unbiasedVariance.sum() * 0.1
                + crossEntropy(logits: gn.reshaped([12, 6]), softTargets: soft)
        }, reference: { p in
            let h = linear(maps, weight: p[0])
            let bn = normalized(h, view: [12, 6], axes: [0]) * p[1] + p[2]
            let gn = normalized(h, view: [2, 6, 3, 2], axes: [1, 3]) * p[1] + p[2]
            return (bn.tanh() * t6).sum() + (gn.sigmoid() * t6).sum() + h.variance(alongAxes: [0, 1, 2], correction: 1).sum() * 0.1
                - (logSoftmax(gn.reshaped([12, 6])) * soft).sum() / 12
        })
    }

    func testDropoutMaskFollowsTheDocumentedRule() {
        let p: Float = 0.25, scale = 1 / (1 - p)
        let x = Tensor.randomNormal([7, 33], generator: Generator(seed: 10))
        for input in [x, x.transposed()] {  // row-major order of the shape, whatever the strides
            let y = dropout(input, probability: p, generator: Generator(seed: 11), training: true).scalars
            let u = Generator(seed: 11)
            let values = input.scalars
            for i in 0..<values.count {
                XCTAssertEqual(y[i], u.nextUniform() >= p ? values[i] * scale : 0, "element \(i)")
            }
        }
        // Same seed, same mask; another seed, another mask.
        XCTAssertEqual(dropout(x, probability: p, generator: Generator(seed: 12), training: true).scalars,
                       dropout(x, probability: p, generator: Generator(seed: 12), training: true).scalars)
        XCTAssertNotEqual(dropout(x, probability: p, generator: Generator(seed: 12), training: true).scalars,
                          dropout(x, probability: p, generator: Generator(seed: 13), training: true).scalars)
        // Identity when not training or p = 0, without drawing numbers.
        for (probability, training) in [(p, false), (Float(0), true)] {
            let gen = Generator(seed: 14)
            XCTAssertEqual(dropout(x, probability: probability, generator: gen, training: training).scalars, x.scalars)
            XCTAssertEqual(gen.next(), Generator(seed: 14).next())
        }
    }

    func testDropoutStatisticsAndGradientMask() {
        let ones = Tensor.ones([200_000])
        let y = dropout(ones, probability: 0.3, generator: Generator(seed: 15), training: true)
        let dropped = y.equal(0).mean().item()
        XCTAssertEqual(dropped, 0.3, accuracy: 0.005)
        XCTAssertEqual(y.mean().item(), 1, accuracy: 0.01, "inverted dropout keeps the expectation")
        XCTAssertEqual(y.max().item(), 1 / 0.7, accuracy: 1e-6)
        // The gradient flows through exactly the forward mask.
        let x = Tensor.randomNormal([5, 40], generator: Generator(seed: 16)).requiringGrad()
        let w = Tensor.randomNormal([5, 40], generator: Generator(seed: 17))
        let out = dropout(x, probability: 0.5, generator: Generator(seed: 18), training: true)
        (out * w).sum().backward()
        let kept = out.detached().notEqual(Tensor(0))
        assertClose(x.grad!, w * kept * 2, atol: 0, rtol: 0, "dropout gradient")
        checkGradients([x.detached()], "dropout") { dropout($0[0], probability: 0.4, generator: Generator(seed: 19), training: true) }
    }

    func testArgumentMistakesStopWithAClearMessage() {
        let logits = Tensor.zeros([3, 5])
        assertStops(containing: ["crossEntropy", "label 7", "[3, 5]"]) { _ = crossEntropy(logits: logits, labels: [0, 7, 1]) }
        assertStops(containing: ["crossEntropy", "2 labels", "[3, 5]"]) { _ = crossEntropy(logits: logits, labels: [0, 1]) }
        assertStops(containing: ["dropout", "probability 1.0", "[0, 1)"]) {
            _ = dropout(logits, probability: 1, generator: Generator(seed: 0), training: true)
        }
        assertStops(containing: ["groupNorm", "groups 4", "[2, 3, 6]"]) { _ = groupNorm(Tensor.zeros([2, 3, 6]), groups: 4) }
        assertStops(containing: ["layerNorm", "weight", "[5]", "[2, 4]"]) {
            _ = layerNorm(Tensor.zeros([2, 4]), weight: Tensor.ones([5]))
        }
        assertStops(containing: ["batchNormTraining", "more than 1 value", "[1, 4]"]) {
            _ = batchNormTraining(Tensor.zeros([1, 4]))
        }
    }
}
