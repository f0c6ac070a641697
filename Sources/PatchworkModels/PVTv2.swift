import Foundation
import Patchwork
import PatchworkNN

// PVT v2 (Wang et al. 2022), as timm 1.0.31 writes it: timm/models/pvt_v2.py,
// PyramidVisionTransformerV2. Blocks → model → checkpoint filter → named variants.
//
// Maps are channels-last [B, H, W, C] between stages (timm keeps NCHW there); inside
// a stage the tokens are [B, h·w, C], the same memory. Keys equal timm's.

/// MlpWithDepthwiseConv: fc1 → (ReLU when linear) → depthwise 3x3 conv → GELU → dropout → fc2 → dropout.
public final class PvtV2Mlp: Module {
    @Child(key: "fc1") public var fc1: Linear
    @Child(key: "dwconv") public var dwconv: Conv2d
    @Child(key: "fc2") public var fc2: Linear
    @Child(key: "drop") var drop: Dropout
    let extraReLU: Bool

    init(_ dim: Int, hidden: Int, drop p: Float, extraReLU: Bool) {
        _fc1.wrappedValue = Linear(dim, hidden)
        _dwconv.wrappedValue = Conv2d(hidden, hidden, kernelSize: 3, stride: 1, padding: 1, groups: hidden, bias: true)
        _fc2.wrappedValue = Linear(hidden, dim)
        _drop.wrappedValue = Dropout(p)
        self.extraReLU = extraReLU
    }

    /// x [B, h·w, C] → [B, h·w, C].
    func forward(_ x: Tensor, h: Int, w: Int) -> Tensor {
        var y = fc1(x)
        let b = y.shape[0], c = y.shape[2]
        if extraReLU { y = y.relu() }
        y = dwconv(y.reshaped([b, h, w, c])).reshaped([b, h * w, c]).gelu()
        return drop(fc2(drop(y)))
    }
}

/// timm's pvt_v2 Attention: q from every token; k and v (one `kv` Linear) from the
/// tokens reduced by Conv2d(kernel = stride = sr) + LayerNorm(1e-5) when sr > 1, or,
/// in the linear variant, pooled to 7x7 (AdaptiveAvgPool2d) → 1x1 conv → LayerNorm → GELU.
///
/// Attention maps: queries at their token centres; reduced keys at the centres of
/// their sr×sr cells, pooled keys at the centres of their adaptive-pool bins.
public final class PvtV2Attention: Module, AttentionRecording {
    @Child(key: "q") public var q: Linear
    @Child(key: "kv") public var kv: Linear
    @Child(key: "attn_drop") var attnDrop: Dropout
    @Child(key: "proj") public var proj: Linear
    @Child(key: "proj_drop") var projDrop: Dropout
    @Child(key: "sr") public var sr: Conv2d?
    @Child(key: "norm") public var norm: LayerNorm?
    public let heads: Int
    public let reductionRatio: Int
    public let linearAttention: Bool
    /// The linear variant's pooled grid.
    public static let poolSize = 7
    let scale: Float
    public let recorder = AttentionRecorder()

    init(_ dim: Int, heads: Int, reductionRatio: Int, linear: Bool, qkvBias: Bool, attnDrop: Float, projDrop: Float) {
        _q.wrappedValue = Linear(dim, dim, bias: qkvBias)
        _kv.wrappedValue = Linear(dim, 2 * dim, bias: qkvBias)
        _attnDrop.wrappedValue = Dropout(attnDrop)
        _proj.wrappedValue = Linear(dim, dim)
        _projDrop.wrappedValue = Dropout(projDrop)
        if linear {
            _sr.wrappedValue = Conv2d(dim, dim, kernelSize: 1, stride: 1)
            _norm.wrappedValue = LayerNorm(dim, eps: 1e-5)
        } else if reductionRatio > 1 {
            _sr.wrappedValue = Conv2d(dim, dim, kernelSize: reductionRatio, stride: reductionRatio)
            _norm.wrappedValue = LayerNorm(dim, eps: 1e-5)
        } else {
            _sr.wrappedValue = nil
            _norm.wrappedValue = nil
        }
        self.heads = heads
        self.reductionRatio = reductionRatio
        linearAttention = linear
        scale = 1 / Float(dim / heads).squareRoot()
    }

    /// x [B, h·w, C] → [B, h·w, C].
    func forward(_ x: Tensor, h: Int, w: Int) -> Tensor {
        let b = x.shape[0], n = x.shape[1], c = x.shape[2], hd = c / heads
        let query = q(x).reshaped([b, n, heads, hd]).permuted([0, 2, 1, 3])
        var source = x
        if let sr, let norm {
            var map = x.reshaped([b, h, w, c])
            if linearAttention { map = adaptiveAvgPool2d(map, outputSize: (Self.poolSize, Self.poolSize)) }
            map = sr(map)
            source = norm(map.reshaped([b, map.shape[1] * map.shape[2], c]))
            if linearAttention { source = source.gelu() }
        }
        let m = source.shape[1]
        // [B, M, 2, heads, hd] → [2, B, heads, M, hd]
        let kvs = kv(source).reshaped([b, m, 2, heads, hd]).permuted([2, 0, 3, 1, 4]).unbound(axis: 0)
        let k = kvs[0], v = kvs[1]
        let (mixed, _) = scaledDotProductAttention(
            q: query, k: k, v: v, scale: scale, dropout: attnDrop, recorder: recorder,
            queryPositions: AttentionMap.gridPositions(height: h, width: w), keyPositions: keyPositions(height: h, width: w))
        return projDrop(proj(mixed))
    }

    /// Where the keys sit: pooled keys at the centres of their adaptive-pool bins, reduced
    /// keys at the centres of their sr×sr cells, else on the token grid.
    func keyPositions(height h: Int, width w: Int) -> Tensor {
        if linearAttention { return PVTPositions.adaptiveCells(height: h, width: w, output: (Self.poolSize, Self.poolSize)) }
        if reductionRatio > 1 { return PVTPositions.reducedCells(height: h, width: w, ratio: reductionRatio) }
        return AttentionMap.gridPositions(height: h, width: w)
    }
}

/// timm's pvt_v2 Block: x + drop_path1(attn(norm1 x)), then x + drop_path2(mlp(norm2 x)).
public final class PvtV2Block: Module {
    @Child(key: "norm1") public var norm1: LayerNorm
    @Child(key: "attn") public var attn: PvtV2Attention
    @Child(key: "drop_path1") var dropPath1: DropPath
    @Child(key: "norm2") public var norm2: LayerNorm
    @Child(key: "mlp") public var mlp: PvtV2Mlp
    @Child(key: "drop_path2") var dropPath2: DropPath

    init(_ dim: Int, heads: Int, mlpRatio: Double, reductionRatio: Int, linear: Bool, qkvBias: Bool,
         projDrop: Float, attnDrop: Float, dropPath: Float, normEps: Float) {
        _norm1.wrappedValue = LayerNorm(dim, eps: normEps)
        _attn.wrappedValue = PvtV2Attention(dim, heads: heads, reductionRatio: reductionRatio, linear: linear, qkvBias: qkvBias,
                              attnDrop: attnDrop, projDrop: projDrop)
        _dropPath1.wrappedValue = DropPath(dropPath)
        _norm2.wrappedValue = LayerNorm(dim, eps: normEps)
        _mlp.wrappedValue = PvtV2Mlp(dim, hidden: Int(Double(dim) * mlpRatio), drop: projDrop, extraReLU: linear)
        _dropPath2.wrappedValue = DropPath(dropPath)
    }

    func forward(_ x: Tensor, h: Int, w: Int) -> Tensor {
        let y = x + dropPath1(attn.forward(norm1(x), h: h, w: w))
        return y + dropPath2(mlp.forward(norm2(y), h: h, w: w))
    }
}

/// OverlapPatchEmbed: Conv2d(k, stride, padding k/2) → LayerNorm(1e-5); [B, H, W, C] → [B, h, w, D].
public final class PvtV2OverlapPatchEmbed: Module {
    @Child(key: "proj") public var proj: Conv2d
    @Child(key: "norm") public var norm: LayerNorm

    init(patchSize: Int, stride: Int, inChannels: Int, embedDim: Int) {
        _proj.wrappedValue = Conv2d(inChannels, embedDim, kernelSize: patchSize, stride: stride, padding: patchSize / 2)
        _norm.wrappedValue = LayerNorm(embedDim, eps: 1e-5)
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor { norm(proj(x)) }
}

/// PyramidVisionTransformerStage: (downsample) → blocks → norm; [B, H, W, C] → [B, h, w, D].
public final class PvtV2Stage: Module {
    @Child(key: "downsample") public var downsample: PvtV2OverlapPatchEmbed?
    @Child(key: "blocks") public var blocks: [PvtV2Block]
    @Child(key: "norm") public var norm: LayerNorm

    init(dim: Int, dimOut: Int, depth: Int, downsample: Bool, heads: Int, reductionRatio: Int, linear: Bool,
         mlpRatio: Double, qkvBias: Bool, projDrop: Float, attnDrop: Float, dropPath: [Float], normEps: Float) {
        _downsample.wrappedValue = downsample ? PvtV2OverlapPatchEmbed(patchSize: 3, stride: 2, inChannels: dim, embedDim: dimOut) : nil
        _blocks.wrappedValue = (0..<depth).map {
            PvtV2Block(dimOut, heads: heads, mlpRatio: mlpRatio, reductionRatio: reductionRatio, linear: linear, qkvBias: qkvBias,
                       projDrop: projDrop, attnDrop: attnDrop, dropPath: dropPath[$0], normEps: normEps)
        }
        _norm.wrappedValue = LayerNorm(dimOut, eps: normEps)
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        let map = downsample.map { $0(x) } ?? x
        let b = map.shape[0], h = map.shape[1], w = map.shape[2], c = map.shape[3]
        var t = map.reshaped([b, h * w, c])
        for block in blocks { t = block.forward(t, h: h, w: w) }
        return norm(t).reshaped([b, h, w, c])
    }
}

/// timm's PyramidVisionTransformerV2 constructor arguments.
public struct PvtV2Config: Codable, Sendable {
    public var inChans: Int = 3
    public var numClasses: Int = 1000
    public var globalPool: String = "avg"
    public var depths: [Int] = [3, 4, 6, 3]
    public var embedDims: [Int] = [64, 128, 256, 512]
    public var numHeads: [Int] = [1, 2, 4, 8]
    public var srRatios: [Int] = [8, 4, 2, 1]
    public var mlpRatios: [Double] = [8, 8, 4, 4]
    public var qkvBias: Bool = true
    public var linear: Bool = false
    public var dropRate: Double = 0
    public var projDropRate: Double = 0
    public var attnDropRate: Double = 0
    public var dropPathRate: Double = 0
    public var normLayer: ReferenceCallable?

    enum CodingKeys: String, CodingKey {
        case inChans, numClasses, globalPool, depths, embedDims, numHeads, srRatios, mlpRatios, qkvBias, linear
        case dropRate, projDropRate, attnDropRate, dropPathRate, normLayer
    }

    /// Reads the reference's arguments (absent ones keep the defaults above); num_heads, sr_ratios and mlp_ratios may be one
    /// number for every stage (timm's to_ntuple).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func list<T: Decodable>(_ key: CodingKeys, _ type: T.Type) throws -> [T]? {
            if let values = try? c.decodeIfPresent([T].self, forKey: key) { return values }
            return try c.decodeIfPresent(T.self, forKey: key).map { [$0] }
        }
        inChans = try c.value(.inChans, inChans)
        numClasses = try c.value(.numClasses, numClasses)
        globalPool = try c.value(.globalPool, globalPool)
        depths = try c.value(.depths, depths)
        embedDims = try c.value(.embedDims, embedDims)
        numHeads = try list(.numHeads, Int.self) ?? numHeads
        srRatios = try list(.srRatios, Int.self) ?? srRatios
        mlpRatios = try list(.mlpRatios, Double.self) ?? mlpRatios
        qkvBias = try c.value(.qkvBias, qkvBias)
        linear = try c.value(.linear, linear)
        dropRate = try c.value(.dropRate, dropRate)
        projDropRate = try c.value(.projDropRate, projDropRate)
        attnDropRate = try c.value(.attnDropRate, attnDropRate)
        dropPathRate = try c.value(.dropPathRate, dropPathRate)
        normLayer = try c.decodeIfPresent(ReferenceCallable.self, forKey: .normLayer)
    }

    public init(depths: [Int] = [3, 4, 6, 3], embedDims: [Int] = [64, 128, 256, 512], numHeads: [Int] = [1, 2, 4, 8],
                srRatios: [Int] = [8, 4, 2, 1], mlpRatios: [Double] = [8, 8, 4, 4], linear: Bool = false,
                numClasses: Int = 1000) {
        self.depths = depths; self.embedDims = embedDims; self.numHeads = numHeads; self.srRatios = srRatios
        self.mlpRatios = mlpRatios; self.linear = linear; self.numClasses = numClasses
    }

    /// The eps of `norm_layer`: timm's LayerNorm 1e-6 (the default), torch's 1e-5, or an `eps` in a partial's kwargs.
    func normEps() throws -> Float {
        guard let n = normLayer else { return 1e-6 }
        guard n.shortName == "LayerNorm", ["callable", "partial"].contains(n.type) else {
            throw ModelError("pvt_v2: norm_layer \(n.name) is not supported (timm.layers.LayerNorm, torch.nn.LayerNorm)")
        }
        for key in (n.kwargs ?? [:]).keys where key != "eps" {
            throw ModelError("pvt_v2: norm_layer argument \(key) is not supported (only eps)")
        }
        if let eps = n.kwargs?["eps"]?.double { return Float(eps) }
        return n.name.hasPrefix("timm.") ? 1e-6 : 1e-5
    }
}

extension PvtV2Config: ModelConfig {
    public func validate() throws {
        let check = ConfigCheck(family: "pvt_v2")
        let n = depths.count
        guard (1...8).contains(n) else { throw check.error("depths", depths, "must have 1 to 8 stages") }
        try check.depths(depths, "depths")
        // timm's to_ntuple: one value for every stage, or one per stage.
        func perStage<T>(_ list: [T], _ field: String) throws -> [T] {
            if list.count == 1 { return Array(repeating: list[0], count: n) }
            try check.perStage(list, field, stages: n, as: "depths")
            return list
        }
        try check.perStage(embedDims, "embed_dims", stages: n, as: "depths")
        let heads = try perStage(numHeads, "num_heads"), srs = try perStage(srRatios, "sr_ratios")
        let mlps = try perStage(mlpRatios, "mlp_ratios")
        for i in 0..<n {
            try check.width(embedDims[i], "embed_dims[\(i)]")
            try check.heads(heads[i], "num_heads[\(i)]", divide: embedDims[i], "embed_dims[\(i)]")
            try check.size(srs[i], "sr_ratios[\(i)]")
            try check.positive(mlps[i], "mlp_ratios[\(i)]")
        }
        try check.width(inChans, "in_chans")
        try check.classes(numClasses)
        try check.rates([(dropRate, "drop_rate"), (projDropRate, "proj_drop_rate"), (attnDropRate, "attn_drop_rate"),
                           (dropPathRate, "drop_path_rate")])
        var estimate = ConfigCheck.table(embedDims[n - 1], numClasses)
        for i in 0..<n {
            estimate += ConfigCheck.transformer(width: embedDims[i], depth: depths[i], mlpRatio: mlps[i])
                + Double(depths[i]) * Double(srs[i] * srs[i]) * Double(embedDims[i] * embedDims[i])
        }
        try check.parameters(estimate, "embed_dims, depths, mlp_ratios, sr_ratios, num_classes")
    }
    public var expectedInput: ExpectedInput { ExpectedInput(channels: inChans, side: nil) }
    public var classCount: Int { numClasses }
}

/// PyramidVisionTransformerV2: overlapping patch embedding (7x7/s4), stages with a
/// 3x3/s2 overlapping downsample, per-stage LayerNorm, global average pool, head.
public final class PvtV2: Module, ImageClassifier, CheckpointFiltering {
    @Child(key: "patch_embed") public var patchEmbed: PvtV2OverlapPatchEmbed
    @Child(key: "stages") public var stages: [PvtV2Stage]
    @Child(key: "head_drop") var headDrop: Dropout
    @Child(key: "head") var head: Module
    public let numFeatures: Int

    public init(_ c: PvtV2Config) throws {
        try c.validate()
        let depths = c.depths
        let n = depths.count
        // to_ntuple: a single entry is repeated for every stage.
        func perStage<T>(_ name: String, _ values: [T]) throws -> [T] {
            if values.count == 1 { return Array(repeating: values[0], count: n) }
            guard values.count == n else { throw ModelError("pvt_v2: \(name) has \(values.count) entries for \(n) stages") }
            return values
        }
        let dims = try perStage("embed_dims", c.embedDims)
        guard dims.count == n, c.embedDims.count == n else {
            throw ModelError("pvt_v2: embed_dims has \(c.embedDims.count) entries for \(n) stages")
        }
        let heads = try perStage("num_heads", c.numHeads)
        let srs = try perStage("sr_ratios", c.srRatios)
        let mlps = try perStage("mlp_ratios", c.mlpRatios)
        guard n > 0 else { throw ModelError("pvt_v2: depths is empty") }
        for i in 0..<n {
            guard dims[i] > 0, heads[i] > 0, dims[i] % heads[i] == 0 else {
                throw ModelError("pvt_v2: embed_dim \(dims[i]) of stage \(i) is not divisible by its \(heads[i]) heads")
            }
            guard srs[i] > 0, depths[i] >= 0 else { throw ModelError("pvt_v2: stage \(i) needs sr_ratio > 0 and depth >= 0") }
        }
        let pool = c.globalPool
        guard pool == "avg" else { throw ModelError("pvt_v2: global_pool \"\(pool)\" is not supported (avg)") }
        let eps = try c.normEps()
        let linear = c.linear
        let total = depths.reduce(0, +)
        let rates = dropPathRates(Float(c.dropPathRate), count: total)
        _patchEmbed.wrappedValue = PvtV2OverlapPatchEmbed(patchSize: 7, stride: 4, inChannels: c.inChans, embedDim: dims[0])
        var stages: [PvtV2Stage] = []
        var cur = 0
        for i in 0..<n {
            stages.append(PvtV2Stage(dim: i == 0 ? dims[0] : dims[i - 1], dimOut: dims[i], depth: depths[i], downsample: i > 0,
                                      heads: heads[i], reductionRatio: srs[i], linear: linear, mlpRatio: mlps[i],
                                      qkvBias: c.qkvBias, projDrop: Float(c.projDropRate),
                                      attnDrop: Float(c.attnDropRate), dropPath: Array(rates[cur..<(cur + depths[i])]),
                                      normEps: eps))
            cur += depths[i]
        }
        _stages.wrappedValue = stages
        numFeatures = dims[n - 1]
        _headDrop.wrappedValue = Dropout(Float(c.dropRate))
        _head.wrappedValue = PvtV2.makeHead(numFeatures, c.numClasses)
        super.init()
        initWeights()
    }

    /// timm's _init_weights: Linear trunc_normal(0.02) and zero bias; Conv2d N(0, √(2/fan_out)), zero bias.
    private func initWeights() {
        for (_, m) in namedModules() {
            if let l = m as? Linear {
                l.weight = Init.truncatedNormal(l.weight.shape, std: 0.02)
                if l.bias != nil { l.bias = Tensor.zeros([l.weight.shape[0]]) }
            } else if let conv = m as? Conv2d {
                let fanOut = conv.kernelSize.0 * conv.kernelSize.1 * conv.outChannels / conv.groups
                conv.weight = Tensor.randomNormal(conv.weight.shape, std: (2 / Float(fanOut)).squareRoot())
                if conv.bias != nil { conv.bias = Tensor.zeros([conv.outChannels]) }
            }
        }
    }

    static func makeHead(_ dim: Int, _ classes: Int) -> Module {
        guard classes > 0 else { return Identity() }
        let l = Linear(dim, classes)
        l.weight = Init.truncatedNormal(l.weight.shape, std: 0.02)
        l.bias = Tensor.zeros([classes])
        return l
    }

    /// The last stage's map [B, h, w, C].
    public func forwardFeatures(_ x: Tensor) -> Tensor { stages.reduce(patchEmbed(x)) { $1($0) } }

    public func forwardHead(_ features: Tensor, preLogits: Bool) -> Tensor {
        let pooled = headDrop(features.mean(alongAxes: [1, 2]))
        return preLogits ? pooled : head(pooled)
    }

    /// "patch_embed", then each stage's map "stages.i" [B, h, w, C].
    public func forwardIntermediates(_ x: Tensor) -> [(name: String, value: Tensor)] {
        var h = patchEmbed(x)
        var out: [(String, Tensor)] = [("patch_embed", h)]
        for (i, stage) in stages.enumerated() {
            h = stage(h)
            out.append(("stages.\(i)", h))
        }
        return out
    }

    public func resetClassifier(numClasses: Int) { head = PvtV2.makeHead(numFeatures, numClasses) }

    public override func callAsFunction(_ x: Tensor) -> Tensor { logits(x) }

    /// timm's checkpoint_filter_fn: the authors' checkpoints (`patch_embed1`, `block1.0`,
    /// `norm1`, `dwconv.dwconv`) renamed to timm's keys; timm's own pass unchanged. There
    /// is no position table, so another input size needs no resampling.
    public func checkpointFilter(_ stateDict: [String: Tensor]) -> [String: Tensor] {
        if stateDict["patch_embed.proj.weight"] != nil { return stateDict }
        var out: [String: Tensor] = [:]
        for (key, value) in stateDict {
            var k = key
            if k.hasPrefix("patch_embed") {
                k = k.replacingOccurrences(of: "patch_embed1", with: "patch_embed")
                for s in 2...4 { k = k.replacingOccurrences(of: "patch_embed\(s)", with: "stages.\(s - 1).downsample") }
            }
            k = k.replacingOccurrences(of: "dwconv.dwconv", with: "dwconv")
            k = PvtV2.renameIndexed(k, prefix: "block", anchored: false) { "stages.\($0 - 1).blocks." }
            k = PvtV2.renameIndexed(k, prefix: "norm", anchored: true) { "stages.\($0 - 1).norm" }
            out[k] = value
        }
        return out
    }

    /// `block3.1` → "stages.2.blocks.1" (first occurrence, like timm's re.sub of `block(\d+).(\d+)`);
    /// `norm4.weight` at the start → "stages.3.norm.weight".
    static func renameIndexed(_ key: String, prefix: String, anchored: Bool, _ replacement: (Int) -> String) -> String {
        var search = key.startIndex
        while let r = key.range(of: prefix, range: search..<key.endIndex) {
            if anchored && r.lowerBound != key.startIndex { return key }
            let digits = key[r.upperBound...].prefix(while: \.isNumber)
            if let stage = Int(digits) {
                let afterDigits = key.index(r.upperBound, offsetBy: digits.count)
                if !anchored {
                    // `block(\d+).(\d+)`: one character, then digits.
                    guard afterDigits < key.endIndex else { return key }
                    let next = key.index(after: afterDigits)
                    guard next < key.endIndex, key[next].isNumber else { search = r.upperBound; continue }
                    return String(key[..<r.lowerBound]) + replacement(stage) + String(key[next...])
                }
                return String(key[..<r.lowerBound]) + replacement(stage) + String(key[afterDigits...])
            }
            if anchored { return key }
            search = r.upperBound
        }
        return key
    }
}

extension PvtV2 {
    @Sendable static func build(_ config: JSONValue) throws -> ImageClassifier { try PvtV2(config.decode(PvtV2Config.self)) }

    /// A timm entrypoint: `model_args` as `pvt_v2.py` registers it.
    static func variant(_ name: String, _ arguments: [String: JSONValue]) -> ModelVariant {
        ModelVariant(name, family: "pvt_v2", inputSize: 224, arguments: arguments, build: build)
    }

    /// timm's pvt_v2_b0 … b5 and b2_li.
    public static let family = ModelFamily(
        name: "pvt_v2", reference: "timm 1.0.31 timm.models.pvt_v2.PyramidVisionTransformerV2",
        variants: [
            variant("pvt_v2_b0", ["depths": [2, 2, 2, 2], "embed_dims": [32, 64, 160, 256], "num_heads": [1, 2, 5, 8]]),
            variant("pvt_v2_b1", ["depths": [2, 2, 2, 2], "embed_dims": [64, 128, 320, 512], "num_heads": [1, 2, 5, 8]]),
            variant("pvt_v2_b2", ["depths": [3, 4, 6, 3], "embed_dims": [64, 128, 320, 512], "num_heads": [1, 2, 5, 8]]),
            variant("pvt_v2_b3", ["depths": [3, 4, 18, 3], "embed_dims": [64, 128, 320, 512], "num_heads": [1, 2, 5, 8]]),
            variant("pvt_v2_b4", ["depths": [3, 8, 27, 3], "embed_dims": [64, 128, 320, 512], "num_heads": [1, 2, 5, 8]]),
            variant("pvt_v2_b5", ["depths": [3, 6, 40, 3], "embed_dims": [64, 128, 320, 512], "num_heads": [1, 2, 5, 8],
                                  "mlp_ratios": [4, 4, 4, 4]]),
            variant("pvt_v2_b2_li", ["depths": [3, 4, 6, 3], "embed_dims": [64, 128, 320, 512], "num_heads": [1, 2, 5, 8],
                                     "linear": true]),
            // For 32x32: three stages on 8x8, 4x4 and 2x2 maps.
            ModelVariant("pvt_v2_nano", family: "pvt_v2", inputSize: 32) { classes in
                try PvtV2(PvtV2Config(depths: [2, 2, 2], embedDims: [48, 96, 192], numHeads: [1, 2, 4], srRatios: [2, 2, 1],
                                      mlpRatios: [4, 4, 4], numClasses: classes))
            },
        ],
        build: build)
}
