import Foundation
import Patchwork
import PatchworkNN
import PatchworkData
import PatchworkModels

/// Attention rollout (Abnar & Zuidema 2020): how much each input token flows
/// into each output token through all attention layers, with the residual
/// connection modelled as an identity: R = Π_l normalise(½·mean_heads(A_l) + ½·I).
///
/// It is defined for models whose attention layers all mix one common token set
/// (ViT, hybrid ViT, ViT with a conv stem, ConViT, CeiT's blocks...). Windowed,
/// pooled or reduced attention (Swin, MaxViT, PVT, CMT, DAT...) has no such chain
/// of square maps; for them `rollout` throws, naming the first layer that breaks it.
public enum AttentionRollout {
    public struct Result {
        /// [B, N, N]: row i = the share of each input token in output token i.
        public let rollout: Tensor
        /// Where the N tokens sit ([N, 2] image fractions, NaN for class tokens).
        public let positions: Tensor
    }

    public static func rollout(_ maps: [(key: String, map: AttentionMap)]) throws -> Result {
        guard let first = maps.first else { throw AnalysisError("attention rollout: the model recorded no attention layer") }
        let n = first.map.probabilities.shape[2]
        let batch = first.map.probabilities.shape[0]
        guard let positions = first.map.queryPositions, positions.rank == 2 else {
            throw AnalysisError("attention rollout: layer \(first.key) has no shared token positions")
        }
        var r: Tensor? = nil
        for (key, map) in maps {
            let a = map.probabilities
            guard a.shape[0] == batch, a.shape[2] == n, a.shape[3] == n else {
                throw AnalysisError("attention rollout needs every layer to attend over the same \(n) tokens; layer \(key) has maps \(a.shape) (windowed or reduced attention)")
            }
            let mixed = withoutGrad { () -> Tensor in
                let m = a.mean(alongAxes: [1]) * 0.5 + Tensor.eye(n).reshaped([1, n, n]) * 0.5
                return m / m.sum(alongAxes: [2], keepDims: true)
            }
            r = withoutGrad { r.map { matmul(mixed, $0) } ?? mixed }
        }
        return Result(rollout: r!, positions: positions)
    }

    /// One heat map per image [B, h, w] on the token grid: the class token's row of
    /// the rollout (the first NaN-position token), or, without one, the mean over
    /// all output tokens; restricted to the grid tokens and scaled to max 1.
    public static func heatMaps(_ result: Result, gridHeight: Int, gridWidth: Int) throws -> Tensor {
        let pos = result.positions.scalars
        let n = result.positions.shape[0]
        let spatial = (0..<n).filter { !pos[2 * $0].isNaN }
        guard spatial.count == gridHeight * gridWidth else {
            throw AnalysisError("attention rollout: \(spatial.count) grid tokens do not make a \(gridHeight)x\(gridWidth) grid")
        }
        let r = result.rollout
        let batch = r.shape[0]
        let rows: Tensor
        if let cls = (0..<n).first(where: { pos[2 * $0].isNaN }) {
            rows = r.selecting(axis: 1, index: cls)                     // [B, N]
        } else {
            rows = r.mean(alongAxes: [1])
        }
        let grid = rows.indexSelect(axis: 1, indices: spatial).reshaped([batch, gridHeight, gridWidth])
        let peak = grid.max(alongAxes: [1, 2], keepDims: true)
        return withoutGrad { grid / (peak + 1e-12) }
    }
}

/// `analyze attention-maps`.
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
