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

/// Keeps one attention layer's last `AttentionMap`: the one place probabilities are recorded.
/// Off by default (it holds a tensor per layer). A plain object, not a Module: it has no
/// parameters and is not part of the checkpoint.
public final class AttentionRecorder {
    public var isOn = false
    public private(set) var map: AttentionMap?

    public init() {}

    /// When on, keeps `probabilities` and the positions, detached from the tape so that a
    /// recorded map never holds a graph alive. The closures run only when on: positions
    /// cost a table per call, which a training step should not pay.
    public func record(_ probabilities: @autoclosure () -> Tensor, queryPositions: @autoclosure () -> Tensor?,
                       keyPositions: @autoclosure () -> Tensor?, extras: @autoclosure () -> [String: Tensor] = [:]) {
        guard isOn else { return }
        map = AttentionMap(probabilities: probabilities().detached(), queryPositions: queryPositions()?.detached(),
                           keyPositions: keyPositions()?.detached(), extras: extras().mapValues { $0.detached() })
    }
}

/// An attention layer that can keep its last attention probabilities: it owns an
/// `AttentionRecorder` and hands it to `scaledDotProductAttention` (or records itself where
/// its probabilities are formed otherwise). Turn recording on, run a forward pass, read
/// `lastAttentionMap`.
public protocol AttentionRecording: AnyObject {
    var recorder: AttentionRecorder { get }
}

extension AttentionRecording {
    public var recordsAttention: Bool {
        get { recorder.isOn }
        set { recorder.isOn = newValue }
    }
    public var lastAttentionMap: AttentionMap? { recorder.map }
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
