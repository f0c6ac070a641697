import Foundation
import Patchwork
import PatchworkNN

// timm's ConVit (timm/models/convit.py, "ConViT: Improving Vision Transformers with
// Soft Convolutional Inductive Biases", d'Ascoli et al. 2021).
// Blocks → model → checkpoint filter → named variants, in timm's order.
//
// The first `local_up_to_layer` blocks use gated positional self-attention (GPSA):
// each head mixes content attention softmax(q·kᵀ·scale) with a positional attention
// softmax(pos_proj(rel)) computed from the relative offsets (dx, dy, dx²+dy²) of the
// patches, by a learned gate σ(gating_param). The remaining blocks are ordinary
// multi-head self-attention, and the class token joins the sequence just before them.
// `embed_dim` is per head (the width is embed_dim·num_heads); `pos_embed` has no
// class-token entry; `rel_indices` is not a checkpoint entry (recomputed here).

/// timm's GPSA: `qk` (fused q and k), `v`, `proj`, `pos_proj` (3 → heads) and the
/// per-head `gating_param`.
///
/// The recorded attention is the mixed, renormalised (1-σ)·patch + σ·positional
/// probabilities that the layer applies to v; `extras["gating"]` holds σ(gating_param) [heads].
public final class GPSA: Module, AttentionRecording {
    @Child(key: "qk") public var qk: Linear
    @Child(key: "v") public var v: Linear
    @Child(key: "attn_drop") var attnDrop: Dropout
    @Child(key: "proj") public var proj: Linear
    @Child(key: "pos_proj") public var posProj: Linear
    @Child(key: "proj_drop") var projDrop: Dropout
    @Parameter(key: "gating_param") public var gatingParam: Tensor
    public let heads: Int
    public let dim: Int
    public let scale: Float
    /// The patch grid the relative offsets are for.
    public let grid: (Int, Int)
    /// (dx, dy, dx²+dy²) between every pair of patches [N, N, 3] (timm's non-persistent `rel_indices`).
    public let relIndices: Tensor
    public let recorder = AttentionRecorder()
    /// Where the patches sit in the image ([N, 2], see `AttentionMap`).
    public let tokenPositions: Tensor

    init(_ dim: Int, heads: Int, grid: (Int, Int), qkvBias: Bool, attnDrop: Float, projDrop: Float, localityStrength: Float) {
        require(dim % heads == 0, "GPSA", "dim \(dim) is not divisible by \(heads) heads")
        self.dim = dim
        self.heads = heads
        scale = 1 / Float(dim / heads).squareRoot()
        _qk.wrappedValue = Linear(dim, 2 * dim, bias: qkvBias)
        _v.wrappedValue = Linear(dim, dim, bias: qkvBias)
        _attnDrop.wrappedValue = Dropout(attnDrop)
        _proj.wrappedValue = Linear(dim, dim)
        _posProj.wrappedValue = Linear(3, heads)
        _projDrop.wrappedValue = Dropout(projDrop)
        _gatingParam.wrappedValue = Tensor.ones([heads])
        self.grid = grid
        relIndices = GPSA.relativeIndices(grid)
        tokenPositions = AttentionMap.gridPositions(height: grid.0, width: grid.1)
        super.init()
        for l in [qk, v, proj, posProj] {
            l.weight = Init.truncatedNormal(l.weight.shape, std: 0.02)
            if let b = l.bias { l.bias = Tensor.zeros(b.shape) }
        }
        localInit(localityStrength)
    }

    /// timm's `local_init`: v = identity; the first ⌊√heads⌋² heads attend, through
    /// pos_proj, to their own offset of a ⌊√heads⌋-wide kernel around the query; the
    /// whole pos_proj weight is then scaled by the locality strength.
    func localInit(_ strength: Float) {
        var eye = [Float](repeating: 0, count: dim * dim)
        for i in 0..<dim { eye[i * dim + i] = 1 }
        v.weight = Tensor(eye, shape: [dim, dim])
        var w = posProj.weight.scalars  // [heads, 3]
        let kernel = Int(Double(heads).squareRoot())
        let center = kernel % 2 == 0 ? Float(kernel - 1) / 2 : Float(kernel / 2)
        for h1 in 0..<kernel {
            for h2 in 0..<kernel {
                let p = h1 + kernel * h2
                w[p * 3 + 2] = -1
                w[p * 3 + 1] = 2 * (Float(h1) - center)
                w[p * 3 + 0] = 2 * (Float(h2) - center)
            }
        }
        posProj.weight = Tensor(w.map { $0 * strength }, shape: [heads, 3])
    }

    /// [N, N, 3]: for query patch n and key patch m (row-major on the grid),
    /// (x_m − x_n, y_m − y_n, (x_m − x_n)² + (y_m − y_n)²).
    static func relativeIndices(_ grid: (Int, Int)) -> Tensor {
        let (h, w) = grid
        let n = h * w
        var values = [Float](repeating: 0, count: n * n * 3)
        for a in 0..<n {
            for b in 0..<n {
                let dx = Float(b % w - a % w), dy = Float(b / w - a / w)
                let o = (a * n + b) * 3
                values[o] = dx
                values[o + 1] = dy
                values[o + 2] = dx * dx + dy * dy
            }
        }
        return Tensor(values, shape: [n, n, 3])
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor { forward(x).output }

    /// The mixed attention probabilities [B, heads, N, N] (before attention dropout).
    func attention(_ x: Tensor) -> Tensor {
        let b = x.shape[0], n = x.shape[1], c = x.shape[2]
        guard n == relIndices.shape[0] else {
            fail("GPSA", "\(n) tokens, but the layer was built for a \(grid.0)x\(grid.1) patch grid")
        }
        let qk = self.qk(x).reshaped([b, n, 2, heads, c / heads]).permuted([2, 0, 3, 1, 4]).unbound(axis: 0)
        let q = qk[0], k = qk[1]
        // The positional scores do not depend on the batch: [N, N, heads] → [1, heads, N, N].
        let positional = posProj(relIndices).permuted([2, 0, 1]).softmax(axis: -1).unsqueezed(axis: 0)
        let patch = attentionProbabilities(q: q, k: k, scale: scale)
        let gate = gatingParam.sigmoid().reshaped([1, heads, 1, 1])
        let mixed = (1 - gate) * patch + gate * positional
        return mixed / mixed.sum(alongAxes: [3], keepDims: true)
    }

    /// x [B, N, C] → (output [B, N, C], attention probabilities [B, heads, N, N] when asked for).
    public func forward(_ x: Tensor, returnAttention: Bool = false) -> (output: Tensor, attention: Tensor?) {
        let b = x.shape[0], n = x.shape[1], c = x.shape[2]
        let probabilities = attention(x)
        // The probabilities are the gated mix, not one softmax: recorded here, not by scaledDotProductAttention.
        recorder.record(probabilities, queryPositions: tokenPositions, keyPositions: tokenPositions,
                        extras: ["gating": gatingParam.sigmoid()])
        let values = v(x).reshaped([b, n, heads, c / heads]).permuted([0, 2, 1, 3])
        let mixed = matmul(attnDrop(probabilities), values).permuted([0, 2, 1, 3]).reshaped([b, n, c])
        return (projDrop(proj(mixed)), returnAttention ? probabilities : nil)
    }
}

/// timm's convit Block: x + attn(norm1 x), then x + mlp(norm2 x); `attn` is GPSA
/// or timm's MHSA (the same keys and computation as `Attention`: `qkv`, `proj`).
public final class ConViTBlock: Module {
    @Child(key: "norm1") public var norm1: LayerNorm
    @Child(key: "attn") public var attn: Module
    @Child(key: "drop_path") var dropPath: DropPath
    @Child(key: "norm2") public var norm2: LayerNorm
    @Child(key: "mlp") public var mlp: MLP

    init(dim: Int, heads: Int, mlpRatio: Double, qkvBias: Bool, projDrop: Float, attnDrop: Float, dropPath: Float,
         eps: Float, gpsaGrid: (Int, Int)?, localityStrength: Float) {
        _norm1.wrappedValue = LayerNorm(dim, eps: eps)
        if let grid = gpsaGrid {
            _attn.wrappedValue = GPSA(dim, heads: heads, grid: grid, qkvBias: qkvBias, attnDrop: attnDrop, projDrop: projDrop,
                        localityStrength: localityStrength)
        } else {
            _attn.wrappedValue = Attention(dim, heads: heads, qkvBias: qkvBias, projBias: true, attentionDropout: attnDrop,
                             projectionDropout: projDrop)
        }
        _dropPath.wrappedValue = DropPath(dropPath)
        _norm2.wrappedValue = LayerNorm(dim, eps: eps)
        _mlp.wrappedValue = MLP(dim, hidden: Int(Double(dim) * mlpRatio), activation: .gelu, dropout: projDrop)
    }

    public var usesGPSA: Bool { attn is GPSA }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        let h = x + dropPath(attn(norm1(x)))
        return h + dropPath(mlp(norm2(h)))
    }
}

/// The config of timm's `ConVit(...)`, under its argument names. `embed_dim` is per head.
public struct ConViTConfig: Codable, Sendable {
    public var imgSize: Int = 224
    public var patchSize: Int = 16
    public var inChans: Int = 3
    public var numClasses: Int = 1000
    public var globalPool: String = "token"
    public var embedDim: Int = 768
    public var depth: Int = 12
    public var numHeads: Int = 12
    public var mlpRatio: Double = 4
    public var qkvBias: Bool = false
    public var dropRate: Double = 0
    public var posDropRate: Double = 0
    public var projDropRate: Double = 0
    public var attnDropRate: Double = 0
    public var dropPathRate: Double = 0
    public var hybridBackbone: JSONValue?
    public var normLayer: ReferenceCallable?
    public var localUpToLayer: Int = 3
    public var localityStrength: Double = 1
    public var usePosEmbed: Bool = true

    public init(imgSize: Int = 224, patchSize: Int = 16, embedDim: Int = 48, depth: Int = 12, numHeads: Int,
                localUpToLayer: Int = 10, mlpRatio: Double = 4, numClasses: Int = 1000) {
        self.imgSize = imgSize; self.patchSize = patchSize; self.embedDim = embedDim; self.depth = depth
        self.numHeads = numHeads; self.localUpToLayer = localUpToLayer; self.mlpRatio = mlpRatio; self.numClasses = numClasses
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
        dropRate = try c.value(.dropRate, dropRate)
        posDropRate = try c.value(.posDropRate, posDropRate)
        projDropRate = try c.value(.projDropRate, projDropRate)
        attnDropRate = try c.value(.attnDropRate, attnDropRate)
        dropPathRate = try c.value(.dropPathRate, dropPathRate)
        hybridBackbone = try c.decodeIfPresent(JSONValue.self, forKey: .hybridBackbone)
        normLayer = try c.decodeIfPresent(ReferenceCallable.self, forKey: .normLayer)
        localUpToLayer = try c.value(.localUpToLayer, localUpToLayer)
        localityStrength = try c.value(.localityStrength, localityStrength)
        usePosEmbed = try c.value(.usePosEmbed, usePosEmbed)
    }
}

extension ConViTConfig: ModelConfig {
    public func validate() throws {
        let check = ConfigCheck(family: "convit")
        try check.size(imgSize, "img_size")
        try check.size(patchSize, "patch_size")
        try check.divisible(imgSize, "img_size", by: patchSize, "patch_size")
        try check.width(inChans, "in_chans")
        try check.classes(numClasses)
        try check.width(embedDim, "embed_dim")
        try check.width(numHeads, "num_heads")
        try check.width(embedDim * numHeads, "embed_dim × num_heads")
        try check.depth(depth, "depth", minimum: 1)
        try check.finite(localityStrength, "locality_strength")
        try check.positive(mlpRatio, "mlp_ratio")
        try check.rates([(dropRate, "drop_rate"), (posDropRate, "pos_drop_rate"), (projDropRate, "proj_drop_rate"),
                           (attnDropRate, "attn_drop_rate"), (dropPathRate, "drop_path_rate")])
        let width = embedDim * numHeads, tokens = (imgSize / patchSize) * (imgSize / patchSize)
        let estimate = ConfigCheck.transformer(width: width, depth: depth, mlpRatio: mlpRatio) + ConfigCheck.table(tokens + 1, width)
            + ConfigCheck.table(patchSize * patchSize * inChans, width) + ConfigCheck.table(width, numClasses)
        try check.parameters(estimate, "embed_dim × num_heads, depth, mlp_ratio, img_size / patch_size, num_classes")
    }
    public var expectedInput: ExpectedInput { ExpectedInput(channels: inChans, side: imgSize) }
    public var classCount: Int { numClasses }
}

/// timm's ConVit: patch embedding + position embedding (patches only) → GPSA blocks →
/// class token → MHSA blocks → LayerNorm → head on the class token (or the patch mean).
public final class ConViT: Module, ImageClassifier, CheckpointFiltering {
    @Parameter(key: "cls_token") var clsToken: Tensor
    @OptionalParameter(key: "pos_embed") var posEmbed: Tensor?
    @Child(key: "patch_embed") public var patchEmbed: PatchEmbed
    @Child(key: "pos_drop") var posDrop: Dropout
    @Child(key: "blocks") public var blocks: [ConViTBlock]
    @Child(key: "norm") var norm: LayerNorm
    @Child(key: "head_drop") var headDrop: Dropout
    @Child(key: "head") var head: Module
    public let embedDim: Int
    public let localUpToLayer: Int
    let globalPool: String
    public let grid: (Int, Int)

    public init(_ c: ConViTConfig) throws {
        try c.validate()
        if let hb = c.hybridBackbone, hb != .null { throw ModelError("convit: hybrid_backbone is not supported") }
        let pool = c.globalPool
        guard ["token", "avg", ""].contains(pool) else { throw ModelError("convit: global_pool \(pool) is not supported (token, avg, \"\")") }
        let eps: Float
        if let nl = c.normLayer {
            guard nl.shortName == "LayerNorm" else { throw ModelError("convit: norm_layer \(nl.name) is not supported (LayerNorm)") }
            // timm's LayerNorm defaults to eps 1e-6, torch.nn.LayerNorm to 1e-5; a partial may set it.
            eps = Float(nl.kwargs?["eps"]?.double ?? (nl.name.hasPrefix("torch.") ? 1e-5 : 1e-6))
        } else {
            eps = 1e-6
        }
        let size = c.imgSize, patch = c.patchSize
        guard patch > 0, size % patch == 0 else { throw ModelError("convit: img_size \(size) is not divisible by patch_size \(patch)") }
        let heads = c.numHeads
        guard heads > 0, (c.embedDim) > 0 else { throw ModelError("convit: num_heads and embed_dim must be positive") }
        let dim = (c.embedDim) * heads
        let depth = c.depth
        guard depth > 0 else { throw ModelError("convit: depth must be positive") }
        let local = c.localUpToLayer
        embedDim = dim
        localUpToLayer = local
        globalPool = pool
        grid = (size / patch, size / patch)
        _patchEmbed.wrappedValue = PatchEmbed(patchSize: patch, inChannels: c.inChans, embedDim: dim)
        _clsToken.wrappedValue = Init.truncatedNormal([1, 1, dim], std: 0.02)
        _posEmbed.wrappedValue = (c.usePosEmbed) ? Init.truncatedNormal([1, grid.0 * grid.1, dim], std: 0.02) : nil
        _posDrop.wrappedValue = Dropout(Float(c.posDropRate))
        let rates = dropPathRates(Float(c.dropPathRate), count: depth)
        let g = grid
        _blocks.wrappedValue = (0..<depth).map { i in
            ConViTBlock(dim: dim, heads: heads, mlpRatio: c.mlpRatio, qkvBias: c.qkvBias,
                        projDrop: Float(c.projDropRate), attnDrop: Float(c.attnDropRate),
                        dropPath: rates[i], eps: eps,
                        gpsaGrid: i < local ? g : nil, localityStrength: Float(c.localityStrength))
        }
        _norm.wrappedValue = LayerNorm(dim, eps: eps)
        _headDrop.wrappedValue = Dropout(Float(c.dropRate))
        let classes = c.numClasses
        _head.wrappedValue = ConViT.makeHead(dim, classes)
        super.init()
        // timm's _init_weights for the MLPs and the MHSA layers (GPSA initialises itself).
        for block in blocks where !block.usesGPSA {
            if let a = block.attn as? Attention { ConViT.truncInit([a.qkv, a.proj]) }
        }
        for block in blocks { ConViT.truncInit([block.mlp.fc1, block.mlp.fc2]) }
        let withClass = AttentionMap.gridPositions(height: grid.0, width: grid.1, prefixTokens: 1)
        for block in blocks { (block.attn as? Attention)?.tokenPositions = withClass }
    }

    static func makeHead(_ dim: Int, _ classes: Int) -> Module {
        guard classes > 0 else { return Identity() }
        let l = Linear(dim, classes)
        truncInit([l])
        return l
    }

    static func truncInit(_ layers: [Linear]) {
        for l in layers {
            l.weight = Init.truncatedNormal(l.weight.shape, std: 0.02)
            if let b = l.bias { l.bias = Tensor.zeros(b.shape) }
        }
    }

    /// Patch tokens with the position embedding, before the blocks.
    func embed(_ x: Tensor) -> Tensor {
        let (patches, g) = patchEmbed.tokens(x)
        guard g == grid else {
            fail("ConViT", "input \(x.shape) gives a \(g.0)x\(g.1) patch grid; the model was built for \(grid.0)x\(grid.1)")
        }
        return posDrop(posEmbed.map { patches + $0 } ?? patches)
    }

    /// The class token in front of the tokens (before block `local_up_to_layer`).
    func prependClassToken(_ x: Tensor) -> Tensor {
        concat([clsToken.expanded(to: [x.shape[0], 1, embedDim]), x], axis: 1)
    }

    public func forwardFeatures(_ x: Tensor) -> Tensor {
        var h = embed(x)
        for (i, block) in blocks.enumerated() {
            if i == localUpToLayer { h = prependClassToken(h) }
            h = block(h)
        }
        return norm(h)
    }

    /// timm's forward_head: "token" reads token 0, "avg" averages the tokens after the
    /// first (timm counts one prefix token even when local_up_to_layer ≥ depth never adds it).
    public func forwardHead(_ features: Tensor, preLogits: Bool) -> Tensor {
        var pooled: Tensor
        switch globalPool {
        case "avg": pooled = features.sliced(axis: 1, start: 1).mean(alongAxes: [1])
        case "token": pooled = features.selecting(axis: 1, index: 0)
        default: pooled = features
        }
        pooled = headDrop(pooled)
        return preLogits ? pooled : head(pooled)
    }

    /// "patch_embed" (tokens with the position embedding), then every block's tokens
    /// "blocks.{i}" (with the class token in front from block `local_up_to_layer` on).
    public func forwardIntermediates(_ x: Tensor) -> [(name: String, value: Tensor)] {
        var h = embed(x)
        var out: [(String, Tensor)] = [("patch_embed", h)]
        for (i, block) in blocks.enumerated() {
            if i == localUpToLayer { h = prependClassToken(h) }
            h = block(h)
            out.append(("blocks.\(i)", h))
        }
        return out
    }

    public func resetClassifier(numClasses: Int) { head = ConViT.makeHead(embedDim, numClasses) }

    public override func callAsFunction(_ x: Tensor) -> Tensor { logits(x) }

    /// Resamples a checkpoint's position embedding (patches only, no class entry) to this grid.
    public func checkpointFilter(_ stateDict: [String: Tensor]) -> [String: Tensor] {
        var dict = stateDict
        if let pe = dict["pos_embed"], let own = posEmbed, pe.shape != own.shape, pe.rank == 3 {
            dict["pos_embed"] = VisionTransformer.resamplePositionEmbedding(pe, to: grid, prefixTokens: 0)
        }
        return dict
    }
}

extension ConViT {
    @Sendable static func build(_ config: JSONValue) throws -> ImageClassifier { try ConViT(config.decode(ConViTConfig.self)) }

    /// A timm entrypoint: `model_args` as `convit.py` registers it (`embed_dim` is per head there).
    static func variant(_ name: String, _ arguments: [String: JSONValue]) -> ModelVariant {
        ModelVariant(name, family: "convit", inputSize: 224, arguments: arguments, build: build)
    }

    public static let family = ModelFamily(
        name: "convit", reference: "timm 1.0.31 timm.models.convit.ConVit",
        variants: [
            variant("convit_tiny", ["local_up_to_layer": 10, "locality_strength": 1.0, "embed_dim": 48, "num_heads": 4]),
            variant("convit_small", ["local_up_to_layer": 10, "locality_strength": 1.0, "embed_dim": 48, "num_heads": 9]),
            variant("convit_base", ["local_up_to_layer": 10, "locality_strength": 1.0, "embed_dim": 48, "num_heads": 16]),
            // For 32x32: 4x4 patches (8x8 tokens), width 4·32 = 128, four GPSA blocks then two MHSA blocks.
            ModelVariant("convit_nano", family: "convit", inputSize: 32) { classes in
                try ConViT(ConViTConfig(imgSize: 32, patchSize: 4, embedDim: 32, depth: 6, numHeads: 4, localUpToLayer: 4,
                                        numClasses: classes))
            },
        ],
        build: build)
}
