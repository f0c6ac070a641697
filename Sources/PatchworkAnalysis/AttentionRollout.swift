import Foundation
import Patchwork
import PatchworkNN

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
