import Foundation
import Patchwork

// SGD and AdamW, step for step as torch.optim.SGD and torch.optim.AdamW.
//
// Which parameters: every parameter slot of the model that is not frozen and
// has a gradient. Which get weight decay: parameters of rank ≥ 2 whose key is
// not named by a `NoWeightDecay` module (timm's param-group split: norm
// weights, biases, position embeddings, class tokens and relative-position
// tables get none). Updates are fused element-wise loops in Float32 that
// follow PyTorch's order of operations, writing a fresh tensor per step into
// `slot.value` (tensors never change after creation).

/// Problems with optimizer state being loaded: every problem at once.
public struct OptimizerStateError: Error, CustomStringConvertible {
    public var optimizer: String
    public var problems: [String]
    public var description: String {
        (["cannot load \(optimizer) state:"] + problems.map { "  " + $0 }).joined(separator: "\n")
    }
}

/// One parameter taking part in a step.
struct ParameterUpdate {
    let key: String
    let slot: TensorSlot
    let gradient: Tensor
    let decay: Bool
}

/// Parameter keys (exact or after a dot) named by `NoWeightDecay` modules in the tree, with their prefixes.
private func noDecayNames(_ model: Module) -> [String] {
    var names: [String] = []
    for (prefix, module) in model.namedModules() {
        guard let m = module as? NoWeightDecay else { continue }
        names += m.noWeightDecayKeys.map { prefix.isEmpty ? $0 : "\(prefix).\($0)" }
    }
    return names
}

private func isNamed(_ key: String, by names: [String]) -> Bool {
    names.contains { key == $0 || key.hasSuffix("." + $0) }
}

/// The keys of `model`'s trainable parameters that get no weight decay: rank ≤ 1
/// (norm weights, biases) or named by `NoWeightDecay.noWeightDecayKeys` of the
/// model or a submodule (exact key, or the key's end after a dot).
public func parametersWithoutWeightDecay(_ model: Module) -> Set<String> {
    let names = noDecayNames(model)
    return Set(model.namedSlots().filter { $0.1.kind == .parameter && !$0.1.frozen }
        .filter { $0.1.value.rank <= 1 || isNamed($0.0, by: names) }.map(\.0))
}

/// The parameters `gradients` update, checked against the model.
func parameterUpdates(_ model: Module, gradients: [String: Tensor], op: String) -> [ParameterUpdate] {
    let names = noDecayNames(model)
    var updates: [ParameterUpdate] = []
    var known = Set<String>()
    for (key, slot) in model.namedSlots() where slot.kind == .parameter {
        known.insert(key)
        guard !slot.frozen, let g = gradients[key] else { continue }
        guard g.shape == slot.value.shape else {
            fail(op, "gradient of \(key) has shape \(g.shape), the parameter has shape \(slot.value.shape)")
        }
        updates.append(ParameterUpdate(key: key, slot: slot, gradient: g,
                                       decay: slot.value.rank > 1 && !isNamed(key, by: names)))
    }
    let unknown = gradients.keys.filter { !known.contains($0) }.sorted()
    if !unknown.isEmpty {
        fail(op, "gradients for keys that are no parameter of \(type(of: model)): \(unknown.joined(separator: ", "))")
    }
    return updates
}

/// A new contiguous tensor of `shape` with uninitialised contents.
@inline(__always)
func freshTensor(_ shape: [Int]) -> Tensor {
    Tensor(storage: TensorStorage(count: shape.reduce(1, *)), shape: shape, strides: Tensor.contiguousStrides(shape))
}

/// Pointer to the first element of a contiguous tensor.
@inline(__always)
func elements(_ t: Tensor) -> UnsafeMutablePointer<Float> { t.storage.pointer + t.offset }

/// Splits checkpoint-style state keys "<param key>.<suffix>" for the given suffixes.
private func splitStateKey(_ key: String, suffixes: [String]) -> (param: String, suffix: String)? {
    for s in suffixes where key.hasSuffix("." + s) {
        return (String(key.dropLast(s.count + 1)), s)
    }
    return nil
}

/// Reads the "step" entry of a state dict.
private func readStep(_ state: [String: Tensor], into problems: inout [String]) -> Int {
    guard let t = state["step"] else { problems.append("missing \"step\""); return 0 }
    guard t.count == 1 else { problems.append("\"step\" has shape \(t.shape), expected a single value"); return 0 }
    let v = t.scalars[0]
    guard v >= 0, v == v.rounded(), v < 16_777_216 else { problems.append("\"step\" is \(v), not a step count"); return 0 }
    return Int(v)
}

/// Checks per-parameter state tensors against a model's trainable parameters.
private func checkAgainstModel(_ model: Module, state: [String: Tensor], suffixes: [String], required: Bool,
                               problems: inout [String]) {
    let params = Dictionary(uniqueKeysWithValues: model.namedSlots()
        .filter { $0.1.kind == .parameter && !$0.1.frozen }.map { ($0.0, $0.1.value.shape) })
    var covered = Set<String>()
    for (key, t) in state.sorted(by: { $0.key < $1.key }) {
        guard let (param, _) = splitStateKey(key, suffixes: suffixes) else { continue }
        guard let shape = params[param] else {
            problems.append("\(key): no trainable parameter \(param) in \(type(of: model))"); continue
        }
        covered.insert(param)
        if t.shape != shape { problems.append("\(key) has shape \(t.shape), parameter \(param) has shape \(shape)") }
    }
    if required {
        let missing = params.keys.filter { !covered.contains($0) }.sorted()
        if !missing.isEmpty { problems.append("no state for \(missing.count) parameters: \(missing.joined(separator: ", "))") }
    }
}

// MARK: - SGD

/// Stochastic gradient descent with momentum, as torch.optim.SGD (dampening 0):
///
///     d = g + wd·p                      (weight decay added to the gradient)
///     b = d at the first step, else momentum·b + d
///     d = d + momentum·b  (Nesterov)  or  d = b
///     p = p - lr·d
public final class SGD: Optimizer {
    public var learningRate: Float
    public let momentum: Float
    public let nesterov: Bool
    public let weightDecay: Float
    /// Steps taken so far.
    public private(set) var stepCount = 0
    private var momentumBuffers: [String: Tensor] = [:]

    public init(learningRate: Float, momentum: Float = 0, nesterov: Bool = false, weightDecay: Float = 0) {
        if nesterov && momentum <= 0 { fail("SGD", "Nesterov momentum needs momentum > 0 (got \(momentum))") }
        if momentum < 0 || weightDecay < 0 || learningRate < 0 {
            fail("SGD", "learningRate \(learningRate), momentum \(momentum) and weightDecay \(weightDecay) must be ≥ 0")
        }
        self.learningRate = learningRate; self.momentum = momentum; self.nesterov = nesterov; self.weightDecay = weightDecay
    }

    public func step(_ model: Module, gradients: [String: Tensor]) {
        let updates = parameterUpdates(model, gradients: gradients, op: "SGD.step")
        stepCount += 1
        withoutGrad {
            for u in updates {
                let p = u.slot.value.detached().contiguous(), g = u.gradient.detached().contiguous()
                let n = p.count
                let wd = u.decay ? weightDecay : 0
                let lr = learningRate, mu = momentum
                let newP = freshTensor(p.shape)
                let pp = elements(p), pg = elements(g), po = elements(newP)
                if mu == 0 {
                    Parallel.forChunks(n, costPerItem: 4) { r in
                        for i in r {
                            let d = wd == 0 ? pg[i] : pg[i] + wd * pp[i]
                            po[i] = pp[i] + (-lr) * d
                        }
                    }
                } else {
                    let previous = momentumBuffers[u.key]?.contiguous()
                    if let b = previous, b.shape != p.shape {
                        fail("SGD.step", "momentum buffer of \(u.key) has shape \(b.shape), the parameter has shape \(p.shape)")
                    }
                    let newB = freshTensor(p.shape)
                    let pnb = elements(newB)
                    let nesterov = self.nesterov
                    if let previous {
                        let pb = elements(previous)
                        Parallel.forChunks(n, costPerItem: 6) { r in
                            for i in r {
                                let d = wd == 0 ? pg[i] : pg[i] + wd * pp[i]
                                let b = pb[i] * mu + d
                                pnb[i] = b
                                po[i] = pp[i] + (-lr) * (nesterov ? d + mu * b : b)
                            }
                        }
                    } else {
                        // The buffer starts as the first (decayed) gradient.
                        Parallel.forChunks(n, costPerItem: 6) { r in
                            for i in r {
                                let d = wd == 0 ? pg[i] : pg[i] + wd * pp[i]
                                pnb[i] = d
                                po[i] = pp[i] + (-lr) * (nesterov ? d + mu * d : d)
                            }
                        }
                    }
                    withExtendedLifetime(previous) {}
                    momentumBuffers[u.key] = newB
                }
                withExtendedLifetime((p, g)) {}
                u.slot.value = newP
            }
        }
    }

    /// "<key>.momentum_buffer" for every parameter with a buffer, and "step".
    public func stateDict() -> [String: Tensor] {
        var state: [String: Tensor] = ["step": Tensor(Float(stepCount))]
        for (k, b) in momentumBuffers { state["\(k).momentum_buffer"] = b }
        return state
    }

    public func loadStateDict(_ state: [String: Tensor]) throws {
        var problems: [String] = []
        let step = readStep(state, into: &problems)
        var buffers: [String: Tensor] = [:]
        for (key, t) in state.sorted(by: { $0.key < $1.key }) where key != "step" {
            guard let (param, _) = splitStateKey(key, suffixes: ["momentum_buffer"]) else {
                problems.append("unknown key \(key) (SGD state has \"<param>.momentum_buffer\" and \"step\")"); continue
            }
            if momentum == 0 { problems.append("\(key): a momentum buffer, but this SGD has momentum 0"); continue }
            buffers[param] = t.detached()
        }
        if !problems.isEmpty { throw OptimizerStateError(optimizer: "SGD", problems: problems) }
        stepCount = step
        momentumBuffers = buffers
    }

    /// Loads `state` after checking it against `model`: every buffer must belong
    /// to a trainable parameter of the same shape, and (momentum > 0, step > 0)
    /// every trainable parameter must have one.
    public func loadStateDict(_ state: [String: Tensor], for model: Module) throws {
        var problems: [String] = []
        let step = readStep(state, into: &problems)
        checkAgainstModel(model, state: state, suffixes: ["momentum_buffer"], required: momentum > 0 && step > 0,
                          problems: &problems)
        if !problems.isEmpty { throw OptimizerStateError(optimizer: "SGD", problems: problems) }
        try loadStateDict(state)
    }
}

// MARK: - AdamW

/// Adam with decoupled weight decay, as torch.optim.AdamW (amsgrad off):
///
///     p = p·(1 - lr·wd)
///     m = lerp(m, g, 1 - β1);  v = β2·v + (1 - β2)·g²
///     p = p - lr/(1 - β1^t) · m / (√v / √(1 - β2^t) + eps)
public final class AdamW: Optimizer {
    public var learningRate: Float
    public let betas: (Float, Float)
    public let eps: Float
    public let weightDecay: Float
    /// Steps taken so far (the t of the bias corrections).
    public private(set) var stepCount = 0
    private var expAvg: [String: Tensor] = [:]
    private var expAvgSq: [String: Tensor] = [:]

    public init(learningRate: Float, betas: (Float, Float) = (0.9, 0.999), eps: Float = 1e-8, weightDecay: Float = 0.05) {
        guard (0..<1).contains(betas.0), (0..<1).contains(betas.1) else {
            fail("AdamW", "betas \(betas) must lie in [0, 1)")
        }
        if eps < 0 || weightDecay < 0 || learningRate < 0 {
            fail("AdamW", "learningRate \(learningRate), eps \(eps) and weightDecay \(weightDecay) must be ≥ 0")
        }
        self.learningRate = learningRate; self.betas = betas; self.eps = eps; self.weightDecay = weightDecay
    }

    public func step(_ model: Module, gradients: [String: Tensor]) {
        let updates = parameterUpdates(model, gradients: gradients, op: "AdamW.step")
        stepCount += 1
        let t = Double(stepCount)
        let lrD = Double(learningRate)
        let (b1, b2) = betas
        let stepSize = Float(lrD / (1 - Foundation.pow(Double(b1), t)))
        let bc2Sqrt = Float((1 - Foundation.pow(Double(b2), t)).squareRoot())
        let w1 = 1 - b1, w2 = 1 - b2, eps = self.eps
        withoutGrad {
            for u in updates {
                let p = u.slot.value.detached().contiguous(), g = u.gradient.detached().contiguous()
                let n = p.count
                let m0 = (expAvg[u.key] ?? Tensor.zeros(p.shape)).contiguous()
                let v0 = (expAvgSq[u.key] ?? Tensor.zeros(p.shape)).contiguous()
                for (name, s) in [("exp_avg", m0), ("exp_avg_sq", v0)] {
                    if s.shape != p.shape {
                        fail("AdamW.step", "\(name) of \(u.key) has shape \(s.shape), the parameter has shape \(p.shape)")
                    }
                }
                let decayFactor = u.decay && weightDecay != 0 ? Float(1 - lrD * Double(weightDecay)) : 1
                let newP = freshTensor(p.shape), newM = freshTensor(p.shape), newV = freshTensor(p.shape)
                let pp = elements(p), pg = elements(g)
                let pm = elements(m0), pv = elements(v0)
                let po = elements(newP), pmo = elements(newM), pvo = elements(newV)
                Parallel.forChunks(n, costPerItem: 12) { r in
                    for i in r {
                        let gi = pg[i]
                        let param = pp[i] * decayFactor  // exact when there is no decay
                        let mPrev = pm[i], vPrev = pv[i]
                        // torch's lerp: self + w·(end - self) for w < 0.5, else end - (end - self)·(1 - w).
                        let m = w1 < 0.5 ? mPrev + w1 * (gi - mPrev) : gi - (gi - mPrev) * (1 - w1)
                        let v = vPrev * b2 + w2 * gi * gi
                        let denom = v.squareRoot() / bc2Sqrt + eps
                        pmo[i] = m; pvo[i] = v
                        po[i] = param + (-stepSize) * (m / denom)
                    }
                }
                withExtendedLifetime((p, g, m0, v0)) {}
                expAvg[u.key] = newM; expAvgSq[u.key] = newV
                u.slot.value = newP
            }
        }
    }

    /// "<key>.exp_avg", "<key>.exp_avg_sq" for every parameter updated so far, and "step".
    public func stateDict() -> [String: Tensor] {
        var state: [String: Tensor] = ["step": Tensor(Float(stepCount))]
        for (k, m) in expAvg { state["\(k).exp_avg"] = m }
        for (k, v) in expAvgSq { state["\(k).exp_avg_sq"] = v }
        return state
    }

    public func loadStateDict(_ state: [String: Tensor]) throws {
        var problems: [String] = []
        let step = readStep(state, into: &problems)
        var m: [String: Tensor] = [:], v: [String: Tensor] = [:]
        for (key, t) in state.sorted(by: { $0.key < $1.key }) where key != "step" {
            guard let (param, suffix) = splitStateKey(key, suffixes: ["exp_avg_sq", "exp_avg"]) else {
                problems.append("unknown key \(key) (AdamW state has \"<param>.exp_avg\", \"<param>.exp_avg_sq\" and \"step\")")
                continue
            }
            if suffix == "exp_avg" { m[param] = t.detached() } else { v[param] = t.detached() }
        }
        for k in Set(m.keys).union(v.keys).sorted() {
            switch (m[k], v[k]) {
            case (nil, _): problems.append("\(k).exp_avg_sq without \(k).exp_avg")
            case (_, nil): problems.append("\(k).exp_avg without \(k).exp_avg_sq")
            case let (a?, b?) where a.shape != b.shape:
                problems.append("\(k).exp_avg has shape \(a.shape) but \(k).exp_avg_sq has shape \(b.shape)")
            default: break
            }
        }
        if !m.isEmpty && step == 0 && state["step"] != nil { problems.append("moments present but \"step\" is 0") }
        if !problems.isEmpty { throw OptimizerStateError(optimizer: "AdamW", problems: problems) }
        stepCount = step
        expAvg = m; expAvgSq = v
    }

    /// Loads `state` after checking it against `model`: every moment must belong
    /// to a trainable parameter of the same shape, and (step > 0) every
    /// trainable parameter must have both moments.
    public func loadStateDict(_ state: [String: Tensor], for model: Module) throws {
        var problems: [String] = []
        let step = readStep(state, into: &problems)
        checkAgainstModel(model, state: state, suffixes: ["exp_avg_sq", "exp_avg"], required: step > 0, problems: &problems)
        if !problems.isEmpty { throw OptimizerStateError(optimizer: "AdamW", problems: problems) }
        try loadStateDict(state)
    }
}
