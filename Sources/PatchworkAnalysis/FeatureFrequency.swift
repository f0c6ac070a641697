import Foundation
import Patchwork
import PatchworkNN

/// Relative log amplitude of the feature maps' Fourier transforms (Park & Kim 2022, "How do
/// vision transformers work?", Fig. 2 and 8), two ways:
///
/// - Block curves: for each block output (`forwardIntermediates`), the 2-D FFT of every
///   channel, log(|F| + 1e-6) averaged over channels and images, read along the diagonal
///   (k, k), k = 0…n/2 (frequency 2πk/n, so 0 to π), minus its value at k = 0. The value at
///   π is the "ΔLog amplitude at high frequency".
/// - Sub-layer changes: for each residual sub-layer (a ViT block's attention and MLP branches,
///   a ResNet block's convolution branch; see `ResidualBranchRecording`), the ΔLog amplitude
///   at π of the residual stream just after the sub-layer minus that just before it. Park &
///   Kim plot the stream after every MSA and MLP over depth and read that MSAs lower it and
///   MLPs (and convolutions) raise it; this is that step, one number per sub-layer.
///
/// Token outputs [B, N, D] go back on their √(N−p)×√(N−p) grid after dropping p prefix
/// (class/register) tokens. With `resolution` r, every map is first brought to r×r: a map of
/// side a·r is average-pooled in a×a windows; a map smaller than r×r, or not an integer
/// multiple of it, is left out and listed in `data.excluded` (upsampling would invent
/// frequencies the map does not have). So a CNN's 32×32 and 16×16 maps and a ViT's 8×8 token
/// grid are compared on one 8×8 grid, where the same frequency index means the same frequency.
///
/// Park & Kim's notebook reads the half-diagonal of the shifted spectrum, k = 0…n/2 − 1, whose
/// last point ((1 − 2/n)π) their plots label 1.0π; this analysis includes k = n/2, the true π.
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

    /// `map` [B, h, w, C] brought to `resolution`×`resolution` by average pooling in
    /// (h/r)×(w/r) windows; nil, with the reason, when h or w is not a multiple of r
    /// (smaller maps included: they are not upsampled).
    public static func pooled(_ map: Tensor, to resolution: Int) -> (map: Tensor?, reason: String?) {
        let (h, w) = (map.shape[1], map.shape[2])
        if h == resolution && w == resolution { return (map, nil) }
        if h < resolution || w < resolution {
            return (nil, "\(h)×\(w) is smaller than \(resolution)×\(resolution) (not upsampled)")
        }
        guard h % resolution == 0, w % resolution == 0 else {
            return (nil, "\(h)×\(w) is not an integer multiple of \(resolution)×\(resolution)")
        }
        return (avgPool2d(map, kernel: (h / resolution, w / resolution)), nil)
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

    /// The curve's value at π: its last point (NaN for a 1×1 map, whose curve is one point).
    static func highFrequency(_ curve: [Double]) -> Double { curve.count > 1 ? curve[curve.count - 1] : .nan }

    /// Frequencies of a curve of `count` points, as fractions of π.
    static func frequencies(_ count: Int) -> [Double] {
        (0..<count).map { count == 1 ? 0 : Double($0) / Double(count - 1) }
    }

    public struct Layer: Encodable {
        public var name: String
        /// The map's own grid, before any pooling.
        public var grid: [Int]
        /// The grid the FFT saw: `grid`, or resolution × resolution.
        public var measuredGrid: [Int]
        public var channels: Int
        public var prefixTokens: Int
        /// Frequencies of the curve, as fractions of π.
        public var frequencyOverPi: [Double]
        public var deltaLogAmplitude: [Double]
        /// The curve's value at π (NaN for a 1×1 map).
        public var highFrequency: Double
    }

    /// One residual sub-layer: the stream's curve before and after it, and the change at π.
    public struct Branch: Encodable {
        /// The branch's key: its block's key, then the branch's ("blocks.0.attn", "layer1.0").
        public var name: String
        /// "attention", "mlp", "conv" or "depthwise-conv".
        public var kind: String
        public var gridBefore: [Int]
        public var gridAfter: [Int]
        public var measuredGrid: [Int]
        public var frequencyOverPi: [Double]
        public var deltaLogAmplitudeBefore: [Double]
        public var deltaLogAmplitudeAfter: [Double]
        public var highFrequencyBefore: Double
        public var highFrequencyAfter: Double
        /// After minus before at π: < 0 the sub-layer removed high frequencies (low-pass), > 0 it added them.
        public var highFrequencyChange: Double
    }

    /// A block output or sub-layer left out at the chosen resolution.
    public struct Excluded: Encodable {
        public var name: String
        /// "block" (a block output) or "sub-layer" (a residual branch's stream).
        public var what: String
        public var grid: [Int]
        public var reason: String
    }

    public struct Summary: AnalysisSummary {
        public static let analysis = "feature-frequency"

        /// Block outputs measured (at the resolution, when one was set).
        public var layers: Int
        /// Mean over the measured block outputs of the ΔLog amplitude at π.
        public var meanHighFrequency: Double
        public var firstHighFrequency: Double
        public var lastHighFrequency: Double
        /// Of successive layers (at the same measured grid), how many raise ΔLog amplitude at π.
        public var increasesOverDepth: Int
        public var decreasesOverDepth: Int
        /// The common grid side every map was pooled to; nil when each map was measured at its own size.
        public var resolution: Int?
        /// Block outputs left out at `resolution` (nil without one).
        public var excludedLayers: Int?
        /// Residual sub-layers measured; nil in reports from before sub-layers were measured.
        public var branches: Int?
        /// Residual sub-layers left out at `resolution` (nil without one).
        public var excludedBranches: Int?
        /// Mean `highFrequencyChange` per sub-layer kind ("attention", "mlp", "conv", "depthwise-conv"),
        /// over the sub-layers with a finite change (a 1×1 map has no value at π).
        public var meanChangeByKind: [String: Double]?
    }

    public struct Settings: Encodable {
        public var source: RunSource
        public var images: Int
        public var resolution: Int?
        public var resampling = "with a resolution r: average pooling of each map of side a·r in a×a windows; smaller or non-multiple maps left out"
        public var amplitude = "log(|FFT2| + 1e-6), mean over images and channels, diagonal (k, k) for k = 0…n/2 (0 to π), minus k = 0"
        public var branchChange = "ΔLog amplitude at π of the residual stream after the sub-layer minus before it"
        public var command: String
    }

    public struct Data: Encodable {
        public var layers: [Layer]
        public var branches: [Branch]
        public var excluded: [Excluded]
    }

    public typealias Report = AnalysisReport<Summary, Settings, Data>

    /// Sums of curves over batches under a name (curves are means over images, so batches combine exactly).
    private struct Accumulator {
        var order: [String] = []
        var sums: [String: [Double]] = [:]
        var counts: [String: Int] = [:]
        mutating func add(_ name: String, _ curve: [Double], images: Int) {
            let weighted = curve.map { $0 * Double(images) }
            if let s = sums[name] {
                sums[name] = zip(s, weighted).map { $0 + $1 }
            } else {
                order.append(name)
                sums[name] = weighted
            }
            counts[name, default: 0] += images
        }
        func mean(_ name: String) -> [Double] { sums[name]!.map { $0 / Double(counts[name]!) } }
    }

    public static func run(_ model: AnalysisModel, images set: ImageSet, resolution: Int? = nil, source: RunSource, command: String,
                           progress: ProgressHandler? = nil) throws -> Report {
        if let r = resolution, r < 2 { throw AnalysisError("feature-frequency: resolution \(r) must be at least 2 (a 1×1 map has frequency 0 only)") }
        // The map the FFT sees, or why there is none.
        func measured(_ value: Tensor) -> (map: Tensor?, prefix: Int, grid: [Int], channels: Int, reason: String?)? {
            guard let (map, prefix) = featureMap(value) else { return nil }
            let grid = [map.shape[1], map.shape[2]]
            guard let r = resolution else { return (map, prefix, grid, map.shape[3], nil) }
            let (p, reason) = pooled(map, to: r)
            return (p, prefix, grid, map.shape[3], reason)
        }

        let branchLayers = model.model.residualBranchLayers()
        let wasOn = branchLayers.map(\.recorder.isOn)
        model.model.recordResidualBranches(true)
        defer { for (layer, on) in zip(branchLayers, wasOn) { layer.recorder.isOn = on } }

        var blocks = Accumulator(), before = Accumulator(), after = Accumulator()
        var blockInfo: [String: (grid: [Int], measured: [Int], channels: Int, prefix: Int)] = [:]
        var branchInfo: [String: (kind: String, before: [Int], after: [Int], measured: [Int])] = [:]
        var excluded: [Excluded] = [], excludedKeys = Set<String>()
        func exclude(_ name: String, _ what: String, _ grid: [Int], _ reason: String) {
            if excludedKeys.insert(what + " " + name).inserted { excluded.append(Excluded(name: name, what: what, grid: grid, reason: reason)) }
        }

        var start = 0
        while start < set.count {
            let end = min(set.count, start + model.batchSize)
            let batch = set.images.sliced(axis: 0, start: start, end: end).contiguous()
            let outputs = withoutGrad { model.model.forwardIntermediates(model.input.normalized(batch)) }
            for (name, value) in outputs {
                guard let m = measured(value) else { continue }
                guard let map = m.map else { exclude(name, "block", m.grid, m.reason!); continue }
                blocks.add(name, relativeLogAmplitude(map), images: end - start)
                blockInfo[name] = (m.grid, [map.shape[1], map.shape[2]], m.channels, m.prefix)
            }
            for (name, recorder) in branchLayers {
                guard let record = recorder.record, let x = measured(record.input), let y = measured(record.output) else { continue }
                guard let xMap = x.map, let yMap = y.map else {
                    let reasons = [x.reason.map { "before: \($0)" }, y.reason.map { "after: \($0)" }].compactMap { $0 }
                    exclude(name, "sub-layer", y.grid, reasons.joined(separator: "; "))
                    continue
                }
                before.add(name, relativeLogAmplitude(xMap), images: end - start)
                after.add(name, relativeLogAmplitude(yMap), images: end - start)
                branchInfo[name] = (recorder.kind, x.grid, y.grid, [yMap.shape[1], yMap.shape[2]])
            }
            progress?("feature-frequency: \(end)/\(set.count) images")
            start = end
        }
        guard !blocks.order.isEmpty else {
            if let r = resolution, !excluded.isEmpty {
                throw AnalysisError("feature-frequency: no feature map can be brought to \(r)×\(r) (\(excluded[0].name): \(excluded[0].reason))")
            }
            throw AnalysisError("the model's forwardIntermediates gave no feature maps or token grids")
        }

        let layers = blocks.order.map { name -> Layer in
            let info = blockInfo[name]!, curve = blocks.mean(name)
            return Layer(name: name, grid: info.grid, measuredGrid: info.measured, channels: info.channels, prefixTokens: info.prefix,
                         frequencyOverPi: frequencies(curve.count), deltaLogAmplitude: curve, highFrequency: highFrequency(curve))
        }
        let branches = before.order.map { name -> Branch in
            let info = branchInfo[name]!
            let b = before.mean(name), a = after.mean(name)
            let hb = highFrequency(b), ha = highFrequency(a)
            return Branch(name: name, kind: info.kind, gridBefore: info.before, gridAfter: info.after, measuredGrid: info.measured,
                          frequencyOverPi: frequencies(a.count), deltaLogAmplitudeBefore: b, deltaLogAmplitudeAfter: a,
                          highFrequencyBefore: hb, highFrequencyAfter: ha, highFrequencyChange: ha - hb)
        }

        let hf = layers.map(\.highFrequency).filter(\.isFinite)
        var up = 0, down = 0
        for (a, b) in zip(layers, layers.dropFirst())
        where a.measuredGrid == b.measuredGrid && a.highFrequency.isFinite && b.highFrequency.isFinite {
            if b.highFrequency > a.highFrequency { up += 1 } else if b.highFrequency < a.highFrequency { down += 1 }
        }
        var changes: [String: [Double]] = [:]
        for b in branches where b.highFrequencyChange.isFinite { changes[b.kind, default: []].append(b.highFrequencyChange) }
        let summary = Summary(layers: layers.count, meanHighFrequency: hf.isEmpty ? .nan : hf.reduce(0, +) / Double(hf.count),
                              firstHighFrequency: hf.first ?? .nan, lastHighFrequency: hf.last ?? .nan,
                              increasesOverDepth: up, decreasesOverDepth: down,
                              resolution: resolution,
                              excludedLayers: resolution == nil ? nil : excluded.filter { $0.what == "block" }.count,
                              branches: branches.count,
                              excludedBranches: resolution == nil ? nil : excluded.filter { $0.what == "sub-layer" }.count,
                              meanChangeByKind: changes.mapValues { $0.reduce(0, +) / Double($0.count) })
        return Report(analysis: Summary.analysis, summary: summary,
                      settings: Settings(source: source, images: set.count, resolution: resolution, command: command),
                      data: Data(layers: layers, branches: branches, excluded: excluded))
    }

    public static func svg(_ report: Report, title: String) -> String {
        let layers = report.data.layers
        let at = report.summary.resolution.map { " (maps pooled to \($0)×\($0))" } ?? ""
        let depth = SVGPlot.lineChart(
            title: "\(title) — ΔLog amplitude at frequency π over depth\(at)", xLabel: "layer", yLabel: "Δ log amplitude (π vs 0)",
            series: [SVGPlot.Series(name: "high frequency (π)", x: layers.indices.map(Double.init), y: layers.map(\.highFrequency))],
            xTickLabels: layers.map(\.name), width: max(640, 60 * layers.count + 240))
        let curves = SVGPlot.lineChart(
            title: "\(title) — relative log amplitude along the diagonal\(at)", xLabel: "frequency (×π)", yLabel: "Δ log amplitude",
            series: layers.map { SVGPlot.Series(name: $0.name, x: $0.frequencyOverPi, y: $0.deltaLogAmplitude) })
        var panels = [depth, curves]
        let branches = report.data.branches
        if !branches.isEmpty {
            // One series per kind, so each kind has its colour; a bar only where the sub-layer is of that kind.
            let kinds = branches.reduce(into: [String]()) { if !$0.contains($1.kind) { $0.append($1.kind) } }
            let series = kinds.map { kind in
                SVGPlot.Series(name: kind, x: branches.indices.map(Double.init),
                               y: branches.map { $0.kind == kind ? $0.highFrequencyChange : .nan })
            }
            panels.append(SVGPlot.barChart(
                title: "\(title) — change in ΔLog amplitude at π made by each sub-layer\(at) (< 0: low-pass)",
                categories: branches.map(\.name), series: series, yLabel: "after − before at π"))
        }
        return SVGPlot.stack(panels)
    }
}
