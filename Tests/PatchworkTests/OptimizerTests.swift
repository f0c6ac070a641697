import Foundation
import XCTest
import Patchwork
import PatchworkNN

final class OptimizerTests: XCTestCase {
    // MARK: Against PyTorch (Fixtures/ops/optim.json, scripts/reference/optim.py)

    /// Three steps on the reference's tiny Linear; returns (W, b) after each step and the losses.
    private func trajectory(_ c: OpCase, _ x: [Tensor]) -> [Tensor] {
        let optimizer: Optimizer
        if c.op == "sgd" {
            optimizer = SGD(learningRate: c.float("lr"), momentum: c.float("momentum"), nesterov: c.bool("nesterov"),
                            weightDecay: c.float("weight_decay"))
        } else {
            optimizer = AdamW(learningRate: c.float("lr"), betas: (c.float("beta1"), c.float("beta2")), eps: c.float("eps"),
                              weightDecay: c.float("weight_decay"))
        }
        let model = Linear(3, 2)
        try! model.update(parameters: ["weight": x[0], "bias": x[1]])
        var outputs: [Tensor] = [], losses: [Float] = []
        for _ in 0..<3 {
            let (loss, grads) = valueAndGrad(model) { (model(x[2]) - x[3]).square().mean() * c.float("loss_scale") }
            optimizer.step(model, gradients: grads)
            outputs += [model.weight, model.bias!]
            losses.append(loss.item())
        }
        return outputs + [Tensor(losses)]
    }

    func testTrajectoriesAndClippingMatchPyTorch() {
        var ops: [String: (OpCase, [Tensor]) -> [Tensor]] = [:]
        ops["sgd"] = trajectory
        ops["adamw"] = trajectory
        ops["clip_grad_norm"] = { c, x in
            var grads: [String: Tensor] = [:]
            for (i, g) in x.enumerated() { grads["g\(i)"] = g }
            let total = clipGradientNorm(&grads, maxNorm: c.float("max_norm"))
            return (0..<x.count).map { grads["g\($0)"]! } + [Tensor([total])]
        }
        checkReferenceCases("optim", atol: 1e-6, rtol: 1e-5, ops: ops)
        XCTAssertEqual(Set(loadOpCases("optim").map(\.name)).count, 12)
    }

    // MARK: Which parameters get weight decay

    final class Attention: Module, NoWeightDecay {
        @Parameter(key: "relative_position_bias_table") var table = Tensor.ones([5, 2])
        @Parameter(key: "qkv") var qkv = Tensor.ones([6, 2])
        var noWeightDecayKeys: Set<String> { ["relative_position_bias_table"] }
    }

    final class Block: Module {
        @Child(key: "attn") var attn = Attention()
        @Child(key: "norm") var norm = LayerNorm(2)
    }

    final class Net: Module, NoWeightDecay {
        @Parameter(key: "pos_embed") var posEmbed = Tensor.ones([1, 4, 2])
        @Parameter(key: "cls_token") var clsToken = Tensor.ones([1, 1, 2])
        /// Ends with "pos_embed" but not after a dot: decayed.
        @Parameter(key: "my_pos_embed") var myPosEmbed = Tensor.ones([3, 2])
        @Child(key: "blocks") var blocks = [Block(), Block()]
        @Child(key: "head") var head = Linear(2, 3)
        var noWeightDecayKeys: Set<String> { ["pos_embed", "cls_token"] }
    }

    private func constantGradients(_ model: Module, _ value: Float) -> [String: Tensor] {
        Dictionary(uniqueKeysWithValues: model.trainableParameters().map { ($0.0, Tensor.full($0.1.shape, value)) })
    }

    func testNoWeightDecayRules() {
        let net = Net()
        let expected: Set<String> = [
            "pos_embed", "cls_token", "head.bias",
            "blocks.0.attn.relative_position_bias_table", "blocks.1.attn.relative_position_bias_table",
            "blocks.0.norm.weight", "blocks.0.norm.bias", "blocks.1.norm.weight", "blocks.1.norm.bias",
        ]
        XCTAssertEqual(parametersWithoutWeightDecay(net), expected)

        // With zero gradients, AdamW's Adam part is exactly zero: only the decay moves parameters.
        let lr: Float = 0.1, wd: Float = 0.5
        let before = Dictionary(uniqueKeysWithValues: net.parameters())
        AdamW(learningRate: lr, weightDecay: wd).step(net, gradients: constantGradients(net, 0))
        let factor = Float(1 - Double(lr) * Double(wd))
        for (key, value) in net.parameters() {
            let want = expected.contains(key) ? before[key]! : before[key]! * factor
            XCTAssertEqual(value.scalars, want.scalars, "AdamW decay of \(key)")
        }
        // SGD: p - lr·wd·p on decayed parameters only.
        let net2 = Net()
        let before2 = Dictionary(uniqueKeysWithValues: net2.parameters())
        SGD(learningRate: lr, momentum: 0.9, weightDecay: wd).step(net2, gradients: constantGradients(net2, 0))
        for (key, value) in net2.parameters() {
            let p = before2[key]!.scalars
            let want = expected.contains(key) ? p : p.map { $0 + (-lr) * (wd * $0) }
            XCTAssertEqual(value.scalars, want, "SGD decay of \(key)")
        }
    }

    func testFrozenParametersAreSkipped() {
        let net = Net()
        net.head.freeze()
        let head = net.head.weight
        let grads = constantGradients(Net(), 1)  // includes head.* although frozen
        let adam = AdamW(learningRate: 0.1)
        adam.step(net, gradients: grads)
        XCTAssertEqual(net.head.weight.scalars, head.scalars)
        XCTAssertNotEqual(net.posEmbed.scalars, Tensor.ones([1, 4, 2]).scalars)
        XCTAssertNil(adam.stateDict()["head.weight.exp_avg"])
        XCTAssertNotNil(adam.stateDict()["pos_embed.exp_avg"])
        let before = Linear(2, 3, generator: Generator(seed: 5))
        let frozen = Linear(2, 3, generator: Generator(seed: 5))
        frozen.freeze()
        SGD(learningRate: 1).step(frozen, gradients: constantGradients(before, 1))
        XCTAssertEqual(frozen.weight.scalars, before.weight.scalars)
    }

    func testUnknownGradientKeyStops() {
        assertStops(containing: ["AdamW.step", "no_such_param"]) {
            let net = Net()
            AdamW(learningRate: 0.1).step(net, gradients: ["no_such_param": Tensor.ones([2])])
        }
        assertStops(containing: ["SGD.step", "head.weight", "[3, 2]", "[2, 2]"]) {
            let net = Net()
            SGD(learningRate: 0.1).step(net, gradients: ["head.weight": Tensor.ones([2, 2])])
        }
    }

    // MARK: State

    /// A small regression problem for state tests.
    private func lossAndGrads(_ model: Linear, step: Int) -> [String: Tensor] {
        let g = Generator(seed: UInt64(100 + step))
        let x = Tensor.randomNormal([8, 4], generator: g), y = Tensor.randomNormal([8, 3], generator: g)
        return valueAndGrad(model) { (model(x) - y).square().mean() }.gradients
    }

    private func checkResume(_ make: () -> Optimizer, _ name: String) throws {
        let model = Linear(4, 3, generator: Generator(seed: 1))
        let opt = make()
        for s in 0..<2 { opt.step(model, gradients: lossAndGrads(model, step: s)) }
        let savedParams = model.stateDict(), savedState = opt.stateDict()
        for s in 2..<4 { opt.step(model, gradients: lossAndGrads(model, step: s)) }

        let resumed = Linear(4, 3, generator: Generator(seed: 99))
        try resumed.loadStateDict(savedParams)
        let opt2 = make()
        if let sgd = opt2 as? SGD { try sgd.loadStateDict(savedState, for: resumed) }
        if let adam = opt2 as? AdamW { try adam.loadStateDict(savedState, for: resumed) }
        for s in 2..<4 { opt2.step(resumed, gradients: lossAndGrads(resumed, step: s)) }
        XCTAssertEqual(resumed.weight.scalars, model.weight.scalars, "\(name): resumed weight")
        XCTAssertEqual(resumed.bias!.scalars, model.bias!.scalars, "\(name): resumed bias")
        XCTAssertEqual(Set(opt2.stateDict().keys), Set(opt.stateDict().keys), name)
        XCTAssertEqual(opt2.stateDict()["step"]!.item(), 4, name)
    }

    func testStateSaveRestoreContinuesIdentically() throws {
        try checkResume({ AdamW(learningRate: 0.01, weightDecay: 0.1) }, "AdamW")
        try checkResume({ SGD(learningRate: 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-3) }, "SGD")
        let adam = AdamW(learningRate: 0.01)
        let model = Linear(4, 3)
        adam.step(model, gradients: lossAndGrads(model, step: 0))
        XCTAssertEqual(Set(adam.stateDict().keys), ["step", "weight.exp_avg", "weight.exp_avg_sq", "bias.exp_avg", "bias.exp_avg_sq"])
        let sgd = SGD(learningRate: 0.1, momentum: 0.5)
        sgd.step(model, gradients: lossAndGrads(model, step: 0))
        XCTAssertEqual(Set(sgd.stateDict().keys), ["step", "weight.momentum_buffer", "bias.momentum_buffer"])
        // Plain SGD keeps no buffers.
        let plain = SGD(learningRate: 0.1)
        plain.step(model, gradients: lossAndGrads(model, step: 0))
        XCTAssertEqual(Set(plain.stateDict().keys), ["step"])
    }

    private func message(_ body: () throws -> Void) -> String {
        do { try body(); return "" } catch { return "\(error)" }
    }

    func testStateErrorsAreClear() {
        let model = Linear(4, 3)
        let adam = AdamW(learningRate: 0.01)
        adam.step(model, gradients: lossAndGrads(model, step: 0))
        var state = adam.stateDict()

        var m = message { try AdamW(learningRate: 0.01).loadStateDict(state.filter { $0.key != "step" }) }
        XCTAssertTrue(m.contains("missing \"step\""), m)
        m = message { try AdamW(learningRate: 0.01).loadStateDict(state.filter { $0.key != "bias.exp_avg_sq" }) }
        XCTAssertTrue(m.contains("bias.exp_avg without bias.exp_avg_sq"), m)
        m = message { try AdamW(learningRate: 0.01).loadStateDict(state.merging(["weight.momentum": Tensor(0)]) { a, _ in a }) }
        XCTAssertTrue(m.contains("unknown key weight.momentum"), m)
        m = message { try SGD(learningRate: 0.1).loadStateDict(["step": Tensor(1), "weight.momentum_buffer": Tensor.zeros([3, 4])]) }
        XCTAssertTrue(m.contains("momentum 0"), m)

        // Against the model: wrong shapes, unknown parameters, missing parameters.
        state["weight.exp_avg"] = Tensor.zeros([4, 3])
        state["weight.exp_avg_sq"] = Tensor.zeros([4, 3])
        m = message { try AdamW(learningRate: 0.01).loadStateDict(state, for: model) }
        XCTAssertTrue(m.contains("weight.exp_avg has shape [4, 3], parameter weight has shape [3, 4]"), m)
        m = message { try AdamW(learningRate: 0.01).loadStateDict(adam.stateDict(), for: Linear(4, 3, bias: false)) }
        XCTAssertTrue(m.contains("bias.exp_avg: no trainable parameter bias"), m)
        m = message { try AdamW(learningRate: 0.01).loadStateDict(adam.stateDict().filter { !$0.key.hasPrefix("bias") }, for: model) }
        XCTAssertTrue(m.contains("no state for 1 parameters: bias"), m)
        XCTAssertEqual(message { try AdamW(learningRate: 0.01).loadStateDict(adam.stateDict(), for: model) }, "")

        // A loaded state whose shapes do not fit stops the step with the key named.
        assertStops(containing: ["AdamW.step", "exp_avg of weight", "[4, 3]"]) {
            let opt = AdamW(learningRate: 0.01)
            try! opt.loadStateDict(state)
            opt.step(model, gradients: self.lossAndGrads(model, step: 1))
        }
    }

    // MARK: Schedules and clipping

    func testSchedules() {
        let cosine = WarmupCosine(base: 0.1, warmupSteps: 10, totalSteps: 110, minimum: 0.001, warmupStart: 0.01)
        XCTAssertEqual(cosine.learningRate(step: 0), 0.01, accuracy: 1e-7)
        XCTAssertEqual(cosine.learningRate(step: 5), 0.055, accuracy: 1e-7)
        XCTAssertEqual(cosine.learningRate(step: 10), 0.1, accuracy: 1e-7)
        XCTAssertEqual(cosine.learningRate(step: 35), 0.001 + 0.099 * Float((1 + cos(Double.pi / 4)) / 2), accuracy: 1e-7)
        XCTAssertEqual(cosine.learningRate(step: 60), 0.0505, accuracy: 1e-7)
        XCTAssertEqual(cosine.learningRate(step: 110), 0.001, accuracy: 1e-7)
        XCTAssertEqual(cosine.learningRate(step: 500), 0.001, accuracy: 1e-7)
        let plain = WarmupCosine(base: 1, warmupSteps: 0, totalSteps: 4)
        XCTAssertEqual((0...4).map { plain.learningRate(step: $0) }, [1, 0.85355339, 0.5, 0.14644661, 0].map { Float($0) })
        // Monotone non-increasing after warmup.
        let values = (10...110).map { cosine.learningRate(step: $0) }
        XCTAssertTrue(zip(values, values.dropFirst()).allSatisfy { $0 >= $1 })

        let step = StepDecay(base: 0.1, stepSize: 30, gamma: 0.1, warmupSteps: 5)
        XCTAssertEqual(step.learningRate(step: 0), 0)
        XCTAssertEqual(step.learningRate(step: 2), 0.04, accuracy: 1e-8)
        XCTAssertEqual(step.learningRate(step: 5), 0.1, accuracy: 1e-8)
        XCTAssertEqual(step.learningRate(step: 29), 0.1, accuracy: 1e-8)
        XCTAssertEqual(step.learningRate(step: 30), 0.01, accuracy: 1e-9)
        XCTAssertEqual(step.learningRate(step: 65), 0.001, accuracy: 1e-10)
        XCTAssertEqual(StepDecay(base: 2, stepSize: 1, gamma: 0.5).learningRate(step: 3), 0.25)
    }

    func testClipGradientNorm() {
        var grads = ["a": Tensor([3, 0]), "b": Tensor([0, 4], shape: [1, 2])]
        let total = clipGradientNorm(&grads, maxNorm: 1)
        XCTAssertEqual(total, 5)
        let coefficient: Float = 1 / (5 + 1e-6)
        XCTAssertEqual(grads["a"]!.scalars, [3 * coefficient, 0])
        XCTAssertEqual(grads["b"]!.scalars, [0, 4 * coefficient])
        var small = ["a": Tensor([0.3, 0.4])]
        XCTAssertEqual(clipGradientNorm(&small, maxNorm: 1), 0.5, accuracy: 1e-7)
        XCTAssertEqual(small["a"]!.scalars, [0.3, 0.4])
    }
}
