import Foundation

/// A seeded random number generator whose stream is fixed by its seed.
///
/// Algorithm (documented so runs are reproducible on any machine):
/// - state: xoshiro256** (Blackman & Vigna 2018), four 64-bit words seeded by
///   SplitMix64 from the 64-bit seed;
/// - uniform [0, 1): the top 24 bits of the next 64-bit output times 2^-24;
/// - normal: Box–Muller in double precision on two uniforms, (0, 1] and
///   [0, 1): r = sqrt(-2 ln u1), z0 = r cos(2π u2), z1 = r sin(2π u2); both
///   values are used, z0 first, then rounded to Float;
/// - truncated normal: normal draws rejected until inside [lower, upper].
public final class Generator: RandomNumberGenerator, @unchecked Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)
    private var spareNormal: Double?

    public init(seed: UInt64) {
        s = Generator.seededState(seed)
    }

    /// Restarts the stream as if freshly created with `seed`.
    public func reseed(_ seed: UInt64) {
        s = Generator.seededState(seed)
        spareNormal = nil
    }

    /// A seed derived from several numbers (a run's seed, an epoch, a step, a
    /// layer index) by SplitMix64 mixing, so related streams do not overlap.
    public static func derivedSeed(_ parts: UInt64...) -> UInt64 {
        var h: UInt64 = 0x243F_6A88_85A3_08D3
        for p in parts { h = seededState(h ^ p).0 }
        return h
    }

    private static func seededState(_ seed: UInt64) -> (UInt64, UInt64, UInt64, UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        return (splitMix(), splitMix(), splitMix(), splitMix())
    }

    /// The process-wide generator used when none is given (seed 0).
    nonisolated(unsafe) public static var global = Generator(seed: 0)

    public func next() -> UInt64 {
        let result = rotl(s.1 &* 5, 7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3
        s.2 ^= t
        s.3 = rotl(s.3, 45)
        return result
    }

    @inline(__always) private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Uniform in [0, 1).
    public func nextUniform() -> Float { Float(next() >> 40) * 0x1p-24 }

    /// Standard normal.
    public func nextNormal() -> Float {
        if let z = spareNormal { spareNormal = nil; return Float(z) }
        let u1 = Double((next() >> 11) + 1) * 0x1p-53    // (0, 1]
        let u2 = Double(next() >> 11) * 0x1p-53          // [0, 1)
        let r = (-2 * Foundation.log(u1)).squareRoot()
        spareNormal = r * Foundation.sin(2 * Double.pi * u2)
        return Float(r * Foundation.cos(2 * Double.pi * u2))
    }

    /// A uniformly chosen integer in `0..<bound`.
    public func nextInt(below bound: Int) -> Int { Int(next() % UInt64(bound)) }
}

extension Tensor {
    public static func zeros(_ shape: [Int]) -> Tensor { full(shape, 0) }
    public static func ones(_ shape: [Int]) -> Tensor { full(shape, 1) }

    public static func full(_ shape: [Int], _ value: Float) -> Tensor {
        if let bad = shape.firstIndex(where: { $0 < 0 }) { fail("full", "negative size \(shape[bad]) in shape \(shape)") }
        let count = shape.reduce(1, *)
        return Tensor(storage: TensorStorage(count: count, repeating: value), shape: shape, strides: contiguousStrides(shape))
    }

    public static func zeros(like x: Tensor) -> Tensor { zeros(x.shape) }
    public static func ones(like x: Tensor) -> Tensor { ones(x.shape) }

    /// start, start+step, ... below end (as torch.arange).
    public static func arange(_ start: Float, _ end: Float, step: Float = 1) -> Tensor {
        guard step != 0, (end - start) / step >= 0 else { fail("arange", "step \(step) cannot go from \(start) to \(end)") }
        let n = Int(((end - start) / step).rounded(.up))
        return Tensor((0..<n).map { start + Float($0) * step }, shape: [n])
    }

    public static func arange(_ end: Int) -> Tensor { arange(0, Float(end)) }

    /// The n×n identity matrix.
    public static func eye(_ n: Int) -> Tensor {
        let t = zeros([n, n])
        for i in 0..<n { t.storage.pointer[i * n + i] = 1 }
        return t
    }

    private static func generated(_ shape: [Int], _ draw: () -> Float) -> Tensor {
        if let bad = shape.firstIndex(where: { $0 < 0 }) { fail("random", "negative size \(shape[bad]) in shape \(shape)") }
        let t = Tensor(uninitializedShape: shape)
        for i in 0..<t.count { t.storage.pointer[i] = draw() }
        return t
    }

    /// Normal(mean, std) values from `generator`.
    public static func randomNormal(_ shape: [Int], mean: Float = 0, std: Float = 1, generator: Generator = .global) -> Tensor {
        generated(shape) { mean + std * generator.nextNormal() }
    }

    /// Uniform [low, high) values from `generator`.
    public static func randomUniform(_ shape: [Int], low: Float = 0, high: Float = 1, generator: Generator = .global) -> Tensor {
        generated(shape) { low + (high - low) * generator.nextUniform() }
    }

    /// Normal(mean, std) values redrawn until inside [lower, upper] (absolute bounds, as torch's trunc_normal_).
    public static func randomTruncatedNormal(_ shape: [Int], mean: Float = 0, std: Float = 1,
                                             lower: Float = -2, upper: Float = 2, generator: Generator = .global) -> Tensor {
        guard lower < upper, mean - 6 * std < upper, mean + 6 * std > lower else {
            fail("randomTruncatedNormal", "bounds [\(lower), \(upper)] leave almost no mass for Normal(\(mean), \(std))")
        }
        return generated(shape) {
            while true {
                let v = mean + std * generator.nextNormal()
                if v >= lower && v <= upper { return v }
            }
        }
    }
}
