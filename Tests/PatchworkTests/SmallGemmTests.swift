import XCTest
@testable import Patchwork

/// Tiny products run on `pw_small_gemm` (kernels_body.h) instead of dnnl_sgemm (`Gemm.runsOnSmallKernel`).
/// The kernel sums each element in the order of k with one rounding per step, so its result is known bit
/// for bit: a Float loop of fused multiply-adds. These tests check that, over both transposes, row counts
/// that leave a partial block of rows, column counts that leave a partial block of 16, and padded leading
/// dimensions; and that the batched products attention makes agree with dnnl_sgemm's.
final class SmallGemmTests: XCTestCase {
    /// Row-major m×k (or k×m when transposed) with leading dimension ld, values in -2...2.
    private func matrix(rows: Int, cols: Int, ld: Int, seed: UInt64) -> [Float] {
        var g = Generator(seed: seed)
        return (0..<(rows - 1) * ld + cols).map { _ in Float.random(in: -2...2, using: &g) }
    }

    private func checkBitForBit(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, pad: Int, seed: UInt64,
                                file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(Gemm.runsOnSmallKernel(m: m, n: n, k: k), "\(m)×\(n)×\(k) should run on the small kernel", file: file, line: line)
        let lda = (transA ? m : k) + pad, ldb = (transB ? k : n) + pad, ldc = n + pad
        let a = matrix(rows: transA ? k : m, cols: transA ? m : k, ld: lda, seed: seed)
        let b = matrix(rows: transB ? n : k, cols: transB ? k : n, ld: ldb, seed: seed + 1)
        // C's padding is a sentinel the product must leave alone.
        var c = [Float](repeating: 7, count: (m - 1) * ldc + n + pad)
        Gemm.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, c: &c, ldc: ldc)
        for i in 0..<m {
            for j in 0..<n {
                var want: Float = 0
                for p in 0..<k {
                    let x = transA ? a[p * lda + i] : a[i * lda + p]
                    let y = transB ? b[j * ldb + p] : b[p * ldb + j]
                    want = want.addingProduct(x, y)   // one rounding: fma
                }
                if c[i * ldc + j].bitPattern != want.bitPattern {
                    XCTFail("transA \(transA) transB \(transB) \(m)×\(n)×\(k) pad \(pad): C[\(i), \(j)] = \(c[i * ldc + j]), want \(want)",
                            file: file, line: line)
                    return
                }
            }
            for j in n..<ldc {
                if c[i * ldc + j] != 7 {
                    XCTFail("C's padding at [\(i), \(j)] was written: \(c[i * ldc + j])", file: file, line: line); return
                }
            }
        }
    }

    func testSmallProductsAreSequentialFusedMultiplyAdds() throws {
        try XCTSkipUnless(Gemm.usesSmallKernel, "the small kernel needs AVX2 and FMA; here every product is dnnl_sgemm's")
        var seed: UInt64 = 1
        for transA in [false, true] {
            for transB in [false, true] {
                // Full blocks, partial row and column blocks, more than one column block, the edges of the range.
                for (m, n, k) in [(16, 16, 16), (4, 4, 16), (4, 16, 4), (7, 5, 3), (13, 40, 9), (6, 64, 8), (128, 16, 1), (4, 64, 32),
                                  (2, 3, 5)] {
                    for pad in [0, 3] {
                        checkBitForBit(transA: transA, transB: transB, m: m, n: n, k: k, pad: pad, seed: seed)
                        seed += 2
                    }
                }
            }
        }
    }

    func testWhichProductsRunOnTheSmallKernel() {
        let saved = Gemm.usesSmallKernel
        defer { Gemm.usesSmallKernel = saved }
        Gemm.usesSmallKernel = true
        XCTAssertTrue(Gemm.runsOnSmallKernel(m: 16, n: 16, k: 16))
        XCTAssertTrue(Gemm.runsOnSmallKernel(m: 4, n: 64, k: 32), "128 steps of a 4×16 block: the largest")
        XCTAssertTrue(Gemm.runsOnSmallKernel(m: 128, n: 16, k: 1))
        XCTAssertFalse(Gemm.runsOnSmallKernel(m: 1, n: 16, k: 16), "a matrix-vector product: dnnl's gemv path")
        XCTAssertFalse(Gemm.runsOnSmallKernel(m: 32, n: 1, k: 16), "a matrix-vector product: dnnl's gemv path")
        XCTAssertFalse(Gemm.runsOnSmallKernel(m: 4, n: 4, k: 33), "k above 32")
        XCTAssertFalse(Gemm.runsOnSmallKernel(m: 64, n: 8, k: 16), "256 steps, half of each 16-column block padding")
        XCTAssertFalse(Gemm.runsOnSmallKernel(m: 32, n: 32, k: 32), "512 steps: dnnl's blocking pays")
        Gemm.usesSmallKernel = false
        XCTAssertFalse(Gemm.runsOnSmallKernel(m: 16, n: 16, k: 16))
    }

    /// A NaN or infinity in A reaches the rows it is in and no other (B's zero-padded columns are never stored).
    func testNonFiniteValuesStayInTheirRows() throws {
        try XCTSkipUnless(Gemm.usesSmallKernel, "the small kernel needs AVX2 and FMA")
        var a = matrix(rows: 8, cols: 8, ld: 8, seed: 5), b = matrix(rows: 8, cols: 12, ld: 12, seed: 6)
        a[1 * 8 + 3] = .nan
        a[5 * 8 + 0] = .infinity
        b[0 * 12 + 0] = 0   // ∞·0 in row 5, column 0
        var c = [Float](repeating: 0, count: 8 * 12)
        Gemm.sgemm(transA: false, transB: false, m: 8, n: 12, k: 8, a: a, lda: 8, b: b, ldb: 12, c: &c, ldc: 12)
        for i in 0..<8 {
            for j in 0..<12 {
                let v = c[i * 12 + j]
                switch i {
                case 1: XCTAssertTrue(v.isNaN, "row 1 has a NaN in A: C[1, \(j)] = \(v)")
                case 5 where j == 0: XCTAssertTrue(v.isNaN, "∞·0: C[5, 0] = \(v)")
                case 5: XCTAssertTrue(v.isInfinite, "row 5 has ∞ in A: C[5, \(j)] = \(v)")
                default: XCTAssertTrue(v.isFinite, "C[\(i), \(j)] = \(v)")
                }
            }
        }
    }

    /// Window attention's products, batched over windows and heads, with q, k and v views of one qkv tensor:
    /// the small kernel against dnnl_sgemm, values and gradients.
    func testBatchedAttentionProductsAgreeWithDnnl() throws {
        try XCTSkipUnless(Gemm.usesSmallKernel, "the small kernel needs AVX2 and FMA")
        let qkv = Tensor.randomNormal([6, 16, 3, 3, 16], generator: Generator(seed: 3))
        func run() -> (value: Tensor, gradients: [Tensor]) {
            valueAndGradient(at: [qkv]) { inputs in
                let p = inputs[0].permuted([2, 0, 3, 1, 4]).unbound(axis: 0)   // q, k, v: [6, 3, 16, 16]
                let out = matmul(matmul(p[0], p[1].transposed()).softmax(scale: 0.25), p[2])
                return (out * out).sum()
            }
        }
        let small = run()
        Gemm.usesSmallKernel = false
        defer { Gemm.usesSmallKernel = true }
        let dnnl = run()
        assertClose(small.value, dnnl.value, atol: 0, rtol: 1e-5)
        assertClose(small.gradients[0], dnnl.gradients[0], atol: 1e-5, rtol: 1e-4)
    }
}
