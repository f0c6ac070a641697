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
        let sv = Vec(repeating: scale)
        Parallel.forChunks(rows, costPerItem: n * 12) { range in
            for r in range {
                let src = x + r * n, dst = y + r * n
                // Pass 1: the row maximum.
                var i = 0
                var vmax = Vec(repeating: -.infinity)
                while i + 16 <= n {
                    let v = loadVec(src + i)
                    vmax = VectorMath.max(vmax, v)
                    i += 16
                }
                var m = vmax.max()
                while i < n { m = Swift.max(m, src[i]); i += 1 }
                m *= scale
                // Pass 2: e^(x - max), summed (and stored for softmax).
                let mv = Vec(repeating: m)
                var acc = Vec(repeating: 0)
                i = 0
                while i + 16 <= n {
                    let e = VectorMath.exp(loadVec(src + i) * sv - mv)
                    if !log { storeVec(e, dst + i) }
                    acc += e
                    i += 16
                }
                if i < n {
                    // Tail: pad with -inf, whose exponential is exactly 0.
                    var t = Vec(repeating: -.infinity)
                    for k in 0..<(n - i) { t[k] = src[i + k] * scale - m }
                    let e = VectorMath.exp(t)
                    if !log { for k in 0..<(n - i) { dst[i + k] = e[k] } }
                    acc += e
                }
                let s = acc.sum()
                // Pass 3: normalise.
                i = 0
                if log {
                    let lv = Vec(repeating: Foundation.log(s))
                    while i + 16 <= n { storeVec((loadVec(src + i) * sv - mv) - lv, dst + i); i += 16 }
                    let l = Foundation.log(s)
                    while i < n { dst[i] = (src[i] * scale - m) - l; i += 1 }
                } else {
                    let inv = 1 / s
                    let iv = Vec(repeating: inv)
                    while i + 16 <= n { storeVec(loadVec(dst + i) * iv, dst + i); i += 16 }
                    while i < n { dst[i] *= inv; i += 1 }
                }
            }
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
