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
}
