import CPatchworkKernels

/// Row kernels for softmax and log-softmax over the last, contiguous axis.
///
/// Numerically stable: each row is shifted by its maximum before `exp`, so
/// logits of any magnitude (±1e3 and beyond) give finite results; a row that
/// is entirely -inf (or holds NaN/+inf) gives NaN, as in PyTorch.
extension Kernels {
    /// y = softmax(scale·x) (or log-softmax when `log`) for each of `rows` rows of
    /// `n` contiguous floats. `scale` > 0 (attention's 1/√d) is applied as the
    /// values are read: max(scale·x) = scale·max(x) in floating point too, so the
    /// result is the same as scaling first.
    static func softmaxRows(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                            rows: Int, length n: Int, log: Bool, scale: Float = 1) {
        if n == 0 { return }
        require(scale > 0, "softmax", "scale must be positive, got \(scale)")
        // The C kernel (CPatchworkKernels: this same three-pass loop, with the running CPU's SIMD
        // width): exp-bound, so 1.75× slower as baseline-x86-64 Swift (docs/PERFORMANCE.md).
        Parallel.forChunks(rows, costPerItem: n * 12) { range in
            pw_softmax_rows(x + range.lowerBound * n, y + range.lowerBound * n, range.count, n, log ? 1 : 0, scale)
        }
    }

    /// y = softmax(scale·x + a) for each of `rows` rows of `n` floats, row r adding row r mod `period`
    /// of `a` (`period` rows of n floats): a bias or mask repeated over the scores' leading dimensions.
    static func softmaxRowsAdding(_ x: UnsafePointer<Float>, _ a: UnsafePointer<Float>, period: Int,
                                  _ y: UnsafeMutablePointer<Float>, rows: Int, length n: Int, scale: Float) {
        if n == 0 || rows == 0 { return }
        Parallel.forChunks(rows, costPerItem: n * 12) { range in
            pw_softmax_add_rows(x + range.lowerBound * n, a, y + range.lowerBound * n, range.count, n, scale,
                                range.lowerBound, period)
        }
    }
}

@inline(__always) private func loadVec(_ p: UnsafePointer<Float>) -> Vec { UnsafeRawPointer(p).loadUnaligned(as: Vec.self) }
@inline(__always) private func loadVec(_ p: UnsafeMutablePointer<Float>) -> Vec { UnsafeRawPointer(p).loadUnaligned(as: Vec.self) }
@inline(__always) private func storeVec(_ v: Vec, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec.self) }

import Foundation

extension Kernels {
    /// The softmax pullback over rows of `n` floats: dx = y ⊙ (g − Σ g⊙y), one sweep per row
    /// (the row stays in L1 between its two passes).
    /// With `scale`, the pullback of softmax(scale·x): scale·y ⊙ (g − Σ g⊙y).
    static func softmaxBackwardRows(_ g: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                                    rows: Int, length n: Int, scale: Float = 1) {
        if n == 0 { return }
        Parallel.forChunks(rows, costPerItem: n * 3) { range in
            for r in range {
                let gr = g + r * n, yr = y + r * n, out = dx + r * n
                var acc = Vec(repeating: 0)
                var i = 0
                while i + 16 <= n { acc += loadVec(gr + i) * loadVec(yr + i); i += 16 }
                var dot = acc.sum()
                while i < n { dot += gr[i] * yr[i]; i += 1 }
                let d = Vec(repeating: dot), sv = Vec(repeating: scale)
                i = 0
                while i + 16 <= n { storeVec(sv * loadVec(yr + i) * (loadVec(gr + i) - d), out + i); i += 16 }
                while i < n { out[i] = scale * yr[i] * (gr[i] - dot); i += 1 }
            }
        }
    }
}
