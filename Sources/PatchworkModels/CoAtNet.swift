import Foundation
import Patchwork
import PatchworkNN

// CoAtNet (timm's MaxxVit with stages of MBConv blocks "C" then transformer blocks "T";
// the model and its blocks are in MaxxVit.swift). Named variants: timm's model_cfgs.

public enum CoAtNet {
    /// timm's `coatnet_{0,1,2}` configs: the paper's widths and depths, NormMlp head.
    public static func paperCfg(_ dims: [Int], _ depths: [Int], stem: Int) -> MaxxVitCfg {
        var cfg = MaxxVitCfg()
        cfg.embedDim = dims
        cfg.depths = depths
        cfg.stemWidth = IntPair(stem)
        cfg.headHiddenSize = dims.last
        return cfg
    }

    /// timm's `coatnet_0_rw` (`_rw_coat_cfg(conv_attn_early=True, transformer_shortcut_bias=False)`):
    /// pooled MBConv stride, pre-norm activation, expansion from the input width, no output
    /// bias, SE (ReLU) before norm2, SiLU; attention expands in its projection; plain head.
    public static func rw0Cfg() -> MaxxVitCfg {
        var cfg = MaxxVitCfg()
        cfg.embedDim = [96, 192, 384, 768]
        cfg.depths = [2, 3, 7, 2]
        cfg.stemWidth = IntPair(32, 64)
        cfg.convCfg.strideMode = "pool"
        cfg.convCfg.preNormAct = true
        cfg.convCfg.expandOutput = false
        cfg.convCfg.outputBias = false
        cfg.convCfg.attnEarly = true
        cfg.convCfg.attnActLayer = "relu"
        cfg.convCfg.actLayer = "silu"
        cfg.transformerCfg.expandFirst = false
        cfg.transformerCfg.shortcutBias = false
        return cfg
    }

    /// timm's `coatnet_nano_rw` (`_rw_coat_cfg(stride_mode='pool', conv_output_bias=True, conv_attn_ratio=0.25)`
    /// on four stages of 64–512): pooled MBConv stride, expansion from the input width, SiLU; attention
    /// expands in its projection.
    public static func nanoRwCfg() -> MaxxVitCfg {
        var cfg = MaxxVitCfg()
        cfg.embedDim = [64, 128, 256, 512]
        cfg.depths = [3, 4, 6, 3]
        cfg.stemWidth = IntPair(32, 64)
        cfg.convCfg.expandOutput = false
        cfg.convCfg.strideMode = "pool"
        cfg.convCfg.actLayer = "silu"
        cfg.transformerCfg.expandFirst = false
        return cfg
    }

    /// A CoAtNet for 32x32 images: C at 8x8, then T at 4x4 and 2x2, 16-wide heads.
    public static func nanoCfg() -> MaxxVitCfg {
        var cfg = MaxxVitCfg()
        cfg.embedDim = [48, 96, 160]
        cfg.depths = [2, 2, 2]
        cfg.blockType = [BlockTypes(["C"]), BlockTypes(["T"]), BlockTypes(["T"])]
        cfg.stemWidth = IntPair(32)
        cfg.transformerCfg.dimHead = 16
        cfg.headHiddenSize = 160
        return cfg
    }

    @Sendable static func build(_ config: JSONValue) throws -> ImageClassifier {
        try MaxxVit.build(config, family: "coatnet", allowedBlocks: ["C", "T"])
    }

    /// A timm entrypoint: `MaxxVit(cfg=model_cfgs[name], img_size)`.
    static func variant(_ name: String, size: Int = 224, _ cfg: MaxxVitCfg) -> ModelVariant {
        ModelVariant(name, family: "coatnet", inputSize: size, arguments: JSONValue(encoding: MaxxVitConfig(cfg: cfg, imgSize: size)).object!,
                     build: build)
    }

    public static let family = ModelFamily(
        name: "coatnet", reference: "timm 1.0.31 timm.models.maxxvit.MaxxVit (CoAtNet configs)",
        variants: [
            variant("coatnet_0_224", paperCfg([96, 192, 384, 768], [2, 3, 5, 2], stem: 64)),
            variant("coatnet_1_224", paperCfg([96, 192, 384, 768], [2, 6, 14, 2], stem: 64)),
            variant("coatnet_2_224", paperCfg([128, 256, 512, 1024], [2, 6, 14, 2], stem: 128)),
            variant("coatnet_nano_rw_224", nanoRwCfg()),
            variant("coatnet_0_rw_224", rw0Cfg()),
            variant("coatnet_nano", size: 32, nanoCfg()),
        ],
        build: build)
}
