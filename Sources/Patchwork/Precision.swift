import Foundation

/// The precision matrix products run in, with the semantics of PyTorch's CPU autocast.
///
/// In `.bf16` every GEMM large enough to gain (`Gemm.sgemm`: linear layers, batched matmuls,
/// convolutions' forward and both backward passes) rounds its two operands to bfloat16 and
/// multiplies them on oneDNN's bf16 kernels, accumulating and writing fp32. Everything else stays
/// fp32: weights and their gradients, optimizer state, normalisations, softmax, losses and the
/// element-wise kernels, and every tensor the engine stores. So a training step in bf16 needs no
/// loss scaling and no master weights: only the matrix products' inputs lose precision (8 bits
/// of mantissa instead of 24), as under `torch.autocast("cpu", dtype=torch.bfloat16)`.
///
/// The setting is process-wide (docs/ARCHITECTURE.md, "Precision"): the commands set it once,
/// before their work, with `Precision.with`; the default is fp32, which leaves every result
/// bit-identical to an engine without this switch.
public enum Precision: String, Codable, Sendable, CaseIterable {
    case fp32, bf16

    /// The precision `Gemm.sgemm` runs in now. Set it between computations, not during one
    /// (GEMMs running on other threads read it); `with(_:_:)` restores the previous value.
    public static var current: Precision = .fp32

    /// Runs `body` with matrix products in `precision`, then restores the previous setting.
    public static func with<T>(_ precision: Precision, _ body: () throws -> T) rethrows -> T {
        let saved = current
        current = precision
        defer { current = saved }
        return try body()
    }

    /// What the backward pass's matrix products run in when the forward pass runs in bf16: bf16,
    /// as under autocast, unless PATCHWORK_BF16_BACKWARD=fp32 keeps the gradients' products in
    /// fp32. That setting is a diagnostic, not a mode: it tells whether a bf16 run's loss of
    /// accuracy comes from the forward products or from the gradients' products
    /// (docs/PERFORMANCE.md, "Where bf16's accuracy goes").
    nonisolated(unsafe) static var backwardProductsInBF16: Bool = {
        guard let value = ProcessInfo.processInfo.environment["PATCHWORK_BF16_BACKWARD"] else { return true }
        guard value == "bf16" || value == "fp32" else { fail("backward", EngineEnvironment.problem ?? value) }
        return value == "bf16"
    }()

    /// Runs a backward pass's `body` in the precision `backwardProductsInBF16` sets.
    static func forBackward<T>(_ body: () throws -> T) rethrows -> T {
        guard current == .bf16, !backwardProductsInBF16 else { return try body() }
        return try with(.fp32, body)
    }
}
