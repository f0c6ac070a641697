import Foundation
import Patchwork
import PatchworkNN

// CeiT, "Incorporating Convolution Designs into Visual Transformers" (Yuan et al. 2021),
// as the authors' coeusguo/ceit `ceit_model.py` (CeIT) at 44c16d3.
// Stem → blocks → model → checkpoint filter → named variants.
//
// Image-to-Tokens (I2T): a k×k/s conv without bias → BN → 3x3/s2/p1 max-pool, then a conv
// with kernel = stride = patch_size makes the tokens. The blocks are pre-norm attention
// plus a locally-enhanced feed-forward (LeFF): the patch tokens go back to their grid for
// 1x1 conv → BN → GELU → depthwise k×k → BN → GELU → 1x1 conv → BN, while the class token
// bypasses it (so the residual adds norm2(x) to the class token). Every block's output
// class token is stacked with a per-layer position embedding, and a layer-wise class-token
// attention block (LCA) attends from the last one over all of them. Only that token reaches
// the head, so the last block's LeFF gets exactly zero gradients.

/// The authors' Image2Tokens: `conv` (k×k, stride s, pad k//2, no bias) → `bn` → 3x3/s2/p1 max-pool.
public final class CeiTImage2Tokens: Module {
    @Child(key: "conv") public var conv: Conv2d
    @Child(key: "bn") public var bn: BatchNorm
    public let kernelSize: Int
    public let stride: Int

    init(inChannels: Int, outChannels: Int, kernelSize: Int, stride: Int) {
        _conv.wrappedValue = Conv2d(inChannels, outChannels, kernelSize: kernelSize, stride: stride, padding: kernelSize / 2, bias: false)
        _bn.wrappedValue = BatchNorm(outChannels)
        self.kernelSize = kernelSize
        self.stride = stride
    }

    public var outChannels: Int { conv.outChannels }

    /// The map's side for an input side (conv, then the max-pool; floors as torch).
    public func featureSide(_ side: Int) -> Int {
        let c = (side + 2 * (kernelSize / 2) - kernelSize) / stride + 1
        return c < 1 ? 0 : (c + 2 - 3) / 2 + 1
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        maxPool2d(bn(conv(x)), kernel: (3, 3), stride: (2, 2), padding: (1, 1))
    }
}

/// The authors' HybridEmbed around Image2Tokens: `backbone`, then `proj`, a conv with
/// kernel = stride = patch_size (with bias) → tokens [B, h·w, D].
public final class CeiTImageEmbed: Module {
    @Child(key: "backbone") public var backbone: CeiTImage2Tokens
    @Child(key: "proj") public var proj: Conv2d
    public let grid: (Int, Int)

    init(backbone: CeiTImage2Tokens, imgSize: Int, patchSize: Int, embedDim: Int) throws {
        let feature = backbone.featureSide(imgSize)
        guard patchSize > 0, feature >= patchSize else {
            throw ModelError("ceit: the Image2Tokens map of \(imgSize)x\(imgSize) images is \(feature)x\(feature), smaller than patch_size \(patchSize)")
        }
        _backbone.wrappedValue = backbone
        _proj.wrappedValue = Conv2d(backbone.outChannels, embedDim, kernelSize: patchSize, stride: patchSize, bias: true)
        grid = (feature / patchSize, feature / patchSize)
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        let y = proj(backbone(x))
        return y.reshaped([y.shape[0], y.shape[1] * y.shape[2], y.shape[3]])
    }
}

/// The authors' Attention (fused `qkv`, `proj`; scale qk_scale or head_dim^-0.5). With
/// `lastQueryOnly` it is their AttentionLCA: the query comes from the last token only
/// (rows [0, D) of the fused weight), keys and values from every token (rows [D, 3D)),
/// and the output is that one token [B, 1, D].
public final class CeiTAttention: Module, AttentionRecording {
    @Child(key: "qkv") public var qkv: Linear
    @Child(key: "attn_drop") var attnDrop: Dropout
    @Child(key: "proj") public var proj: Linear
    @Child(key: "proj_drop") var projDrop: Dropout
    public let heads: Int
    public let scale: Float
    public let lastQueryOnly: Bool
    public let recorder = AttentionRecorder()
    /// Where the queries and keys sit in the image ([N, 2], NaN for class tokens); set by the model.
    public var queryPositions: Tensor?
    public var keyPositions: Tensor?

    init(_ dim: Int, heads: Int, qkvBias: Bool, qkScale: Float?, attnDrop: Float, projDrop: Float, lastQueryOnly: Bool) {
        require(dim % heads == 0, "CeiTAttention", "dim \(dim) is not divisible by \(heads) heads")
        _qkv.wrappedValue = Linear(dim, 3 * dim, bias: qkvBias)
        _attnDrop.wrappedValue = Dropout(attnDrop)
        _proj.wrappedValue = Linear(dim, dim)
        _projDrop.wrappedValue = Dropout(projDrop)
        self.heads = heads
        scale = qkScale ?? 1 / Float(dim / heads).squareRoot()
        self.lastQueryOnly = lastQueryOnly
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor { forward(x).output }

    /// x [B, N, D] → (output [B, N, D], or [B, 1, D] for LCA; probabilities [B, heads, Nq, N] when asked for).
    public func forward(_ x: Tensor, returnAttention: Bool = false) -> (output: Tensor, attention: Tensor?) {
        let b = x.shape[0], n = x.shape[1], d = x.shape[2], hd = d / heads
        let q, k, v: Tensor
        if lastQueryOnly {
            let w = qkv.weight, bias = qkv.bias
            let last = x.sliced(axis: 1, start: n - 1)
            q = linear(last, weight: w.sliced(axis: 0, start: 0, end: d), bias: bias?.sliced(axis: 0, start: 0, end: d))
                .reshaped([b, 1, heads, hd]).permuted([0, 2, 1, 3])
            let kv = linear(x, weight: w.sliced(axis: 0, start: d), bias: bias?.sliced(axis: 0, start: d))
                .reshaped([b, n, 2, heads, hd]).permuted([2, 0, 3, 1, 4]).unbound(axis: 0)
            k = kv[0]; v = kv[1]
        } else {
            let t = qkv(x).reshaped([b, n, 3, heads, hd]).permuted([2, 0, 3, 1, 4]).unbound(axis: 0)
            q = t[0]; k = t[1]; v = t[2]
        }
        let (mixed, probabilities) = scaledDotProductAttention(
            q: q, k: k, v: v, scale: scale, dropout: attnDrop, recorder: recorder,
            queryPositions: queryPositions, keyPositions: keyPositions)
        return (projDrop(proj(mixed)), returnAttention ? probabilities : nil)
    }
}

/// The authors' LocallyEnhancedFeedForward on tokens [B, 1 + h·w, D]: the class token
/// passes through unchanged; the patch tokens, as their h×w grid, go through `conv1`
/// (1x1) → `bn1` → GELU → `conv2` (depthwise k×k) → `bn2` → GELU → `conv3` (1x1) → `bn3`
/// (without the BNs when `with_bn` is false).
public final class LocallyEnhancedFeedForward: Module {
    @Child(key: "conv1") public var conv1: Conv2d
    @Child(key: "conv2") public var conv2: Conv2d
    @Child(key: "conv3") public var conv3: Conv2d
    @Child(key: "bn1") public var bn1: BatchNorm?
    @Child(key: "bn2") public var bn2: BatchNorm?
    @Child(key: "bn3") public var bn3: BatchNorm?

    init(_ dim: Int, hidden: Int, kernelSize: Int, withBN: Bool) {
        _conv1.wrappedValue = Conv2d(dim, hidden, kernelSize: 1)
        _conv2.wrappedValue = Conv2d(hidden, hidden, kernelSize: kernelSize, padding: (kernelSize - 1) / 2, groups: hidden)
        _conv3.wrappedValue = Conv2d(hidden, dim, kernelSize: 1)
        _bn1.wrappedValue = withBN ? BatchNorm(hidden) : nil
        _bn2.wrappedValue = withBN ? BatchNorm(hidden) : nil
        _bn3.wrappedValue = withBN ? BatchNorm(dim) : nil
    }

    /// The patch map [B, h, w, D] through the convolutions.
    func local(_ map: Tensor) -> Tensor {
        func norm(_ bn: BatchNorm?, _ t: Tensor) -> Tensor { bn.map { $0(t) } ?? t }
        let h = norm(bn1, conv1(map)).gelu()
        let g = norm(bn2, conv2(h)).gelu()
        return norm(bn3, conv3(g))
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        let b = x.shape[0], n = x.shape[1], d = x.shape[2]
        let side = Int(Double(n - 1).squareRoot())
        guard side * side == n - 1 else { fail("LocallyEnhancedFeedForward", "\(n - 1) patch tokens are not a square grid") }
        let parts = x.split(sizes: [1, n - 1], axis: 1)
        // Channels-last: the tokens already are the h×w map in memory order.
        let out = local(parts[1].reshaped([b, side, side, d])).reshaped([b, n - 1, d])
        return concat([parts[0], out], axis: 1)
    }
}

/// The authors' Block with feedforward_type "leff": x + attn(norm1 x), then x + leff(norm2 x).
public final class CeiTBlock: Module {
    @Child(key: "drop_path") var dropPath: DropPath
    @Child(key: "norm2") public var norm2: LayerNorm
    @Child(key: "norm1") public var norm1: LayerNorm
    @Child(key: "attn") public var attn: CeiTAttention
    @Child(key: "leff") public var leff: LocallyEnhancedFeedForward

    init(dim: Int, heads: Int, mlpRatio: Double, qkvBias: Bool, qkScale: Float?, drop: Float, attnDrop: Float,
         dropPath: Float, eps: Float, kernelSize: Int, withBN: Bool) {
        _dropPath.wrappedValue = DropPath(dropPath)
        _norm2.wrappedValue = LayerNorm(dim, eps: eps)
        _norm1.wrappedValue = LayerNorm(dim, eps: eps)
        _attn.wrappedValue = CeiTAttention(dim, heads: heads, qkvBias: qkvBias, qkScale: qkScale, attnDrop: attnDrop, projDrop: drop,
                             lastQueryOnly: false)
        _leff.wrappedValue = LocallyEnhancedFeedForward(dim, hidden: Int(Double(dim) * mlpRatio), kernelSize: kernelSize, withBN: withBN)
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor { forward(x).tokens! }

    /// The block's tokens and its output class token [B, D]. With `needTokens` false (only
    /// in evaluation mode, where the LeFF changes no state) the patch tokens' LeFF is
    /// skipped: the class token's LeFF output is norm2 of itself.
    func forward(_ x: Tensor, needTokens: Bool = true) -> (tokens: Tensor?, cls: Tensor) {
        let h = x + dropPath(attn(norm1(x)))
        if !needTokens && !training {
            let c = h.selecting(axis: 1, index: 0)
            return (nil, c + norm2(c))
        }
        let y = h + dropPath(leff(norm2(h)))
        return (y, y.selecting(axis: 1, index: 0))
    }
}

/// The authors' Block with feedforward_type "lca": from the stacked class tokens
/// [B, depth, D], last + attn(norm1 x) with the query from the last token, then
/// x + feedforward(norm2 x) (fc1 → GELU → fc2) → [B, 1, D].
public final class CeiTLCABlock: Module {
    @Child(key: "norm2") public var norm2: LayerNorm
    @Child(key: "norm1") public var norm1: LayerNorm
    @Child(key: "attn") public var attn: CeiTAttention
    @Child(key: "feedforward") public var feedforward: MLP

    init(dim: Int, heads: Int, mlpRatio: Double, qkvBias: Bool, qkScale: Float?, drop: Float, attnDrop: Float, eps: Float) {
        _norm2.wrappedValue = LayerNorm(dim, eps: eps)
        _norm1.wrappedValue = LayerNorm(dim, eps: eps)
        _attn.wrappedValue = CeiTAttention(dim, heads: heads, qkvBias: qkvBias, qkScale: qkScale, attnDrop: attnDrop, projDrop: drop,
                             lastQueryOnly: true)
        _feedforward.wrappedValue = MLP(dim, hidden: Int(Double(dim) * mlpRatio), activation: .gelu, dropout: drop)
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        let last = x.sliced(axis: 1, start: x.shape[1] - 1)
        let h = last + attn(norm1(x))
        return h + feedforward(norm2(h))
    }
}

/// The config of the authors' `CeIT(...)`, under its argument names. `hybrid_backbone`
/// must be their Image2Tokens (tagged `{"$type": "module", "name": "ceit_model.Image2Tokens",
/// "kwargs": {...}}`); `norm_layer` a LayerNorm (or a partial of one with `eps`).
public struct CeiTConfig: Codable, Sendable {
    public var imgSize: Int = 224
    public var patchSize: Int = 16
    public var inChans: Int = 3
    public var numClasses: Int = 1000
    public var embedDim: Int = 768
    public var depth: Int = 12
    public var numHeads: Int = 12
    public var mlpRatio: Double = 4
    public var qkvBias: Bool = false
    public var qkScale: Double?
    public var dropRate: Double = 0
    public var attnDropRate: Double = 0
    public var dropPathRate: Double = 0
    public var hybridBackbone: ReferenceCallable?
    public var normLayer: ReferenceCallable?
    public var leffLocalSize: Int = 3
    public var leffWithBn: Bool = true

    /// As the authors' ceit_* factories: Image2Tokens(in_chans, stemChannels, stemKernel, stemStride),
    /// LayerNorm eps 1e-6, qkv bias.
    public init(imgSize: Int = 224, patchSize: Int = 4, embedDim: Int, depth: Int = 12, numHeads: Int, mlpRatio: Double = 4,
                numClasses: Int = 1000, stemChannels: Int = 64, stemKernel: Int = 7, stemStride: Int = 2,
                leffLocalSize: Int = 3, leffWithBn: Bool = true) {
        self.imgSize = imgSize; self.patchSize = patchSize; self.inChans = 3; self.embedDim = embedDim; self.depth = depth
        self.numHeads = numHeads; self.mlpRatio = mlpRatio; self.qkvBias = true; self.numClasses = numClasses
        self.leffLocalSize = leffLocalSize; self.leffWithBn = leffWithBn
        hybridBackbone = ReferenceCallable(type: "module", name: "ceit_model.Image2Tokens",
                                           kwargs: ["in_chans": .number(3), "out_chans": .number(Double(stemChannels)),
                                                    "kernel_size": .number(Double(stemKernel)), "stride": .number(Double(stemStride))])
        normLayer = ReferenceCallable(type: "partial", name: "torch.nn.LayerNorm", kwargs: ["eps": .number(1e-6)])
    }

    /// Absent (or null) arguments keep the reference's defaults above.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        imgSize = try c.value(.imgSize, imgSize)
        patchSize = try c.value(.patchSize, patchSize)
        inChans = try c.value(.inChans, inChans)
        numClasses = try c.value(.numClasses, numClasses)
        embedDim = try c.value(.embedDim, embedDim)
        depth = try c.value(.depth, depth)
        numHeads = try c.value(.numHeads, numHeads)
        mlpRatio = try c.value(.mlpRatio, mlpRatio)
        qkvBias = try c.value(.qkvBias, qkvBias)
        qkScale = try c.decodeIfPresent(Double.self, forKey: .qkScale)
        dropRate = try c.value(.dropRate, dropRate)
        attnDropRate = try c.value(.attnDropRate, attnDropRate)
        dropPathRate = try c.value(.dropPathRate, dropPathRate)
        hybridBackbone = try c.decodeIfPresent(ReferenceCallable.self, forKey: .hybridBackbone)
        normLayer = try c.decodeIfPresent(ReferenceCallable.self, forKey: .normLayer)
        leffLocalSize = try c.value(.leffLocalSize, leffLocalSize)
        leffWithBn = try c.value(.leffWithBn, leffWithBn)
    }
}

extension CeiTConfig: ModelConfig {
    public func validate() throws {
        let check = ConfigCheck(family: "ceit")
        try check.size(imgSize, "img_size")
        try check.size(patchSize, "patch_size")
        try check.width(inChans, "in_chans")
        try check.classes(numClasses)
        try check.width(embedDim, "embed_dim")
        try check.depth(depth, "depth", minimum: 1)
        try check.heads(numHeads, "num_heads", divide: embedDim, "embed_dim")
        try check.positive(mlpRatio, "mlp_ratio")
        try check.size(leffLocalSize, "leff_local_size")
        if let v = qkScale { try check.finite(v, "qk_scale") }
        try check.rates([(dropRate, "drop_rate"), (attnDropRate, "attn_drop_rate"), (dropPathRate, "drop_path_rate")])
        let tokens = (imgSize / patchSize) * (imgSize / patchSize) + 1
        let estimate = ConfigCheck.transformer(width: embedDim, depth: depth, mlpRatio: mlpRatio)
            + Double(depth) * Double(embedDim) * mlpRatio * Double(leffLocalSize * leffLocalSize)
            + ConfigCheck.table(tokens, embedDim) + ConfigCheck.table(embedDim, numClasses)
        try check.parameters(estimate, "embed_dim, depth, mlp_ratio, leff_local_size, img_size / patch_size, num_classes")
    }
    public var expectedInput: ExpectedInput { ExpectedInput(channels: inChans, side: imgSize) }
    public var classCount: Int { numClasses }
}

/// The authors' CeIT: I2T tokens + class token + position embedding → LeFF blocks →
/// stacked class tokens + pos_layer_embed → LCA → LayerNorm → head.
public final class CeiT: Module, ImageClassifier {
    @Child(key: "i2t") public var i2t: CeiTImageEmbed
    @Parameter(key: "cls_token") var clsToken: Tensor
    @Parameter(key: "pos_embed") var posEmbed: Tensor
    @Child(key: "pos_drop") var posDrop: Dropout
    @Child(key: "blocks") public var blocks: [CeiTBlock]
    @Child(key: "lca") public var lca: CeiTLCABlock
    @Parameter(key: "pos_layer_embed") var posLayerEmbed: Tensor
    @Child(key: "norm") var norm: LayerNorm
    @Child(key: "head") var head: Module
    public let embedDim: Int
    public var grid: (Int, Int) { i2t.grid }

    public init(_ c: CeiTConfig) throws {
        try c.validate()
        guard let hb = c.hybridBackbone else {
            throw ModelError("ceit: hybrid_backbone is required (the authors' CeIT asserts an nn.Module; their factories pass Image2Tokens)")
        }
        guard hb.shortName == "Image2Tokens" else { throw ModelError("ceit: hybrid_backbone \(hb.name) is not supported (Image2Tokens)") }
        func arg(_ key: String, _ fallback: Int) throws -> Int {
            let camel = key.split(separator: "_").enumerated().map { $0.offset == 0 ? String($0.element) : $0.element.capitalized }.joined()
            guard let v = hb.kwargs?[key] ?? hb.kwargs?[camel] else { return fallback }
            guard let i = v.int, i > 0 else { throw ModelError("ceit: Image2Tokens \(key) \(v) must be a positive integer") }
            return i
        }
        let inChans = c.inChans
        guard try arg("in_chans", inChans) == inChans else {
            throw ModelError("ceit: Image2Tokens in_chans differs from the model's in_chans \(inChans)")
        }
        let eps: Float
        if let nl = c.normLayer {
            guard nl.shortName == "LayerNorm" else { throw ModelError("ceit: norm_layer \(nl.name) is not supported (LayerNorm)") }
            eps = Float(nl.kwargs?["eps"]?.double ?? 1e-5)
        } else {
            eps = 1e-5  // torch.nn.LayerNorm
        }
        let dim = c.embedDim, heads = c.numHeads, depth = c.depth
        guard heads > 0, dim % heads == 0 else { throw ModelError("ceit: embed_dim \(dim) is not divisible by num_heads \(heads)") }
        guard depth > 0 else { throw ModelError("ceit: depth must be positive") }
        let kernel = c.leffLocalSize
        guard kernel > 0, kernel % 2 == 1 else { throw ModelError("ceit: leff_local_size \(kernel) must be odd (the LeFF keeps the grid)") }
        let stem = CeiTImage2Tokens(inChannels: inChans, outChannels: try arg("out_chans", 64),
                                    kernelSize: try arg("kernel_size", 7), stride: try arg("stride", 2))
        _i2t.wrappedValue = try CeiTImageEmbed(backbone: stem, imgSize: c.imgSize, patchSize: c.patchSize, embedDim: dim)
        embedDim = dim
        let tokens = _i2t.wrappedValue.grid.0 * _i2t.wrappedValue.grid.1
        _clsToken.wrappedValue = Init.truncatedNormal([1, 1, dim], std: 0.02)
        _posEmbed.wrappedValue = Init.truncatedNormal([1, tokens + 1, dim], std: 0.02)
        let drop = Float(c.dropRate), attnDrop = Float(c.attnDropRate)
        _posDrop.wrappedValue = Dropout(drop)
        // Python's `qk_scale or head_dim ** -0.5`.
        let qkScale = c.qkScale.flatMap { $0 != 0 ? Float($0) : nil }
        let rates = dropPathRates(Float(c.dropPathRate), count: depth)
        _blocks.wrappedValue = (0..<depth).map { i in
            CeiTBlock(dim: dim, heads: heads, mlpRatio: c.mlpRatio, qkvBias: c.qkvBias, qkScale: qkScale,
                      drop: drop, attnDrop: attnDrop, dropPath: rates[i],
                      eps: eps, kernelSize: kernel, withBN: c.leffWithBn)
        }
        _lca.wrappedValue = CeiTLCABlock(dim: dim, heads: heads, mlpRatio: c.mlpRatio, qkvBias: c.qkvBias, qkScale: qkScale,
                           drop: drop, attnDrop: attnDrop, eps: eps)
        _posLayerEmbed.wrappedValue = Tensor.zeros([1, depth, dim])
        _norm.wrappedValue = LayerNorm(dim, eps: eps)
        _head.wrappedValue = CeiT.makeHead(dim, c.numClasses)
        super.init()
        // The authors' _init_weights: truncated-normal(0.02) Linear weights, zero biases (convs keep torch's default).
        for (_, m) in namedModules() {
            if let l = m as? Linear { CeiT.truncInit(l) }
        }
        let positions = AttentionMap.gridPositions(height: i2t.grid.0, width: i2t.grid.1, prefixTokens: 1)
        for block in blocks { block.attn.queryPositions = positions; block.attn.keyPositions = positions }
        // The class tokens have no place in the image.
        lca.attn.queryPositions = Tensor([Float](repeating: .nan, count: 2), shape: [1, 2])
        lca.attn.keyPositions = Tensor([Float](repeating: .nan, count: 2 * depth), shape: [depth, 2])
    }

    static func truncInit(_ l: Linear) {
        l.weight = Init.truncatedNormal(l.weight.shape, std: 0.02)
        if let b = l.bias { l.bias = Tensor.zeros(b.shape) }
    }

    static func makeHead(_ dim: Int, _ classes: Int) -> Module {
        guard classes > 0 else { return Identity() }
        let l = Linear(dim, classes)
        truncInit(l)
        return l
    }

    /// Tokens [B, 1 + h·w, D] with the class token and position embedding.
    func embed(_ x: Tensor) -> Tensor {
        let patches = i2t(x)
        guard patches.shape[1] == posEmbed.shape[1] - 1 else {
            fail("CeiT", "input \(x.shape) gives \(patches.shape[1]) tokens; the model was built for a \(grid.0)x\(grid.1) grid")
        }
        let b = patches.shape[0]
        return posDrop(concat([clsToken.expanded(to: [b, 1, embedDim]), patches], axis: 1) + posEmbed)
    }

    /// The stacked class tokens [B, depth, D] (with pos_layer_embed) → LCA → [B, 1, D].
    func classAttention(_ classTokens: [Tensor]) -> Tensor {
        lca(stack(classTokens, axis: 1) + posLayerEmbed)
    }

    /// The LCA's output token after the final LayerNorm, [B, 1, D].
    public func forwardFeatures(_ x: Tensor) -> Tensor {
        var h = embed(x)
        var classTokens: [Tensor] = []
        for (i, block) in blocks.enumerated() {
            let (y, cls) = block.forward(h, needTokens: i < blocks.count - 1)
            if let y { h = y }
            classTokens.append(cls)
        }
        return norm(classAttention(classTokens))
    }

    public func forwardHead(_ features: Tensor, preLogits: Bool) -> Tensor {
        let pooled = features.rank == 3 ? features.reshaped([features.shape[0], features.shape[2]]) : features
        return preLogits ? pooled : head(pooled)
    }

    /// "i2t" (tokens with class token and position embedding), every block's tokens
    /// "blocks.{i}", then "lca" (its output token [B, 1, D], before the final norm).
    public func forwardIntermediates(_ x: Tensor) -> [(name: String, value: Tensor)] {
        var h = embed(x)
        var out: [(String, Tensor)] = [("i2t", h)]
        var classTokens: [Tensor] = []
        for (i, block) in blocks.enumerated() {
            let (y, cls) = block.forward(h)
            h = y!
            classTokens.append(cls)
            out.append(("blocks.\(i)", h))
        }
        out.append(("lca", classAttention(classTokens)))
        return out
    }

    public func resetClassifier(numClasses: Int) { head = CeiT.makeHead(embedDim, numClasses) }

    public override func callAsFunction(_ x: Tensor) -> Tensor { logits(x) }
}

extension CeiT {
    @Sendable static func build(_ config: JSONValue) throws -> ImageClassifier { try CeiT(config.decode(CeiTConfig.self)) }

    /// One of the authors' `ceit_*` factories: `CeIT(hybrid_backbone=Image2Tokens(), patch_size=4, embed_dim, depth=12,
    /// num_heads, mlp_ratio=4, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6))`.
    static func variant(_ name: String, embedDim: Int, numHeads: Int) -> ModelVariant {
        let image2Tokens: JSONValue = ["$type": "module", "name": "ceit_model.Image2Tokens",
                                       "kwargs": ["in_chans": 3, "out_chans": 64, "kernel_size": 7, "stride": 2]]
        let arguments: [String: JSONValue] = [
            "hybrid_backbone": image2Tokens, "patch_size": 4, "embed_dim": .number(Double(embedDim)), "depth": 12,
            "num_heads": .number(Double(numHeads)), "mlp_ratio": 4, "qkv_bias": true,
            "norm_layer": .partial("torch.nn.LayerNorm", ["eps": 1e-6])]
        return ModelVariant(name, family: "ceit", inputSize: 224, arguments: arguments, build: build)
    }

    public static let family = ModelFamily(
        name: "ceit", reference: "github coeusguo/ceit@44c16d3 ceit_model.py CeIT",
        variants: [
            variant("ceit_tiny", embedDim: 192, numHeads: 3),
            variant("ceit_small", embedDim: 384, numHeads: 6),
            variant("ceit_base", embedDim: 768, numHeads: 12),
            // For 32x32: a 3x3/s1 I2T conv (32 channels) and the max-pool give 16x16, 2x2 patches
            // give 8x8 tokens of width 128; six blocks.
            ModelVariant("ceit_nano", family: "ceit", inputSize: 32) { classes in
                try CeiT(CeiTConfig(imgSize: 32, patchSize: 2, embedDim: 128, depth: 6, numHeads: 4, numClasses: classes,
                                    stemChannels: 32, stemKernel: 3, stemStride: 1))
            },
        ],
        build: build)
}
