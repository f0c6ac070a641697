import Foundation
import Patchwork
import PatchworkNN

/// Every model family and named variant (`Models.create("resnet50", numClasses: 10)`).
public enum Models {
    /// The implemented families, in DESIGN.md's order. A new family adds its line here.
    public static let families: [ModelFamily] = [
        ResNet.family,
        VisionTransformer.family,
        HybridVisionTransformer.family,
        ViTC.family,
        ConViT.family,
        LeViT.family,
        SwinTransformer.family,
        CoAtNet.family,
        PVT.family,
        PvtV2.family,
        P2T.family,
        CeiT.family,
        DAT.family,
        MaxViT.family,
        CvT.family,
        CMT.family,
    ]

    public static func family(_ name: String) throws -> ModelFamily {
        guard let f = families.first(where: { $0.name == name }) else {
            throw ModelError("unknown model family \"\(name)\" (implemented: \(families.map(\.name).joined(separator: ", ")))")
        }
        return f
    }

    public static func list() -> [ModelVariant] { families.flatMap(\.variants) }

    public static func variant(_ name: String) throws -> ModelVariant {
        guard let v = list().first(where: { $0.name == name }) else {
            let close = list().map(\.name).filter { $0.hasPrefix(String(name.prefix(3))) }
            throw ModelError("unknown model \"\(name)\"" + (close.isEmpty ? "" : " (similar: \(close.joined(separator: ", ")))")
                             + "; `patchwork models` lists them all")
        }
        return v
    }

    public static func create(_ name: String, numClasses: Int = 1000) throws -> ImageClassifier {
        try variant(name).create(numClasses: numClasses)
    }
}

extension Models {
    /// A reference's named model as its own code registers it (timm's `@register_model`
    /// functions): the family, and the arguments the entrypoint passes to the family's
    /// constructor (`model_args`, or its `model_cfgs` entry), in the family's config format
    /// (the reference's argument names, as a parity fixture's `config`).
    ///
    /// `timm.create_model(name, **overrides)` is `Models.family(e.family).build(config:)` of
    /// these arguments with the overrides merged (as the benchmark suite builds its cases).
    /// Where a variant of the same name is registered, both build the same model: the
    /// registry's tests check parameter count and every checkpoint key and shape.
    public struct ReferenceEntrypoint: Sendable {
        public let name: String
        public let family: String
        public let arguments: [String: JSONValue]
    }

    /// timm 1.0.31's entrypoints that the benchmark suite (bench/cases.json) names.
    public static let timmEntrypoints: [ReferenceEntrypoint] = {
        let maxxVit = "timm.models.maxxvit."
        func cfg(_ kwargs: [String: JSONValue], conv: [String: JSONValue], transformer: [String: JSONValue]) -> JSONValue {
            var all = kwargs
            all["conv_cfg"] = .instance(maxxVit + "MaxxVitConvCfg", conv)
            all["transformer_cfg"] = .instance(maxxVit + "MaxxVitTransformerCfg", transformer)
            return .instance(maxxVit + "MaxxVitCfg", all)
        }
        let entries: [(String, String, [String: JSONValue])] = [
            ("resnet18", "resnet", ["block": .callable("timm.models.resnet.BasicBlock"), "layers": [2, 2, 2, 2]]),
            ("resnet50", "resnet", ["block": .callable("timm.models.resnet.Bottleneck"), "layers": [3, 4, 6, 3]]),
            ("vit_tiny_patch16_224", "vit", ["patch_size": 16, "embed_dim": 192, "depth": 12, "num_heads": 3]),
            ("vit_small_patch16_224", "vit", ["patch_size": 16, "embed_dim": 384, "depth": 12, "num_heads": 6]),
            ("vit_tiny_r_s16_p8_224", "vit_hybrid", [
                "patch_size": 8, "embed_dim": 192, "depth": 12, "num_heads": 3,
                "embed_layer": .partial("timm.layers.hybrid_embed.HybridEmbed", [
                    "backbone": .instance("timm.models.resnetv2.create_resnetv2_stem", [
                        "in_chs": 3, "stem_type": "same", "preact": false,
                        "conv_layer": .partial("timm.layers.std_conv.StdConv2dSame", ["eps": 1e-8])])])]),
            ("convit_tiny", "convit", ["local_up_to_layer": 10, "locality_strength": 1.0, "embed_dim": 48, "num_heads": 4]),
            ("levit_128s", "levit", ["embed_dim": [128, 256, 384], "key_dim": 16, "num_heads": [4, 6, 8], "depth": [2, 3, 4]]),
            ("swin_tiny_patch4_window7_224", "swin", ["patch_size": 4, "window_size": 7, "embed_dim": 96, "depths": [2, 2, 6, 2],
                                                      "num_heads": [3, 6, 12, 24]]),
            ("pvt_v2_b0", "pvt_v2", ["depths": [2, 2, 2, 2], "embed_dims": [32, 64, 160, 256], "num_heads": [1, 2, 5, 8]]),
            ("coatnet_nano_rw_224", "coatnet", ["cfg": cfg(
                ["embed_dim": [64, 128, 256, 512], "depths": [3, 4, 6, 3], "stem_width": [32, 64]],
                conv: ["expand_output": false, "stride_mode": "pool", "act_layer": "silu"],
                transformer: ["expand_first": false])]),
            ("coatnet_0_rw_224", "coatnet", ["cfg": cfg(
                ["depths": [2, 3, 7, 2], "stem_width": [32, 64]],
                conv: ["expand_output": false, "pre_norm_act": true, "output_bias": false, "stride_mode": "pool", "attn_early": true,
                       "attn_act_layer": "relu", "act_layer": "silu"],
                transformer: ["expand_first": false, "shortcut_bias": false])]),
            ("maxvit_nano_rw_256", "maxvit", ["img_size": 256, "cfg": cfg(
                ["embed_dim": [64, 128, 256, 512], "depths": [1, 2, 3, 1], "block_type": ["M", "M", "M", "M"], "stem_width": [32, 64]],
                conv: ["expand_output": false, "output_bias": false, "attn_ratio": 0.0625, "act_layer": "silu"],
                transformer: ["expand_first": false])]),
            ("maxvit_tiny_tf_224", "maxvit", ["cfg": cfg(
                ["embed_dim": [64, 128, 256, 512], "depths": [2, 2, 5, 2], "block_type": ["M", "M", "M", "M"], "stem_bias": true,
                 "head_hidden_size": 512],
                conv: ["padding": "same", "act_layer": "gelu_tanh", "norm_eps": 0.001],
                transformer: ["head_first": false, "rel_pos_type": "bias_tf", "act_layer": "gelu_tanh", "norm_eps": 1e-05])]),
        ]
        return entries.map { ReferenceEntrypoint(name: $0.0, family: $0.1, arguments: $0.2) }
    }()

    /// The timm entrypoint `name`.
    public static func timmEntrypoint(_ name: String) throws -> ReferenceEntrypoint {
        guard let e = timmEntrypoints.first(where: { $0.name == name }) else {
            throw ModelError("timm model \(name) is not listed (known: \(timmEntrypoints.map(\.name).sorted().joined(separator: ", ")))")
        }
        return e
    }
}
