import Foundation
import Patchwork

/// Accuracy under Gaussian noise band-limited to successive radial frequency
/// bands (all at the same L2 norm), and accuracy of low-pass and high-pass
/// filtered inputs by cut-off radius.
///
/// Radii are in cycles per image side: r(u, v) = √(u² + v²) with signed
/// frequencies, from 0 (the mean) to r_max = √((H/2)² + (W/2)²) (the corner).
public enum FrequencyNoise {
    /// Band k of `count` equal-width bands over [0, r_max]: [lo, hi), the last one closed.
    public static func band(_ k: Int, of count: Int, height: Int, width: Int) -> (lo: Double, hi: Double) {
        let rmax = maxRadius(height: height, width: width)
        return (rmax * Double(k) / Double(count), rmax * Double(k + 1) / Double(count))
    }

    public static func maxRadius(height: Int, width: Int) -> Double {
        (Double(height / 2 * (height / 2) + width / 2 * (width / 2))).squareRoot()
    }

    /// 1 on the frequencies of band [lo, hi) (hi included when `closed`), 0 elsewhere.
    public static func bandMask(lo: Double, hi: Double, closed: Bool, height: Int, width: Int) -> [Float] {
        FFT.radialFrequencies(height: height, width: width).map { r in
            let r = Double(r)
            return r >= lo - 1e-9 && (r < hi - 1e-9 || (closed && r <= hi + 1e-9)) ? 1 : 0
        }
    }

    /// Gaussian noise for one [H, W, C] image restricted to the frequencies of
    /// `mask` (per channel), then scaled so that each channel has L2 norm `norm`.
    public static func bandLimitedNoise(height: Int, width: Int, channels: Int, mask: [Float], norm: Float,
                                        generator: Generator) -> [Float] {
        var white = [Float](repeating: 0, count: height * width * channels)
        for i in white.indices { white[i] = generator.nextNormal() }
        var noise = FFT.filter(image: white, height: height, width: width, channels: channels, mask: mask)
        for c in 0..<channels {
            var s = 0.0
            for p in 0..<(height * width) { s += Double(noise[p * channels + c]) * Double(noise[p * channels + c]) }
            let scale = s > 0 ? Double(norm) / s.squareRoot() : 0
            for p in 0..<(height * width) { noise[p * channels + c] = Float(Double(noise[p * channels + c]) * scale) }
        }
        return noise
    }

    public struct Band: Encodable {
        public var lo: Double
        public var hi: Double
        public var frequencies: Int
        public var accuracy: Double
        /// The error this noise adds as a share of the room above chance
        /// (`Statistics.scaledError`); nil when the clean model is within 0.02 of chance.
        public var scaledError: Double?
    }

    public struct Cutoff: Encodable {
        public var radius: Double
        public var lowPassAccuracy: Double
        public var highPassAccuracy: Double
    }

    public struct Summary: Encodable {
        public var cleanAccuracy: Double
        public var lowestBandAccuracy: Double
        public var highestBandAccuracy: Double
        /// The band whose noise hurts most, and its accuracy.
        public var worstBand: Int
        public var worstBandAccuracy: Double
        /// Smallest low-pass radius keeping ≥ 90 % of clean accuracy (nil when none does).
        public var lowPassRadiusFor90PercentOfClean: Double?
        /// Largest high-pass radius keeping ≥ 90 % of clean accuracy (nil when none does).
        public var highPassRadiusFor90PercentOfClean: Double?
        /// Accuracy under the same noise restricted to the low band (0 < radius ≤ `bandCutoff`)
        /// and to the high band (radius > `bandCutoff`), and their scaled errors (nil near chance).
        public var bandCutoff: Double
        public var lowBandAccuracy: Double
        public var highBandAccuracy: Double
        public var lowBandScaledError: Double?
        public var highBandScaledError: Double?
    }

    public struct Settings: Encodable {
        public var source: RunSource
        public var images: Int
        public var bands: Int
        public var norm: Double
        public var normPer = "channel"
        public var noiseClip = "[0, 1]"
        public var filteredClip = "none (filtered images keep the mean, DC, and are not clipped)"
        public var maxRadius: Double
        public var cutoffs: [Double]
        public var lowHighBands: FrequencyBands
        public var classes: Int
        public var scaledError = "(error − clean error) / ((1 − clean error) − 1/classes), error = 1 − accuracy; null when that room is ≤ 0.02"
        public var command: String
    }

    public struct Data: Encodable {
        public var bands: [Band]
        public var cutoffs: [Cutoff]
    }

    public typealias Report = AnalysisReport<Summary, Settings, Data>

    /// `lowHighBands` (default: a quarter of the image side, 8 for 32 px) gives the
    /// summary's low-band and high-band noise.
    public static func run(_ model: AnalysisModel, images set: ImageSet, bands bandCount: Int, norm: Double, cutoffs: [Double]?,
                           lowHighBands: FrequencyBands? = nil, seed: UInt64, source: RunSource, command: String,
                           progress: ProgressHandler? = nil) throws -> Report {
        guard bandCount >= 1 else { throw AnalysisError("--bands must be at least 1, got \(bandCount)") }
        guard norm >= 0, norm.isFinite else { throw AnalysisError("the noise norm must be a finite number ≥ 0, got \(norm)") }
        let (h, w, c, n) = (set.height, set.width, set.channels, set.count)
        let rmax = maxRadius(height: h, width: w)
        let pixels = set.pixels
        let lowHigh = lowHighBands ?? FrequencyBands.quarterOfSide(h)
        guard lowHigh.cutoff >= 0, lowHigh.cutoff.isFinite else {
            throw AnalysisError("frequency-noise: the band cut-off must be ≥ 0, got \(lowHigh.cutoff)")
        }
        let clean = model.accuracy(set.images, labels: set.labels)
        let classes = model.classes(probing: set.images)
        func scaled(_ accuracy: Double) -> Double? { Statistics.scaledError(1 - accuracy, cleanError: 1 - clean, classes: classes) }
        let radii = FFT.radialFrequencies(height: h, width: w)
        /// Accuracy under noise restricted to `mask`, drawn from `g`.
        func noisyAccuracy(_ mask: [Float], _ g: Generator) -> Double {
            var noisy = pixels
            for img in 0..<n {
                let noise = bandLimitedNoise(height: h, width: w, channels: c, mask: mask, norm: Float(norm), generator: g)
                let base = img * h * w * c
                for i in 0..<(h * w * c) { noisy[base + i] = min(max(noisy[base + i] + noise[i], 0), 1) }
            }
            return model.accuracy(Tensor(noisy, shape: set.images.shape), labels: set.labels)
        }
        var bands: [Band] = []
        for k in 0..<bandCount {
            let (lo, hi) = band(k, of: bandCount, height: h, width: w)
            let mask = bandMask(lo: lo, hi: hi, closed: k == bandCount - 1, height: h, width: w)
            let acc = noisyAccuracy(mask, Generator(seed: Generator.derivedSeed(seed, 17, UInt64(k))))
            bands.append(Band(lo: lo, hi: hi, frequencies: Int(mask.reduce(0, +)), accuracy: acc, scaledError: scaled(acc)))
            progress?(String(format: "frequency-noise: band %d/%d [%.2f, %.2f): accuracy %.3f", k + 1, bandCount, lo, hi, acc))
        }
        let radiiList = cutoffs ?? stride(from: 0.0, through: rmax + 1e-9, by: max(rmax / 16, 0.5)).map { $0 }
        var cuts: [Cutoff] = []
        for r in radiiList {
            let low = radii.map { Double($0) <= r + 1e-9 ? Float(1) : 0 }
            let high = radii.enumerated().map { i, f in i == 0 || Double(f) > r + 1e-9 ? Float(1) : 0 }   // keeps the mean (DC)
            var lowImages = [Float](repeating: 0, count: pixels.count), highImages = lowImages
            for img in 0..<n {
                let base = img * h * w * c
                let image = Array(pixels[base..<(base + h * w * c)])
                let l = FFT.filter(image: image, height: h, width: w, channels: c, mask: low)
                let hp = FFT.filter(image: image, height: h, width: w, channels: c, mask: high)
                lowImages.replaceSubrange(base..<(base + h * w * c), with: l)
                highImages.replaceSubrange(base..<(base + h * w * c), with: hp)
            }
            let la = model.accuracy(Tensor(lowImages, shape: set.images.shape), labels: set.labels)
            let ha = model.accuracy(Tensor(highImages, shape: set.images.shape), labels: set.labels)
            cuts.append(Cutoff(radius: r, lowPassAccuracy: la, highPassAccuracy: ha))
            progress?(String(format: "frequency-noise: cut-off %.2f: low-pass %.3f, high-pass %.3f", r, la, ha))
        }
        let lowMask = radii.map { lowHigh.isLow(radius: Double($0)) ? Float(1) : 0 }
        let highMask = radii.map { lowHigh.isHigh(radius: Double($0)) ? Float(1) : 0 }
        let lowAccuracy = noisyAccuracy(lowMask, Generator(seed: Generator.derivedSeed(seed, 18, 0)))
        let highAccuracy = noisyAccuracy(highMask, Generator(seed: Generator.derivedSeed(seed, 18, 1)))
        progress?(String(format: "frequency-noise: low band (≤ %g) %.3f, high band %.3f", lowHigh.cutoff, lowAccuracy, highAccuracy))
        let worst = bands.indices.min { bands[$0].accuracy < bands[$1].accuracy } ?? 0
        let summary = Summary(cleanAccuracy: clean, lowestBandAccuracy: bands.first?.accuracy ?? .nan,
                              highestBandAccuracy: bands.last?.accuracy ?? .nan, worstBand: worst,
                              worstBandAccuracy: bands[worst].accuracy,
                              lowPassRadiusFor90PercentOfClean: cuts.first { $0.lowPassAccuracy >= 0.9 * clean }?.radius,
                              highPassRadiusFor90PercentOfClean: cuts.last { $0.highPassAccuracy >= 0.9 * clean }?.radius,
                              bandCutoff: lowHigh.cutoff, lowBandAccuracy: lowAccuracy, highBandAccuracy: highAccuracy,
                              lowBandScaledError: scaled(lowAccuracy), highBandScaledError: scaled(highAccuracy))
        return Report(analysis: "frequency-noise", summary: summary,
                      settings: Settings(source: source, images: n, bands: bandCount, norm: norm, maxRadius: rmax,
                                         cutoffs: radiiList, lowHighBands: lowHigh, classes: classes, command: command),
                      data: Data(bands: bands, cutoffs: cuts))
    }

    public static func svg(_ report: Report, title: String) -> String {
        let b = report.data.bands, clean = report.summary.cleanAccuracy
        let bandChart = SVGPlot.lineChart(
            title: String(format: "%@ — band-limited Gaussian noise, ‖·‖₂ = %g per channel", title, report.settings.norm),
            xLabel: "band centre radius (cycles per image)", yLabel: "accuracy",
            series: [SVGPlot.Series(name: "noisy", x: b.map { ($0.lo + $0.hi) / 2 }, y: b.map(\.accuracy)),
                     SVGPlot.Series(name: "clean", x: b.map { ($0.lo + $0.hi) / 2 }, y: b.map { _ in clean })],
            yRange: 0...1)
        let cuts = report.data.cutoffs
        let filterChart = SVGPlot.lineChart(
            title: "\(title) — low-pass and high-pass filtered inputs", xLabel: "cut-off radius (cycles per image)", yLabel: "accuracy",
            series: [SVGPlot.Series(name: "low-pass (r ≤ cut-off)", x: cuts.map(\.radius), y: cuts.map(\.lowPassAccuracy)),
                     SVGPlot.Series(name: "high-pass (r > cut-off)", x: cuts.map(\.radius), y: cuts.map(\.highPassAccuracy))],
            yRange: 0...1)
        return SVGPlot.stack([bandChart, filterChart])
    }
}
