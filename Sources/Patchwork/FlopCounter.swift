/// Counts the floating-point operations of matrix products and convolutions.
///
/// Convention (as torch.utils.flop_counter and ../shared/bench): one
/// multiply-add = 2 FLOPs; only matmul/linear and convolutions (forward and
/// their gradient ops) are counted; element-wise ops, norms, softmax and
/// pooling are not.
public enum FlopCounter {
    nonisolated(unsafe) static var active = false
    nonisolated(unsafe) static var total: Double = 0

    /// Runs `body` and returns its value with the FLOPs it performed.
    public static func count<T>(_ body: () throws -> T) rethrows -> (value: T, flops: Double) {
        let (wasActive, before) = (active, total)
        active = true
        if !wasActive { total = 0 }
        defer { active = wasActive; if !wasActive { total = 0 } }
        let value = try body()
        return (value, total - (wasActive ? before : 0))
    }

    @inline(__always)
    static func add(_ flops: Double) { if active { total += flops } }
}
