import Foundation
import Patchwork
import PatchworkModels
import PatchworkNN

/// One case of the benchmark suite (`bench/cases.json`, the same file as
/// `../shared/bench/cases.json`): a model given the way PyTorch builds it, a
/// batch, an input shape and the modes to time. `patchwork bench` times it; the
/// model is built by the registry's family from the reference's arguments
/// (`timm.create_model` names: `Models.timmEntrypoint`).
public struct BenchCase: Decodable, Sendable {
    public let name: String
    public let group: String
    public let family: String
    /// How the reference builds the model: `callable` with `args`/`kwargs`, optionally `post_init`.
    public let reference: JSONValue
    /// (C, H, W).
    public let inputShape: [Int]
    public let batch: Int
    public let numClasses: Int
    public let modes: [String]
    /// The reference's parameter count.
    public let params: Int?
    /// FLOPs per image by mode (one multiply-add = 2 FLOPs; matrix products, convolutions, attention).
    public let gflopsPerImage: [String: Double]?

    enum CodingKeys: String, CodingKey {
        case name, group, family, reference, inputShape = "input_shape", batch, numClasses = "num_classes", modes,
             params, gflopsPerImage = "gflops_per_image"
    }

    /// The suite file: `{"cases": [...]}`.
    public static func load(_ path: String) throws -> [BenchCase] {
        let data = Data(try BoundedFile.read(path, limit: BoundedFile.jsonLimit, what: "benchmark suite"))
        struct Suite: Decodable { let cases: [BenchCase] }
        do { return try JSONDecoder().decode(Suite.self, from: data).cases } catch {
            throw ModelError("\(path): not a benchmark suite (\(error))")
        }
    }

    /// Builds the case's model with random weights: the reference's constructor
    /// arguments translated into the family's config (the same decoding as the
    /// parity fixtures), then checks the parameter count against the reference's.
    public func model() throws -> ImageClassifier {
        let config: JSONValue
        do { config = try familyConfig() } catch { throw ModelError("bench case \(name): \(error)") }
        let model: ImageClassifier
        do { model = try Models.family(family).build(config: config) } catch {
            throw ModelError("bench case \(name): cannot build family \"\(family)\": \(error)")
        }
        if let params, model.parameterCount != params {
            throw ModelError("bench case \(name): the \(family) model has \(model.parameterCount) parameters, the reference \(params); "
                             + "the translation of its reference arguments is wrong")
        }
        return model
    }

    /// The family config (the reference constructor's arguments, as a parity fixture's `config`).
    public func familyConfig() throws -> JSONValue {
        guard let callable = reference["callable"]?.string else { throw ModelError("reference has no \"callable\"") }
        let kwargs = Self.tagged(reference["kwargs"] ?? .object([:])).object ?? [:]
        let args = (reference["args"]?.array ?? []).map(Self.tagged)
        var config: [String: JSONValue]
        switch callable {
        case "timm.create_model":
            guard let modelName = args.first?.string else { throw ModelError("timm.create_model needs the model name as its first argument") }
            config = try Self.timmNamedModel(modelName, family: family, overrides: kwargs.filter { $0.key != "pretrained" })
        case "timm.models.resnet.ResNet", "timm.models.convit.ConVit", "timm.models.swin_transformer.SwinTransformer":
            config = kwargs
        case "timm.models.vision_transformer.VisionTransformer":
            config = family == "vitc" ? try Self.vitcFromConvStem(kwargs) : kwargs
        case _ where callable.hasPrefix("transformers.") && callable.hasSuffix("ForImageClassification"):
            // HF models take one config object: its arguments are the family config (HF defaults fill the rest).
            guard args.count == 1, let hf = args.first, hf["$type"]?.string == "instance", let hfKwargs = hf["kwargs"]?.object else {
                throw ModelError("\(callable) needs one config instance as its argument")
            }
            config = hfKwargs
        default:
            throw ModelError("reference callable \(callable) is not supported")
        }
        if let postInit = reference["post_init"]?.array, !postInit.isEmpty {
            guard family == "resnet" else { throw ModelError("post_init is only supported for resnet (the CIFAR stem)") }
            try Self.applyCifarStem(postInit.map(Self.tagged), to: &config)
        }
        return .object(config)
    }

    /// The benchmark file writes a class as `{"ref": name}` and a call as
    /// `{"callable", "args", "kwargs", "partial"}`; the families read the parity
    /// fixtures' `{"$type": "callable" | "instance" | "partial", "name", "kwargs"}`.
    static func tagged(_ value: JSONValue) -> JSONValue {
        switch value {
        case .array(let a): return .array(a.map(tagged))
        case .object(let o):
            if let ref = o["ref"]?.string, o.count == 1 { return .object(["$type": .string("callable"), "name": .string(ref)]) }
            if let callable = o["callable"]?.string {
                var out: [String: JSONValue] = ["$type": .string(o["partial"]?.bool == true ? "partial" : "instance"),
                                                "name": .string(callable), "kwargs": tagged(o["kwargs"] ?? .object([:]))]
                if let args = o["args"] { out["args"] = tagged(args) }
                return .object(out)
            }
            return .object(o.mapValues(tagged))
        default: return value
        }
    }

    /// `timm.create_model(name, **overrides)`: the registered variant's reference arguments
    /// with the overrides merged as timm merges them.
    static func timmNamedModel(_ name: String, family: String, overrides: [String: JSONValue]) throws -> [String: JSONValue] {
        let variant = try Models.variant(name)
        guard variant.family == family else { throw ModelError("timm model \(name) is a \(variant.family) model, the case says \(family)") }
        guard var config = variant.arguments else { throw ModelError("\(name) is Patchwork's own variant, not a timm model") }
        switch family {
        case "coatnet", "maxvit":
            // MaxxVit(cfg, img_size, in_chans, num_classes, global_pool, drop_rate, drop_path_rate, **kwargs):
            // other kwargs overlay the cfg, `transformer_*` / `conv_*` its sub-configs (timm's _overlay_kwargs).
            let modelArgs: Set = ["img_size", "in_chans", "num_classes", "global_pool", "drop_rate", "drop_path_rate"]
            guard var cfg = config["cfg"]?.object else { throw ModelError("timm model \(name): no cfg") }
            for (key, value) in overrides {
                if modelArgs.contains(key) {
                    config[key] = value
                } else if let (prefix, sub) = [("transformer_", "transformer_cfg"), ("conv_", "conv_cfg")].first(where: { key.hasPrefix($0.0) }) {
                    var subConfig = cfg[sub]?.object ?? [:]
                    subConfig[String(key.dropFirst(prefix.count))] = value
                    cfg[sub] = .object(subConfig)
                } else {
                    cfg[key] = value
                }
            }
            config["cfg"] = .object(cfg)
        default:
            // Every other entrypoint calls its builder with dict(model_args, **kwargs).
            config.merge(overrides) { _, new in new }
        }
        return config
    }

    /// timm's `VisionTransformer(embed_layer=partial(HybridEmbed, proj=False, backbone=ConvStem(...)))`
    /// is ViT_C (Xiao et al. 2021): the same conv-BN-ReLU stem and final 1x1 conv, then the
    /// transformer. Translated into pycls's `ViT` params, the vitc family's config.
    static func vitcFromConvStem(_ kwargs: [String: JSONValue]) throws -> [String: JSONValue] {
        guard let embed = kwargs["embed_layer"], embed["name"]?.string?.hasSuffix("HybridEmbed") == true,
              let embedKwargs = embed["kwargs"]?.object, let stem = embedKwargs["backbone"],
              stem["name"]?.string?.hasSuffix("ConvStem") == true, let stemKwargs = stem["kwargs"]?.object else {
            throw ModelError("vitc: expected embed_layer = partial(HybridEmbed, backbone=ConvStem(...))")
        }
        guard embedKwargs["proj"]?.bool == false else { throw ModelError("vitc: HybridEmbed must have proj=False (the stem's last 1x1 conv projects)") }
        for key in kwargs.keys where !["img_size", "patch_size", "embed_dim", "depth", "num_heads", "num_classes", "embed_layer", "mlp_ratio"].contains(key) {
            throw ModelError("vitc: VisionTransformer argument \(key) is not supported in the ViT_C translation")
        }
        guard (kwargs["patch_size"]?.int ?? 1) == 1 else { throw ModelError("vitc: patch_size must be 1 (the stem makes the tokens)") }
        guard let channels = stemKwargs["channels"]?.array?.compactMap(\.int), let kernels = stemKwargs["kernel_size"]?.array?.compactMap(\.int),
              let strides = stemKwargs["stride"]?.array?.compactMap(\.int), let depth = stemKwargs["depth"]?.int,
              channels.count == depth, kernels.count == depth, strides.count == depth, kernels.last == 1 else {
            throw ModelError("vitc: ConvStem needs depth, and channels, kernel_size, stride lists of that length ending in a 1x1 conv")
        }
        let dim = kwargs["embed_dim"]?.int ?? 768
        guard channels.last == dim else { throw ModelError("vitc: the stem ends at \(channels.last!) channels, embed_dim is \(dim)") }
        let mlpRatio = kwargs["mlp_ratio"]?.double ?? 4
        return ["image_size": kwargs["img_size"] ?? .number(224), "patch_size": .number(Double(strides.reduce(1, *))), "stem_type": .string("conv"),
                "c_stem_kernels": .array(kernels.map { .number(Double($0)) }), "c_stem_strides": .array(strides.map { .number(Double($0)) }),
                "c_stem_dims": .array(channels.map { .number(Double($0)) }), "n_layers": kwargs["depth"] ?? .number(12),
                "n_heads": kwargs["num_heads"] ?? .number(12), "hidden_d": .number(Double(dim)), "mlp_d": .number(Double(dim) * mlpRatio),
                "cls_type": .string("token"), "num_classes": kwargs["num_classes"] ?? .number(1000)]
    }

    /// The CIFAR stem as the suite writes it: `conv1` replaced by a 3x3 stride-1 conv
    /// (padding 1, no bias) and `maxpool` by Identity — the resnet family's `small_input_stem`.
    static func applyCifarStem(_ steps: [JSONValue], to config: inout [String: JSONValue]) throws {
        var conv: JSONValue?, identityPool = false
        for step in steps {
            switch step["replace"]?.string {
            case "conv1": conv = step["with"]
            case "maxpool": identityPool = step["with"]?["name"]?.string == "torch.nn.Identity"
            default: throw ModelError("post_init: replacing \(step["replace"]?.string ?? "?") is not supported (conv1, maxpool)")
            }
        }
        guard let conv, conv["name"]?.string == "torch.nn.Conv2d", identityPool,
              let args = conv["args"]?.array?.compactMap(\.int), args.count == 3, args[2] == 3,
              conv["kwargs"]?["stride"]?.int == 1, conv["kwargs"]?["padding"]?.int == 1, conv["kwargs"]?["bias"]?.bool == false else {
            throw ModelError("post_init: only the CIFAR stem is supported (conv1 = Conv2d(in, width, 3, stride=1, padding=1, bias=False), maxpool = Identity)")
        }
        // The replaced stem's output width must be what the first stage expects: 2·stem_width for deep stems.
        let stemWidth = config["stem_width"]?.int ?? 64
        let expected = (config["stem_type"]?.string ?? "").hasPrefix("deep") ? 2 * stemWidth : 64
        guard args[1] == expected else { throw ModelError("post_init: conv1 has \(args[1]) output channels, the first stage expects \(expected)") }
        config["stem_type"] = .string("")
        config["stem_width"] = .number(Double(args[1]))
        config["small_input_stem"] = .bool(true)
        if args[0] != (config["in_chans"]?.int ?? 3) { throw ModelError("post_init: conv1 takes \(args[0]) channels, in_chans is \(config["in_chans"]?.int ?? 3)") }
    }
}
