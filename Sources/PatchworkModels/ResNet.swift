import Foundation
import Patchwork
import PatchworkNN

// timm's ResNet (timm/models/resnet.py): the CNN baseline.
// Blocks → model → checkpoint filter → named variants, in timm's order.

/// timm's BasicBlock: 3x3 conv → BN → ReLU → 3x3 conv → BN, + shortcut, ReLU.
final class BasicBlock: Module, ResidualBranchRecording {
    static let expansion = 1
    @Child(key: "conv1") var conv1: Conv2d
    @Child(key: "bn1") var bn1: BatchNorm
    @Child(key: "conv2") var conv2: Conv2d
    @Child(key: "bn2") var bn2: BatchNorm
    @Child(key: "downsample") var downsample: Module?
    @Child(key: "drop_path") var dropPath: DropPath

    init(inplanes: Int, planes: Int, stride: Int, downsample: Module?, cardinality: Int, baseWidth: Int,
         reduceFirst: Int, dropPath: Float) {
        require(cardinality == 1 && baseWidth == 64, "BasicBlock", "supports cardinality 1 and base_width 64 only")
        let firstPlanes = planes / reduceFirst
        _conv1.wrappedValue = Conv2d(inplanes, firstPlanes, kernelSize: 3, stride: stride, padding: 1, bias: false)
        _bn1.wrappedValue = BatchNorm(firstPlanes)
        _conv2.wrappedValue = Conv2d(firstPlanes, planes, kernelSize: 3, padding: 1, bias: false)
        _bn2.wrappedValue = BatchNorm(planes)
        _downsample.wrappedValue = downsample
        _dropPath.wrappedValue = DropPath(dropPath)
    }

    override func callAsFunction(_ x: Tensor) -> Tensor {
        let shortcut = downsample.map { $0(x) } ?? x
        let h = conv2(bn1(conv1(x), adding: nil, relu: true))
        // Norm, shortcut add and ReLU in one pass where drop-path leaves the branch as it is.
        let out = dropPath.isIdentity ? bn2(h, adding: shortcut, relu: true) : (dropPath(bn2(h)) + shortcut).relu()
        recorder.record(input: x, output: out)
        return out
    }

    /// The block's one branch, its convolutions: the block's input and output.
    let recorder = ResidualBranchRecorder(kind: "conv")
    var residualBranches: [(name: String, recorder: ResidualBranchRecorder)] { [("", recorder)] }

    var lastNorm: BatchNorm { bn2 }
}

/// timm's Bottleneck: 1x1 → 3x3 (stride, groups) → 1x1 (×4), each with BN, + shortcut, ReLU.
final class Bottleneck: Module, ResidualBranchRecording {
    static let expansion = 4
    @Child(key: "conv1") var conv1: Conv2d
    @Child(key: "bn1") var bn1: BatchNorm
    @Child(key: "conv2") var conv2: Conv2d
    @Child(key: "bn2") var bn2: BatchNorm
    @Child(key: "conv3") var conv3: Conv2d
    @Child(key: "bn3") var bn3: BatchNorm
    @Child(key: "downsample") var downsample: Module?
    @Child(key: "drop_path") var dropPath: DropPath

    init(inplanes: Int, planes: Int, stride: Int, downsample: Module?, cardinality: Int, baseWidth: Int,
         reduceFirst: Int, dropPath: Float) {
        let width = Int((Double(planes) * Double(baseWidth) / 64).rounded(.down)) * cardinality
        let firstPlanes = width / reduceFirst
        let outplanes = planes * Bottleneck.expansion
        _conv1.wrappedValue = Conv2d(inplanes, firstPlanes, kernelSize: 1, bias: false)
        _bn1.wrappedValue = BatchNorm(firstPlanes)
        _conv2.wrappedValue = Conv2d(firstPlanes, width, kernelSize: 3, stride: stride, padding: 1, groups: cardinality, bias: false)
        _bn2.wrappedValue = BatchNorm(width)
        _conv3.wrappedValue = Conv2d(width, outplanes, kernelSize: 1, bias: false)
        _bn3.wrappedValue = BatchNorm(outplanes)
        _downsample.wrappedValue = downsample
        _dropPath.wrappedValue = DropPath(dropPath)
    }

    override func callAsFunction(_ x: Tensor) -> Tensor {
        let shortcut = downsample.map { $0(x) } ?? x
        let h = conv3(bn2(conv2(bn1(conv1(x), adding: nil, relu: true)), adding: nil, relu: true))
        // Norm, shortcut add and ReLU in one pass where drop-path leaves the branch as it is.
        let out = dropPath.isIdentity ? bn3(h, adding: shortcut, relu: true) : (dropPath(bn3(h)) + shortcut).relu()
        recorder.record(input: x, output: out)
        return out
    }

    /// The block's one branch, its convolutions: the block's input and output.
    let recorder = ResidualBranchRecorder(kind: "conv")
    var residualBranches: [(name: String, recorder: ResidualBranchRecorder)] { [("", recorder)] }

    var lastNorm: BatchNorm { bn3 }
}

/// Average-pool downsampling shortcut (timm's avg_down): AvgPool2d(2, stride, ceil, no pad count) then conv.
final class AvgPoolShortcut: Module {
    let stride: Int
    init(stride: Int) { self.stride = stride }
    override func callAsFunction(_ x: Tensor) -> Tensor {
        stride == 1 ? x : avgPool2d(x, kernel: (2, 2), stride: (2, 2), ceilMode: true, countIncludePad: false)
    }
}

/// The config of timm's `ResNet(...)`, under its argument names.
public struct ResNetConfig: Codable, Sendable {
    public var block: ReferenceCallable
    public var layers: [Int]
    public var channels: [Int] = [64, 128, 256, 512]
    public var numClasses: Int = 1000
    public var inChans: Int = 3
    public var dropRate: Double = 0
    public var dropPathRate: Double = 0
    public var outputStride: Int = 32
    public var globalPool: String = "avg"
    public var cardinality: Int = 1
    public var baseWidth: Int = 64
    public var stemWidth: Int = 64
    public var stemType: String = ""
    public var replaceStemPool: Bool = false
    public var blockReduceFirst: Int = 1
    public var downKernelSize: Int = 1
    public var avgDown: Bool = false
    public var actLayer: ReferenceCallable?
    public var normLayer: ReferenceCallable?
    public var aaLayer: ReferenceCallable?
    public var zeroInitLast: Bool = true
    /// Patchwork extension (not a timm argument): the CIFAR-style stem for small
    /// inputs, one 3x3 stride-1 conv of `stem_width` channels and no max-pool.
    public var smallInputStem: Bool = false

    public init(block: String, layers: [Int], numClasses: Int = 1000) {
        self.block = ReferenceCallable(type: "callable", name: "timm.models.resnet.\(block)", kwargs: nil)
        self.layers = layers
        self.numClasses = numClasses
    }

    /// Absent (or null) arguments keep the reference's defaults above.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        block = try c.decode(ReferenceCallable.self, forKey: .block)
        layers = try c.decode([Int].self, forKey: .layers)
        channels = try c.value(.channels, channels)
        numClasses = try c.value(.numClasses, numClasses)
        inChans = try c.value(.inChans, inChans)
        dropRate = try c.value(.dropRate, dropRate)
        dropPathRate = try c.value(.dropPathRate, dropPathRate)
        outputStride = try c.value(.outputStride, outputStride)
        globalPool = try c.value(.globalPool, globalPool)
        cardinality = try c.value(.cardinality, cardinality)
        baseWidth = try c.value(.baseWidth, baseWidth)
        stemWidth = try c.value(.stemWidth, stemWidth)
        stemType = try c.value(.stemType, stemType)
        replaceStemPool = try c.value(.replaceStemPool, replaceStemPool)
        blockReduceFirst = try c.value(.blockReduceFirst, blockReduceFirst)
        downKernelSize = try c.value(.downKernelSize, downKernelSize)
        avgDown = try c.value(.avgDown, avgDown)
        actLayer = try c.decodeIfPresent(ReferenceCallable.self, forKey: .actLayer)
        normLayer = try c.decodeIfPresent(ReferenceCallable.self, forKey: .normLayer)
        aaLayer = try c.decodeIfPresent(ReferenceCallable.self, forKey: .aaLayer)
        zeroInitLast = try c.value(.zeroInitLast, zeroInitLast)
        smallInputStem = try c.value(.smallInputStem, smallInputStem)
    }
}

extension ResNetConfig: ModelConfig {
    public func validate() throws {
        let check = ConfigCheck(family: "resnet")
        try check.perStage(layers, "layers", stages: 4, as: "timm's ResNet")
        try check.depths(layers, "layers", minimum: 1)
        let widths = channels
        try check.perStage(widths, "channels", stages: 4, as: "timm's ResNet")
        for (i, w) in widths.enumerated() { try check.width(w, "channels[\(i)]") }
        try check.width(inChans, "in_chans")
        try check.classes(numClasses)
        try check.width(cardinality, "cardinality")
        try check.width(baseWidth, "base_width")
        try check.width(stemWidth, "stem_width")
        if stemType == "deep_tiered" && stemWidth < 4 { throw check.error("stem_width", stemWidth, "must be at least 4 for stem_type deep_tiered") }
        try check.width(blockReduceFirst, "block_reduce_first")
        try check.rates([(dropRate, "drop_rate"), (dropPathRate, "drop_path_rate")])
        let bottleneck = block.shortName == "Bottleneck"
        if !bottleneck && (cardinality != 1 || baseWidth != 64) {
            throw check.error("cardinality/base_width", "\(cardinality)/\(baseWidth)", "must be 1/64 for BasicBlock (timm asserts it)")
        }
        if bottleneck {
            for (i, w) in widths.enumerated() where w * baseWidth / 64 < 1 {
                throw check.error("channels[\(i)]", w, "gives a bottleneck of width 0 at base_width \(baseWidth)")
            }
        }
        let groupWidth = bottleneck ? max(4, cardinality * baseWidth / 64) : 1
        let estimate = zip(layers, widths).reduce(0) { $0 + ConfigCheck.conv(width: $1.1 * groupWidth, depth: $1.0) }
            + ConfigCheck.table(widths[3] * 4, numClasses)
        try check.parameters(estimate, "layers, channels, cardinality, base_width, num_classes")
    }
    public var expectedInput: ExpectedInput { ExpectedInput(channels: inChans, side: nil) }
    public var classCount: Int { numClasses }
}

/// timm's ResNet with BasicBlock or Bottleneck; stems "", "deep", "deep_tiered".
public final class ResNet: Module, ImageClassifier {
    @Child(key: "conv1") var conv1: Module
    @Child(key: "bn1") var bn1: BatchNorm
    /// The 3x3/s2 max-pool after the stem (absent with the small-input stem).
    let stemPool: Bool
    @Child(key: "layer1") var layer1: Sequential
    @Child(key: "layer2") var layer2: Sequential
    @Child(key: "layer3") var layer3: Sequential
    @Child(key: "layer4") var layer4: Sequential
    @Child(key: "fc") var fc: Linear
    let dropRate: Float
    @Child(key: "head_dropout") var headDropout: Dropout
    public let numFeatures: Int

    public init(_ config: ResNetConfig) throws {
        try config.validate()
        let blockName = config.block.shortName
        guard blockName == "BasicBlock" || blockName == "Bottleneck" else {
            throw ModelError("resnet: block \(config.block.name) is not supported (BasicBlock, Bottleneck)")
        }
        if let act = config.actLayer, act.shortName != "ReLU" { throw ModelError("resnet: act_layer \(act.name) is not supported (ReLU)") }
        if let norm = config.normLayer, norm.shortName != "BatchNorm2d" { throw ModelError("resnet: norm_layer \(norm.name) is not supported (BatchNorm2d)") }
        if config.aaLayer != nil { throw ModelError("resnet: aa_layer is not supported") }
        if config.outputStride != 32 { throw ModelError("resnet: output_stride \(config.outputStride) is not supported (32)") }
        if config.globalPool != "avg" { throw ModelError("resnet: global_pool \(config.globalPool) is not supported (avg)") }
        if config.replaceStemPool { throw ModelError("resnet: replace_stem_pool is not supported") }
        if config.downKernelSize != 1 { throw ModelError("resnet: down_kernel_size \(config.downKernelSize) is not supported (1)") }
        guard config.layers.count == 4 else { throw ModelError("resnet: layers must have 4 entries, got \(config.layers)") }
        let channels = config.channels
        let inChans = config.inChans
        let stemWidth = config.stemWidth
        let stemType = config.stemType
        let cardinality = config.cardinality, baseWidth = config.baseWidth
        let reduceFirst = config.blockReduceFirst
        let avgDown = config.avgDown
        let expansion = blockName == "Bottleneck" ? Bottleneck.expansion : BasicBlock.expansion

        // Stem.
        var inplanes: Int
        if config.smallInputStem {
            guard stemType.isEmpty else { throw ModelError("resnet: small_input_stem replaces stem_type \"\(stemType)\"") }
            inplanes = stemWidth
            _conv1.wrappedValue = Conv2d(inChans, inplanes, kernelSize: 3, stride: 1, padding: 1, bias: false)
        } else if stemType.hasPrefix("deep") {
            let stemChs = stemType == "deep_tiered" ? (3 * (stemWidth / 4), stemWidth) : (stemWidth, stemWidth)
            inplanes = stemWidth * 2
            _conv1.wrappedValue = Sequential([
                Conv2d(inChans, stemChs.0, kernelSize: 3, stride: 2, padding: 1, bias: false), BatchNorm(stemChs.0), ReLU(),
                Conv2d(stemChs.0, stemChs.1, kernelSize: 3, padding: 1, bias: false), BatchNorm(stemChs.1), ReLU(),
                Conv2d(stemChs.1, inplanes, kernelSize: 3, padding: 1, bias: false),
            ])
        } else if stemType.isEmpty {
            inplanes = 64
            _conv1.wrappedValue = Conv2d(inChans, inplanes, kernelSize: 7, stride: 2, padding: 3, bias: false)
        } else {
            throw ModelError("resnet: stem_type \"\(stemType)\" is not supported (\"\", deep, deep_tiered)")
        }
        _bn1.wrappedValue = BatchNorm(inplanes)
        stemPool = !config.smallInputStem

        // Stages, with drop-path rates rising linearly over all blocks.
        let totalBlocks = config.layers.reduce(0, +)
        let dropPathRate = Float(config.dropPathRate)
        var blockIndex = 0
        var stages: [Sequential] = []
        for (i, (count, planes)) in zip(config.layers, channels).enumerated() {
            let stride = i == 0 ? 1 : 2
            var blocks: [Module] = []
            for b in 0..<count {
                let s = b == 0 ? stride : 1
                var downsample: Module? = nil
                if b == 0 && (stride != 1 || inplanes != planes * expansion) {
                    let conv = Conv2d(inplanes, planes * expansion, kernelSize: 1, stride: avgDown ? 1 : stride, bias: false)
                    downsample = avgDown ? Sequential([AvgPoolShortcut(stride: stride), conv, BatchNorm(planes * expansion)])
                                         : Sequential([conv, BatchNorm(planes * expansion)])
                }
                let dpr = totalBlocks > 1 ? dropPathRate * Float(blockIndex) / Float(totalBlocks - 1) : 0
                if expansion == 4 {
                    blocks.append(Bottleneck(inplanes: inplanes, planes: planes, stride: s, downsample: downsample,
                                             cardinality: cardinality, baseWidth: baseWidth, reduceFirst: reduceFirst, dropPath: dpr))
                } else {
                    blocks.append(BasicBlock(inplanes: inplanes, planes: planes, stride: s, downsample: downsample,
                                             cardinality: cardinality, baseWidth: baseWidth, reduceFirst: reduceFirst, dropPath: dpr))
                }
                inplanes = planes * expansion
                blockIndex += 1
            }
            stages.append(Sequential(blocks))
        }
        _layer1.wrappedValue = stages[0]; _layer2.wrappedValue = stages[1]
        _layer3.wrappedValue = stages[2]; _layer4.wrappedValue = stages[3]
        numFeatures = inplanes
        _fc.wrappedValue = Linear(numFeatures, config.numClasses)
        dropRate = Float(config.dropRate)
        _headDropout.wrappedValue = Dropout(dropRate)
        super.init()
        initWeights(zeroInitLast: config.zeroInitLast)
    }

    /// timm's init: Kaiming-normal (fan_out, ReLU) convs, BN 1/0, last BN of each block zeroed.
    private func initWeights(zeroInitLast: Bool) {
        for (_, m) in namedModules() {
            if let conv = m as? Conv2d {
                let fanOut = conv.outChannels * conv.kernelSize.0 * conv.kernelSize.1
                conv.weight = Init.kaimingNormalFanOut(conv.weight.shape, fanOut: fanOut)
            }
            if zeroInitLast, let block = m as? BasicBlock { block.lastNorm.weight = Tensor.zeros([block.lastNorm.runningMean.count]) }
            if zeroInitLast, let block = m as? Bottleneck { block.lastNorm.weight = Tensor.zeros([block.lastNorm.runningMean.count]) }
        }
    }

    func stem(_ x: Tensor) -> Tensor {
        let h = bn1(conv1(x), adding: nil, relu: true)
        return stemPool ? maxPool2d(h, kernel: (3, 3), stride: (2, 2), padding: (1, 1)) : h
    }

    public func forwardFeatures(_ x: Tensor) -> Tensor {
        layer4(layer3(layer2(layer1(stem(x)))))
    }

    public func forwardHead(_ features: Tensor, preLogits: Bool) -> Tensor {
        let pooled = headDropout(features.mean(alongAxes: [1, 2]))
        return preLogits ? pooled : fc(pooled)
    }

    public func forwardIntermediates(_ x: Tensor) -> [(name: String, value: Tensor)] {
        var out: [(String, Tensor)] = []
        var h = stem(x)
        out.append(("stem", h))
        for (name, stage) in [("layer1", layer1), ("layer2", layer2), ("layer3", layer3), ("layer4", layer4)] {
            for (i, block) in stage.layers.enumerated() {
                h = block(h)
                out.append(("\(name).\(i)", h))
            }
        }
        return out
    }

    public func resetClassifier(numClasses: Int) { fc = Linear(numFeatures, numClasses) }

    public override func callAsFunction(_ x: Tensor) -> Tensor { logits(x) }
}

/// ReLU as a module, for Sequential stems (keys skip it, as torch's do).
final class ReLU: Module {
    override func callAsFunction(_ x: Tensor) -> Tensor { x.relu() }
}

extension ResNet {
    @Sendable static func build(_ config: JSONValue) throws -> ImageClassifier { try ResNet(config.decode(ResNetConfig.self)) }

    /// A timm entrypoint: `model_args` as `resnet.py` registers it.
    static func variant(_ name: String, _ arguments: [String: JSONValue]) -> ModelVariant {
        ModelVariant(name, family: "resnet", inputSize: 224, arguments: arguments, build: build)
    }

    public static let family = ModelFamily(
        name: "resnet", reference: "timm 1.0.31 timm.models.resnet.ResNet",
        variants: [
            variant("resnet18", ["block": .callable("timm.models.resnet.BasicBlock"), "layers": [2, 2, 2, 2]]),
            variant("resnet34", ["block": .callable("timm.models.resnet.BasicBlock"), "layers": [3, 4, 6, 3]]),
            variant("resnet50", ["block": .callable("timm.models.resnet.Bottleneck"), "layers": [3, 4, 6, 3]]),
            ModelVariant("resnet_nano", family: "resnet", inputSize: 32) { classes in
                var c = ResNetConfig(block: "BasicBlock", layers: [1, 1, 1, 1], numClasses: classes)
                c.channels = [32, 64, 128, 256]
                c.stemWidth = 32
                c.smallInputStem = true
                return try ResNet(c)
            },
        ],
        build: build)
}
