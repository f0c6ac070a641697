import Foundation
import Patchwork
import PatchworkNN

// LeViT, "LeViT: a Vision Transformer in ConvNet's Clothing for Faster Inference"
// (Graham et al. 2021), as timm 1.0.31 has it (timm/models/levit.py, `LevitDistilled`
// with distilled_training False, in its nn.Linear mode). Blocks → model → checkpoint
// filter → named variants.
//
// Tokens are [B, N, C]; every "linear" is a LinearNorm (Linear without bias, then a
// BatchNorm1d over all B·N tokens), which is BatchNorm over every axis but the last here.
// Attention adds a learned bias per head and per (|Δy|, |Δx|) offset; the index table
// (`attention_bias_idxs`, non-persistent in timm) is recomputed, never stored.

/// An activation as a named child (timm's act modules have no parameters, so no keys).
public final class LeViTActivation: Module {
    public let activation: Activation
    init(_ activation: Activation) { self.activation = activation }
    public override func callAsFunction(_ x: Tensor) -> Tensor { activation(x) }
}

/// timm's ConvNorm: conv (no bias) → BatchNorm2d (`linear`, `bn`).
public final class LeViTConvNorm: Module {
    @Child(key: "linear") public var linear: Conv2d
    @Child(key: "bn") public var bn: BatchNorm

    init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int, padding: Int, bnWeightInit: Float = 1) {
        _linear.wrappedValue = Conv2d(inChannels, outChannels, kernelSize: kernelSize, stride: stride, padding: padding, bias: false)
        _bn.wrappedValue = BatchNorm(outChannels)
        super.init()
        bn.weight = Tensor.full([outChannels], bnWeightInit)
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor { bn(linear(x)) }
}

/// timm's LinearNorm: Linear (no bias) → BatchNorm1d over the flattened B·N tokens (`linear`, `bn`).
public final class LeViTLinearNorm: Module {
    @Child(key: "linear") public var linear: Linear
    @Child(key: "bn") public var bn: BatchNorm

    init(_ inFeatures: Int, _ outFeatures: Int, bnWeightInit: Float = 1) {
        _linear.wrappedValue = Linear(inFeatures, outFeatures, bias: false)
        _bn.wrappedValue = BatchNorm(outFeatures)
        super.init()
        bn.weight = Tensor.full([outFeatures], bnWeightInit)
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor { bn(linear(x)) }
}

/// timm's NormLinear (the heads): BatchNorm1d → dropout → Linear.
public final class LeViTNormLinear: Module {
    @Child(key: "bn") public var bn: BatchNorm
    @Child(key: "drop") public var drop: Dropout
    @Child(key: "linear") public var linear: Linear

    init(_ inFeatures: Int, _ outFeatures: Int, drop: Float) {
        _bn.wrappedValue = BatchNorm(inFeatures)
        _drop.wrappedValue = Dropout(drop)
        _linear.wrappedValue = Linear(inFeatures, outFeatures)
        super.init()
        linear.weight = Init.truncatedNormal(linear.weight.shape, std: 0.02)
        linear.bias = Tensor.zeros([outFeatures])
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor { linear(drop(bn(x))) }
}

/// timm's Stem16 / Stem8: 3x3 stride-2 ConvNorms (out/8, out/4, out/2, out or out/4, out/2, out)
/// with the activation between them. Keys `conv1`, `act1`, ...
public final class LeViTStem: Module {
    @Child(key: "") var layers: [(String, Module)]
    public let stride: Int

    init(inChannels: Int, outChannels: Int, type: String, activation: Activation) {
        let widths = type == "s16" ? [outChannels / 8, outChannels / 4, outChannels / 2, outChannels]
                                   : [outChannels / 4, outChannels / 2, outChannels]
        var layers: [(String, Module)] = []
        var width = inChannels
        for (i, w) in widths.enumerated() {
            if i > 0 { layers.append(("act\(i)", LeViTActivation(activation))) }
            layers.append(("conv\(i + 1)", LeViTConvNorm(width, w, kernelSize: 3, stride: 2, padding: 1)))
            width = w
        }
        _layers.wrappedValue = layers
        stride = 1 << widths.count
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor { layers.reduce(x) { $1.1($0) } }
}

/// timm's Downsample (subsample mode): tokens of an r0×r1 grid → every `stride`-th row and column.
public final class LeViTSubsample: Module {
    public let stride: Int
    public let resolution: (Int, Int)
    init(stride: Int, resolution: (Int, Int)) { self.stride = stride; self.resolution = resolution }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        let b = x.shape[0], c = x.shape[2]
        let grid = x.reshaped([b, resolution.0, resolution.1, c])
            .sliced(axis: 1, start: 0, step: stride).sliced(axis: 2, start: 0, step: stride)
        return grid.reshaped([b, grid.shape[1] * grid.shape[2], c])
    }
}

/// An activation then a LinearNorm (timm's `proj` Sequential: `act`, `ln`).
public final class LeViTProjection: Module {
    @Child(key: "act") public var act: LeViTActivation
    @Child(key: "ln") public var ln: LeViTLinearNorm
    init(_ activation: Activation, _ inFeatures: Int, _ outFeatures: Int, bnWeightInit: Float) {
        _act.wrappedValue = LeViTActivation(activation)
        _ln.wrappedValue = LeViTLinearNorm(inFeatures, outFeatures, bnWeightInit: bnWeightInit)
    }
    public override func callAsFunction(_ x: Tensor) -> Tensor { ln(act(x)) }
}

/// The subsampled-query Sequential of AttentionDownsample (`down`, `ln`).
public final class LeViTQuery: Module {
    @Child(key: "down") public var down: LeViTSubsample
    @Child(key: "ln") public var ln: LeViTLinearNorm
    init(down: LeViTSubsample, ln: LeViTLinearNorm) { _down.wrappedValue = down; _ln.wrappedValue = ln }
    public override func callAsFunction(_ x: Tensor) -> Tensor { ln(down(x)) }
}

/// timm's attention-bias index table: for each query at `queryPoints` and each key of the
/// r0×r1 grid, |Δy|·r1 + |Δx|, flattened row-major [Nq·Nk].
func levitBiasIndices(resolution r: (Int, Int), stride: Int) -> [Int] {
    var out: [Int] = []
    for qy in Swift.stride(from: 0, to: r.0, by: stride) {
        for qx in Swift.stride(from: 0, to: r.1, by: stride) {
            for ky in 0..<r.0 {
                for kx in 0..<r.1 { out.append(abs(qy - ky) * r.1 + abs(qx - kx)) }
            }
        }
    }
    return out
}

/// (y, x) image fractions of the grid points (i·stride, j·stride) of an r0×r1 token grid: [Nq, 2].
func levitPositions(resolution r: (Int, Int), stride: Int) -> Tensor {
    var values: [Float] = []
    for i in Swift.stride(from: 0, to: r.0, by: stride) {
        for j in Swift.stride(from: 0, to: r.1, by: stride) {
            values.append((Float(i) + 0.5) / Float(r.0))
            values.append((Float(j) + 0.5) / Float(r.1))
        }
    }
    return Tensor(values, shape: [values.count / 2, 2])
}

/// timm's LeViT Attention (linear mode): LinearNorm qkv laid out per head as [q | k | v],
/// scores·key_dim^-0.5 plus the learned bias of each (|Δy|, |Δx|) offset, softmax,
/// then act → LinearNorm (its BN weight initialised to 0).
public final class LeViTAttention: Module, AttentionRecording {
    @Parameter(key: "attention_biases") public var attentionBiases: Tensor
    @Child(key: "qkv") public var qkv: LeViTLinearNorm
    @Child(key: "proj") public var proj: LeViTProjection
    public let heads: Int, keyDim: Int, valueDim: Int
    public let scale: Float
    public let resolution: (Int, Int)
    let biasIndices: [Int]

    public let recorder = AttentionRecorder()

    init(dim: Int, keyDim: Int, heads: Int, attnRatio: Double, resolution: (Int, Int), activation: Activation) {
        let n = resolution.0 * resolution.1
        let vd = Int(attnRatio * Double(keyDim))
        self.heads = heads; self.keyDim = keyDim; self.resolution = resolution
        valueDim = vd
        scale = 1 / Float(keyDim).squareRoot()
        _qkv.wrappedValue = LeViTLinearNorm(dim, vd * heads + keyDim * heads * 2)
        _proj.wrappedValue = LeViTProjection(activation, vd * heads, dim, bnWeightInit: 0)
        _attentionBiases.wrappedValue = Tensor.zeros([heads, n])
        biasIndices = levitBiasIndices(resolution: resolution, stride: 1)
    }

    /// attention_biases[:, attention_bias_idxs]: [heads, N, N].
    func biasTable() -> Tensor {
        let n = resolution.0 * resolution.1
        return attentionBiases.indexSelect(axis: 1, indices: biasIndices).reshaped([heads, n, n])
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        let b = x.shape[0], n = x.shape[1]
        guard n == resolution.0 * resolution.1 else {
            fail("LeViTAttention", "\(n) tokens; the layer was built for a \(resolution.0)x\(resolution.1) grid")
        }
        let qkv = self.qkv(x).reshaped([b, n, heads, 2 * keyDim + valueDim])
            .split(sizes: [keyDim, keyDim, valueDim], axis: 3).map { $0.permuted([0, 2, 1, 3]) }
        let q = qkv[0], k = qkv[1], v = qkv[2]
        let bias = biasTable()
        return proj(scaledDotProductAttention(q: q, k: k, v: v, scale: scale, bias: bias, recorder: recorder,
                                              queryPositions: levitPositions(resolution: resolution, stride: 1),
                                              keyPositions: levitPositions(resolution: resolution, stride: 1),
                                              extras: ["attention_bias": bias]).output)
    }
}

/// timm's AttentionDownsample (linear mode): keys and values from every token (LinearNorm
/// `kv`, per head [k | v]), queries from the tokens at even rows and columns (`q`: subsample
/// → LinearNorm), biases indexed by the offset of each subsampled query to each key.
public final class LeViTAttentionDownsample: Module, AttentionRecording {
    @Parameter(key: "attention_biases") public var attentionBiases: Tensor
    @Child(key: "kv") public var kv: LeViTLinearNorm
    @Child(key: "q") public var q: LeViTQuery
    @Child(key: "proj") public var proj: LeViTProjection
    public let heads: Int, keyDim: Int, valueDim: Int, stride: Int
    public let scale: Float
    public let resolution: (Int, Int)
    /// The query grid: ceil(r / stride) per side.
    public let queryResolution: (Int, Int)
    let biasIndices: [Int]

    /// Records queries at the subsampled grid points (rows and columns 0, stride, ...); keys on the full grid.
    public let recorder = AttentionRecorder()

    init(inDim: Int, outDim: Int, keyDim: Int, heads: Int, attnRatio: Double, stride: Int, resolution: (Int, Int),
         activation: Activation) {
        let vd = Int(attnRatio * Double(keyDim))
        self.heads = heads; self.keyDim = keyDim; self.stride = stride; self.resolution = resolution
        valueDim = vd
        scale = 1 / Float(keyDim).squareRoot()
        queryResolution = ((resolution.0 + stride - 1) / stride, (resolution.1 + stride - 1) / stride)
        _kv.wrappedValue = LeViTLinearNorm(inDim, vd * heads + keyDim * heads)
        _q.wrappedValue = LeViTQuery(down: LeViTSubsample(stride: stride, resolution: resolution), ln: LeViTLinearNorm(inDim, keyDim * heads))
        _proj.wrappedValue = LeViTProjection(activation, vd * heads, outDim, bnWeightInit: 1)
        _attentionBiases.wrappedValue = Tensor.zeros([heads, resolution.0 * resolution.1])
        biasIndices = levitBiasIndices(resolution: resolution, stride: stride)
    }

    /// [heads, Nq, Nk].
    func biasTable() -> Tensor {
        attentionBiases.indexSelect(axis: 1, indices: biasIndices)
            .reshaped([heads, queryResolution.0 * queryResolution.1, resolution.0 * resolution.1])
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        let b = x.shape[0], n = x.shape[1]
        guard n == resolution.0 * resolution.1 else {
            fail("LeViTAttentionDownsample", "\(n) tokens; the layer was built for a \(resolution.0)x\(resolution.1) grid")
        }
        let nq = queryResolution.0 * queryResolution.1
        let kv = self.kv(x).reshaped([b, n, heads, keyDim + valueDim])
            .split(sizes: [keyDim, valueDim], axis: 3).map { $0.permuted([0, 2, 1, 3]) }
        let k = kv[0], v = kv[1]
        let query = q(x).reshaped([b, nq, heads, keyDim]).permuted([0, 2, 1, 3])
        let bias = biasTable()
        return proj(scaledDotProductAttention(q: query, k: k, v: v, scale: scale, bias: bias, recorder: recorder,
                                              queryPositions: levitPositions(resolution: resolution, stride: stride),
                                              keyPositions: levitPositions(resolution: resolution, stride: 1),
                                              extras: ["attention_bias": bias]).output)
    }
}

/// timm's LevitMlp: LinearNorm → act → dropout → LinearNorm (BN weight initialised to 0).
public final class LeViTMlp: Module {
    @Child(key: "ln1") public var ln1: LeViTLinearNorm
    @Child(key: "act") public var act: LeViTActivation
    @Child(key: "drop") public var drop: Dropout
    @Child(key: "ln2") public var ln2: LeViTLinearNorm

    init(_ inFeatures: Int, hidden: Int, activation: Activation) {
        _ln1.wrappedValue = LeViTLinearNorm(inFeatures, hidden)
        _act.wrappedValue = LeViTActivation(activation)
        _drop.wrappedValue = Dropout(0)
        _ln2.wrappedValue = LeViTLinearNorm(hidden, inFeatures, bnWeightInit: 0)
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor { ln2(drop(act(ln1(x)))) }
}

/// timm's LevitDownsample: AttentionDownsample (heads in_dim // key_dim, attn_ratio 4),
/// then a residual LevitMlp (mlp_ratio 2).
public final class LeViTDownsample: Module {
    @Child(key: "attn_downsample") public var attnDownsample: LeViTAttentionDownsample
    @Child(key: "mlp") public var mlp: LeViTMlp
    @Child(key: "drop_path") public var dropPath: DropPath

    init(inDim: Int, outDim: Int, keyDim: Int, resolution: (Int, Int), activation: Activation, attnActivation: Activation,
         dropPath: Float) {
        _attnDownsample.wrappedValue = LeViTAttentionDownsample(inDim: inDim, outDim: outDim, keyDim: keyDim, heads: inDim / keyDim,
                                                  attnRatio: 4, stride: 2, resolution: resolution, activation: attnActivation)
        _mlp.wrappedValue = LeViTMlp(outDim, hidden: Int(Double(outDim) * 2), activation: activation)
        _dropPath.wrappedValue = DropPath(dropPath)
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        let y = attnDownsample(x)
        return y + dropPath(mlp(y))
    }
}

/// timm's LevitBlock: x + attn(x), then x + mlp(x) (no pre-norm: the BNs are inside).
public final class LeViTBlock: Module {
    @Child(key: "attn") public var attn: LeViTAttention
    @Child(key: "drop_path1") public var dropPath1: DropPath
    @Child(key: "mlp") public var mlp: LeViTMlp
    @Child(key: "drop_path2") public var dropPath2: DropPath

    init(dim: Int, keyDim: Int, heads: Int, attnRatio: Double, mlpRatio: Double, resolution: (Int, Int),
         activation: Activation, attnActivation: Activation, dropPath: Float) {
        _attn.wrappedValue = LeViTAttention(dim: dim, keyDim: keyDim, heads: heads, attnRatio: attnRatio, resolution: resolution,
                              activation: attnActivation)
        _dropPath1.wrappedValue = DropPath(dropPath)
        _mlp.wrappedValue = LeViTMlp(dim, hidden: Int(Double(dim) * mlpRatio), activation: activation)
        _dropPath2.wrappedValue = DropPath(dropPath)
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        let h = x + dropPath1(attn(x))
        return h + dropPath2(mlp(h))
    }
}

/// timm's LevitStage: an optional LevitDownsample (every stage but the first), then blocks.
public final class LeViTStage: Module {
    @Child(key: "downsample") public var downsample: Module
    @Child(key: "blocks") public var blocks: [LeViTBlock]
    /// The token grid of the blocks.
    public let resolution: (Int, Int)

    init(inDim: Int, outDim: Int, keyDim: Int, depth: Int, heads: Int, attnRatio: Double, mlpRatio: Double,
         activation: Activation, attnActivation: Activation, resolution r: (Int, Int), downsample: Bool, dropPath: Float) {
        var r = r
        if downsample {
            _downsample.wrappedValue = LeViTDownsample(inDim: inDim, outDim: outDim, keyDim: keyDim, resolution: r, activation: activation,
                                              attnActivation: attnActivation, dropPath: dropPath)
            r = ((r.0 - 1) / 2 + 1, (r.1 - 1) / 2 + 1)
        } else {
            _downsample.wrappedValue = Identity()
        }
        resolution = r
        _blocks.wrappedValue = (0..<depth).map { _ in
            LeViTBlock(dim: outDim, keyDim: keyDim, heads: heads, attnRatio: attnRatio, mlpRatio: mlpRatio, resolution: r,
                       activation: activation, attnActivation: attnActivation, dropPath: dropPath)
        }
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor { blocks.reduce(downsample(x)) { $1($0) } }
}

/// A value timm accepts either once for every stage or as a per-stage list (`to_ntuple`).
public enum LeViTPerStage<T: Codable & Sendable>: Codable, Sendable {
    case all(T)
    case each([T])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let v = try? c.decode(T.self) { self = .all(v) } else { self = .each(try c.decode([T].self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .all(let v): try c.encode(v)
        case .each(let v): try c.encode(v)
        }
    }

    func values(_ n: Int, _ name: String) throws -> [T] {
        switch self {
        case .all(let v): return Array(repeating: v, count: n)
        case .each(let v):
            guard v.count >= n else { throw ModelError("levit: \(name) has \(v.count) entries for \(n) stages") }
            return v
        }
    }
}

/// The arguments of timm's `Levit` / `LevitDistilled`, under their names.
public struct LeViTConfig: Codable, Sendable {
    /// An int, or [height, width].
    public var imgSize: LeViTPerStage<Int> = .all(224)
    public var inChans = 3
    public var numClasses = 1000
    public var embedDim = [192]
    public var keyDim = 64
    public var depth = [12]
    public var numHeads: LeViTPerStage<Int> = .each([3])
    public var attnRatio: LeViTPerStage<Double> = .all(2)
    public var mlpRatio: LeViTPerStage<Double> = .all(2)
    /// Not supported (a module in timm); must be null.
    public var stemBackbone: JSONValue?
    public var stemStride: Int?
    public var stemType = "s16"
    public var downOp = "subsample"
    public var actLayer = "hard_swish"
    public var attnActLayer: String?
    public var useConv = false
    public var globalPool = "avg"
    public var dropRate = 0.0
    public var dropPathRate = 0.0
    /// `create_levit(distilled=...)`: true builds `LevitDistilled` (head + head_dist),
    /// false timm's plain `Levit` (one head).
    public var distilled = true

    public init(imgSize: Int = 224, numClasses: Int = 1000, embedDim: [Int], keyDim: Int, depth: [Int], numHeads: [Int],
                stemType: String = "s16", actLayer: String = "hard_swish") {
        self.imgSize = .all(imgSize); self.numClasses = numClasses; self.embedDim = embedDim; self.keyDim = keyDim
        self.depth = depth; self.numHeads = .each(numHeads); self.stemType = stemType; self.actLayer = actLayer
    }

    enum CodingKeys: String, CodingKey {
        case imgSize, inChans, numClasses, embedDim, keyDim, depth, numHeads, attnRatio, mlpRatio, stemBackbone, stemStride,
             stemType, downOp, actLayer, attnActLayer, useConv, globalPool, dropRate, dropPathRate, distilled
    }

    /// Missing keys keep timm's defaults.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func read<T: Decodable>(_ key: CodingKeys, _ value: inout T) throws {
            if let v = try c.decodeIfPresent(T.self, forKey: key) { value = v }
        }
        try read(.imgSize, &imgSize); try read(.inChans, &inChans); try read(.numClasses, &numClasses)
        try read(.embedDim, &embedDim); try read(.keyDim, &keyDim); try read(.depth, &depth); try read(.numHeads, &numHeads)
        try read(.attnRatio, &attnRatio); try read(.mlpRatio, &mlpRatio)
        stemBackbone = try c.decodeIfPresent(JSONValue.self, forKey: .stemBackbone)
        stemStride = try c.decodeIfPresent(Int.self, forKey: .stemStride)
        try read(.stemType, &stemType); try read(.downOp, &downOp); try read(.actLayer, &actLayer)
        attnActLayer = try c.decodeIfPresent(String.self, forKey: .attnActLayer)
        try read(.useConv, &useConv); try read(.globalPool, &globalPool)
        try read(.dropRate, &dropRate); try read(.dropPathRate, &dropPathRate)
        try read(.distilled, &distilled)
    }

    /// timm's get_act_layer names.
    static func activation(_ name: String) throws -> Activation {
        switch name {
        case "hard_swish", "hardswish": return .hardswish
        case "silu", "swish": return .silu
        case "gelu": return .gelu
        case "gelu_tanh": return .geluTanh
        case "relu": return .relu
        case "tanh": return .tanh
        case "sigmoid": return .sigmoid
        case "identity": return .identity
        default: throw ModelError("levit: activation \"\(name)\" is not supported (hard_swish, silu, gelu, gelu_tanh, relu, tanh, sigmoid, identity)")
        }
    }
}

extension LeViTConfig: ModelConfig {
    public func validate() throws {
        let check = ConfigCheck(family: "levit")
        let n = embedDim.count
        guard n >= 1 else { throw check.error("embed_dim", embedDim, "must have at least one stage") }
        try check.perStage(depth, "depth", stages: n, as: "embed_dim")
        for (i, w) in embedDim.enumerated() { try check.width(w, "embed_dim[\(i)]") }
        try check.depths(depth, "depth")
        try check.width(keyDim, "key_dim")
        try check.width(inChans, "in_chans")
        try check.classes(numClasses)
        let sizes: [Int]
        switch imgSize {
        case .all(let s): sizes = [s, s]
        case .each(let s): sizes = s
        }
        guard sizes.count == 2 else { throw check.error("img_size", sizes, "must be one side or [height, width]") }
        for s in sizes { try check.size(s, "img_size") }
        for (list, field) in [(numHeads, "num_heads")] {
            if case .each(let v) = list { try check.perStage(v, field, stages: n, as: "embed_dim") }
            for (i, h) in try list.values(n, field).enumerated() { try check.width(h, "\(field)[\(i)]") }
        }
        for (list, field) in [(attnRatio, "attn_ratio"), (mlpRatio, "mlp_ratio")] {
            if case .each(let v) = list { try check.perStage(v, field, stages: n, as: "embed_dim") }
            for (i, r) in try list.values(n, field).enumerated() { try check.positive(r, "\(field)[\(i)]") }
        }
        try check.rates([(dropRate, "drop_rate"), (dropPathRate, "drop_path_rate")])
        let heads = try numHeads.values(n, "num_heads"), mlps = try mlpRatio.values(n, "mlp_ratio")
        let attn = try attnRatio.values(n, "attn_ratio")
        var estimate = ConfigCheck.table(embedDim.last!, numClasses * 2)
        for i in 0..<n {
            let inner = Double(keyDim * heads[i]) * (2 + attn[i])
            estimate += Double(depth[i]) * (Double(embedDim[i]) * inner * 2 + Double(embedDim[i] * embedDim[i]) * 2 * mlps[i])
        }
        // Attention biases: one per head and pair of positions of the stage's resolution.
        let side = Double(sizes.max()!) / 16
        estimate += Double(heads.max()!) * side * side * Double(n)
        try check.parameters(estimate, "embed_dim, depth, key_dim, num_heads, attn_ratio, mlp_ratio, img_size, num_classes")
    }
    public var expectedInput: ExpectedInput {
        switch imgSize {
        case .all(let s): return ExpectedInput(channels: inChans, side: s)
        case .each(let s): return s.count == 2 ? ExpectedInput(channels: inChans, height: s[0], width: s[1])
                                               : ExpectedInput(channels: inChans, side: nil)
        }
    }
    public var classCount: Int { numClasses }
}

/// timm's LevitDistilled: stem → tokens → stages → mean over tokens → (head + head_dist) / 2
/// (distilled_training is False, so training mode averages the two heads as well);
/// with `distilled` false timm's Levit, whose only head is `head`.
public final class LeViT: Module, ImageClassifier, CheckpointFiltering {
    @Child(key: "stem") public var stem: LeViTStem
    @Child(key: "stages") public var stages: [LeViTStage]
    @Child(key: "head") public private(set) var head: Module
    /// Absent in timm's plain `Levit`.
    @Child(key: "head_dist") public private(set) var headDist: Module?
    /// The stem's token grid.
    public let resolution: (Int, Int)
    public let numFeatures: Int
    let dropRate: Float

    public init(_ c: LeViTConfig) throws {
        try c.validate()
        if let b = c.stemBackbone, b != .null { throw ModelError("levit: stem_backbone is not supported (only the s16/s8 conv stems)") }
        guard c.stemStride == nil else { throw ModelError("levit: stem_stride is only used with a stem_backbone, which is not supported") }
        guard ["s16", "s8"].contains(c.stemType) else { throw ModelError("levit: stem_type \"\(c.stemType)\" is not supported (s16, s8)") }
        guard !c.useConv else { throw ModelError("levit: use_conv (the levit_conv_* ConvNorm mode) is not supported; use the nn.Linear mode") }
        guard c.globalPool == "avg" else { throw ModelError("levit: global_pool \"\(c.globalPool)\" is not supported (avg)") }
        let n = c.embedDim.count
        guard n > 0, c.depth.count == n else {
            throw ModelError("levit: depth \(c.depth) and embed_dim \(c.embedDim) must have one entry per stage")
        }
        guard n == 1 || c.downOp == "subsample" else {
            throw ModelError("levit: down_op \"\(c.downOp)\" is not supported (subsample)")
        }
        let heads = try c.numHeads.values(n, "num_heads")
        let attnRatios = try c.attnRatio.values(n, "attn_ratio"), mlpRatios = try c.mlpRatio.values(n, "mlp_ratio")
        let size = try c.imgSize.values(2, "img_size")
        let act = try LeViTConfig.activation(c.actLayer)
        let attnAct = try LeViTConfig.activation(c.attnActLayer ?? c.actLayer)
        guard c.keyDim > 0, heads.prefix(n).allSatisfy({ $0 > 0 }) else { throw ModelError("levit: key_dim and num_heads must be positive") }
        for i in 1..<max(n, 1) where c.embedDim[i - 1] / c.keyDim == 0 {
            throw ModelError("levit: the downsample before stage \(i) has embed_dim[\(i - 1)] // key_dim = 0 heads")
        }

        let stem = LeViTStem(inChannels: c.inChans, outChannels: c.embedDim[0], type: c.stemType, activation: act)
        _stem.wrappedValue = stem
        var r = (size[0] / stem.stride, size[1] / stem.stride)
        guard r.0 > 0, r.1 > 0 else { throw ModelError("levit: img_size \(size) is smaller than the stem stride \(stem.stride)") }
        resolution = r
        var stages: [LeViTStage] = []
        var inDim = c.embedDim[0]
        for i in 0..<n {
            let stage = LeViTStage(inDim: inDim, outDim: c.embedDim[i], keyDim: c.keyDim, depth: c.depth[i], heads: heads[i],
                                   attnRatio: attnRatios[i], mlpRatio: mlpRatios[i], activation: act, attnActivation: attnAct,
                                   resolution: r, downsample: i > 0, dropPath: Float(c.dropPathRate))
            stages.append(stage)
            r = stage.resolution
            inDim = c.embedDim[i]
        }
        _stages.wrappedValue = stages
        let features = c.embedDim[n - 1], drop = Float(c.dropRate)
        numFeatures = features
        dropRate = drop
        _head.wrappedValue = c.numClasses > 0 ? LeViTNormLinear(features, c.numClasses, drop: drop) as Module : Identity()
        _headDist.wrappedValue = !c.distilled ? nil : c.numClasses > 0 ? LeViTNormLinear(features, c.numClasses, drop: drop) as Module : Identity()
        super.init()
    }

    /// Stem map [B, h, w, C] → tokens [B, h·w, C].
    func tokens(fromStem map: Tensor, input x: Tensor) -> Tensor {
        guard map.rank == 4, (map.shape[1], map.shape[2]) == resolution else {
            fail("LeViT", "input \(x.shape) gives a \(map.shape[1])x\(map.shape[2]) token grid; the model was built for \(resolution.0)x\(resolution.1) (img_size)")
        }
        return map.reshaped([map.shape[0], resolution.0 * resolution.1, map.shape[3]])
    }

    /// Tokens [B, N, C] of the last stage.
    public func forwardFeatures(_ x: Tensor) -> Tensor {
        stages.reduce(tokens(fromStem: stem(x), input: x)) { $1($0) }
    }

    public func forwardHead(_ features: Tensor, preLogits: Bool) -> Tensor {
        let pooled = features.rank == 4 ? features.mean(alongAxes: [1, 2]) : features.mean(alongAxes: [1])
        if preLogits { return pooled }
        guard let headDist else { return head(pooled) }
        return (head(pooled) + headDist(pooled)) / 2
    }

    /// "stem" [B, h, w, C], then each stage's downsample and blocks as maps [B, h, w, C]
    /// ("stages.{i}.downsample", "stages.{i}.blocks.{j}").
    public func forwardIntermediates(_ x: Tensor) -> [(name: String, value: Tensor)] {
        let map = stem(x)
        var out: [(String, Tensor)] = [("stem", map)]
        var h = tokens(fromStem: map, input: x)
        let b = x.shape[0]
        for (i, stage) in stages.enumerated() {
            func asMap(_ t: Tensor) -> Tensor { t.reshaped([b, stage.resolution.0, stage.resolution.1, t.shape[2]]) }
            if !(stage.downsample is Identity) {
                h = stage.downsample(h)
                out.append(("stages.\(i).downsample", asMap(h)))
            }
            for (j, block) in stage.blocks.enumerated() {
                h = block(h)
                out.append(("stages.\(i).blocks.\(j)", asMap(h)))
            }
        }
        return out
    }

    public func resetClassifier(numClasses: Int) {
        head = numClasses > 0 ? LeViTNormLinear(numFeatures, numClasses, drop: dropRate) as Module : Identity()
        if headDist != nil {
            headDist = numClasses > 0 ? LeViTNormLinear(numFeatures, numClasses, drop: dropRate) as Module : Identity()
        }
        head.train(training); headDist?.train(training)
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor { logits(x) }

    /// timm's checkpoint_filter_fn: unwraps {"model": ...} (not applicable to a flat dict) and
    /// drops `attention_bias_idxs` (persistent in old checkpoints, recomputed here).
    public func checkpointFilter(_ stateDict: [String: Tensor]) -> [String: Tensor] {
        stateDict.filter { !$0.key.hasSuffix("attention_bias_idxs") }
    }
}

extension LeViT {
    @Sendable static func build(_ config: JSONValue) throws -> ImageClassifier { try LeViT(config.decode(LeViTConfig.self)) }

    /// A timm entrypoint: its `model_cfgs` entry as `levit.py` registers it.
    static func variant(_ name: String, _ arguments: [String: JSONValue]) -> ModelVariant {
        ModelVariant(name, family: "levit", inputSize: 224, arguments: arguments, build: build)
    }

    /// timm's model_cfgs for the distilled ImageNet LeViTs (hard_swish, s16 stem, 224).
    public static let family = ModelFamily(
        name: "levit", reference: "timm 1.0.31 timm.models.levit.LevitDistilled",
        variants: [
            variant("levit_128s", ["embed_dim": [128, 256, 384], "key_dim": 16, "num_heads": [4, 6, 8], "depth": [2, 3, 4]]),
            variant("levit_128", ["embed_dim": [128, 256, 384], "key_dim": 16, "num_heads": [4, 8, 12], "depth": [4, 4, 4]]),
            variant("levit_192", ["embed_dim": [192, 288, 384], "key_dim": 32, "num_heads": [3, 5, 6], "depth": [4, 4, 4]]),
            variant("levit_256", ["embed_dim": [256, 384, 512], "key_dim": 32, "num_heads": [4, 6, 8], "depth": [4, 4, 4]]),
            variant("levit_384", ["embed_dim": [384, 512, 768], "key_dim": 32, "num_heads": [6, 9, 12], "depth": [4, 4, 4]]),
            // For 32x32: the stride-8 stem (4x4 tokens), then one shrinking-attention stage (2x2).
            ModelVariant("levit_nano", family: "levit", inputSize: 32) { classes in
                try LeViT(LeViTConfig(imgSize: 32, numClasses: classes, embedDim: [96, 192], keyDim: 16, depth: [2, 2],
                                      numHeads: [3, 6], stemType: "s8"))
            },
        ],
        build: build)
}
