import Foundation
import Patchwork
import PatchworkNN

// timm's ResNetV2 (timm/models/resnetv2.py) in its non-pre-activation form
// (preact=False): the CNN backbone of the hybrid ViTs (R26, R50 + ViT).
// Layers → blocks → model → named variants, in timm's order.
//
// What sets it apart from the ResNet of ResNet.swift: weight-standardised
// convs (StdConv2d, or StdConv2dSame with TF "SAME" padding), GroupNorm (32
// groups, ReLU folded in: GroupNormAct) instead of BatchNorm, the stride on
// the bottleneck's 3x3 conv, a projection shortcut on the first block of
// every stage, and the "same" max-pool in the stem.

// MARK: - Layers

/// timm's StdConv2d and StdConv2dSame: a convolution whose weight is
/// standardised per output channel before use, ŵ = (w − mean) / √(var + eps),
/// with the biased variance over (in/groups, kH, kW), as timm computes it
/// with a training-mode `F.batch_norm` over the reshaped weight.
///
/// The standardisation is written with Tensor ops, so the gradient reaches
/// the raw `weight` through it (and can be differentiated again).
///
/// Padding is either static and symmetric (StdConv2d: timm's `get_padding`)
/// or TF "SAME" (StdConv2dSame): computed from the input size, with the odd
/// extra row/column after (bottom/right), as timm's `pad_same`.
public final class StdConv2d: Module {
    public enum Padding: Sendable, Equatable {
        /// Symmetric zero padding (rows, columns).
        case symmetric(Int, Int)
        /// TF "SAME": output = ⌈input / stride⌉, padding split before ≤ after.
        case same
    }

    @Parameter(key: "weight", layout: .convWeight) public var weight: Tensor
    @OptionalParameter(key: "bias") public var bias: Tensor?
    public let stride: (Int, Int)
    public let dilation: (Int, Int)
    public let groups: Int
    public let padding: Padding
    public let eps: Float

    /// `same: true` is StdConv2dSame; otherwise the padding is timm's
    /// `get_padding(k, stride, dilation)` = ((stride − 1) + dilation·(k − 1)) / 2.
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, dilation: Int = 1,
                groups: Int = 1, bias: Bool = false, eps: Float = 1e-6, same: Bool = false,
                generator: Generator = .global) {
        require(inChannels % groups == 0 && outChannels % groups == 0, "StdConv2d",
                "groups \(groups) must divide in (\(inChannels)) and out (\(outChannels)) channels")
        let fanIn = inChannels / groups * kernelSize * kernelSize
        _weight.wrappedValue = Init.torchDefault([outChannels, kernelSize, kernelSize, inChannels / groups],
                                                            fanIn: fanIn, generator: generator)
        _bias.wrappedValue = bias ? Init.torchDefault([outChannels], fanIn: fanIn, generator: generator) : nil
        self.stride = (stride, stride)
        self.dilation = (dilation, dilation)
        self.groups = groups
        let p = ((stride - 1) + dilation * (kernelSize - 1)) / 2
        self.padding = same ? .same : .symmetric(p, p)
        self.eps = eps
        super.init()
    }

    public var outChannels: Int { weight.shape[0] }
    public var kernelSize: (Int, Int) { (weight.shape[1], weight.shape[2]) }

    /// TF "SAME" padding of one axis (timm's `get_same_padding`), split as
    /// `pad_same` does: total / 2 before, the rest after.
    public static func samePadding(inputSize: Int, kernel: Int, stride: Int, dilation: Int = 1) -> (before: Int, after: Int) {
        let outputs = (inputSize + stride - 1) / stride
        let total = max((outputs - 1) * stride + (kernel - 1) * dilation + 1 - inputSize, 0)
        return (total / 2, total - total / 2)
    }

    /// The weight standardised per output channel (what the convolution uses).
    public var standardizedWeight: Tensor {
        let axes = [1, 2, 3]  // OHWI: everything but the output channel
        let centered = weight - weight.mean(alongAxes: axes, keepDims: true)
        let variance = centered.square().mean(alongAxes: axes, keepDims: true)
        return centered * (variance + eps).rsqrt()
    }

    /// The output height and width for an input of `size`.
    public func outputSize(_ size: (Int, Int)) -> (Int, Int) {
        let (kh, kw) = kernelSize
        switch padding {
        case .same:
            return ((size.0 + stride.0 - 1) / stride.0, (size.1 + stride.1 - 1) / stride.1)
        case .symmetric(let ph, let pw):
            return ((size.0 + 2 * ph - dilation.0 * (kh - 1) - 1) / stride.0 + 1,
                    (size.1 + 2 * pw - dilation.1 * (kw - 1) - 1) / stride.1 + 1)
        }
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        let w = standardizedWeight
        switch padding {
        case .symmetric(let ph, let pw):
            return conv2d(x, weight: w, bias: bias, stride: stride, padding: (ph, pw), dilation: dilation, groups: groups)
        case .same:
            let (kh, kw) = kernelSize
            let padH = StdConv2d.samePadding(inputSize: x.shape[1], kernel: kh, stride: stride.0, dilation: dilation.0)
            let padW = StdConv2d.samePadding(inputSize: x.shape[2], kernel: kw, stride: stride.1, dilation: dilation.1)
            if padH.before == padH.after && padW.before == padW.after {
                return conv2d(x, weight: w, bias: bias, stride: stride, padding: (padH.before, padW.before),
                              dilation: dilation, groups: groups)
            }
            let padded = x.padded([(0, 0), padH, padW, (0, 0)])
            return conv2d(padded, weight: w, bias: bias, stride: stride, dilation: dilation, groups: groups)
        }
    }
}

/// timm's GroupNormAct: GroupNorm over channel groups, then (optionally) ReLU.
public final class GroupNormAct: Module {
    @OptionalParameter(key: "weight") public var weight: Tensor?
    @OptionalParameter(key: "bias") public var bias: Tensor?
    public let groups: Int
    public let eps: Float
    public let applyAct: Bool

    public init(_ channels: Int, groups: Int = 32, eps: Float = 1e-5, affine: Bool = true, applyAct: Bool = true) {
        require(groups > 0 && channels % groups == 0, "GroupNormAct", "\(groups) groups do not divide \(channels) channels")
        _weight.wrappedValue = affine ? Tensor.ones([channels]) : nil
        _bias.wrappedValue = affine ? Tensor.zeros([channels]) : nil
        self.groups = groups
        self.eps = eps
        self.applyAct = applyAct
        super.init()
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        let y = groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps)
        return applyAct ? y.relu() : y
    }
}

/// timm's MaxPool2dSame: TF "SAME" max pooling (the input is padded with −∞,
/// the odd extra row/column after, then pooled without padding).
public final class MaxPool2dSame: Module {
    public let kernel: Int
    public let stride: Int

    public init(kernel: Int, stride: Int) { self.kernel = kernel; self.stride = stride }

    public func outputSize(_ size: (Int, Int)) -> (Int, Int) {
        ((size.0 + stride - 1) / stride, (size.1 + stride - 1) / stride)
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        let padH = StdConv2d.samePadding(inputSize: x.shape[1], kernel: kernel, stride: stride)
        let padW = StdConv2d.samePadding(inputSize: x.shape[2], kernel: kernel, stride: stride)
        let padded = x.padded([(0, 0), padH, padW, (0, 0)], value: -.infinity)
        return maxPool2d(padded, kernel: (kernel, kernel), stride: (stride, stride))
    }
}

// MARK: - Blocks

/// How the convs and norms of a ResNetV2 are made (timm's conv_layer / norm_layer partials).
struct ResNetV2Layers {
    let same: Bool
    let convEps: Float
    let groups: Int?
    let groupSize: Int?
    let normEps: Float
    let affine: Bool

    init(same: Bool, convEps: Float, groups: Int?, groupSize: Int?, normEps: Float, affine: Bool) {
        self.same = same; self.convEps = convEps; self.groups = groups; self.groupSize = groupSize
        self.normEps = normEps; self.affine = affine
    }

    /// From timm's `conv_layer` and `norm_layer` arguments.
    init(convLayer: ReferenceCallable?, normLayer: ReferenceCallable?) throws {
        // conv_layer: StdConv2d or StdConv2dSame (timm's default is StdConv2d, eps 1e-6).
        let convName = convLayer?.shortName ?? "StdConv2d"
        guard convName == "StdConv2d" || convName == "StdConv2dSame" else {
            throw ModelError("resnetv2: conv_layer \(convLayer!.name) is not supported (StdConv2d, StdConv2dSame)")
        }
        let convKwargs = convLayer?.kwargs ?? [:]
        for key in convKwargs.keys where key != "eps" {
            throw ModelError("resnetv2: conv_layer argument \(key) is not supported (eps)")
        }
        let convEps = convKwargs["eps"]?.double ?? 1e-6

        // norm_layer: GroupNormAct (timm's default, 32 groups).
        let normName = normLayer?.shortName ?? "GroupNormAct"
        guard normName == "GroupNormAct" else {
            throw ModelError("resnetv2: norm_layer \(normLayer!.name) is not supported (GroupNormAct)")
        }
        let normKwargs = normLayer?.kwargs ?? [:]
        for key in normKwargs.keys where !["num_groups", "group_size", "eps", "affine"].contains(key) {
            throw ModelError("resnetv2: norm_layer argument \(key) is not supported (num_groups, group_size, eps, affine)")
        }
        if let v = normKwargs["num_groups"], v.int == nil { throw ModelError("resnetv2: num_groups \(v) is not an integer") }
        if let v = normKwargs["group_size"], v != .null, v.int == nil { throw ModelError("resnetv2: group_size \(v) is not an integer") }
        self.init(same: convName == "StdConv2dSame", convEps: Float(convEps),
                  groups: normKwargs["num_groups"]?.int, groupSize: normKwargs["group_size"]?.int,
                  normEps: Float(normKwargs["eps"]?.double ?? 1e-5), affine: normKwargs["affine"]?.bool ?? true)
    }

    func conv(_ i: Int, _ o: Int, _ k: Int, stride: Int = 1, dilation: Int = 1, groups: Int = 1) -> StdConv2d {
        StdConv2d(i, o, kernelSize: k, stride: stride, dilation: dilation, groups: groups, eps: convEps, same: same)
    }

    func norm(_ channels: Int, act: Bool = true) -> GroupNormAct {
        let g = groupSize.map { channels / $0 } ?? groups ?? 32
        return GroupNormAct(channels, groups: g, eps: normEps, affine: affine, applyAct: act)
    }

    /// Every norm's group count must divide its channels (torch refuses otherwise).
    func checkNorm(_ channels: Int) throws {
        if let s = groupSize, s <= 0 || channels % s != 0 {
            throw ModelError("resnetv2: group_size \(s) does not divide \(channels) channels")
        }
        let g = groupSize.map { channels / $0 } ?? groups ?? 32
        guard g > 0, channels % g == 0 else {
            throw ModelError("resnetv2: GroupNormAct with \(g) groups cannot normalise \(channels) channels")
        }
    }
}

/// timm's DownsampleConv (non-pre-activation): 1x1 StdConv (with the stride) → GroupNorm without activation.
final class DownsampleConv: Module {
    @Child(key: "conv") var conv: StdConv2d
    @Child(key: "norm") var norm: GroupNormAct

    init(_ inChannels: Int, _ outChannels: Int, stride: Int, layers: ResNetV2Layers) {
        _conv.wrappedValue = layers.conv(inChannels, outChannels, 1, stride: stride)
        _norm.wrappedValue = layers.norm(outChannels, act: false)
    }

    override func callAsFunction(_ x: Tensor) -> Tensor { norm(conv(x)) }
}

/// timm's DownsampleAvg (avg_down): 2x2 average pool (ceil mode, padding not
/// counted) → 1x1 StdConv → GroupNorm without activation. In a dilated stage
/// the pool runs at stride 1 as timm's AvgPool2dSame: one explicit zero
/// row/column after, counted in every average.
final class DownsampleAvg: Module {
    enum Pool { case none, strided(Int), same }
    let pool: Pool
    @Child(key: "conv") var conv: StdConv2d
    @Child(key: "norm") var norm: GroupNormAct

    init(_ inChannels: Int, _ outChannels: Int, stride: Int, dilation: Int, layers: ResNetV2Layers) {
        if dilation > 1 { pool = .same } else if stride > 1 { pool = .strided(stride) } else { pool = .none }
        _conv.wrappedValue = layers.conv(inChannels, outChannels, 1)
        _norm.wrappedValue = layers.norm(outChannels, act: false)
    }

    override func callAsFunction(_ x: Tensor) -> Tensor {
        switch pool {
        case .none:
            return norm(conv(x))
        case .strided(let s):
            return norm(conv(avgPool2d(x, kernel: (2, 2), stride: (s, s), ceilMode: true, countIncludePad: false)))
        case .same:
            let padded = x.padded([(0, 0), (0, 1), (0, 1), (0, 0)])
            return norm(conv(avgPool2d(padded, kernel: (2, 2), stride: (1, 1), ceilMode: true, countIncludePad: false)))
        }
    }
}

/// timm's resnetv2 Bottleneck (non-pre-activation, as ResNet v1.5):
/// 1x1 → GN+ReLU → 3x3 (stride, dilation, groups) → GN+ReLU → 1x1 → GN,
/// + shortcut, ReLU.
final class ResNetV2Bottleneck: Module {
    @Child(key: "downsample") var downsample: Module?
    @Child(key: "conv1") var conv1: StdConv2d
    @Child(key: "norm1") var norm1: GroupNormAct
    @Child(key: "conv2") var conv2: StdConv2d
    @Child(key: "norm2") var norm2: GroupNormAct
    @Child(key: "conv3") var conv3: StdConv2d
    @Child(key: "norm3") var norm3: GroupNormAct
    @Child(key: "drop_path") var dropPath: DropPath

    init(_ inChannels: Int, _ outChannels: Int, bottleRatio: Double, stride: Int, firstDilation: Int, groups: Int,
         downsample: Module?, dropPath: Float, layers: ResNetV2Layers) {
        let mid = makeDivisible(Double(outChannels) * bottleRatio)
        _downsample.wrappedValue = downsample
        _conv1.wrappedValue = layers.conv(inChannels, mid, 1)
        _norm1.wrappedValue = layers.norm(mid)
        _conv2.wrappedValue = layers.conv(mid, mid, 3, stride: stride, dilation: firstDilation, groups: groups)
        _norm2.wrappedValue = layers.norm(mid)
        _conv3.wrappedValue = layers.conv(mid, outChannels, 1)
        _norm3.wrappedValue = layers.norm(outChannels, act: false)
        _dropPath.wrappedValue = DropPath(dropPath)
    }

    func outputSize(_ size: (Int, Int)) -> (Int, Int) { conv2.outputSize(size) }

    override func callAsFunction(_ x: Tensor) -> Tensor {
        let shortcut = downsample.map { $0(x) } ?? x
        let y = norm3(conv3(norm2(conv2(norm1(conv1(x))))))
        return (dropPath(y) + shortcut).relu()
    }
}

/// A stage: its blocks under `blocks.i` (timm's ResNetStage).
final class ResNetV2Stage: Module {
    @Child(key: "blocks") var blocks: Sequential
    init(_ blocks: [ResNetV2Bottleneck]) { _blocks.wrappedValue = Sequential(blocks) }
    var blockList: [ResNetV2Bottleneck] { blocks.layers.map { $0 as! ResNetV2Bottleneck } }
    override func callAsFunction(_ x: Tensor) -> Tensor { blocks(x) }
}

/// timm's create_resnetv2_stem (non-pre-activation): a 7x7/2 conv (or three
/// 3x3 convs for the deep stems), each followed by GroupNorm+ReLU, then a
/// 3x3/2 max-pool: symmetric (""), zero-padded by 1 ("fixed") or TF "SAME" ("same").
final class ResNetV2Stem: Module, HybridBackbone {
    enum Pool { case symmetric, fixed, same }
    let numFeatures: Int
    @Child(key: "conv") var conv: StdConv2d?
    @Child(key: "norm") var norm: GroupNormAct?
    @Child(key: "conv1") var conv1: StdConv2d?
    @Child(key: "norm1") var norm1: GroupNormAct?
    @Child(key: "conv2") var conv2: StdConv2d?
    @Child(key: "norm2") var norm2: GroupNormAct?
    @Child(key: "conv3") var conv3: StdConv2d?
    @Child(key: "norm3") var norm3: GroupNormAct?
    let pool: Pool

    init(inChannels: Int, outChannels: Int, type: String, layers: ResNetV2Layers) throws {
        numFeatures = outChannels
        let deep = type.contains("deep") || type.contains("tiered")
        if deep {
            let chs = type.contains("tiered") ? (3 * outChannels / 8, outChannels / 2) : (outChannels / 2, outChannels / 2)
            for c in [chs.0, chs.1, outChannels] { try layers.checkNorm(c) }
            _conv1.wrappedValue = layers.conv(inChannels, chs.0, 3, stride: 2); _norm1.wrappedValue = layers.norm(chs.0)
            _conv2.wrappedValue = layers.conv(chs.0, chs.1, 3); _norm2.wrappedValue = layers.norm(chs.1)
            _conv3.wrappedValue = layers.conv(chs.1, outChannels, 3); _norm3.wrappedValue = layers.norm(outChannels)
            _conv.wrappedValue = nil; _norm.wrappedValue = nil
        } else {
            try layers.checkNorm(outChannels)
            _conv.wrappedValue = layers.conv(inChannels, outChannels, 7, stride: 2); _norm.wrappedValue = layers.norm(outChannels)
            _conv1.wrappedValue = nil; _norm1.wrappedValue = nil; _conv2.wrappedValue = nil; _norm2.wrappedValue = nil; _conv3.wrappedValue = nil; _norm3.wrappedValue = nil
        }
        pool = type.contains("fixed") ? .fixed : type.contains("same") ? .same : .symmetric
    }

    /// timm's `create_resnetv2_stem(...)` on its own, the backbone of `vit_tiny_r_s16_p8_*`
    /// (`_resnetv2(layers=())`); keys are the stem's own (`conv`, `norm`).
    convenience init(_ c: ResNetV2StemConfig) throws {
        try c.validate()
        if c.preact { throw ModelError("resnetv2 stem: only preact=False is supported (the hybrid-ViT backbone)") }
        let type = c.stemType
        guard ["", "fixed", "same", "deep", "deep_fixed", "deep_same", "tiered"].contains(type) else {
            throw ModelError("resnetv2 stem: stem_type \"\(type)\" is not supported (\"\", fixed, same, deep, deep_fixed, deep_same, tiered)")
        }
        try self.init(inChannels: c.inChs, outChannels: c.outChs, type: type,
                      layers: ResNetV2Layers(convLayer: c.convLayer, normLayer: c.normLayer))
    }

    var convs: [StdConv2d] { [conv, conv1, conv2, conv3].compactMap { $0 } }

    func featureSize(for size: (Int, Int)) -> (Int, Int) { outputSize(size) }
    func forwardFeatures(_ x: Tensor) -> Tensor { self(x) }

    func outputSize(_ size: (Int, Int)) -> (Int, Int) {
        let s = convs.reduce(size) { $1.outputSize($0) }
        switch pool {
        case .same: return ((s.0 + 1) / 2, (s.1 + 1) / 2)
        case .symmetric, .fixed: return ((s.0 + 2 - 3) / 2 + 1, (s.1 + 2 - 3) / 2 + 1)
        }
    }

    override func callAsFunction(_ x: Tensor) -> Tensor {
        var h: Tensor
        if let conv, let norm {
            h = norm(conv(x))
        } else {
            h = norm3!(conv3!(norm2!(conv2!(norm1!(conv1!(x))))))
        }
        switch pool {
        case .symmetric: return maxPool2d(h, kernel: (3, 3), stride: (2, 2), padding: (1, 1))
        case .fixed: return maxPool2d(h.padded([(0, 0), (1, 1), (1, 1), (0, 0)]), kernel: (3, 3), stride: (2, 2))
        case .same: return MaxPool2dSame(kernel: 3, stride: 2)(h)
        }
    }
}

/// The arguments of timm's `create_resnetv2_stem(...)`, under their names.
public struct ResNetV2StemConfig: Codable, Sendable {
    public var inChs: Int = 3
    public var outChs: Int = 64
    public var stemType: String = ""
    public var preact: Bool = true
    public var convLayer: ReferenceCallable?
    public var normLayer: ReferenceCallable?

    public init(inChs: Int = 3, outChs: Int = 64, stemType: String = "", preact: Bool = true,
                convLayer: ReferenceCallable? = nil, normLayer: ReferenceCallable? = nil) {
        self.inChs = inChs; self.outChs = outChs; self.stemType = stemType; self.preact = preact
        self.convLayer = convLayer; self.normLayer = normLayer
    }

    /// Absent (or null) arguments keep the reference's defaults above.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        inChs = try c.value(.inChs, inChs)
        outChs = try c.value(.outChs, outChs)
        stemType = try c.value(.stemType, stemType)
        preact = try c.value(.preact, preact)
        convLayer = try c.decodeIfPresent(ReferenceCallable.self, forKey: .convLayer)
        normLayer = try c.decodeIfPresent(ReferenceCallable.self, forKey: .normLayer)
    }
}

extension ResNetV2StemConfig {
    func validate() throws {
        let check = ConfigCheck(family: "resnetv2 stem")
        try check.width(inChs, "in_chs")
        try check.width(outChs, "out_chs")
    }
}

/// timm's make_divisible (divisor 8, at most 10% below the value).
func makeDivisible(_ v: Double, divisor: Int = 8) -> Int {
    var n = max(divisor, Int(v + Double(divisor) / 2) / divisor * divisor)
    if Double(n) < 0.9 * v { n += divisor }
    return n
}

// MARK: - Model

/// The config of timm's `ResNetV2(...)`, under its argument names.
public struct ResNetV2Config: Codable, Sendable {
    public var layers: [Int]
    public var channels: [Int] = [256, 512, 1024, 2048]
    public var numClasses: Int = 1000
    public var inChans: Int = 3
    public var globalPool: String = "avg"
    public var outputStride: Int = 32
    public var widthFactor: Int = 1
    public var stemChs: Int = 64
    public var stemType: String = ""
    public var avgDown: Bool = false
    public var preact: Bool = true
    public var basic: Bool?
    public var bottleRatio: Double = 0.25
    public var actLayer: ReferenceCallable?
    public var normLayer: ReferenceCallable?
    public var convLayer: ReferenceCallable?
    public var dropRate: Double = 0
    public var dropPathRate: Double = 0
    public var zeroInitLast: Bool = false

    /// The backbone of timm's hybrid ViTs (`_resnetv2` in vision_transformer_hybrid.py):
    /// no head, preact=False, stem "same" with StdConv2dSame(eps 1e-8), or "" with StdConv2d(eps 1e-8).
    public static func hybridBackbone(layers: [Int], paddingSame: Bool = true, inChans: Int = 3) -> ResNetV2Config {
        var c = ResNetV2Config(layers: layers, numClasses: 0)
        c.globalPool = ""
        c.inChans = inChans
        c.preact = false
        c.stemType = paddingSame ? "same" : ""
        c.convLayer = ReferenceCallable(type: "partial", name: "timm.layers.std_conv." + (paddingSame ? "StdConv2dSame" : "StdConv2d"),
                                        kwargs: ["eps": .number(1e-8)])
        return c
    }

    public init(layers: [Int], numClasses: Int = 1000) {
        self.layers = layers
        self.numClasses = numClasses
    }

    /// Absent (or null) arguments keep the reference's defaults above.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        layers = try c.decode([Int].self, forKey: .layers)
        channels = try c.value(.channels, channels)
        numClasses = try c.value(.numClasses, numClasses)
        inChans = try c.value(.inChans, inChans)
        globalPool = try c.value(.globalPool, globalPool)
        outputStride = try c.value(.outputStride, outputStride)
        widthFactor = try c.value(.widthFactor, widthFactor)
        stemChs = try c.value(.stemChs, stemChs)
        stemType = try c.value(.stemType, stemType)
        avgDown = try c.value(.avgDown, avgDown)
        preact = try c.value(.preact, preact)
        basic = try c.decodeIfPresent(Bool.self, forKey: .basic)
        bottleRatio = try c.value(.bottleRatio, bottleRatio)
        actLayer = try c.decodeIfPresent(ReferenceCallable.self, forKey: .actLayer)
        normLayer = try c.decodeIfPresent(ReferenceCallable.self, forKey: .normLayer)
        convLayer = try c.decodeIfPresent(ReferenceCallable.self, forKey: .convLayer)
        dropRate = try c.value(.dropRate, dropRate)
        dropPathRate = try c.value(.dropPathRate, dropPathRate)
        zeroInitLast = try c.value(.zeroInitLast, zeroInitLast)
    }
}

extension ResNetV2Config: ModelConfig {
    public func validate() throws {
        let check = ConfigCheck(family: "resnetv2")
        guard (1...channels.count).contains(layers.count) else {
            throw check.error("layers", layers, "must have 1 to \(channels.count) entries (one per entry of channels \(channels))")
        }
        try check.depths(layers, "layers", minimum: 1)
        for (i, w) in channels.enumerated() { try check.width(w, "channels[\(i)]") }
        try check.width(inChans, "in_chans")
        try check.classes(numClasses)
        try check.width(widthFactor, "width_factor")
        try check.width(stemChs, "stem_chs")
        try check.positive(bottleRatio, "bottle_ratio", maximum: 4)
        try check.rates([(dropRate, "drop_rate"), (dropPathRate, "drop_path_rate")])
        let estimate = zip(layers, channels).reduce(0) { $0 + ConfigCheck.conv(width: $1.1 * widthFactor, depth: $1.0) }
        try check.parameters(estimate, "layers, channels, width_factor")
    }
    public var expectedInput: ExpectedInput { ExpectedInput(channels: inChans, side: nil) }
    public var classCount: Int { numClasses }
}

/// timm's ResNetV2 with preact=False (non-pre-activation bottlenecks, the
/// hybrid-ViT backbone). With `num_classes` 0 it has no head and
/// `forwardHead` returns the feature map.
public final class ResNetV2: Module, ImageClassifier {
    @Child(key: "stem") var stem: ResNetV2Stem
    @Child(key: "stages") var stages: [ResNetV2Stage]
    @Child(key: "head") var head: ResNetV2Head
    public let numFeatures: Int
    let globalPool: String
    let dropRate: Float

    public init(_ c: ResNetV2Config) throws {
        try c.validate()
        if c.preact { throw ModelError("resnetv2: only preact=False is supported (the hybrid-ViT backbone)") }
        if c.basic == true { throw ModelError("resnetv2: basic blocks need preact=True, which is not supported") }
        if let act = c.actLayer, act.shortName != "ReLU" { throw ModelError("resnetv2: act_layer \(act.name) is not supported (ReLU)") }

        let layers = try ResNetV2Layers(convLayer: c.convLayer, normLayer: c.normLayer)

        let stemType = c.stemType
        guard ["", "fixed", "same", "deep", "deep_fixed", "deep_same", "tiered"].contains(stemType) else {
            throw ModelError("resnetv2: stem_type \"\(stemType)\" is not supported (\"\", fixed, same, deep, deep_fixed, deep_same, tiered)")
        }
        let outputStride = c.outputStride
        guard [8, 16, 32].contains(outputStride) else {
            throw ModelError("resnetv2: output_stride \(outputStride) is not supported (8, 16, 32)")
        }
        let pool = c.globalPool
        let classes = c.numClasses
        guard pool == "avg" || (pool.isEmpty && classes == 0) else {
            throw ModelError("resnetv2: global_pool \"\(pool)\" with \(classes) classes is not supported (avg, or \"\" without a head)")
        }
        let channels = c.channels
        guard !c.layers.isEmpty, c.layers.count <= channels.count, c.layers.allSatisfy({ $0 > 0 }) else {
            throw ModelError("resnetv2: layers \(c.layers) need 1 to \(channels.count) positive entries (one per channel count \(channels))")
        }
        let wf = c.widthFactor
        let bottleRatio = c.bottleRatio
        let avgDown = c.avgDown

        let stemChs = makeDivisible(Double((c.stemChs) * wf))
        _stem.wrappedValue = try ResNetV2Stem(inChannels: c.inChans, outChannels: stemChs, type: stemType, layers: layers)

        // Drop-path rates rise linearly over all blocks (timm's calculate_drop_path_rates, split by stage).
        let total = c.layers.reduce(0, +)
        let rate = c.dropPathRate
        var blockIndex = 0
        var prev = stemChs
        var currentStride = 4
        var dilation = 1
        var stages: [ResNetV2Stage] = []
        for (i, (depth, width)) in zip(c.layers, channels).enumerated() {
            let out = makeDivisible(Double(width * wf))
            var stride = i == 0 ? 1 : 2
            if currentStride >= outputStride { dilation *= stride; stride = 1 }
            var firstDilation = dilation == 1 || dilation == 2 ? 1 : 2
            try layers.checkNorm(out)
            try layers.checkNorm(makeDivisible(Double(out) * bottleRatio))
            var blocks: [ResNetV2Bottleneck] = []
            for b in 0..<depth {
                let s = b == 0 ? stride : 1
                var downsample: Module? = nil
                if b == 0 {  // the non-preact Bottleneck always projects on its first block
                    downsample = avgDown ? DownsampleAvg(prev, out, stride: s, dilation: dilation, layers: layers)
                                         : DownsampleConv(prev, out, stride: s, layers: layers)
                }
                let dpr = total > 1 ? Float(rate * Double(blockIndex) / Double(total - 1)) : 0
                blocks.append(ResNetV2Bottleneck(prev, out, bottleRatio: bottleRatio, stride: s, firstDilation: firstDilation,
                                                 groups: 1, downsample: downsample, dropPath: dpr, layers: layers))
                prev = out
                firstDilation = dilation
                blockIndex += 1
            }
            currentStride *= stride
            stages.append(ResNetV2Stage(blocks))
        }
        _stages.wrappedValue = stages
        numFeatures = prev
        globalPool = pool
        dropRate = Float(c.dropRate)
        _head.wrappedValue = ResNetV2Head(numFeatures, classes: classes, dropRate: dropRate)
        super.init()
        initWeights(zeroInitLast: c.zeroInitLast)
    }

    /// timm's init: Kaiming-normal (fan_out, ReLU) convs, GroupNorm 1/0, the
    /// classifier N(0, 0.01) with zero bias, optionally the last norm of each block zeroed.
    private func initWeights(zeroInitLast: Bool) {
        for (_, m) in namedModules() {
            if let conv = m as? StdConv2d {
                let fanOut = conv.outChannels * conv.kernelSize.0 * conv.kernelSize.1
                conv.weight = Init.kaimingNormalFanOut(conv.weight.shape, fanOut: fanOut)
            }
            if zeroInitLast, let block = m as? ResNetV2Bottleneck, let w = block.norm3.weight {
                block.norm3.weight = Tensor.zeros(w.shape)
            }
        }
        head.resetWeights()
    }

    /// The feature-map size for an input of `size` (no forward pass needed).
    public func featureSize(for size: (Int, Int)) -> (Int, Int) {
        var s = stem.outputSize(size)
        for stage in stages {
            for block in stage.blockList { s = block.outputSize(s) }
        }
        return s
    }

    public func forwardFeatures(_ x: Tensor) -> Tensor {
        stages.reduce(stem(x)) { $1($0) }
    }

    public func forwardHead(_ features: Tensor, preLogits: Bool) -> Tensor {
        guard !globalPool.isEmpty else { return features }
        let pooled = head.drop(features.mean(alongAxes: [1, 2]))
        guard !preLogits, let fc = head.fc else { return pooled }
        return fc(pooled.reshaped([pooled.shape[0], 1, 1, numFeatures])).reshaped([pooled.shape[0], fc.outChannels])
    }

    public func forwardIntermediates(_ x: Tensor) -> [(name: String, value: Tensor)] {
        var h = stem(x)
        var out: [(String, Tensor)] = [("stem", h)]
        for (i, stage) in stages.enumerated() {
            for (j, block) in stage.blockList.enumerated() {
                h = block(h)
                out.append(("stages.\(i).blocks.\(j)", h))
            }
        }
        return out
    }

    public func resetClassifier(numClasses: Int) {
        head = ResNetV2Head(numFeatures, classes: globalPool.isEmpty ? 0 : numClasses, dropRate: dropRate)
        head.resetWeights()
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor { logits(x) }
}

/// timm's ClassifierHead with use_conv=True: pooled features → 1x1 conv `fc` (absent with 0 classes).
final class ResNetV2Head: Module {
    @Child(key: "fc") var fc: Conv2d?
    @Child(key: "drop") var drop: Dropout

    init(_ features: Int, classes: Int, dropRate: Float) {
        _fc.wrappedValue = classes > 0 ? Conv2d(features, classes, kernelSize: 1) : nil
        _drop.wrappedValue = Dropout(dropRate)
    }

    func resetWeights() {
        guard let fc else { return }
        fc.weight = Tensor.randomNormal(fc.weight.shape, std: 0.01)
        fc.bias = Tensor.zeros([fc.outChannels])
    }
}
