import Foundation
import Patchwork

/// Relative log amplitude of the feature maps' Fourier transforms over depth
/// (Park & Kim 2022, "How do vision transformers work?", Fig. 2): for each
/// block output, the 2-D FFT of every channel, log(|F| + 1e-6) averaged over
/// channels and images, read along the diagonal (k, k) from frequency 0 to
/// π and minus its value at 0. The value at π (k = n/2) is the "ΔLog
/// amplitude at high frequency": how much high-frequency signal a block
/// passes on relative to the mean. Token outputs [B, N, D] are put back on
/// their √(N−p)×√(N−p) grid after dropping p prefix (class/distillation) tokens.
public enum FeatureFrequency {
    /// A feature map [B, h, w, C] from a block output; nil for outputs that are not maps or square token grids.
    public static func featureMap(_ x: Tensor) -> (map: Tensor, prefixTokens: Int)? {
        switch x.rank {
        case 4: return (x, 0)
        case 3:
            let (b, n, d) = (x.shape[0], x.shape[1], x.shape[2])
            let side = Int(Double(n).squareRoot())
            let prefix = n - side * side
            guard side >= 1, prefix <= 8 else { return nil }
            let grid = x.sliced(axis: 1, start: prefix, end: n).contiguous().reshaped([b, side, side, d])
            return (grid, prefix)
        default: return nil
        }
    }

    /// Mean log amplitude along the diagonal (k, k), k = 0…n/2 (n = min(h, w)), minus its value at k = 0.
    public static func relativeLogAmplitude(_ map: Tensor) -> [Double] {
        let (b, h, w, c) = (map.shape[0], map.shape[1], map.shape[2], map.shape[3])
        let v = map.contiguous().scalars
        let n = min(h, w)
        var sum = [Double](repeating: 0, count: n / 2 + 1)
        for img in 0..<b {
            for ch in 0..<c {
                var plane = [Float](repeating: 0, count: h * w)
                for p in 0..<(h * w) { plane[p] = v[(img * h * w + p) * c + ch] }
                let f = FFT.forward(real: plane, height: h, width: w)
                for k in 0...(n / 2) {
                    // Diagonal frequency (k/h, k/w) of the unshifted spectrum.
                    let i = (k * h / n) % h, j = (k * w / n) % w
                    let re = Double(f.real[i * w + j]), im = Double(f.imaginary[i * w + j])
                    sum[k] += log((re * re + im * im).squareRoot() + 1e-6)
                }
            }
        }
        let mean = sum.map { $0 / Double(b * c) }
        return mean.map { $0 - mean[0] }
    }

    public struct Layer: Encodable {
        public var name: String
        public var grid: [Int]
        public var channels: Int
        public var prefixTokens: Int
        /// Frequencies of the curve, as fractions of π.
        public var frequencyOverPi: [Double]
        public var deltaLogAmplitude: [Double]
        /// The curve's value at π (NaN for a 1×1 map).
        public var highFrequency: Double
    }

    public struct Summary: AnalysisSummary {
        public static let analysis = "feature-frequency"

        public var layers: Int
        public var meanHighFrequency: Double
        public var firstHighFrequency: Double
        public var lastHighFrequency: Double
        /// Of successive layers (at the same resolution), how many raise ΔLog amplitude at π.
        public var increasesOverDepth: Int
        public var decreasesOverDepth: Int
    }

    public struct Settings: Encodable {
        public var source: RunSource
        public var images: Int
        public var amplitude = "log(|FFT2| + 1e-6), mean over images and channels, diagonal (k, k), minus k = 0"
        public var command: String
    }

    public struct Data: Encodable { public var layers: [Layer] }

    public typealias Report = AnalysisReport<Summary, Settings, Data>

    public static func run(_ model: AnalysisModel, images set: ImageSet, source: RunSource, command: String,
                           progress: ProgressHandler? = nil) throws -> Report {
        // Sum log amplitudes over batches (the curve is a mean over images, so batches combine exactly).
        var curves: [String: (sum: [Double], count: Int, grid: [Int], channels: Int, prefix: Int)] = [:]
        var order: [String] = []
        var start = 0
        while start < set.count {
            let end = min(set.count, start + model.batchSize)
            let batch = set.images.sliced(axis: 0, start: start, end: end).contiguous()
            let outputs = withoutGrad { model.model.forwardIntermediates(model.input.normalized(batch)) }
            for (name, value) in outputs {
                guard let (map, prefix) = featureMap(value) else { continue }
                let curve = relativeLogAmplitude(map).map { $0 * Double(end - start) }
                if var entry = curves[name] {
                    entry.sum = zip(entry.sum, curve).map { $0 + $1 }
                    entry.count += end - start
                    curves[name] = entry
                } else {
                    order.append(name)
                    curves[name] = (curve, end - start, [map.shape[1], map.shape[2]], map.shape[3], prefix)
                }
            }
            progress?("feature-frequency: \(end)/\(set.count) images")
            start = end
        }
        guard !order.isEmpty else { throw AnalysisError("the model's forwardIntermediates gave no feature maps or token grids") }
        let layers = order.map { name -> Layer in
            let e = curves[name]!
            let curve = e.sum.map { $0 / Double(e.count) }
            let steps = curve.count - 1
            return Layer(name: name, grid: e.grid, channels: e.channels, prefixTokens: e.prefix,
                         frequencyOverPi: (0...steps).map { steps == 0 ? 0 : Double($0) / Double(steps) },
                         deltaLogAmplitude: curve, highFrequency: steps == 0 ? .nan : curve[steps])
        }
        let hf = layers.map(\.highFrequency).filter(\.isFinite)
        var up = 0, down = 0
        for (a, b) in zip(layers, layers.dropFirst()) where a.grid == b.grid && a.highFrequency.isFinite && b.highFrequency.isFinite {
            if b.highFrequency > a.highFrequency { up += 1 } else if b.highFrequency < a.highFrequency { down += 1 }
        }
        let summary = Summary(layers: layers.count, meanHighFrequency: hf.isEmpty ? .nan : hf.reduce(0, +) / Double(hf.count),
                              firstHighFrequency: hf.first ?? .nan, lastHighFrequency: hf.last ?? .nan,
                              increasesOverDepth: up, decreasesOverDepth: down)
        return Report(analysis: Summary.analysis, summary: summary,
                      settings: Settings(source: source, images: set.count, command: command), data: Data(layers: layers))
    }

    public static func svg(_ report: Report, title: String) -> String {
        let layers = report.data.layers
        let depth = SVGPlot.lineChart(
            title: "\(title) — ΔLog amplitude at frequency π over depth", xLabel: "layer", yLabel: "Δ log amplitude (π vs 0)",
            series: [SVGPlot.Series(name: "high frequency (π)", x: layers.indices.map(Double.init), y: layers.map(\.highFrequency))],
            xTickLabels: layers.map(\.name), width: max(640, 60 * layers.count + 240))
        let curves = SVGPlot.lineChart(
            title: "\(title) — relative log amplitude along the diagonal", xLabel: "frequency (×π)", yLabel: "Δ log amplitude",
            series: layers.map { SVGPlot.Series(name: $0.name, x: $0.frequencyOverPi, y: $0.deltaLogAmplitude) })
        return SVGPlot.stack([depth, curves])
    }
}
