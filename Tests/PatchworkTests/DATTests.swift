import Foundation
import XCTest
import Patchwork
import PatchworkNN
import PatchworkModels

/// The authors' original DAT (CVPR 2022): variants, keys and buffers, attention maps of the
/// local, shifted and deformable layers, another input size, bad configs.
final class DATTests: XCTestCase {
    /// 32×32 images, patch 2: maps of 16², 8², 4², 2²; stages L S | L S | L D | L D.
    func tinyConfig(size: Int = 32, classes: Int = 3) -> DATConfig {
        var c = DAT.nanoConfig(numClasses: classes)
        c.imgSize = size
        c.dimStem = 12
        c.dims = [8, 16, 32, 64]
        c.expansion = 2
        return c
    }

    /// The reference built from configs/dat_{tiny,small,base}.yaml at the fixture's commit (1000 classes, 224×224).
    func testVariantsHaveTheReferenceParameterCounts() throws {
        let expected = ["dat_tiny": 28_319_138, "dat_small": 49_700_402, "dat_base": 87_881_632]
        let variants = Models.list().filter { $0.family == "dat" && !$0.name.hasSuffix("_nano") }
        XCTAssertEqual(Set(variants.map(\.name)), Set(expected.keys))
        for v in variants {
            XCTAssertEqual(v.inputSize, 224, v.name)
            XCTAssertEqual(try v.create(numClasses: 1000).parameterCount, expected[v.name], v.name)
        }
        let nano = try Models.create("dat_nano", numClasses: 10)
        XCTAssertEqual(nano.parameterCount, 575_800, "the reference DAT with the nano config")
        XCTAssertTrue((200_000...2_000_000).contains(nano.parameterCount))
    }

    /// Keys and shapes equal the authors' state_dict (the dat-a fixture file), including the
    /// persistent relative_position_index and attn_mask buffers, whose values we recompute.
    func testKeysShapesAndBuffersEqualTheReference() throws {
        let (model, file) = try parityCaseModel("dat-a")
        let reference = file.names.filter { !$0.hasPrefix("fixture.") }
        let dict = model.stateDict()
        XCTAssertEqual(Set(dict.keys), Set(reference))
        for name in reference {
            let ref = try file.tensor(name)
            XCTAssertEqual(dict[name]?.shape, ref.shape, name)
            if name.hasSuffix("relative_position_index") || name.hasSuffix("attn_mask") {
                assertClose(dict[name]!, ref, atol: 0, rtol: 0, name)
            }
        }
        for key in ["patch_proj.0.weight", "patch_proj.1.norm.weight", "stages.0.proj.weight", "stages.0.layer_norms.3.norm.bias",
                    "stages.0.mlps.1.chunk.linear1.weight", "stages.0.attns.1.attn_mask", "stages.1.attns.0.proj_qkv.weight",
                    "stages.2.attns.1.conv_offset.0.weight", "stages.2.attns.1.conv_offset.1.norm.weight",
                    "stages.2.attns.1.conv_offset.3.weight", "stages.2.attns.1.rpe_table", "stages.3.attns.1.proj_out.bias",
                    "down_projs.2.0.weight", "down_projs.2.1.norm.weight", "cls_norm.norm.weight", "cls_head.weight"] {
            XCTAssertNotNil(dict[key], key)
        }
        XCTAssertEqual(dict["stages.2.attns.1.rpe_table"]?.shape, [4, 7, 7], "(heads, 2H-1, 2W-1) of the 4×4 map")
        XCTAssertEqual(dict["stages.2.attns.1.conv_offset.0.weight"]?.shape, [16, 1, 5, 5], "depthwise 5×5 in stage 3, per group")
    }

    func testTinyModelTrainsAndHasItsHeads() throws {
        let model = try DAT(tinyConfig())
        let x = Tensor.randomNormal([2, 32, 32, 3], generator: Generator(seed: 1))
        let grads = assertTrainStep(model, x, labels: [0, 2])
        for key in ["stages.2.attns.1.conv_offset.0.weight", "stages.3.attns.1.rpe_table", "stages.0.attns.1.relative_position_bias_table"] {
            XCTAssertGreaterThan(grads[key]!.scalars.map { abs($0) }.max()!, 0, "gradient reaches \(key)")
        }
        model.eval()
        let features = withoutGrad { model.forwardFeatures(x) }
        XCTAssertEqual(features.shape, [2, 2, 2, 64])
        XCTAssertEqual(model.forwardHead(features, preLogits: true).shape, [2, 64])
        let inter = withoutGrad { model.forwardIntermediates(x) }
        XCTAssertEqual(inter.map(\.name), ["patch_proj", "stages.0", "down_projs.0", "stages.1", "down_projs.1", "stages.2",
                                           "down_projs.2", "stages.3"])
        XCTAssertEqual(inter[1].value.shape, [2, 16, 16, 8])
        model.resetClassifier(numClasses: 7)
        XCTAssertEqual(withoutGrad { model.logits(x) }.shape, [2, 7])
    }

    /// L/S: G = batch × windows with each window's own positions. D: G = batch × groups, the heads of a
    /// group share its sampled key positions (also in extras["sampled_positions"]).
    func testAttentionMaps() throws {
        let model = try DAT(tinyConfig())
        model.eval()
        model.recordAttention()
        let x = Tensor.randomNormal([2, 32, 32, 3], generator: Generator(seed: 2))
        _ = withoutGrad { model.logits(x) }
        let layers = model.attentionLayers()
        XCTAssertEqual(layers.map(\.key), (0..<4).flatMap { i in (0..<2).map { "stages.\(i).attns.\($0)" } })
        for (key, layer) in layers {
            let map = try XCTUnwrap(layer.lastAttentionMap, key)
            for r in map.probabilities.sum(alongAxes: [3]).scalars { XCTAssertEqual(r, 1, accuracy: 1e-4, key) }
        }
        // stages.0.attns.1 (S): 16² map, windows of 4 shifted by 2 → 2 × 16 windows of 16 tokens.
        let s = try XCTUnwrap(layers[1].layer.lastAttentionMap)
        XCTAssertEqual(s.probabilities.shape, [32, 1, 16, 16])
        XCTAssertEqual(s.queryPositions?.shape, [32, 16, 2])
        XCTAssertEqual(s.queryPositions!.scalars[0], 2.5 / 16, accuracy: 1e-6, "rolled by −ceil(4/2)")
        // stages.2.attns.1 (D): 4² map, 4 heads in 2 groups, 16 sampled keys.
        let d = try XCTUnwrap(layers[5].layer.lastAttentionMap)
        XCTAssertEqual(d.probabilities.shape, [4, 2, 16, 16])
        XCTAssertEqual(d.queryPositions?.shape, [16, 2])
        XCTAssertEqual(d.keyPositions?.shape, [4, 16, 2])
        let sampled = try XCTUnwrap(d.extras["sampled_positions"])
        XCTAssertEqual(sampled.shape, [2, 2, 4, 4, 2])
        assertClose(sampled.reshaped([4, 16, 2]), d.keyPositions!, atol: 0, rtol: 0)
    }

    /// With a zero offset network the keys sit at the reference points: pixel centres in [-1, 1]
    /// read by grid_sample with align_corners=True, i.e. at ((i + ½)(H − 1)/H + ½)/H of the image.
    func testZeroOffsetsSampleAtTheReferencePoints() throws {
        let model = try DAT(tinyConfig())
        let key = "stages.2.attns.1.conv_offset.3.weight"
        let shape = try XCTUnwrap(model.parameters().first { $0.0 == key }?.1.shape)
        try model.update(parameters: [key: Tensor.zeros(shape)])
        let layer = try XCTUnwrap(model.stages[2].attns[1] as? DATDeformableAttention)
        layer.recordsAttention = true
        model.eval()
        _ = withoutGrad { model.logits(Tensor.randomNormal([1, 32, 32, 3], generator: Generator(seed: 4))) }
        let keys = try XCTUnwrap(layer.lastAttentionMap?.keyPositions)
        XCTAssertEqual(keys.shape, [2, 16, 2])
        let h: Float = 4
        var expected: [Float] = []
        for _ in 0..<2 { for i in 0..<4 { for j in 0..<4 {
            expected += [((Float(i) + 0.5) * (h - 1) / h + 0.5) / h, ((Float(j) + 0.5) * (h - 1) / h + 0.5) / h]
        } } }
        assertClose(keys, Tensor(expected, shape: [2, 16, 2]), atol: 1e-6, rtol: 0)
    }

    /// A model built for 32×32 loads into one built for 64×64 through the checkpoint filter:
    /// rpe tables are resampled, shifted-window masks recomputed.
    func testAnotherInputSizeLoadsThroughTheFilter() throws {
        let small = try DAT(tinyConfig(size: 32))
        let large = try DAT(tinyConfig(size: 64))
        let dict = small.stateDict()
        XCTAssertThrowsError(try large.loadStateDict(dict), "without the filter the tables and masks do not fit")
        let filtered = large.checkpointFilter(dict)
        XCTAssertEqual(dict["stages.2.attns.1.rpe_table"]?.shape, [4, 7, 7])
        XCTAssertEqual(filtered["stages.2.attns.1.rpe_table"]?.shape, [4, 15, 15])
        XCTAssertEqual(filtered["stages.0.attns.1.attn_mask"]?.shape, [64, 16, 16])
        assertClose(filtered["stages.0.attns.1.attn_mask"]!, large.stateDict()["stages.0.attns.1.attn_mask"]!, atol: 0, rtol: 0)
        try large.loadStateDict(filtered)
        large.eval()
        let logits = withoutGrad { large.logits(Tensor.randomNormal([2, 64, 64, 3], generator: Generator(seed: 3))) }
        XCTAssertEqual(logits.shape, [2, 3])
        XCTAssertTrue(logits.scalars.allSatisfy(\.isFinite))
    }

    func testUnsupportedConfigsThrow() {
        func throwsMessage(_ edit: (inout DATConfig) -> Void, _ fragment: String) {
            var c = tinyConfig()
            edit(&c)
            XCTAssertThrowsError(try DAT(c)) { XCTAssertTrue("\($0)".contains(fragment), "\($0)") }
        }
        throwsMessage({ $0.dims = [8, 16, 24, 48] }, "twice as wide")
        throwsMessage({ $0.stageSpec = [["L", "S"], ["L", "S"], ["L"], ["L", "D"]] }, "stage_spec[2]")
        throwsMessage({ $0.stageSpec = [["L", "X"], ["L", "S"], ["L", "D"], ["L", "D"]] }, "\"X\"")
        throwsMessage({ $0.windowSizes = [3, 4, 2, 2] }, "window_sizes[0]")
        throwsMessage({ $0.noOffs = [false, false, true, false] }, "no_offs")
        throwsMessage({ $0.fixedPes = [false, false, true, false] }, "fixed_pes")
        throwsMessage({ $0.groups = [-1, -1, 3, 4] }, "groups")
        throwsMessage({ $0.heads = [1, 2, 4] }, "one entry per stage")
        throwsMessage({ $0.windowSizes = [1, 4, 2, 2] }, "too small to shift")
    }
}
