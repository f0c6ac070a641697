import Foundation
import Patchwork
import PatchworkNN

// Pyramid Vision Transformer v1 (Wang et al. 2021), as Hugging Face transformers
// 5.24.0 writes it: transformers/models/pvt/modeling_pvt.py, PvtForImageClassification.
// Blocks → model → checkpoint filter → named variants.
//
// Tokens are [B, N, C]; between stages they become a channels-last map [B, h, w, C]
// by a reshape (the reference permutes to NCHW there). Keys are Hugging Face's
// (`pvt.encoder.patch_embeddings.i.*`, `pvt.encoder.block.i.j.*`, `classifier.*`).

/// Where reduced or pooled keys sit in the image (see `AttentionMap`): a key that
/// averages (or convolves) the tokens of rows [a, b) and columns [c, d) of an h×w
/// token grid sits at the centre of that cell, ((a+b)/2h, (c+d)/2w).
enum PVTPositions {
    /// Cells of a kernel = stride = r reduction (Conv2d without padding): ⌊h/r⌋ × ⌊w/r⌋, row-major.
    static func reducedCells(height h: Int, width w: Int, ratio r: Int) -> Tensor {
        let rows = (0..<(h / r)).map { ($0 * r, $0 * r + r) }, cols = (0..<(w / r)).map { ($0 * r, $0 * r + r) }
        return cells(rows: rows, cols: cols, height: h, width: w)
    }

    /// The bins of torch's adaptive average pooling to (oh, ow): [⌊i·h/o⌋, ⌈(i+1)·h/o⌉).
    static func adaptiveCells(height h: Int, width w: Int, output: (Int, Int)) -> Tensor {
        func bins(_ n: Int, _ o: Int) -> [(Int, Int)] { (0..<o).map { (($0 * n) / o, (($0 + 1) * n + o - 1) / o) } }
        return cells(rows: bins(h, output.0), cols: bins(w, output.1), height: h, width: w)
    }

    static func cells(rows: [(Int, Int)], cols: [(Int, Int)], height h: Int, width w: Int) -> Tensor {
        var values: [Float] = []
        values.reserveCapacity(rows.count * cols.count * 2)
        for r in rows {
            for c in cols {
                values.append(Float(r.0 + r.1) / Float(2 * h))
                values.append(Float(c.0 + c.1) / Float(2 * w))
            }
        }
        return Tensor(values, shape: [rows.count * cols.count, 2])
    }
}

/// Hugging Face's ACT2FN names used by PvtConfig.hidden_act.
func pvtActivation(_ name: String) throws -> Activation {
    switch name {
    case "gelu": return .gelu
    case "gelu_new", "gelu_pytorch_tanh", "gelu_fast": return .geluTanh
    case "relu": return .relu
    case "silu", "swish": return .silu
    case "sigmoid": return .sigmoid
    case "tanh": return .tanh
    default: throw ModelError("pvt: hidden_act \"\(name)\" is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu, silu, swish, sigmoid, tanh)")
    }
}

/// PvtPatchEmbeddings: Conv2d(kernel = strides[i], stride = patch_sizes[i]) → LayerNorm
/// → (class token in front, last stage only) + position embeddings → dropout.
///
/// The position embedding is held for the grid of the reference's formula; at another
/// grid it is resampled bilinearly (align_corners false), as the PVT authors' `_get_pos_embed`.
public final class PvtPatchEmbeddings: Module {
    @Parameter(key: "position_embeddings") public var positionEmbeddings: Tensor
    @OptionalParameter(key: "cls_token") public var clsToken: Tensor?
    @Child(key: "projection") public var projection: Conv2d
    @Child(key: "layer_norm") public var layerNorm: LayerNorm
    @Child(key: "dropout") var dropout: Dropout
    /// The token grid the position embedding is built for.
    public let grid: (Int, Int)
    public let hiddenSize: Int

    init(gridSide: Int, patchSize: Int, stride: Int, inChannels: Int, hiddenSize: Int, clsToken: Bool,
         eps: Float, dropout: Float) {
        grid = (gridSide, gridSide)
        self.hiddenSize = hiddenSize
        _positionEmbeddings.wrappedValue = Init.truncatedNormal([1, gridSide * gridSide + (clsToken ? 1 : 0), hiddenSize], std: 0.02)
        _clsToken.wrappedValue = clsToken ? Init.truncatedNormal([1, 1, hiddenSize], std: 0.02) : nil
        _projection.wrappedValue = Conv2d(inChannels, hiddenSize, kernelSize: stride, stride: patchSize, bias: true)
        _layerNorm.wrappedValue = LayerNorm(hiddenSize, eps: eps)
        _dropout.wrappedValue = Dropout(dropout)
        super.init()
        projection.weight = Init.truncatedNormal(projection.weight.shape, std: 0.02)
        projection.bias = Tensor.zeros([hiddenSize])
    }

    /// The grid part of the position embedding, resampled to h×w when that differs: [1, h·w, C].
    func gridEmbedding(_ h: Int, _ w: Int) -> Tensor {
        let prefix = clsToken == nil ? 0 : 1
        let pe = positionEmbeddings.sliced(axis: 1, start: prefix)
        guard (h, w) != grid else { return pe }
        let map = pe.reshaped([1, grid.0, grid.1, hiddenSize])
        return resize(map, size: (h, w), mode: .bilinear, alignCorners: false).reshaped([1, h * w, hiddenSize])
    }

    /// x [B, H, W, C_in] → tokens [B, (1 +) h·w, C] and the grid (h, w).
    func forward(_ x: Tensor) -> (tokens: Tensor, h: Int, w: Int) {
        let map = projection(x)
        let b = map.shape[0], h = map.shape[1], w = map.shape[2]
        var tokens = layerNorm(map.reshaped([b, h * w, hiddenSize]))
        var pe = gridEmbedding(h, w)
        if let cls = clsToken {
            tokens = concat([cls.expanded(to: [b, 1, hiddenSize]), tokens], axis: 1)
            pe = concat([positionEmbeddings.sliced(axis: 1, start: 0, end: 1), pe], axis: 1)
        }
        return (dropout(tokens + pe), h, w)
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor { forward(x).tokens }
}

/// PvtEfficientSelfAttention: queries from every token; keys and values from the
/// tokens reduced by a Conv2d(kernel = stride = sr) + LayerNorm when sr > 1.
/// Scores are scaled by head_dim^-0.5.
///
/// Attention maps: queries at their token centres (NaN for the class token); reduced
/// keys at the centres of their sr×sr cells.
public final class PvtEfficientSelfAttention: Module, AttentionRecording {
    @Child(key: "query") public var query: Linear
    @Child(key: "key") public var key: Linear
    @Child(key: "value") public var value: Linear
    @Child(key: "sequence_reduction") public var sequenceReduction: Conv2d?
    @Child(key: "layer_norm") public var layerNorm: LayerNorm?
    @Child(key: "dropout") var dropout: Dropout
    public let heads: Int
    public let reductionRatio: Int
    let scale: Float
    public let recorder = AttentionRecorder()

    init(_ dim: Int, heads: Int, reductionRatio: Int, qkvBias: Bool, eps: Float, attentionDropout: Float) {
        _query.wrappedValue = Linear(dim, dim, bias: qkvBias)
        _key.wrappedValue = Linear(dim, dim, bias: qkvBias)
        _value.wrappedValue = Linear(dim, dim, bias: qkvBias)
        if reductionRatio > 1 {
            _sequenceReduction.wrappedValue = Conv2d(dim, dim, kernelSize: reductionRatio, stride: reductionRatio)
            _layerNorm.wrappedValue = LayerNorm(dim, eps: eps)
        } else {
            _sequenceReduction.wrappedValue = nil
            _layerNorm.wrappedValue = nil
        }
        _dropout.wrappedValue = Dropout(attentionDropout)
        self.heads = heads
        self.reductionRatio = reductionRatio
        scale = 1 / Float(dim / heads).squareRoot()
    }

    /// x [B, N, C] (N = h·w, or 1 + h·w with a class token when sr = 1) → [B, N, C].
    func forward(_ x: Tensor, h: Int, w: Int) -> Tensor {
        let b = x.shape[0], n = x.shape[1], c = x.shape[2], hd = c / heads
        let q = query(x).reshaped([b, n, heads, hd]).permuted([0, 2, 1, 3])
        var kvInput = x
        if let sr = sequenceReduction, let norm = layerNorm {
            let reduced = sr(x.reshaped([b, h, w, c]))
            kvInput = norm(reduced.reshaped([b, reduced.shape[1] * reduced.shape[2], c]))
        }
        let m = kvInput.shape[1]
        let k = key(kvInput).reshaped([b, m, heads, hd]).permuted([0, 2, 1, 3])
        let v = value(kvInput).reshaped([b, m, heads, hd]).permuted([0, 2, 1, 3])
        return scaledDotProductAttention(
            q: q, k: k, v: v, scale: scale, dropout: dropout, recorder: recorder,
            queryPositions: AttentionMap.gridPositions(height: h, width: w, prefixTokens: n - h * w),
            keyPositions: reductionRatio > 1 ? PVTPositions.reducedCells(height: h, width: w, ratio: reductionRatio)
                                             : AttentionMap.gridPositions(height: h, width: w, prefixTokens: n - h * w)).output
    }
}

/// PvtSelfOutput: dense → dropout.
public final class PvtSelfOutput: Module {
    @Child(key: "dense") public var dense: Linear
    @Child(key: "dropout") var dropout: Dropout
    init(_ dim: Int, dropout p: Float) { _dense.wrappedValue = Linear(dim, dim); _dropout.wrappedValue = Dropout(p) }
    public override func callAsFunction(_ x: Tensor) -> Tensor { dropout(dense(x)) }
}

/// PvtAttention: `self` (the efficient self-attention) then `output`.
public final class PvtAttention: Module {
    @Child(key: "self") public var selfAttention: PvtEfficientSelfAttention
    @Child(key: "output") public var output: PvtSelfOutput
    init(_ dim: Int, heads: Int, reductionRatio: Int, qkvBias: Bool, eps: Float, dropout: Float, attentionDropout: Float) {
        _selfAttention.wrappedValue = PvtEfficientSelfAttention(dim, heads: heads, reductionRatio: reductionRatio, qkvBias: qkvBias,
                                                  eps: eps, attentionDropout: attentionDropout)
        _output.wrappedValue = PvtSelfOutput(dim, dropout: dropout)
    }
    func forward(_ x: Tensor, h: Int, w: Int) -> Tensor { output(selfAttention.forward(x, h: h, w: w)) }
}

/// PvtFFN: dense1 → activation → dropout → dense2 → dropout.
public final class PvtFFN: Module {
    @Child(key: "dense1") public var dense1: Linear
    @Child(key: "dense2") public var dense2: Linear
    let act: Activation
    @Child(key: "dropout") var dropout: Dropout
    init(_ dim: Int, hidden: Int, act: Activation, dropout p: Float) {
        _dense1.wrappedValue = Linear(dim, hidden)
        _dense2.wrappedValue = Linear(hidden, dim)
        self.act = act
        _dropout.wrappedValue = Dropout(p)
    }
    public override func callAsFunction(_ x: Tensor) -> Tensor { dropout(dense2(dropout(act(dense1(x))))) }
}

/// PvtLayer: x + drop_path(attention(layer_norm_1 x)), then x + drop_path(mlp(layer_norm_2 x)).
public final class PvtLayer: Module {
    @Child(key: "layer_norm_1") public var layerNorm1: LayerNorm
    @Child(key: "attention") public var attention: PvtAttention
    @Child(key: "drop_path") var dropPath: DropPath
    @Child(key: "layer_norm_2") public var layerNorm2: LayerNorm
    @Child(key: "mlp") public var mlp: PvtFFN

    init(_ dim: Int, heads: Int, reductionRatio: Int, mlpRatio: Double, dropPath: Float, c: PvtConfig.Resolved) {
        _layerNorm1.wrappedValue = LayerNorm(dim, eps: c.eps)
        _attention.wrappedValue = PvtAttention(dim, heads: heads, reductionRatio: reductionRatio, qkvBias: c.qkvBias, eps: c.eps,
                                 dropout: c.dropout, attentionDropout: c.attentionDropout)
        _dropPath.wrappedValue = DropPath(dropPath)
        _layerNorm2.wrappedValue = LayerNorm(dim, eps: c.eps)
        _mlp.wrappedValue = PvtFFN(dim, hidden: Int(Double(dim) * mlpRatio), act: c.act, dropout: c.dropout)
    }

    func forward(_ x: Tensor, h: Int, w: Int) -> Tensor {
        let y = x + dropPath(attention.forward(layerNorm1(x), h: h, w: w))
        return y + dropPath(mlp(layerNorm2(y)))
    }
}

/// PvtEncoder: per stage a patch embedding and its layers; the final LayerNorm.
public final class PvtEncoder: Module {
    @Child(key: "patch_embeddings") public var patchEmbeddings: [PvtPatchEmbeddings]
    @Child(key: "block") public var block: [[PvtLayer]]
    @Child(key: "layer_norm") public var layerNorm: LayerNorm

    init(_ c: PvtConfig.Resolved) {
        let stages = c.numEncoderBlocks
        _patchEmbeddings.wrappedValue = (0..<stages).map { i in
            // The reference's grid: image_size // patch_sizes[0], then (image_size // 2^(i+1)) // patch_sizes[i].
            let side = (i == 0 ? c.imageSize : c.imageSize / (1 << (i + 1))) / c.patchSizes[i]
            return PvtPatchEmbeddings(gridSide: side, patchSize: c.patchSizes[i], stride: c.strides[i],
                                      inChannels: i == 0 ? c.numChannels : c.hiddenSizes[i - 1], hiddenSize: c.hiddenSizes[i],
                                      clsToken: i == stages - 1, eps: c.eps, dropout: c.dropout)
        }
        // torch.linspace(0, drop_path_rate, sum(config.depths)) over every listed depth, as the reference.
        let total = c.depths.reduce(0, +)
        let rates = dropPathRates(Float(c.dropPathRate), count: total)
        var cur = 0
        var block: [[PvtLayer]] = []
        for i in 0..<stages {
            block.append((0..<c.depths[i]).map { j in
                PvtLayer(c.hiddenSizes[i], heads: c.numAttentionHeads[i], reductionRatio: c.sequenceReductionRatios[i],
                         mlpRatio: c.mlpRatios[i], dropPath: rates[cur + j], c: c)
            })
            cur += c.depths[i]
        }
        _block.wrappedValue = block
        _layerNorm.wrappedValue = LayerNorm(c.hiddenSizes[stages - 1], eps: c.eps)
    }

    /// Runs stage `i` on x ([B, H, W, C] map): the tokens after its layers, the grid, and each layer's output if asked.
    func stage(_ i: Int, _ x: Tensor, keepEach: Bool = false) -> (tokens: Tensor, h: Int, w: Int, each: [Tensor]) {
        var (t, h, w) = patchEmbeddings[i].forward(x)
        var each: [Tensor] = []
        for layer in block[i] {
            t = layer.forward(t, h: h, w: w)
            if keepEach { each.append(t) }
        }
        return (t, h, w, each)
    }

    /// x [B, H, W, C] → tokens [B, 1 + h·w, C] of the last stage after the final LayerNorm.
    public override func callAsFunction(_ x: Tensor) -> Tensor {
        var x = x
        for i in patchEmbeddings.indices {
            let (t, h, w, _) = stage(i, x)
            x = i == patchEmbeddings.count - 1 ? t : t.reshaped([t.shape[0], h, w, t.shape[2]])
        }
        return layerNorm(x)
    }
}

/// PvtModel: holds the encoder (key `pvt.encoder`).
public final class PvtModel: Module {
    @Child(key: "encoder") public var encoder: PvtEncoder
    init(_ c: PvtConfig.Resolved) { _encoder.wrappedValue = PvtEncoder(c) }
    public override func callAsFunction(_ x: Tensor) -> Tensor { encoder(x) }
}

/// transformers' PvtConfig, under its argument names (every field optional; the
/// defaults are PvtConfig's).
public struct PvtConfig: Codable, Sendable {
    public var numLabels: Int?
    public var imageSize: Int?
    public var numChannels: Int?
    public var numEncoderBlocks: Int?
    public var depths: [Int]?
    public var sequenceReductionRatios: [Int]?
    public var hiddenSizes: [Int]?
    public var patchSizes: [Int]?
    public var strides: [Int]?
    public var numAttentionHeads: [Int]?
    public var mlpRatios: [Double]?
    public var hiddenAct: String?
    public var hiddenDropoutProb: Double?
    public var attentionProbsDropoutProb: Double?
    public var initializerRange: Double = 0.02
    public var dropPathRate: Double?
    public var layerNormEps: Double?
    public var qkvBias: Bool?

    public init(imageSize: Int = 224, depths: [Int] = [2, 2, 2, 2], hiddenSizes: [Int] = [64, 128, 320, 512],
                numAttentionHeads: [Int] = [1, 2, 5, 8], sequenceReductionRatios: [Int] = [8, 4, 2, 1],
                mlpRatios: [Double] = [8, 8, 4, 4], patchSizes: [Int] = [4, 2, 2, 2], strides: [Int]? = nil,
                numLabels: Int = 1000) {
        self.imageSize = imageSize; self.depths = depths; self.hiddenSizes = hiddenSizes
        self.numAttentionHeads = numAttentionHeads; self.sequenceReductionRatios = sequenceReductionRatios
        self.mlpRatios = mlpRatios; self.patchSizes = patchSizes; self.strides = strides ?? patchSizes
        self.numEncoderBlocks = depths.count; self.numLabels = numLabels
    }

    /// Every value filled in and checked.
    struct Resolved {
        var numLabels, imageSize, numChannels, numEncoderBlocks: Int
        var depths, sequenceReductionRatios, hiddenSizes, patchSizes, strides, numAttentionHeads: [Int]
        var mlpRatios: [Double]
        var act: Activation
        var dropout, attentionDropout: Float
        var dropPathRate: Double
        var eps: Float
        var qkvBias: Bool
    }

    func resolved() throws -> Resolved {
        let stages = numEncoderBlocks ?? 4
        var r = Resolved(numLabels: numLabels ?? 1000, imageSize: imageSize ?? 224, numChannels: numChannels ?? 3,
                         numEncoderBlocks: stages, depths: depths ?? [2, 2, 2, 2],
                         sequenceReductionRatios: sequenceReductionRatios ?? [8, 4, 2, 1],
                         hiddenSizes: hiddenSizes ?? [64, 128, 320, 512], patchSizes: patchSizes ?? [4, 2, 2, 2],
                         strides: strides ?? [4, 2, 2, 2], numAttentionHeads: numAttentionHeads ?? [1, 2, 5, 8],
                         mlpRatios: mlpRatios ?? [8, 8, 4, 4], act: try pvtActivation(hiddenAct ?? "gelu"),
                         dropout: Float(hiddenDropoutProb ?? 0), attentionDropout: Float(attentionProbsDropoutProb ?? 0),
                         dropPathRate: dropPathRate ?? 0, eps: Float(layerNormEps ?? 1e-6), qkvBias: qkvBias ?? true)
        guard stages > 0 else { throw ModelError("pvt: num_encoder_blocks must be positive, got \(stages)") }
        let lists: [(String, Int)] = [("depths", r.depths.count), ("sequence_reduction_ratios", r.sequenceReductionRatios.count),
                                      ("hidden_sizes", r.hiddenSizes.count), ("patch_sizes", r.patchSizes.count),
                                      ("strides", r.strides.count), ("num_attention_heads", r.numAttentionHeads.count),
                                      ("mlp_ratios", r.mlpRatios.count)]
        for (name, count) in lists where count < stages {
            throw ModelError("pvt: \(name) has \(count) entries for num_encoder_blocks \(stages)")
        }
        for i in 0..<stages {
            guard r.hiddenSizes[i] > 0, r.numAttentionHeads[i] > 0, r.hiddenSizes[i] % r.numAttentionHeads[i] == 0 else {
                throw ModelError("pvt: hidden size \(r.hiddenSizes[i]) of stage \(i) is not a multiple of its \(r.numAttentionHeads[i]) attention heads")
            }
            guard r.patchSizes[i] > 0, r.strides[i] > 0, r.sequenceReductionRatios[i] > 0, r.depths[i] >= 0 else {
                throw ModelError("pvt: stage \(i) needs positive patch size, stride and sequence reduction ratio")
            }
            let side = (i == 0 ? r.imageSize : r.imageSize / (1 << (i + 1))) / r.patchSizes[i]
            guard side > 0 else {
                throw ModelError("pvt: image_size \(r.imageSize) leaves no position embedding grid for stage \(i) (patch size \(r.patchSizes[i]))")
            }
        }
        // The final LayerNorm and the classifier are sized by hidden_sizes[-1], the stages by their prefix.
        guard r.hiddenSizes.last == r.hiddenSizes[stages - 1] else {
            throw ModelError("pvt: hidden_sizes[-1] \(r.hiddenSizes.last!) (the final LayerNorm) differs from the last stage's \(r.hiddenSizes[stages - 1]) for num_encoder_blocks \(stages)")
        }
        guard r.sequenceReductionRatios[stages - 1] == 1 else {
            throw ModelError("pvt: the last stage carries the class token, so its sequence_reduction_ratio must be 1 (got \(r.sequenceReductionRatios[stages - 1]))")
        }
        return r
    }

    /// Absent (or null) arguments keep the reference's defaults above.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        numLabels = try c.decodeIfPresent(Int.self, forKey: .numLabels)
        imageSize = try c.decodeIfPresent(Int.self, forKey: .imageSize)
        numChannels = try c.decodeIfPresent(Int.self, forKey: .numChannels)
        numEncoderBlocks = try c.decodeIfPresent(Int.self, forKey: .numEncoderBlocks)
        depths = try c.decodeIfPresent([Int].self, forKey: .depths)
        sequenceReductionRatios = try c.decodeIfPresent([Int].self, forKey: .sequenceReductionRatios)
        hiddenSizes = try c.decodeIfPresent([Int].self, forKey: .hiddenSizes)
        patchSizes = try c.decodeIfPresent([Int].self, forKey: .patchSizes)
        strides = try c.decodeIfPresent([Int].self, forKey: .strides)
        numAttentionHeads = try c.decodeIfPresent([Int].self, forKey: .numAttentionHeads)
        mlpRatios = try c.decodeIfPresent([Double].self, forKey: .mlpRatios)
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct)
        hiddenDropoutProb = try c.decodeIfPresent(Double.self, forKey: .hiddenDropoutProb)
        attentionProbsDropoutProb = try c.decodeIfPresent(Double.self, forKey: .attentionProbsDropoutProb)
        initializerRange = try c.value(.initializerRange, initializerRange)
        dropPathRate = try c.decodeIfPresent(Double.self, forKey: .dropPathRate)
        layerNormEps = try c.decodeIfPresent(Double.self, forKey: .layerNormEps)
        qkvBias = try c.decodeIfPresent(Bool.self, forKey: .qkvBias)
    }
}

extension PvtConfig: ModelConfig {
    public func validate() throws {
        let check = ConfigCheck(family: "pvt")
        if let n = numEncoderBlocks, !(1...8).contains(n) { throw check.error("num_encoder_blocks", n, "must be in 1...8") }
        if let v = imageSize { try check.size(v, "image_size") }
        if let v = numChannels { try check.width(v, "num_channels") }
        if let v = numLabels { try check.classes(v, "num_labels") }
        for (list, field) in [(hiddenSizes, "hidden_sizes"), (numAttentionHeads, "num_attention_heads")] {
            for (i, v) in (list ?? []).enumerated() { try check.width(v, "\(field)[\(i)]") }
        }
        for (list, field) in [(patchSizes, "patch_sizes"), (strides, "strides"), (sequenceReductionRatios, "sequence_reduction_ratios")] {
            for (i, v) in (list ?? []).enumerated() { try check.size(v, "\(field)[\(i)]") }
        }
        if let d = depths { try check.depths(d, "depths") }
        for (i, r) in (mlpRatios ?? []).enumerated() { try check.positive(r, "mlp_ratios[\(i)]") }
        for (v, field) in [(hiddenDropoutProb, "hidden_dropout_prob"), (attentionProbsDropoutProb, "attention_probs_dropout_prob"),
                           (dropPathRate, "drop_path_rate")] {
            if let v { try check.rate(v, field) }
        }
        if let v = layerNormEps { try check.positive(v, "layer_norm_eps", maximum: 1) }
        try check.finite(initializerRange, "initializer_range")
        let r = try resolved()
        var estimate = ConfigCheck.table(r.hiddenSizes[r.numEncoderBlocks - 1], r.numLabels)
        var side = r.imageSize
        for i in 0..<r.numEncoderBlocks {
            let w = r.hiddenSizes[i]
            side /= r.strides[i]
            estimate += ConfigCheck.transformer(width: w, depth: r.depths[i], mlpRatio: r.mlpRatios[i])
                + ConfigCheck.table(side * side + 1, w)
                + Double(r.depths[i]) * Double(r.sequenceReductionRatios[i] * r.sequenceReductionRatios[i]) * Double(w * w)
        }
        try check.parameters(estimate, "hidden_sizes, depths, mlp_ratios, sequence_reduction_ratios, image_size, num_labels")
    }
    public var expectedInput: ExpectedInput { ExpectedInput(channels: numChannels ?? 3, side: imageSize ?? 224) }
    public var classCount: Int { numLabels ?? 1000 }
}

/// PvtForImageClassification: `pvt` (the model), then `classifier` on token 0 after
/// the encoder's final LayerNorm.
public final class PVT: Module, ImageClassifier, CheckpointFiltering {
    @Child(key: "pvt") public var pvt: PvtModel
    @Child(key: "classifier") var classifier: Module
    public let hiddenSize: Int

    public init(_ config: PvtConfig) throws {
        try config.validate()
        let c = try config.resolved()
        _pvt.wrappedValue = PvtModel(c)
        hiddenSize = c.hiddenSizes[c.numEncoderBlocks - 1]
        _classifier.wrappedValue = PVT.makeClassifier(hiddenSize, c.numLabels)
        super.init()
        for (_, m) in namedModules() {
            guard let l = m as? Linear else { continue }
            l.weight = Init.truncatedNormal(l.weight.shape, std: Float(config.initializerRange))
            if l.bias != nil { l.bias = Tensor.zeros([l.weight.shape[0]]) }
        }
        for (_, m) in namedModules() {
            if let a = m as? PvtEfficientSelfAttention, let sr = a.sequenceReduction {
                sr.weight = Init.truncatedNormal(sr.weight.shape, std: Float(config.initializerRange))
                sr.bias = Tensor.zeros([sr.outChannels])
            }
        }
    }

    static func makeClassifier(_ dim: Int, _ classes: Int) -> Module {
        guard classes > 0 else { return Identity() }
        let l = Linear(dim, classes)
        l.weight = Init.truncatedNormal(l.weight.shape, std: 0.02)
        l.bias = Tensor.zeros([classes])
        return l
    }

    public var encoder: PvtEncoder { pvt.encoder }

    /// Tokens [B, 1 + h·w, C] of the last stage after the final LayerNorm.
    public func forwardFeatures(_ x: Tensor) -> Tensor { pvt(x) }

    public func forwardHead(_ features: Tensor, preLogits: Bool) -> Tensor {
        let token = features.selecting(axis: 1, index: 0)
        return preLogits ? token : classifier(token)
    }

    /// Every layer's output, "pvt.encoder.block.i.j": maps [B, h, w, C] in the stages
    /// without a class token, tokens [B, 1 + h·w, C] in the last; then "pvt.encoder.layer_norm".
    public func forwardIntermediates(_ x: Tensor) -> [(name: String, value: Tensor)] {
        var out: [(String, Tensor)] = []
        var x = x
        let last = encoder.patchEmbeddings.count - 1
        for i in 0...last {
            let (t, h, w, each) = encoder.stage(i, x, keepEach: true)
            for (j, e) in each.enumerated() {
                out.append(("pvt.encoder.block.\(i).\(j)", i == last ? e : e.reshaped([e.shape[0], h, w, e.shape[2]])))
            }
            x = i == last ? t : t.reshaped([t.shape[0], h, w, t.shape[2]])
        }
        out.append(("pvt.encoder.layer_norm", encoder.layerNorm(x)))
        return out
    }

    public func resetClassifier(numClasses: Int) { classifier = PVT.makeClassifier(hiddenSize, numClasses) }

    public override func callAsFunction(_ x: Tensor) -> Tensor { logits(x) }

    /// Resamples each stage's position embedding (bilinear, align_corners false, as the
    /// PVT authors' `_get_pos_embed`) from a checkpoint built for another input size.
    public func checkpointFilter(_ stateDict: [String: Tensor]) -> [String: Tensor] {
        var dict = stateDict
        for (i, embed) in encoder.patchEmbeddings.enumerated() {
            let key = "pvt.encoder.patch_embeddings.\(i).position_embeddings"
            guard let pe = dict[key], pe.rank == 3, pe.shape != embed.positionEmbeddings.shape,
                  pe.shape[0] == 1, pe.shape[2] == embed.hiddenSize else { continue }
            let prefix = embed.clsToken == nil ? 0 : 1
            let n = pe.shape[1] - prefix
            let side = Int(Double(max(n, 0)).squareRoot().rounded())
            guard n > 0, side * side == n else { continue }  // not a square grid: the strict loader reports it
            let gridPart = pe.sliced(axis: 1, start: prefix).reshaped([1, side, side, embed.hiddenSize])
            let resized = resize(gridPart, size: embed.grid, mode: .bilinear, alignCorners: false)
                .reshaped([1, embed.grid.0 * embed.grid.1, embed.hiddenSize])
            dict[key] = prefix > 0 ? concat([pe.sliced(axis: 1, start: 0, end: prefix), resized], axis: 1) : resized
        }
        return dict
    }
}

extension PVT {
    @Sendable static func build(_ config: JSONValue) throws -> ImageClassifier { try PVT(config.decode(PvtConfig.self)) }

    /// A hub checkpoint's `config.json`: the `PvtConfig` fields that differ from its defaults.
    static func variant(_ name: String, depths: JSONValue) -> ModelVariant {
        ModelVariant(name, family: "pvt", inputSize: 224, arguments: ["image_size": 224, "depths": depths], classesKey: "num_labels",
                     build: build)
    }

    /// Zetatech/pvt-{tiny,small,medium,large}-224 (the paper's PVT-Tiny/Small/Medium/Large).
    public static let family = ModelFamily(
        name: "pvt", reference: "transformers 5.24.0 transformers.models.pvt.modeling_pvt.PvtForImageClassification",
        variants: [
            variant("pvt_tiny", depths: [2, 2, 2, 2]),
            variant("pvt_small", depths: [3, 4, 6, 3]),
            variant("pvt_medium", depths: [3, 4, 18, 3]),
            variant("pvt_large", depths: [3, 8, 27, 3]),
            // For 32x32: three stages on 8x8, 4x4 and 2x2 token grids (+ class token in the last).
            ModelVariant("pvt_nano", family: "pvt", inputSize: 32) { classes in
                try PVT(PvtConfig(imageSize: 32, depths: [2, 2, 2], hiddenSizes: [48, 96, 192], numAttentionHeads: [1, 2, 4],
                                  sequenceReductionRatios: [2, 2, 1], mlpRatios: [4, 4, 4], patchSizes: [4, 2, 2],
                                  numLabels: classes))
            },
        ],
        build: build)
}
