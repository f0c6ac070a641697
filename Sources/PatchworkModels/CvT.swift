import Foundation
import Patchwork
import PatchworkNN

// CvT, "CvT: Introducing Convolutions to Vision Transformers" (Wu et al. 2021), as
// Hugging Face transformers 5.24.0 has it (transformers/models/cvt/modeling_cvt.py,
// CvtForImageClassification). Blocks → model → checkpoint filter → named variants.
//
// Tokens are [B, N, C] in memory and maps channels-last [B, h, w, C], so the
// reference's "b c h w <-> b (h w) c" rearrangements are plain reshapes here.
// What Hugging Face's code does and a re-implementer must keep (NOTES.md):
// - attention scores are scaled by embed_dim^-0.5 (the whole stage width, not the head width);
// - every LayerNorm has eps 1e-5 (config.layer_norm_eps is never read);
// - every layer of stage s gets drop-path rate linspace(0, drop_path_rate[s], depth[s])[s]
//   (the list is indexed with the stage index), so depth[s] must be > s;
// - drop-path is applied to the attention branch and to the whole second residual sum;
// - the class token (shape [1, 1, embed_dim[-1]]) joins the tokens after the stage's
//   embedding and bypasses the depthwise-conv projections.

/// Hugging Face's CvtConvEmbeddings: a strided conv, then LayerNorm over channels.
public final class CvTConvEmbeddings: Module {
    @Child(key: "projection") public var projection: Conv2d
    @Child(key: "normalization") public var normalization: LayerNorm

    init(patchSize: Int, inChannels: Int, dim: Int, stride: Int, padding: Int) {
        _projection.wrappedValue = Conv2d(inChannels, dim, kernelSize: patchSize, stride: stride, padding: padding, bias: true)
        _normalization.wrappedValue = LayerNorm(dim, eps: 1e-5)
    }

    /// [B, H, W, Cin] → [B, h, w, dim].
    public override func callAsFunction(_ x: Tensor) -> Tensor { normalization(projection(x)) }
}

/// CvtEmbeddings: the conv embedding, then dropout (drop_rate).
public final class CvTEmbeddings: Module {
    @Child(key: "convolution_embeddings") public var convolutionEmbeddings: CvTConvEmbeddings
    @Child(key: "dropout") public var dropout: Dropout

    init(patchSize: Int, inChannels: Int, dim: Int, stride: Int, padding: Int, dropRate: Float) {
        _convolutionEmbeddings.wrappedValue = CvTConvEmbeddings(patchSize: patchSize, inChannels: inChannels, dim: dim, stride: stride, padding: padding)
        _dropout.wrappedValue = Dropout(dropRate)
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor { dropout(convolutionEmbeddings(x)) }
}

/// CvtSelfAttentionConvProjection: depthwise conv (no bias) → BatchNorm2d.
public final class CvTConvProjection: Module {
    @Child(key: "convolution") public var convolution: Conv2d
    @Child(key: "normalization") public var normalization: BatchNorm

    init(dim: Int, kernelSize: Int, padding: Int, stride: Int) {
        _convolution.wrappedValue = Conv2d(dim, dim, kernelSize: kernelSize, stride: stride, padding: padding, groups: dim, bias: false)
        _normalization.wrappedValue = BatchNorm(dim, eps: 1e-5)
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor { normalization(convolution(x)) }
}

/// CvtSelfAttentionProjection ("dw_bn"): conv projection of a map [B, h, w, C] → tokens [B, h'·w', C]
/// (the reference's parameterless `linear_projection` is the flattening).
public final class CvTProjection: Module {
    @Child(key: "convolution_projection") public var convolutionProjection: CvTConvProjection
    public let kernelSize: Int, padding: Int, stride: Int

    init(dim: Int, kernelSize: Int, padding: Int, stride: Int) {
        _convolutionProjection.wrappedValue = CvTConvProjection(dim: dim, kernelSize: kernelSize, padding: padding, stride: stride)
        self.kernelSize = kernelSize; self.padding = padding; self.stride = stride
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        let y = convolutionProjection(x)
        return y.reshaped([y.shape[0], y.shape[1] * y.shape[2], y.shape[3]])
    }

    /// The output grid size for an h×w input.
    func outputSize(_ n: Int) -> Int { (n + 2 * padding - kernelSize) / stride + 1 }

    /// Image fractions of output index i along a side of n input tokens: the centre of its
    /// kernel window, i·stride − padding + (k−1)/2, in input-token units.
    func outputPositions(height: Int, width: Int) -> [(Float, Float)] {
        let (ho, wo) = (outputSize(height), outputSize(width))
        let centre = Float(kernelSize - 1) / 2
        var out: [(Float, Float)] = []
        out.reserveCapacity(ho * wo)
        for i in 0..<ho {
            for j in 0..<wo {
                out.append(((Float(i * stride - padding) + centre + 0.5) / Float(height),
                            (Float(j * stride - padding) + centre + 0.5) / Float(width)))
            }
        }
        return out
    }
}

/// CvtSelfAttention: depthwise-conv projections of q (stride_q) and k, v (stride_kv) on the
/// token map, the class token concatenated in front of each unprojected, then Linear
/// projections, multi-head attention with scale embed_dim^-0.5.
public final class CvTSelfAttention: Module, AttentionRecording {
    @Child(key: "convolution_projection_query") public var convolutionProjectionQuery: CvTProjection
    @Child(key: "convolution_projection_key") public var convolutionProjectionKey: CvTProjection
    @Child(key: "convolution_projection_value") public var convolutionProjectionValue: CvTProjection
    @Child(key: "projection_query") public var projectionQuery: Linear
    @Child(key: "projection_key") public var projectionKey: Linear
    @Child(key: "projection_value") public var projectionValue: Linear
    @Child(key: "dropout") public var dropout: Dropout
    public let heads: Int
    public let dim: Int
    public let scale: Float
    public let withClassToken: Bool

    public let recorder = AttentionRecorder()

    /// Where the tokens a projection makes sit in an h×w map (class token: NaN): the
    /// centres of the strided conv windows that made them. Queries and keys of the maps.
    func positions(_ p: CvTProjection, height h: Int, width w: Int) -> Tensor {
        var values = [Float](repeating: .nan, count: withClassToken ? 2 : 0)
        for (y, x) in p.outputPositions(height: h, width: w) { values.append(y); values.append(x) }
        return Tensor(values, shape: [values.count / 2, 2])
    }

    init(heads: Int, dim: Int, kernelSize: Int, paddingQ: Int, paddingKV: Int, strideQ: Int, strideKV: Int,
         qkvBias: Bool, attentionDropRate: Float, withClassToken: Bool) {
        _convolutionProjectionQuery.wrappedValue = CvTProjection(dim: dim, kernelSize: kernelSize, padding: paddingQ, stride: strideQ)
        _convolutionProjectionKey.wrappedValue = CvTProjection(dim: dim, kernelSize: kernelSize, padding: paddingKV, stride: strideKV)
        _convolutionProjectionValue.wrappedValue = CvTProjection(dim: dim, kernelSize: kernelSize, padding: paddingKV, stride: strideKV)
        _projectionQuery.wrappedValue = Linear(dim, dim, bias: qkvBias)
        _projectionKey.wrappedValue = Linear(dim, dim, bias: qkvBias)
        _projectionValue.wrappedValue = Linear(dim, dim, bias: qkvBias)
        _dropout.wrappedValue = Dropout(attentionDropRate)
        self.heads = heads
        self.dim = dim
        scale = 1 / Float(dim).squareRoot()
        self.withClassToken = withClassToken
    }

    /// x [B, (1 +) h·w, C] → context [B, (1 +) h·w, C] (before the output Linear).
    public func forward(_ x: Tensor, height: Int, width: Int) -> Tensor {
        let b = x.shape[0], c = x.shape[2]
        var classToken: Tensor?
        var tokens = x
        if withClassToken {
            let parts = x.split(sizes: [1, x.shape[1] - 1], axis: 1)
            classToken = parts[0]
            tokens = parts[1]
        }
        guard tokens.shape[1] == height * width else {
            fail("CvTSelfAttention", "\(tokens.shape[1]) tokens do not fill a \(height)x\(width) grid")
        }
        let map = tokens.reshaped([b, height, width, c])
        var key = convolutionProjectionKey(map)
        var query = convolutionProjectionQuery(map)
        var value = convolutionProjectionValue(map)
        if let classToken {
            query = concat([classToken, query], axis: 1)
            key = concat([classToken, key], axis: 1)
            value = concat([classToken, value], axis: 1)
        }
        let hd = dim / heads
        func split(_ t: Tensor) -> Tensor { t.reshaped([b, t.shape[1], heads, hd]).permuted([0, 2, 1, 3]) }
        let q = split(projectionQuery(query)), k = split(projectionKey(key)), v = split(projectionValue(value))
        return scaledDotProductAttention(
            q: q, k: k, v: v, scale: scale, dropout: dropout, recorder: recorder,
            queryPositions: positions(convolutionProjectionQuery, height: height, width: width),
            keyPositions: positions(convolutionProjectionKey, height: height, width: width)).output
    }
}

/// CvtSelfOutput: dense → dropout (the residual is added in the layer).
public final class CvTSelfOutput: Module {
    @Child(key: "dense") public var dense: Linear
    @Child(key: "dropout") public var dropout: Dropout
    init(dim: Int, dropRate: Float) { _dense.wrappedValue = Linear(dim, dim); _dropout.wrappedValue = Dropout(dropRate) }
    public override func callAsFunction(_ x: Tensor) -> Tensor { dropout(dense(x)) }
}

/// CvtAttention: self-attention, then its output Linear.
public final class CvTAttention: Module {
    @Child(key: "attention") public var attention: CvTSelfAttention
    @Child(key: "output") public var output: CvTSelfOutput
    init(attention: CvTSelfAttention, dropRate: Float) {
        _attention.wrappedValue = attention
        _output.wrappedValue = CvTSelfOutput(dim: attention.dim, dropRate: dropRate)
    }
    func forward(_ x: Tensor, height: Int, width: Int) -> Tensor { output(attention.forward(x, height: height, width: width)) }
}

/// CvtIntermediate: dense → GELU (erf).
public final class CvTIntermediate: Module {
    @Child(key: "dense") public var dense: Linear
    init(dim: Int, hidden: Int) { _dense.wrappedValue = Linear(dim, hidden) }
    public override func callAsFunction(_ x: Tensor) -> Tensor { dense(x).gelu() }
}

/// CvtOutput: dense → dropout, plus the residual.
public final class CvTOutput: Module {
    @Child(key: "dense") public var dense: Linear
    @Child(key: "dropout") public var dropout: Dropout
    init(dim: Int, hidden: Int, dropRate: Float) { _dense.wrappedValue = Linear(hidden, dim); _dropout.wrappedValue = Dropout(dropRate) }
    func forward(_ x: Tensor, residual: Tensor) -> Tensor { dropout(dense(x)) + residual }
}

/// CvtLayer: h = x + dp(attn(LN x)); out = dp(h + mlp(LN h)) (HF drops the whole second sum).
public final class CvTLayer: Module {
    @Child(key: "attention") public var attention: CvTAttention
    @Child(key: "intermediate") public var intermediate: CvTIntermediate
    @Child(key: "output") public var output: CvTOutput
    @Child(key: "drop_path") public var dropPath: DropPath
    @Child(key: "layernorm_before") public var layernormBefore: LayerNorm
    @Child(key: "layernorm_after") public var layernormAfter: LayerNorm

    init(heads: Int, dim: Int, kernelSize: Int, paddingQ: Int, paddingKV: Int, strideQ: Int, strideKV: Int,
         qkvBias: Bool, attentionDropRate: Float, dropRate: Float, mlpRatio: Double, dropPathRate: Float, withClassToken: Bool) {
        _attention.wrappedValue = CvTAttention(
            attention: CvTSelfAttention(heads: heads, dim: dim, kernelSize: kernelSize, paddingQ: paddingQ, paddingKV: paddingKV,
                                        strideQ: strideQ, strideKV: strideKV, qkvBias: qkvBias,
                                        attentionDropRate: attentionDropRate, withClassToken: withClassToken),
            dropRate: dropRate)
        let hidden = Int(Double(dim) * mlpRatio)
        _intermediate.wrappedValue = CvTIntermediate(dim: dim, hidden: hidden)
        _output.wrappedValue = CvTOutput(dim: dim, hidden: hidden, dropRate: dropRate)
        _dropPath.wrappedValue = DropPath(dropPathRate)
        _layernormBefore.wrappedValue = LayerNorm(dim, eps: 1e-5)
        _layernormAfter.wrappedValue = LayerNorm(dim, eps: 1e-5)
    }

    public func forward(_ x: Tensor, height: Int, width: Int) -> Tensor {
        let h = dropPath(attention.forward(layernormBefore(x), height: height, width: width)) + x
        return dropPath(output.forward(intermediate(layernormAfter(h)), residual: h))
    }
}

/// CvtStage: conv embedding, (class token,) layers. Returns the map [B, h, w, C] and the class token [B, 1, C].
public final class CvTStage: Module {
    @OptionalParameter(key: "cls_token") public var clsToken: Tensor?
    @Child(key: "embedding") public var embedding: CvTEmbeddings
    @Child(key: "layers") public var layers: [CvTLayer]

    init(_ c: CvTConfig, stage s: Int) {
        _clsToken.wrappedValue = c.clsToken[s] ? Init.truncatedNormal([1, 1, c.embedDim.last!], std: Float(c.initializerRange)) : nil
        _embedding.wrappedValue = CvTEmbeddings(patchSize: c.patchSizes[s], inChannels: s == 0 ? c.numChannels : c.embedDim[s - 1],
                                  dim: c.embedDim[s], stride: c.patchStride[s], padding: c.patchPadding[s], dropRate: Float(c.dropRate[s]))
        // torch.linspace(0, rate, depth)[stage]: the stage index, as the reference does.
        let n = c.depth[s]
        let dpr = n > 1 ? Float(c.dropPathRate[s]) * Float(s) / Float(n - 1) : 0
        _layers.wrappedValue = (0..<n).map { _ in
            CvTLayer(heads: c.numHeads[s], dim: c.embedDim[s], kernelSize: c.kernelQkv[s], paddingQ: c.paddingQ[s],
                     paddingKV: c.paddingKv[s], strideQ: c.strideQ[s], strideKV: c.strideKv[s], qkvBias: c.qkvBias[s],
                     attentionDropRate: Float(c.attentionDropRate[s]), dropRate: Float(c.dropRate[s]),
                     mlpRatio: c.mlpRatio[s], dropPathRate: dpr, withClassToken: c.clsToken[s])
        }
    }

    /// Embedding map [B, h, w, C] → tokens [B, (1 +) h·w, C] with the class token in front.
    func tokens(fromEmbedding e: Tensor) -> Tensor {
        let b = e.shape[0], c = e.shape[3]
        let t = e.reshaped([b, e.shape[1] * e.shape[2], c])
        guard let token = clsToken else { return t }
        return concat([token.expanded(to: [b, 1, c]), t], axis: 1)
    }

    /// Tokens → (map [B, h, w, C], class token [B, 1, C] or nil).
    func split(_ t: Tensor, height: Int, width: Int) -> (map: Tensor, classToken: Tensor?) {
        let b = t.shape[0], c = t.shape[2]
        guard clsToken != nil else { return (t.reshaped([b, height, width, c]), nil) }
        let parts = t.split(sizes: [1, t.shape[1] - 1], axis: 1)
        return (parts[1].reshaped([b, height, width, c]), parts[0])
    }

    /// The last layer's tokens [B, (1 +) h·w, C] and the grid.
    func forwardTokens(_ x: Tensor) -> (tokens: Tensor, height: Int, width: Int) {
        let e = embedding(x)
        let (h, w) = (e.shape[1], e.shape[2])
        return (layers.reduce(tokens(fromEmbedding: e)) { $1.forward($0, height: h, width: w) }, h, w)
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        let (t, h, w) = forwardTokens(x)
        return split(t, height: h, width: w).map
    }
}

/// CvtEncoder: the stages (key `stages`).
public final class CvTEncoder: Module {
    @Child(key: "stages") public var stages: [CvTStage]
    init(_ c: CvTConfig) { _stages.wrappedValue = c.depth.indices.map { CvTStage(c, stage: $0) } }
}

/// CvtModel (key `cvt`): the encoder.
public final class CvTBackbone: Module {
    @Child(key: "encoder") public var encoder: CvTEncoder
    init(_ c: CvTConfig) { _encoder.wrappedValue = CvTEncoder(c) }
}

/// Hugging Face's CvtConfig, under its argument names (every list has one entry per stage).
/// Defaults are CvtConfig's (microsoft/cvt-13; num_labels 2 as PreTrainedConfig).
public struct CvTConfig: Codable, Sendable {
    public var numLabels = 2
    public var numChannels = 3
    public var patchSizes = [7, 3, 3]
    public var patchStride = [4, 2, 2]
    public var patchPadding = [2, 1, 1]
    public var embedDim = [64, 192, 384]
    public var numHeads = [1, 3, 6]
    public var depth = [1, 2, 10]
    public var mlpRatio: [Double] = [4, 4, 4]
    public var attentionDropRate: [Double] = [0, 0, 0]
    public var dropRate: [Double] = [0, 0, 0]
    public var dropPathRate: [Double] = [0, 0, 0.1]
    public var qkvBias = [true, true, true]
    public var clsToken = [false, false, true]
    public var qkvProjectionMethod = ["dw_bn", "dw_bn", "dw_bn"]
    public var kernelQkv = [3, 3, 3]
    public var paddingKv = [1, 1, 1]
    public var strideKv = [2, 2, 2]
    public var paddingQ = [1, 1, 1]
    public var strideQ = [1, 1, 1]
    public var initializerRange = 0.02
    /// Read by nothing in the reference (every LayerNorm has eps 1e-5); kept for round trips.
    public var layerNormEps = 1e-12

    public init(numLabels: Int = 2, embedDim: [Int] = [64, 192, 384], numHeads: [Int] = [1, 3, 6], depth: [Int] = [1, 2, 10]) {
        self.numLabels = numLabels; self.embedDim = embedDim; self.numHeads = numHeads; self.depth = depth
    }

    enum CodingKeys: String, CodingKey {
        case numLabels, numChannels, patchSizes, patchStride, patchPadding, embedDim, numHeads, depth, mlpRatio,
             attentionDropRate, dropRate, dropPathRate, qkvBias, clsToken, qkvProjectionMethod, kernelQkv,
             paddingKv, strideKv, paddingQ, strideQ, initializerRange, layerNormEps
    }

    /// Missing keys keep CvtConfig's defaults; unknown keys (id2label, ...) are ignored.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func read<T: Decodable>(_ key: CodingKeys, _ value: inout T) throws {
            if let v = try c.decodeIfPresent(T.self, forKey: key) { value = v }
        }
        try read(.numLabels, &numLabels); try read(.numChannels, &numChannels)
        try read(.patchSizes, &patchSizes); try read(.patchStride, &patchStride); try read(.patchPadding, &patchPadding)
        try read(.embedDim, &embedDim); try read(.numHeads, &numHeads); try read(.depth, &depth); try read(.mlpRatio, &mlpRatio)
        try read(.attentionDropRate, &attentionDropRate); try read(.dropRate, &dropRate); try read(.dropPathRate, &dropPathRate)
        try read(.qkvBias, &qkvBias); try read(.clsToken, &clsToken); try read(.qkvProjectionMethod, &qkvProjectionMethod)
        try read(.kernelQkv, &kernelQkv); try read(.paddingKv, &paddingKv); try read(.strideKv, &strideKv)
        try read(.paddingQ, &paddingQ); try read(.strideQ, &strideQ)
        try read(.initializerRange, &initializerRange); try read(.layerNormEps, &layerNormEps)
    }

    /// Throws for what the reference cannot build or run.
    public func validate() throws {
        let check = ConfigCheck(family: "cvt")
        let n = depth.count
        guard (1...8).contains(n) else { throw check.error("depth", depth, "must have 1 to 8 stages") }
        let lists: [(String, Int)] = [
            ("patch_sizes", patchSizes.count), ("patch_stride", patchStride.count), ("patch_padding", patchPadding.count),
            ("embed_dim", embedDim.count), ("num_heads", numHeads.count), ("mlp_ratio", mlpRatio.count),
            ("attention_drop_rate", attentionDropRate.count), ("drop_rate", dropRate.count), ("drop_path_rate", dropPathRate.count),
            ("qkv_bias", qkvBias.count), ("cls_token", clsToken.count), ("qkv_projection_method", qkvProjectionMethod.count),
            ("kernel_qkv", kernelQkv.count), ("padding_kv", paddingKv.count), ("stride_kv", strideKv.count),
            ("padding_q", paddingQ.count), ("stride_q", strideQ.count)]
        for (name, count) in lists where count < n {
            throw ModelError("cvt: \(name) has \(count) entries for \(n) stages (depth \(depth))")
        }
        try check.width(numChannels, "num_channels")
        try check.classes(numLabels, "num_labels")
        try check.depths(depth, "depth")
        try check.finite(initializerRange, "initializer_range")
        try check.positive(layerNormEps, "layer_norm_eps", maximum: 1)
        var estimate = ConfigCheck.table(embedDim[n - 1], numLabels)
        for s in 0..<n {
            try check.width(embedDim[s], "embed_dim[\(s)]")
            try check.width(numHeads[s], "num_heads[\(s)]")
            try check.size(patchSizes[s], "patch_sizes[\(s)]")
            try check.size(patchStride[s], "patch_stride[\(s)]")
            try check.nonNegative(patchPadding[s], "patch_padding[\(s)]")
            try check.size(kernelQkv[s], "kernel_qkv[\(s)]")
            try check.size(strideKv[s], "stride_kv[\(s)]")
            try check.nonNegative(paddingKv[s], "padding_kv[\(s)]")
            try check.nonNegative(paddingQ[s], "padding_q[\(s)]")
            try check.positive(mlpRatio[s], "mlp_ratio[\(s)]")
            try check.rate(attentionDropRate[s], "attention_drop_rate[\(s)]")
            try check.rate(dropRate[s], "drop_rate[\(s)]")
            try check.rate(dropPathRate[s], "drop_path_rate[\(s)]")
            estimate += ConfigCheck.transformer(width: embedDim[s], depth: depth[s], mlpRatio: mlpRatio[s])
                + ConfigCheck.table(patchSizes[s] * patchSizes[s] * (s == 0 ? numChannels : embedDim[s - 1]), embedDim[s])
        }
        try check.parameters(estimate, "embed_dim, depth, mlp_ratio, patch_sizes, num_labels")
        for s in 0..<n {
            guard depth[s] > s else {
                throw ModelError("cvt: depth[\(s)] = \(depth[s]) must be > \(s): Hugging Face's CvtStage indexes its drop-path rates (one per layer) with the stage index")
            }
            guard numHeads[s] > 0, embedDim[s] % numHeads[s] == 0 else {
                throw ModelError("cvt: embed_dim[\(s)] = \(embedDim[s]) is not divisible by num_heads[\(s)] = \(numHeads[s])")
            }
            guard qkvProjectionMethod[s] == "dw_bn" else {
                throw ModelError("cvt: qkv_projection_method \"\(qkvProjectionMethod[s])\" (stage \(s)) is not supported: only \"dw_bn\" runs in the reference (its other methods build no convolution_projection)")
            }
            guard strideQ[s] == 1, 2 * paddingQ[s] == kernelQkv[s] - 1 else {
                throw ModelError("cvt: the query projection of stage \(s) (kernel \(kernelQkv[s]), stride \(strideQ[s]), padding \(paddingQ[s])) must keep the token grid (stride 1, padding (kernel-1)/2) for the residual sum")
            }
            guard !clsToken[s] || embedDim[s] == embedDim.last! else {
                throw ModelError("cvt: cls_token in stage \(s) needs embed_dim[\(s)] = embed_dim[-1] (the reference sizes every class token by the last stage)")
            }
        }
    }
}

extension CvTConfig: ModelConfig {
    public var expectedInput: ExpectedInput { ExpectedInput(channels: numChannels, side: nil) }
    public var classCount: Int { numLabels }
}

/// Hugging Face's CvtForImageClassification: `cvt` (the stages), `layernorm` and `classifier`.
/// Head: LayerNorm on the last stage's class token (or on all its tokens without one), mean
/// over those tokens, Linear.
public final class CvT: Module, ImageClassifier, CheckpointFiltering {
    @Child(key: "cvt") public var cvt: CvTBackbone
    @Child(key: "layernorm") public var layernorm: LayerNorm
    @Child(key: "classifier") public private(set) var classifier: Module
    public let config: CvTConfig

    public init(_ c: CvTConfig) throws {
        try c.validate()
        config = c
        _cvt.wrappedValue = CvTBackbone(c)
        _layernorm.wrappedValue = LayerNorm(c.embedDim.last!, eps: 1e-5)
        _classifier.wrappedValue = c.numLabels > 0 ? Linear(c.embedDim.last!, c.numLabels) as Module : Identity()
        super.init()
        initWeights()
    }

    /// CvtPreTrainedModel._init_weights: trunc_normal(std initializer_range) Linear/Conv weights, zero biases.
    private func initWeights() {
        let std = Float(config.initializerRange)
        for (_, m) in namedModules() {
            if let l = m as? Linear {
                l.weight = Init.truncatedNormal(l.weight.shape, std: std)
                if let b = l.bias { l.bias = Tensor.zeros(b.shape) }
            } else if let conv = m as? Conv2d {
                conv.weight = Init.truncatedNormal(conv.weight.shape, std: std)
                if let b = conv.bias { conv.bias = Tensor.zeros(b.shape) }
            }
        }
    }

    public var stages: [CvTStage] { cvt.encoder.stages }
    var hasClassToken: Bool { config.clsToken[config.depth.count - 1] }

    /// The last stage's tokens [B, 1 + h·w, C] (class token first) when it has a class
    /// token, else its map [B, h, w, C]; before the head's LayerNorm.
    public func forwardFeatures(_ x: Tensor) -> Tensor {
        var h = x
        for stage in stages.dropLast() { h = stage(h) }
        let (t, hh, ww) = stages.last!.forwardTokens(h)
        return hasClassToken ? t : stages.last!.split(t, height: hh, width: ww).map
    }

    public func forwardHead(_ features: Tensor, preLogits: Bool) -> Tensor {
        let b = features.shape[0], c = features.shape[features.rank - 1]
        let tokens = hasClassToken ? features.sliced(axis: 1, start: 0, end: 1)
                                   : features.reshaped([b, features.count / (b * c), c])
        let pooled = layernorm(tokens).mean(alongAxes: [1])
        return preLogits ? pooled : classifier(pooled)
    }

    /// Per stage: its embedding map "cvt.encoder.stages.{s}.embedding" [B, h, w, C], then
    /// every layer's tokens "cvt.encoder.stages.{s}.layers.{l}" [B, (1 +) h·w, C].
    public func forwardIntermediates(_ x: Tensor) -> [(name: String, value: Tensor)] {
        var out: [(String, Tensor)] = []
        var h = x
        for (s, stage) in stages.enumerated() {
            let e = stage.embedding(h)
            let (hh, ww) = (e.shape[1], e.shape[2])
            let prefix = "cvt.encoder.stages.\(s)"
            out.append(("\(prefix).embedding", e))
            var t = stage.tokens(fromEmbedding: e)
            for (l, layer) in stage.layers.enumerated() {
                t = layer.forward(t, height: hh, width: ww)
                out.append(("\(prefix).layers.\(l)", t))
            }
            h = stage.split(t, height: hh, width: ww).map
        }
        return out
    }

    public func resetClassifier(numClasses: Int) {
        let d = config.embedDim.last!
        if numClasses > 0 {
            let l = Linear(d, numClasses)
            l.weight = Init.truncatedNormal(l.weight.shape, std: Float(config.initializerRange))
            l.bias = Tensor.zeros([numClasses])
            classifier = l
        } else {
            classifier = Identity()
        }
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor { logits(x) }

    /// CvtForImageClassification checkpoints load as they are; a bare CvtModel state dict
    /// (keys `encoder.stages...`, without the `cvt.` base-model prefix) gets the prefix.
    public func checkpointFilter(_ stateDict: [String: Tensor]) -> [String: Tensor] {
        guard stateDict.keys.contains(where: { $0.hasPrefix("encoder.stages.") }) else { return stateDict }
        var out: [String: Tensor] = [:]
        for (k, v) in stateDict { out[k.hasPrefix("encoder.") ? "cvt." + k : k] = v }
        return out
    }
}

extension CvT {
    @Sendable static func build(_ config: JSONValue) throws -> ImageClassifier { try CvT(config.decode(CvTConfig.self)) }

    /// A hub checkpoint's `config.json`: the `CvtConfig` fields that differ from its defaults (which are cvt-13's).
    static func variant(_ name: String, inputSize: Int, _ arguments: [String: JSONValue]) -> ModelVariant {
        ModelVariant(name, family: "cvt", inputSize: inputSize, arguments: arguments, classesKey: "num_labels", build: build)
    }

    /// microsoft/cvt-13, cvt-21 (224) and cvt-w24-384 (384) on the Hugging Face hub.
    public static let family = ModelFamily(
        name: "cvt", reference: "transformers 5.24.0 transformers.models.cvt.modeling_cvt.CvtForImageClassification",
        variants: [
            variant("cvt_13", inputSize: 224, ["embed_dim": [64, 192, 384], "num_heads": [1, 3, 6], "depth": [1, 2, 10]]),
            variant("cvt_21", inputSize: 224, ["embed_dim": [64, 192, 384], "num_heads": [1, 3, 6], "depth": [1, 4, 16]]),
            variant("cvt_w24", inputSize: 384, ["embed_dim": [192, 768, 1024], "num_heads": [3, 12, 16], "depth": [2, 2, 20]]),
            // For 32x32: 3x3 stride-2 embeddings (16x16, 8x8, 4x4 tokens), keys/values at half that.
            ModelVariant("cvt_nano", family: "cvt", inputSize: 32) { classes in
                var c = CvTConfig(numLabels: classes, embedDim: [32, 64, 128], numHeads: [1, 2, 4], depth: [1, 2, 3])
                c.patchSizes = [3, 3, 3]; c.patchStride = [2, 2, 2]; c.patchPadding = [1, 1, 1]
                c.dropPathRate = [0, 0, 0]
                return try CvT(c)
            },
        ],
        build: build)
}
