import Foundation
import Patchwork
import PatchworkNN
import PatchworkData
import PatchworkModels

/// Mean attention distance (Dosovitskiy et al. 2021, Fig. 7; Raghu et al. 2021):
/// for each head, the distance in input pixels between a query and the keys it
/// attends to, weighted by the attention probability, averaged over queries and images.
///
/// Only tokens with a place in the image count: class/distillation tokens (NaN
/// positions) are left out as queries, and as keys their probability mass is
/// left out too (each query's weights are renormalised over the spatial keys), so
/// a head that only looks at the class token does not read as "distance 0".
public enum AttentionDistance {
    /// Running per-head sums over batches: `add` each batch's map, read `mean`.
    public struct Tally {
        public fileprivate(set) var sums: [Double]
        /// How many (image, query) pairs each head's sum holds.
        public fileprivate(set) var counts: [Double]
        /// The same sum for a head attending uniformly over the spatial keys (the
        /// baseline), over every spatial query, and how many queries it holds.
        public fileprivate(set) var uniformSum = 0.0
        public fileprivate(set) var uniformCount = 0.0
        public init(heads: Int) { sums = Array(repeating: 0, count: heads); counts = sums }
        /// Per-head mean distance in pixels (NaN for a head that had no spatial query).
        public var mean: [Double] { zip(sums, counts).map { $1 > 0 ? $0 / $1 : .nan } }
        /// The mean distance in pixels of a head that spreads its attention evenly
        /// over the same keys (NaN when there was no spatial query).
        public var uniformMean: Double { uniformCount > 0 ? uniformSum / uniformCount : .nan }

        public mutating func add(_ other: Tally) {
            for h in sums.indices { sums[h] += other.sums[h]; counts[h] += other.counts[h] }
            uniformSum += other.uniformSum
            uniformCount += other.uniformCount
        }
    }

    /// Per-head mean distance in pixels for one layer's map, or nil when the map
    /// has no positions. `imageHeight`/`imageWidth`: the input size in pixels.
    public static func perHead(_ map: AttentionMap, imageHeight: Int, imageWidth: Int) -> [Double]? {
        tally(map, imageHeight: imageHeight, imageWidth: imageWidth)?.mean
    }

    /// The per-head sums behind `perHead`, to accumulate over batches.
    public static func tally(_ map: AttentionMap, imageHeight: Int, imageWidth: Int) -> Tally? {
        guard let qPos = map.queryPositions, let kPos = map.keyPositions else { return nil }
        let p = map.probabilities.contiguous()
        let (g, heads, nq, nk) = (p.shape[0], p.shape[1], p.shape[2], p.shape[3])
        let probs = p.scalars
        let qs = qPos.contiguous().scalars, ks = kPos.contiguous().scalars
        let qShared = qPos.rank == 2, kShared = kPos.rank == 2
        let sy = Double(imageHeight), sx = Double(imageWidth)
        var tally = Tally(heads: heads)
        var distance = [Double](repeating: 0, count: nk)
        var spatial = [Bool](repeating: false, count: nk)
        for gi in 0..<g {
            let qBase = qShared ? 0 : gi * nq * 2, kBase = kShared ? 0 : gi * nk * 2
            for q in 0..<nq {
                let qy = Double(qs[qBase + 2 * q]), qx = Double(qs[qBase + 2 * q + 1])
                if qy.isNaN || qx.isNaN { continue }
                var uniformSum = 0.0, spatialKeys = 0.0
                for k in 0..<nk {
                    let ky = Double(ks[kBase + 2 * k]), kx = Double(ks[kBase + 2 * k + 1])
                    spatial[k] = !(ky.isNaN || kx.isNaN)
                    distance[k] = spatial[k] ? (((qy - ky) * sy) * ((qy - ky) * sy) + ((qx - kx) * sx) * ((qx - kx) * sx)).squareRoot() : 0
                    if spatial[k] { uniformSum += distance[k]; spatialKeys += 1 }
                }
                if spatialKeys > 0 {
                    // The baseline, one per (image, query) like the heads' sums: every spatial key weighted equally.
                    tally.uniformSum += uniformSum / spatialKeys
                    tally.uniformCount += 1
                }
                for h in 0..<heads {
                    let row = ((gi * heads + h) * nq + q) * nk
                    var weighted = 0.0, mass = 0.0
                    for k in 0..<nk where spatial[k] {
                        let w = Double(probs[row + k])
                        weighted += w * distance[k]
                        mass += w
                    }
                    guard mass > 1e-12 else { continue }
                    tally.sums[h] += weighted / mass
                    tally.counts[h] += 1
                }
            }
        }
        return tally
    }
}

/// `analyze attention-distance`.
extension AttentionDistance {
    public struct Layer: Encodable {
        public var key: String
        /// Mean distance in pixels of each head.
        public var heads: [Double]
        public var mean: Double
        /// The mean distance a head attending uniformly over the same keys would have
        /// (same token grid, prefix tokens left out the same way, same pixel units).
        public var uniformDistance: Double
    }

    public struct Summary: AnalysisSummary {
        public static let analysis = "attention-distance"

        public var layers: Int
        public var firstLayerMeanDistance: Double
        public var lastLayerMeanDistance: Double
        public var meanDistance: Double
        /// The first layer's uniform-attention baseline: what `firstLayerMeanDistance`
        /// would be if every head spread its attention evenly over its keys.
        public var uniformFirstLayerDistance: Double
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
            return Layer(key: layer.key, heads: heads, mean: finite.isEmpty ? .nan : finite.reduce(0, +) / Double(finite.count),
                         uniformDistance: t.uniformMean)
        }
        let means = rows.map(\.mean).filter(\.isFinite)
        let summary = Summary(layers: rows.count, firstLayerMeanDistance: rows.first?.mean ?? .nan,
                              lastLayerMeanDistance: rows.last?.mean ?? .nan,
                              meanDistance: means.isEmpty ? .nan : means.reduce(0, +) / Double(means.count),
                              uniformFirstLayerDistance: rows.first?.uniformDistance ?? .nan, imageSize: set.height)
        return Report(analysis: Summary.analysis, summary: summary,
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
        series.append(SVGPlot.Series(name: "uniform attention", points: layers.enumerated().map { (Double($0), $1.uniformDistance) }))
        return SVGPlot.lineChart(title: "\(title): mean attention distance", xLabel: "layer (input → output)",
                                 yLabel: "distance (pixels)", series: series,
                                 yRange: 0...(Double(report.summary.imageSize) * 2.0.squareRoot() / 2 + 1),
                                 xTickLabels: layers.count <= 16 ? layers.indices.map(String.init) : nil)
    }
}
