import Foundation
import XCTest
import Patchwork
import PatchworkNN
import PatchworkModels

/// A parity case's `config` and its checkpoint (keys and shapes as the reference's `state_dict()`).
func maxxVitFixture(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> (config: JSONValue, weights: Safetensors) {
    let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/parity/\(name)", withExtension: "json"), file: file, line: line)
    let json = try JSONDecoder().decode(JSONValue.self, from: Data(contentsOf: url))
    let config = try XCTUnwrap(json["config"], file: file, line: line)
    return (config, try Safetensors(contentsOf: url.deletingPathExtension().appendingPathExtension("safetensors").path))
}

/// The model's keys and checkpoint-layout shapes equal those of the reference's checkpoint.
func assertKeysAndShapes(_ model: Module, _ weights: Safetensors, file: StaticString = #filePath, line: UInt = #line) throws {
    let dict = model.stateDict()
    let reference = Set(weights.names.filter { !$0.hasPrefix("fixture.") })
    XCTAssertEqual(Set(dict.keys), reference, "keys", file: file, line: line)
    for key in reference {
        XCTAssertEqual(dict[key]?.shape, try weights.tensor(key).shape, key, file: file, line: line)
    }
}

/// CoAtNet (timm MaxxVit with C/T stages): variants, keys, rel-pos bias, attention maps, configs.
final class CoAtNetTests: XCTestCase {
    /// A tiny paper-style CoAtNet at 32x32: stem 16x16, C at 8x8, T at 4x4 and 2x2.
    func tinyConfig(classes: Int = 5) -> MaxxVitConfig {
        var cfg = MaxxVitCfg()
        cfg.embedDim = [16, 24, 32]
        cfg.depths = [1, 2, 1]
        cfg.blockType = [BlockTypes(["C"]), BlockTypes(["T"]), BlockTypes(["T"])]
        cfg.stemWidth = IntPair(16)
        cfg.transformerCfg.dimHead = 8
        cfg.headHiddenSize = 32
        return MaxxVitConfig(cfg: cfg, imgSize: 32, numClasses: classes)
    }

    /// timm 1.0.31 `sum(p.numel() for p in timm.create_model(name).parameters())`.
    func testVariantsHaveTimmsParameterCounts() throws {
        let expected = ["coatnet_nano_rw_224": 15_141_244, "coatnet_0_224": 25_036_820, "coatnet_1_224": 42_225_776, "coatnet_2_224": 74_684_744,
                        "coatnet_0_rw_224": 27_435_562]
        let variants = Models.list().filter { $0.family == "coatnet" && !$0.name.hasSuffix("_nano") }
        XCTAssertEqual(Set(variants.map(\.name)), Set(expected.keys))
        for v in variants {
            XCTAssertEqual(v.inputSize, 224, v.name)
            XCTAssertEqual(try v.create(numClasses: 1000).parameterCount, expected[v.name], v.name)
        }
        // The nano, counted by timm for the same MaxxVitCfg at 32x32 and 1000 classes.
        XCTAssertEqual(try Models.create("coatnet_nano", numClasses: 1000).parameterCount, 1_065_936)
    }

    func testKeysAndShapesEqualTheReferenceCheckpoint() throws {
        let (config, weights) = try maxxVitFixture("coatnet-a")
        try assertKeysAndShapes(try Models.family("coatnet").build(config: config), weights)
    }

    /// timm's `_rw_coat_cfg(conv_attn_early=True, transformer_shortcut_bias=False)` (coatnet_0_rw):
    /// SE before norm2 (`se_early`), pooled stride (no strided conv), no output or shortcut bias,
    /// attention expanding in `proj`, final `norm` + plain head. Keys and shapes from timm.
    func testRwConfigKeysAreTimms() throws {
        var cfg = CoAtNet.rw0Cfg()
        cfg.embedDim = [16, 24, 32]
        cfg.depths = [1, 1, 1]
        cfg.blockType = [BlockTypes(["C"]), BlockTypes(["T"]), BlockTypes(["T"])]
        cfg.stemWidth = IntPair(8, 16)
        cfg.transformerCfg.dimHead = 8
        let model = try MaxxVit(MaxxVitConfig(cfg: cfg, imgSize: 32, numClasses: 5))
        let expected: [String: [Int]] = [
            "stem.conv1.weight": [8, 3, 3, 3],
            "stem.norm1.weight": [8],
            "stem.norm1.bias": [8],
            "stem.norm1.running_mean": [8],
            "stem.norm1.running_var": [8],
            "stem.norm1.num_batches_tracked": [],
            "stem.conv2.weight": [16, 8, 3, 3],
            "stages.0.blocks.0.pre_norm.weight": [16],
            "stages.0.blocks.0.pre_norm.bias": [16],
            "stages.0.blocks.0.pre_norm.running_mean": [16],
            "stages.0.blocks.0.pre_norm.running_var": [16],
            "stages.0.blocks.0.pre_norm.num_batches_tracked": [],
            "stages.0.blocks.0.conv1_1x1.weight": [64, 16, 1, 1],
            "stages.0.blocks.0.norm1.weight": [64],
            "stages.0.blocks.0.norm1.bias": [64],
            "stages.0.blocks.0.norm1.running_mean": [64],
            "stages.0.blocks.0.norm1.running_var": [64],
            "stages.0.blocks.0.norm1.num_batches_tracked": [],
            "stages.0.blocks.0.conv2_kxk.weight": [64, 1, 3, 3],
            "stages.0.blocks.0.se_early.fc1.weight": [16, 64, 1, 1],
            "stages.0.blocks.0.se_early.fc1.bias": [16],
            "stages.0.blocks.0.se_early.fc2.weight": [64, 16, 1, 1],
            "stages.0.blocks.0.se_early.fc2.bias": [64],
            "stages.0.blocks.0.norm2.weight": [64],
            "stages.0.blocks.0.norm2.bias": [64],
            "stages.0.blocks.0.norm2.running_mean": [64],
            "stages.0.blocks.0.norm2.running_var": [64],
            "stages.0.blocks.0.norm2.num_batches_tracked": [],
            "stages.0.blocks.0.conv3_1x1.weight": [16, 64, 1, 1],
            "stages.1.blocks.0.shortcut.expand.weight": [24, 16, 1, 1],
            "stages.1.blocks.0.norm1.norm.weight": [16],
            "stages.1.blocks.0.norm1.norm.bias": [16],
            "stages.1.blocks.0.attn.qkv.weight": [48, 16, 1, 1],
            "stages.1.blocks.0.attn.qkv.bias": [48],
            "stages.1.blocks.0.attn.rel_pos.relative_position_bias_table": [49, 2],
            "stages.1.blocks.0.attn.proj.weight": [24, 16, 1, 1],
            "stages.1.blocks.0.attn.proj.bias": [24],
            "stages.1.blocks.0.norm2.weight": [24],
            "stages.1.blocks.0.norm2.bias": [24],
            "stages.1.blocks.0.mlp.fc1.weight": [96, 24, 1, 1],
            "stages.1.blocks.0.mlp.fc1.bias": [96],
            "stages.1.blocks.0.mlp.fc2.weight": [24, 96, 1, 1],
            "stages.1.blocks.0.mlp.fc2.bias": [24],
            "stages.2.blocks.0.shortcut.expand.weight": [32, 24, 1, 1],
            "stages.2.blocks.0.norm1.norm.weight": [24],
            "stages.2.blocks.0.norm1.norm.bias": [24],
            "stages.2.blocks.0.attn.qkv.weight": [72, 24, 1, 1],
            "stages.2.blocks.0.attn.qkv.bias": [72],
            "stages.2.blocks.0.attn.rel_pos.relative_position_bias_table": [9, 3],
            "stages.2.blocks.0.attn.proj.weight": [32, 24, 1, 1],
            "stages.2.blocks.0.attn.proj.bias": [32],
            "stages.2.blocks.0.norm2.weight": [32],
            "stages.2.blocks.0.norm2.bias": [32],
            "stages.2.blocks.0.mlp.fc1.weight": [128, 32, 1, 1],
            "stages.2.blocks.0.mlp.fc1.bias": [128],
            "stages.2.blocks.0.mlp.fc2.weight": [32, 128, 1, 1],
            "stages.2.blocks.0.mlp.fc2.bias": [32],
            "norm.weight": [32],
            "norm.bias": [32],
            "head.fc.weight": [5, 32],
            "head.fc.bias": [5],        ]
        let dict = model.stateDict()
        XCTAssertEqual(Set(dict.keys), Set(expected.keys))
        for (key, shape) in expected { XCTAssertEqual(dict[key]?.shape, shape, key) }
        XCTAssertEqual(model.parameterCount, 25_026, "timm's count for this config")
    }

    /// timm's RelPosBias: bias[q, k] = table[(qy − ky + h − 1)·(2w − 1) + (qx − kx + w − 1)]
    /// (values from timm with the table set to 0..<15, window 2x3).
    func testRelPosBiasIndexesTheTableLikeTimm() {
        let rp = RelPosBias(window: (2, 3), heads: 1, tfLayout: false)
        rp.relativePositionBiasTable = Tensor((0..<15).map(Float.init), shape: [15, 1])
        let expected: [[Float]] = [[7, 6, 5, 2, 1, 0], [8, 7, 6, 3, 2, 1], [9, 8, 7, 4, 3, 2],
                                   [12, 11, 10, 7, 6, 5], [13, 12, 11, 8, 7, 6], [14, 13, 12, 9, 8, 7]]
        XCTAssertEqual(rp.bias().shape, [1, 1, 6, 6])
        XCTAssertEqual(rp.bias().scalars, expected.flatMap { $0 })
    }

    func testTinyModelForwardBackwardAndHead() throws {
        let model = try MaxxVit(tinyConfig(), allowedBlocks: ["C", "T"], family: "coatnet")
        let x = Tensor.randomNormal([2, 32, 32, 3], generator: Generator(seed: 1))
        let grads = assertTrainStep(model, x, labels: [1, 4])
        let table = try XCTUnwrap(grads["stages.1.blocks.0.attn.rel_pos.relative_position_bias_table"])
        XCTAssertEqual(table.shape, [49, 3], "(2·4−1)² offsets of the 4x4 stage, 24/8 heads")
        XCTAssertGreaterThan(table.scalars.map { abs($0) }.max()!, 0)

        model.eval()
        let features = withoutGrad { model.forwardFeatures(x) }
        XCTAssertEqual(features.shape, [2, 2, 2, 32])
        XCTAssertEqual(model.forwardHead(features, preLogits: true).shape, [2, 32])
        XCTAssertEqual(model.forwardHead(features, preLogits: false).shape, [2, 5])
        let inter = withoutGrad { model.forwardIntermediates(x) }
        XCTAssertEqual(inter.map(\.name), ["stem", "stages.0.blocks.0", "stages.1.blocks.0", "stages.1.blocks.1", "stages.2.blocks.0"])
        XCTAssertEqual(inter.map { $0.value.shape }, [[2, 16, 16, 16], [2, 8, 8, 16], [2, 4, 4, 24], [2, 4, 4, 24], [2, 2, 2, 32]])
        model.resetClassifier(numClasses: 7)
        XCTAssertEqual(withoutGrad { model.logits(x) }.shape, [2, 7])
        XCTAssertEqual(model.stateDict()["head.fc.weight"]?.shape, [7, 32])
    }

    /// Each transformer block attends over its whole (pooled) map: [B, heads, N, N] with
    /// the map's token centres as positions.
    func testAttentionMapsCoverTheWholeStageMap() throws {
        let model = try MaxxVit(tinyConfig(), allowedBlocks: ["C", "T"], family: "coatnet")
        model.eval()
        let layers = model.attentionLayers()
        XCTAssertEqual(layers.map(\.key), ["stages.1.blocks.0.attn", "stages.1.blocks.1.attn", "stages.2.blocks.0.attn"])
        model.recordAttention()
        _ = withoutGrad { model.logits(Tensor.randomNormal([2, 32, 32, 3], generator: Generator(seed: 2))) }
        for ((key, layer), (side, heads)) in zip(layers, [(4, 3), (4, 3), (2, 4)]) {
            let map = try XCTUnwrap(layer.lastAttentionMap, key)
            XCTAssertEqual(map.probabilities.shape, [2, heads, side * side, side * side], key)
            for r in map.probabilities.sum(alongAxes: [3]).scalars { XCTAssertEqual(r, 1, accuracy: 1e-5) }
            let grid = AttentionMap.gridPositions(height: side, width: side)
            XCTAssertEqual(map.queryPositions?.scalars, grid.scalars, key)
            XCTAssertEqual(map.keyPositions?.scalars, grid.scalars, key)
        }
        model.recordAttention(false)
    }

    /// A timm checkpoint with the derived index buffers of older timm, Linear-shaped 1x1
    /// weights, or rel-pos tables for another image size still loads.
    func testCheckpointFilterDropsIndicesReshapesAndResizes() throws {
        let model = try MaxxVit(tinyConfig(), allowedBlocks: ["C", "T"], family: "coatnet")
        var dict = model.stateDict()
        dict["stages.1.blocks.0.attn.rel_pos.relative_position_index"] = Tensor.zeros([256])
        let qkv = dict["stages.1.blocks.0.attn.qkv.weight"]!
        dict["stages.1.blocks.0.attn.qkv.weight"] = qkv.reshaped([72, 16])
        dict["stages.2.blocks.0.attn.rel_pos.relative_position_bias_table"] = Tensor.randomNormal([25, 4])
        let filtered = model.checkpointFilter(dict)
        XCTAssertNil(filtered["stages.1.blocks.0.attn.rel_pos.relative_position_index"])
        XCTAssertEqual(filtered["stages.2.blocks.0.attn.rel_pos.relative_position_bias_table"]?.shape, [9, 4])
        XCTAssertNoThrow(try model.loadStateDict(filtered))
        assertClose(model.stateDict()["stages.1.blocks.0.attn.qkv.weight"]!, qkv, atol: 0, rtol: 0)
    }

    /// timm's default `weight_init="vit_eff"`: MBConv convs N(0, 2/fan_out) (fan_out = k²·out/groups),
    /// transformer weights Xavier-uniform with zero biases except the MLP's (N(0, 1e-6²));
    /// `weight_init=""` keeps PyTorch's defaults.
    func testVitEffWeightInit() throws {
        Generator.global.reseed(7)
        let model = try MaxxVit(tinyConfig(), allowedBlocks: ["C", "T"], family: "coatnet")
        let p = Dictionary(uniqueKeysWithValues: model.parameters())
        XCTAssertTrue(p["stages.1.blocks.0.attn.qkv.bias"]!.scalars.allSatisfy { $0 == 0 })
        let mlpBias = p["stages.1.blocks.0.mlp.fc1.bias"]!.scalars
        XCTAssertTrue(mlpBias.allSatisfy { abs($0) < 1e-5 } && mlpBias.contains { $0 != 0 })
        let qkv = p["stages.1.blocks.0.attn.qkv.weight"]!.scalars   // [72, 16, 1, 1]: bound √(6/88)
        XCTAssertLessThanOrEqual(qkv.map { abs($0) }.max()!, (6 / Float(88)).squareRoot())
        let dw = p["stages.0.blocks.0.conv2_kxk.weight"]!.scalars   // depthwise 3x3, 64 channels: fan_out 9
        let std = (dw.map { $0 * $0 }.reduce(0, +) / Float(dw.count)).squareRoot()
        XCTAssertEqual(std, (2 / Float(9)).squareRoot(), accuracy: 0.08)
        var plain = tinyConfig()
        plain.cfg.weightInit = ""
        let torchInit = try MaxxVit(plain, allowedBlocks: ["C", "T"], family: "coatnet")
        XCTAssertTrue(torchInit.parameters().first { $0.0 == "stages.1.blocks.0.attn.qkv.bias" }!.1.scalars.contains { $0 != 0 })
    }

    func testUnsupportedConfigsThrowClearErrors() throws {
        func message(_ edit: (inout MaxxVitConfig) -> Void) -> String {
            var c = tinyConfig()
            edit(&c)
            do { _ = try MaxxVit(c, allowedBlocks: ["C", "T"], family: "coatnet"); return "no error" } catch { return "\(error)" }
        }
        XCTAssertTrue(message { $0.cfg.blockType[2] = BlockTypes(["M"]) }.contains("another family"))
        XCTAssertTrue(message { $0.cfg.convCfg.blockType = "convnext" }.contains("convnext"))
        XCTAssertTrue(message { $0.cfg.transformerCfg.relPosType = "mlp" }.contains("rel_pos_type"))
        XCTAssertTrue(message { $0.cfg.depths = [1, 1] }.contains("one entry per stage"))
        XCTAssertTrue(message { $0.globalPool = "max" }.contains("global_pool"))
        XCTAssertTrue(message { $0.cfg.transformerCfg.dimHead = 7 }.contains("dim_head"))
        XCTAssertTrue(message { $0.cfg.convCfg.strideMode = "conv" }.contains("stride_mode"))
        XCTAssertTrue(message { $0.cfg.convCfg.actLayer = "mish2" }.contains("act_layer"))
        // The fixture's tagged MaxxVitCfg decodes; the maxvit family refuses CoAtNet blocks.
        let (config, _) = try maxxVitFixture("coatnet-a")
        XCTAssertThrowsError(try Models.family("maxvit").build(config: config))
    }
}
