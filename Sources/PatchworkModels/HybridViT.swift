import Foundation
import Patchwork
import PatchworkNN

// timm's hybrid Vision Transformers (timm/models/vision_transformer_hybrid.py,
// timm/layers/hybrid_embed.py): a CNN backbone (ResNetV2, ResNetV2.swift)
// makes the feature map, a conv projects it to tokens, and a plain
// VisionTransformer (VisionTransformer.swift) runs on them.
// Embedding → model → named variants, in timm's order.

/// A CNN that a hybrid ViT can run on images to get its feature map.
public protocol HybridBackbone: Module {
    /// Channels of the feature map.
    var numFeatures: Int { get }
    /// The feature map's height and width for an input of `size` (without running it).
    func featureSize(for size: (Int, Int)) -> (Int, Int)
    /// The feature map [B, h, w, numFeatures] of images [B, H, W, C].
    func forwardFeatures(_ x: Tensor) -> Tensor
}

extension ResNetV2: HybridBackbone {}

/// timm's HybridEmbed: backbone feature map → conv `proj` with kernel = stride
/// = patch size (1x1 for the usual patch_size 1) → tokens [B, h·w, D] by a
/// reshape (channels-last, so no copy).
public final class HybridEmbed: Module, TokenEmbedding {
    @Child(key: "backbone") public var backbone: HybridBackbone
    @Child(key: "proj") var proj: Module
    public let patchSize: Int
    public let featureSize: (Int, Int)
    public let grid: (Int, Int)
    public let embedDim: Int

    /// `proj: false` passes the features through (their width must then be `embedDim`).
    public init(backbone: HybridBackbone, imgSize: (Int, Int), patchSize: Int = 1, embedDim: Int, bias: Bool = true,
                proj: Bool = true) throws {
        _backbone.wrappedValue = backbone
        self.patchSize = patchSize
        self.embedDim = embedDim
        featureSize = backbone.featureSize(for: imgSize)
        guard featureSize.0 > 0, featureSize.1 > 0, featureSize.0 % patchSize == 0, featureSize.1 % patchSize == 0 else {
            throw ModelError("HybridEmbed: the backbone's \(featureSize.0)x\(featureSize.1) feature map for \(imgSize.0)x\(imgSize.1) "
                             + "images is not divisible by patch_size \(patchSize)")
        }
        grid = (featureSize.0 / patchSize, featureSize.1 / patchSize)
        if proj {
            _proj.wrappedValue = Conv2d(backbone.numFeatures, embedDim, kernelSize: patchSize, stride: patchSize, bias: bias)
        } else {
            guard backbone.numFeatures == embedDim else {
                throw ModelError("HybridEmbed: without a projection the feature width \(backbone.numFeatures) must equal embed_dim \(embedDim)")
            }
            _proj.wrappedValue = Identity()
        }
        super.init()
    }

    public func tokens(_ x: Tensor) -> (tokens: Tensor, grid: (Int, Int)) {
        let y = proj(backbone.forwardFeatures(x))
        let (b, h, w, d) = (y.shape[0], y.shape[1], y.shape[2], y.shape[3])
        return (y.reshaped([b, h * w, d]), (h, w))
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor { tokens(x).tokens }
}

/// The arguments bound into timm's `partial(HybridEmbed, backbone=..., **embed_args)`.
struct HybridEmbedArgs: Codable {
    var backbone: ReferenceCallable
    var featureSize: JSONValue?
    var featureRatio: JSONValue?
    var proj: Bool?
    var flatten: Bool?
    var outputFmt: String?
    var strictImgSize: Bool?
    var dynamicImgPad: Bool?
}

/// timm's hybrid ViTs: `VisionTransformer(embed_layer=partial(HybridEmbed, backbone=ResNetV2(...)))`.
/// The model is a `VisionTransformer` whose `patchEmbed` is a `HybridEmbed`.
public enum HybridVisionTransformer {
    /// Builds the ViT of `config` on a ResNetV2 backbone (the embed layer in `config` is ignored).
    public static func make(_ config: ViTConfig, backbone: ResNetV2Config, proj: Bool = true) throws -> VisionTransformer {
        try config.validate()
        if config.inChans != backbone.inChans {
            throw ModelError("vit_hybrid: in_chans \(config.inChans) differs from the backbone's \(backbone.inChans)")
        }
        if backbone.numClasses != 0 || !backbone.globalPool.isEmpty {
            throw ModelError("vit_hybrid: the backbone must have no head (num_classes 0, global_pool \"\")")
        }
        return try make(config, backbone: ResNetV2(backbone), proj: proj)
    }

    /// Builds the ViT of `config` on a built backbone.
    static func make(_ config: ViTConfig, backbone net: HybridBackbone, proj: Bool) throws -> VisionTransformer {
        try config.validate()
        let embed = try HybridEmbed(backbone: net, imgSize: (config.imgSize, config.imgSize), patchSize: config.patchSize,
                                    embedDim: config.embedDim, bias: !config.preNorm, proj: proj)
        var c = config
        c.embedLayer = nil
        return try VisionTransformer(c, embedding: embed, grid: embed.grid)
    }

    /// Builds from a reference config: a VisionTransformer config whose
    /// `embed_layer` is a partial HybridEmbed with a ResNetV2 instance as `backbone`.
    @Sendable static func build(_ json: JSONValue) throws -> ImageClassifier {
        let config = try json.decode(ViTConfig.self)
        try config.validate()
        guard let embed = config.embedLayer, embed.shortName == "HybridEmbed" else {
            throw ModelError("vit_hybrid: embed_layer must be timm.layers.hybrid_embed.HybridEmbed, got \(config.embedLayer?.name ?? "none")")
        }
        let args = try JSONValue.object(embed.kwargs ?? [:]).decode(HybridEmbedArgs.self)
        if let v = args.featureSize, v != .null { throw ModelError("vit_hybrid: HybridEmbed feature_size is not supported (it is computed)") }
        if let v = args.featureRatio, v != .null { throw ModelError("vit_hybrid: HybridEmbed feature_ratio is not supported (it is computed)") }
        if args.flatten == false || args.outputFmt != nil { throw ModelError("vit_hybrid: HybridEmbed must flatten to tokens") }
        if args.dynamicImgPad == true { throw ModelError("vit_hybrid: dynamic_img_pad is not supported") }
        let kwargs = JSONValue.object(args.backbone.kwargs ?? [:])
        switch args.backbone.shortName {
        case "ResNetV2":
            return try make(config, backbone: kwargs.decode(ResNetV2Config.self), proj: args.proj ?? true)
        case "create_resnetv2_stem":
            return try make(config, backbone: ResNetV2Stem(kwargs.decode(ResNetV2StemConfig.self)), proj: args.proj ?? true)
        default:
            throw ModelError("vit_hybrid: backbone \(args.backbone.name) is not supported "
                             + "(timm.models.resnetv2.ResNetV2, timm.models.resnetv2.create_resnetv2_stem)")
        }
    }

    /// timm's `_resnetv2(layers)` with `padding_same`: a headless ResNetV2 with StdConv2dSame
    /// (eps 1e-8), or for no layers the stem alone (`create_resnetv2_stem`).
    static func resNetV2Backbone(layers: [Int]) -> JSONValue {
        let conv: JSONValue = .partial("timm.layers.std_conv.StdConv2dSame", ["eps": 1e-8])
        if layers.isEmpty {
            return .instance("timm.models.resnetv2.create_resnetv2_stem",
                             ["in_chs": 3, "stem_type": "same", "preact": false, "conv_layer": conv])
        }
        return .instance("timm.models.resnetv2.ResNetV2",
                         ["layers": .array(layers.map { .number(Double($0)) }), "num_classes": 0, "global_pool": "", "in_chans": 3,
                          "preact": false, "stem_type": "same", "conv_layer": conv])
    }

    /// A timm entrypoint of vision_transformer_hybrid.py: `model_args` on `HybridEmbed(backbone)`, with
    /// `patch_size` 1 unless given (`_create_vision_transformer_hybrid`) and the 384 variants' `img_size`
    /// (their pretrained config's input size, which timm passes to the constructor).
    static func variant(_ name: String, size: Int = 224, backboneLayers: [Int], _ modelArgs: [String: JSONValue]) -> ModelVariant {
        var arguments = modelArgs
        arguments["img_size"] = .number(Double(size))
        arguments["patch_size"] = modelArgs["patch_size"] ?? 1
        arguments["embed_layer"] = .partial("timm.layers.hybrid_embed.HybridEmbed", ["backbone": resNetV2Backbone(layers: backboneLayers)])
        return ModelVariant(name, family: "vit_hybrid", inputSize: size, arguments: arguments, build: build)
    }

    /// timm's ResNetV2-based hybrids (vision_transformer_hybrid.py): R50 = ResNetV2
    /// layers (3, 4, 9) to stride 16, R26 = (2, 2, 2, 2) to stride 32; patch size 1;
    /// R-Ti/16 (`vit_tiny_r_s16_p8_*`) = the "same" stem alone (stride 4, 64 channels) under 8x8 patches.
    public static let family = ModelFamily(
        name: "vit_hybrid", reference: "timm 1.0.31 timm.models.vision_transformer.VisionTransformer + HybridEmbed(ResNetV2)",
        variants: [
            variant("vit_tiny_r_s16_p8_224", backboneLayers: [], ["patch_size": 8, "embed_dim": 192, "depth": 12, "num_heads": 3]),
            variant("vit_tiny_r_s16_p8_384", size: 384, backboneLayers: [], ["patch_size": 8, "embed_dim": 192, "depth": 12, "num_heads": 3]),
            variant("vit_small_r26_s32_224", backboneLayers: [2, 2, 2, 2], ["embed_dim": 384, "depth": 12, "num_heads": 6]),
            variant("vit_small_r26_s32_384", size: 384, backboneLayers: [2, 2, 2, 2], ["embed_dim": 384, "depth": 12, "num_heads": 6]),
            variant("vit_base_r26_s32_224", backboneLayers: [2, 2, 2, 2], ["embed_dim": 768, "depth": 12, "num_heads": 12]),
            variant("vit_base_r50_s16_224", backboneLayers: [3, 4, 9], ["embed_dim": 768, "depth": 12, "num_heads": 12]),
            variant("vit_base_r50_s16_384", size: 384, backboneLayers: [3, 4, 9], ["embed_dim": 768, "depth": 12, "num_heads": 12]),
            variant("vit_large_r50_s32_224", backboneLayers: [3, 4, 6, 3], ["embed_dim": 1024, "depth": 24, "num_heads": 16]),
            // For 32x32: one ResNetV2 stage after the stride-4 stem gives the same 8x8 token
            // grid as vit_nano's 4x4 patches, under the same transformer.
            ModelVariant("vit_hybrid_nano", family: "vit_hybrid", inputSize: 32) { classes in
                var backbone = ResNetV2Config.hybridBackbone(layers: [2])
                backbone.channels = [128]
                backbone.stemChs = 32
                var c = ViTConfig(imgSize: 32, patchSize: 1, embedDim: 128, depth: 6, numHeads: 4, numClasses: classes)
                c.mlpRatio = 3
                return try make(c, backbone: backbone)
            },
        ],
        build: build)
}
