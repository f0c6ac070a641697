import Foundation
import Patchwork
import PatchworkNN

// MaxViT (timm's MaxxVit with "M" blocks: MBConv, block attention, grid attention; the
// model and its blocks are in MaxxVit.swift): the TensorFlow-compatible `*_tf` configurations
// and Ross Wightman's `maxvit_nano_rw_256`. Named variants: timm's model_cfgs.

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

    /// timm's `maxvit_nano_rw_256` (`_rw_max_cfg()`): MBConv expanding from the input width without output
    /// bias, SE at 1/16, SiLU; attention expanding in its projection; at 256x256.
    public static func nanoRwCfg() -> MaxxVitCfg {
        var cfg = MaxxVitCfg()
        cfg.embedDim = [64, 128, 256, 512]
        cfg.depths = [1, 2, 3, 1]
        cfg.blockType = cfg.embedDim.map { _ in BlockTypes(["M"]) }
        cfg.stemWidth = IntPair(32, 64)
        cfg.convCfg.expandOutput = false
        cfg.convCfg.outputBias = false
        cfg.convCfg.attnRatio = 0.0625
        cfg.convCfg.actLayer = "silu"
        cfg.transformerCfg.expandFirst = false
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

    @Sendable static func build(_ config: JSONValue) throws -> ImageClassifier {
        try MaxxVit.build(config, family: "maxvit", allowedBlocks: ["M"])
    }

    /// A timm entrypoint: `MaxxVit(cfg=model_cfgs[name], img_size)`.
    static func variant(_ name: String, size: Int = 224, _ cfg: MaxxVitCfg) -> ModelVariant {
        ModelVariant(name, family: "maxvit", inputSize: size, arguments: JSONValue(encoding: MaxxVitConfig(cfg: cfg, imgSize: size)).object!,
                     build: build)
    }

    public static let family = ModelFamily(
        name: "maxvit", reference: "timm 1.0.31 timm.models.maxxvit.MaxxVit (MaxViT configs)",
        variants: [
            variant("maxvit_nano_rw_256", size: 256, nanoRwCfg()),
            variant("maxvit_tiny_tf_224", tfCfg([64, 128, 256, 512], [2, 2, 5, 2], stem: 64)),
            variant("maxvit_small_tf_224", tfCfg([96, 192, 384, 768], [2, 2, 5, 2], stem: 64)),
            variant("maxvit_base_tf_224", tfCfg([96, 192, 384, 768], [2, 6, 14, 2], stem: 64)),
            variant("maxvit_nano", size: 32, nanoCfg()),
        ],
        build: build)
}
