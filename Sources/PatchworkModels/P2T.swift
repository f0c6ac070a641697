import Foundation
import Patchwork
import PatchworkNN

// P2T: "Pyramid Pooling Transformer for Scene Understanding" (Wu et al. 2022), the
// authors' code: yuhuan-wu/P2T p2t.py (PyramidPoolingTransformer).
// Blocks → model → named variants (the authors' checkpoints use these keys as they are:
// no filter is needed, P2T has no size-dependent tables).
//
// Four stages of overlapping patch embeddings (7x7/s4/p3, then 3x3/s2/p1; each + LayerNorm
// eps 1e-5) and pre-norm blocks: pooling attention (queries from the tokens; keys and
// values from the normed token map adaptive-average-pooled to round(H/r) x round(W/r) for
// every ratio r of the stage, each pool + a depthwise 3x3 conv of it (one conv per ratio,
// shared by all blocks of the stage), concatenated, LayerNorm, kv Linear), then the IRB
// feed-forward (1x1 conv → Hardswish → dw 3x3 → Hardswish → 1x1 conv). No final norm:
// the stage-4 tokens are averaged and go to the head.
//
// As in the reference, drop_rate and attn_drop_rate have no effect (their dropouts are
// built but never applied); drop_path_rate does.

/// Python's round(a / b): to nearest, ties to even (round(1.5) = 2, round(0.5) = 0).
func p2tPooledSize(_ side: Int, ratio: Int) -> Int {
    Int((Double(side) / Double(ratio)).rounded(.toNearestOrEven))
}

/// PyTorch's adaptive-pooling bins of `input` → `output`: [⌊i·in/out⌋, ⌈(i+1)·in/out⌉), overlapping.
func p2tAdaptiveBins(_ input: Int, _ output: Int) -> [(lo: Int, hi: Int)] {
    (0..<output).map { i in (i * input / output, ((i + 1) * input + output - 1) / output) }
}

/// The reference's overlapping PatchEmbed: conv (kernel k, stride s, padding k/2) → LayerNorm (eps 1e-5).
public final class P2TPatchEmbed: Module {
    @Child(key: "proj") public var proj: Conv2d
    @Child(key: "norm") public var norm: LayerNorm

    init(_ inChannels: Int, _ dim: Int, kernel: Int, stride: Int) {
        _proj.wrappedValue = Conv2d(inChannels, dim, kernelSize: kernel, stride: stride, padding: kernel / 2)
        _norm.wrappedValue = LayerNorm(dim, eps: 1e-5)
    }

    /// Map [B, H, W, C] → tokens [B, h·w, D] and the new grid.
    func tokens(_ x: Tensor) -> (Tensor, Int, Int) {
        let y = proj(x)
        let (h, w) = (y.shape[1], y.shape[2])
        return (norm(y.reshaped([y.shape[0], h * w, y.shape[3]])), h, w)
    }
}

/// The reference's IRB: fc1 (1x1 conv) → Hardswish → conv (dw 3x3) → Hardswish → fc2 (1x1 conv).
public final class P2TIRB: Module {
    @Child(key: "fc1") public var fc1: Conv2d
    @Child(key: "conv") public var conv: Conv2d
    @Child(key: "fc2") public var fc2: Conv2d

    init(_ dim: Int, hidden: Int) {
        _fc1.wrappedValue = Conv2d(dim, hidden, kernelSize: 1)
        _conv.wrappedValue = Conv2d(hidden, hidden, kernelSize: 3, padding: 1, groups: hidden)
        _fc2.wrappedValue = Conv2d(hidden, dim, kernelSize: 1)
    }

    func forward(_ x: Tensor, height: Int, width: Int) -> Tensor {
        let b = x.shape[0], c = x.shape[2]
        let h = fc2(conv(fc1(x.reshaped([b, height, width, c])).hardswish()).hardswish())
        return h.reshaped([b, height * width, c])
    }
}

/// The reference's PoolingAttention. `q.0` and `kv.0` are Linears (inside nn.Sequential),
/// `norm` is LayerNorm (eps 1e-5) over the concatenated pools, `proj` the output Linear.
/// The per-ratio depthwise convs belong to the stage and are passed in.
///
/// Recording keeps the probabilities [B, heads, N, Σ pooled cells] with the queries at the
/// token centres and every pooled cell at the centre of its (overlapping) adaptive bin,
/// the pyramid levels concatenated in the stage's ratio order, each row-major.
public final class P2TPoolingAttention: Module, AttentionRecording {
    @Child(key: "q") public var q: Sequential
    @Child(key: "kv") public var kv: Sequential
    @Child(key: "proj") public var proj: Linear
    @Child(key: "norm") public var norm: LayerNorm
    public let heads: Int
    public let scale: Float
    public let poolRatios: [Int]
    public let recorder = AttentionRecorder()

    init(_ dim: Int, heads: Int, qkvBias: Bool, qkScale: Double?, poolRatios: [Int]) {
        _q.wrappedValue = Sequential([Linear(dim, dim, bias: qkvBias)])
        _kv.wrappedValue = Sequential([Linear(dim, dim * 2, bias: qkvBias)])
        _proj.wrappedValue = Linear(dim, dim)
        _norm.wrappedValue = LayerNorm(dim, eps: 1e-5)
        self.heads = heads
        if let s = qkScale, s != 0 { scale = Float(s) } else { scale = 1 / Float(dim / heads).squareRoot() }
        self.poolRatios = poolRatios
    }

    /// The pooled grid of every ratio for an H×W token map (Python round, half to even).
    public func pooledSizes(height: Int, width: Int) -> [(Int, Int)] {
        poolRatios.map { (p2tPooledSize(height, ratio: $0), p2tPooledSize(width, ratio: $0)) }
    }

    func forward(_ x: Tensor, height: Int, width: Int, dConvs: [Conv2d]) -> Tensor {
        let b = x.shape[0], n = x.shape[1], c = x.shape[2], hd = c / heads
        let query = q(x).reshaped([b, n, heads, hd]).permuted([0, 2, 1, 3])
        let map = x.reshaped([b, height, width, c])
        let sizes = pooledSizes(height: height, width: width)
        var pools: [Tensor] = []
        for (size, conv) in zip(sizes, dConvs) {
            guard size.0 > 0, size.1 > 0 else {
                fail("P2TPoolingAttention", "a \(height)x\(width) token map pools to \(size.0)x\(size.1) for ratios \(poolRatios): use a larger input or smaller pool_ratios")
            }
            let pooled = adaptiveAvgPool2d(map, outputSize: size)
            pools.append((pooled + conv(pooled)).reshaped([b, size.0 * size.1, c]))
        }
        let keysIn = norm(pools.count == 1 ? pools[0] : concat(pools, axis: 1))
        let m = keysIn.shape[1]
        let kvs = kv(keysIn).reshaped([b, m, 2, heads, hd]).permuted([2, 0, 3, 1, 4]).unbound(axis: 0)
        let key = kvs[0], value = kvs[1]
        let (mixed, _) = scaledDotProductAttention(
            q: query, k: key, v: value, scale: scale, recorder: recorder,
            queryPositions: AttentionMap.gridPositions(height: height, width: width),
            keyPositions: P2TPoolingAttention.pooledCellPositions(height: height, width: width, sizes: Array(sizes.prefix(dConvs.count))))
        return proj(mixed)
    }

    /// Centres of every adaptive-pooling bin, as image fractions (y, x), level after level: [Σ oh·ow, 2].
    public static func pooledCellPositions(height: Int, width: Int, sizes: [(Int, Int)]) -> Tensor {
        var values: [Float] = []
        for (oh, ow) in sizes {
            let rows = p2tAdaptiveBins(height, oh), cols = p2tAdaptiveBins(width, ow)
            for r in rows {
                for col in cols {
                    values.append(Float(r.lo + r.hi) / 2 / Float(height))
                    values.append(Float(col.lo + col.hi) / 2 / Float(width))
                }
            }
        }
        return Tensor(values, shape: [values.count / 2, 2])
    }
}

/// A P2T block: x + attn(norm1 x), then x + mlp(norm2 x).
public final class P2TBlock: Module {
    @Child(key: "norm1") public var norm1: LayerNorm
    @Child(key: "attn") public var attn: P2TPoolingAttention
    @Child(key: "drop_path") var dropPath: DropPath
    @Child(key: "norm2") public var norm2: LayerNorm
    @Child(key: "mlp") public var mlp: P2TIRB

    init(dim: Int, heads: Int, mlpRatio: Double, qkvBias: Bool, qkScale: Double?, dropPath: Float, normEps: Float, poolRatios: [Int]) {
        _norm1.wrappedValue = LayerNorm(dim, eps: normEps)
        _attn.wrappedValue = P2TPoolingAttention(dim, heads: heads, qkvBias: qkvBias, qkScale: qkScale, poolRatios: poolRatios)
        _dropPath.wrappedValue = DropPath(dropPath)
        _norm2.wrappedValue = LayerNorm(dim, eps: normEps)
        _mlp.wrappedValue = P2TIRB(dim, hidden: Int(Double(dim) * mlpRatio))
    }

    func forward(_ x: Tensor, height: Int, width: Int, dConvs: [Conv2d]) -> Tensor {
        let h = x + dropPath(attn.forward(norm1(x), height: height, width: width, dConvs: dConvs))
        return h + dropPath(mlp.forward(norm2(h), height: height, width: width))
    }
}

/// The arguments of the reference's `PyramidPoolingTransformer(...)` (nil: its default),
/// plus `pool_ratios`, which the reference hard-codes.
public struct P2TConfig: Codable, Sendable {
    public var imgSize: Int = 224
    public var patchSize: Int?
    public var inChans: Int = 3
    public var numClasses: Int = 1000
    public var embedDims: [Int] = [64, 128, 320, 512]
    public var numHeads: [Int] = [1, 2, 5, 8]
    public var mlpRatios: [Double] = [8, 8, 4, 4]
    public var qkvBias: Bool = true
    public var qkScale: Double?
    public var dropRate: Double?
    public var attnDropRate: Double?
    public var dropPathRate: Double = 0.1
    /// Block norms: nil/null is the reference's partial(nn.LayerNorm, eps=1e-6).
    public var normLayer: JSONValue?
    public var depths: [Int] = [2, 2, 9, 3]
    /// Not an argument of the reference, which hard-codes [[12,16,20,24],[6,8,10,12],[3,4,5,6],[1,2,3,4]]
    /// (the default here). Those need an input side above 64 (stage 4's round(2/4) = 0 crashes);
    /// smaller inputs need smaller ratios (p2t_nano).
    public var poolRatios: [[Int]]?

    public static let referencePoolRatios = [[12, 16, 20, 24], [6, 8, 10, 12], [3, 4, 5, 6], [1, 2, 3, 4]]

    public init(imgSize: Int = 224, numClasses: Int = 1000, embedDims: [Int] = [64, 128, 320, 512], numHeads: [Int] = [1, 2, 5, 8],
                mlpRatios: [Double] = [8, 8, 4, 4], depths: [Int] = [2, 2, 9, 3], dropPathRate: Double = 0.1,
                poolRatios: [[Int]]? = nil) {
        self.imgSize = imgSize; self.numClasses = numClasses; self.embedDims = embedDims; self.numHeads = numHeads
        self.mlpRatios = mlpRatios; self.depths = depths; self.dropPathRate = dropPathRate; self.poolRatios = poolRatios
    }

    /// Absent (or null) arguments keep the reference's defaults above.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        imgSize = try c.value(.imgSize, imgSize)
        patchSize = try c.decodeIfPresent(Int.self, forKey: .patchSize)
        inChans = try c.value(.inChans, inChans)
        numClasses = try c.value(.numClasses, numClasses)
        embedDims = try c.value(.embedDims, embedDims)
        numHeads = try c.value(.numHeads, numHeads)
        mlpRatios = try c.value(.mlpRatios, mlpRatios)
        qkvBias = try c.value(.qkvBias, qkvBias)
        qkScale = try c.decodeIfPresent(Double.self, forKey: .qkScale)
        dropRate = try c.decodeIfPresent(Double.self, forKey: .dropRate)
        attnDropRate = try c.decodeIfPresent(Double.self, forKey: .attnDropRate)
        dropPathRate = try c.value(.dropPathRate, dropPathRate)
        normLayer = try c.decodeIfPresent(JSONValue.self, forKey: .normLayer)
        depths = try c.value(.depths, depths)
        poolRatios = try c.decodeIfPresent([[Int]].self, forKey: .poolRatios)
    }
}

extension P2TConfig: ModelConfig {
    public func validate() throws {
        let check = ConfigCheck(family: "p2t")
        try check.size(imgSize, "img_size")
        try check.divisible(imgSize, "img_size", by: 32, "32 (four 2x2 patch embeddings after a 4x4 one)")
        try check.width(inChans, "in_chans")
        try check.classes(numClasses)
        for (list, field) in [(embedDims, "embed_dims"), (numHeads, "num_heads"), (depths, "depths")] {
            try check.perStage(list, field, stages: 4, as: "the reference's four stages")
        }
        try check.perStage(mlpRatios, "mlp_ratios", stages: 4, as: "the reference's four stages")
        try check.depths(depths, "depths")
        for i in 0..<4 {
            try check.width(embedDims[i], "embed_dims[\(i)]")
            try check.heads(numHeads[i], "num_heads[\(i)]", divide: embedDims[i], "embed_dims[\(i)]")
            try check.positive(mlpRatios[i], "mlp_ratios[\(i)]")
        }
        if let pools = poolRatios {
            try check.perStage(pools, "pool_ratios", stages: 4, as: "the reference's four stages")
            for (i, stage) in pools.enumerated() {
                guard !stage.isEmpty else { throw check.error("pool_ratios[\(i)]", stage, "must not be empty") }
                for r in stage { try check.size(r, "pool_ratios[\(i)]") }
            }
        }
        if let v = qkScale { try check.finite(v, "qk_scale") }
        try check.rates([(dropRate ?? 0, "drop_rate"), (attnDropRate ?? 0, "attn_drop_rate"), (dropPathRate, "drop_path_rate")])
        var estimate = ConfigCheck.table(embedDims[3], numClasses)
        for i in 0..<4 { estimate += ConfigCheck.transformer(width: embedDims[i], depth: depths[i], mlpRatio: mlpRatios[i]) }
        try check.parameters(estimate, "embed_dims, depths, mlp_ratios, num_classes")
    }
    public var expectedInput: ExpectedInput { ExpectedInput(channels: inChans, side: imgSize) }
    public var classCount: Int { numClasses }
}

/// The authors' PyramidPoolingTransformer. Any input size whose every stage pools to at
/// least 1x1 runs (the reference derives H, W from the input).
public final class P2T: Module, ImageClassifier {
    @Child(key: "patch_embed1") public var patchEmbed1: P2TPatchEmbed
    @Child(key: "patch_embed2") public var patchEmbed2: P2TPatchEmbed
    @Child(key: "patch_embed3") public var patchEmbed3: P2TPatchEmbed
    @Child(key: "patch_embed4") public var patchEmbed4: P2TPatchEmbed
    @Child(key: "d_convs1") public var dConvs1: [Conv2d]
    @Child(key: "d_convs2") public var dConvs2: [Conv2d]
    @Child(key: "d_convs3") public var dConvs3: [Conv2d]
    @Child(key: "d_convs4") public var dConvs4: [Conv2d]
    @Child(key: "block1") public var block1: [P2TBlock]
    @Child(key: "block2") public var block2: [P2TBlock]
    @Child(key: "block3") public var block3: [P2TBlock]
    @Child(key: "block4") public var block4: [P2TBlock]
    @Child(key: "head") public private(set) var head: Module
    public let embedDims: [Int]
    public let poolRatios: [[Int]]

    public init(_ c: P2TConfig) throws {
        try c.validate()
        let imgSize = c.imgSize
        let dims = c.embedDims
        let heads = c.numHeads
        let ratios = c.mlpRatios
        let depths = c.depths
        let pools = c.poolRatios ?? P2TConfig.referencePoolRatios
        for (name, count) in [("embed_dims", dims.count), ("num_heads", heads.count), ("mlp_ratios", ratios.count),
                              ("depths", depths.count), ("pool_ratios", pools.count)] where count != 4 {
            throw ModelError("p2t: \(name) must have 4 entries (one per stage), got \(count)")
        }
        if let p = c.patchSize, p != 4 {
            throw ModelError("p2t: patch_size \(p) is not supported (the reference hard-codes 4 for patch_embed1)")
        }
        // The reference's PatchEmbed assertions: img_size, img_size//4, //8, //16 divisible by 4, 2, 2, 2.
        guard imgSize > 0, imgSize % 4 == 0, (imgSize / 4) % 2 == 0, (imgSize / 8) % 2 == 0, (imgSize / 16) % 2 == 0 else {
            throw ModelError("p2t: img_size \(imgSize) must be a multiple of 32 (the reference's patch embeddings assert it)")
        }
        for i in 0..<4 {
            guard heads[i] > 0, dims[i] % heads[i] == 0 else {
                throw ModelError("p2t: embed_dims[\(i)] \(dims[i]) must be divisible by num_heads[\(i)] \(heads[i])")
            }
            guard !pools[i].isEmpty, pools[i].allSatisfy({ $0 > 0 }) else {
                throw ModelError("p2t: pool_ratios[\(i)] \(pools[i]) must be a non-empty list of positive ratios")
            }
            // Stage i's token side at img_size (7x7/s4/p3, then 3x3/s2/p1 convs).
            var side = (imgSize + 2 * 3 - 7) / 4 + 1
            for _ in 0..<i { side = (side + 2 - 3) / 2 + 1 }
            for r in pools[i] where p2tPooledSize(side, ratio: r) < 1 {
                throw ModelError("p2t: at img_size \(imgSize) stage \(i + 1) has a \(side)x\(side) map and pool ratio \(r) gives round(\(side)/\(r)) = 0 cells (the reference crashes); use a larger img_size or smaller pool_ratios")
            }
        }
        let normEps = try cmtLayerNormEps(c.normLayer, defaultEps: 1e-6, family: "p2t")
        embedDims = dims
        poolRatios = pools

        _patchEmbed1.wrappedValue = P2TPatchEmbed(c.inChans, dims[0], kernel: 7, stride: 4)
        _patchEmbed2.wrappedValue = P2TPatchEmbed(dims[0], dims[1], kernel: 3, stride: 2)
        _patchEmbed3.wrappedValue = P2TPatchEmbed(dims[1], dims[2], kernel: 3, stride: 2)
        _patchEmbed4.wrappedValue = P2TPatchEmbed(dims[2], dims[3], kernel: 3, stride: 2)
        let convs = (0..<4).map { i in pools[i].map { _ in Conv2d(dims[i], dims[i], kernelSize: 3, padding: 1, groups: dims[i]) } }
        _dConvs1.wrappedValue = convs[0]; _dConvs2.wrappedValue = convs[1]; _dConvs3.wrappedValue = convs[2]; _dConvs4.wrappedValue = convs[3]

        let total = depths.reduce(0, +)
        let rate = Float(c.dropPathRate)
        let dpr = dropPathRates(rate, count: total)
        var stages: [[P2TBlock]] = []
        var cur = 0
        for i in 0..<4 {
            guard depths[i] >= 0 else { throw ModelError("p2t: depths[\(i)] \(depths[i]) is negative") }
            stages.append((0..<depths[i]).map { j in
                P2TBlock(dim: dims[i], heads: heads[i], mlpRatio: ratios[i], qkvBias: c.qkvBias, qkScale: c.qkScale,
                         dropPath: dpr[cur + j], normEps: normEps, poolRatios: pools[i])
            })
            cur += depths[i]
        }
        _block1.wrappedValue = stages[0]; _block2.wrappedValue = stages[1]; _block3.wrappedValue = stages[2]; _block4.wrappedValue = stages[3]
        _head.wrappedValue = P2T.makeHead(dims[3], classes: c.numClasses)
        super.init()
        // The reference's _init_weights: Linear trunc_normal(0.02) with zero bias; LayerNorm
        // ones/zeros (as built); convs keep PyTorch's default init.
        for (_, m) in namedModules() {
            if let l = m as? Linear {
                l.weight = Init.truncatedNormal(l.weight.shape, std: 0.02)
                if let b = l.bias { l.bias = Tensor.zeros(b.shape) }
            }
        }
    }

    static func makeHead(_ dim: Int, classes: Int) -> Module {
        guard classes > 0 else { return Identity() }
        let l = Linear(dim, classes)
        l.weight = Init.truncatedNormal(l.weight.shape, std: 0.02)
        l.bias = Tensor.zeros([classes])
        return l
    }

    var stages: [(embed: P2TPatchEmbed, convs: [Conv2d], blocks: [P2TBlock], key: String)] {
        [(patchEmbed1, dConvs1, block1, "block1"), (patchEmbed2, dConvs2, block2, "block2"),
         (patchEmbed3, dConvs3, block3, "block3"), (patchEmbed4, dConvs4, block4, "block4")]
    }

    /// Runs the four stages; `visit` sees every block's output tokens. Returns stage 4's tokens.
    func stagesForward(_ x: Tensor, visit: ((String, Tensor) -> Void)? = nil) -> Tensor {
        guard x.rank == 4 else { fail("P2T", "input \(x.shape) must be [B, H, W, C]") }
        var map = x
        var tokens = x
        for (i, stage) in stages.enumerated() {
            let (embedded, h, w) = stage.embed.tokens(map)
            var t = embedded
            for (j, block) in stage.blocks.enumerated() {
                t = block.forward(t, height: h, width: w, dConvs: stage.convs)
                visit?("\(stage.key).\(j)", t)
            }
            tokens = t
            if i < 3 { map = t.reshaped([t.shape[0], h, w, t.shape[2]]) }
        }
        return tokens
    }

    /// Stage 4's tokens [B, N, C] (no final norm, as the reference).
    public func forwardFeatures(_ x: Tensor) -> Tensor { stagesForward(x) }

    /// Mean over the tokens (→ head).
    public func forwardHead(_ features: Tensor, preLogits: Bool) -> Tensor {
        let pooled = features.mean(alongAxes: [1])
        return preLogits ? pooled : head(pooled)
    }

    /// Every block's output tokens, "block{1..4}.{i}".
    public func forwardIntermediates(_ x: Tensor) -> [(name: String, value: Tensor)] {
        var out: [(name: String, value: Tensor)] = []
        _ = stagesForward(x) { out.append(($0, $1)) }
        return out
    }

    public func resetClassifier(numClasses: Int) { head = P2T.makeHead(embedDims[3], classes: numClasses) }

    public override func callAsFunction(_ x: Tensor) -> Tensor { logits(x) }
}

// MARK: variants

extension P2T {
    @Sendable static func build(_ config: JSONValue) throws -> ImageClassifier { try P2T(config.decode(P2TConfig.self)) }

    /// One of p2t.py's factories: `PyramidPoolingTransformer(patch_size=4, embed_dims, num_heads, mlp_ratios=[8, 8, 4, 4],
    /// qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6), depths)`.
    static func variant(_ name: String, embedDims: JSONValue, numHeads: JSONValue = [1, 2, 5, 8], depths: JSONValue) -> ModelVariant {
        let arguments: [String: JSONValue] = [
            "patch_size": 4, "embed_dims": embedDims, "num_heads": numHeads, "mlp_ratios": [8, 8, 4, 4], "qkv_bias": true,
            "norm_layer": .partial("torch.nn.LayerNorm", ["eps": 1e-6]), "depths": depths]
        return ModelVariant(name, family: "p2t", inputSize: 224, arguments: arguments, build: build)
    }

    /// p2t_nano's pool ratios, NOT the paper's: at 32x32 the token maps are 8/4/2/1, and the
    /// reference's hard-coded ratios ([[12,16,20,24],[6,8,10,12],[3,4,5,6],[1,2,3,4]]) pool them
    /// to round(8/16) = 0 cells (the reference crashes at any side ≤ 64). These give pyramids of
    /// 4/3/2/1, 4/2/1/1, 2/1 and 1 cells per side.
    public static let nanoPoolRatios = [[2, 3, 4, 8], [1, 2, 3, 4], [1, 2], [1]]

    /// p2t_tiny / small / base / medium / large as registered in p2t.py (224x224), and
    /// p2t_nano for 32x32 (with `nanoPoolRatios`).
    public static let family = ModelFamily(
        name: "p2t", reference: "yuhuan-wu/P2T@acd5e64 p2t.py PyramidPoolingTransformer",
        variants: [
            variant("p2t_tiny", embedDims: [48, 96, 240, 384], depths: [2, 2, 6, 3]),
            variant("p2t_small", embedDims: [64, 128, 320, 512], depths: [2, 2, 9, 3]),
            variant("p2t_base", embedDims: [64, 128, 320, 512], depths: [3, 4, 18, 3]),
            variant("p2t_medium", embedDims: [64, 128, 384, 512], numHeads: [1, 2, 6, 8], depths: [3, 4, 15, 3]),
            variant("p2t_large", embedDims: [64, 128, 320, 640], depths: [3, 8, 27, 3]),
            ModelVariant("p2t_nano", family: "p2t", inputSize: 32) { classes in
                try P2T(P2TConfig(imgSize: 32, numClasses: classes, embedDims: [32, 64, 96, 128], numHeads: [1, 2, 3, 4],
                                  mlpRatios: [8, 8, 4, 4], depths: [2, 2, 3, 2], dropPathRate: 0, poolRatios: nanoPoolRatios))
            },
        ],
        build: build)
}
