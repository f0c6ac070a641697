import Foundation

// Config validation: every family's config is checked against the reference's own
// constraints (sizes positive, heads dividing the width, one entry per stage, rates in
// [0, 1], ...) by its `validate()`, which each model's initializer calls first, before
// any tensor is allocated; so a named variant, `ModelFamily.build(config:)`, a parity
// case and a direct `init` are all checked the same way. A failure is a `ModelError`
// naming the family, the field (the reference's argument name, as in the JSON) and its
// value. Each family's `validate()` sits in its own file, beside its config; this file
// holds the mechanism they share.

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

// CvTConfig.validate() is in CvT.swift, beside the config.
