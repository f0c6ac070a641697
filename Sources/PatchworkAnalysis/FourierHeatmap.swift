import Foundation
import Patchwork

/// Fourier heat map (Yin et al. 2019, "A Fourier perspective on model
/// robustness"): the error rate when every image gets additive noise
/// r·v·U(u,v), where U(u,v) is the real Fourier basis image of frequency
/// (u, v) with unit L2 norm, v the norm, and r = ±1 drawn per image and
/// channel; the result is clipped to [0, 1]. U(u,v) = U(−u,−v), so half the
/// plane is measured and mirrored.
public enum FourierHeatmap {
    /// The real Fourier basis image of frequency (u, v) (signed frequencies)
    /// on an H×W grid, with unit L2 norm: the inverse FFT of a spectrum with
    /// ones at (u, v) and (−u, −v).
    public static func basis(u: Int, v: Int, height: Int, width: Int) -> [Float] {
        var spectrum = ComplexPlane(height: height, width: width, real: [Float](repeating: 0, count: height * width))
        let i = ((u % height) + height) % height, j = ((v % width) + width) % width
        let ci = ((-u % height) + height) % height, cj = ((-v % width) + width) % width
        spectrum.real[i * width + j] = 1
        spectrum.real[ci * width + cj] = 1
        var b = FFT.inverse(spectrum).real
        let norm = b.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
        for k in b.indices { b[k] = Float(Double(b[k]) / norm) }
        return b
    }

    /// Means over the sign draws unless named otherwise.
    public struct Summary: AnalysisSummary {
        public static let analysis = "fourier-heatmap"

        public var cleanError: Double
        public var meanError: Double
        /// Mean error over the low band (0 < radius ≤ `bandCutoff`) and the high band (radius > `bandCutoff`).
        public var lowFrequencyError: Double
        public var highFrequencyError: Double
        /// The frequency with the highest error.
        public var worstFrequency: [Int]
        public var worstError: Double
        public var draws: Int
        public var bandCutoff: Double
        /// Sample standard deviation over the draws of each draw's band error (0 for one draw).
        public var lowFrequencyErrorStd: Double
        public var highFrequencyErrorStd: Double
        /// The band errors as shares of the room above chance (`Statistics.scaledError`);
        /// nil (left out of the file) when the clean model is within 0.02 of chance.
        public var lowFrequencyScaledError: Double?
        public var highFrequencyScaledError: Double?
    }

    public struct Settings: Encodable {
        public var source: RunSource
        public var images: Int
        public var norm: Double
        public var normPer = "channel"
        public var signs = "r = ±1 uniformly at random per image and channel, drawn afresh for each draw"
        public var clip = "[0, 1]"
        public var draws: Int
        public var bands: FrequencyBands
        public var bandRule = "low: 0 < radius ≤ cut-off; high: radius > cut-off; (0, 0) in neither"
        /// The band cut-off (kept under its old name).
        public var lowFrequencyRadius: Double
        public var classes: Int
        public var scaledError = "(error − clean error) / ((1 − clean error) − 1/classes); null when that room is ≤ 0.02"
        public var command: String
    }

    public struct Data: Encodable {
        /// Signed frequencies of the rows (u) and columns (v), lowest first (fftshift order).
        public var rowFrequencies: [Int]
        public var columnFrequencies: [Int]
        /// errorRate[row][column]: the mean over the draws.
        public var errorRate: [[Double]]
        /// The sample standard deviation over the draws of each cell (0 for one draw).
        public var errorRateStd: [[Double]]
        /// Each draw's mean error over the low and the high band.
        public var drawLowFrequencyError: [Double]
        public var drawHighFrequencyError: [Double]
        /// Mean error over the cells whose radius √(u² + v²) rounds to each integer, lowest first.
        public var radialRadius: [Int]
        public var radialError: [Double]
        /// radialError as a share of the room above chance (null where the room is ≤ 0.02).
        public var radialScaledError: [Double?]
    }

    public typealias Report = AnalysisReport<Summary, Settings, Data>

    /// `draws` independent sign draws (default 1, as before) at every frequency; the
    /// map is their mean. `bands` splits the summary's low and high errors (default:
    /// a quarter of the image side, 8 for 32 px).
    public static func run(_ model: AnalysisModel, images set: ImageSet, norm: Double, draws: Int = 1, bands: FrequencyBands? = nil,
                           seed: UInt64, source: RunSource, command: String, progress: ProgressHandler? = nil) throws -> Report {
        guard norm >= 0, norm.isFinite else { throw AnalysisError("the noise norm must be a finite number ≥ 0, got \(norm)") }
        guard draws >= 1 else { throw AnalysisError("fourier-heatmap: --draws must be at least 1, got \(draws)") }
        let bands = bands ?? FrequencyBands.quarterOfSide(set.height)
        guard bands.cutoff >= 0, bands.cutoff.isFinite else { throw AnalysisError("fourier-heatmap: the band cut-off must be ≥ 0, got \(bands.cutoff)") }
        let (h, w, c, n) = (set.height, set.width, set.channels, set.count)
        let clean = 1 - model.accuracy(set.images, labels: set.labels)
        let classes = model.classes(probing: set.images)
        let rowFreqs = (0..<h).map { $0 - h / 2 }, colFreqs = (0..<w).map { $0 - w / 2 }
        // errors[d][row][column]
        var errors = [[[Double]]](repeating: [[Double]](repeating: [Double](repeating: .nan, count: w), count: h), count: draws)
        let start = Date()
        var done = 0
        let total = h * w
        for (ri, u) in rowFreqs.enumerated() {
            for (cj, v) in colFreqs.enumerated() where errors[0][ri][cj].isNaN {
                for d in 0..<draws {
                    // Draw 0 keeps the seeds of single-draw runs.
                    let g = Generator(seed: d == 0 ? Generator.derivedSeed(seed, UInt64(bitPattern: Int64(u)), UInt64(bitPattern: Int64(v)))
                                              : Generator.derivedSeed(seed, UInt64(bitPattern: Int64(u)), UInt64(bitPattern: Int64(v)), UInt64(d)))
                    let signs: [Float] = (0..<(n * c)).map { _ in g.nextUniform() < 0.5 ? -1 : 1 }
                    let noisy = perturbed(set.images, u: u, v: v, norm: norm, signs: signs)
                    let e = 1 - model.accuracy(noisy, labels: set.labels)
                    errors[d][ri][cj] = e
                    // The mirror frequency (−u, −v) has the same basis image.
                    let mi = (-u) + h / 2, mj = (-v) + w / 2
                    if mi >= 0 && mi < h && mj >= 0 && mj < w { errors[d][mi][mj] = e }
                }
                done += 1
            }
            let filled = errors[0].reduce(0) { $0 + $1.filter { !$0.isNaN }.count }
            if let progress, ri % max(1, h / 8) == 0 || ri == h - 1 {
                let elapsed = Date().timeIntervalSince(start)
                progress(String(format: "fourier-heatmap: %d/%d frequencies, %d evaluated (%d draws each), %.0f s", filled, total, done, draws, elapsed))
            }
        }
        let error = (0..<h).map { i in (0..<w).map { j in Statistics.mean(errors.map { $0[i][j] }) } }
        let errorStd = (0..<h).map { i in (0..<w).map { j in Statistics.standardDeviation(errors.map { $0[i][j] }) } }
        func radius(_ u: Int, _ v: Int) -> Double { Double(u * u + v * v).squareRoot() }
        /// Mean over the low and the high band of one map.
        func bandErrors(_ map: [[Double]]) -> (low: Double, high: Double) {
            var low: [Double] = [], high: [Double] = []
            for (ri, u) in rowFreqs.enumerated() {
                for (cj, v) in colFreqs.enumerated() {
                    if bands.isLow(radius: radius(u, v)) { low.append(map[ri][cj]) }
                    if bands.isHigh(radius: radius(u, v)) { high.append(map[ri][cj]) }
                }
            }
            return (Statistics.mean(low), Statistics.mean(high))
        }
        var worst = ([0, 0], -1.0)
        var rings: [Int: [Double]] = [:]
        for (ri, u) in rowFreqs.enumerated() {
            for (cj, v) in colFreqs.enumerated() {
                if error[ri][cj] > worst.1 { worst = ([u, v], error[ri][cj]) }
                rings[Int(radius(u, v).rounded()), default: []].append(error[ri][cj])
            }
        }
        let radial = rings.keys.sorted()
        let radialError = radial.map { Statistics.mean(rings[$0]!) }
        let perDraw = errors.map(bandErrors)
        let (low, high) = bandErrors(error)
        func scaled(_ e: Double) -> Double? { Statistics.scaledError(e, cleanError: clean, classes: classes) }
        return Report(analysis: Summary.analysis,
                      summary: Summary(cleanError: clean, meanError: Statistics.mean(error.flatMap { $0 }), lowFrequencyError: low,
                                       highFrequencyError: high, worstFrequency: worst.0, worstError: worst.1, draws: draws,
                                       bandCutoff: bands.cutoff, lowFrequencyErrorStd: Statistics.standardDeviation(perDraw.map(\.low)),
                                       highFrequencyErrorStd: Statistics.standardDeviation(perDraw.map(\.high)),
                                       lowFrequencyScaledError: scaled(low), highFrequencyScaledError: scaled(high)),
                      settings: Settings(source: source, images: n, norm: norm, draws: draws, bands: bands, lowFrequencyRadius: bands.cutoff,
                                         classes: classes, command: command),
                      data: Data(rowFrequencies: rowFreqs, columnFrequencies: colFreqs, errorRate: error, errorRateStd: errorStd,
                                 drawLowFrequencyError: perDraw.map(\.low), drawHighFrequencyError: perDraw.map(\.high),
                                 radialRadius: radial, radialError: radialError, radialScaledError: radialError.map(scaled)))
    }

    public static func svg(_ report: Report, title: String) -> String {
        let map = SVGPlot.heatMap(
            title: String(format: "%@ — error under Fourier-basis noise, ‖·‖₂ = %g (clean error %.3f)", title, report.settings.norm,
                          report.summary.cleanError),
            values: report.data.errorRate, rowLabels: report.data.rowFrequencies.map(String.init),
            columnLabels: report.data.columnFrequencies.map(String.init),
            xLabel: "frequency v (cycles per image width)", yLabel: "frequency u (cycles per image height)",
            colourLabel: "error rate", range: 0...1)
        let profile = SVGPlot.lineChart(
            title: "\(title) — error by radial frequency", xLabel: "radius √(u² + v²) (cycles per image)", yLabel: "error rate",
            series: [SVGPlot.Series(name: "Fourier-basis noise", x: report.data.radialRadius.map(Double.init), y: report.data.radialError),
                     SVGPlot.Series(name: "clean", x: report.data.radialRadius.map(Double.init), y: report.data.radialRadius.map { _ in report.summary.cleanError })],
            yRange: 0...1)
        return SVGPlot.stack([map, profile])
    }
}

extension FourierHeatmap {
    /// One cell's perturbed images with the signs given instead of drawn: `images` [N, H, W, C] in
    /// [0, 1] plus r·norm·U(u, v), clipped to [0, 1], with r = `signs`[i·C + c] (±1) for image i and
    /// channel c. `run` draws the signs; the cross-check against scripts/reference/analyses.py
    /// gives the ones committed with its fixture.
    public static func perturbed(_ images: Tensor, u: Int, v: Int, norm: Double, signs: [Float]) -> Tensor {
        let shape = images.shape
        require(shape.count == 4, "FourierHeatmap.perturbed", "images must be [N, H, W, C], got \(shape)")
        let (n, h, w, c) = (shape[0], shape[1], shape[2], shape[3])
        require(signs.count == n * c, "FourierHeatmap.perturbed", "expected \(n * c) signs (one per image and channel), got \(signs.count)")
        require(signs.allSatisfy { $0 == 1 || $0 == -1 }, "FourierHeatmap.perturbed", "every sign must be +1 or -1")
        let b = basis(u: u, v: v, height: h, width: w)
        var pixels = images.contiguous().scalars
        for img in 0..<n {
            for ch in 0..<c {
                let r = signs[img * c + ch] * Float(norm)
                for p in 0..<(h * w) {
                    let k = (img * h * w + p) * c + ch
                    pixels[k] = min(max(pixels[k] + r * b[p], 0), 1)
                }
            }
        }
        return Tensor(pixels, shape: shape)
    }
}
