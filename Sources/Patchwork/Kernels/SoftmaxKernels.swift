/// Row kernels for softmax and log-softmax over the last, contiguous axis.
///
/// Numerically stable: each row is shifted by its maximum before `exp`, so
/// logits of any magnitude (±1e3 and beyond) give finite results; a row that
/// is entirely -inf (or holds NaN/+inf) gives NaN, as in PyTorch.
extension Kernels {
    /// y = softmax(x) (or log-softmax when `log`) for each of `rows` rows of
    /// `n` contiguous floats.
    static func softmaxRows(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                            rows: Int, length n: Int, log: Bool) {
        if n == 0 { return }
        Parallel.forChunks(rows, costPerItem: n * 12) { range in
            for r in range {
                let src = x + r * n, dst = y + r * n
                // Pass 1: the row maximum.
                var i = 0
                var vmax = Vec(repeating: -.infinity)
                while i + 16 <= n {
                    let v = loadVec(src + i)
                    vmax.replace(with: v, where: v .> vmax)  // compare-select: pointwiseMax is scalarised
                    i += 16
                }
                var m = vmax.max()
                while i < n { m = Swift.max(m, src[i]); i += 1 }
                // Pass 2: e^(x - max), summed (and stored for softmax).
                let mv = Vec(repeating: m)
                var acc = Vec(repeating: 0)
                i = 0
                while i + 16 <= n {
                    let e = Kernels.softmaxExp(loadVec(src + i) - mv)
                    if !log { storeVec(e, dst + i) }
                    acc += e
                    i += 16
                }
                if i < n {
                    // Tail: pad with -inf, whose exponential is exactly 0.
                    var t = Vec(repeating: -.infinity)
                    for k in 0..<(n - i) { t[k] = src[i + k] - m }
                    let e = Kernels.softmaxExp(t)
                    if !log { for k in 0..<(n - i) { dst[i + k] = e[k] } }
                    acc += e
                }
                let s = acc.sum()
                // Pass 3: normalise.
                i = 0
                if log {
                    let lv = Vec(repeating: Foundation.log(s))
                    while i + 16 <= n { storeVec((loadVec(src + i) - mv) - lv, dst + i); i += 16 }
                    let l = Foundation.log(s)
                    while i < n { dst[i] = (src[i] - m) - l; i += 1 }
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

extension Kernels {
    /// e^x for x ≤ 0 (softmax's shifted logits): the same Cephes polynomial and
    /// range reduction as `VectorMath.exp`, bit for bit, written with
    /// compare-select clamping and the 1.5·2²³ rounding trick. Swift's
    /// SIMD16 `clamped`, `rounded` and Float→Int32 conversion are scalarised
    /// (measured here: 15, 2.8 and 21 ns per element), which made
    /// `VectorMath.exp` cost about 40 ns per element against about 1 for this form.
    @inline(__always)
    static func softmaxExp(_ x: Vec) -> Vec {
        var c = x
        c.replace(with: -87.3, where: x .< -87.3)
        c.replace(with: 88.7, where: x .> 88.7)
        let magic = Vec(repeating: 12_582_912)  // 1.5·2²³: adding it rounds to an integer (ties to even)
        let shifted = c * 1.44269504088896341 + magic
        let n = shifted - magic
        var r = c - n * 0.693359375
        r = r - n * -2.12194440e-4
        let z = r * r
        var y = Vec(repeating: 1.9875691500e-4)
        y = y * r + 1.3981999507e-3
        y = y * r + 8.3334519073e-3
        y = y * r + 4.1665795894e-2
        y = y * r + 1.6666665459e-1
        y = y * r + 5.0000001201e-1
        y = y * z + r + 1
        // The low mantissa bits of `shifted` hold n + 0x40_0000; n + 127 shifted into the exponent is 2ⁿ.
        let bits = (unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        var result = y * unsafeBitCast(bits, to: Vec.self)
        result.replace(with: 0, where: x .< -87.3)
        result.replace(with: x, where: x .!= x)  // NaN stays NaN
        return result
    }
}

@inline(__always) private func loadVec(_ p: UnsafePointer<Float>) -> Vec { UnsafeRawPointer(p).loadUnaligned(as: Vec.self) }
@inline(__always) private func loadVec(_ p: UnsafeMutablePointer<Float>) -> Vec { UnsafeRawPointer(p).loadUnaligned(as: Vec.self) }
@inline(__always) private func storeVec(_ v: Vec, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec.self) }

import Foundation
