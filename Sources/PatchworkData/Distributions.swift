import Foundation
import Patchwork

/// Draws that augmentations need beyond `Generator`'s uniform and normal ones,
/// all from the generator's stream (so a seeded loader stays reproducible).
extension Generator {
    /// Uniform in the open interval (0, 1), with 53 random bits.
    public func nextOpenUniformDouble() -> Double {
        (Double(next() >> 11) + 0.5) * 0x1p-53
    }

    /// Uniform in [low, high) as `low + (high - low)·u` with u = `nextUniform()`.
    public func nextUniform(_ low: Float, _ high: Float) -> Float {
        low + (high - low) * nextUniform()
    }

    /// Standard normal in double precision (Box–Muller, cosine branch only).
    public func nextNormalDouble() -> Double {
        let u1 = nextOpenUniformDouble(), u2 = nextOpenUniformDouble()
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
    }

    /// Gamma(shape, 1) by Marsaglia & Tsang (2000): for shape ≥ 1, with
    /// d = shape - 1/3 and c = 1/√(9d), draw x normal, v = (1 + c·x)³, and
    /// accept d·v when u < 1 - 0.0331·x⁴ or log u < x²/2 + d·(1 - v + log v).
    /// For shape < 1, Gamma(shape + 1)·u^(1/shape).
    public func nextGamma(shape: Double) -> Double {
        guard shape > 0 else { fail("Generator.nextGamma", "shape \(shape) must be positive") }
        if shape < 1 {
            let g = nextGamma(shape: shape + 1)
            return g * Foundation.pow(nextOpenUniformDouble(), 1 / shape)
        }
        let d = shape - 1.0 / 3.0, c = 1 / (9 * d).squareRoot()
        while true {
            let x = nextNormalDouble()
            var v = 1 + c * x
            if v <= 0 { continue }
            v = v * v * v
            let u = nextOpenUniformDouble()
            let x2 = x * x
            if u < 1 - 0.0331 * x2 * x2 { return d * v }
            if Foundation.log(u) < 0.5 * x2 + d * (1 - v + Foundation.log(v)) { return d * v }
        }
    }

    /// Beta(a, b) as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b).
    public func nextBeta(_ a: Double, _ b: Double) -> Double {
        guard a > 0, b > 0 else { fail("Generator.nextBeta", "parameters (\(a), \(b)) must be positive") }
        let x = nextGamma(shape: a), y = nextGamma(shape: b)
        let s = x + y
        // Both draws can underflow for tiny shapes; the limit is then a coin flip weighted a : b.
        if !(s > 0) { return nextOpenUniformDouble() < a / (a + b) ? 1 : 0 }
        return x / s
    }

    /// A random permutation of 0..<n (Fisher–Yates, from the last position down).
    public func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n > 1 {
            for i in stride(from: n - 1, to: 0, by: -1) { p.swapAt(i, nextInt(below: i + 1)) }
        }
        return p
    }
}
