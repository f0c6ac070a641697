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
    public let conv: Conv2d
    public let bn: BatchNorm
    public let kernelSize: Int
    public let stride: Int

    init(inChannels: Int, outChannels: Int, kernelSize: Int, stride: Int) {
        conv = Conv2d(inChannels, outChannels, kernelSize: kernelSize, stride: stride, padding: kernelSize / 2, bias: false)
        bn = BatchNorm(outChannels)
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
    public let backbone: CeiTImage2Tokens
    public let proj: Conv2d
    public let grid: (Int, Int)

    init(backbone: CeiTImage2Tokens, imgSize: Int, patchSize: Int, embedDim: Int) throws {
        let feature = backbone.featureSide(imgSize)
        guard patchSize > 0, feature >= patchSize else {
            throw ModelError("ceit: the Image2Tokens map of \(imgSize)x\(imgSize) images is \(feature)x\(feature), smaller than patch_size \(patchSize)")
        }
        self.backbone = backbone
        proj = Conv2d(backbone.outChannels, embedDim, kernelSize: patchSize, stride: patchSize, bias: true)
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
    public let qkv: Linear
    let attnDrop: Dropout
    public let proj: Linear
    let projDrop: Dropout
    public let heads: Int
    public let scale: Float
    public let lastQueryOnly: Bool
    public var recordsAttention = false
    public private(set) var lastAttention: Tensor?
    /// Where the queries and keys sit in the image ([N, 2], NaN for class tokens); set by the model.
    public var queryPositions: Tensor?
    public var keyPositions: Tensor?
    public var lastAttentionMap: AttentionMap? {
        lastAttention.map { AttentionMap(probabilities: $0, queryPositions: queryPositions, keyPositions: keyPositions) }
    }

    init(_ dim: Int, heads: Int, qkvBias: Bool, qkScale: Float?, attnDrop: Float, projDrop: Float, lastQueryOnly: Bool) {
        require(dim % heads == 0, "CeiTAttention", "dim \(dim) is not divisible by \(heads) heads")
        qkv = Linear(dim, 3 * dim, bias: qkvBias)
        self.attnDrop = Dropout(attnDrop)
        proj = Linear(dim, dim)
        self.projDrop = Dropout(projDrop)
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
                .reshaped([b, n, 2, heads, hd]).permuted([2, 0, 3, 1, 4])
            k = kv.selecting(axis: 0, index: 0); v = kv.selecting(axis: 0, index: 1)
        } else {
            let t = qkv(x).reshaped([b, n, 3, heads, hd]).permuted([2, 0, 3, 1, 4])
            q = t.selecting(axis: 0, index: 0); k = t.selecting(axis: 0, index: 1); v = t.selecting(axis: 0, index: 2)
        }
        let probabilities = matmul(q, k.transposed()).softmax(scale: scale)
        if recordsAttention { lastAttention = probabilities.detached() }
        let nq = q.shape[2]
        let mixed = matmul(attnDrop(probabilities), v).permuted([0, 2, 1, 3]).reshaped([b, nq, d])
        return (projDrop(proj(mixed)), returnAttention ? probabilities : nil)
    }
}

/// The authors' LocallyEnhancedFeedForward on tokens [B, 1 + h·w, D]: the class token
/// passes through unchanged; the patch tokens, as their h×w grid, go through `conv1`
/// (1x1) → `bn1` → GELU → `conv2` (depthwise k×k) → `bn2` → GELU → `conv3` (1x1) → `bn3`
/// (without the BNs when `with_bn` is false).
public final class LocallyEnhancedFeedForward: Module {
    public let conv1: Conv2d
    public let conv2: Conv2d
    public let conv3: Conv2d
    public let bn1: BatchNorm?
    public let bn2: BatchNorm?
    public let bn3: BatchNorm?

    init(_ dim: Int, hidden: Int, kernelSize: Int, withBN: Bool) {
        conv1 = Conv2d(dim, hidden, kernelSize: 1)
        conv2 = Conv2d(hidden, hidden, kernelSize: kernelSize, padding: (kernelSize - 1) / 2, groups: hidden)
        conv3 = Conv2d(hidden, dim, kernelSize: 1)
        bn1 = withBN ? BatchNorm(hidden) : nil
        bn2 = withBN ? BatchNorm(hidden) : nil
        bn3 = withBN ? BatchNorm(dim) : nil
    }

    public override func namedChildren() -> [(String, Module)] {
        var out: [(String, Module)] = [("conv1", conv1), ("conv2", conv2), ("conv3", conv3)]
        for (k, bn) in [("bn1", bn1), ("bn2", bn2), ("bn3", bn3)] { if let bn { out.append((k, bn)) } }
        return out
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
    let dropPath: DropPath
    public let norm2: LayerNorm
    public let norm1: LayerNorm
    public let attn: CeiTAttention
    public let leff: LocallyEnhancedFeedForward

    init(dim: Int, heads: Int, mlpRatio: Double, qkvBias: Bool, qkScale: Float?, drop: Float, attnDrop: Float,
         dropPath: Float, eps: Float, kernelSize: Int, withBN: Bool) {
        self.dropPath = DropPath(dropPath)
        norm2 = LayerNorm(dim, eps: eps)
        norm1 = LayerNorm(dim, eps: eps)
        attn = CeiTAttention(dim, heads: heads, qkvBias: qkvBias, qkScale: qkScale, attnDrop: attnDrop, projDrop: drop,
                             lastQueryOnly: false)
        leff = LocallyEnhancedFeedForward(dim, hidden: Int(Double(dim) * mlpRatio), kernelSize: kernelSize, withBN: withBN)
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
    public let norm2: LayerNorm
    public let norm1: LayerNorm
    public let attn: CeiTAttention
    public let feedforward: MLP

    init(dim: Int, heads: Int, mlpRatio: Double, qkvBias: Bool, qkScale: Float?, drop: Float, attnDrop: Float, eps: Float) {
        norm2 = LayerNorm(dim, eps: eps)
        norm1 = LayerNorm(dim, eps: eps)
        attn = CeiTAttention(dim, heads: heads, qkvBias: qkvBias, qkScale: qkScale, attnDrop: attnDrop, projDrop: drop,
                             lastQueryOnly: true)
        feedforward = MLP(dim, hidden: Int(Double(dim) * mlpRatio), activation: .gelu, dropout: drop)
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
    public var imgSize: Int?
    public var patchSize: Int?
    public var inChans: Int?
    public var numClasses: Int?
    public var embedDim: Int?
    public var depth: Int?
    public var numHeads: Int?
    public var mlpRatio: Double?
    public var qkvBias: Bool?
    public var qkScale: Double?
    public var dropRate: Double?
    public var attnDropRate: Double?
    public var dropPathRate: Double?
    public var hybridBackbone: ReferenceCallable?
    public var normLayer: ReferenceCallable?
    public var leffLocalSize: Int?
    public var leffWithBn: Bool?

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
}

/// The authors' CeIT: I2T tokens + class token + position embedding → LeFF blocks →
/// stacked class tokens + pos_layer_embed → LCA → LayerNorm → head.
public final class CeiT: Module, ImageClassifier {
    public let i2t: CeiTImageEmbed
    @Parameter var clsToken: Tensor
    @Parameter var posEmbed: Tensor
    let posDrop: Dropout
    public let blocks: [CeiTBlock]
    public let lca: CeiTLCABlock
    @Parameter var posLayerEmbed: Tensor
    let norm: LayerNorm
    var head: Module
    public let embedDim: Int
    public var grid: (Int, Int) { i2t.grid }

    public init(_ c: CeiTConfig) throws {
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
        let inChans = c.inChans ?? 3
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
        let dim = c.embedDim ?? 768, heads = c.numHeads ?? 12, depth = c.depth ?? 12
        guard heads > 0, dim % heads == 0 else { throw ModelError("ceit: embed_dim \(dim) is not divisible by num_heads \(heads)") }
        guard depth > 0 else { throw ModelError("ceit: depth must be positive") }
        let kernel = c.leffLocalSize ?? 3
        guard kernel > 0, kernel % 2 == 1 else { throw ModelError("ceit: leff_local_size \(kernel) must be odd (the LeFF keeps the grid)") }
        let stem = CeiTImage2Tokens(inChannels: inChans, outChannels: try arg("out_chans", 64),
                                    kernelSize: try arg("kernel_size", 7), stride: try arg("stride", 2))
        i2t = try CeiTImageEmbed(backbone: stem, imgSize: c.imgSize ?? 224, patchSize: c.patchSize ?? 16, embedDim: dim)
        embedDim = dim
        let tokens = i2t.grid.0 * i2t.grid.1
        clsToken = Init.truncatedNormal([1, 1, dim], std: 0.02)
        posEmbed = Init.truncatedNormal([1, tokens + 1, dim], std: 0.02)
        let drop = Float(c.dropRate ?? 0), attnDrop = Float(c.attnDropRate ?? 0)
        posDrop = Dropout(drop)
        // Python's `qk_scale or head_dim ** -0.5`.
        let qkScale = c.qkScale.flatMap { $0 != 0 ? Float($0) : nil }
        let rates = dropPathRates(Float(c.dropPathRate ?? 0), count: depth)
        blocks = (0..<depth).map { i in
            CeiTBlock(dim: dim, heads: heads, mlpRatio: c.mlpRatio ?? 4, qkvBias: c.qkvBias ?? false, qkScale: qkScale,
                      drop: drop, attnDrop: attnDrop, dropPath: rates[i],
                      eps: eps, kernelSize: kernel, withBN: c.leffWithBn ?? true)
        }
        lca = CeiTLCABlock(dim: dim, heads: heads, mlpRatio: c.mlpRatio ?? 4, qkvBias: c.qkvBias ?? false, qkScale: qkScale,
                           drop: drop, attnDrop: attnDrop, eps: eps)
        posLayerEmbed = Tensor.zeros([1, depth, dim])
        norm = LayerNorm(dim, eps: eps)
        head = CeiT.makeHead(dim, c.numClasses ?? 1000)
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
    static func variant(_ name: String, dim: Int, heads: Int) -> ModelVariant {
        ModelVariant(name, family: "ceit", inputSize: 224) { classes in
            try CeiT(CeiTConfig(embedDim: dim, numHeads: heads, numClasses: classes))
        }
    }

    public static let family = ModelFamily(
        name: "ceit", reference: "github coeusguo/ceit@44c16d3 ceit_model.py CeIT",
        variants: [
            variant("ceit_tiny", dim: 192, heads: 3),
            variant("ceit_small", dim: 384, heads: 6),
            variant("ceit_base", dim: 768, heads: 12),
            // For 32x32: a 3x3/s1 I2T conv (32 channels) and the max-pool give 16x16, 2x2 patches
            // give 8x8 tokens of width 128; six blocks.
            ModelVariant("ceit_nano", family: "ceit", inputSize: 32) { classes in
                try CeiT(CeiTConfig(imgSize: 32, patchSize: 2, embedDim: 128, depth: 6, numHeads: 4, numClasses: classes,
                                    stemChannels: 32, stemKernel: 3, stemStride: 1))
            },
        ],
        build: { config in try CeiT(config.decode(CeiTConfig.self)) })
}
