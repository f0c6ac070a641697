import Foundation
import Patchwork
import PatchworkNN

// timm's MaxxVit (timm/models/maxxvit.py, timm 1.0.31): the one model behind the
// CoAtNet family (stages of MBConv blocks "C" then transformer blocks "T") and the
// MaxViT family (blocks "M": MBConv, then block (window) attention, then grid
// attention). The building blocks are shared, as in timm; the families and their
// named variants live in CoAtNet.swift and MaxViT.swift.
// Blocks → model → checkpoint filter, in timm's order. All maps are channels-last
// [B, H, W, C]; timm's NCHW 1x1 convs are Conv2d 1x1 here (same keys and shapes).

// MARK: - Config (timm's dataclasses, under their field names)

/// An integer or a pair of integers (timm's `to_2tuple` arguments).
public struct IntPair: Codable, Equatable, Sendable {
    public var values: (Int, Int)
    public init(_ a: Int, _ b: Int) { values = (a, b) }
    public init(_ a: Int) { values = (a, a) }
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let v = try? c.decode(Int.self) { values = (v, v); return }
        let a = try c.decode([Int].self)
        guard a.count == 2 else { throw ModelError("expected an integer or a pair of integers, got \(a)") }
        values = (a[0], a[1])
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode([values.0, values.1])
    }
    public static func == (a: IntPair, b: IntPair) -> Bool { a.values == b.values }
}

/// One stage's block types: a single type for every block ("C") or one per block (("C", "T")).
public struct BlockTypes: Codable, Equatable, Sendable {
    public var types: [String]
    public init(_ types: [String]) { self.types = types }
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) { types = [s] } else { types = try c.decode([String].self) }
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        if types.count == 1 { try c.encode(types[0]) } else { try c.encode(types) }
    }
    /// timm's `extend_tuple`: the last type repeats up to `depth`.
    func extended(to depth: Int) -> [String] {
        (0..<depth).map { $0 < types.count ? types[$0] : types.last ?? "C" }
    }
}

/// A config object the fixtures tag as `{"$type": "instance", "name": ..., "kwargs": {...}}`.
struct TaggedInstance<T: Decodable>: Decodable { let kwargs: T }

extension KeyedDecodingContainer {
    /// The value under `key` when present and not null, else `current` (the dataclass default).
    func value<T: Decodable>(_ key: Key, _ current: T) throws -> T { try decodeIfPresent(T.self, forKey: key) ?? current }
    /// A nested config given plainly or as a tagged instance.
    func config<T: Decodable>(_ key: Key, _ current: T) throws -> T {
        guard contains(key), try !decodeNil(forKey: key) else { return current }
        // A tagged instance's kwargs are decoded strictly: a bad field is an error, not a fallback to the defaults.
        if (try? decode([String: JSONValue].self, forKey: key))?["$type"] != nil {
            return try decode(TaggedInstance<T>.self, forKey: key).kwargs
        }
        return try decode(T.self, forKey: key)
    }
}

/// timm's `MaxxVitConvCfg` (defaults as the dataclass; `norm_layer`, `norm_eps` and
/// `downsample_pool_type` resolved as its `__post_init__` does, in the model).
public struct MaxxVitConvCfg: Codable, Sendable {
    public var blockType = "mbconv"
    public var expandRatio: Double = 4
    public var expandOutput = true
    public var kernelSize = 3
    public var groupSize = 1
    public var preNormAct = false
    public var outputBias = true
    public var strideMode = "dw"
    public var poolType = "avg2"
    public var downsamplePoolType = "avg2"
    public var padding = ""
    public var attnEarly = false
    public var attnLayer = "se"
    public var attnActLayer = "silu"
    public var attnRatio: Double = 0.25
    public var initValues: Double? = 1e-6
    public var actLayer = "gelu"
    public var normLayer = ""
    public var normLayerCl = ""
    public var normEps: Double?

    public init() {}
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        blockType = try c.value(.blockType, blockType); expandRatio = try c.value(.expandRatio, expandRatio)
        expandOutput = try c.value(.expandOutput, expandOutput); kernelSize = try c.value(.kernelSize, kernelSize)
        groupSize = try c.value(.groupSize, groupSize); preNormAct = try c.value(.preNormAct, preNormAct)
        outputBias = try c.value(.outputBias, outputBias); strideMode = try c.value(.strideMode, strideMode)
        poolType = try c.value(.poolType, poolType)
        downsamplePoolType = try c.value(.downsamplePoolType, downsamplePoolType)
        padding = try c.value(.padding, padding); attnEarly = try c.value(.attnEarly, attnEarly)
        attnLayer = try c.value(.attnLayer, attnLayer); attnActLayer = try c.value(.attnActLayer, attnActLayer)
        attnRatio = try c.value(.attnRatio, attnRatio)
        if c.contains(.initValues) { initValues = try c.decodeIfPresent(Double.self, forKey: .initValues) }
        actLayer = try c.value(.actLayer, actLayer); normLayer = try c.value(.normLayer, normLayer)
        normLayerCl = try c.value(.normLayerCl, normLayerCl); normEps = try c.decodeIfPresent(Double.self, forKey: .normEps)
        if downsamplePoolType.isEmpty { downsamplePoolType = poolType }
    }

    var resolvedNormLayer: String { normLayer.isEmpty ? (blockType == "mbconv" ? "batchnorm2d" : "layernorm2d") : normLayer }
    var resolvedNormEps: Float { Float(normEps ?? (blockType == "mbconv" ? 1e-5 : 1e-6)) }
}

/// timm's `MaxxVitTransformerCfg`.
public struct MaxxVitTransformerCfg: Codable, Sendable {
    public var dimHead = 32
    public var headFirst = true
    public var expandRatio: Double = 4
    public var expandFirst = true
    public var shortcutBias = true
    public var attnBias = true
    public var attnDrop: Double = 0
    public var projDrop: Double = 0
    public var poolType = "avg2"
    public var relPosType = "bias"
    public var relPosDim = 512
    public var partitionRatio = 32
    public var windowSize: IntPair?
    public var gridSize: IntPair?
    public var noBlockAttn = false
    public var useNchwAttn = false
    public var initValues: Double?
    public var actLayer = "gelu"
    public var normLayer = "layernorm2d"
    public var normLayerCl = "layernorm"
    public var normEps: Double = 1e-6

    public init() {}
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        dimHead = try c.value(.dimHead, dimHead); headFirst = try c.value(.headFirst, headFirst)
        expandRatio = try c.value(.expandRatio, expandRatio); expandFirst = try c.value(.expandFirst, expandFirst)
        shortcutBias = try c.value(.shortcutBias, shortcutBias); attnBias = try c.value(.attnBias, attnBias)
        attnDrop = try c.value(.attnDrop, attnDrop); projDrop = try c.value(.projDrop, projDrop)
        poolType = try c.value(.poolType, poolType); relPosType = try c.value(.relPosType, relPosType)
        relPosDim = try c.value(.relPosDim, relPosDim); partitionRatio = try c.value(.partitionRatio, partitionRatio)
        windowSize = try c.decodeIfPresent(IntPair.self, forKey: .windowSize)
        gridSize = try c.decodeIfPresent(IntPair.self, forKey: .gridSize) ?? windowSize
        noBlockAttn = try c.value(.noBlockAttn, noBlockAttn); useNchwAttn = try c.value(.useNchwAttn, useNchwAttn)
        initValues = try c.decodeIfPresent(Double.self, forKey: .initValues)
        actLayer = try c.value(.actLayer, actLayer); normLayer = try c.value(.normLayer, normLayer)
        normLayerCl = try c.value(.normLayerCl, normLayerCl); normEps = try c.value(.normEps, normEps)
    }
}

/// timm's `MaxxVitCfg`.
public struct MaxxVitCfg: Codable, Sendable {
    public var embedDim = [96, 192, 384, 768]
    public var depths = [2, 3, 5, 2]
    public var blockType = ["C", "C", "T", "T"].map { BlockTypes([$0]) }
    public var stemWidth = IntPair(64)
    public var stemBias = false
    public var convCfg = MaxxVitConvCfg()
    public var transformerCfg = MaxxVitTransformerCfg()
    public var headHiddenSize: Int?
    public var weightInit = "vit_eff"

    public init() {}
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        embedDim = try c.value(.embedDim, embedDim); depths = try c.value(.depths, depths)
        blockType = try c.value(.blockType, blockType); stemWidth = try c.value(.stemWidth, stemWidth)
        stemBias = try c.value(.stemBias, stemBias)
        convCfg = try c.config(.convCfg, convCfg); transformerCfg = try c.config(.transformerCfg, transformerCfg)
        headHiddenSize = try c.decodeIfPresent(Int.self, forKey: .headHiddenSize)
        weightInit = try c.value(.weightInit, weightInit)
    }
}

/// The arguments of timm's `MaxxVit(cfg, img_size, in_chans, num_classes, global_pool, drop_rate, drop_path_rate)`.
public struct MaxxVitConfig: Codable, Sendable {
    public var cfg = MaxxVitCfg()
    public var imgSize = IntPair(224)
    public var inChans = 3
    public var numClasses = 1000
    public var globalPool = "avg"
    public var dropRate: Double = 0
    public var dropPathRate: Double = 0

    public init(cfg: MaxxVitCfg, imgSize: Int = 224, numClasses: Int = 1000) {
        self.cfg = cfg; self.imgSize = IntPair(imgSize); self.numClasses = numClasses
    }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        cfg = try c.config(.cfg, cfg); imgSize = try c.value(.imgSize, imgSize)
        inChans = try c.value(.inChans, inChans); numClasses = try c.value(.numClasses, numClasses)
        globalPool = try c.value(.globalPool, globalPool); dropRate = try c.value(.dropRate, dropRate)
        dropPathRate = try c.value(.dropPathRate, dropPathRate)
    }
}

extension MaxxVitConfig: ModelConfig {
    public func validate() throws { try validate(family: "maxxvit") }

    func validate(family: String) throws {
        let check = ConfigCheck(family: family)
        let n = cfg.embedDim.count
        guard n >= 1 else { throw check.error("embed_dim", cfg.embedDim, "must have at least one stage") }
        try check.perStage(cfg.depths, "depths", stages: n, as: "embed_dim")
        try check.perStage(cfg.blockType, "block_type", stages: n, as: "embed_dim")
        for (i, w) in cfg.embedDim.enumerated() { try check.width(w, "embed_dim[\(i)]") }
        try check.depths(cfg.depths, "depths", minimum: 1)
        try check.width(cfg.stemWidth.values.0, "stem_width")
        try check.width(cfg.stemWidth.values.1, "stem_width")
        if let h = cfg.headHiddenSize { try check.width(h, "head_hidden_size") }
        try check.size(imgSize.values.0, "img_size")
        try check.size(imgSize.values.1, "img_size")
        try check.width(inChans, "in_chans")
        try check.classes(numClasses)
        try check.rates([(dropRate, "drop_rate"), (dropPathRate, "drop_path_rate")])
        let conv = cfg.convCfg, t = cfg.transformerCfg
        try check.positive(conv.expandRatio, "conv_cfg.expand_ratio", maximum: 64)
        try check.size(conv.kernelSize, "conv_cfg.kernel_size")
        guard conv.groupSize >= 0 else { throw check.error("conv_cfg.group_size", conv.groupSize, "must not be negative") }
        try check.positive(conv.attnRatio, "conv_cfg.attn_ratio", maximum: 64)
        if let v = conv.initValues { try check.finite(v, "conv_cfg.init_values") }
        if let v = conv.normEps { try check.positive(v, "conv_cfg.norm_eps", maximum: 1) }
        try check.width(t.dimHead, "transformer_cfg.dim_head")
        try check.positive(t.expandRatio, "transformer_cfg.expand_ratio", maximum: 64)
        try check.rates([(t.attnDrop, "transformer_cfg.attn_drop"), (t.projDrop, "transformer_cfg.proj_drop")])
        try check.width(t.relPosDim, "transformer_cfg.rel_pos_dim")
        try check.size(t.partitionRatio, "transformer_cfg.partition_ratio")
        for (pair, field) in [(t.windowSize, "transformer_cfg.window_size"), (t.gridSize, "transformer_cfg.grid_size")] {
            if let p = pair { try check.size(p.values.0, field); try check.size(p.values.1, field) }
        }
        if let v = t.initValues { try check.finite(v, "transformer_cfg.init_values") }
        try check.positive(t.normEps, "transformer_cfg.norm_eps", maximum: 1)
        for (i, w) in cfg.embedDim.enumerated() where cfg.blockType[i].types.contains(where: { $0 != "C" }) {
            try check.divisible(w, "embed_dim[\(i)]", by: t.dimHead, "transformer_cfg.dim_head")
        }
        let ratio = max(conv.expandRatio, t.expandRatio)
        var estimate = ConfigCheck.table(cfg.embedDim.last!, max(numClasses, cfg.headHiddenSize ?? 0))
        for i in 0..<n { estimate += ConfigCheck.transformer(width: cfg.embedDim[i], depth: cfg.depths[i], mlpRatio: ratio) * 2 }
        try check.parameters(estimate, "embed_dim, depths, expand_ratio, num_classes")
    }
    public var expectedInput: ExpectedInput { ExpectedInput(channels: inChans, height: imgSize.values.0, width: imgSize.values.1) }
    public var classCount: Int { numClasses }
}

// MARK: - Layers

/// timm's `make_divisible` (divisor 8, round limit 0.9).
func makeDivisible(_ v: Double, divisor: Int = 8, roundLimit: Double = 0.9) -> Int {
    var n = max(divisor, Int(v + Double(divisor) / 2) / divisor * divisor)
    if Double(n) < roundLimit * v { n += divisor }
    return n
}

func maxxActivation(_ name: String, _ what: String) throws -> Activation {
    guard let a = Activation(rawValue: name) else {
        throw ModelError("maxxvit: \(what) \"\(name)\" is not supported (gelu, gelu_tanh, relu, silu, swish, tanh, ...)")
    }
    return a
}

/// timm's `create_conv2d` with padding "" (symmetric, `((stride - 1) + dilation·(k - 1)) / 2`) or
/// "same" (TF-style: static when stride 1, else computed from the input size, odd extra after).
final class MaxxConv2d: Module {
    @Parameter(key: "weight", layout: .convWeight) var weight: Tensor
    @OptionalParameter(key: "bias") var bias: Tensor?
    let stride: Int
    let dilation: Int
    let groups: Int
    let same: Bool

    init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, dilation: Int = 1, groups: Int = 1,
         bias: Bool = false, padding: String = "") {
        let fanIn = inChannels / groups * kernelSize * kernelSize
        _weight.wrappedValue = Init.torchDefault([outChannels, kernelSize, kernelSize, inChannels / groups], fanIn: fanIn)
        _bias.wrappedValue = bias ? Init.torchDefault([outChannels], fanIn: fanIn) : nil
        self.stride = stride; self.dilation = dilation; self.groups = groups
        // "same" is static (symmetric) at stride 1 with an even total padding.
        self.same = padding == "same" && !(stride == 1 && (dilation * (kernelSize - 1)) % 2 == 0)
        super.init()
    }

    override func callAsFunction(_ x: Tensor) -> Tensor {
        let k = weight.shape[1]
        if same {
            let ph = StdConv2d.samePadding(inputSize: x.shape[1], kernel: k, stride: stride, dilation: dilation)
            let pw = StdConv2d.samePadding(inputSize: x.shape[2], kernel: k, stride: stride, dilation: dilation)
            if ph.before == ph.after && pw.before == pw.after {
                return conv2d(x, weight: weight, bias: bias, stride: (stride, stride), padding: (ph.before, pw.before),
                              dilation: (dilation, dilation), groups: groups)
            }
            return conv2d(x.padded([(0, 0), ph, pw, (0, 0)]), weight: weight, bias: bias, stride: (stride, stride),
                          dilation: (dilation, dilation), groups: groups)
        }
        let p = ((stride - 1) + dilation * (k - 1)) / 2
        return conv2d(x, weight: weight, bias: bias, stride: (stride, stride), padding: (p, p),
                      dilation: (dilation, dilation), groups: groups)
    }
}

/// timm's BatchNormAct2d: batch norm (running statistics in eval, batch statistics in
/// training), then the activation when `act` is set. Keys as torch's BatchNorm2d.
final class BatchNormAct2d: Module {
    @OptionalParameter(key: "weight") var weight: Tensor?
    @OptionalParameter(key: "bias") var bias: Tensor?
    @Buffer(key: "running_mean") var runningMean: Tensor
    @Buffer(key: "running_var") var runningVar: Tensor
    @Buffer(key: "num_batches_tracked", checkpointDType: .I64) var numBatchesTracked: Tensor
    let eps: Float
    let momentum: Float = 0.1
    let act: Activation?

    init(_ channels: Int, eps: Float, act: Activation?) {
        _weight.wrappedValue = Tensor.ones([channels])
        _bias.wrappedValue = Tensor.zeros([channels])
        _runningMean.wrappedValue = Tensor.zeros([channels])
        _runningVar.wrappedValue = Tensor.ones([channels])
        _numBatchesTracked.wrappedValue = Tensor(0)
        self.eps = eps
        self.act = act
        super.init()
    }

    override func callAsFunction(_ x: Tensor) -> Tensor {
        let y: Tensor
        if training {
            let (out, mean, unbiasedVariance) = batchNormTraining(x, weight: weight, bias: bias, eps: eps)
            withoutGrad {
                runningMean = runningMean * (1 - momentum) + mean.detached() * momentum
                runningVar = runningVar * (1 - momentum) + unbiasedVariance.detached() * momentum
                numBatchesTracked = numBatchesTracked + 1
            }
            y = out
        } else {
            y = batchNorm(x, mean: runningMean, variance: runningVar, weight: weight, bias: bias, eps: eps)
        }
        return act.map { $0(y) } ?? y
    }
}

/// timm's Downsample2d: a pool ("avg2"/"max2": kernel = stride = 2; "avg"/"max": 3x3/s2/p1),
/// then a 1x1 conv `expand` when the width changes. With padding "same", TF-style
/// dynamic padding (AvgPool2dSame counts the zero padding, MaxPool2dSame pads with −∞).
final class Downsample2d: Module {
    let poolType: String
    let same: Bool
    @Child(key: "expand") var expand: Conv2d?

    init(_ dim: Int, _ dimOut: Int, poolType: String, padding: String = "", bias: Bool = true) throws {
        guard ["avg2", "max2", "avg", "max"].contains(poolType) else {
            throw ModelError("maxxvit: pool_type \"\(poolType)\" is not supported (avg2, max2, avg, max)")
        }
        self.poolType = poolType
        self.same = padding == "same"
        _expand.wrappedValue = dim != dimOut ? Conv2d(dim, dimOut, kernelSize: 1, bias: bias) : nil
    }

    override func callAsFunction(_ x: Tensor) -> Tensor {
        let k = poolType.hasSuffix("2") ? 2 : 3
        let isMax = poolType.hasPrefix("max")
        var y: Tensor
        if same {
            let ph = StdConv2d.samePadding(inputSize: x.shape[1], kernel: k, stride: 2)
            let pw = StdConv2d.samePadding(inputSize: x.shape[2], kernel: k, stride: 2)
            let padded = ph.before + ph.after + pw.before + pw.after == 0 ? x
                : x.padded([(0, 0), ph, pw, (0, 0)], value: isMax ? -Float.infinity : 0)
            y = isMax ? maxPool2d(padded, kernel: (k, k), stride: (2, 2))
                      : avgPool2d(padded, kernel: (k, k), stride: (2, 2), countIncludePad: true)
        } else {
            let p = k == 3 ? 1 : 0
            y = isMax ? maxPool2d(x, kernel: (k, k), stride: (2, 2), padding: (p, p))
                      : avgPool2d(x, kernel: (k, k), stride: (2, 2), padding: (p, p), countIncludePad: false)
        }
        if let expand { y = expand(y) }
        return y
    }
}

/// timm's SEModule (squeeze-excitation): mean over positions → 1x1 conv → act → 1x1 conv → sigmoid gate.
final class SqueezeExcite: Module {
    @Child(key: "fc1") var fc1: Conv2d
    let act: Activation
    @Child(key: "fc2") var fc2: Conv2d

    init(_ channels: Int, rdChannels: Int, act: Activation) {
        _fc1.wrappedValue = Conv2d(channels, rdChannels, kernelSize: 1)
        self.act = act
        _fc2.wrappedValue = Conv2d(rdChannels, channels, kernelSize: 1)
    }

    override func callAsFunction(_ x: Tensor) -> Tensor {
        x * fc2(act(fc1(x.mean(alongAxes: [1, 2], keepDims: true)))).sigmoid()
    }
}

/// timm's Mlp (Linear layers, channels-last blocks) and ConvMlp (1x1 convs, the
/// CoAtNet transformer block): fc1 → act → drop → fc2 → drop. Same keys, and the same
/// computation on channels-last maps; only the checkpoint shapes differ.
final class MaxxMlp: Module {
    @Child(key: "fc1") var fc1: Module
    let act: Activation
    @Child(key: "drop1") var drop1: Dropout
    @Child(key: "fc2") var fc2: Module
    @Child(key: "drop2") var drop2: Dropout

    init(_ dim: Int, hidden: Int, act: Activation, conv: Bool, drop: Float) {
        _fc1.wrappedValue = conv ? Conv2d(dim, hidden, kernelSize: 1) : Linear(dim, hidden)
        self.act = act
        _drop1.wrappedValue = Dropout(drop)
        _fc2.wrappedValue = conv ? Conv2d(hidden, dim, kernelSize: 1) : Linear(hidden, dim)
        _drop2.wrappedValue = Dropout(drop)
    }

    override func callAsFunction(_ x: Tensor) -> Tensor { drop2(fc2(drop1(act(fc1(x))))) }
}

/// timm's RelPosBias (`rel_pos_type="bias"`, table [(2h-1)(2w-1), heads], indexed by
/// query − key) and RelPosBiasTf (`"bias_tf"`, table [heads, 2h-1, 2w-1], indexed by
/// key − query, as TF MaxViT's one-hot einsum lookups). The index is recomputed (it is a
/// non-persistent buffer in timm).
public final class RelPosBias: Module {
    @Parameter(key: "relative_position_bias_table") public var relativePositionBiasTable: Tensor
    let tfLayout: Bool
    let window: (Int, Int)
    let heads: Int
    let index: [Int]

    public init(window: (Int, Int), heads: Int, tfLayout: Bool) {
        let (h, w) = window
        let vh = 2 * h - 1, vw = 2 * w - 1
        _relativePositionBiasTable.wrappedValue = tfLayout ? Tensor.randomNormal([heads, vh, vw], std: 0.02)
                                             : Init.truncatedNormal([vh * vw, heads], std: 0.02)
        self.tfLayout = tfLayout
        self.window = window
        self.heads = heads
        var index: [Int] = []
        index.reserveCapacity(h * w * h * w)
        for qy in 0..<h { for qx in 0..<w { for ky in 0..<h { for kx in 0..<w {
            index.append(tfLayout ? (ky - qy + h - 1) * vw + (kx - qx + w - 1)
                                  : (qy - ky + h - 1) * vw + (qx - kx + w - 1))
        } } } }
        self.index = index
        super.init()
    }

    /// The bias [1, heads, N, N] added to the attention logits.
    public func bias() -> Tensor {
        let n = window.0 * window.1
        if tfLayout {
            return relativePositionBiasTable.reshaped([heads, -1]).indexSelect(axis: 1, indices: index).reshaped([1, heads, n, n])
        }
        return relativePositionBiasTable.indexSelect(axis: 0, indices: index).permuted([1, 0]).reshaped([1, heads, n, n])
    }
}

/// timm's Attention2d (CoAtNet: 1x1-conv qkv/proj over the whole map) and AttentionCl
/// (MaxViT partitions: Linear qkv/proj), on channels-last [G, h, w, C]. `headFirst`
/// picks the qkv channel layout: per head (q, k, v) blocks (timm's default) or
/// (q | k | v) with heads inside (TF MaxViT). Optional relative-position bias.
public final class MaxxAttention: Module, AttentionRecording {
    @Child(key: "qkv") var qkv: Module
    @Child(key: "rel_pos") var relPos: RelPosBias?
    @Child(key: "attn_drop") var attnDrop: Dropout
    @Child(key: "proj") var proj: Module
    @Child(key: "proj_drop") var projDrop: Dropout
    let heads: Int
    let dimHead: Int
    let headFirst: Bool
    let scale: Float
    public let recorder = AttentionRecorder()

    init(dim: Int, dimOut: Int, dimAttn: Int, dimHead: Int, bias: Bool, headFirst: Bool, conv: Bool,
         relPos: (window: (Int, Int), tf: Bool)?, attnDrop: Float, projDrop: Float) throws {
        guard dimAttn % dimHead == 0 else {
            throw ModelError("maxxvit: attention width \(dimAttn) is not divisible by dim_head \(dimHead)")
        }
        heads = dimAttn / dimHead
        self.dimHead = dimHead
        self.headFirst = headFirst
        scale = 1 / Float(dimHead).squareRoot()
        _qkv.wrappedValue = conv ? Conv2d(dim, dimAttn * 3, kernelSize: 1, bias: bias) : Linear(dim, dimAttn * 3, bias: bias)
        _relPos.wrappedValue = relPos.map { RelPosBias(window: $0.window, heads: dimAttn / dimHead, tfLayout: $0.tf) }
        _attnDrop.wrappedValue = Dropout(attnDrop)
        _proj.wrappedValue = conv ? Conv2d(dimAttn, dimOut, kernelSize: 1, bias: bias) : Linear(dimAttn, dimOut, bias: bias)
        _projDrop.wrappedValue = Dropout(projDrop)
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor { forward(x) }

    /// x [G, h, w, C] → [G, h, w, C_out]. `positions` ([N, 2] or [G, N, 2]) is evaluated
    /// only when recording; by default the tokens are the h×w grid of the whole image.
    func forward(_ x: Tensor, positions: @autoclosure () -> Tensor? = nil) -> Tensor {
        let g = x.shape[0], h = x.shape[1], w = x.shape[2], n = h * w
        if let relPos, relPos.window != (h, w) {
            fail("MaxxAttention", "input \(h)x\(w) does not match the relative-position window \(relPos.window.0)x\(relPos.window.1) "
                 + "(the model was built for another image size)")
        }
        let t = qkv(x)
        let parts = (headFirst ? t.reshaped([g, n, heads, 3, dimHead]).permuted([3, 0, 2, 1, 4])
                               : t.reshaped([g, n, 3, heads, dimHead]).permuted([2, 0, 3, 1, 4])).unbound(axis: 0)
        let (mixed, _) = scaledDotProductAttention(
            q: parts[0], k: parts[1], v: parts[2],
            scale: scale, bias: relPos?.bias(), dropout: attnDrop, recorder: recorder,
            queryPositions: positions() ?? AttentionMap.gridPositions(height: h, width: w),
            keyPositions: positions() ?? AttentionMap.gridPositions(height: h, width: w))
        return projDrop(proj(mixed.reshaped([g, h, w, heads * dimHead])))
    }
}

// MARK: - Blocks

/// timm's MbConvBlock: pre-norm (BN) → [pool] → 1x1 expand → BN-act → kxk depthwise
/// (stride) → [SE] → BN-act → [SE] → 1x1 project, + shortcut (pool + 1x1 when strided).
final class MbConvBlock: Module {
    @Child(key: "shortcut") var shortcut: Downsample2d?
    @Child(key: "pre_norm") var preNorm: BatchNormAct2d
    @Child(key: "down") var down: Downsample2d?
    @Child(key: "conv1_1x1") var conv1_1x1: MaxxConv2d
    @Child(key: "norm1") var norm1: BatchNormAct2d
    @Child(key: "conv2_kxk") var conv2_kxk: MaxxConv2d
    @Child(key: "se_early") var seEarly: SqueezeExcite?
    @Child(key: "norm2") var norm2: BatchNormAct2d
    @Child(key: "se") var se: SqueezeExcite?
    @Child(key: "conv3_1x1") var conv3_1x1: MaxxConv2d
    @Child(key: "drop_path") var dropPath: DropPath

    init(_ inChs: Int, _ outChs: Int, stride: Int, cfg: MaxxVitConvCfg, dropPath: Float) throws {
        guard cfg.blockType == "mbconv" else {
            throw ModelError("maxxvit: conv block_type \"\(cfg.blockType)\" is not supported (mbconv)")
        }
        guard ["batchnorm2d", "batchnorm"].contains(cfg.resolvedNormLayer) else {
            throw ModelError("maxxvit: conv norm_layer \"\(cfg.resolvedNormLayer)\" is not supported (batchnorm2d)")
        }
        guard cfg.attnLayer == "se" else { throw ModelError("maxxvit: conv attn_layer \"\(cfg.attnLayer)\" is not supported (se)") }
        let act = try maxxActivation(cfg.actLayer, "act_layer")
        let eps = cfg.resolvedNormEps
        let midChs = makeDivisible(Double(cfg.expandOutput ? outChs : inChs) * cfg.expandRatio)
        guard cfg.groupSize <= 0 || midChs % cfg.groupSize == 0 else {
            throw ModelError("maxxvit: group_size \(cfg.groupSize) does not divide \(midChs) channels")
        }
        let groups = cfg.groupSize <= 0 ? 1 : midChs / cfg.groupSize
        _shortcut.wrappedValue = stride == 2 ? try Downsample2d(inChs, outChs, poolType: cfg.poolType, padding: cfg.padding, bias: cfg.outputBias) : nil
        var (stridePool, stride1, stride2) = (1, 1, 1)
        switch cfg.strideMode {
        case "pool": stridePool = stride
        case "1x1": stride1 = stride
        case "dw": stride2 = stride
        default: throw ModelError("maxxvit: stride_mode \"\(cfg.strideMode)\" is not supported (pool, 1x1, dw)")
        }
        _preNorm.wrappedValue = BatchNormAct2d(inChs, eps: eps, act: cfg.preNormAct ? act : nil)
        _down.wrappedValue = stridePool > 1 ? try Downsample2d(inChs, inChs, poolType: cfg.downsamplePoolType, padding: cfg.padding) : nil
        _conv1_1x1.wrappedValue = MaxxConv2d(inChs, midChs, kernelSize: 1, stride: stride1)
        _norm1.wrappedValue = BatchNormAct2d(midChs, eps: eps, act: act)
        _conv2_kxk.wrappedValue = MaxxConv2d(midChs, midChs, kernelSize: cfg.kernelSize, stride: stride2, groups: groups,
                               padding: cfg.padding)
        let rd = Int(cfg.attnRatio * Double(cfg.expandOutput ? outChs : midChs))
        let seAct = try maxxActivation(cfg.attnActLayer, "attn_act_layer")
        _seEarly.wrappedValue = cfg.attnEarly ? SqueezeExcite(midChs, rdChannels: rd, act: seAct) : nil
        _norm2.wrappedValue = BatchNormAct2d(midChs, eps: eps, act: act)
        _se.wrappedValue = cfg.attnEarly ? nil : SqueezeExcite(midChs, rdChannels: rd, act: seAct)
        _conv3_1x1.wrappedValue = MaxxConv2d(midChs, outChs, kernelSize: 1, bias: cfg.outputBias)
        _dropPath.wrappedValue = DropPath(dropPath)
    }

    override func callAsFunction(_ x: Tensor) -> Tensor {
        let sc = shortcut.map { $0(x) } ?? x
        var y = preNorm(x)
        if let down { y = down(y) }
        y = norm1(conv1_1x1(y))
        y = conv2_kxk(y)
        if let seEarly { y = seEarly(y) }
        y = norm2(y)
        if let se { y = se(y) }
        return dropPath(conv3_1x1(y)) + sc
    }
}

/// LayerNorm2d then the pool of a strided transformer block (timm's `norm1` Sequential).
final class NormDown: Module {
    @Child(key: "norm") var norm: LayerNorm
    @Child(key: "down") var down: Downsample2d
    init(norm: LayerNorm, down: Downsample2d) { _norm.wrappedValue = norm; _down.wrappedValue = down }
    override func callAsFunction(_ x: Tensor) -> Tensor { down(norm(x)) }
}

func maxxLayerNorm(_ name: String, _ dim: Int, eps: Float, what: String) throws -> LayerNorm {
    guard ["layernorm2d", "layernorm"].contains(name) else {
        throw ModelError("maxxvit: \(what) \"\(name)\" is not supported (layernorm2d, layernorm)")
    }
    return LayerNorm(dim, eps: eps)
}

func relPosOption(_ cfg: MaxxVitTransformerCfg, window: (Int, Int)) throws -> (window: (Int, Int), tf: Bool)? {
    switch cfg.relPosType {
    case "bias": return (window, false)
    case "bias_tf": return (window, true)
    case "", "none": return nil
    default: throw ModelError("maxxvit: rel_pos_type \"\(cfg.relPosType)\" is not supported (bias, bias_tf)")
    }
}

/// timm's TransformerBlock2d (CoAtNet "T"): x = shortcut(x) + attn(norm1(x)) over the whole
/// map (norm1 pools when strided), then x + mlp(norm2(x)); 1x1-conv qkv/proj/MLP.
final class TransformerBlock2d: Module {
    @Child(key: "shortcut") var shortcut: Downsample2d?
    @Child(key: "norm1") var norm1: Module
    @Child(key: "attn") var attn: MaxxAttention
    @Child(key: "ls1") var ls1: LayerScale?
    @Child(key: "drop_path1") var dropPath1: DropPath
    @Child(key: "norm2") var norm2: LayerNorm
    @Child(key: "mlp") var mlp: MaxxMlp
    @Child(key: "ls2") var ls2: LayerScale?
    @Child(key: "drop_path2") var dropPath2: DropPath

    init(_ dim: Int, _ dimOut: Int, stride: Int, featSize: (Int, Int), cfg: MaxxVitTransformerCfg, dropPath: Float) throws {
        let eps = Float(cfg.normEps)
        if stride == 2 {
            _shortcut.wrappedValue = try Downsample2d(dim, dimOut, poolType: cfg.poolType, bias: cfg.shortcutBias)
            _norm1.wrappedValue = NormDown(norm: try maxxLayerNorm(cfg.normLayer, dim, eps: eps, what: "transformer norm_layer"),
                             down: try Downsample2d(dim, dim, poolType: cfg.poolType))
        } else {
            guard dim == dimOut else { throw ModelError("maxxvit: a stride-1 transformer block keeps its width (\(dim) → \(dimOut))") }
            _shortcut.wrappedValue = nil
            _norm1.wrappedValue = try maxxLayerNorm(cfg.normLayer, dim, eps: eps, what: "transformer norm_layer")
        }
        _attn.wrappedValue = try MaxxAttention(dim: dim, dimOut: dimOut, dimAttn: cfg.expandFirst ? dimOut : dim, dimHead: cfg.dimHead,
                                 bias: cfg.attnBias, headFirst: cfg.headFirst, conv: true,
                                 relPos: try relPosOption(cfg, window: featSize),
                                 attnDrop: Float(cfg.attnDrop), projDrop: Float(cfg.projDrop))
        _ls1.wrappedValue = cfg.initValues.map { LayerScale(dimOut, initValue: Float($0)) }
        _dropPath1.wrappedValue = DropPath(dropPath)
        _norm2.wrappedValue = try maxxLayerNorm(cfg.normLayer, dimOut, eps: eps, what: "transformer norm_layer")
        _mlp.wrappedValue = MaxxMlp(dimOut, hidden: Int(Double(dimOut) * cfg.expandRatio), act: try maxxActivation(cfg.actLayer, "act_layer"),
                      conv: true, drop: Float(cfg.projDrop))
        _ls2.wrappedValue = cfg.initValues.map { LayerScale(dimOut, initValue: Float($0)) }
        _dropPath2.wrappedValue = DropPath(dropPath)
    }

    override func callAsFunction(_ x: Tensor) -> Tensor {
        var a = attn(norm1(x))
        if let ls1 { a = ls1(a) }
        var y = (shortcut.map { $0(x) } ?? x) + dropPath1(a)
        var m = mlp(norm2(y))
        if let ls2 { m = ls2(m) }
        y = y + dropPath2(m)
        return y
    }
}

/// timm's PartitionAttentionCl (MaxViT): x + attn over windows or grid partitions of
/// norm1(x), then x + mlp(norm2(x)); channels-last with Linear qkv/proj/MLP.
final class PartitionAttention: Module {
    @Child(key: "norm1") var norm1: LayerNorm
    @Child(key: "attn") var attn: MaxxAttention
    @Child(key: "ls1") var ls1: LayerScale?
    @Child(key: "drop_path1") var dropPath1: DropPath
    @Child(key: "norm2") var norm2: LayerNorm
    @Child(key: "mlp") var mlp: MaxxMlp
    @Child(key: "ls2") var ls2: LayerScale?
    @Child(key: "drop_path2") var dropPath2: DropPath
    let grid: Bool
    let partitionSize: (Int, Int)

    init(_ dim: Int, grid: Bool, partitionSize: (Int, Int), cfg: MaxxVitTransformerCfg, dropPath: Float) throws {
        let eps = Float(cfg.normEps)
        self.grid = grid
        self.partitionSize = partitionSize
        _norm1.wrappedValue = try maxxLayerNorm(cfg.normLayerCl, dim, eps: eps, what: "transformer norm_layer_cl")
        _attn.wrappedValue = try MaxxAttention(dim: dim, dimOut: dim, dimAttn: dim, dimHead: cfg.dimHead, bias: cfg.attnBias,
                                 headFirst: cfg.headFirst, conv: false, relPos: try relPosOption(cfg, window: partitionSize),
                                 attnDrop: Float(cfg.attnDrop), projDrop: Float(cfg.projDrop))
        _ls1.wrappedValue = cfg.initValues.map { LayerScale(dim, initValue: Float($0)) }
        _dropPath1.wrappedValue = DropPath(dropPath)
        _norm2.wrappedValue = try maxxLayerNorm(cfg.normLayerCl, dim, eps: eps, what: "transformer norm_layer_cl")
        _mlp.wrappedValue = MaxxMlp(dim, hidden: Int(Double(dim) * cfg.expandRatio), act: try maxxActivation(cfg.actLayer, "act_layer"),
                      conv: false, drop: Float(cfg.projDrop))
        _ls2.wrappedValue = cfg.initValues.map { LayerScale(dim, initValue: Float($0)) }
        _dropPath2.wrappedValue = DropPath(dropPath)
    }

    override func callAsFunction(_ x: Tensor) -> Tensor {
        let (b, h, w) = (x.shape[0], x.shape[1], x.shape[2])
        guard h % partitionSize.0 == 0, w % partitionSize.1 == 0 else {
            fail("PartitionAttention", "map \(h)x\(w) is not divisible by the \(grid ? "grid" : "window") "
                 + "\(partitionSize.0)x\(partitionSize.1)")
        }
        let parts = WindowPartition.split(norm1(x), partitionSize, grid: grid)
        let attended = attn.forward(parts, positions: WindowPartition.positions(batch: b, image: (h, w), partitionSize, grid: grid))
        var a = WindowPartition.merge(attended, partitionSize, image: (h, w), grid: grid)
        if let ls1 { a = ls1(a) }
        var y = x + dropPath1(a)
        var m = mlp(norm2(y))
        if let ls2 { m = ls2(m) }
        y = y + dropPath2(m)
        return y
    }
}

/// timm's MaxxVitBlock (MaxViT "M"): MBConv, then block (window) attention, then grid attention.
final class MaxxVitBlock: Module {
    @Child(key: "conv") var conv: MbConvBlock
    @Child(key: "attn_block") var attnBlock: PartitionAttention?
    @Child(key: "attn_grid") var attnGrid: PartitionAttention

    init(_ dim: Int, _ dimOut: Int, stride: Int, convCfg: MaxxVitConvCfg, transformerCfg: MaxxVitTransformerCfg,
         windowSize: (Int, Int), gridSize: (Int, Int), dropPath: Float) throws {
        if transformerCfg.useNchwAttn { throw ModelError("maxxvit: use_nchw_attn is not supported") }
        _conv.wrappedValue = try MbConvBlock(dim, dimOut, stride: stride, cfg: convCfg, dropPath: dropPath)
        _attnBlock.wrappedValue = transformerCfg.noBlockAttn ? nil
            : try PartitionAttention(dimOut, grid: false, partitionSize: windowSize, cfg: transformerCfg, dropPath: dropPath)
        _attnGrid.wrappedValue = try PartitionAttention(dimOut, grid: true, partitionSize: gridSize, cfg: transformerCfg, dropPath: dropPath)
    }

    override func callAsFunction(_ x: Tensor) -> Tensor {
        var y = conv(x)
        if let attnBlock { y = attnBlock(y) }
        return attnGrid(y)
    }
}

/// A stage: `blocks.0`, `blocks.1`, ... (the first one strides).
final class MaxxVitStage: Module {
    @Child(key: "blocks") var blocks: [Module]
    init(blocks: [Module]) { _blocks.wrappedValue = blocks }
    override func callAsFunction(_ x: Tensor) -> Tensor { blocks.reduce(x) { $1($0) } }
}

/// timm's Stem: 3x3/s2 conv → BN-act → 3x3 conv.
final class MaxxVitStem: Module {
    @Child(key: "conv1") var conv1: MaxxConv2d
    @Child(key: "norm1") var norm1: BatchNormAct2d
    @Child(key: "conv2") var conv2: MaxxConv2d

    init(inChs: Int, outChs: (Int, Int), padding: String, bias: Bool, act: Activation, eps: Float) {
        _conv1.wrappedValue = MaxxConv2d(inChs, outChs.0, kernelSize: 3, stride: 2, bias: bias, padding: padding)
        _norm1.wrappedValue = BatchNormAct2d(outChs.0, eps: eps, act: act)
        _conv2.wrappedValue = MaxxConv2d(outChs.0, outChs.1, kernelSize: 3, bias: bias, padding: padding)
    }

    override func callAsFunction(_ x: Tensor) -> Tensor { conv2(norm1(conv1(x))) }
}

/// `pre_logits.fc` + tanh of timm's NormMlpClassifierHead.
final class PreLogits: Module {
    @Child(key: "fc") var fc: Linear
    init(_ dim: Int, _ hidden: Int) { _fc.wrappedValue = Linear(dim, hidden) }
    override func callAsFunction(_ x: Tensor) -> Tensor { fc(x).tanh() }
}

/// timm's NormMlpClassifierHead (avg-pool → LayerNorm2d → Linear+tanh → dropout → Linear) when
/// `hidden` is set, else ClassifierHead (avg-pool → dropout → Linear; the model's `norm` comes before).
final class MaxxVitHead: Module {
    @Child(key: "norm") var norm: LayerNorm?
    @Child(key: "pre_logits") var preLogits: PreLogits?
    @Child(key: "drop") var drop: Dropout
    @Child(key: "fc") var fc: Module
    let numFeatures: Int

    init(_ dim: Int, numClasses: Int, hidden: Int?, eps: Float, dropRate: Float) {
        _norm.wrappedValue = hidden.map { _ in LayerNorm(dim, eps: eps) }
        _preLogits.wrappedValue = hidden.map { PreLogits(dim, $0) }
        numFeatures = hidden ?? dim
        _drop.wrappedValue = Dropout(dropRate)
        _fc.wrappedValue = numClasses > 0 ? Linear(hidden ?? dim, numClasses) : Identity()
    }

    func forward(_ x: Tensor, preLogits returnPreLogits: Bool) -> Tensor {
        var y = x.mean(alongAxes: [1, 2])
        if let norm { y = norm(y) }
        if let preLogits { y = preLogits(y) }
        y = drop(y)
        return returnPreLogits ? y : fc(y)
    }

    override func callAsFunction(_ x: Tensor) -> Tensor { forward(x, preLogits: false) }
}

// MARK: - Model

/// timm's MaxxVit: stem, stages of C/T/M blocks, final norm or NormMlp head.
public final class MaxxVit: Module, ImageClassifier, CheckpointFiltering {
    @Child(key: "stem") var stem: MaxxVitStem
    @Child(key: "stages") var stages: [MaxxVitStage]
    @Child(key: "norm") var norm: LayerNorm?
    @Child(key: "head") var head: MaxxVitHead
    public let numFeatures: Int
    let headHiddenSize: Int?
    let normEps: Float
    let dropRate: Float
    /// The image side the relative-position tables of the transformer blocks were built for.
    public let imageSize: (Int, Int)

    /// Builds the model; `allowedBlocks` restricts the block types (per family).
    public init(_ config: MaxxVitConfig, allowedBlocks: Set<String> = ["C", "T", "M"], family: String = "maxxvit") throws {
        try config.validate(family: family)
        let cfg = config.cfg
        let t = cfg.transformerCfg, c = cfg.convCfg
        let stages = cfg.embedDim.count
        guard stages > 0, cfg.depths.count == stages, cfg.blockType.count == stages else {
            throw ModelError("\(family): embed_dim, depths and block_type need one entry per stage "
                             + "(got \(cfg.embedDim.count), \(cfg.depths.count), \(cfg.blockType.count))")
        }
        guard config.globalPool == "avg" else { throw ModelError("\(family): global_pool \"\(config.globalPool)\" is not supported (avg)") }
        guard ["", "normal", "trunc_normal", "xavier_normal", "vit_eff"].contains(cfg.weightInit) else {
            throw ModelError("\(family): weight_init \"\(cfg.weightInit)\" is not one of timm's")
        }
        guard t.dimHead > 0 else { throw ModelError("\(family): dim_head must be positive") }
        let img = config.imgSize.values
        imageSize = img
        // Partition sizes from the image when not given (timm's cfg_window_size).
        let window = t.windowSize?.values ?? (img.0 / t.partitionRatio, img.1 / t.partitionRatio)
        let gridSize = t.gridSize?.values ?? window

        guard c.blockType == "mbconv" else {
            throw ModelError("\(family): conv block_type \"\(c.blockType)\" is not supported (mbconv)")
        }
        let convAct = try maxxActivation(c.actLayer, "act_layer")
        guard ["batchnorm2d", "batchnorm"].contains(c.resolvedNormLayer) else {
            throw ModelError("\(family): conv norm_layer \"\(c.resolvedNormLayer)\" is not supported (batchnorm2d)")
        }
        let stemWidth = cfg.stemWidth.values
        _stem.wrappedValue = MaxxVitStem(inChs: config.inChans, outChs: stemWidth, padding: c.padding, bias: cfg.stemBias,
                           act: convAct, eps: c.resolvedNormEps)
        var feat = (img.0 / 2, img.1 / 2)

        let total = cfg.depths.reduce(0, +)
        let rates = dropPathRates(Float(config.dropPathRate), count: total)
        var blockIndex = 0
        var inChs = stemWidth.1
        var built: [MaxxVitStage] = []
        for i in 0..<stages {
            let outChs = cfg.embedDim[i]
            feat = ((feat.0 - 1) / 2 + 1, (feat.1 - 1) / 2 + 1)
            var blocks: [Module] = []
            for (j, type) in cfg.blockType[i].extended(to: cfg.depths[i]).enumerated() {
                guard allowedBlocks.contains(type) else {
                    let known = ["C", "T", "M"].contains(type)
                    throw ModelError("\(family): block type \"\(type)\" " + (known ? "belongs to another family (this one takes "
                                     + allowedBlocks.sorted().joined(separator: ", ") + ")" : "is not supported"))
                }
                let stride = j == 0 ? 2 : 1
                let rate = rates[blockIndex]
                switch type {
                case "C": blocks.append(try MbConvBlock(inChs, outChs, stride: stride, cfg: c, dropPath: rate))
                case "T": blocks.append(try TransformerBlock2d(inChs, outChs, stride: stride, featSize: feat, cfg: t, dropPath: rate))
                default:
                    for (name, size) in [("window_size", window), ("grid_size", gridSize)]
                    where size.0 <= 0 || size.1 <= 0 || feat.0 % size.0 != 0 || feat.1 % size.1 != 0 {
                        throw ModelError("\(family): stage \(i) is \(feat.0)x\(feat.1) for a \(img.0)x\(img.1) image, "
                                         + "not divisible by the \(name) \(size.0)x\(size.1)")
                    }
                    blocks.append(try MaxxVitBlock(inChs, outChs, stride: stride, convCfg: c, transformerCfg: t,
                                                        windowSize: window, gridSize: gridSize, dropPath: rate))
                }
                inChs = outChs
                blockIndex += 1
            }
            built.append(MaxxVitStage(blocks: blocks))
        }
        _stages.wrappedValue = built
        numFeatures = inChs
        headHiddenSize = cfg.headHiddenSize
        normEps = Float(t.normEps)
        dropRate = Float(config.dropRate)
        _ = try maxxLayerNorm(t.normLayer, 1, eps: normEps, what: "transformer norm_layer")
        _norm.wrappedValue = cfg.headHiddenSize == nil ? LayerNorm(inChs, eps: normEps) : nil
        _head.wrappedValue = MaxxVitHead(inChs, numClasses: config.numClasses, hidden: cfg.headHiddenSize, eps: normEps, dropRate: dropRate)
        super.init()
        initWeights(scheme: cfg.weightInit)
    }

    /// timm's weight init (`weight_init`, "vit_eff" by default): conv parts (stem, MBConv)
    /// EfficientNet-like N(0, 2/fan_out), transformer parts Xavier-uniform with zero biases
    /// (MLP biases N(0, 1e-6²)); "normal", "trunc_normal", "xavier_normal" for both; "" keeps
    /// PyTorch's defaults. The head and the relative-position tables keep their own init.
    private func initWeights(scheme: String) {
        guard !scheme.isEmpty else { return }
        func apply(_ root: Module, transformer: Bool) {
            for (name, m) in root.namedModules() {
                let torchShape: [Int], groups: Int
                if let c = m as? Conv2d {
                    torchShape = [c.weight.shape[0], c.weight.shape[3], c.weight.shape[1], c.weight.shape[2]]; groups = c.groups
                } else if let c = m as? MaxxConv2d {
                    torchShape = [c.weight.shape[0], c.weight.shape[3], c.weight.shape[1], c.weight.shape[2]]; groups = c.groups
                } else if let l = m as? Linear {
                    torchShape = l.weight.shape; groups = 1
                } else { continue }
                let (fanIn, fanOut) = Init.fans(torchShape)
                let shape = (m as? Linear)?.weight.shape ?? [torchShape[0], torchShape[2], torchShape[3], torchShape[1]]
                let w: Tensor
                switch scheme {
                case "normal": w = Tensor.randomNormal(shape, std: 0.02)
                case "trunc_normal": w = Tensor.randomTruncatedNormal(shape, std: 0.02, lower: -0.04, upper: 0.04)
                case "xavier_normal": w = Tensor.randomNormal(shape, std: (2 / Float(fanIn + fanOut)).squareRoot())
                default:
                    w = transformer ? Init.xavierUniform(shape, fanIn: fanIn, fanOut: fanOut)
                        : Tensor.randomNormal(shape, std: (2 / Float(max(fanOut / groups, 1))).squareRoot())
                }
                let mlpBias = scheme == "vit_eff" && transformer && name.contains("mlp")
                if let c = m as? Conv2d {
                    c.weight = w
                    if let b = c.bias { c.bias = mlpBias ? Tensor.randomNormal(b.shape, std: 1e-6) : Tensor.zeros(b.shape) }
                } else if let c = m as? MaxxConv2d {
                    c.weight = w
                    if let b = c.bias { c.bias = Tensor.zeros(b.shape) }
                } else if let l = m as? Linear {
                    l.weight = w
                    if let b = l.bias { l.bias = mlpBias ? Tensor.randomNormal(b.shape, std: 1e-6) : Tensor.zeros(b.shape) }
                }
            }
        }
        apply(stem, transformer: false)
        for stage in stages {
            for block in stage.blocks {
                if let b = block as? MaxxVitBlock {
                    apply(b.conv, transformer: false)
                    if let a = b.attnBlock { apply(a, transformer: true) }
                    apply(b.attnGrid, transformer: true)
                } else {
                    apply(block, transformer: block is TransformerBlock2d)
                }
            }
        }
    }

    public func forwardFeatures(_ x: Tensor) -> Tensor {
        let y = stages.reduce(stem(x)) { $1($0) }
        return norm.map { $0(y) } ?? y
    }

    public func forwardHead(_ features: Tensor, preLogits: Bool) -> Tensor { head.forward(features, preLogits: preLogits) }

    public func forwardIntermediates(_ x: Tensor) -> [(name: String, value: Tensor)] {
        var out: [(String, Tensor)] = []
        var h = stem(x)
        out.append(("stem", h))
        for (i, stage) in stages.enumerated() {
            for (j, block) in stage.blocks.enumerated() {
                h = block(h)
                out.append(("stages.\(i).blocks.\(j)", h))
            }
        }
        return out
    }

    public func resetClassifier(numClasses: Int) {
        head.fc = numClasses > 0 ? Linear(head.numFeatures, numClasses) : Identity()
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor { logits(x) }

    // MARK: Checkpoint filter

    /// timm's `checkpoint_filter_fn`: drops the derived index/lookup buffers older
    /// checkpoints carry, reshapes between 1x1-conv and Linear weights, and resizes
    /// relative-position tables to this model's windows (bicubic, as timm's
    /// `resize_rel_pos_bias_table_simple`).
    public func checkpointFilter(_ stateDict: [String: Tensor]) -> [String: Tensor] {
        let ours = self.stateDict()
        var out: [String: Tensor] = [:]
        for (key, value) in stateDict {
            if key.hasSuffix("relative_position_index") || key.hasSuffix("height_lookup") || key.hasSuffix("width_lookup") { continue }
            var v = value
            if let mine = ours[key], mine.shape != v.shape {
                if mine.count == v.count && mine.rank != v.rank && [2, 4].contains(v.rank) {
                    v = v.reshaped(mine.shape)
                } else if key.hasSuffix("relative_position_bias_table") {
                    v = MaxxVit.resizeRelPosTable(v, to: mine.shape)
                }
            }
            out[key] = v
        }
        return out
    }

    static func resizeRelPosTable(_ table: Tensor, to shape: [Int]) -> Tensor {
        if table.rank == 3 && shape.count == 3 {  // [heads, 2h-1, 2w-1]
            let m = table.permuted([1, 2, 0]).unsqueezed(axis: 0)
            return resize(m, size: (shape[1], shape[2]), mode: .bicubic, alignCorners: false).squeezed(axes: [0]).permuted([2, 0, 1]).contiguous()
        }
        guard table.rank == 2, shape.count == 2 else { return table }
        let side = Int(Double(table.shape[0]).squareRoot().rounded())
        let dst = Int(Double(shape[0]).squareRoot().rounded())
        guard side * side == table.shape[0], dst * dst == shape[0] else { return table }
        let m = table.reshaped([1, side, side, table.shape[1]])
        return resize(m, size: (dst, dst), mode: .bicubic, alignCorners: false).reshaped([dst * dst, table.shape[1]])
    }
}

extension MaxxVit {
    /// Builds a family's model from a reference config (the fixture's `config`).
    static func build(_ json: JSONValue, family: String, allowedBlocks: Set<String>) throws -> MaxxVit {
        try MaxxVit(json.decode(MaxxVitConfig.self), allowedBlocks: allowedBlocks, family: family)
    }
}
