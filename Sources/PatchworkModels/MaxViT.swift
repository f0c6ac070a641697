import Foundation
import Patchwork
import PatchworkNN

// MaxViT (timm's MaxxVit with "M" blocks: MBConv, block attention, grid attention; the
// model and its blocks are in MaxxVit.swift), in the TensorFlow-compatible `*_tf`
// configuration. Named variants: timm's model_cfgs.

public enum MaxViT {
    /// timm's `_tf_cfg()`: BN eps 1e-3, gelu_tanh, "same" padding; LN eps 1e-5, qkv with
    /// heads inside each of q/k/v (`head_first=False`), TF-layout relative-position bias.
    public static func tfCfg(_ dims: [Int], _ depths: [Int], stem: Int) -> MaxxVitCfg {
        var cfg = MaxxVitCfg()
        cfg.embedDim = dims
        cfg.depths = depths
        cfg.blockType = dims.map { _ in BlockTypes(["M"]) }
        cfg.stemWidth = IntPair(stem)
        cfg.stemBias = true
        cfg.headHiddenSize = dims.last
        cfg.convCfg.normEps = 1e-3
        cfg.convCfg.actLayer = "gelu_tanh"
        cfg.convCfg.padding = "same"
        cfg.transformerCfg.normEps = 1e-5
        cfg.transformerCfg.actLayer = "gelu_tanh"
        cfg.transformerCfg.headFirst = false
        cfg.transformerCfg.relPosType = "bias_tf"
        return cfg
    }

    /// A MaxViT for 32x32 images: stages at 8x8, 4x4, 2x2 with 2x2 windows and grids.
    public static func nanoCfg() -> MaxxVitCfg {
        var cfg = tfCfg([32, 64, 128], [1, 2, 1], stem: 32)
        cfg.transformerCfg.dimHead = 16
        cfg.transformerCfg.windowSize = IntPair(2)
        cfg.transformerCfg.gridSize = IntPair(2)
        return cfg
    }

    static func variant(_ name: String, size: Int = 224, _ cfg: @escaping @Sendable () -> MaxxVitCfg) -> ModelVariant {
        ModelVariant(name, family: "maxvit", inputSize: size) { classes in
            try MaxxVit(MaxxVitConfig(cfg: cfg(), imgSize: size, numClasses: classes), allowedBlocks: ["M"], family: "maxvit")
        }
    }

    public static let family = ModelFamily(
        name: "maxvit", reference: "timm 1.0.31 timm.models.maxxvit.MaxxVit (MaxViT *_tf configs)",
        variants: [
            variant("maxvit_tiny_tf_224") { tfCfg([64, 128, 256, 512], [2, 2, 5, 2], stem: 64) },
            variant("maxvit_small_tf_224") { tfCfg([96, 192, 384, 768], [2, 2, 5, 2], stem: 64) },
            variant("maxvit_base_tf_224") { tfCfg([96, 192, 384, 768], [2, 6, 14, 2], stem: 64) },
            variant("maxvit_nano", size: 32) { nanoCfg() },
        ],
        build: { config in try MaxxVit.build(config, family: "maxvit", allowedBlocks: ["M"]) })
}
