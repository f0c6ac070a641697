/// Vectorised transcendental functions on 16 floats at a time.
///
/// Polynomial approximations (Cephes and Numerical Recipes forms) accurate to
/// a few float32 ulps, written with SIMD16 so the compiler emits AVX-512 or
/// two AVX2 halves. Scalar versions call the same code on a splat vector, so a
/// value computes the same whether it lands in a vector body or a tail.
public typealias Vec = SIMD16<Float>

public enum VectorMath {
    /// e^x. Underflows to 0 below -87.3; saturates near Float.greatestFiniteMagnitude above 88.7.
    @inline(__always)
    public static func exp(_ x: Vec) -> Vec {
        let clamped = clamp(x, -87.3, 88.7)
        // Round x·log2(e) to the nearest integer n with the 1.5·2^23 trick: adding the
        // magic constant leaves n in the low mantissa bits (no float→int conversion).
        let magic = Vec(repeating: 12_582_912)
        let shifted = clamped * 1.44269504088896341 + magic
        let n = shifted - magic
        var r = clamped - n * 0.693359375
        r = r - n * -2.12194440e-4
        let z = r * r
        var y = Vec(repeating: 1.9875691500e-4)
        y = y * r + 1.3981999507e-3
        y = y * r + 8.3334519073e-3
        y = y * r + 4.1665795894e-2
        y = y * r + 1.6666665459e-1
        y = y * r + 5.0000001201e-1
        y = y * z + r + 1
        let nBits = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- unsafeBitCast(magic, to: SIMD16<Int32>.self)
        let scale = unsafeBitCast((nBits &+ 127) &<< 23, to: Vec.self)
        let result = select(less(x, Vec(repeating: -87.3)), Vec(repeating: 0), y * scale)
        return select(isNaN(x), x, result)  // NaN stays NaN
    }

    /// min(max(x, lo), hi) (see LaneMask.swift for why not `clamped`).
    @inline(__always)
    public static func clamp(_ x: Vec, _ lo: Float, _ hi: Float) -> Vec {
        let l = Vec(repeating: lo), h = Vec(repeating: hi)
        let above = select(less(x, l), l, x)
        return select(greater(above, h), h, above)
    }

    /// The larger of a and b per lane (a when either is NaN: every comparison with NaN is false).
    @inline(__always)
    public static func max(_ a: Vec, _ b: Vec) -> Vec { select(greater(b, a), b, a) }

    @inline(__always)
    public static func min(_ a: Vec, _ b: Vec) -> Vec { select(less(b, a), b, a) }

    /// Natural log (Cephes logf): 0 → -inf, negative → NaN, +inf → +inf.
    @inline(__always)
    public static func log(_ x: Vec) -> Vec {
        let bits = unsafeBitCast(x, to: SIMD16<Int32>.self)
        // x = m · 2^e with m in [0.5, 1)
        var e = Vec((bits &>> 23) &- 126)
        var m = unsafeBitCast((bits & 0x007F_FFFF) | 0x3F00_0000, to: Vec.self)
        let small = less(m, Vec(repeating: 0.707106781186547524))
        e = select(small, e - 1, e)
        m = select(small, m + m, m)
        let f = m - 1
        let z = f * f
        var p = Vec(repeating: 7.0376836292e-2)
        p = p * f - 1.1514610310e-1
        p = p * f + 1.1676998740e-1
        p = p * f - 1.2420140846e-1
        p = p * f + 1.4249322787e-1
        p = p * f - 1.6668057665e-1
        p = p * f + 2.0000714765e-1
        p = p * f - 2.4999993993e-1
        p = p * f + 3.3333331174e-1
        var y = p * f * z
        y = y + e * -2.12194440e-4
        y = y - 0.5 * z
        var result = f + y + e * 0.693359375
        let zero = Vec(repeating: 0)
        result = select(equal(x, zero), Vec(repeating: -.infinity), result)
        result = select(less(x, zero), Vec(repeating: .nan), result)
        result = select(equal(x, Vec(repeating: .infinity)), x, result)
        return select(isNaN(x), x, result)
    }

    /// log(1 + eˣ), accurate for large negative x, linear above `threshold` (torch's Softplus).
    @inline(__always)
    public static func softplus(_ x: Vec, threshold: Float = 20) -> Vec {
        let y = exp(-abs(x))
        let u = 1 + y
        // log1p(y) = log(u)·y/(u−1), exact where u rounds to 1 (Goldberg's trick).
        let log1p = select(equal(u, Vec(repeating: 1)), y, log(u) * y / (u - 1))
        let result = max(x, Vec(repeating: 0)) + log1p
        return select(greater(x, Vec(repeating: threshold)), x, result)
    }

    /// tanh(x), odd polynomial near 0 and 1 - 2/(e^{2|x|}+1) beyond.
    @inline(__always)
    public static func tanh(_ x: Vec) -> Vec {
        let ax = VectorMath.abs(x)
        let z = x * x
        var p = Vec(repeating: -5.70498872745e-3)
        p = p * z + 2.06390887954e-2
        p = p * z - 5.37397155531e-2
        p = p * z + 1.33314422036e-1
        p = p * z - 3.33332819422e-1
        let small = p * z * x + x
        let e = exp(2 * clamp(ax, 0, 44))
        let large = copySign(1 - 2 / (e + 1), x)
        return select(less(ax, Vec(repeating: 0.625)), small, large)
    }

    /// erf(x) from Numerical Recipes' erfc (fractional error below 1.2e-7).
    @inline(__always)
    public static func erf(_ x: Vec) -> Vec {
        let z = VectorMath.abs(x)
        let t = Vec(repeating: 1) / (Vec(repeating: 1) + Vec(repeating: 0.5) * z)
        var p = Vec(repeating: 0.17087277)
        p = p * t - 0.82215223
        p = p * t + 1.48851587
        p = p * t - 1.13520398
        p = p * t + 0.27886807
        p = p * t - 0.18628806
        p = p * t + 0.09678418
        p = p * t + 0.37409196
        p = p * t + 1.00002368
        p = p * t - 1.26551223
        let erfcAbs = t * exp(-z * z + p)
        return copySign(1 - erfcAbs, x)
    }

    /// |x| by clearing the sign bit.
    @inline(__always)
    public static func abs(_ x: Vec) -> Vec {
        unsafeBitCast(unsafeBitCast(x, to: SIMD16<UInt32>.self) & 0x7FFF_FFFF, to: Vec.self)
    }

    @inline(__always)
    public static func sigmoid(_ x: Vec) -> Vec { 1 / (1 + exp(-x)) }

    @inline(__always) public static func exp(_ x: Float) -> Float { exp(Vec(repeating: x))[0] }
    @inline(__always) public static func tanh(_ x: Float) -> Float { tanh(Vec(repeating: x))[0] }
    @inline(__always) public static func erf(_ x: Float) -> Float { erf(Vec(repeating: x))[0] }
    @inline(__always) public static func sigmoid(_ x: Float) -> Float { sigmoid(Vec(repeating: x))[0] }
}
