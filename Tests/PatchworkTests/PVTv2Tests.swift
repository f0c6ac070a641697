import Foundation
import XCTest
import Patchwork
import PatchworkNN
import PatchworkModels

/// timm's PyramidVisionTransformerV2: variants, keys, training step, attention maps with
/// reduced and pooled keys, mixed LayerNorm eps, checkpoint filter, another input size.
final class PVTv2Tests: XCTestCase {
    /// Two stages on 32x32: 8x8 tokens with sr 2 (4x4 keys), then 4x4 tokens.
    func tinyConfig(linear: Bool = false, classes: Int = 3) -> PvtV2Config {
        PvtV2Config(depths: linear ? [1, 1] : [1, 2], embedDims: [8, 16], numHeads: [1, 2], srRatios: [2, 1], mlpRatios: [2, 2],
                    linear: linear, numClasses: classes)
    }

    /// timm 1.0.31, 1000 classes.
    func testVariantsHaveTheReferenceParameterCounts() throws {
        let expected = ["pvt_v2_b0": 3_666_760, "pvt_v2_b1": 14_009_000, "pvt_v2_b2": 25_362_856, "pvt_v2_b3": 45_238_696,
                        "pvt_v2_b4": 62_556_072, "pvt_v2_b5": 81_956_008, "pvt_v2_b2_li": 22_553_512]
        let variants = Models.list().filter { $0.family == "pvt_v2" && !$0.name.hasSuffix("_nano") }
        XCTAssertEqual(Set(variants.map(\.name)), Set(expected.keys))
        for v in variants {
            XCTAssertEqual(v.inputSize, 224, v.name)
            XCTAssertEqual(try v.create(numClasses: 1000).parameterCount, expected[v.name], v.name)
        }
        XCTAssertEqual(try Models.create("pvt_v2_nano", numClasses: 10).parameterCount, 1_507_882, "timm with the same config")
    }

    /// timm's state_dict() names and shapes for tinyConfig (and its linear variant).
    func testKeysAndShapesFollowTimm() throws {
        let want: [String: [Int]] = [
        "patch_embed.proj.weight": [8, 3, 7, 7], "patch_embed.proj.bias": [8], "patch_embed.norm.weight": [8],
        "patch_embed.norm.bias": [8], "stages.0.blocks.0.norm1.weight": [8], "stages.0.blocks.0.norm1.bias": [8],
        "stages.0.blocks.0.attn.q.weight": [8, 8], "stages.0.blocks.0.attn.q.bias": [8],
        "stages.0.blocks.0.attn.kv.weight": [16, 8], "stages.0.blocks.0.attn.kv.bias": [16],
        "stages.0.blocks.0.attn.proj.weight": [8, 8], "stages.0.blocks.0.attn.proj.bias": [8],
        "stages.0.blocks.0.attn.sr.weight": [8, 8, 2, 2], "stages.0.blocks.0.attn.sr.bias": [8],
        "stages.0.blocks.0.attn.norm.weight": [8], "stages.0.blocks.0.attn.norm.bias": [8],
        "stages.0.blocks.0.norm2.weight": [8], "stages.0.blocks.0.norm2.bias": [8], "stages.0.blocks.0.mlp.fc1.weight": [16, 8],
        "stages.0.blocks.0.mlp.fc1.bias": [16], "stages.0.blocks.0.mlp.dwconv.weight": [16, 1, 3, 3],
        "stages.0.blocks.0.mlp.dwconv.bias": [16], "stages.0.blocks.0.mlp.fc2.weight": [8, 16],
        "stages.0.blocks.0.mlp.fc2.bias": [8], "stages.0.norm.weight": [8], "stages.0.norm.bias": [8],
        "stages.1.downsample.proj.weight": [16, 8, 3, 3], "stages.1.downsample.proj.bias": [16],
        "stages.1.downsample.norm.weight": [16], "stages.1.downsample.norm.bias": [16], "stages.1.blocks.0.norm1.weight": [16],
        "stages.1.blocks.0.norm1.bias": [16], "stages.1.blocks.0.attn.q.weight": [16, 16], "stages.1.blocks.0.attn.q.bias": [16],
        "stages.1.blocks.0.attn.kv.weight": [32, 16], "stages.1.blocks.0.attn.kv.bias": [32],
        "stages.1.blocks.0.attn.proj.weight": [16, 16], "stages.1.blocks.0.attn.proj.bias": [16],
        "stages.1.blocks.0.norm2.weight": [16], "stages.1.blocks.0.norm2.bias": [16],
        "stages.1.blocks.0.mlp.fc1.weight": [32, 16], "stages.1.blocks.0.mlp.fc1.bias": [32],
        "stages.1.blocks.0.mlp.dwconv.weight": [32, 1, 3, 3], "stages.1.blocks.0.mlp.dwconv.bias": [32],
        "stages.1.blocks.0.mlp.fc2.weight": [16, 32], "stages.1.blocks.0.mlp.fc2.bias": [16],
        "stages.1.blocks.1.norm1.weight": [16], "stages.1.blocks.1.norm1.bias": [16],
        "stages.1.blocks.1.attn.q.weight": [16, 16], "stages.1.blocks.1.attn.q.bias": [16],
        "stages.1.blocks.1.attn.kv.weight": [32, 16], "stages.1.blocks.1.attn.kv.bias": [32],
        "stages.1.blocks.1.attn.proj.weight": [16, 16], "stages.1.blocks.1.attn.proj.bias": [16],
        "stages.1.blocks.1.norm2.weight": [16], "stages.1.blocks.1.norm2.bias": [16],
        "stages.1.blocks.1.mlp.fc1.weight": [32, 16], "stages.1.blocks.1.mlp.fc1.bias": [32],
        "stages.1.blocks.1.mlp.dwconv.weight": [32, 1, 3, 3], "stages.1.blocks.1.mlp.dwconv.bias": [32],
        "stages.1.blocks.1.mlp.fc2.weight": [16, 32], "stages.1.blocks.1.mlp.fc2.bias": [16], "stages.1.norm.weight": [16],
        "stages.1.norm.bias": [16], "head.weight": [3, 16], "head.bias": [3],
        ]
        let dict = try PvtV2(tinyConfig()).stateDict()
        XCTAssertEqual(Set(dict.keys), Set(want.keys))
        for (key, shape) in want { XCTAssertEqual(dict[key]?.shape, shape, key) }
        XCTAssertEqual(try PvtV2(tinyConfig()).parameterCount, 8627)

        let wantLinear: [String: [Int]] = [
        "patch_embed.proj.weight": [8, 3, 7, 7], "patch_embed.proj.bias": [8], "patch_embed.norm.weight": [8],
        "patch_embed.norm.bias": [8], "stages.0.blocks.0.norm1.weight": [8], "stages.0.blocks.0.norm1.bias": [8],
        "stages.0.blocks.0.attn.q.weight": [8, 8], "stages.0.blocks.0.attn.q.bias": [8],
        "stages.0.blocks.0.attn.kv.weight": [16, 8], "stages.0.blocks.0.attn.kv.bias": [16],
        "stages.0.blocks.0.attn.proj.weight": [8, 8], "stages.0.blocks.0.attn.proj.bias": [8],
        "stages.0.blocks.0.attn.sr.weight": [8, 8, 1, 1], "stages.0.blocks.0.attn.sr.bias": [8],
        "stages.0.blocks.0.attn.norm.weight": [8], "stages.0.blocks.0.attn.norm.bias": [8],
        "stages.0.blocks.0.norm2.weight": [8], "stages.0.blocks.0.norm2.bias": [8], "stages.0.blocks.0.mlp.fc1.weight": [16, 8],
        "stages.0.blocks.0.mlp.fc1.bias": [16], "stages.0.blocks.0.mlp.dwconv.weight": [16, 1, 3, 3],
        "stages.0.blocks.0.mlp.dwconv.bias": [16], "stages.0.blocks.0.mlp.fc2.weight": [8, 16],
        "stages.0.blocks.0.mlp.fc2.bias": [8], "stages.0.norm.weight": [8], "stages.0.norm.bias": [8],
        "stages.1.downsample.proj.weight": [16, 8, 3, 3], "stages.1.downsample.proj.bias": [16],
        "stages.1.downsample.norm.weight": [16], "stages.1.downsample.norm.bias": [16], "stages.1.blocks.0.norm1.weight": [16],
        "stages.1.blocks.0.norm1.bias": [16], "stages.1.blocks.0.attn.q.weight": [16, 16], "stages.1.blocks.0.attn.q.bias": [16],
        "stages.1.blocks.0.attn.kv.weight": [32, 16], "stages.1.blocks.0.attn.kv.bias": [32],
        "stages.1.blocks.0.attn.proj.weight": [16, 16], "stages.1.blocks.0.attn.proj.bias": [16],
        "stages.1.blocks.0.attn.sr.weight": [16, 16, 1, 1], "stages.1.blocks.0.attn.sr.bias": [16],
        "stages.1.blocks.0.attn.norm.weight": [16], "stages.1.blocks.0.attn.norm.bias": [16],
        "stages.1.blocks.0.norm2.weight": [16], "stages.1.blocks.0.norm2.bias": [16],
        "stages.1.blocks.0.mlp.fc1.weight": [32, 16], "stages.1.blocks.0.mlp.fc1.bias": [32],
        "stages.1.blocks.0.mlp.dwconv.weight": [32, 1, 3, 3], "stages.1.blocks.0.mlp.dwconv.bias": [32],
        "stages.1.blocks.0.mlp.fc2.weight": [16, 32], "stages.1.blocks.0.mlp.fc2.bias": [16], "stages.1.norm.weight": [16],
        "stages.1.norm.bias": [16], "head.weight": [3, 16], "head.bias": [3],
        ]
        let linear = try PvtV2(tinyConfig(linear: true)).stateDict()
        XCTAssertEqual(Set(linear.keys), Set(wantLinear.keys))
        for (key, shape) in wantLinear { XCTAssertEqual(linear[key]?.shape, shape, key) }
    }

    func testTinyModelTrainsForwardAndBackward() throws {
        for linear in [false, true] {
            let model = try PvtV2(tinyConfig(linear: linear, classes: 5))
            let x = Tensor.randomNormal([2, 32, 32, 3], generator: Generator(seed: 1))
            model.train()
            let (loss, grads) = valueAndGrad(model) { crossEntropy(logits: model.logits(x), labels: [1, 4]) }
            XCTAssertTrue(loss.item().isFinite)
            XCTAssertEqual(Set(grads.keys), Set(model.trainableParameters().map(\.0)))
            for key in ["patch_embed.proj.weight", "stages.0.blocks.0.attn.sr.weight", "stages.0.blocks.0.mlp.dwconv.weight",
                        "stages.1.downsample.proj.weight"] {
                XCTAssertGreaterThan(grads[key]!.scalars.map { abs($0) }.max()!, 0, "\(key) linear \(linear)")
            }
            model.eval()
            let features = withoutGrad { model.forwardFeatures(x) }
            XCTAssertEqual(features.shape, [2, 4, 4, 16])
            XCTAssertEqual(model.forwardHead(features, preLogits: true).shape, [2, 16])
            let inter = withoutGrad { model.forwardIntermediates(x) }
            XCTAssertEqual(inter.map(\.name), ["patch_embed", "stages.0", "stages.1"])
            XCTAssertEqual(inter[0].value.shape, [2, 8, 8, 8])
            assertClose(inter[2].value, features, atol: 0, rtol: 0, "intermediates end with the features")
            model.resetClassifier(numClasses: 7)
            XCTAssertEqual(withoutGrad { model.logits(x) }.shape, [2, 7])
        }
    }

    /// Reduced keys at the centres of their sr×sr cells; the linear variant's keys at the
    /// centres of AdaptiveAvgPool2d(7)'s bins (which overlap, or repeat on a grid under 7).
    func testAttentionMapsPlaceReducedAndPooledKeys() throws {
        let x = Tensor.randomNormal([2, 32, 32, 3], generator: Generator(seed: 2))
        let model = try PvtV2(tinyConfig())
        model.eval()
        let layers = model.attentionLayers()
        XCTAssertEqual(layers.map(\.key), ["stages.0.blocks.0.attn", "stages.1.blocks.0.attn", "stages.1.blocks.1.attn"])
        model.recordAttention()
        _ = withoutGrad { model.logits(x) }
        let first = try XCTUnwrap(layers[0].layer.lastAttentionMap)
        XCTAssertEqual(first.probabilities.shape, [2, 1, 64, 16])
        XCTAssertEqual(first.queryPositions?.shape, [64, 2])
        XCTAssertEqual(Array(first.keyPositions!.scalars[0..<2]), [0.125, 0.125])
        XCTAssertEqual(Array(first.keyPositions!.scalars[30..<32]), [0.875, 0.875])
        let second = try XCTUnwrap(layers[1].layer.lastAttentionMap)
        XCTAssertEqual(second.probabilities.shape, [2, 2, 16, 16])
        assertClose(second.keyPositions!, AttentionMap.gridPositions(height: 4, width: 4), atol: 0, rtol: 0)
        for r in second.probabilities.sum(alongAxes: [3]).scalars { XCTAssertEqual(r, 1, accuracy: 1e-5) }

        let li = try PvtV2(tinyConfig(linear: true))
        li.eval()
        li.recordAttention()
        _ = withoutGrad { li.logits(x) }
        let maps = try li.attentionLayers().map { try XCTUnwrap($0.layer.lastAttentionMap) }
        XCTAssertEqual(maps.map(\.probabilities.shape), [[2, 1, 64, 49], [2, 2, 16, 49]])
        // 8 → 7 bins: [0,2) … [6,8); 4 → 7 bins: [0,1), [0,2), [1,2), [1,3), [2,3), [2,4), [3,4).
        let k0 = maps[0].keyPositions!.scalars, k1 = maps[1].keyPositions!.scalars
        XCTAssertEqual(Array(k0[0..<2]), [0.125, 0.125])
        XCTAssertEqual(Array(k0[96..<98]), [0.875, 0.875])
        XCTAssertEqual(stride(from: 1, to: 14, by: 2).map { k1[$0] }, [0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875])
    }

    /// Blocks and stage norms use norm_layer (timm's LayerNorm: 1e-6); patch embeddings and
    /// the sr norm are torch's LayerNorm (1e-5).
    func testLayerNormEpsIsMixed() throws {
        let model = try PvtV2(tinyConfig())
        XCTAssertEqual(model.patchEmbed.norm.eps, 1e-5)
        XCTAssertEqual(model.stages[1].downsample?.norm.eps, 1e-5)
        XCTAssertEqual(model.stages[0].blocks[0].attn.norm?.eps, 1e-5)
        XCTAssertEqual(model.stages[0].blocks[0].norm1.eps, 1e-6)
        XCTAssertEqual(model.stages[0].norm.eps, 1e-6)
        var json: [String: PatchworkModels.JSONValue] = [
            "depths": .array([.number(1)]), "embed_dims": .array([.number(8)]), "num_heads": .array([.number(2)]),
            "sr_ratios": .array([.number(2)]), "mlp_ratios": .array([.number(2)]), "num_classes": .number(4),
            "norm_layer": .object(["$type": .string("callable"), "name": .string("torch.nn.modules.normalization.LayerNorm")])]
        let torchNorm = try XCTUnwrap(Models.family("pvt_v2").build(config: .object(json)) as? PvtV2)
        XCTAssertEqual(torchNorm.stages[0].blocks[0].norm2.eps, 1e-5)
        json["norm_layer"] = .object(["$type": .string("partial"), "name": .string("timm.layers.norm.LayerNorm"),
                                      "kwargs": .object(["eps": .number(1e-3)])])
        let partial = try XCTUnwrap(Models.family("pvt_v2").build(config: .object(json)) as? PvtV2)
        XCTAssertEqual(partial.stages[0].norm.eps, 1e-3)
        // to_ntuple: one number for every stage.
        json["depths"] = .array([.number(1), .number(1)]); json["embed_dims"] = .array([.number(8), .number(16)])
        json["num_heads"] = .number(2); json["sr_ratios"] = .number(1); json["mlp_ratios"] = .number(3)
        let scalars = try XCTUnwrap(Models.family("pvt_v2").build(config: .object(json)) as? PvtV2)
        XCTAssertEqual(scalars.stages[1].blocks[0].attn.heads, 2)
        XCTAssertNil(scalars.stages[0].blocks[0].attn.sr)
        XCTAssertEqual(scalars.stateDict()["stages.1.blocks.0.mlp.fc1.weight"]?.shape, [48, 16])
        json["norm_layer"] = .object(["$type": .string("callable"), "name": .string("torch.nn.BatchNorm2d")])
        XCTAssertThrowsError(try Models.family("pvt_v2").build(config: .object(json)))
    }

    func testUnsupportedConfigsThrow() {
        var c = tinyConfig()
        c.numHeads = [3, 2]
        XCTAssertThrowsError(try PvtV2(c))
        c = tinyConfig(); c.globalPool = ""
        XCTAssertThrowsError(try PvtV2(c)) { XCTAssertTrue("\($0)".contains("global_pool")) }
        c = tinyConfig(); c.srRatios = [8, 4, 2]
        XCTAssertThrowsError(try PvtV2(c), "three sr ratios for two stages")
        c = tinyConfig(); c.embedDims = [8, 16, 32]
        XCTAssertThrowsError(try PvtV2(c))
        c = tinyConfig(); c.srRatios = [0]
        XCTAssertThrowsError(try PvtV2(c))
    }

    /// A model built for 32x32 loads into one for 64x64 through the filter (no position
    /// table: nothing to resample) and gives finite logits; the authors' key names are
    /// mapped onto timm's like timm's checkpoint_filter_fn.
    func testCheckpointForAnotherInputSizeAndTheAuthorsKeys() throws {
        let small = try PvtV2(tinyConfig())
        small.eval()
        let big = try PvtV2(tinyConfig())
        try big.loadStateDict(big.checkpointFilter(small.stateDict()))
        big.eval()
        let x = Tensor.randomNormal([2, 64, 64, 3], generator: Generator(seed: 3))
        let logits = withoutGrad { big.logits(x) }
        XCTAssertEqual(logits.shape, [2, 3])
        XCTAssertTrue(logits.scalars.allSatisfy(\.isFinite))
        assertClose(logits, withoutGrad { small.logits(x) }, atol: 0, rtol: 0)

        var authors: [String: Tensor] = [:]
        for (key, value) in small.stateDict() {
            var k = key
            k = k.replacingOccurrences(of: "stages.1.downsample", with: "patch_embed2")
            k = k.replacingOccurrences(of: "patch_embed.", with: "patch_embed1.")
            for s in 0..<2 {
                k = k.replacingOccurrences(of: "stages.\(s).blocks.", with: "block\(s + 1).")
                k = k.replacingOccurrences(of: "stages.\(s).norm.", with: "norm\(s + 1).")
            }
            k = k.replacingOccurrences(of: "mlp.dwconv.", with: "mlp.dwconv.dwconv.")
            authors[k] = value
        }
        XCTAssertNotNil(authors["block2.1.mlp.dwconv.dwconv.weight"])
        XCTAssertNotNil(authors["norm2.weight"])
        XCTAssertNotNil(authors["patch_embed2.proj.weight"])
        XCTAssertNotNil(authors["block1.0.norm1.weight"])
        let mapped = big.checkpointFilter(authors)
        XCTAssertEqual(Set(mapped.keys), Set(small.stateDict().keys))
        try big.loadStateDict(mapped)
    }
}
