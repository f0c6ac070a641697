import XCTest
import Patchwork

final class CoreOpsTests: XCTestCase {
    func testCoreOpsMatchPyTorch() {
        let unary: [String: (Tensor) -> Tensor] = [
            "neg": { -$0 }, "abs": { $0.abs() }, "exp": { $0.exp() }, "log": { $0.log() },
            "sqrt": { $0.sqrt() }, "rsqrt": { $0.rsqrt() }, "tanh": { $0.tanh() }, "sigmoid": { $0.sigmoid() },
            "relu": { $0.relu() }, "gelu": { $0.gelu() }, "gelu_tanh": { $0.geluTanh() }, "silu": { $0.silu() },
            "hardswish": { $0.hardswish() }, "hardsigmoid": { $0.hardsigmoid() }, "softplus": { $0.softplus() },
            "erf": { $0.erf() }, "square": { $0.square() },
        ]
        let binary: [String: (Tensor, Tensor) -> Tensor] = [
            "add": (+), "sub": (-), "mul": (*), "div": (/),
            "maximum": { $0.maximum($1) }, "minimum": { $0.minimum($1) }, "pow": { $0.pow($1) },
        ]
        var ops: [String: (OpCase, [Tensor]) -> [Tensor]] = [:]
        for (name, f) in unary { ops[name] = { _, x in [f(x[0])] } }
        for (name, f) in binary { ops[name] = { _, x in [f(x[0], x[1])] } }
        ops["sum"] = { c, x in [x[0].sum(alongAxes: c.ints("axes"), keepDims: c.bool("keepDims"))] }
        ops["mean"] = { c, x in [x[0].mean(alongAxes: c.ints("axes"), keepDims: c.bool("keepDims"))] }
        ops["max"] = { c, x in [x[0].max(alongAxes: c.ints("axes"), keepDims: c.bool("keepDims"))] }
        ops["min"] = { c, x in [x[0].min(alongAxes: c.ints("axes"), keepDims: c.bool("keepDims"))] }
        ops["variance"] = { c, x in [x[0].variance(alongAxes: c.ints("axes"), keepDims: c.bool("keepDims"), correction: c.int("correction"))] }
        ops["argmax"] = { c, x in [x[0].argmax(axis: c.int("axis"))] }
        ops["matmul"] = { _, x in [matmul(x[0], x[1])] }
        ops["linear"] = { _, x in [linear(x[0], weight: x[1], bias: x.count > 2 ? x[2] : nil)] }
        checkReferenceCases("core", atol: 2e-5, rtol: 1e-4, ops: ops)
    }

    func testUnaryGradients() {
        // Points away from the kinks of abs/relu/hardswish/hardsigmoid (0, ±3).
        let x = Tensor([-3.7, -2.1, -0.9, -0.35, 0.25, 0.8, 1.6, 2.4, 3.6, 5.0], shape: [2, 5])
        let positive = x.abs() + 0.2
        let fs: [(String, (Tensor) -> Tensor)] = [
            ("neg", { -$0 }), ("abs", { $0.abs() }), ("exp", { $0.exp() }), ("tanh", { $0.tanh() }),
            ("sigmoid", { $0.sigmoid() }), ("relu", { $0.relu() }), ("gelu", { $0.gelu() }),
            ("gelu_tanh", { $0.geluTanh() }), ("silu", { $0.silu() }), ("hardswish", { $0.hardswish() }),
            ("hardsigmoid", { $0.hardsigmoid() }), ("softplus", { $0.softplus() }), ("erf", { $0.erf() }),
            ("square", { $0.square() }),
        ]
        for (name, f) in fs { checkGradients([x], name) { f($0[0]) } }
        for (name, f) in [("log", { (t: Tensor) in t.log() }), ("sqrt", { $0.sqrt() }), ("rsqrt", { $0.rsqrt() })] {
            checkGradients([positive], name) { f($0[0]) }
        }
    }

    func testActivationSecondDerivativesMatchFiniteDifferences() {
        // Each activation's pullback is one fused kernel with its own pullback (double backward):
        // d/dx of <∇ₓ Σ c·f(x), v> against central differences of the first gradient.
        let x = Tensor([-3.7, -2.1, -0.9, -0.35, 0.25, 0.8, 1.6, 2.4, 3.6, 5.0], shape: [2, 5])
        let c = Tensor.randomNormal([2, 5], generator: Generator(seed: 3))
        let v = Tensor.randomNormal([2, 5], generator: Generator(seed: 4))
        let fs: [(String, (Tensor) -> Tensor)] = [
            ("tanh", { $0.tanh() }), ("sigmoid", { $0.sigmoid() }), ("relu", { $0.relu() }), ("gelu", { $0.gelu() }),
            ("gelu_tanh", { $0.geluTanh() }), ("silu", { $0.silu() }), ("hardswish", { $0.hardswish() }),
        ]
        for (name, f) in fs {
            func gradient(_ at: Tensor) -> Tensor { valueAndGradient(at: [at]) { (f($0[0]) * c).sum() }.gradients[0] }
            let leaf = x.requiringGrad()
            let first = valueAndGradient(at: [leaf], createGraph: true) { (f($0[0]) * c).sum() }.gradients[0]
            assertClose(first, gradient(x), atol: 1e-6, rtol: 1e-6, "\(name): first derivative with and without the graph")
            (first * v).sum().backward()
            let eps: Float = 1e-2
            let numeric = (gradient(x + v * eps) - gradient(x - v * eps)) / (2 * eps)
            assertClose(leaf.grad!, numeric, atol: 2e-3, rtol: 2e-2, "\(name): second derivative")
        }
    }

    func testScaledSoftmaxEqualsSoftmaxOfTheScaledInput() {
        let x = Tensor.randomNormal([3, 7, 19], std: 3, generator: Generator(seed: 5))
        let w = Tensor.randomNormal([3, 7, 19], generator: Generator(seed: 6))
        let scale: Float = 0.125
        assertClose(x.softmax(scale: scale), (x * scale).softmax(axis: -1), atol: 1e-7, rtol: 1e-6, "values")
        let fused = valueAndGradient(at: [x]) { (($0[0].softmax(scale: scale)) * w).sum() }.gradients[0]
        let composite = valueAndGradient(at: [x]) { ((($0[0] * scale).softmax(axis: -1)) * w).sum() }.gradients[0]
        assertClose(fused, composite, atol: 1e-7, rtol: 1e-5, "gradients")
        checkGradients([x * 0.3], "scaled softmax") { ($0[0].softmax(scale: scale) * w).sum() }
    }

    /// softmax(scale:adding:) against adding first: an addend repeated over the leading dimensions (the
    /// fused kernel, rows across threads, a length that is not a multiple of 16), one with leading 1s,
    /// one whose broadcast the kernel does not take (the composite path), and gradients of both inputs.
    func testSoftmaxAddingEqualsSoftmaxOfTheSum() {
        let x = Tensor.randomNormal([6, 4, 33, 49], std: 3, generator: Generator(seed: 7))
        let w = Tensor.randomNormal([6, 4, 33, 49], generator: Generator(seed: 8))
        let scale: Float = 0.2
        for (name, addend) in [("trailing", Tensor.randomNormal([4, 33, 49], generator: Generator(seed: 9))),
                               ("leading ones", Tensor.randomNormal([1, 1, 33, 49], generator: Generator(seed: 10))),
                               ("mask of -100s", Tensor.randomUniform([33, 49], generator: Generator(seed: 11)).greater(0.7) * -100),
                               ("other broadcast", Tensor.randomNormal([6, 1, 33, 49], generator: Generator(seed: 12)))] {
            let fused = x.softmax(scale: scale, adding: addend), composite = (x * scale + addend).softmax(axis: -1)
            assertClose(fused, composite, atol: 1e-6, rtol: 1e-5, "\(name): values")
            let gf = valueAndGradient(at: [x, addend]) { ($0[0].softmax(scale: scale, adding: $0[1]) * w).sum() }.gradients
            let gc = valueAndGradient(at: [x, addend]) { (($0[0] * scale + $0[1]).softmax(axis: -1) * w).sum() }.gradients
            assertClose(gf[0], gc[0], atol: 1e-6, rtol: 1e-4, "\(name): gradient of x")
            assertClose(gf[1], gc[1], atol: 1e-5, rtol: 1e-4, "\(name): gradient of the addend")
        }
        let small = Tensor.randomNormal([2, 3, 5], generator: Generator(seed: 13)), bias = Tensor.randomNormal([3, 5], generator: Generator(seed: 14))
        checkGradients([small, bias], "softmax adding") { ($0[0].softmax(scale: 0.5, adding: $0[1]) * small).sum() }
    }

    func testBinaryGradientsWithBroadcasting() {
        let a = Tensor.randomNormal([2, 3, 4], generator: Generator(seed: 1))
        let b = Tensor.randomNormal([3, 1], generator: Generator(seed: 2)) + 3
        checkGradients([a, b], "add") { $0[0] + $0[1] }
        checkGradients([a, b], "sub") { $0[0] - $0[1] }
        checkGradients([a, b], "mul") { $0[0] * $0[1] }
        checkGradients([a, b], "div") { $0[0] / $0[1] }
        // Thresholds at least 0.05 away from every element of a, so ±eps never crosses a tie.
        let t = Tensor([0.13, -0.42, 0.77], shape: [3, 1])
        let spread = Tensor(Array(stride(from: Float(-1.2), to: 1.15, by: 0.1)).reversed(), shape: [2, 3, 4])
        XCTAssertGreaterThan((spread - t).abs().min().item(), 0.02)
        checkGradients([spread, t], "maximum") { $0[0].maximum($0[1]) }
        checkGradients([spread, t], "minimum") { $0[0].minimum($0[1]) }
        checkGradients([a.abs() + 0.5, b.sqrt() - 1], "pow") { $0[0].pow($0[1]) }
        let cond = a.greater(0)
        checkGradients([a, b], "where") { Tensor.where(cond, $0[0], $0[1]) }
    }

    func testReductionGradients() {
        // Distinct values 0.05 apart in shuffled order: no ties for max/min within ±eps.
        var values = (0..<120).map { Float($0) * 0.05 - 3 }
        var rng = Generator(seed: 3)
        values.shuffle(using: &rng)
        let x = Tensor(values, shape: [2, 3, 4, 5])
        for axes in [[0], [1, 3], [0, 1, 2, 3], [2, 3], [0, 2]] {
            checkGradients([x], "sum \(axes)") { $0[0].sum(alongAxes: axes) }
            checkGradients([x], "mean \(axes)") { $0[0].mean(alongAxes: axes, keepDims: true) }
            checkGradients([x], "max \(axes)") { $0[0].max(alongAxes: axes) }
            checkGradients([x], "min \(axes)") { $0[0].min(alongAxes: axes, keepDims: true) }
            checkGradients([x], "variance \(axes)") { $0[0].variance(alongAxes: axes, correction: 1) }
        }
    }

    func testMatmulAndLinearGradients() {
        let g = Generator(seed: 4)
        let a = Tensor.randomNormal([2, 3, 4], generator: g), b = Tensor.randomNormal([4, 5], generator: g)
        checkGradients([a, b], "matmul broadcast") { matmul($0[0], $0[1]) }
        let c = Tensor.randomNormal([2, 5, 4], generator: g)
        checkGradients([a, c], "matmul transposed operand") { matmul($0[0], $0[1].transposed()) }
        let w = Tensor.randomNormal([6, 4], generator: g), bias = Tensor.randomNormal([6], generator: g)
        checkGradients([a, w, bias], "linear") { linear($0[0], weight: $0[1], bias: $0[2]) }
        checkGradients([a, w], "linear without bias") { linear($0[0], weight: $0[1]) }
        // The weight's gradient comes in the weight's layout, with or without a bias: a transposed view
        // would make every optimizer step gather it into a copy.
        for b in [bias, nil] {
            let weight = w.requiringGrad()
            linear(a, weight: weight, bias: b).sum().backward()
            XCTAssertTrue(weight.grad!.isContiguous, "bias \(b == nil ? "none" : "given"): strides \(weight.grad!.strides)")
        }
        let v = Tensor.randomNormal([4], generator: g)
        checkGradients([a, v], "matmul vector") { matmul($0[0], $0[1]) }
    }

    /// The attention output's product, written with its heads merged, equals the product permuted
    /// and reshaped; both in small batches (one GEMM per thread) and in large ones, and with a
    /// strided (transposed) operand.
    func testMatmulMergingHeadsEqualsThePermutedProduct() {
        let g = Generator(seed: 5)
        for (shape, n) in [([2, 3, 5, 7], 4), ([1, 2, 130, 140], 150)] {
            let (b, h, m, k) = (shape[0], shape[1], shape[2], shape[3])
            let p = Tensor.randomNormal(shape, generator: g)
            let v = Tensor.randomNormal([b, h, n, k], generator: g).transposed()
            let merged = matmulMergingHeads(p, v)
            let reference = matmul(p, v).permuted([0, 2, 1, 3]).reshaped([b, m, h * n])
            assertClose(merged, reference, atol: 0, rtol: 0, "values \(shape)")
            let w = Tensor.randomNormal([b, m, h * n], generator: g)
            let gm = valueAndGradient(at: [p, v]) { (matmulMergingHeads($0[0], $0[1]) * w).sum() }.gradients
            let gr = valueAndGradient(at: [p, v]) { (matmul($0[0], $0[1]).permuted([0, 2, 1, 3]).reshaped([b, m, h * n]) * w).sum() }.gradients
            assertClose(gm[0], gr[0], atol: 0, rtol: 0, "gradient of the probabilities \(shape)")
            assertClose(gm[1], gr[1], atol: 0, rtol: 0, "gradient of the values \(shape)")
        }
        checkGradients([Tensor.randomNormal([2, 2, 3, 4], generator: g), Tensor.randomNormal([2, 2, 4, 5], generator: g)],
                       "matmulMergingHeads") { matmulMergingHeads($0[0], $0[1]) }
    }

    func testViewsShareStorageAndDifferentiate() {
        let x = Tensor((0..<24).map(Float.init), shape: [2, 3, 4])
        let p = x.permuted([2, 0, 1])
        XCTAssertTrue(p.storage === x.storage)
        XCTAssertEqual(p.shape, [4, 2, 3])
        XCTAssertEqual(p[1, 1, 2], x[1, 2, 1])
        let s = x.sliced(axis: 2, start: 1, end: 4, step: 2)
        XCTAssertTrue(s.storage === x.storage)
        XCTAssertEqual(s.scalars, [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23])
        let e = Tensor([1, 2, 3], shape: [3, 1]).expanded(to: [2, 3, 4])
        XCTAssertEqual(e.strides, [0, 1, 0])
        XCTAssertEqual(e[1, 2, 3], 3)
        let r = x.reshaped([6, 4])
        XCTAssertTrue(r.storage === x.storage)
        // A transposed tensor cannot be reshaped in place: a copy with the right order.
        let t = x.transposed(1, 2).reshaped([2, 12])
        XCTAssertEqual(Array(t.scalars.prefix(4)), [0, 4, 8, 1])
        XCTAssertEqual(x.selecting(axis: 1, index: -1).scalars, [8, 9, 10, 11, 20, 21, 22, 23])
        XCTAssertEqual(x.flattened(from: 1).shape, [2, 12])
        XCTAssertEqual(x.unsqueezed(axis: -1).shape, [2, 3, 4, 1])
        XCTAssertEqual(x.unsqueezed(axis: 0).squeezed().shape, [2, 3, 4])
        XCTAssertTrue(x.permuted([0, 2, 1]).contiguous().isContiguous)
        let y = Tensor.randomNormal([2, 3, 4], generator: Generator(seed: 5))
        checkGradients([y], "permute+reshape") { $0[0].permuted([2, 0, 1]).reshaped([4, 6]) * Tensor.arange(6) }
        checkGradients([y], "slice") { $0[0].sliced(axis: 2, start: 1, end: 4, step: 2) }
        checkGradients([y], "select") { $0[0].selecting(axis: 1, index: 2) }
        checkGradients([Tensor.randomNormal([3, 1], generator: Generator(seed: 6))], "expand") { $0[0].expanded(to: [2, 3, 4]) }
        checkGradients([y], "non-contiguous reshape") { $0[0].transposed(0, 2).reshaped([4, 6]).contiguous() }
    }

    func testHessianVectorProductMatchesFiniteDifferenceOfGradients() {
        // A two-layer network; H·v from double backward vs (∇L(w+εv) − ∇L(w−εv)) / 2ε.
        let g = Generator(seed: 7)
        let x = Tensor.randomNormal([5, 4], generator: g)
        let target = Tensor.randomNormal([5, 2], generator: g)
        let w1 = Tensor.randomNormal([6, 4], std: 0.5, generator: g)
        let w2 = Tensor.randomNormal([2, 6], std: 0.5, generator: g)
        let v1 = Tensor.randomNormal([6, 4], generator: g), v2 = Tensor.randomNormal([2, 6], generator: g)
        func loss(_ w: [Tensor]) -> Tensor {
            let h = linear(x, weight: w[0]).tanh()
            let h2 = linear(h, weight: w[1]).gelu()
            return (h2 - target).square().mean() + h.sigmoid().mean()
        }
        func grads(_ w: [Tensor]) -> [Tensor] { valueAndGradient(at: w) { loss($0) }.gradients }
        // Exact: differentiate <∇L(w), v> once more.
        let leaves = [w1.requiringGrad(), w2.requiringGrad()]
        let first = valueAndGradient(at: leaves, createGraph: true) { loss($0) }.gradients
        let gv = (first[0] * v1).sum() + (first[1] * v2).sum()
        gv.backward()
        let hv = [leaves[0].grad!, leaves[1].grad!]
        let eps: Float = 1e-2
        let plus = grads([w1 + v1 * eps, w2 + v2 * eps]), minus = grads([w1 - v1 * eps, w2 - v2 * eps])
        for k in 0..<2 {
            let numeric = (plus[k] - minus[k]) / (2 * eps)
            assertClose(hv[k], numeric, atol: 2e-3, rtol: 2e-2, "Hessian-vector product, parameter \(k)")
        }
        XCTAssertGreaterThan(hv[0].abs().max().item(), 1e-3, "H·v must not be trivially zero")
    }

    func testBackwardAccumulatesIntoLeavesAndNoGradScopes() {
        let w = Tensor([1, 2, 3]).requiringGrad()
        (w * w).sum().backward()
        (w * 3).sum().backward()
        XCTAssertEqual(w.grad!.scalars, [5, 7, 9])
        w.zeroGrad()
        XCTAssertNil(w.grad)
        let y = withoutGrad { w * 2 }
        XCTAssertNil(y.node, "ops inside withoutGrad record nothing")
        XCTAssertNotNil((w * 2).node)
        XCTAssertNil((w * 2).detached().node)
    }

    func testGeneratorIsTheDocumentedAlgorithm() {
        // xoshiro256** seeded by SplitMix64(42); values from an independent Python implementation.
        let g = Generator(seed: 42)
        XCTAssertEqual([g.next(), g.next(), g.next()], [0x1578_0B2E_0C2E_C716, 0x6104_D986_6D11_3A7E, 0xAE17_5332_39E4_99A1])
        XCTAssertEqual(g.nextUniform(), 0.9246929287910461)
        XCTAssertEqual(g.nextUniform(), 0.9918038845062256)
        // Same seed, same tensor; statistics of a large draw.
        XCTAssertEqual(Tensor.randomNormal([8], generator: Generator(seed: 3)).scalars,
                       Tensor.randomNormal([8], generator: Generator(seed: 3)).scalars)
        let n = Tensor.randomNormal([100_000], mean: 1, std: 2, generator: Generator(seed: 4))
        XCTAssertEqual(n.mean().item(), 1, accuracy: 0.03)
        XCTAssertEqual(n.variance(alongAxes: [0]).item().squareRoot(), 2, accuracy: 0.03)
        let t = Tensor.randomTruncatedNormal([100_000], std: 1, lower: -1, upper: 0.5, generator: Generator(seed: 5))
        XCTAssertGreaterThanOrEqual(t.min().item(), -1)
        XCTAssertLessThanOrEqual(t.max().item(), 0.5)
        let u = Tensor.randomUniform([100_000], low: -2, high: 3, generator: Generator(seed: 6))
        XCTAssertGreaterThanOrEqual(u.min().item(), -2)
        XCTAssertLessThan(u.max().item(), 3)
        XCTAssertEqual(u.mean().item(), 0.5, accuracy: 0.03)
    }

    func testCreation() {
        XCTAssertEqual(Tensor.arange(1, 2, step: 0.25).scalars, [1, 1.25, 1.5, 1.75])
        XCTAssertEqual(Tensor.eye(3).scalars, [1, 0, 0, 0, 1, 0, 0, 0, 1])
        XCTAssertEqual(Tensor.full([2, 2], 7).scalars, [7, 7, 7, 7])
        XCTAssertEqual(Tensor.zeros([3]).scalars, [0, 0, 0])
        XCTAssertEqual(Tensor.ones([2]).scalars, [1, 1])
    }

    func testBufferPoolReusesMemoryInSteadyState() {
        let x = Tensor.randomNormal([64, 128], generator: Generator(seed: 8))
        let w = Tensor.randomNormal([32, 128], generator: Generator(seed: 9)).requiringGrad()
        func step() { linear(x, weight: w).gelu().sum().backward(); w.zeroGrad() }
        step(); step()
        let before = BufferPool.shared.allocations
        for _ in 0..<5 { step() }
        XCTAssertEqual(BufferPool.shared.allocations, before, "a repeated training step must not allocate new buffers")
    }

    func testShapeMistakesStopWithAClearMessage() {
        assertStops(containing: ["matmul", "[2, 3]", "[4, 5]"]) { _ = matmul(Tensor.zeros([2, 3]), Tensor.zeros([4, 5])) }
        assertStops(containing: ["add", "[2, 3]", "[4]"]) { _ = Tensor.zeros([2, 3]) + Tensor.zeros([4]) }
        assertStops(containing: ["sum", "axis 3", "[2, 3]"]) { _ = Tensor.zeros([2, 3]).sum(alongAxes: [3]) }
        assertStops(containing: ["reshape", "[2, 3]", "[4, 2]"]) { _ = Tensor.zeros([2, 3]).reshaped([4, 2]) }
        assertStops(containing: ["linear", "[5, 7]", "[3, 4]"]) { _ = linear(Tensor.zeros([5, 7]), weight: Tensor.zeros([3, 4])) }
        assertStops(containing: ["permute", "[0, 0]"]) { _ = Tensor.zeros([2, 3]).permuted([0, 0]) }
        assertStops(containing: ["matmul", "merging heads", "[2, 3, 4, 5]", "[2, 2, 5, 6]"]) {
            _ = matmulMergingHeads(Tensor.zeros([2, 3, 4, 5]), Tensor.zeros([2, 2, 5, 6]))
        }
        assertStops(containing: ["matmul", "merging heads", "[4, 5]"]) { _ = matmulMergingHeads(Tensor.zeros([4, 5]), Tensor.zeros([5, 6])) }
    }
}

extension CoreOpsTests {
    /// The README's ten-line example, verbatim, so it keeps compiling and training.
    func testReadmeExample() {
        let x = Tensor.randomNormal([8, 4])                        // a batch of 8 inputs
        let labels = [0, 1, 1, 0, 1, 0, 0, 1]
        var w1 = Tensor.randomNormal([16, 4], std: 0.5), w2 = Tensor.randomNormal([2, 16], std: 0.5)
        let (loss, grads) = valueAndGradient(at: [w1, w2]) { w in
            crossEntropy(logits: linear(linear(x, weight: w[0]).gelu(), weight: w[1]), labels: labels)
        }
        w1 = w1 - 0.1 * grads[0]; w2 = w2 - 0.1 * grads[1]         // one SGD step
        print("loss", loss.item())
        let after = crossEntropy(logits: linear(linear(x, weight: w1).gelu(), weight: w2), labels: labels)
        XCTAssertLessThan(after.item(), loss.item(), "one SGD step lowers the loss")
    }
}
