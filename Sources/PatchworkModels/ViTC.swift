import Foundation
import Patchwork
import PatchworkNN

// pycls's ViT with a convolutional (or patchify) stem, "Early Convolutions Help
// Transformers See Better" (Xiao et al. 2021): facebookresearch/pycls
// pycls/models/vit.py. Blocks → model → checkpoint filter → named variants.
//
// pycls runs the encoder sequence-first (L, B, D) through torch.nn.MultiheadAttention;
// here tokens are batch-first [B, L, D] in memory. Only the position embedding's
// checkpoint shape (L, 1, D) shows the reference's layout, and it is kept as is.

/// ReLU as a named child (pycls's `cstem{i}_af`; it has no parameters, so no keys).
final class ViTCReLU: Module {
    override func callAsFunction(_ x: Tensor) -> Tensor { x.relu() }
}

/// pycls's ViTStemConv: every entry but the last is a 3x3 conv (the kernel list is
/// ignored there, as in pycls), pad 1, no bias, with its stride → BN → ReLU; the
/// last is a k×k conv (pad (k-1)/2) with bias. Keys `cstem{i}_conv`, `cstem{i}_bn`,
/// `cstem_last_conv`.
public final class ViTCConvStem: Module {
    @Child(key: "") var layers: [(String, Module)]

    init(inChannels: Int, kernels: [Int], dims: [Int], strides: [Int], bnEps: Float, bnMomentum: Float) {
        var layers: [(String, Module)] = []
        var width = inChannels
        for i in kernels.indices {
            let (k, out, stride) = (kernels[i], dims[i], strides[i])
            if i < kernels.count - 1 {
                layers.append(("cstem\(i)_conv", Conv2d(width, out, kernelSize: 3, stride: stride, padding: 1, bias: false)))
                layers.append(("cstem\(i)_bn", BatchNorm(out, eps: bnEps, momentum: bnMomentum)))
                layers.append(("cstem\(i)_af", ViTCReLU()))
            } else {
                layers.append(("cstem_last_conv", Conv2d(width, out, kernelSize: k, stride: stride, padding: (k - 1) / 2, bias: true)))
            }
            width = out
        }
        _layers.wrappedValue = layers
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor { layers.reduce(x) { $1.1($0) } }
}

/// pycls's ViTStemPatchify: one conv with kernel = stride = patch size, with bias (key `patchify`).
public final class ViTCPatchifyStem: Module {
    @Child(key: "patchify") public var patchify: Conv2d
    init(inChannels: Int, dim: Int, patchSize: Int) {
        _patchify.wrappedValue = Conv2d(inChannels, dim, kernelSize: patchSize, stride: patchSize, bias: true)
    }
    public override func callAsFunction(_ x: Tensor) -> Tensor { patchify(x) }
}

/// torch.nn.MultiheadAttention for self-attention (query = key = value), with the
/// fused input projection `in_proj_weight` [3D, D] / `in_proj_bias` [3D] (rows: q, k, v)
/// and `out_proj`. Scores are scaled by head_dim^-0.5.
///
/// `forward(_:returnAttention:)` also hands back the per-head attention probabilities
/// [B, heads, N, N] (torch averages them over heads by default; these are not averaged).
/// Setting `recordsAttention` keeps the last ones in `lastAttentionMap`.
public final class ViTCMultiheadAttention: Module, AttentionRecording {
    @Parameter(key: "in_proj_weight") public var inProjWeight: Tensor
    @Parameter(key: "in_proj_bias") public var inProjBias: Tensor
    @Child(key: "out_proj") public var outProj: Linear
    public let heads: Int
    public let scale: Float
    public let recorder = AttentionRecorder()
    /// Where the tokens sit in the image ([N, 2], see `AttentionMap`); set by the model.
    public var tokenPositions: Tensor?

    init(_ dim: Int, heads: Int) {
        require(dim % heads == 0, "ViTCMultiheadAttention", "dim \(dim) is not divisible by \(heads) heads")
        // torch's _reset_parameters: xavier_uniform_ in_proj, zero biases; out_proj keeps Linear's default weight.
        _inProjWeight.wrappedValue = Init.xavierUniform([3 * dim, dim], fanIn: dim, fanOut: 3 * dim)
        _inProjBias.wrappedValue = Tensor.zeros([3 * dim])
        _outProj.wrappedValue = Linear(dim, dim)
        self.heads = heads
        scale = 1 / Float(dim / heads).squareRoot()
        super.init()
        outProj.bias = Tensor.zeros([dim])
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor { forward(x).output }

    /// x [B, N, D] → (output [B, N, D], attention probabilities [B, heads, N, N] when asked for).
    public func forward(_ x: Tensor, returnAttention: Bool = false) -> (output: Tensor, attention: Tensor?) {
        let b = x.shape[0], n = x.shape[1], d = x.shape[2]
        // One GEMM for q, k, v; [B, N, 3, heads, hd] → [3, B, heads, N, hd].
        let qkv = linear(x, weight: inProjWeight, bias: inProjBias)
            .reshaped([b, n, 3, heads, d / heads]).permuted([2, 0, 3, 1, 4]).unbound(axis: 0)
        let (mixed, probabilities) = scaledDotProductAttention(
            q: qkv[0], k: qkv[1], v: qkv[2],
            scale: scale, recorder: recorder, queryPositions: tokenPositions, keyPositions: tokenPositions)
        return (outProj(mixed), returnAttention ? probabilities : nil)
    }
}

/// pycls's blocks.MultiheadAttention: a wrapper whose torch module is `block`.
public final class ViTCSelfAttention: Module {
    @Child(key: "block") public var block: ViTCMultiheadAttention
    init(_ dim: Int, heads: Int) { _block.wrappedValue = ViTCMultiheadAttention(dim, heads: heads) }
    public override func callAsFunction(_ x: Tensor) -> Tensor { block(x) }
}

/// pycls's MLPBlock: linear_1 → GELU (erf) → linear_2.
public final class ViTCMLPBlock: Module {
    @Child(key: "linear_1") public var linear1: Linear
    @Child(key: "linear_2") public var linear2: Linear

    init(_ dim: Int, hidden: Int) {
        _linear1.wrappedValue = Linear(dim, hidden)
        _linear2.wrappedValue = Linear(hidden, dim)
        super.init()
        // pycls: xavier_uniform_ weights, N(0, 1e-6) biases.
        for l in [linear1, linear2] {
            let (fanIn, fanOut) = Init.fans(l.weight.shape)
            l.weight = Init.xavierUniform(l.weight.shape, fanIn: fanIn, fanOut: fanOut)
            l.bias = Tensor.randomNormal(l.bias!.shape, std: 1e-6)
        }
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor { linear2(linear1(x).gelu()) }
}

/// pycls's ViTEncoderBlock: x + attn(ln_1 x), then x + mlp(ln_2 x).
public final class ViTCEncoderBlock: Module {
    @Child(key: "ln_1") public var ln1: LayerNorm
    @Child(key: "self_attention") public var selfAttention: ViTCSelfAttention
    @Child(key: "ln_2") public var ln2: LayerNorm
    @Child(key: "mlp_block") public var mlpBlock: ViTCMLPBlock

    init(dim: Int, heads: Int, mlpDim: Int, lnEps: Float) {
        _ln1.wrappedValue = LayerNorm(dim, eps: lnEps)
        _selfAttention.wrappedValue = ViTCSelfAttention(dim, heads: heads)
        _ln2.wrappedValue = LayerNorm(dim, eps: lnEps)
        _mlpBlock.wrappedValue = ViTCMLPBlock(dim, hidden: mlpDim)
    }

    public var attention: ViTCMultiheadAttention { selfAttention.block }

    public override func callAsFunction(_ x: Tensor) -> Tensor { forward(x).output }

    /// The block's output and, when asked for, its attention probabilities [B, heads, N, N].
    public func forward(_ x: Tensor, returnAttention: Bool = false) -> (output: Tensor, attention: Tensor?) {
        let (a, probabilities) = attention.forward(ln1(x), returnAttention: returnAttention)
        let h = x + a
        return (h + mlpBlock(ln2(h)), probabilities)
    }
}

/// pycls's ViTEncoder: blocks `block_{i}`, then the final LayerNorm `ln`.
public final class ViTCEncoder: Module {
    /// The blocks under pycls's keys `block_0`, `block_1`, … (directly under the encoder).
    @Child(key: "") var namedBlocks: [(String, Module)]
    @Child(key: "ln") public var ln: LayerNorm
    public var blocks: [ViTCEncoderBlock] { namedBlocks.map { $0.1 as! ViTCEncoderBlock } }

    init(layers: Int, dim: Int, heads: Int, mlpDim: Int, lnEps: Float) {
        _namedBlocks.wrappedValue = (0..<layers).map {
            ("block_\($0)", ViTCEncoderBlock(dim: dim, heads: heads, mlpDim: mlpDim, lnEps: lnEps))
        }
        _ln.wrappedValue = LayerNorm(dim, eps: lnEps)
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor { ln(blocks.reduce(x) { $1($0) }) }
}

/// pycls's ViTHead: one Linear `head_fc` (zero-initialised there).
public final class ViTCHead: Module {
    @Child(key: "head_fc") public var headFc: Module

    init(_ dim: Int, classes: Int) {
        if classes > 0 {
            let fc = Linear(dim, classes)
            fc.weight = Tensor.zeros(fc.weight.shape)
            fc.bias = Tensor.zeros([classes])
            _headFc.wrappedValue = fc
        } else {
            _headFc.wrappedValue = Identity()
        }
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor { headFc(x) }
}

/// The `params` dict of pycls's `ViT(params)`, under its keys, plus the pycls
/// globals that the model reads (`cfg_globals` in a fixture: VIT.PATCH_SIZE,
/// LN.EPS, BN.EPS, BN.MOM), which the family's builder fills in.
public struct ViTCConfig: Codable, Sendable {
    public var imageSize: Int
    public var patchSize: Int
    public var stemType: String
    public var cStemKernels: [Int]?
    public var cStemStrides: [Int]?
    public var cStemDims: [Int]?
    public var nLayers: Int
    public var nHeads: Int
    public var hiddenD: Int
    public var mlpD: Int
    public var clsType: String
    public var numClasses: Int
    /// cfg.LN.EPS, cfg.BN.EPS, cfg.BN.MOM at pycls's defaults; a fixture's `cfg_globals` sets them
    /// (`fromReference`), so they are not among the `params` keys.
    public var lnEps: Double = 1e-5
    public var bnEps: Double = 1e-5
    public var bnMom: Double = 0.1

    enum CodingKeys: String, CodingKey {
        case imageSize, patchSize, stemType, cStemKernels, cStemStrides, cStemDims, nLayers, nHeads, hiddenD, mlpD, clsType, numClasses
    }

    public init(imageSize: Int = 224, patchSize: Int = 16, stemType: String = "conv",
                cStemKernels: [Int]? = nil, cStemStrides: [Int]? = nil, cStemDims: [Int]? = nil,
                nLayers: Int, nHeads: Int, hiddenD: Int, mlpD: Int, clsType: String = "token", numClasses: Int = 1000) {
        self.imageSize = imageSize; self.patchSize = patchSize; self.stemType = stemType
        self.cStemKernels = cStemKernels; self.cStemStrides = cStemStrides; self.cStemDims = cStemDims
        self.nLayers = nLayers; self.nHeads = nHeads; self.hiddenD = hiddenD; self.mlpD = mlpD
        self.clsType = clsType; self.numClasses = numClasses
    }

    /// Reads a reference config: the `params` keys, and `cfg_globals` (pycls's global
    /// config entries the model depends on). Unknown globals are an error.
    public static func fromReference(_ json: JSONValue) throws -> ViTCConfig {
        var c = try json.decode(ViTCConfig.self)
        guard let globals = json["cfg_globals"] ?? json["cfgGlobals"] else { return c }
        guard let object = globals.object else { throw ModelError("vitc: cfg_globals must be an object") }
        func number(_ value: JSONValue) throws -> Double {
            guard let v = value.double else { throw ModelError("vitc: cfg global \(value) is not a number") }
            return v
        }
        for (key, value) in object.sorted(by: { $0.key < $1.key }) {
            // Compared without case and underscores, whichever key strategy read the JSON.
            switch key.uppercased().replacingOccurrences(of: "_", with: "") {
            case "VIT.PATCHSIZE":
                // pycls sizes pos_embedding from the global patch size, not params["patch_size"].
                guard value.int == c.patchSize else {
                    throw ModelError("vitc: cfg VIT.PATCH_SIZE \(value) differs from patch_size \(c.patchSize); pycls would build a position embedding that does not fit")
                }
            case "LN.EPS": c.lnEps = try number(value)
            case "BN.EPS": c.bnEps = try number(value)
            case "BN.MOM": c.bnMom = try number(value)
            case "MODEL.ACTIVATIONINPLACE": break  // no effect on the values
            default: throw ModelError("vitc: cfg global \(key) is not supported (VIT.PATCH_SIZE, LN.EPS, BN.EPS, BN.MOM)")
            }
        }
        return c
    }
}

extension ViTCConfig: ModelConfig {
    public func validate() throws {
        let check = ConfigCheck(family: "vitc")
        try check.size(imageSize, "image_size")
        try check.size(patchSize, "patch_size")
        try check.divisible(imageSize, "image_size", by: patchSize, "patch_size")
        try check.depth(nLayers, "n_layers")
        try check.width(hiddenD, "hidden_d")
        try check.heads(nHeads, "n_heads", divide: hiddenD, "hidden_d")
        try check.width(mlpD, "mlp_d")
        try check.classes(numClasses)
        for (list, field) in [(cStemKernels, "c_stem_kernels"), (cStemStrides, "c_stem_strides")] {
            for (i, v) in (list ?? []).enumerated() { try check.size(v, "\(field)[\(i)]") }
        }
        for (i, v) in (cStemDims ?? []).enumerated() { try check.width(v, "c_stem_dims[\(i)]") }
        try check.positive(lnEps, "LN.EPS", maximum: 1)
        try check.positive(bnEps, "BN.EPS", maximum: 1)
        try check.rate(bnMom, "BN.MOM")
        let tokens = (imageSize / patchSize) * (imageSize / patchSize) + 1
        let stem = (cStemDims ?? []).reduce(0.0) { $0 + ConfigCheck.conv(width: $1, depth: 1) }
        let estimate = Double(nLayers) * (4 * Double(hiddenD) * Double(hiddenD) + 2 * Double(hiddenD) * Double(mlpD))
            + ConfigCheck.table(tokens, hiddenD) + ConfigCheck.table(patchSize * patchSize * 3, hiddenD) + stem
            + ConfigCheck.table(hiddenD, numClasses)
        try check.parameters(estimate, "hidden_d, mlp_d, n_layers, image_size / patch_size, c_stem_dims, num_classes")
    }
    public var expectedInput: ExpectedInput { ExpectedInput(channels: 3, side: imageSize) }
    public var classCount: Int { numClasses }
}

/// pycls's ViT: conv (or patchify) stem → tokens (+ class token) + position
/// embedding → pre-norm encoder blocks → LayerNorm → head on the class token
/// (`cls_type` "token") or on the mean token ("pooled").
public final class ViTC: Module, ImageClassifier, CheckpointFiltering {
    @Child(key: "stem") public var stem: Module
    @OptionalParameter(key: "class_token") var classToken: Tensor?
    /// [L, 1, D], the reference's (sequence-first) shape.
    @Parameter(key: "pos_embedding") var posEmbedding: Tensor
    @Child(key: "encoder") public var encoder: ViTCEncoder
    @Child(key: "head") var head: ViTCHead
    public let hiddenDim: Int
    /// The token grid of the stem's output at `imageSize`.
    public let grid: (Int, Int)
    public let usesClassToken: Bool

    public init(_ c: ViTCConfig) throws {
        try c.validate()
        guard c.patchSize > 0, c.imageSize % c.patchSize == 0 else {
            throw ModelError("vitc: image_size \(c.imageSize) is not divisible by patch_size \(c.patchSize)")
        }
        guard ["token", "pooled"].contains(c.clsType) else { throw ModelError("vitc: cls_type \(c.clsType) is not supported (token, pooled)") }
        guard c.nHeads > 0, c.hiddenD % c.nHeads == 0 else {
            throw ModelError("vitc: hidden_d \(c.hiddenD) is not divisible by n_heads \(c.nHeads)")
        }
        let dim = c.hiddenD
        let lnEps = Float(c.lnEps), bnEps = Float(c.bnEps), bnMom = Float(c.bnMom)
        switch c.stemType {
        case "patchify":
            _stem.wrappedValue = ViTCPatchifyStem(inChannels: 3, dim: dim, patchSize: c.patchSize)
        case "conv":
            guard let ks = c.cStemKernels, let ss = c.cStemStrides, let ws = c.cStemDims else {
                throw ModelError("vitc: stem_type conv needs c_stem_kernels, c_stem_strides and c_stem_dims")
            }
            guard !ks.isEmpty, ks.count == ss.count, ss.count == ws.count else {
                throw ModelError("vitc: conv stem lists differ in length: kernels \(ks), strides \(ss), dims \(ws)")
            }
            guard ss.allSatisfy({ $0 > 0 }), ss.reduce(1, *) == c.patchSize else {
                throw ModelError("vitc: the product of c_stem_strides \(ss) must equal patch_size \(c.patchSize)")
            }
            guard ws.last == dim else { throw ModelError("vitc: the last c_stem_dims entry \(ws.last!) must equal hidden_d \(dim)") }
            guard ks.last! % 2 == 1 else { throw ModelError("vitc: the last stem kernel \(ks.last!) must be odd (pycls conv2d)") }
            _stem.wrappedValue = ViTCConvStem(inChannels: 3, kernels: ks, dims: ws, strides: ss, bnEps: bnEps, bnMomentum: bnMom)
        default:
            throw ModelError("vitc: stem_type \(c.stemType) is not supported (patchify, conv)")
        }
        hiddenDim = dim
        let side = c.imageSize / c.patchSize
        grid = (side, side)
        usesClassToken = c.clsType == "token"
        _classToken.wrappedValue = usesClassToken ? Tensor.zeros([1, 1, dim]) : nil
        _posEmbedding.wrappedValue = Tensor.randomNormal([side * side + (usesClassToken ? 1 : 0), 1, dim], std: 0.02)
        _encoder.wrappedValue = ViTCEncoder(layers: c.nLayers, dim: dim, heads: c.nHeads, mlpDim: c.mlpD, lnEps: lnEps)
        _head.wrappedValue = ViTCHead(dim, classes: c.numClasses)
        super.init()
        initStem()
        let positions = AttentionMap.gridPositions(height: side, width: side, prefixTokens: usesClassToken ? 1 : 0)
        for block in encoder.blocks { block.attention.tokenPositions = positions }
    }

    /// pycls's init_weights_vit for the stem convs.
    private func initStem() {
        for (key, m) in stem.namedModules() {
            guard let conv = m as? Conv2d else { continue }
            if key == "patchify" {
                let fanIn = Init.fans(TensorSlot.toCheckpoint(conv.weight, .convWeight).shape).fanIn
                conv.weight = Init.truncatedNormal(conv.weight.shape, std: (1 / Float(fanIn)).squareRoot())
                conv.bias = Tensor.zeros([conv.outChannels])
            } else if key == "cstem_last_conv" {
                conv.weight = Tensor.randomNormal(conv.weight.shape, std: (1 / Float(conv.outChannels)).squareRoot())
                conv.bias = Tensor.zeros([conv.outChannels])
            } else {
                conv.weight = Tensor.randomNormal(conv.weight.shape, std: (2 / Float(conv.outChannels)).squareRoot())
            }
        }
    }

    /// Stem output [B, h, w, D] → tokens [B, L, D] with the class token in front and
    /// the position embedding added.
    func embed(_ x: Tensor) -> Tensor { embed(stemMap: stem(x), input: x) }

    func embed(stemMap map: Tensor, input x: Tensor) -> Tensor {
        guard map.rank == 4, (map.shape[1], map.shape[2]) == grid else {
            fail("ViTC", "input \(x.shape) gives a \(map.shape[1])x\(map.shape[2]) token grid; the model was built for \(grid.0)x\(grid.1)")
        }
        let b = map.shape[0]
        var tokens = map.reshaped([b, grid.0 * grid.1, hiddenDim])
        if let token = classToken { tokens = concat([token.expanded(to: [b, 1, hiddenDim]), tokens], axis: 1) }
        // (L, 1, D) and (1, L, D) share their memory order: a reshape is enough.
        return tokens + posEmbedding.reshaped([1, posEmbedding.shape[0], hiddenDim])
    }

    /// Tokens [B, L, D] after the encoder's final LayerNorm.
    public func forwardFeatures(_ x: Tensor) -> Tensor { encoder(embed(x)) }

    public func forwardHead(_ features: Tensor, preLogits: Bool) -> Tensor {
        let pooled = usesClassToken ? features.selecting(axis: 1, index: 0) : features.mean(alongAxes: [1])
        return preLogits ? pooled : head(pooled)
    }

    /// "stem" (the stem's map [B, h, w, D]), then every block's tokens "encoder.block_{i}".
    public func forwardIntermediates(_ x: Tensor) -> [(name: String, value: Tensor)] {
        let map = stem(x)
        var out: [(String, Tensor)] = [("stem", map)]
        var h = embed(stemMap: map, input: x)
        for (i, block) in encoder.blocks.enumerated() {
            h = block(h)
            out.append(("encoder.block_\(i)", h))
        }
        return out
    }

    /// Logits and every block's attention probabilities [B, heads, L, L], in order.
    public func forwardWithAttention(_ x: Tensor) -> (logits: Tensor, attention: [Tensor]) {
        var h = embed(x)
        var maps: [Tensor] = []
        for block in encoder.blocks {
            let (y, a) = block.forward(h, returnAttention: true)
            h = y
            maps.append(a!)
        }
        return (forwardHead(encoder.ln(h), preLogits: false), maps)
    }

    public func resetClassifier(numClasses: Int) { head = ViTCHead(hiddenDim, classes: numClasses) }

    public override func callAsFunction(_ x: Tensor) -> Tensor { logits(x) }

    /// Resamples a checkpoint's position embedding (L', 1, D) to this model's token grid.
    public func checkpointFilter(_ stateDict: [String: Tensor]) -> [String: Tensor] {
        var dict = stateDict
        if let pe = dict["pos_embedding"], pe.shape != posEmbedding.shape, pe.rank == 3, pe.shape[1] == 1 {
            let batchFirst = pe.reshaped([1, pe.shape[0], pe.shape[2]])
            let resampled = VisionTransformer.resamplePositionEmbedding(batchFirst, to: grid, prefixTokens: usesClassToken ? 1 : 0)
            dict["pos_embedding"] = resampled.reshaped([resampled.shape[1], 1, resampled.shape[2]])
        }
        return dict
    }
}

extension ViTC {
    @Sendable static func build(_ config: JSONValue) throws -> ImageClassifier { try ViTC(ViTCConfig.fromReference(config)) }

    /// A pycls ViT_C: the `params` its config file gives `ViT`, at 224x224 with 16x16 patches, a conv
    /// stem and a class token.
    static func variant(_ name: String, _ params: [String: JSONValue]) -> ModelVariant {
        let common: [String: JSONValue] = ["image_size": 224, "patch_size": 16, "stem_type": "conv", "cls_type": "token"]
        return ModelVariant(name, family: "vitc", inputSize: 224, arguments: common.merging(params) { $1 }, build: build)
    }

    /// ViT_C-{1,4,18,36}GF from pycls's configs/vitconv_baselines (vitconfigs branch).
    public static let family = ModelFamily(
        name: "vitc", reference: "facebookresearch/pycls@5719de6 pycls/models/vit.py ViT",
        variants: [
            variant("vitc_1gf", ["c_stem_kernels": [3, 3, 3, 3, 1], "c_stem_strides": [2, 2, 2, 2, 1], "c_stem_dims": [24, 48, 96, 192, 192],
                                 "n_layers": 11, "n_heads": 3, "hidden_d": 192, "mlp_d": 576]),
            variant("vitc_4gf", ["c_stem_kernels": [3, 3, 3, 3, 1], "c_stem_strides": [2, 2, 2, 2, 1], "c_stem_dims": [48, 96, 192, 384, 384],
                                 "n_layers": 11, "n_heads": 6, "hidden_d": 384, "mlp_d": 1152]),
            variant("vitc_18gf", ["c_stem_kernels": [3, 3, 3, 3, 3, 3, 1], "c_stem_strides": [2, 2, 1, 2, 1, 2, 1],
                                  "c_stem_dims": [64, 128, 128, 256, 256, 512, 768], "n_layers": 11, "n_heads": 12, "hidden_d": 768, "mlp_d": 3072]),
            variant("vitc_36gf", ["c_stem_kernels": [3, 3, 3, 3, 3, 3, 1], "c_stem_strides": [2, 2, 1, 2, 1, 2, 1],
                                  "c_stem_dims": [64, 128, 128, 256, 256, 512, 1024], "n_layers": 13, "n_heads": 16, "hidden_d": 1024, "mlp_d": 4096]),
            // For 32x32: a stride-4 conv stem (8x8 tokens) under vit_nano's transformer.
            ModelVariant("vitc_nano", family: "vitc", inputSize: 32) { classes in
                try ViTC(ViTCConfig(imageSize: 32, patchSize: 4, stemType: "conv", cStemKernels: [3, 3, 1], cStemStrides: [2, 2, 1],
                                    cStemDims: [32, 64, 128], nLayers: 6, nHeads: 4, hiddenD: 128, mlpD: 384,
                                    clsType: "token", numClasses: classes))
            },
        ],
        build: build)
}
