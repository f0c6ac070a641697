import Foundation

// Config validation: every family's config is checked against the reference's own
// constraints (sizes positive, heads dividing the width, one entry per stage, rates in
// [0, 1], ...) by its `validate()`, which each model's initializer calls first, before
// any tensor is allocated; so a named variant, `ModelFamily.build(config:)`, a parity
// case and a direct `init` are all checked the same way. A failure is a `ModelError`
// naming the family, the field (the reference's argument name, as in the JSON) and its
// value. The family-specific `validate()`s follow the mechanism, in DESIGN.md's order.

/// A family's config: what the reference constructor takes, checked before anything is built.
public protocol ModelConfig: Sendable {
    /// Throws a `ModelError` naming the family, the field and its value when the config
    /// breaks a constraint of the reference (or a size limit of `ConfigLimits`).
    func validate() throws
    /// The input the model is built for.
    var expectedInput: ExpectedInput { get }
    /// Classes of the classifier head; 0 builds no head (timm's feature-extraction mode).
    var classCount: Int { get }
}

/// The input a model is built for: channels, and the image side where the model fixes one
/// (position embeddings, attention biases, windows); nil where any side runs.
public struct ExpectedInput: Sendable, Equatable {
    public let channels: Int
    public let height: Int?
    public let width: Int?

    public init(channels: Int, side: Int?) { self.channels = channels; height = side; width = side }
    public init(channels: Int, height: Int, width: Int) { self.channels = channels; self.height = height; self.width = width }

    /// Throws unless `shape` (NCHW, as the fixtures give `input_shape`) is a batch of ≥ 1 such images.
    public func check(nchw shape: [Int], field: String = "input_shape") throws {
        let expected = "[N ≥ 1, \(channels), \(height.map(String.init) ?? "H"), \(width.map(String.init) ?? "W")]"
        guard shape.count == 4, shape[0] >= 1, shape[1] == channels, shape[2] >= 1, shape[3] >= 1,
              height.map({ $0 == shape[2] }) ?? true, width.map({ $0 == shape[3] }) ?? true else {
            throw ModelError("\(field) \(shape) does not match the model's input \(expected)")
        }
    }
}

/// Size limits that refuse a config before it can exhaust memory or time. Each is far above
/// any published model, so only a mistaken or hostile value reaches it.
public enum ConfigLimits {
    /// Widths, channel counts, head counts and classes' sizes: ViT-22B, the widest published
    /// vision transformer, is 6144 wide.
    public static let maxWidth = 1 << 16
    /// Blocks in one stage or in a whole model: the deepest published ResNet (ResNet-1001)
    /// has 333 blocks in a stage, the deepest ViTs 48 layers.
    public static let maxDepth = 1024
    /// Image side: 16384 pixels (268 M pixels, three times Pillow's default image limit).
    public static let maxImageSize = 1 << 14
    /// Classes: ImageNet-21k has 21 843.
    public static let maxClasses = 1 << 20
    /// Parameters, as the families estimate them from their config (a few multiply-adds, no
    /// allocation): 2^32 float32 parameters are 17 GB, before gradients and optimizer state;
    /// the largest model registered here (vit_large_r50_s32_224) has 0.33 G.
    public static let maxParameters = Double(1 << 32)
}

/// Checks one family's config fields; every failure names the family, the field and its value.
struct ConfigCheck {
    let family: String

    func error(_ field: String, _ value: Any, _ reason: String) -> ModelError {
        ModelError("\(family): \(field) \(value) \(reason)")
    }

    /// A width, channel count or head count: 1 ... `ConfigLimits.maxWidth`.
    func width(_ v: Int, _ field: String) throws {
        guard v >= 1 else { throw error(field, v, "must be at least 1") }
        guard v <= ConfigLimits.maxWidth else { throw error(field, v, "is above the limit \(ConfigLimits.maxWidth)") }
    }

    /// A kernel, patch or stride or other small positive size: 1 ... `ConfigLimits.maxImageSize`.
    func size(_ v: Int, _ field: String) throws {
        guard v >= 1 else { throw error(field, v, "must be at least 1") }
        guard v <= ConfigLimits.maxImageSize else { throw error(field, v, "is above the limit \(ConfigLimits.maxImageSize)") }
    }

    /// A non-negative count such as padding or register tokens: 0 ... `ConfigLimits.maxImageSize`.
    func nonNegative(_ v: Int, _ field: String) throws {
        guard v >= 0 else { throw error(field, v, "must not be negative") }
        guard v <= ConfigLimits.maxImageSize else { throw error(field, v, "is above the limit \(ConfigLimits.maxImageSize)") }
    }

    /// Blocks in a stage or model: `minimum` ... `ConfigLimits.maxDepth`.
    func depth(_ v: Int, _ field: String, minimum: Int = 0) throws {
        guard v >= minimum else { throw error(field, v, minimum == 0 ? "must not be negative" : "must be at least \(minimum)") }
        guard v <= ConfigLimits.maxDepth else { throw error(field, v, "is above the limit \(ConfigLimits.maxDepth) blocks") }
    }

    /// Per-stage depths, each checked, and their total within `ConfigLimits.maxDepth`.
    func depths(_ v: [Int], _ field: String, minimum: Int = 0) throws {
        for (i, d) in v.enumerated() { try depth(d, "\(field)[\(i)]", minimum: minimum) }
        guard v.reduce(0, +) <= ConfigLimits.maxDepth else { throw error(field, v, "total above the limit \(ConfigLimits.maxDepth) blocks") }
    }

    /// Classes of the head: 0 (no head, as timm allows) ... `ConfigLimits.maxClasses`.
    func classes(_ v: Int, _ field: String = "num_classes") throws {
        guard v >= 0 else { throw error(field, v, "must not be negative (0 builds no head)") }
        guard v <= ConfigLimits.maxClasses else { throw error(field, v, "is above the limit \(ConfigLimits.maxClasses)") }
    }

    /// A dropout or drop-path probability: finite, in [0, 1].
    func rate(_ v: Double, _ field: String) throws {
        guard v.isFinite, v >= 0, v <= 1 else { throw error(field, v, "must be a probability in [0, 1]") }
    }

    /// A positive finite ratio or epsilon (MLP ratio, norm eps), at most `maximum`.
    func positive(_ v: Double, _ field: String, maximum: Double = 1024) throws {
        guard v.isFinite, v > 0 else { throw error(field, v, "must be a positive finite number") }
        guard v <= maximum else { throw error(field, v, "is above the limit \(maximum)") }
    }

    /// Each (probability, field) pair, as `rate`.
    func rates(_ values: [(Double, String)]) throws {
        for (v, field) in values { try rate(v, field) }
    }

    /// A finite number (an initial value, a scale).
    func finite(_ v: Double, _ field: String) throws {
        guard v.isFinite else { throw error(field, v, "must be finite") }
    }

    /// One entry per stage; `source` names what gives the stage count.
    func perStage<T>(_ list: [T], _ field: String, stages: Int, as source: String) throws {
        guard list.count == stages else {
            throw error(field, list, "must have one entry per stage (\(stages), as \(source)), it has \(list.count)")
        }
    }

    /// `heads` splits `width` into equal heads.
    func heads(_ heads: Int, _ headsField: String, divide width: Int, _ widthField: String) throws {
        try self.width(heads, headsField)
        guard width % heads == 0 else {
            throw ModelError("\(family): \(widthField) \(width) is not divisible by \(headsField) \(heads)")
        }
    }

    /// `value` is a multiple of `divisor` (an image side of its patch size, ...).
    func divisible(_ value: Int, _ field: String, by divisor: Int, _ divisorField: String) throws {
        guard divisor > 0, value % divisor == 0 else {
            throw ModelError("\(family): \(field) \(value) is not divisible by \(divisorField) \(divisor)")
        }
    }

    /// The estimated parameter count within `ConfigLimits.maxParameters`; `fields` are what it grew from.
    func parameters(_ estimate: Double, _ fields: String) throws {
        guard estimate <= ConfigLimits.maxParameters else {
            throw ModelError("\(family): \(fields) give about \(String(format: "%.2g", estimate)) parameters, "
                             + "above the limit \(String(format: "%.2g", ConfigLimits.maxParameters))")
        }
    }

    /// Parameters of `depth` transformer blocks of `width` (qkv and projection 4·w², MLP 2·ratio·w²).
    static func transformer(width: Int, depth: Int, mlpRatio: Double = 4) -> Double {
        Double(depth) * Double(width) * Double(width) * (4 + 2 * max(mlpRatio, 0))
    }

    /// Parameters of `depth` residual conv blocks of `width` output channels (about two 3x3 convs).
    static func conv(width: Int, depth: Int) -> Double { Double(depth) * Double(width) * Double(width) * 18 }

    /// A `[tokens, width]` table (position embedding) or a `[width, classes]` head.
    static func table(_ rows: Int, _ columns: Int) -> Double { Double(rows) * Double(columns) }
}

extension Models {
    /// The families whose models run on any input side (their `ModelConfig.expectedInput` has
    /// none); the others' position embeddings, attention biases or windows are built for one.
    public static let anyInputSizeFamilies: Set<String> = ["resnet", "pvt_v2", "cvt"]

    /// The typed, validated config of `family` for a reference config (a fixture's
    /// `config`): what `ModelFamily.build(config:)` checks first, without building.
    public static func validatedConfig(family: String, config json: JSONValue) throws -> any ModelConfig {
        let config: any ModelConfig
        switch family {
        case "resnet": config = try json.decode(ResNetConfig.self)
        case "vit", "vit_hybrid": config = try json.decode(ViTConfig.self)
        case "vitc": config = try ViTCConfig.fromReference(json)
        case "convit": config = try json.decode(ConViTConfig.self)
        case "levit": config = try json.decode(LeViTConfig.self)
        case "swin": config = try json.decode(SwinConfig.self)
        case "coatnet", "maxvit":
            let c = try json.decode(MaxxVitConfig.self)
            try c.validate(family: family)  // under the family's name, as MaxxVit(_:family:) does
            return c
        case "pvt": config = try json.decode(PvtConfig.self)
        case "pvt_v2": config = try json.decode(PvtV2Config.self)
        case "p2t": config = try json.decode(P2TConfig.self)
        case "ceit": config = try json.decode(CeiTConfig.self)
        case "dat": config = try json.decode(DATConfig.self)
        case "cvt": config = try json.decode(CvTConfig.self)
        case "cmt": config = try json.decode(CMTConfig.self)
        default: _ = try Models.family(family); throw ModelError("\(family): no config type is registered for validation")
        }
        try config.validate()
        return config
    }
}

// MARK: - The families' checks

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

extension ResNetV2StemConfig {
    func validate() throws {
        let check = ConfigCheck(family: "resnetv2 stem")
        try check.width(inChs, "in_chs")
        try check.width(outChs, "out_chs")
    }
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

extension LeViTConfig: ModelConfig {
    public func validate() throws {
        let check = ConfigCheck(family: "levit")
        let n = embedDim.count
        guard n >= 1 else { throw check.error("embed_dim", embedDim, "must have at least one stage") }
        try check.perStage(depth, "depth", stages: n, as: "embed_dim")
        for (i, w) in embedDim.enumerated() { try check.width(w, "embed_dim[\(i)]") }
        try check.depths(depth, "depth")
        try check.width(keyDim, "key_dim")
        try check.width(inChans, "in_chans")
        try check.classes(numClasses)
        let sizes: [Int]
        switch imgSize {
        case .all(let s): sizes = [s, s]
        case .each(let s): sizes = s
        }
        guard sizes.count == 2 else { throw check.error("img_size", sizes, "must be one side or [height, width]") }
        for s in sizes { try check.size(s, "img_size") }
        for (list, field) in [(numHeads, "num_heads")] {
            if case .each(let v) = list { try check.perStage(v, field, stages: n, as: "embed_dim") }
            for (i, h) in try list.values(n, field).enumerated() { try check.width(h, "\(field)[\(i)]") }
        }
        for (list, field) in [(attnRatio, "attn_ratio"), (mlpRatio, "mlp_ratio")] {
            if case .each(let v) = list { try check.perStage(v, field, stages: n, as: "embed_dim") }
            for (i, r) in try list.values(n, field).enumerated() { try check.positive(r, "\(field)[\(i)]") }
        }
        try check.rates([(dropRate, "drop_rate"), (dropPathRate, "drop_path_rate")])
        let heads = try numHeads.values(n, "num_heads"), mlps = try mlpRatio.values(n, "mlp_ratio")
        let attn = try attnRatio.values(n, "attn_ratio")
        var estimate = ConfigCheck.table(embedDim.last!, numClasses * 2)
        for i in 0..<n {
            let inner = Double(keyDim * heads[i]) * (2 + attn[i])
            estimate += Double(depth[i]) * (Double(embedDim[i]) * inner * 2 + Double(embedDim[i] * embedDim[i]) * 2 * mlps[i])
        }
        // Attention biases: one per head and pair of positions of the stage's resolution.
        let side = Double(sizes.max()!) / 16
        estimate += Double(heads.max()!) * side * side * Double(n)
        try check.parameters(estimate, "embed_dim, depth, key_dim, num_heads, attn_ratio, mlp_ratio, img_size, num_classes")
    }
    public var expectedInput: ExpectedInput {
        switch imgSize {
        case .all(let s): return ExpectedInput(channels: inChans, side: s)
        case .each(let s): return s.count == 2 ? ExpectedInput(channels: inChans, height: s[0], width: s[1])
                                               : ExpectedInput(channels: inChans, side: nil)
        }
    }
    public var classCount: Int { numClasses }
}

extension SwinConfig: ModelConfig {
    public func validate() throws {
        let check = ConfigCheck(family: "swin")
        try check.size(imgSize, "img_size")
        try check.size(patchSize, "patch_size")
        try check.divisible(imgSize, "img_size", by: patchSize, "patch_size")
        try check.width(inChans, "in_chans")
        try check.classes(numClasses)
        try check.width(embedDim, "embed_dim")
        guard (1...8).contains(depths.count) else { throw check.error("depths", depths, "must have 1 to 8 stages") }
        try check.depths(depths, "depths")
        try check.perStage(numHeads, "num_heads", stages: depths.count, as: "depths")
        try check.size(windowSize, "window_size")
        try check.positive(mlpRatio, "mlp_ratio")
        if let h = headDim { try check.width(h, "head_dim") }
        var estimate = 0.0
        var grid = imgSize / patchSize
        for i in 0..<depths.count {
            let width = embedDim << i
            try check.width(width, "embed_dim × 2^\(i) (stage \(i)'s width)")
            if headDim == nil {
                try check.heads(numHeads[i], "num_heads[\(i)]", divide: width, "embed_dim × 2^\(i)")
            } else {
                try check.width(numHeads[i], "num_heads[\(i)]")
            }
            let window = min(windowSize, grid)
            // Blocks, relative-position tables and the shifted windows' attention mask (grid² · window²).
            estimate += ConfigCheck.transformer(width: width, depth: depths[i], mlpRatio: mlpRatio)
                + Double(depths[i] * numHeads[i]) * Double((2 * window - 1) * (2 * window - 1))
                + Double(grid) * Double(grid) * Double(window) * Double(window)
            if i > 0 { grid = (grid + 1) / 2 }
        }
        estimate += ConfigCheck.table(embedDim << (depths.count - 1), numClasses)
        try check.parameters(estimate, "embed_dim, depths, num_heads, mlp_ratio, img_size / patch_size, window_size, num_classes")
        try check.rates([(dropRate, "drop_rate"), (projDropRate, "proj_drop_rate"), (attnDropRate, "attn_drop_rate"),
                           (dropPathRate, "drop_path_rate")])
    }
    public var expectedInput: ExpectedInput { ExpectedInput(channels: inChans, side: imgSize) }
    public var classCount: Int { numClasses }
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

extension PvtConfig: ModelConfig {
    public func validate() throws {
        let check = ConfigCheck(family: "pvt")
        if let n = numEncoderBlocks, !(1...8).contains(n) { throw check.error("num_encoder_blocks", n, "must be in 1...8") }
        if let v = imageSize { try check.size(v, "image_size") }
        if let v = numChannels { try check.width(v, "num_channels") }
        if let v = numLabels { try check.classes(v, "num_labels") }
        for (list, field) in [(hiddenSizes, "hidden_sizes"), (numAttentionHeads, "num_attention_heads")] {
            for (i, v) in (list ?? []).enumerated() { try check.width(v, "\(field)[\(i)]") }
        }
        for (list, field) in [(patchSizes, "patch_sizes"), (strides, "strides"), (sequenceReductionRatios, "sequence_reduction_ratios")] {
            for (i, v) in (list ?? []).enumerated() { try check.size(v, "\(field)[\(i)]") }
        }
        if let d = depths { try check.depths(d, "depths") }
        for (i, r) in (mlpRatios ?? []).enumerated() { try check.positive(r, "mlp_ratios[\(i)]") }
        for (v, field) in [(hiddenDropoutProb, "hidden_dropout_prob"), (attentionProbsDropoutProb, "attention_probs_dropout_prob"),
                           (dropPathRate, "drop_path_rate")] {
            if let v { try check.rate(v, field) }
        }
        if let v = layerNormEps { try check.positive(v, "layer_norm_eps", maximum: 1) }
        try check.finite(initializerRange, "initializer_range")
        let r = try resolved()
        var estimate = ConfigCheck.table(r.hiddenSizes[r.numEncoderBlocks - 1], r.numLabels)
        var side = r.imageSize
        for i in 0..<r.numEncoderBlocks {
            let w = r.hiddenSizes[i]
            side /= r.strides[i]
            estimate += ConfigCheck.transformer(width: w, depth: r.depths[i], mlpRatio: r.mlpRatios[i])
                + ConfigCheck.table(side * side + 1, w)
                + Double(r.depths[i]) * Double(r.sequenceReductionRatios[i] * r.sequenceReductionRatios[i]) * Double(w * w)
        }
        try check.parameters(estimate, "hidden_sizes, depths, mlp_ratios, sequence_reduction_ratios, image_size, num_labels")
    }
    public var expectedInput: ExpectedInput { ExpectedInput(channels: numChannels ?? 3, side: imageSize ?? 224) }
    public var classCount: Int { numLabels ?? 1000 }
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

extension DATConfig: ModelConfig {
    public func validate() throws {
        let check = ConfigCheck(family: "dat")
        try check.size(imgSize, "img_size")
        try check.size(patchSize, "patch_size")
        try check.classes(numClasses)
        try check.width(expansion, "expansion")
        try check.width(dimStem, "dim_stem")
        for (list, field) in [(dims, "dims"), (depths, "depths"), (heads, "heads"), (windowSizes, "window_sizes"),
                              (strides, "strides"), (groups, "groups")] {
            try check.perStage(list, field, stages: 4, as: "the reference's four stages")
        }
        try check.perStage(offsetRangeFactor, "offset_range_factor", stages: 4, as: "the reference's four stages")
        try check.depths(depths, "depths")
        for i in 0..<4 {
            try check.width(dims[i], "dims[\(i)]")
            try check.heads(heads[i], "heads[\(i)]", divide: dims[i], "dims[\(i)]")
            try check.size(windowSizes[i], "window_sizes[\(i)]")
            try check.finite(offsetRangeFactor[i], "offset_range_factor[\(i)]")
            // -1 marks a value the stage does not use (its local-attention stages), as in the reference.
            guard strides[i] == -1 || (1...ConfigLimits.maxImageSize).contains(strides[i]) else {
                throw check.error("strides[\(i)]", strides[i], "must be -1 (unused) or at least 1")
            }
            guard groups[i] == -1 || (groups[i] >= 1 && heads[i] % groups[i] == 0) else {
                throw check.error("groups[\(i)]", groups[i], "must be -1 (unused) or divide heads[\(i)] \(heads[i])")
            }
        }
        // The reference's default stage_spec fits only the default depths (2, 2, 6, 2).
        let specs = stageSpec
        try check.perStage(specs, "stage_spec", stages: 4, as: "the reference's four stages")
        for i in 0..<4 where specs[i].count != depths[i] {
            throw check.error("stage_spec[\(i)]", specs[i], "must name one block per layer of depths[\(i)] \(depths[i])")
        }
        for (list, field) in [(usePes, "use_pes"), (dwcPes, "dwc_pes"), (fixedPes, "fixed_pes"), (noOffs, "no_offs"),
                              (useDwcMlps, "use_dwc_mlps")] {
            try check.perStage(list, field, stages: 4, as: "the reference's four stages")
        }
        for (list, field) in [(srRatios, "sr_ratios"), (nsPerPts, "ns_per_pts")] {
            try check.perStage(list, field, stages: 4, as: "the reference's four stages")
        }
        try check.rates([(dropRate, "drop_rate"), (attnDropRate, "attn_drop_rate"), (dropPathRate, "drop_path_rate")])
        var estimate = ConfigCheck.table(dims[3], numClasses)
        for i in 0..<4 {
            estimate += ConfigCheck.transformer(width: dims[i], depth: depths[i], mlpRatio: Double(expansion))
                + Double(depths[i] * heads[i]) * Double((2 * windowSizes[i] - 1) * (2 * windowSizes[i] - 1))
        }
        let side = imgSize / patchSize
        estimate += Double(heads.max()!) * Double(side) * Double(side) * 4  // deformable stages' position tables
        try check.parameters(estimate, "dims, depths, expansion, heads, window_sizes, img_size / patch_size, num_classes")
    }
    public var expectedInput: ExpectedInput { ExpectedInput(channels: 3, side: imgSize) }
    public var classCount: Int { numClasses }
}

extension CMTConfig: ModelConfig {
    public func validate() throws {
        let check = ConfigCheck(family: "cmt")
        try check.size(imgSize, "img_size")
        try check.divisible(imgSize, "img_size", by: 32, "32 (the stem and four 2x2 patch embeddings halve it five times)")
        if let c = inChans { try check.width(c, "in_chans") }
        try check.classes(numClasses)
        for (list, field) in [(embedDims, "embed_dims"), (numHeads, "num_heads"), (depths, "depths"), (srRatios, "sr_ratios")] {
            try check.perStage(list, field, stages: 4, as: "the reference's four stages")
        }
        try check.perStage(mlpRatios, "mlp_ratios", stages: 4, as: "the reference's four stages")
        try check.depths(depths, "depths")
        try check.width(stemChannel, "stem_channel")
        try check.width(fcDim, "fc_dim")
        try check.width(qkRatio, "qk_ratio")
        for i in 0..<4 {
            try check.width(embedDims[i], "embed_dims[\(i)]")
            try check.heads(numHeads[i], "num_heads[\(i)]", divide: embedDims[i], "embed_dims[\(i)]")
            try check.positive(mlpRatios[i], "mlp_ratios[\(i)]")
            try check.size(srRatios[i], "sr_ratios[\(i)]")
        }
        if let v = qkScale { try check.finite(v, "qk_scale") }
        try check.rates([(dropRate, "drop_rate"), (attnDropRate, "attn_drop_rate"), (dropPathRate, "drop_path_rate"), (dp, "dp")])
        var estimate = ConfigCheck.table(embedDims[3], fcDim) + ConfigCheck.table(fcDim, numClasses)
        for i in 0..<4 {
            estimate += ConfigCheck.transformer(width: embedDims[i], depth: depths[i], mlpRatio: mlpRatios[i])
                + Double(depths[i]) * Double(srRatios[i] * srRatios[i]) * Double(embedDims[i] * embedDims[i])
            let side = imgSize / (4 << i)
            estimate += Double(numHeads[i]) * Double(side * side) * Double((side / srRatios[i]) * (side / srRatios[i]))
        }
        try check.parameters(estimate, "embed_dims, depths, mlp_ratios, sr_ratios, img_size, fc_dim, num_classes")
    }
    public var expectedInput: ExpectedInput { ExpectedInput(channels: inChans ?? 3, side: imgSize) }
    public var classCount: Int { numClasses }
}

// CvTConfig.validate() is in CvT.swift, beside the config.
extension CvTConfig: ModelConfig {
    public var expectedInput: ExpectedInput { ExpectedInput(channels: numChannels, side: nil) }
    public var classCount: Int { numLabels }
}
