import Foundation
import Patchwork
import PatchworkNN

// CMT: "Convolutional Neural Networks Meet Vision Transformers" (Guo et al. 2022), the
// authors' code: huawei-noah/Efficient-AI-Backbones cmt_pytorch/cmt.py.
// Blocks → model → checkpoint filter → named variants.
//
// Conv stem (three 3x3 convs, each → GELU → BN), then four stages, each a 2x2/s2 patch
// embedding + LayerNorm and blocks of: local perception unit (x + dw3x3 x),
// lightweight multi-head self-attention (keys and values from a map reduced by a
// depthwise conv with kernel = stride = sr, + BN; logits biased by a learnable
// relative_pos table heads × N × N/sr²), inverted-residual FFN. Head: 1x1 conv to
// fc_dim → BN → Swish → global average → dropout → Linear. Tokens are [B, N, C],
// maps channels-last [B, H, W, C]; one is a reshape of the other.

/// An activation as a child module without parameters (the reference's nn.GELU inside
/// nn.Sequential, which takes an index but no keys).
final class CMTActivation: Module {
    let activation: Activation
    init(_ activation: Activation) { self.activation = activation }
    override func callAsFunction(_ x: Tensor) -> Tensor { activation(x) }
}

/// The reference's Mlp (IRFFN): conv1 = (1x1 conv → GELU → BN), then x + dw3x3(x) (`proj`)
/// → GELU → BN (`proj_bn`), then conv2 = (1x1 conv → BN). Dropout after conv1 and at the end.
public final class CMTMlp: Module {
    @Child(key: "conv1") public var conv1: Sequential
    @Child(key: "proj") public var proj: Conv2d
    @Child(key: "proj_bn") public var projBn: BatchNorm
    @Child(key: "conv2") public var conv2: Sequential
    @Child(key: "drop") var drop: Dropout

    init(_ dim: Int, hidden: Int, drop p: Float) {
        _conv1.wrappedValue = Sequential([Conv2d(dim, hidden, kernelSize: 1), CMTActivation(.gelu), BatchNorm(hidden, eps: 1e-5)])
        _proj.wrappedValue = Conv2d(hidden, hidden, kernelSize: 3, padding: 1, groups: hidden)
        _projBn.wrappedValue = BatchNorm(hidden, eps: 1e-5)
        _conv2.wrappedValue = Sequential([Conv2d(hidden, dim, kernelSize: 1), BatchNorm(dim, eps: 1e-5)])
        _drop.wrappedValue = Dropout(p)
    }

    /// Tokens [B, H·W, C] on an H×W grid → tokens [B, H·W, C].
    func forward(_ x: Tensor, height: Int, width: Int) -> Tensor {
        let b = x.shape[0], c = x.shape[2]
        var h = drop(conv1(x.reshaped([b, height, width, c])))
        h = projBn((proj(h) + h).gelu())
        h = conv2(h)
        return drop(h.reshaped([b, height * width, c]))
    }
}

/// Lightweight multi-head self-attention: q from the tokens; k and v from the tokens, or
/// (sr > 1) from the map reduced by `sr` = (depthwise conv k = stride = sr, with bias → BN).
/// logits = q·kᵀ·scale + relative_pos; scale = qk_scale or (dim/heads)^-0.5.
///
/// Recording (`recordsAttention`) keeps the probabilities [B, heads, N, N/sr²] with the
/// queries at the token centres and the keys at the centres of the reduced grid's cells
/// (cell i covers tokens i·sr ..< (i+1)·sr).
public final class CMTAttention: Module, AttentionRecording {
    @Child(key: "q") public var q: Linear
    @Child(key: "k") public var k: Linear
    @Child(key: "v") public var v: Linear
    @Child(key: "attn_drop") var attnDrop: Dropout
    @Child(key: "proj") public var proj: Linear
    @Child(key: "proj_drop") var projDrop: Dropout
    @Child(key: "sr") public var sr: Sequential?
    public let heads: Int
    public let qkDim: Int
    public let srRatio: Int
    public let scale: Float
    public let recorder = AttentionRecorder()

    init(_ dim: Int, heads: Int, qkvBias: Bool, qkScale: Double?, attnDrop: Float, projDrop: Float, qkRatio: Int, srRatio: Int) {
        self.heads = heads
        qkDim = dim / qkRatio
        _q.wrappedValue = Linear(dim, qkDim, bias: qkvBias)
        _k.wrappedValue = Linear(dim, qkDim, bias: qkvBias)
        _v.wrappedValue = Linear(dim, dim, bias: qkvBias)
        _attnDrop.wrappedValue = Dropout(attnDrop)
        _proj.wrappedValue = Linear(dim, dim)
        _projDrop.wrappedValue = Dropout(projDrop)
        self.srRatio = srRatio
        _sr.wrappedValue = srRatio > 1
            ? Sequential([Conv2d(dim, dim, kernelSize: srRatio, stride: srRatio, groups: dim), BatchNorm(dim, eps: 1e-5)])
            : nil
        if let s = qkScale, s != 0 { scale = Float(s) } else { scale = 1 / Float(dim / heads).squareRoot() }
    }

    /// Tokens [B, H·W, C] on an H×W grid, with the stage's relative_pos [heads, N, Nk].
    func forward(_ x: Tensor, height: Int, width: Int, relativePos: Tensor) -> Tensor {
        let b = x.shape[0], n = x.shape[1], c = x.shape[2]
        let qHead = qkDim / heads
        let query = q(x).reshaped([b, n, heads, qHead]).permuted([0, 2, 1, 3])
        var source = x, kh = height, kw = width
        if let sr {
            let reduced = sr(x.reshaped([b, height, width, c]))
            (kh, kw) = (reduced.shape[1], reduced.shape[2])
            source = reduced.reshaped([b, kh * kw, c])
        }
        let nk = kh * kw
        guard relativePos.shape == [heads, n, nk] else {
            fail("CMTAttention", "relative_pos has shape \(relativePos.shape), the attention needs \([heads, n, nk]) (\(height)x\(width) tokens, sr \(srRatio)); the model was built for another input size")
        }
        let key = k(source).reshaped([b, nk, heads, qHead]).permuted([0, 2, 1, 3])
        let value = v(source).reshaped([b, nk, heads, c / heads]).permuted([0, 2, 1, 3])
        let (mixed, _) = scaledDotProductAttention(
            q: query, k: key, v: value, scale: scale, bias: relativePos.reshaped([1, heads, n, nk]), dropout: attnDrop,
            recorder: recorder, queryPositions: AttentionMap.gridPositions(height: height, width: width),
            keyPositions: CMT.reducedCellPositions(height: height, width: width, sr: srRatio))
        return projDrop(proj(mixed))
    }
}

/// A CMT block: x + dw3x3(x) (LPU, `proj`), x + attn(norm1 x), x + mlp(norm2 x).
public final class CMTBlock: Module {
    @Child(key: "norm1") public var norm1: LayerNorm
    @Child(key: "attn") public var attn: CMTAttention
    @Child(key: "drop_path") var dropPath: DropPath
    @Child(key: "norm2") public var norm2: LayerNorm
    @Child(key: "mlp") public var mlp: CMTMlp
    @Child(key: "proj") public var proj: Conv2d

    init(dim: Int, heads: Int, mlpRatio: Double, qkvBias: Bool, qkScale: Double?, drop: Float, attnDrop: Float,
         dropPath: Float, normEps: Float, qkRatio: Int, srRatio: Int) {
        _norm1.wrappedValue = LayerNorm(dim, eps: normEps)
        _attn.wrappedValue = CMTAttention(dim, heads: heads, qkvBias: qkvBias, qkScale: qkScale, attnDrop: attnDrop, projDrop: drop,
                            qkRatio: qkRatio, srRatio: srRatio)
        _dropPath.wrappedValue = DropPath(dropPath)
        _norm2.wrappedValue = LayerNorm(dim, eps: normEps)
        _mlp.wrappedValue = CMTMlp(dim, hidden: Int(Double(dim) * mlpRatio), drop: drop)
        _proj.wrappedValue = Conv2d(dim, dim, kernelSize: 3, padding: 1, groups: dim)
    }

    func forward(_ x: Tensor, height: Int, width: Int, relativePos: Tensor) -> Tensor {
        let b = x.shape[0], n = x.shape[1], c = x.shape[2]
        let map = x.reshaped([b, height, width, c])
        var h = (proj(map) + map).reshaped([b, n, c])
        h = h + dropPath(attn.forward(norm1(h), height: height, width: width, relativePos: relativePos))
        return h + dropPath(mlp.forward(norm2(h), height: height, width: width))
    }
}

/// The reference's PatchEmbed: conv with kernel = stride = 2 (with bias), then LayerNorm (eps 1e-5).
public final class CMTPatchEmbed: Module {
    @Child(key: "proj") public var proj: Conv2d
    @Child(key: "norm") public var norm: LayerNorm

    init(_ inChannels: Int, _ dim: Int) {
        _proj.wrappedValue = Conv2d(inChannels, dim, kernelSize: 2, stride: 2)
        _norm.wrappedValue = LayerNorm(dim, eps: 1e-5)
    }

    /// Map [B, H, W, C] → tokens [B, H/2·W/2, D] and the new grid.
    func tokens(_ x: Tensor) -> (Tensor, Int, Int) {
        let y = proj(x)
        let (h, w) = (y.shape[1], y.shape[2])
        return (norm(y.reshaped([y.shape[0], h * w, y.shape[3]])), h, w)
    }
}

/// The arguments of the reference's `CMT(...)`, under their names (nil: the reference's default).
public struct CMTConfig: Codable, Sendable {
    public var imgSize: Int = 224
    public var inChans: Int?
    public var numClasses: Int = 1000
    public var embedDims: [Int] = [46, 92, 184, 368]
    public var stemChannel: Int = 16
    public var fcDim: Int = 1280
    public var numHeads: [Int] = [1, 2, 4, 8]
    public var mlpRatios: [Double] = [3.6, 3.6, 3.6, 3.6]
    public var qkvBias: Bool = true
    public var qkScale: Double?
    public var representationSize: Int?
    public var dropRate: Double = 0
    public var attnDropRate: Double = 0
    public var dropPathRate: Double = 0
    public var hybridBackbone: JSONValue?
    /// Block norms: nil/null is the reference's partial(nn.LayerNorm, eps=1e-6); a tagged
    /// LayerNorm callable or partial (with its eps) is accepted too.
    public var normLayer: JSONValue?
    public var depths: [Int] = [2, 2, 10, 2]
    public var qkRatio: Int = 1
    public var srRatios: [Int] = [8, 4, 2, 1]
    /// Dropout before the head (the reference's default 0.1; cmt_b 0.3).
    public var dp: Double = 0.1

    public init(imgSize: Int = 224, numClasses: Int = 1000, embedDims: [Int] = [46, 92, 184, 368], stemChannel: Int = 16,
                fcDim: Int = 1280, numHeads: [Int] = [1, 2, 4, 8], mlpRatios: [Double] = [3.6, 3.6, 3.6, 3.6],
                depths: [Int] = [2, 2, 10, 2], srRatios: [Int] = [8, 4, 2, 1], dropPathRate: Double = 0, dp: Double = 0.1) {
        self.imgSize = imgSize; self.numClasses = numClasses; self.embedDims = embedDims; self.stemChannel = stemChannel
        self.fcDim = fcDim; self.numHeads = numHeads; self.mlpRatios = mlpRatios; self.depths = depths
        self.srRatios = srRatios; self.dropPathRate = dropPathRate; self.dp = dp
    }

    /// Absent (or null) arguments keep the reference's defaults above.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        imgSize = try c.value(.imgSize, imgSize)
        inChans = try c.decodeIfPresent(Int.self, forKey: .inChans)
        numClasses = try c.value(.numClasses, numClasses)
        embedDims = try c.value(.embedDims, embedDims)
        stemChannel = try c.value(.stemChannel, stemChannel)
        fcDim = try c.value(.fcDim, fcDim)
        numHeads = try c.value(.numHeads, numHeads)
        mlpRatios = try c.value(.mlpRatios, mlpRatios)
        qkvBias = try c.value(.qkvBias, qkvBias)
        qkScale = try c.decodeIfPresent(Double.self, forKey: .qkScale)
        representationSize = try c.decodeIfPresent(Int.self, forKey: .representationSize)
        dropRate = try c.value(.dropRate, dropRate)
        attnDropRate = try c.value(.attnDropRate, attnDropRate)
        dropPathRate = try c.value(.dropPathRate, dropPathRate)
        hybridBackbone = try c.decodeIfPresent(JSONValue.self, forKey: .hybridBackbone)
        normLayer = try c.decodeIfPresent(JSONValue.self, forKey: .normLayer)
        depths = try c.value(.depths, depths)
        qkRatio = try c.value(.qkRatio, qkRatio)
        srRatios = try c.value(.srRatios, srRatios)
        dp = try c.value(.dp, dp)
    }
}

extension CMTConfig: ModelConfig {
    public func validate() throws {
        let check = ConfigCheck(family: "cmt")
        try check.size(imgSize, "img_size")
        try check.divisible(imgSize, "img_size", by: 32, "32 (the stem and four 2x2 patch embeddings halve it five times)")
        if let c = inChans { try check.width(c, "in_chans") }
        try check.classes(numClasses)
        for (list, field) in [(embedDims, "embed_dims"), (numHeads, "num_heads"), (depths, "depths"), (srRatios, "sr_ratios")] {
            try check.perStage(list, field, stages: 4, as: "the reference's four stages")
        }
        try check.perStage(mlpRatios, "mlp_ratios", stages: 4, as: "the reference's four stages")
        try check.depths(depths, "depths")
        try check.width(stemChannel, "stem_channel")
        try check.width(fcDim, "fc_dim")
        try check.width(qkRatio, "qk_ratio")
        for i in 0..<4 {
            try check.width(embedDims[i], "embed_dims[\(i)]")
            try check.heads(numHeads[i], "num_heads[\(i)]", divide: embedDims[i], "embed_dims[\(i)]")
            try check.positive(mlpRatios[i], "mlp_ratios[\(i)]")
            try check.size(srRatios[i], "sr_ratios[\(i)]")
        }
        if let v = qkScale { try check.finite(v, "qk_scale") }
        try check.rates([(dropRate, "drop_rate"), (attnDropRate, "attn_drop_rate"), (dropPathRate, "drop_path_rate"), (dp, "dp")])
        var estimate = ConfigCheck.table(embedDims[3], fcDim) + ConfigCheck.table(fcDim, numClasses)
        for i in 0..<4 {
            estimate += ConfigCheck.transformer(width: embedDims[i], depth: depths[i], mlpRatio: mlpRatios[i])
                + Double(depths[i]) * Double(srRatios[i] * srRatios[i]) * Double(embedDims[i] * embedDims[i])
            let side = imgSize / (4 << i)
            estimate += Double(numHeads[i]) * Double(side * side) * Double((side / srRatios[i]) * (side / srRatios[i]))
        }
        try check.parameters(estimate, "embed_dims, depths, mlp_ratios, sr_ratios, img_size, fc_dim, num_classes")
    }
    public var expectedInput: ExpectedInput { ExpectedInput(channels: inChans ?? 3, side: imgSize) }
    public var classCount: Int { numClasses }
}

/// The eps of a block-norm argument: nil/null gives `defaultEps`; a tagged
/// torch LayerNorm (callable, or partial with kwargs eps) gives its eps.
func cmtLayerNormEps(_ value: JSONValue?, defaultEps: Float, family: String) throws -> Float {
    guard let value, value != .null else { return defaultEps }
    guard let tagged = try? value.decode(ReferenceCallable.self), tagged.shortName == "LayerNorm",
          ["callable", "partial"].contains(tagged.type) else {
        throw ModelError("\(family): norm_layer \(value) is not supported (only torch.nn.LayerNorm, optionally a partial with eps)")
    }
    if let eps = tagged.kwargs?["eps"] {
        guard let e = eps.double else { throw ModelError("\(family): norm_layer eps \(eps) is not a number") }
        return Float(e)
    }
    return 1e-5
}

/// The authors' CMT. Input side must be img_size (the relative_pos tables are sized for it;
/// `checkpointFilter` resamples a checkpoint's tables made for another size).
public final class CMT: Module, ImageClassifier, CheckpointFiltering {
    @Child(key: "stem_conv1") public var stemConv1: Conv2d
    @Child(key: "stem_norm1") public var stemNorm1: BatchNorm
    @Child(key: "stem_conv2") public var stemConv2: Conv2d
    @Child(key: "stem_norm2") public var stemNorm2: BatchNorm
    @Child(key: "stem_conv3") public var stemConv3: Conv2d
    @Child(key: "stem_norm3") public var stemNorm3: BatchNorm
    @Child(key: "patch_embed_a") public var patchEmbedA: CMTPatchEmbed
    @Child(key: "patch_embed_b") public var patchEmbedB: CMTPatchEmbed
    @Child(key: "patch_embed_c") public var patchEmbedC: CMTPatchEmbed
    @Child(key: "patch_embed_d") public var patchEmbedD: CMTPatchEmbed
    @Parameter(key: "relative_pos_a") public var relativePosA: Tensor
    @Parameter(key: "relative_pos_b") public var relativePosB: Tensor
    @Parameter(key: "relative_pos_c") public var relativePosC: Tensor
    @Parameter(key: "relative_pos_d") public var relativePosD: Tensor
    @Child(key: "blocks_a") public var blocksA: [CMTBlock]
    @Child(key: "blocks_b") public var blocksB: [CMTBlock]
    @Child(key: "blocks_c") public var blocksC: [CMTBlock]
    @Child(key: "blocks_d") public var blocksD: [CMTBlock]
    @Child(key: "_fc") public var fc: Conv2d
    @Child(key: "_bn") public var bn: BatchNorm
    @Child(key: "_drop") var drop: Dropout
    @Child(key: "head") public private(set) var head: Module
    public let imgSize: Int
    public let fcDim: Int
    /// Token grid side of each stage at img_size, and each stage's sr ratio.
    public let sides: [Int]
    public let srRatios: [Int]

    public init(_ c: CMTConfig) throws {
        try c.validate()
        let imgSize = c.imgSize
        let dims = c.embedDims
        let heads = c.numHeads
        let ratios = c.mlpRatios
        let depths = c.depths
        let srs = c.srRatios
        let stem = c.stemChannel, fcDim = c.fcDim, qkRatio = c.qkRatio
        for (name, list) in [("embed_dims", dims), ("num_heads", heads), ("depths", depths), ("sr_ratios", srs)] where list.count != 4 {
            throw ModelError("cmt: \(name) must have 4 entries (one per stage), got \(list)")
        }
        guard ratios.count == 4 else { throw ModelError("cmt: mlp_ratios must have 4 entries, got \(ratios)") }
        if let chans = c.inChans, chans != 3 {
            throw ModelError("cmt: in_chans \(chans) is not supported (the reference's stem_conv1 always takes 3 channels)")
        }
        if let hb = c.hybridBackbone, hb != .null { throw ModelError("cmt: hybrid_backbone is not supported") }
        if c.representationSize != nil {
            throw ModelError("cmt: representation_size is not supported (the reference's pre_logits refers to an undefined embed_dim)")
        }
        guard imgSize > 0, imgSize % 32 == 0 else {
            throw ModelError("cmt: img_size \(imgSize) must be a multiple of 32 (the stem and four 2x2 patch embeddings halve it five times)")
        }
        guard qkRatio > 0 else { throw ModelError("cmt: qk_ratio \(qkRatio) must be positive") }
        let sides = (0..<4).map { imgSize / (4 << $0) }
        for i in 0..<4 {
            guard heads[i] > 0, dims[i] % heads[i] == 0, (dims[i] / qkRatio) % heads[i] == 0 else {
                throw ModelError("cmt: embed_dims[\(i)] \(dims[i]) (and dim/qk_ratio) must be divisible by num_heads[\(i)] \(heads[i])")
            }
            guard srs[i] > 0, sides[i] % srs[i] == 0 else {
                throw ModelError("cmt: stage \(i + 1) has a \(sides[i])x\(sides[i]) token grid at img_size \(imgSize), not divisible by sr_ratios[\(i)] \(srs[i])")
            }
            guard depths[i] >= 0 else { throw ModelError("cmt: depths[\(i)] \(depths[i]) is negative") }
        }
        let normEps = try cmtLayerNormEps(c.normLayer, defaultEps: 1e-6, family: "cmt")
        self.imgSize = imgSize
        self.fcDim = fcDim
        self.sides = sides
        srRatios = srs

        _stemConv1.wrappedValue = Conv2d(3, stem, kernelSize: 3, stride: 2, padding: 1)
        _stemNorm1.wrappedValue = BatchNorm(stem, eps: 1e-5)
        _stemConv2.wrappedValue = Conv2d(stem, stem, kernelSize: 3, padding: 1)
        _stemNorm2.wrappedValue = BatchNorm(stem, eps: 1e-5)
        _stemConv3.wrappedValue = Conv2d(stem, stem, kernelSize: 3, padding: 1)
        _stemNorm3.wrappedValue = BatchNorm(stem, eps: 1e-5)
        _patchEmbedA.wrappedValue = CMTPatchEmbed(stem, dims[0])
        _patchEmbedB.wrappedValue = CMTPatchEmbed(dims[0], dims[1])
        _patchEmbedC.wrappedValue = CMTPatchEmbed(dims[1], dims[2])
        _patchEmbedD.wrappedValue = CMTPatchEmbed(dims[2], dims[3])
        let tables = (0..<4).map { i -> Tensor in
            let n = sides[i] * sides[i]
            return Tensor.randomNormal([heads[i], n, n / srs[i] / srs[i]])
        }
        _relativePosA.wrappedValue = tables[0]; _relativePosB.wrappedValue = tables[1]; _relativePosC.wrappedValue = tables[2]; _relativePosD.wrappedValue = tables[3]

        let total = depths.reduce(0, +)
        let rate = Float(c.dropPathRate)
        let dpr = dropPathRates(rate, count: total)
        var stages: [[CMTBlock]] = []
        var cur = 0
        for i in 0..<4 {
            stages.append((0..<depths[i]).map { j in
                CMTBlock(dim: dims[i], heads: heads[i], mlpRatio: ratios[i], qkvBias: c.qkvBias, qkScale: c.qkScale,
                         drop: Float(c.dropRate), attnDrop: Float(c.attnDropRate), dropPath: dpr[cur + j],
                         normEps: normEps, qkRatio: qkRatio, srRatio: srs[i])
            })
            cur += depths[i]
        }
        _blocksA.wrappedValue = stages[0]; _blocksB.wrappedValue = stages[1]; _blocksC.wrappedValue = stages[2]; _blocksD.wrappedValue = stages[3]
        _fc.wrappedValue = Conv2d(dims[3], fcDim, kernelSize: 1)
        _bn.wrappedValue = BatchNorm(fcDim, eps: 1e-5)
        _drop.wrappedValue = Dropout(Float(c.dp))
        _head.wrappedValue = CMT.makeHead(fcDim, classes: c.numClasses)
        super.init()
        initWeights()
    }

    static func makeHead(_ dim: Int, classes: Int) -> Module {
        guard classes > 0 else { return Identity() }
        let l = Linear(dim, classes)
        l.weight = Init.truncatedNormal(l.weight.shape, std: 0.02)
        l.bias = Tensor.zeros([classes])
        return l
    }

    /// The reference's _init_weights: Linear trunc_normal(0.02), zero bias; Conv2d
    /// kaiming_normal(fan_out), zero bias; norms ones and zeros (as built).
    private func initWeights() {
        for (_, m) in namedModules() {
            if let l = m as? Linear {
                l.weight = Init.truncatedNormal(l.weight.shape, std: 0.02)
                if let b = l.bias { l.bias = Tensor.zeros(b.shape) }
            } else if let conv = m as? Conv2d {
                let fanOut = conv.outChannels * conv.kernelSize.0 * conv.kernelSize.1
                conv.weight = Init.kaimingNormalFanOut(conv.weight.shape, fanOut: fanOut)
                if let b = conv.bias { conv.bias = Tensor.zeros(b.shape) }
            }
        }
    }

    var stages: [(embed: CMTPatchEmbed, blocks: [CMTBlock], table: Tensor, key: String)] {
        [(patchEmbedA, blocksA, relativePosA, "blocks_a"), (patchEmbedB, blocksB, relativePosB, "blocks_b"),
         (patchEmbedC, blocksC, relativePosC, "blocks_c"), (patchEmbedD, blocksD, relativePosD, "blocks_d")]
    }

    func stem(_ x: Tensor) -> Tensor {
        guard x.rank == 4, x.shape[1] == imgSize, x.shape[2] == imgSize, x.shape[3] == 3 else {
            fail("CMT", "input \(x.shape) must be [B, \(imgSize), \(imgSize), 3]: the relative_pos tables are sized for img_size \(imgSize)")
        }
        var h = stemNorm1(stemConv1(x).gelu())
        h = stemNorm2(stemConv2(h).gelu())
        return stemNorm3(stemConv3(h).gelu())
    }

    /// Runs the four stages on the stem's map; `visit` sees every block's output map.
    func stagesForward(_ map: Tensor, visit: ((String, Tensor) -> Void)? = nil) -> Tensor {
        var x = map
        for stage in stages {
            let (embedded, h, w) = stage.embed.tokens(x)
            var tokens = embedded
            for (j, block) in stage.blocks.enumerated() {
                tokens = block.forward(tokens, height: h, width: w, relativePos: stage.table)
                visit?("\(stage.key).\(j)", tokens.reshaped([tokens.shape[0], h, w, tokens.shape[2]]))
            }
            x = tokens.reshaped([tokens.shape[0], h, w, tokens.shape[2]])
        }
        return x
    }

    /// The last stage's map [B, h, w, C] (before the head's 1x1 conv).
    public func forwardFeatures(_ x: Tensor) -> Tensor { stagesForward(stem(x)) }

    /// `_fc` (1x1 conv) → `_bn` → Swish → global average → dropout (→ head).
    /// `preLogits` gives the pooled fc_dim features.
    public func forwardHead(_ features: Tensor, preLogits: Bool) -> Tensor {
        let pooled = drop(bn(fc(features)).silu().mean(alongAxes: [1, 2]))
        return preLogits ? pooled : head(pooled)
    }

    /// "stem" (after stem_norm3), then every block's output map "blocks_{a,b,c,d}.{i}".
    public func forwardIntermediates(_ x: Tensor) -> [(name: String, value: Tensor)] {
        let s = stem(x)
        var out: [(name: String, value: Tensor)] = [("stem", s)]
        _ = stagesForward(s) { out.append(($0, $1)) }
        return out
    }

    /// A new Linear(fc_dim, classes) head (the reference's reset_classifier reads an
    /// attribute it never sets; the head's input is fc_dim wide).
    public func resetClassifier(numClasses: Int) { head = CMT.makeHead(fcDim, classes: numClasses) }

    public override func callAsFunction(_ x: Tensor) -> Tensor { logits(x) }

    /// Key positions of an attention whose keys come from a conv with kernel = stride = sr:
    /// the centre of each cell (tokens i·sr ..< (i+1)·sr), as image fractions, [Nk, 2].
    static func reducedCellPositions(height: Int, width: Int, sr: Int) -> Tensor {
        let kh = height / sr, kw = width / sr
        var values: [Float] = []
        values.reserveCapacity(kh * kw * 2)
        for i in 0..<kh {
            for j in 0..<kw {
                values.append((Float(i * sr) + Float(sr) / 2) / Float(height))
                values.append((Float(j * sr) + Float(sr) / 2) / Float(width))
            }
        }
        return Tensor(values, shape: [kh * kw, 2])
    }

    // MARK: checkpoint filter

    /// Resamples relative_pos_{a,b,c,d} tables made for another input size to this model's
    /// (bicubic, antialiased, as timm's position-embedding filters): the query grid and the
    /// reduced key grid are each resized as square maps. Other keys pass through.
    public func checkpointFilter(_ stateDict: [String: Tensor]) -> [String: Tensor] {
        var dict = stateDict
        for (i, key) in ["relative_pos_a", "relative_pos_b", "relative_pos_c", "relative_pos_d"].enumerated() {
            let want = [relativePosA, relativePosB, relativePosC, relativePosD][i].shape
            guard let table = dict[key], table.shape != want, table.rank == 3, table.shape[0] == want[0] else { continue }
            let side = sides[i], keySide = sides[i] / srRatios[i]
            if let resampled = CMT.resampleRelativePosition(table, queryGrid: (side, side), keyGrid: (keySide, keySide)) {
                dict[key] = resampled
            }
        }
        return dict
    }

    /// [heads, Nq, Nk] on square query and key grids → [heads, qh·qw, kh·kw]; nil when a grid is not square.
    public static func resampleRelativePosition(_ table: Tensor, queryGrid: (Int, Int), keyGrid: (Int, Int)) -> Tensor? {
        let heads = table.shape[0], nq = table.shape[1], nk = table.shape[2]
        let sq = Int(Double(nq).squareRoot().rounded()), sk = Int(Double(nk).squareRoot().rounded())
        guard sq * sq == nq, sk * sk == nk, sq > 0, sk > 0 else { return nil }
        var x = table.reshaped([heads, sq, sq, nk])
        if (sq, sq) != queryGrid { x = resize(x, size: queryGrid, mode: .bicubic, alignCorners: false, antialias: true) }
        let newNq = queryGrid.0 * queryGrid.1
        x = x.reshaped([heads * newNq, sk, sk, 1])
        if (sk, sk) != keyGrid { x = resize(x, size: keyGrid, mode: .bicubic, alignCorners: false, antialias: true) }
        return x.reshaped([heads, newNq, keyGrid.0 * keyGrid.1]).contiguous()
    }
}

// MARK: variants

extension CMT {
    @Sendable static func build(_ config: JSONValue) throws -> ImageClassifier { try CMT(config.decode(CMTConfig.self)) }

    /// One of the authors' factories: its `model_kwargs`, at the img_size 224 `_create_cmt_model` gives every variant.
    static func variant(_ name: String, _ modelKwargs: [String: JSONValue]) -> ModelVariant {
        var arguments = modelKwargs
        arguments["img_size"] = 224
        return ModelVariant(name, family: "cmt", inputSize: 224, arguments: arguments, build: build)
    }

    /// cmt_ti / cmt_xs / cmt_s / cmt_b as registered in cmt_pytorch/cmt.py (cmt_ti is CMT's defaults).
    public static let family = ModelFamily(
        name: "cmt", reference: "huawei-noah/Efficient-AI-Backbones@f90e129 cmt_pytorch/cmt.py CMT",
        variants: [
            variant("cmt_ti", ["qkv_bias": true]),
            variant("cmt_xs", ["qkv_bias": true, "embed_dims": [52, 104, 208, 416], "stem_channel": 16, "num_heads": [1, 2, 4, 8],
                               "depths": [3, 3, 12, 3], "mlp_ratios": [3.77, 3.77, 3.77, 3.77], "qk_ratio": 1, "sr_ratios": [8, 4, 2, 1]]),
            variant("cmt_s", ["qkv_bias": true, "embed_dims": [64, 128, 256, 512], "stem_channel": 32, "num_heads": [1, 2, 4, 8],
                              "depths": [3, 3, 16, 3], "mlp_ratios": [4, 4, 4, 4], "qk_ratio": 1, "sr_ratios": [8, 4, 2, 1]]),
            variant("cmt_b", ["qkv_bias": true, "embed_dims": [76, 152, 304, 608], "stem_channel": 38, "num_heads": [1, 2, 4, 8],
                              "depths": [4, 4, 20, 4], "mlp_ratios": [4, 4, 4, 4], "qk_ratio": 1, "sr_ratios": [8, 4, 2, 1], "dp": 0.3]),
            // For 32x32: token grids 8/4/2/1; sr 2,2,1,1 so attention has 16/4/4/1 keys
            // (the default 8,4,2,1 would reduce every stage to one key).
            ModelVariant("cmt_nano", family: "cmt", inputSize: 32) { classes in
                try CMT(CMTConfig(imgSize: 32, numClasses: classes, embedDims: [32, 64, 128, 160], stemChannel: 16, fcDim: 320,
                                  numHeads: [1, 2, 4, 8], mlpRatios: [3.6, 3.6, 3.6, 3.6], depths: [1, 1, 3, 1],
                                  srRatios: [2, 2, 1, 1], dp: 0))
            },
        ],
        build: build)
}
