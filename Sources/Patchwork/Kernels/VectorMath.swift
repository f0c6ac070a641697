import CPatchworkKernels

/// Vectorised functions on 16 floats at a time.
///
/// Polynomial approximations (Cephes and Numerical Recipes forms) accurate to
/// a few float32 ulps. exp, tanh, erf and sigmoid are CPatchworkKernels' (one
/// implementation for tensors and single vectors); the rest are SIMD16 Swift.
/// Scalar versions call the same code on a splat vector, so a value computes
/// the same whether it lands in a vector body or a tail.
public typealias Vec = SIMD16<Float>

public enum VectorMath {
    /// e^x. Underflows to 0 below -87.3; +inf from about 88.38, where x·log2(e) rounds to 128.
    @inline(__always)
    public static func exp(_ x: Vec) -> Vec { kernel(Int32(PW_EXP), x) }

    /// f(x) per lane for f one of CPatchworkKernels' activations (PW_EXP … PW_GELU_TANH).
    ///
    /// The C kernels are the engine's one implementation of these functions: C gets FMA and the
    /// running CPU's SIMD width, which Swift compiled for baseline x86-64 does not (kernels.c).
    /// Whole tensors go through `pw_unary` directly; this is for single vectors.
    @inline(__always)
    static func kernel(_ op: Int32, _ x: Vec) -> Vec {
        var y = Vec()
        withUnsafePointer(to: x) { px in
            withUnsafeMutablePointer(to: &y) { py in
                px.withMemoryRebound(to: Float.self, capacity: 16) { xs in
                    py.withMemoryRebound(to: Float.self, capacity: 16) { ys in pw_unary(op, xs, ys, 16) }
                }
            }
        }
        return y
    }

    /// g·f′(x) per lane for f one of PW_SILU, PW_GELU, PW_GELU_TANH (`pw_pullback` on one vector).
    @inline(__always)
    static func kernelPullback(_ op: Int32, _ g: Vec, _ x: Vec) -> Vec {
        var y = Vec()
        withUnsafePointer(to: g) { pg in
            withUnsafePointer(to: x) { px in
                withUnsafeMutablePointer(to: &y) { py in
                    pg.withMemoryRebound(to: Float.self, capacity: 16) { gs in
                        px.withMemoryRebound(to: Float.self, capacity: 16) { xs in
                            py.withMemoryRebound(to: Float.self, capacity: 16) { ys in
                                pw_pullback(op, gs, xs, ys, 16)
                            }
                        }
                    }
                }
            }
        }
        return y
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

    /// tanh(x): odd polynomial near 0 and 1 − 2/(e^{2|x|} + 1) beyond.
    @inline(__always)
    public static func tanh(_ x: Vec) -> Vec { kernel(Int32(PW_TANH), x) }

    /// erf(x) from Numerical Recipes' erfc (fractional error below 1.2e-7).
    @inline(__always)
    public static func erf(_ x: Vec) -> Vec { kernel(Int32(PW_ERF), x) }

    /// |x| by clearing the sign bit.
    @inline(__always)
    public static func abs(_ x: Vec) -> Vec {
        unsafeBitCast(unsafeBitCast(x, to: SIMD16<UInt32>.self) & 0x7FFF_FFFF, to: Vec.self)
    }

    @inline(__always)
    public static func sigmoid(_ x: Vec) -> Vec { kernel(Int32(PW_SIGMOID), x) }

    @inline(__always) public static func exp(_ x: Float) -> Float { exp(Vec(repeating: x))[0] }
    @inline(__always) public static func tanh(_ x: Float) -> Float { tanh(Vec(repeating: x))[0] }
    @inline(__always) public static func erf(_ x: Float) -> Float { erf(Vec(repeating: x))[0] }
    @inline(__always) public static func sigmoid(_ x: Float) -> Float { sigmoid(Vec(repeating: x))[0] }
}
