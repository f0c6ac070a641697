import Foundation
import Patchwork
import PatchworkNN
import PatchworkData
import PatchworkModels

/// `analyze attention-distance` and `analyze attention-maps`.
extension AttentionDistance {
    public struct Layer: Encodable {
        public var key: String
        /// Mean distance in pixels of each head.
        public var heads: [Double]
        public var mean: Double
    }

    public struct Summary: Encodable {
        public var layers: Int
        public var firstLayerMeanDistance: Double
        public var lastLayerMeanDistance: Double
        public var meanDistance: Double
        /// Image side in pixels: distances are out of at most √2 times this.
        public var imageSize: Int
    }

    public struct Settings: Encodable {
        public var source: RunSource
        public var images: Int
        public var command: String
    }

    public struct Data: Encodable { public var layers: [Layer] }

    public typealias Report = AnalysisReport<Summary, Settings, Data>

    /// Mean attention distance of every head of every attention layer over `images`.
    public static func run(_ model: AnalysisModel, images set: ImageSet, source: RunSource, command: String,
                           progress: ProgressHandler? = nil) throws -> Report {
        let layers = model.model.attentionLayers()
        guard !layers.isEmpty else {
            throw AnalysisError("\(source.model) has no attention layers: attention distance is for models with attention")
        }
        model.model.recordAttention()
        defer { model.model.recordAttention(false) }
        var tallies: [Tally?] = Array(repeating: nil, count: layers.count)
        var start = 0
        while start < set.count {
            let end = min(set.count, start + model.batchSize)
            _ = model.logits(set.images.sliced(axis: 0, start: start, end: end))
            for (i, (key, layer)) in layers.enumerated() {
                guard let map = layer.lastAttentionMap else { continue }
                guard let t = tally(map, imageHeight: set.height, imageWidth: set.width) else {
                    throw AnalysisError("\(source.model): attention layer \(key) does not say where its tokens are")
                }
                if tallies[i] == nil { tallies[i] = t } else { tallies[i]!.add(t) }
            }
            start = end
            progress?("attention distance: \(end)/\(set.count) images")
        }
        let rows = zip(layers, tallies).compactMap { layer, t -> Layer? in
            guard let t else { return nil }
            let heads = t.mean
            let finite = heads.filter(\.isFinite)
            return Layer(key: layer.key, heads: heads, mean: finite.isEmpty ? .nan : finite.reduce(0, +) / Double(finite.count))
        }
        let means = rows.map(\.mean).filter(\.isFinite)
        let summary = Summary(layers: rows.count, firstLayerMeanDistance: rows.first?.mean ?? .nan,
                              lastLayerMeanDistance: rows.last?.mean ?? .nan,
                              meanDistance: means.isEmpty ? .nan : means.reduce(0, +) / Double(means.count), imageSize: set.height)
        return Report(analysis: "attention-distance", summary: summary,
                      settings: Settings(source: source, images: set.count, command: command), data: Data(layers: rows))
    }

    /// Each head's distance (dots joined per head index) and the layer mean, over depth.
    public static func svg(_ report: Report, title: String) -> String {
        let layers = report.data.layers
        let maxHeads = layers.map(\.heads.count).max() ?? 0
        var series = (0..<maxHeads).map { h in
            SVGPlot.Series(name: "head \(h)", points: layers.enumerated().compactMap { i, l in
                h < l.heads.count && l.heads[h].isFinite ? (Double(i), l.heads[h]) : nil
            })
        }
        if maxHeads > 6 { series = [] }  // too many heads for a legend: the mean and the spread below
        series.append(SVGPlot.Series(name: "layer mean", points: layers.enumerated().map { (Double($0), $1.mean) }))
        series.append(SVGPlot.Series(name: "head max", points: layers.enumerated().map { (Double($0), $1.heads.filter(\.isFinite).max() ?? .nan) }))
        series.append(SVGPlot.Series(name: "head min", points: layers.enumerated().map { (Double($0), $1.heads.filter(\.isFinite).min() ?? .nan) }))
        return SVGPlot.lineChart(title: "\(title): mean attention distance", xLabel: "layer (input → output)",
                                 yLabel: "distance (pixels)", series: series,
                                 yRange: 0...(Double(report.summary.imageSize) * 2.0.squareRoot() / 2 + 1),
                                 xTickLabels: layers.count <= 16 ? layers.indices.map(String.init) : nil)
    }
}

extension AttentionRollout {
    public struct Summary: Encodable {
        public var images: Int
        public var layers: Int
        /// How concentrated the class token's rollout is: the share of its mass on the top 10 % of tokens.
        public var topDecileMass: Double
    }

    public struct Settings: Encodable {
        public var source: RunSource
        public var images: Int
        public var command: String
    }

    public struct Data: Encodable {
        /// Per image: the rollout heat map on the token grid, row-major.
        public var maps: [[Double]]
        public var gridHeight: Int
        public var gridWidth: Int
        public var files: [String]
    }

    public typealias Report = AnalysisReport<Summary, Settings, Data>

    /// Rollout for `images`, written as PNG overlays `attention-maps-<i>.png` into `directory`.
    public static func run(_ model: AnalysisModel, images set: ImageSet, source: RunSource, command: String,
                           directory: String, scale: Int = 4) throws -> Report {
        let layers = model.model.attentionLayers()
        guard !layers.isEmpty else { throw AnalysisError("\(source.model) has no attention layers: nothing to roll out") }
        model.model.recordAttention()
        defer { model.model.recordAttention(false) }
        _ = model.logits(set.images)
        let maps = layers.compactMap { key, layer in layer.lastAttentionMap.map { (key: key, map: $0) } }
        let result = try rollout(maps)
        let positions = result.positions.scalars
        let spatial = (0..<result.positions.shape[0]).filter { !positions[2 * $0].isNaN }
        let ys = Set(spatial.map { positions[2 * $0] }), xs = Set(spatial.map { positions[2 * $0 + 1] })
        let heat = try heatMaps(result, gridHeight: ys.count, gridWidth: xs.count)        // [B, h, w]
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let h = set.height * scale, w = set.width * scale
        let big = resize(heat.reshaped([set.count, ys.count, xs.count, 1]), size: (h, w), mode: .bilinear)
        let images = resize(set.images, size: (h, w), mode: .nearest)
        var files: [String] = []
        for i in 0..<set.count {
            let m = big.selecting(axis: 0, index: i)                                            // [h, w, 1]
            let colour = concat([m, m.square(), (1 - m) * 0.3], axis: 2)                      // dark blue → yellow
            let overlay = withoutGrad { images.selecting(axis: 0, index: i) * 0.45 + colour * 0.55 }
            let name = String(format: "attention-maps-%02d.png", i)
            try ImageIO.savePNG(overlay, to: (directory as NSString).appendingPathComponent(name))
            files.append(name)
        }
        let values = heat.scalars
        let per = ys.count * xs.count
        var topMass = 0.0
        for i in 0..<set.count {
            let row = values[(i * per)..<((i + 1) * per)].map(Double.init).sorted(by: >)
            let total = row.reduce(0, +)
            topMass += total > 0 ? row.prefix(max(1, per / 10)).reduce(0, +) / total : .nan
        }
        let data = Data(maps: (0..<set.count).map { i in values[(i * per)..<((i + 1) * per)].map(Double.init) },
                        gridHeight: ys.count, gridWidth: xs.count, files: files)
        return Report(analysis: "attention-maps",
                      summary: Summary(images: set.count, layers: maps.count, topDecileMass: topMass / Double(set.count)),
                      settings: Settings(source: source, images: set.count, command: command), data: data)
    }
}
