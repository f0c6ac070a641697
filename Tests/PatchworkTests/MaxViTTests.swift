import Foundation
import XCTest
import Patchwork
import PatchworkNN
import PatchworkModels

/// MaxViT (timm MaxxVit "M" blocks, `*_tf` config): variants, keys, partitions,
/// block and grid attention maps with their true positions, configs.
final class MaxViTTests: XCTestCase {
    /// A tiny TF-style MaxViT at 32x32: stages at 8x8 and 4x4, 2x2 windows and grids.
    func tinyConfig(classes: Int = 5) -> MaxxVitConfig {
        var cfg = MaxViT.tfCfg([16, 24], [1, 2], stem: 16)
        cfg.transformerCfg.dimHead = 8
        cfg.transformerCfg.windowSize = IntPair(2)
        cfg.transformerCfg.gridSize = IntPair(2)
        return MaxxVitConfig(cfg: cfg, imgSize: 32, numClasses: classes)
    }

    /// timm 1.0.31 `sum(p.numel() for p in timm.create_model(name).parameters())`.
    func testVariantsHaveTimmsParameterCounts() throws {
        let expected = ["maxvit_tiny_tf_224": 30_916_528, "maxvit_small_tf_224": 68_927_956, "maxvit_base_tf_224": 119_467_708]
        let variants = Models.list().filter { $0.family == "maxvit" && !$0.name.hasSuffix("_nano") && $0.name != "maxvit_nano_rw_256" }
        XCTAssertEqual(Set(variants.map(\.name)), Set(expected.keys))
        for v in variants {
            XCTAssertEqual(v.inputSize, 224, v.name)
            XCTAssertEqual(try v.create(numClasses: 1000).parameterCount, expected[v.name], v.name)
        }
        // The nano, counted by timm for the same MaxxVitCfg at 32x32 and 1000 classes.
        XCTAssertEqual(try Models.create("maxvit_nano", numClasses: 1000).parameterCount, 1_020_532)
        // timm's rw MaxViT at its 256x256.
        let nanoRw = try Models.variant("maxvit_nano_rw_256")
        XCTAssertEqual(nanoRw.inputSize, 256)
        XCTAssertEqual(try nanoRw.create(numClasses: 1000).parameterCount, 15_451_148)
    }

    func testKeysAndShapesEqualTheReferenceCheckpoint() throws {
        let (config, weights) = try maxxVitFixture("maxvit-a")
        let model = try Models.family("maxvit").build(config: config)
        try assertKeysAndShapes(model, weights)
        // TF layout of the relative-position table: [heads, 2h−1, 2w−1].
        XCTAssertEqual(model.stateDict()["stages.0.blocks.0.attn_grid.attn.rel_pos.relative_position_bias_table"]?.shape, [2, 7, 7])
    }

    /// timm's RelPosBiasTf: bias[q, k] = table[ky − qy + h − 1, kx − qx + w − 1] (values from
    /// timm's one-hot einsum lookup with the table set to 0..<15, window 2x3).
    func testTfRelPosBiasIndexesTheTableLikeTimm() {
        let rp = RelPosBias(window: (2, 3), heads: 1, tfLayout: true)
        rp.relativePositionBiasTable = Tensor((0..<15).map(Float.init), shape: [1, 3, 5])
        let expected: [[Float]] = [[7, 8, 9, 12, 13, 14], [6, 7, 8, 11, 12, 13], [5, 6, 7, 10, 11, 12],
                                   [2, 3, 4, 7, 8, 9], [1, 2, 3, 6, 7, 8], [0, 1, 2, 5, 6, 7]]
        XCTAssertEqual(rp.bias().scalars, expected.flatMap { $0 })
    }

    /// Windows hold adjacent tokens, grid partitions tokens strided by H/g; merge undoes
    /// split; `positions` is exactly where `split` takes each token from.
    func testPartitionsAndTheirPositions() {
        let (b, h, w) = (2, 8, 4)
        var coords: [Float] = []
        for _ in 0..<b { for y in 0..<h { for x in 0..<w { coords += [(Float(y) + 0.5) / Float(h), (Float(x) + 0.5) / Float(w)] } } }
        let map = Tensor(coords, shape: [b, h, w, 2])
        for grid in [false, true] {
            let parts = WindowPartition.split(map, (2, 2), grid: grid)
            XCTAssertEqual(parts.shape, [b * 8, 2, 2, 2])
            let positions = WindowPartition.positions(batch: b, image: (h, w), (2, 2), grid: grid)
            XCTAssertEqual(positions.shape, [b * 8, 4, 2])
            XCTAssertEqual(parts.reshaped([b * 8, 4, 2]).scalars, positions.scalars, "grid: \(grid)")
            assertClose(WindowPartition.merge(parts, (2, 2), image: (h, w), grid: grid), map, atol: 0, rtol: 0)
        }
        // Grid partition 0 takes rows 0 and 4 (stride 8/2) and columns 0 and 2 (stride 4/2);
        // partition 1 the same rows, columns 1 and 3.
        let g = WindowPartition.positions(batch: 1, image: (h, w), (2, 2), grid: true).scalars
        XCTAssertEqual(Array(g[0..<8]), [0.0625, 0.125, 0.0625, 0.625, 0.5625, 0.125, 0.5625, 0.625])
        XCTAssertEqual(Array(g[8..<16]), [0.0625, 0.375, 0.0625, 0.875, 0.5625, 0.375, 0.5625, 0.875])
        // Window 0 takes rows 0–1, columns 0–1.
        let wnd = WindowPartition.positions(batch: 1, image: (h, w), (2, 2), grid: false).scalars
        XCTAssertEqual(Array(wnd[0..<8]), [0.0625, 0.125, 0.0625, 0.375, 0.1875, 0.125, 0.1875, 0.375])
    }

    func testTinyModelForwardBackwardAndHead() throws {
        let model = try MaxxVit(tinyConfig(), allowedBlocks: ["M"], family: "maxvit")
        let x = Tensor.randomNormal([2, 32, 32, 3], generator: Generator(seed: 1))
        let grads = assertTrainStep(model, x, labels: [1, 4])
        for key in ["stages.0.blocks.0.attn_block.attn.rel_pos.relative_position_bias_table",
                    "stages.0.blocks.0.attn_grid.attn.rel_pos.relative_position_bias_table", "stem.conv1.weight"] {
            XCTAssertGreaterThan(grads[key]!.scalars.map { abs($0) }.max()!, 0, key)
        }
        model.eval()
        let features = withoutGrad { model.forwardFeatures(x) }
        XCTAssertEqual(features.shape, [2, 4, 4, 24])
        XCTAssertEqual(model.forwardHead(features, preLogits: true).shape, [2, 24])
        let inter = withoutGrad { model.forwardIntermediates(x) }
        XCTAssertEqual(inter.map(\.name), ["stem", "stages.0.blocks.0", "stages.1.blocks.0", "stages.1.blocks.1"])
        model.resetClassifier(numClasses: 3)
        XCTAssertEqual(withoutGrad { model.logits(x) }.shape, [2, 3])
    }

    /// Block and grid attention are recorded separately, one map per partition
    /// (G = batch × partitions), each with its own tokens' image positions.
    func testBlockAndGridAttentionRecordTheirPartitionsPositions() throws {
        let model = try MaxxVit(tinyConfig(), allowedBlocks: ["M"], family: "maxvit")
        model.eval()
        let layers = model.attentionLayers()
        XCTAssertEqual(layers.map(\.key), ["stages.0.blocks.0.attn_block.attn", "stages.0.blocks.0.attn_grid.attn",
                                           "stages.1.blocks.0.attn_block.attn", "stages.1.blocks.0.attn_grid.attn",
                                           "stages.1.blocks.1.attn_block.attn", "stages.1.blocks.1.attn_grid.attn"])
        model.recordAttention()
        _ = withoutGrad { model.logits(Tensor.randomNormal([2, 32, 32, 3], generator: Generator(seed: 2))) }
        for (key, layer) in layers {
            let map = try XCTUnwrap(layer.lastAttentionMap, key)
            let side = key.hasPrefix("stages.0") ? 8 : 4, heads = key.hasPrefix("stages.0") ? 2 : 3
            let partitions = (side / 2) * (side / 2)
            XCTAssertEqual(map.probabilities.shape, [2 * partitions, heads, 4, 4], key)
            for r in map.probabilities.sum(alongAxes: [3]).scalars { XCTAssertEqual(r, 1, accuracy: 1e-5) }
            let expected = WindowPartition.positions(batch: 2, image: (side, side), (2, 2), grid: key.hasSuffix("grid.attn"))
            XCTAssertEqual(map.queryPositions?.shape, [2 * partitions, 4, 2], key)
            XCTAssertEqual(map.queryPositions?.scalars, expected.scalars, key)
            XCTAssertEqual(map.keyPositions?.scalars, expected.scalars, key)
        }
        // Grid tokens are spread over the image (stride side/2), window tokens adjacent.
        let grid = try XCTUnwrap(layers[1].layer.lastAttentionMap?.queryPositions).scalars
        XCTAssertEqual(grid[2] - grid[0], 0, accuracy: 1e-6)
        XCTAssertEqual(grid[3] - grid[1], 0.5, accuracy: 1e-6, "grid: next token 4 columns on (of 8)")
        let window = try XCTUnwrap(layers[0].layer.lastAttentionMap?.queryPositions).scalars
        XCTAssertEqual(window[3] - window[1], 0.125, accuracy: 1e-6, "window: next token 1 column on (of 8)")
        model.recordAttention(false)
    }

    func testUnsupportedConfigsThrowClearErrors() throws {
        func message(_ edit: (inout MaxxVitConfig) -> Void) -> String {
            var c = tinyConfig()
            edit(&c)
            do { _ = try MaxxVit(c, allowedBlocks: ["M"], family: "maxvit"); return "no error" } catch { return "\(error)" }
        }
        XCTAssertTrue(message { $0.cfg.blockType[0] = BlockTypes(["C"]) }.contains("another family"))
        XCTAssertTrue(message { $0.cfg.transformerCfg.windowSize = IntPair(3) }.contains("window_size"))
        XCTAssertTrue(message { $0.cfg.transformerCfg.gridSize = IntPair(8) }.contains("grid_size"))
        XCTAssertTrue(message { $0.cfg.transformerCfg.useNchwAttn = true }.contains("use_nchw_attn"))
        XCTAssertTrue(message { $0.cfg.blockType[1] = BlockTypes(["PM"]) }.contains("PM"))
        XCTAssertTrue(message { $0.cfg.convCfg.attnLayer = "eca" }.contains("attn_layer"))
        XCTAssertTrue(message { $0.cfg.transformerCfg.normLayerCl = "rmsnorm" }.contains("norm_layer_cl"))
        // The fixture's tagged MaxxVitCfg decodes with its TF options; the coatnet family refuses M blocks.
        let (config, _) = try maxxVitFixture("maxvit-a")
        XCTAssertThrowsError(try Models.family("coatnet").build(config: config))
    }
}
