import Foundation
import Patchwork
import PatchworkNN

// timm's VisionTransformer (timm/models/vision_transformer.py).
// Blocks → model → checkpoint filter → named variants, in timm's order.

/// Turns images [B, H, W, C] into tokens [B, N, D] on a grid (patch embedding, hybrid CNN stem).
public protocol TokenEmbedding: Module {
    func tokens(_ x: Tensor) -> (tokens: Tensor, grid: (Int, Int))
}

extension PatchEmbed: TokenEmbedding {}

/// timm's LayerScale: a learned per-channel scale (`gamma`).
final class LayerScale: Module {
    @Parameter(key: "gamma") var gamma: Tensor
    init(_ dim: Int, initValue: Float) { _gamma.wrappedValue = Tensor.full([dim], initValue) }
    override func callAsFunction(_ x: Tensor) -> Tensor { x * gamma }
}

/// What mixes a ViT block's tokens: timm's self-attention, or Patchwork's control for
/// "self-attention is a low-pass filter" (Park & Kim 2022), a depthwise k×k convolution over
/// the patch-token grid.
public enum TokenMixer: Equatable, Sendable {
    case attention
    case depthwiseConv(kernel: Int)
}

/// The depthwise-convolution token mixer: patch tokens [B, P + h·w, D] go back on their h×w
/// grid, through a depthwise k×k convolution (zero "same" padding, bias), and back to tokens.
/// The P prefix (class, register) tokens get a zero branch, so the block's residual leaves them
/// unchanged; a model with this mixer pools the patch tokens (global_pool "avg").
public final class DepthwiseTokenMixer: Module {
    @Child(key: "conv") public var conv: Conv2d
    public let grid: (Int, Int)
    public let prefixTokens: Int

    public init(dim: Int, kernelSize: Int, grid: (Int, Int), prefixTokens: Int) {
        _conv.wrappedValue = Conv2d(dim, dim, kernelSize: kernelSize, padding: kernelSize / 2, groups: dim, bias: true)
        self.grid = grid
        self.prefixTokens = prefixTokens
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        let (b, n, d) = (x.shape[0], x.shape[1], x.shape[2])
        require(n == prefixTokens + grid.0 * grid.1, "DepthwiseTokenMixer",
                "\(n) tokens do not make \(prefixTokens) prefix tokens and a \(grid.0)x\(grid.1) grid")
        let patches = x.sliced(axis: 1, start: prefixTokens).contiguous().reshaped([b, grid.0, grid.1, d])
        let mixed = conv(patches).reshaped([b, grid.0 * grid.1, d])
        return prefixTokens == 0 ? mixed : concat([Tensor.zeros([b, prefixTokens, d]), mixed], axis: 1)
    }
}

/// A pre-norm transformer block: x + mix(norm1 x), then x + mlp(norm2 x), where mix is timm's
/// attention (`attn`) or, in Patchwork's control variant, a depthwise convolution (`mixer`).
public final class ViTBlock: Module, ResidualBranchRecording {
    @Child(key: "norm1") public var norm1: LayerNorm
    /// The self-attention; nil when the block mixes tokens with `mixer`.
    @Child(key: "attn") public var attn: Attention?
    /// The depthwise-convolution token mixer; nil in timm's blocks.
    @Child(key: "mixer") public var mixer: DepthwiseTokenMixer?
    @Child(key: "ls1") var ls1: Module
    @Child(key: "drop_path1") var dropPath1: DropPath
    @Child(key: "norm2") public var norm2: LayerNorm
    @Child(key: "mlp") public var mlp: MLP
    @Child(key: "ls2") var ls2: Module
    @Child(key: "drop_path2") var dropPath2: DropPath
    public let mixerRecorder: ResidualBranchRecorder
    public let mlpRecorder = ResidualBranchRecorder(kind: "mlp")

    init(dim: Int, heads: Int, mlpRatio: Double, qkvBias: Bool, projBias: Bool, initValues: Float?,
         projDrop: Float, attnDrop: Float, dropPath: Float, eps: Float,
         tokenMixer: TokenMixer = .attention, grid: (Int, Int) = (0, 0), prefixTokens: Int = 0) {
        _norm1.wrappedValue = LayerNorm(dim, eps: eps)
        switch tokenMixer {
        case .attention:
            _attn.wrappedValue = Attention(dim, heads: heads, qkvBias: qkvBias, projBias: projBias,
                                           attentionDropout: attnDrop, projectionDropout: projDrop)
            _mixer.wrappedValue = nil
            mixerRecorder = ResidualBranchRecorder(kind: "attention")
        case .depthwiseConv(let kernel):
            _attn.wrappedValue = nil
            _mixer.wrappedValue = DepthwiseTokenMixer(dim: dim, kernelSize: kernel, grid: grid, prefixTokens: prefixTokens)
            mixerRecorder = ResidualBranchRecorder(kind: "depthwise-conv")
        }
        _ls1.wrappedValue = initValues.map { LayerScale(dim, initValue: $0) } ?? Identity()
        _dropPath1.wrappedValue = DropPath(dropPath)
        _norm2.wrappedValue = LayerNorm(dim, eps: eps)
        _mlp.wrappedValue = MLP(dim, hidden: Int(Double(dim) * mlpRatio), activation: .gelu, bias: projBias, dropout: projDrop)
        _ls2.wrappedValue = initValues.map { LayerScale(dim, initValue: $0) } ?? Identity()
        _dropPath2.wrappedValue = DropPath(dropPath)
    }

    public var residualBranches: [(name: String, recorder: ResidualBranchRecorder)] {
        [(attn != nil ? "attn" : "mixer", mixerRecorder), ("mlp", mlpRecorder)]
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        let normed = norm1(x)
        let mixed = attn.map { $0(normed) } ?? mixer!(normed)
        let h = x + dropPath1(ls1(mixed))
        mixerRecorder.record(input: x, output: h)
        let out = h + dropPath2(ls2(mlp(norm2(h))))
        mlpRecorder.record(input: h, output: out)
        return out
    }
}

/// The config of timm's `VisionTransformer(...)`, under its argument names.
public struct ViTConfig: Codable, Sendable {
    public var imgSize: Int = 224
    public var patchSize: Int = 16
    public var inChans: Int = 3
    public var numClasses: Int = 1000
    public var globalPool: String = "token"
    public var embedDim: Int = 768
    public var depth: Int = 12
    public var numHeads: Int = 12
    public var mlpRatio: Double = 4
    public var qkvBias: Bool = true
    public var qkNorm: Bool?
    public var projBias: Bool = true
    public var initValues: Double?
    public var classToken: Bool = true
    public var posEmbed: String?
    public var noEmbedClass: Bool = false
    public var regTokens: Int = 0
    public var preNorm: Bool = false
    public var finalNorm: Bool = true
    public var fcNorm: Bool?
    public var dropRate: Double = 0
    public var posDropRate: Double = 0
    public var patchDropRate: Double = 0
    public var projDropRate: Double = 0
    public var attnDropRate: Double = 0
    public var dropPathRate: Double = 0
    public var dynamicImgSize: Bool?
    public var embedLayer: ReferenceCallable?
    public var normLayer: ReferenceCallable?
    public var actLayer: ReferenceCallable?
    public var blockFn: ReferenceCallable?
    public var mlpLayer: ReferenceCallable?
    public var attnLayer: ReferenceCallable?
    /// Patchwork extension (not a timm argument): "attention" (timm's blocks) or
    /// "depthwise_conv", a depthwise `token_mixer_kernel`² convolution over the patch-token grid
    /// in place of every block's attention (the control of the feature-frequency analysis).
    public var tokenMixer: String = "attention"
    public var tokenMixerKernel: Int = 3

    public init(imgSize: Int = 224, patchSize: Int = 16, embedDim: Int, depth: Int, numHeads: Int, numClasses: Int = 1000) {
        self.imgSize = imgSize; self.patchSize = patchSize; self.embedDim = embedDim; self.depth = depth
        self.numHeads = numHeads; self.numClasses = numClasses
    }

    /// Absent (or null) arguments keep the reference's defaults above.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        imgSize = try c.value(.imgSize, imgSize)
        patchSize = try c.value(.patchSize, patchSize)
        inChans = try c.value(.inChans, inChans)
        numClasses = try c.value(.numClasses, numClasses)
        globalPool = try c.value(.globalPool, globalPool)
        embedDim = try c.value(.embedDim, embedDim)
        depth = try c.value(.depth, depth)
        numHeads = try c.value(.numHeads, numHeads)
        mlpRatio = try c.value(.mlpRatio, mlpRatio)
        qkvBias = try c.value(.qkvBias, qkvBias)
        qkNorm = try c.decodeIfPresent(Bool.self, forKey: .qkNorm)
        projBias = try c.value(.projBias, projBias)
        initValues = try c.decodeIfPresent(Double.self, forKey: .initValues)
        classToken = try c.value(.classToken, classToken)
        posEmbed = try c.decodeIfPresent(String.self, forKey: .posEmbed)
        noEmbedClass = try c.value(.noEmbedClass, noEmbedClass)
        regTokens = try c.value(.regTokens, regTokens)
        preNorm = try c.value(.preNorm, preNorm)
        finalNorm = try c.value(.finalNorm, finalNorm)
        fcNorm = try c.decodeIfPresent(Bool.self, forKey: .fcNorm)
        dropRate = try c.value(.dropRate, dropRate)
        posDropRate = try c.value(.posDropRate, posDropRate)
        patchDropRate = try c.value(.patchDropRate, patchDropRate)
        projDropRate = try c.value(.projDropRate, projDropRate)
        attnDropRate = try c.value(.attnDropRate, attnDropRate)
        dropPathRate = try c.value(.dropPathRate, dropPathRate)
        dynamicImgSize = try c.decodeIfPresent(Bool.self, forKey: .dynamicImgSize)
        embedLayer = try c.decodeIfPresent(ReferenceCallable.self, forKey: .embedLayer)
        normLayer = try c.decodeIfPresent(ReferenceCallable.self, forKey: .normLayer)
        actLayer = try c.decodeIfPresent(ReferenceCallable.self, forKey: .actLayer)
        blockFn = try c.decodeIfPresent(ReferenceCallable.self, forKey: .blockFn)
        mlpLayer = try c.decodeIfPresent(ReferenceCallable.self, forKey: .mlpLayer)
        attnLayer = try c.decodeIfPresent(ReferenceCallable.self, forKey: .attnLayer)
        tokenMixer = try c.value(.tokenMixer, tokenMixer)
        tokenMixerKernel = try c.value(.tokenMixerKernel, tokenMixerKernel)
    }

    /// `token_mixer` and `token_mixer_kernel` as a `TokenMixer` (call after `validate()`).
    public var mixer: TokenMixer { tokenMixer == "depthwise_conv" ? .depthwiseConv(kernel: tokenMixerKernel) : .attention }
}

extension ViTConfig: ModelConfig {
    public func validate() throws {
        let check = ConfigCheck(family: "vit")
        try check.size(imgSize, "img_size")
        try check.size(patchSize, "patch_size")
        if embedLayer?.shortName != "HybridEmbed" {  // a hybrid's patches tile the backbone's feature map instead
            try check.divisible(imgSize, "img_size", by: patchSize, "patch_size")
        }
        try check.width(inChans, "in_chans")
        try check.classes(numClasses)
        try check.width(embedDim, "embed_dim")
        try check.depth(depth, "depth")
        try check.heads(numHeads, "num_heads", divide: embedDim, "embed_dim")
        try check.positive(mlpRatio, "mlp_ratio")
        try check.nonNegative(regTokens, "reg_tokens")
        if let v = initValues { try check.finite(v, "init_values") }
        if tokenMixerKernel < 1 || tokenMixerKernel % 2 == 0 || tokenMixerKernel > 31 {
            throw check.error("token_mixer_kernel", tokenMixerKernel, "must be odd, from 1 to 31 (a \"same\" padded depthwise convolution)")
        }
        switch tokenMixer {
        case "attention": break
        case "depthwise_conv":
            if globalPool != "avg" {
                throw check.error("global_pool", globalPool, "must be avg with token_mixer depthwise_conv (the class token sees no patch token)")
            }
        default: throw check.error("token_mixer", tokenMixer, "must be attention or depthwise_conv")
        }
        try check.rates([(dropRate, "drop_rate"), (posDropRate, "pos_drop_rate"), (patchDropRate, "patch_drop_rate"),
                           (projDropRate, "proj_drop_rate"), (attnDropRate, "attn_drop_rate"), (dropPathRate, "drop_path_rate")])
        let tokens = (imgSize / patchSize) * (imgSize / patchSize) + 1 + regTokens
        let estimate = ConfigCheck.transformer(width: embedDim, depth: depth, mlpRatio: mlpRatio)
            + ConfigCheck.table(tokens, embedDim) + ConfigCheck.table(patchSize * patchSize * inChans, embedDim)
            + ConfigCheck.table(embedDim, numClasses)
        try check.parameters(estimate, "embed_dim, depth, mlp_ratio, img_size / patch_size, num_classes")
    }
    public var expectedInput: ExpectedInput { ExpectedInput(channels: inChans, side: imgSize) }
    public var classCount: Int { numClasses }
}

/// timm's VisionTransformer: patch (or hybrid) embedding, class token,
/// learned position embedding, pre-norm blocks, final norm, head.
public final class VisionTransformer: Module, ImageClassifier, CheckpointFiltering {
    @Parameter(key: "cls_token") var clsToken: Tensor
    @OptionalParameter(key: "reg_token") var regToken: Tensor?
    @Parameter(key: "pos_embed") var posEmbed: Tensor
    @Child(key: "patch_embed") public var patchEmbed: TokenEmbedding
    @Child(key: "pos_drop") var posDrop: Dropout
    @Child(key: "norm_pre") var normPre: Module
    @Child(key: "blocks") public var blocks: [ViTBlock]
    @Child(key: "norm") var norm: Module
    @Child(key: "fc_norm") var fcNorm: Module
    @Child(key: "head_drop") var headDrop: Dropout
    @Child(key: "head") var head: Module
    let hasClassToken: Bool
    let noEmbedClass: Bool
    let globalPool: String
    public let embedDim: Int
    /// Class and register tokens in front of the patch tokens.
    public let numPrefixTokens: Int
    /// The patch-token grid the position embedding was built for.
    public let grid: (Int, Int)

    /// Builds a ViT around `embedding` (which maps images to `grid` tokens of width `embedDim`).
    public init(_ c: ViTConfig, embedding: TokenEmbedding, grid: (Int, Int)) throws {
        try c.validate()
        if c.qkNorm == true { throw ModelError("vit: qk_norm is not supported") }
        if (c.posEmbed ?? "learn") != "learn" { throw ModelError("vit: pos_embed \(c.posEmbed!) is not supported (learn)") }
        if (c.patchDropRate) != 0 { throw ModelError("vit: patch_drop_rate is not supported") }
        if c.dynamicImgSize == true { throw ModelError("vit: dynamic_img_size is not supported") }
        for (name, ref, allowed) in [("norm_layer", c.normLayer, "LayerNorm"), ("act_layer", c.actLayer, "GELU"),
                                     ("block_fn", c.blockFn, "Block"), ("mlp_layer", c.mlpLayer, "Mlp"),
                                     ("attn_layer", c.attnLayer, "Attention")] {
            if let ref, ref.shortName != allowed { throw ModelError("vit: \(name) \(ref.name) is not supported (\(allowed))") }
        }
        let dim = c.embedDim
        let depth = c.depth
        let pool = c.globalPool
        guard ["token", "avg", ""].contains(pool) else { throw ModelError("vit: global_pool \(pool) is not supported (token, avg)") }
        embedDim = dim
        hasClassToken = c.classToken
        let regTokens = c.regTokens
        numPrefixTokens = (hasClassToken ? 1 : 0) + regTokens
        noEmbedClass = c.noEmbedClass
        globalPool = pool
        self.grid = grid
        _patchEmbed.wrappedValue = embedding
        _clsToken.wrappedValue = hasClassToken ? Tensor.randomNormal([1, 1, dim], std: 1e-6) : Tensor.zeros([1, 1, 0])
        _regToken.wrappedValue = regTokens > 0 ? Tensor.randomNormal([1, regTokens, dim], std: 1e-6) : nil
        let embedLength = grid.0 * grid.1 + (noEmbedClass ? 0 : numPrefixTokens)
        _posEmbed.wrappedValue = Init.truncatedNormal([1, embedLength, dim], std: 0.02)
        _posDrop.wrappedValue = Dropout(Float(c.posDropRate))
        let eps: Float = 1e-6
        _normPre.wrappedValue = (c.preNorm) ? LayerNorm(dim, eps: eps) : Identity()
        let rates = dropPathRates(Float(c.dropPathRate), count: depth)
        let prefixTokens = numPrefixTokens
        _blocks.wrappedValue = (0..<depth).map { i in
            ViTBlock(dim: dim, heads: c.numHeads, mlpRatio: c.mlpRatio, qkvBias: c.qkvBias,
                     projBias: c.projBias, initValues: c.initValues.map(Float.init),
                     projDrop: Float(c.projDropRate), attnDrop: Float(c.attnDropRate),
                     dropPath: rates[i], eps: eps, tokenMixer: c.mixer, grid: grid, prefixTokens: prefixTokens)
        }
        let useFcNorm = c.fcNorm ?? (pool == "avg")
        let finalNorm = c.finalNorm
        _norm.wrappedValue = finalNorm && !useFcNorm ? LayerNorm(dim, eps: eps) : Identity()
        _fcNorm.wrappedValue = finalNorm && useFcNorm ? LayerNorm(dim, eps: eps) : Identity()
        _headDrop.wrappedValue = Dropout(Float(c.dropRate))
        let classes = c.numClasses
        _head.wrappedValue = classes > 0 ? Linear(dim, classes) : Identity()
        super.init()
        if !hasClassToken { throw ModelError("vit: class_token false is not supported") }
        initLinearWeights()
        let positions = AttentionMap.gridPositions(height: grid.0, width: grid.1, prefixTokens: numPrefixTokens)
        for block in blocks { block.attn?.tokenPositions = positions }
    }

    /// timm's "timm" init: truncated-normal(0.02) Linear weights, zero biases.
    private func initLinearWeights() {
        for (_, m) in namedModules() {
            guard let l = m as? Linear else { continue }
            l.weight = Init.truncatedNormal(l.weight.shape, std: 0.02)
            if let b = l.bias { l.bias = Tensor.zeros(b.shape) }
        }
    }

    /// A plain ViT with a patch embedding.
    public convenience init(_ c: ViTConfig) throws {
        try c.validate()
        if let e = c.embedLayer, e.shortName != "PatchEmbed" { throw ModelError("vit: embed_layer \(e.name) is not supported here (PatchEmbed)") }
        let size = c.imgSize, patch = c.patchSize
        guard size % patch == 0 else { throw ModelError("vit: img_size \(size) is not divisible by patch_size \(patch)") }
        let embed = PatchEmbed(patchSize: patch, inChannels: c.inChans, embedDim: c.embedDim, bias: !(c.preNorm))
        try self.init(c, embedding: embed, grid: (size / patch, size / patch))
    }

    /// Tokens with class token and position embedding, before the blocks.
    func embed(_ x: Tensor) -> Tensor {
        let (patches, g) = patchEmbed.tokens(x)
        guard g == grid else {
            fail("VisionTransformer", "input \(x.shape) gives a \(g.0)x\(g.1) token grid; the model was built for \(grid.0)x\(grid.1)")
        }
        let b = patches.shape[0]
        var prefix = [clsToken.expanded(to: [b, 1, embedDim])]
        if let reg = regToken { prefix.append(reg.expanded(to: [b, reg.shape[1], embedDim])) }
        let tokens: Tensor
        if noEmbedClass {
            tokens = concat(prefix + [patches + posEmbed], axis: 1)
        } else {
            tokens = concat(prefix + [patches], axis: 1) + posEmbed
        }
        return normPre(posDrop(tokens))
    }

    public func forwardFeatures(_ x: Tensor) -> Tensor {
        norm(blocks.reduce(embed(x)) { $1($0) })
    }

    public func forwardHead(_ features: Tensor, preLogits: Bool) -> Tensor {
        var pooled: Tensor
        switch globalPool {
        case "avg": pooled = features.sliced(axis: 1, start: numPrefixTokens).mean(alongAxes: [1])
        case "token": pooled = features.selecting(axis: 1, index: 0)
        default: pooled = features
        }
        pooled = headDrop(fcNorm(pooled))
        return preLogits ? pooled : head(pooled)
    }

    public func forwardIntermediates(_ x: Tensor) -> [(name: String, value: Tensor)] {
        var h = embed(x)
        var out: [(String, Tensor)] = [("patch_embed", h)]
        for (i, block) in blocks.enumerated() {
            h = block(h)
            out.append(("blocks.\(i)", h))
        }
        return out
    }

    public func resetClassifier(numClasses: Int) { head = numClasses > 0 ? Linear(embedDim, numClasses) : Identity() }

    public override func callAsFunction(_ x: Tensor) -> Tensor { logits(x) }

    /// Resamples a checkpoint's position embedding to this model's token grid
    /// (bicubic, antialiased, as timm's `resample_abs_pos_embed`).
    public func checkpointFilter(_ stateDict: [String: Tensor]) -> [String: Tensor] {
        var dict = stateDict
        if let pe = dict["pos_embed"], pe.shape != posEmbed.shape, pe.rank == 3 {
            dict["pos_embed"] = VisionTransformer.resamplePositionEmbedding(
                pe, to: grid, prefixTokens: noEmbedClass ? 0 : numPrefixTokens)
        }
        return dict
    }

    /// [1, prefix + h·w, D] → [1, prefix + newGrid, D], resampling the grid part.
    public static func resamplePositionEmbedding(_ pe: Tensor, to newGrid: (Int, Int), prefixTokens: Int) -> Tensor {
        let d = pe.shape[2]
        let n = pe.shape[1] - prefixTokens
        let side = Int(Double(n).squareRoot().rounded())
        guard side * side == n else { return pe }  // not a square grid: leave it for the strict loader to report
        let prefix = pe.sliced(axis: 1, start: 0, end: prefixTokens)
        let gridPart = pe.sliced(axis: 1, start: prefixTokens).reshaped([1, side, side, d])
        let resized = resize(gridPart, size: newGrid, mode: .bicubic, alignCorners: false, antialias: true)
        return concat([prefix, resized.reshaped([1, newGrid.0 * newGrid.1, d])], axis: 1)
    }
}

extension VisionTransformer {
    @Sendable static func build(_ config: JSONValue) throws -> ImageClassifier { try VisionTransformer(config.decode(ViTConfig.self)) }

    /// A timm entrypoint: `model_args` as `vision_transformer.py` registers it.
    static func variant(_ name: String, _ arguments: [String: JSONValue]) -> ModelVariant {
        ModelVariant(name, family: "vit", inputSize: 224, arguments: arguments, build: build)
    }

    /// vit_nano: 4x4 patches of a 32x32 image (an 8x8 grid), width 128, depth 6, 4 heads, MLP ratio 3.
    static func nanoConfig(_ classes: Int) -> ViTConfig {
        var c = ViTConfig(imgSize: 32, patchSize: 4, embedDim: 128, depth: 6, numHeads: 4, numClasses: classes)
        c.mlpRatio = 3
        return c
    }

    public static let family = ModelFamily(
        name: "vit", reference: "timm 1.0.31 timm.models.vision_transformer.VisionTransformer",
        variants: [
            variant("vit_tiny_patch16_224", ["patch_size": 16, "embed_dim": 192, "depth": 12, "num_heads": 3]),
            variant("vit_small_patch16_224", ["patch_size": 16, "embed_dim": 384, "depth": 12, "num_heads": 6]),
            variant("vit_base_patch16_224", ["patch_size": 16, "embed_dim": 768, "depth": 12, "num_heads": 12]),
            ModelVariant("vit_nano", family: "vit", inputSize: 32) { classes in try VisionTransformer(nanoConfig(classes)) },
            // The control for "self-attention is a low-pass filter": vit_nano with every block's
            // attention replaced by a depthwise 3x3 convolution over the 8x8 token grid; the
            // class token is left unused, so the head pools the patch tokens.
            ModelVariant("vit_dwconv_nano", family: "vit", inputSize: 32) { classes in
                var c = nanoConfig(classes)
                c.tokenMixer = "depthwise_conv"
                c.tokenMixerKernel = 3
                c.globalPool = "avg"
                return try VisionTransformer(c)
            },
        ],
        build: build)
}
