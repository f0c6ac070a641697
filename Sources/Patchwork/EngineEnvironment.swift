import Foundation

/// The environment variables the engine reads, checked up front: the command line calls
/// `problem` before any work, so a mistyped value is an error message naming the variable
/// rather than a stop in the middle of a run (or a value silently ignored).
/// - PATCHWORK_CONV_PATH: automatic, im2col or onednn (`ConvKernels.Path`);
/// - PATCHWORK_POOL_MB: the buffer pool's cache size, a whole number of MiB, 0 or more;
/// - PATCHWORK_BF16_BACKWARD: bf16 or fp32, the backward products' precision in a bf16 run
///   (`Precision.backwardProductsInBF16`, a diagnostic).
public enum EngineEnvironment {
    /// What is wrong with those variables, or nil when they are unset or valid.
    public static var problem: String? {
        let environment = ProcessInfo.processInfo.environment
        if let value = environment["PATCHWORK_CONV_PATH"], ConvKernels.Path(rawValue: value) == nil {
            return "environment variable PATCHWORK_CONV_PATH is '\(value)'; use automatic, im2col or onednn"
        }
        if let value = environment["PATCHWORK_POOL_MB"], (Int(value) ?? -1) < 0 {
            return "environment variable PATCHWORK_POOL_MB is '\(value)'; give the buffer pool's size in MiB, a whole number from 0"
        }
        if let value = environment["PATCHWORK_BF16_BACKWARD"], value != "bf16", value != "fp32" {
            return "environment variable PATCHWORK_BF16_BACKWARD is '\(value)'; use bf16 (the default, as autocast) or fp32"
        }
        return nil
    }
}
