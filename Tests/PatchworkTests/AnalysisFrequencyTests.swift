import Foundation
import XCTest
import Patchwork
import PatchworkAnalysis
import PatchworkData

/// FFT, Fourier basis, band-limited noise, filters and feature-map frequencies: known answers.
final class AnalysisFrequencyTests: XCTestCase {
    /// The DFT by its definition, in Double.
    func directDFT(_ re: [Float], _ im: [Float], _ h: Int, _ w: Int, sign: Double) -> ([Double], [Double]) {
        var outRe = [Double](repeating: 0, count: h * w), outIm = outRe
        for k in 0..<h { for l in 0..<w {
            var sr = 0.0, si = 0.0
            for m in 0..<h { for n in 0..<w {
                let phase = sign * 2 * Double.pi * (Double(k * m) / Double(h) + Double(l * n) / Double(w))
                let (c, s) = (cos(phase), sin(phase))
                let (a, b) = (Double(re[m * w + n]), Double(im[m * w + n]))
                sr += a * c - b * s; si += a * s + b * c
            } }
            outRe[k * w + l] = sr; outIm[k * w + l] = si
        } }
        return (outRe, outIm)
    }

    func testFFTAgreesWithTheDirectDFT() {
        let g = Generator(seed: 5)
        for (h, w) in [(6, 10), (8, 8), (5, 7), (1, 4)] {
            let re = (0..<(h * w)).map { _ in g.nextNormal() }, im = (0..<(h * w)).map { _ in g.nextNormal() }
            let fast = FFT.forward(ComplexPlane(height: h, width: w, real: re, imaginary: im))
            let (dr, di) = directDFT(re, im, h, w, sign: -1)
            for i in 0..<(h * w) {
                XCTAssertEqual(Double(fast.real[i]), dr[i], accuracy: 1e-4 * Double(h * w), "\(h)×\(w) real[\(i)]")
                XCTAssertEqual(Double(fast.imaginary[i]), di[i], accuracy: 1e-4 * Double(h * w), "\(h)×\(w) imag[\(i)]")
            }
            // The inverse divides by H·W and undoes the forward transform.
            let back = FFT.inverse(fast)
            for i in 0..<(h * w) {
                XCTAssertEqual(back.real[i], re[i], accuracy: 1e-5)
                XCTAssertEqual(back.imaginary[i], im[i], accuracy: 1e-5)
            }
            let (ir, _) = directDFT(fast.real, fast.imaginary, h, w, sign: 1)
            XCTAssertEqual(Double(back.real[0]), ir[0] / Double(h * w), accuracy: 1e-4)
        }
    }

    func testFourierBasisHasUnitNormAndASingleFrequency() {
        let (h, w) = (16, 16)
        for (u, v) in [(0, 0), (1, 0), (3, -5), (8, 8), (-7, 2)] {
            let b = FourierHeatmap.basis(u: u, v: v, height: h, width: w)
            XCTAssertEqual(b.reduce(0) { $0 + Double($1) * Double($1) }, 1, accuracy: 1e-5, "(\(u), \(v)) norm")
            let s = FFT.forward(real: b, height: h, width: w)
            let energy = zip(s.real, s.imaginary).map { Double($0 * $0 + $1 * $1) }
            let total = energy.reduce(0, +)
            let i = ((u % h) + h) % h, j = ((v % w) + w) % w, ci = ((-u % h) + h) % h, cj = ((-v % w) + w) % w
            let inside = energy[i * w + j] + (i * w + j == ci * w + cj ? 0 : energy[ci * w + cj])
            XCTAssertEqual(inside / total, 1, accuracy: 1e-6, "(\(u), \(v)): energy outside ±(u, v)")
        }
    }

    func testBandLimitedNoiseHasItsEnergyInItsBandAndTheStatedNorm() {
        let (h, w, c) = (32, 32, 3)
        let radii = FFT.radialFrequencies(height: h, width: w)
        let g = Generator(seed: 11)
        let bands = 8
        for k in 0..<bands {
            let (lo, hi) = FrequencyNoise.band(k, of: bands, height: h, width: w)
            let mask = FrequencyNoise.bandMask(lo: lo, hi: hi, closed: k == bands - 1, height: h, width: w)
            XCTAssertGreaterThan(mask.reduce(0, +), 0, "band \(k) holds no frequency")
            let noise = FrequencyNoise.bandLimitedNoise(height: h, width: w, channels: c, mask: mask, norm: 4, generator: g)
            for ch in 0..<c {
                let plane = (0..<(h * w)).map { noise[$0 * c + ch] }
                let norm = plane.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
                XCTAssertEqual(norm, 4, accuracy: 1e-4, "band \(k) channel \(ch): L2 norm")
                let s = FFT.forward(real: plane, height: h, width: w)
                var inside = 0.0, total = 0.0
                for i in 0..<(h * w) {
                    let e = Double(s.real[i] * s.real[i] + s.imaginary[i] * s.imaginary[i])
                    total += e
                    let r = Double(radii[i])
                    if r >= lo - 1e-9 && (r < hi - 1e-9 || (k == bands - 1 && r <= hi + 1e-9)) { inside += e }
                }
                XCTAssertGreaterThan(inside / total, 0.9999, "band \(k) [\(lo), \(hi)) channel \(ch): energy fraction in band")
            }
        }
        // The bands tile the spectrum: every frequency is in exactly one band.
        var cover = [Float](repeating: 0, count: h * w)
        for k in 0..<bands {
            let (lo, hi) = FrequencyNoise.band(k, of: bands, height: h, width: w)
            let m = FrequencyNoise.bandMask(lo: lo, hi: hi, closed: k == bands - 1, height: h, width: w)
            for i in 0..<(h * w) { cover[i] += m[i] }
        }
        XCTAssertEqual(Set(cover), [1])
    }

    func testLowPassAndHighPassSplitAnImage() {
        let (h, w, c) = (16, 16, 3)
        let g = Generator(seed: 3)
        let image = (0..<(h * w * c)).map { _ in g.nextUniform() }
        let radii = FFT.radialFrequencies(height: h, width: w)
        let low = FFT.filter(image: image, height: h, width: w, channels: c, mask: radii.map { $0 <= 3 ? 1 : 0 })
        let high = FFT.filter(image: image, height: h, width: w, channels: c, mask: radii.map { $0 > 3 ? 1 : 0 })
        for i in image.indices { XCTAssertEqual(low[i] + high[i], image[i], accuracy: 1e-5) }
        let all = FFT.filter(image: image, height: h, width: w, channels: c, mask: radii.map { _ in 1 })
        for i in image.indices { XCTAssertEqual(all[i], image[i], accuracy: 1e-5) }
    }

    func testFeatureFrequencyOfKnownMaps() {
        // Tokens [B, 1 + 4·4, D]: the class token is dropped and the rest laid on a 4×4 grid.
        let tokens = Tensor((0..<(2 * 17 * 3)).map(Float.init), shape: [2, 17, 3])
        let (map, prefix) = FeatureFrequency.featureMap(tokens)!
        XCTAssertEqual(prefix, 1)
        XCTAssertEqual(map.shape, [2, 4, 4, 3])
        XCTAssertEqual(map[0, 0, 0, 0], 3)   // token 1, channel 0
        // A checkerboard has all its energy at (π, π); a constant map none there.
        let (h, w) = (8, 8)
        let checker = Tensor((0..<(h * w)).map { Float((($0 / w) + ($0 % w)) % 2 == 0 ? 1 : -1) + 0.01 }, shape: [1, h, w, 1])
        let flat = Tensor.full([1, h, w, 1], 2)
        let cCurve = FeatureFrequency.relativeLogAmplitude(checker), fCurve = FeatureFrequency.relativeLogAmplitude(flat)
        XCTAssertEqual(cCurve.count, 5)
        XCTAssertEqual(cCurve[0], 0)
        XCTAssertEqual(cCurve[4], log(64.0) - log(0.64), accuracy: 1e-3, "checkerboard: |F(π,π)| = 64 vs |F(0,0)| = 0.64")
        XCTAssertLessThan(fCurve[4], log(1e-5 / 128), "flat map: (next to) nothing at π; |F(0,0)| = 128")
    }
}
