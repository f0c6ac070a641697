import CDNNL
import CPatchworkKernels

/// Single-precision matrix products on oneDNN's `dnnl_sgemm`, tiny ones on our own kernel.
///
/// Why oneDNN (DESIGN.md §2): Debian's build detects AVX-512 at run time and
/// reaches ~300 GFLOP/s on this 2-core machine from n = 256 up, where
/// Debian's OpenBLAS misdetects the CPU and runs its generic kernels at
/// 30–60 GFLOP/s. oneDNN runs on OpenMP, whose team `Parallel` shares.
public enum Gemm {
    /// Which library and kernel path matrix products run on.
    public static var description: String {
        let v = dnnl_version().pointee
        return "oneDNN \(v.major).\(v.minor).\(v.patch) dnnl_sgemm, ISA \(isaName), \(Parallel.threadCount) OpenMP threads"
    }

    /// What products under `Precision.bf16` run on (creates one primitive the first time).
    public static var bf16Description: String {
        guard BF16Gemm.hasKernels else {
            return "emulated (oneDNN has no bf16 kernels for ISA \(isaName)): operands rounded to bf16, products on dnnl_sgemm, no speed-up"
        }
        return "oneDNN \(dnnl_version().pointee.major).\(dnnl_version().pointee.minor) matmul primitive \(BF16Gemm.implementation), bf16 inputs, fp32 accumulation"
    }

    /// Whether bf16 products run on bf16 kernels here (AVX-512 or newer); elsewhere they are
    /// emulated on fp32 kernels with the same rounding (`BF16Gemm.hasKernels`).
    public static var hasBF16Kernels: Bool { BF16Gemm.hasKernels }

    public static var isaName: String {
        switch dnnl_get_effective_cpu_isa() {
        case dnnl_cpu_isa_sse41: return "sse41"
        case dnnl_cpu_isa_avx: return "avx"
        case dnnl_cpu_isa_avx2: return "avx2"
        case dnnl_cpu_isa_avx512_mic: return "avx512_mic"
        case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops"
        case dnnl_cpu_isa_avx512_core: return "avx512_core"
        case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni"
        case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16"
        case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx"
        case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni"
        default: return "generic"
        }
    }

    /// C = alpha·op(A)·op(B) + beta·C, row-major; op(A) is m×k, op(B) k×n.
    /// Inside a `Parallel` loop the call runs on the calling thread only.
    /// Under `Precision.bf16` the product runs on `BF16Gemm` (operands rounded to bf16, fp32
    /// accumulation) where that pays (`BF16Gemm.pays`; the others stay fp32).
    @inline(__always)
    public static func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                             a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m == 0 || n == 0 { return }
        if k == 0 {
            if beta == 0 { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
            else { for i in 0..<m { for j in 0..<n { c[i * ldc + j] *= beta } } }
            return
        }
        if Precision.current == .bf16 && BF16Gemm.pays(m: m, n: n, k: k) {
            BF16Gemm.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                          beta: beta, c: c, ldc: ldc)
            return
        }
        if alpha == 1 && beta == 0 && runsOnSmallKernel(m: m, n: n, k: k) {
            pw_small_gemm(transA ? 1 : 0, transB ? 1 : 0, m, n, k, a, lda, b, ldb, c, ldc)
            return
        }
        let status = dnnl_sgemm(transA ? 0x54 : 0x4E, transB ? 0x54 : 0x4E, Int64(m), Int64(n), Int64(k), alpha,
                                a, Int64(lda), b, Int64(ldb), beta, c, Int64(ldc))
        require(status == dnnl_success, "sgemm", "dnnl_sgemm failed with status \(status) for m=\(m) n=\(n) k=\(k)")
    }

    /// Whether a product is small enough for `pw_small_gemm` (kernels_body.h). dnnl_sgemm costs about
    /// 0.3 µs per call before it multiplies anything, most of a 16×16×16 product (0.4–0.8 µs against
    /// 0.2–0.3 µs on our kernel, AVX2), and attention in windows makes tens of thousands of those a step.
    /// Our kernel steps through blocks of 4 rows × 16 columns of C, k steps each, after copying B; measured
    /// against dnnl_sgemm on one core (docs/PERFORMANCE.md), it wins up to 128 such steps (16×16×32,
    /// 32×16×16, 8×64×16, 128×16×1, 2×16×16: 1.1–2.9× as fast) and loses from 256 (64×8×16, 32×8×32:
    /// 0.45–0.65×, the columns padded to 16) and on dnnl's matrix-vector paths (m or n = 1). Baseline
    /// x86-64 has no FMA instruction, so there the kernel would be slow: it is used from AVX2 up.
    static func runsOnSmallKernel(m: Int, n: Int, k: Int) -> Bool {
        guard usesSmallKernel, m >= 2, n >= 2, k <= 32 else { return false }
        return (m + 3) / 4 * ((n + 15) / 16) * k <= 128
    }

    /// Whether tiny products go to `pw_small_gemm`: where the CPU has AVX2 and FMA (its kernel path is
    /// not "baseline"). Tests turn it off to compare with dnnl_sgemm.
    nonisolated(unsafe) static var usesSmallKernel = Kernels.simdPath != "baseline"
}
