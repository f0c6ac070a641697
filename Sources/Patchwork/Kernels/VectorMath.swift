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
        var result = y * scale
        result.replace(with: 0, where: x .< -87.3)
        result.replace(with: x, where: x .!= x)  // NaN stays NaN
        return result
    }

    /// min(max(x, lo), hi) with vector compares and blends (the generic
    /// `clamped` of the standard library is not vectorised).
    @inline(__always)
    public static func clamp(_ x: Vec, _ lo: Float, _ hi: Float) -> Vec {
        var r = x
        r.replace(with: lo, where: x .< lo)
        r.replace(with: hi, where: x .> hi)
        return r
    }

    @inline(__always)
    public static func max(_ a: Vec, _ b: Vec) -> Vec { a.replacing(with: b, where: b .> a) }

    @inline(__always)
    public static func min(_ a: Vec, _ b: Vec) -> Vec { a.replacing(with: b, where: b .< a) }

    /// Natural log (Cephes logf): 0 → -inf, negative → NaN, +inf → +inf.
    @inline(__always)
    public static func log(_ x: Vec) -> Vec {
        let bits = unsafeBitCast(x, to: SIMD16<Int32>.self)
        // x = m · 2^e with m in [0.5, 1)
        var e = Vec((bits &>> 23) &- 126)
        var m = unsafeBitCast((bits & 0x007F_FFFF) | 0x3F00_0000, to: Vec.self)
        let small = m .< 0.707106781186547524
        e = e.replacing(with: e - 1, where: small)
        m = m.replacing(with: m + m, where: small)
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
        result = result.replacing(with: -Float.infinity, where: x .== 0)
        result = result.replacing(with: Float.nan, where: x .< 0)
        result = result.replacing(with: x, where: x .== Float.infinity)
        result = result.replacing(with: x, where: x .!= x)
        return result
    }

    /// log(1 + eˣ), accurate for large negative x, linear above `threshold` (torch's Softplus).
    @inline(__always)
    public static func softplus(_ x: Vec, threshold: Float = 20) -> Vec {
        let y = exp(-abs(x))
        let u = 1 + y
        // log1p(y) = log(u)·y/(u−1), exact where u rounds to 1 (Goldberg's trick).
        var log1p = log(u) * y / (u - 1)
        log1p = log1p.replacing(with: y, where: u .== 1)
        let result = x.replacing(with: 0, where: x .< 0) + log1p
        return result.replacing(with: x, where: x .> threshold)
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
        var large = 1 - 2 / (e + 1)
        large.replace(with: -large, where: x .< 0)
        var result = large
        result.replace(with: small, where: ax .< 0.625)
        return result
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
        var result = 1 - erfcAbs
        result.replace(with: -result, where: x .< 0)
        return result
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
