import Patchwork

/// What one attention layer attended to in its last forward pass, for the analyses
/// (attention distance, rollout, maps). Every attention layer of every family offers one.
public struct AttentionMap {
    /// Attention probabilities [G, heads, Nq, Nk], rows summing to 1. G is the batch,
    /// or batch × windows for windowed attention (in the layer's own window order).
    public var probabilities: Tensor
    /// Where each query sits in the image: (y, x) as fractions of the image's height and
    /// width in [0, 1] (token centres), [Nq, 2] when the same for every G, or [G, Nq, 2].
    /// NaN rows for tokens with no place (class or distillation tokens).
    /// nil when the layer does not know its grid.
    public var queryPositions: Tensor?
    /// The same for the keys, [Nk, 2] or [G, Nk, 2]: pooled, reduced or sampled keys at
    /// their true image positions.
    public var keyPositions: Tensor?
    /// Other per-layer values the analyses show, by name (ConViT's "gating" [heads],
    /// DAT's "sampled_positions").
    public var extras: [String: Tensor]

    public init(probabilities: Tensor, queryPositions: Tensor? = nil, keyPositions: Tensor? = nil,
                extras: [String: Tensor] = [:]) {
        self.probabilities = probabilities
        self.queryPositions = queryPositions
        self.keyPositions = keyPositions
        self.extras = extras
    }

    /// Centres of an h×w token grid, row-major, as (y, x) fractions of the image side,
    /// after `prefixTokens` rows of NaN: [prefixTokens + h·w, 2].
    public static func gridPositions(height: Int, width: Int, prefixTokens: Int = 0) -> Tensor {
        var values = [Float](repeating: .nan, count: prefixTokens * 2)
        values.reserveCapacity((prefixTokens + height * width) * 2)
        for i in 0..<height {
            for j in 0..<width {
                values.append((Float(i) + 0.5) / Float(height))
                values.append((Float(j) + 0.5) / Float(width))
            }
        }
        return Tensor(values, shape: [prefixTokens + height * width, 2])
    }
}

/// An attention layer that can keep its last attention probabilities.
/// Recording is off by default (it holds a tensor per layer); turn it on, run a
/// forward pass, read `lastAttentionMap`.
public protocol AttentionRecording: AnyObject {
    var recordsAttention: Bool { get set }
    var lastAttentionMap: AttentionMap? { get }
}

extension Module {
    /// Every attention layer below this module, by dotted key, in forward order.
    public func attentionLayers() -> [(key: String, layer: AttentionRecording)] {
        namedModules().compactMap { key, module in (module as? AttentionRecording).map { (key, $0) } }
    }

    /// Turns attention recording on or off in every attention layer below this module.
    public func recordAttention(_ on: Bool = true) {
        for (_, layer) in attentionLayers() { layer.recordsAttention = on }
    }
}
