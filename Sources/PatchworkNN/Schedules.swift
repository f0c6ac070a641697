import Foundation
import Patchwork

/// A learning rate as a function of the optimizer step (0-based: the rate used
/// by the first step is `learningRate(step: 0)`).
public protocol LearningRateSchedule: Sendable {
    func learningRate(step: Int) -> Float
}

/// Linear warmup from `warmupStart` to `base` over `warmupSteps`, then a
/// half-cosine from `base` down to `minimum` at `totalSteps` (and `minimum`
/// after), as timm's CosineLRScheduler(t_initial: total - warmup, warmup_t:
/// warmup, warmup_prefix: True, lr_min: minimum, warmup_lr_init:
/// warmupStart), stepped per update:
///
///     step < warmup:  warmupStart + (base - warmupStart) · step / warmup
///     otherwise:      minimum + (base - minimum) · (1 + cos(π · (step - warmup) / (total - warmup))) / 2
public struct WarmupCosine: LearningRateSchedule {
    public let base: Float
    public let warmupSteps: Int
    public let totalSteps: Int
    public let minimum: Float
    public let warmupStart: Float

    public init(base: Float, warmupSteps: Int, totalSteps: Int, minimum: Float = 0, warmupStart: Float = 0) {
        guard warmupSteps >= 0, totalSteps >= warmupSteps else {
            fail("WarmupCosine", "needs 0 ≤ warmupSteps (\(warmupSteps)) ≤ totalSteps (\(totalSteps))")
        }
        self.base = base; self.warmupSteps = warmupSteps; self.totalSteps = totalSteps
        self.minimum = minimum; self.warmupStart = warmupStart
    }

    public func learningRate(step: Int) -> Float {
        let s = Swift.max(step, 0)
        if s < warmupSteps {
            return Float(Double(warmupStart) + Double(base - warmupStart) * Double(s) / Double(warmupSteps))
        }
        let span = totalSteps - warmupSteps
        let progress = span > 0 ? Swift.min(Double(s - warmupSteps) / Double(span), 1) : 1
        return Float(Double(minimum) + 0.5 * Double(base - minimum) * (1 + Foundation.cos(Double.pi * progress)))
    }
}

/// `base · gamma^⌊step / stepSize⌋` (as torch.optim.lr_scheduler.StepLR and
/// timm's StepLRScheduler, counted in steps), after an optional linear warmup
/// from `warmupStart` over the first `warmupSteps` steps.
public struct StepDecay: LearningRateSchedule {
    public let base: Float
    public let stepSize: Int
    public let gamma: Float
    public let warmupSteps: Int
    public let warmupStart: Float

    public init(base: Float, stepSize: Int, gamma: Float, warmupSteps: Int = 0, warmupStart: Float = 0) {
        guard stepSize > 0, warmupSteps >= 0 else {
            fail("StepDecay", "stepSize (\(stepSize)) must be positive and warmupSteps (\(warmupSteps)) ≥ 0")
        }
        self.base = base; self.stepSize = stepSize; self.gamma = gamma
        self.warmupSteps = warmupSteps; self.warmupStart = warmupStart
    }

    public func learningRate(step: Int) -> Float {
        let s = Swift.max(step, 0)
        if s < warmupSteps {
            return Float(Double(warmupStart) + Double(base - warmupStart) * Double(s) / Double(warmupSteps))
        }
        return Float(Double(base) * Foundation.pow(Double(gamma), Double(s / stepSize)))
    }
}

/// A constant learning rate.
public struct ConstantRate: LearningRateSchedule {
    public let value: Float
    public init(_ value: Float) { self.value = value }
    public func learningRate(step: Int) -> Float { value }
}

/// Scales all gradients together so that their total L2 norm is at most
/// `maxNorm`, as torch.nn.utils.clip_grad_norm_: with
/// total = ‖(‖g₁‖, ‖g₂‖, …)‖₂, every gradient is multiplied by
/// min(1, maxNorm / (total + 1e-6)). Returns the total norm before clipping.
@discardableResult
public func clipGradientNorm(_ grads: inout [String: Tensor], maxNorm: Float) -> Float {
    guard maxNorm >= 0 else { fail("clipGradientNorm", "maxNorm \(maxNorm) must be ≥ 0") }
    var total = 0.0
    for (_, g) in grads {
        let c = g.detached().contiguous()
        let p = c.storage.pointer + c.offset
        var s = 0.0
        for i in 0..<c.count { let v = Double(p[i]); s += v * v }
        withExtendedLifetime(c) {}
        // Each tensor's norm in Float, then the norm of the norms, as torch does.
        let norm = Double(Float(s.squareRoot()))
        total += norm * norm
    }
    let totalNorm = Float(total.squareRoot())
    let coefficient = maxNorm / (totalNorm + 1e-6)
    if coefficient < 1 {
        withoutGrad {
            for (k, g) in grads { grads[k] = g * coefficient }
        }
    }
    return totalNorm
}
