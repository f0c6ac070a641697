import CFFTW
import Foundation
import Patchwork  // require

/// A complex 2-D array, row-major [height, width], as two planes.
public struct ComplexPlane: Sendable {
    public var height: Int
    public var width: Int
    public var real: [Float]
    public var imaginary: [Float]

    public init(height: Int, width: Int, real: [Float], imaginary: [Float]? = nil) {
        require(real.count == height * width, "ComplexPlane", "\(real.count) values do not fill \(height)×\(width)")
        self.height = height; self.width = width; self.real = real
        self.imaginary = imaginary ?? [Float](repeating: 0, count: real.count)
    }

    /// |z| at every point.
    public var magnitude: [Float] { zip(real, imaginary).map { ($0 * $0 + $1 * $1).squareRoot() } }
}

/// 2-D discrete Fourier transforms through FFTW (Debian's libfftw3-dev,
/// single precision), the one transform the analyses use.
///
/// Conventions are numpy's: `forward` is X[k,l] = Σ x[m,n]·e^{-2πi(km/H + ln/W)},
/// `inverse` divides by H·W, so inverse(forward(x)) = x. Frequency index k
/// stands for the signed frequency k for k ≤ H/2 and k − H above (see
/// `signedFrequency`).
public enum FFT {
    private struct PlanKey: Hashable { let height: Int, width: Int, sign: Int32 }
    nonisolated(unsafe) private static var plans: [PlanKey: fftwf_plan] = [:]
    private static let lock = NSLock()

    /// FFTW's planner is not thread-safe; plans are made once per size under a
    /// lock and then run on any arrays (FFTW_UNALIGNED) from any thread.
    private static func plan(height: Int, width: Int, sign: Int32) -> fftwf_plan {
        lock.lock(); defer { lock.unlock() }
        let key = PlanKey(height: height, width: width, sign: sign)
        if let p = plans[key] { return p }
        let n = height * width
        let a = fftwf_alloc_complex(n)!, b = fftwf_alloc_complex(n)!
        defer { fftwf_free(a); fftwf_free(b) }
        guard let p = fftwf_plan_dft_2d(Int32(height), Int32(width), a, b, sign, UInt32(FFTW_ESTIMATE) | UInt32(FFTW_UNALIGNED)) else {
            fatalError("FFT: FFTW cannot plan a \(height)×\(width) transform")
        }
        plans[key] = p
        return p
    }

    static func run(_ x: ComplexPlane, sign: Int32) -> ComplexPlane {
        let (h, w) = (x.height, x.width)
        let n = h * w
        guard n > 0 else { return x }
        let p = plan(height: h, width: w, sign: sign)
        var interleaved = [Float](repeating: 0, count: 2 * n)
        for i in 0..<n { interleaved[2 * i] = x.real[i]; interleaved[2 * i + 1] = x.imaginary[i] }
        var out = [Float](repeating: 0, count: 2 * n)
        interleaved.withUnsafeMutableBytes { src in
            out.withUnsafeMutableBytes { dst in
                fftwf_execute_dft(p, src.baseAddress!.assumingMemoryBound(to: fftwf_complex.self),
                                  dst.baseAddress!.assumingMemoryBound(to: fftwf_complex.self))
            }
        }
        var re = [Float](repeating: 0, count: n), im = [Float](repeating: 0, count: n)
        for i in 0..<n { re[i] = out[2 * i]; im[i] = out[2 * i + 1] }
        return ComplexPlane(height: h, width: w, real: re, imaginary: im)
    }

    /// The forward transform of a complex plane.
    public static func forward(_ x: ComplexPlane) -> ComplexPlane { run(x, sign: FFTW_FORWARD) }

    /// The forward transform of a real [height, width] plane.
    public static func forward(real x: [Float], height: Int, width: Int) -> ComplexPlane {
        forward(ComplexPlane(height: height, width: width, real: x))
    }

    /// The inverse transform, divided by H·W.
    public static func inverse(_ x: ComplexPlane) -> ComplexPlane {
        var y = run(x, sign: FFTW_BACKWARD)
        let scale = 1 / Float(x.height * x.width)
        for i in 0..<y.real.count { y.real[i] *= scale; y.imaginary[i] *= scale }
        return y
    }

    /// The signed frequency of index `k` along an axis of length `n`: k for
    /// k ≤ n/2, k − n above (numpy's fftfreq times n).
    public static func signedFrequency(_ k: Int, _ n: Int) -> Int { k <= n / 2 ? k : k - n }

    /// The radial frequency √(u² + v²) of every index of an H×W spectrum,
    /// in cycles per image side (for square images).
    public static func radialFrequencies(height: Int, width: Int) -> [Float] {
        var r = [Float](repeating: 0, count: height * width)
        for i in 0..<height {
            let u = Float(signedFrequency(i, height))
            for j in 0..<width {
                let v = Float(signedFrequency(j, width))
                r[i * width + j] = (u * u + v * v).squareRoot()
            }
        }
        return r
    }

    /// Filters each channel of an [H, W, C] image (row-major, channels last)
    /// by multiplying its spectrum with `mask` (H·W real weights, which must
    /// be symmetric under (u, v) → (−u, −v) for a real result); returns the
    /// real part.
    public static func filter(image: [Float], height: Int, width: Int, channels: Int, mask: [Float]) -> [Float] {
        require(mask.count == height * width && image.count == height * width * channels, "FFT.filter",
                "image of \(image.count) values and mask of \(mask.count) do not match \(height)×\(width)×\(channels)")
        var out = [Float](repeating: 0, count: image.count)
        let n = height * width
        for c in 0..<channels {
            var plane = [Float](repeating: 0, count: n)
            for i in 0..<n { plane[i] = image[i * channels + c] }
            var s = forward(real: plane, height: height, width: width)
            for i in 0..<n { s.real[i] *= mask[i]; s.imaginary[i] *= mask[i] }
            let back = inverse(s)
            for i in 0..<n { out[i * channels + c] = back.real[i] }
        }
        return out
    }
}
