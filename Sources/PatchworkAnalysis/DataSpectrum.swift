import Foundation
import Patchwork
import PatchworkData

/// A split of the radial frequencies √(u² + v²) (signed frequencies, in cycles
/// per image side) into a low and a high band, for the analyses that report
/// "low-frequency" and "high-frequency" numbers.
///
/// Low: 0 < radius ≤ `cutoff`; high: radius > `cutoff`. Frequency (0, 0) (the
/// image mean, a uniform brightness shift) belongs to neither band.
public struct FrequencyBands: Codable, Sendable, Equatable {
    public var cutoff: Double
    /// Where the cut-off came from, in words (a fixed default, an option, or data).
    public var origin: String

    public init(cutoff: Double, origin: String) { self.cutoff = cutoff; self.origin = origin }

    /// The fixed default: a quarter of the image side (8 for 32-pixel images).
    public static func quarterOfSide(_ side: Int) -> FrequencyBands {
        FrequencyBands(cutoff: Double(side) / 4, origin: "fixed: a quarter of the image side")
    }

    public func isLow(radius: Double) -> Bool { radius > 0 && radius <= cutoff + 1e-9 }
    public func isHigh(radius: Double) -> Bool { radius > cutoff + 1e-9 }
}

/// Where the energy of shape-only and texture-only images lies in frequency, and
/// the cut-off radius between "shape" and "texture" frequencies that follows
/// from it (`patchwork analyze data-spectrum`).
///
/// Each set's spectrum: for every image and channel of [0, 1] pixels, the mean
/// is removed and the power |FFT2|² summed over the frequencies whose radius
/// rounds to each integer r = 0 … ⌈r_max⌉; averaged over images and channels and
/// normalised so that each set's fractions sum to 1.
///
/// The cut-off is the radius r that maximises C_shape(r) − C_texture(r), C the
/// cumulative energy share at radii ≤ r: the split that puts as much of the shape
/// images' energy and as little of the texture images' below it as possible. It
/// sits where the texture curve overtakes the shape curve for good, and unlike
/// "the first radius where texture's fraction exceeds shape's", a wiggle of the
/// two curves at low radii does not move it. That first crossing is recorded too.
public enum DataSpectrum {
    /// The mean radially binned power spectrum of `images` ([N, H, W, C] pixels),
    /// as fractions of the total (index = rounded radius).
    public static func radialPower(_ images: Tensor) -> [Double] {
        let (n, h, w, c) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
        let radii = FFT.radialFrequencies(height: h, width: w).map { Int(Double($0).rounded()) }
        var power = [Double](repeating: 0, count: (radii.max() ?? 0) + 1)
        let pixels = images.contiguous().scalars
        for img in 0..<n {
            for ch in 0..<c {
                var plane = [Float](repeating: 0, count: h * w)
                for p in 0..<(h * w) { plane[p] = pixels[(img * h * w + p) * c + ch] }
                let mean = plane.reduce(0) { $0 + Double($1) } / Double(h * w)
                for p in plane.indices { plane[p] = Float(Double(plane[p]) - mean) }
                let spectrum = FFT.forward(real: plane, height: h, width: w)
                for k in 0..<(h * w) {
                    let re = Double(spectrum.real[k]), im = Double(spectrum.imaginary[k])
                    power[radii[k]] += re * re + im * im
                }
            }
        }
        let total = power.reduce(0, +)
        return total > 0 ? power.map { $0 / total } : power
    }

    /// The cut-off from two spectra as `radialPower` gives them: the radius
    /// maximising C_shape(r) − C_texture(r) over r = 1 … last − 1. When a run of
    /// radii ties (no energy of either set between them), the middle of the first run
    /// (rounded down), so that the cut-off sits between the two sets' frequencies.
    public static func cutoff(shape: [Double], texture: [Double]) -> Int {
        let count = min(shape.count, texture.count)
        guard count > 2 else { return 1 }
        var gaps: [Double] = [], cs = shape[0], ct = texture[0]
        for r in 1..<(count - 1) { cs += shape[r]; ct += texture[r]; gaps.append(cs - ct) }
        let best = gaps.max()!
        let first = gaps.firstIndex { $0 >= best - 1e-9 }!
        var last = first
        while last + 1 < gaps.count, gaps[last + 1] >= best - 1e-9 { last += 1 }
        return 1 + (first + last) / 2
    }

    /// The first radius ≥ 1 at which texture's power fraction exceeds shape's (nil when none does).
    public static func firstCrossing(shape: [Double], texture: [Double]) -> Int? {
        (1..<min(shape.count, texture.count)).first { texture[$0] > shape[$0] }
    }

    public struct Summary: AnalysisSummary {
        public static let analysis = "data-spectrum"

        /// The cut-off radius between the low ("shape") and high ("texture") bands.
        public var cutoffRadius: Double
        /// C_shape − C_texture at the cut-off: how well it separates the two (0 … 1).
        public var separation: Double
        public var firstCrossingRadius: Double?
        /// Share of each set's energy at radii ≤ the cut-off.
        public var shapeEnergyBelowCutoff: Double
        public var textureEnergyBelowCutoff: Double
    }

    public struct Settings: Encodable {
        public var data: String
        public var imageSize: Int
        public var imagesPerSet: Int
        public var spectrum = "per image and channel: [0, 1] pixels, mean removed, |FFT2|² summed by rounded radius √(u² + v²); mean over images and channels; fractions of the total"
        public var cutoffRule = "the radius r maximising C_shape(r) − C_texture(r), C the cumulative energy share at radii ≤ r; low band 0 < radius ≤ r, high band radius > r"
        public var command: String
    }

    public struct Data: Encodable {
        public var radius: [Int]
        public var shapeOnlyPower: [Double]
        public var textureOnlyPower: [Double]
        public var shapeOnlyCumulative: [Double]
        public var textureOnlyCumulative: [Double]
    }

    public typealias Report = AnalysisReport<Summary, Settings, Data>

    /// The bands a report found.
    public static func bands(_ report: Report) -> FrequencyBands {
        FrequencyBands(cutoff: report.summary.cutoffRadius, origin: "data-spectrum of \(report.settings.data): shape-only vs texture-only energy")
    }

    /// From two image sets (same size): the spectra, the cut-off and the report.
    public static func run(shapeOnly: Tensor, textureOnly: Tensor, data: String, command: String) throws -> Report {
        guard shapeOnly.rank == 4, textureOnly.rank == 4, shapeOnly.shape.dropFirst() == textureOnly.shape.dropFirst() else {
            throw AnalysisError("data-spectrum: the shape-only \(shapeOnly.shape) and texture-only \(textureOnly.shape) images must be [N, H, W, C] of one size")
        }
        guard shapeOnly.shape[0] > 0, textureOnly.shape[0] > 0, shapeOnly.shape[1] >= 4, shapeOnly.shape[2] >= 4 else {
            throw AnalysisError("data-spectrum: need at least one image per set, of at least 4×4 pixels; got \(shapeOnly.shape) and \(textureOnly.shape)")
        }
        let s = radialPower(shapeOnly), t = radialPower(textureOnly)
        let cut = cutoff(shape: s, texture: t)
        func cumulative(_ p: [Double]) -> [Double] { var total = 0.0; return p.map { total += $0; return total } }
        let cs = cumulative(s), ct = cumulative(t)
        return Report(analysis: Summary.analysis,
                      summary: Summary(cutoffRadius: Double(cut), separation: cs[cut] - ct[cut],
                                       firstCrossingRadius: firstCrossing(shape: s, texture: t).map(Double.init),
                                       shapeEnergyBelowCutoff: cs[cut], textureEnergyBelowCutoff: ct[cut]),
                      settings: Settings(data: data, imageSize: shapeOnly.shape[1], imagesPerSet: min(shapeOnly.shape[0], textureOnly.shape[0]),
                                         command: command),
                      data: Data(radius: Array(s.indices), shapeOnlyPower: s, textureOnlyPower: t, shapeOnlyCumulative: cs,
                                 textureOnlyCumulative: ct))
    }

    /// On ShapeTex (`spec`, e.g. "shapetex" or "shapetex:noise=0.05"): `count` shape-only
    /// and `count` texture-only images at `imageSize`.
    public static func runShapeTex(spec: String, imageSize: Int, count: Int, command: String) throws -> Report {
        guard let shapeOnly = try DatasetSpec.shapeTex(spec, split: .shapeOnly, imageSize: imageSize),
              let textureOnly = try DatasetSpec.shapeTex(spec, split: .textureOnly, imageSize: imageSize) else {
            throw AnalysisError("data-spectrum needs ShapeTex (--data shapetex[:…]), which has shape-only and texture-only images; got \(spec)")
        }
        let so = try ImageSet(try ShapeTex(split: .shapeOnly, count: count, size: shapeOnly.size, seed: shapeOnly.seed, noise: shapeOnly.noise), count: nil)
        let to = try ImageSet(try ShapeTex(split: .textureOnly, count: count, size: textureOnly.size, seed: textureOnly.seed, noise: textureOnly.noise), count: nil)
        return try run(shapeOnly: so.images, textureOnly: to.images, data: spec, command: command)
    }

    /// Both spectra (log scale) and both cumulative shares, with the cut-off marked.
    public static func svg(_ report: Report, title: String) -> String {
        let d = report.data, r = d.radius.map(Double.init), cut = report.summary.cutoffRadius
        let log = { (p: [Double]) in p.map { Foundation.log10(max($0, 1e-12)) } }
        let spectra = SVGPlot.lineChart(
            title: String(format: "%@ — power by radial frequency (cut-off %g)", title, cut), xLabel: "radius √(u² + v²) (cycles per image)",
            yLabel: "log10 share of energy",
            series: [SVGPlot.Series(name: "shape-only", x: r, y: log(d.shapeOnlyPower)),
                     SVGPlot.Series(name: "texture-only", x: r, y: log(d.textureOnlyPower))])
        let cumulative = SVGPlot.lineChart(
            title: "\(title) — cumulative share of energy", xLabel: "radius √(u² + v²) (cycles per image)", yLabel: "share at radius ≤ r",
            series: [SVGPlot.Series(name: "shape-only", x: r, y: d.shapeOnlyCumulative),
                     SVGPlot.Series(name: "texture-only", x: r, y: d.textureOnlyCumulative),
                     SVGPlot.Series(name: "cut-off", points: [(cut, 0), (cut, 1)])],
            yRange: 0...1)
        return SVGPlot.stack([spectra, cumulative])
    }
}
