import Foundation
import XCTest
import Patchwork
import PatchworkNN
import PatchworkModels

/// timm's LevitDistilled: variants, keys, attention biases, shrinking attention, the
/// averaged distillation head, attention maps, bad configs.
final class LeViTTests: XCTestCase {
    /// 48x48 input, stride-8 stem → 6x6 tokens; stage 1 shrinks to 3x3.
    func tinyConfig(classes: Int = 5) -> LeViTConfig {
        LeViTConfig(imgSize: 48, numClasses: classes, embedDim: [16, 24], keyDim: 8, depth: [1, 1], numHeads: [2, 3], stemType: "s8")
    }

    /// timm 1.0.31 `timm.create_model(name)` (LevitDistilled, 1000 classes, 224).
    func testVariantsHaveTheReferenceParameterCounts() throws {
        let expected = ["levit_128s": 7_777_058, "levit_128": 9_213_936, "levit_192": 10_947_069,
                        "levit_256": 18_893_876, "levit_384": 39_128_836]
        let variants = Models.list().filter { $0.family == "levit" && !$0.name.hasSuffix("_nano") }
        XCTAssertEqual(Set(variants.map(\.name)), Set(expected.keys))
        for v in variants {
            XCTAssertEqual(v.inputSize, 224, v.name)
            XCTAssertEqual(try v.create(numClasses: 1000).parameterCount, expected[v.name], v.name)
        }
        // timm LevitDistilled(img_size=32, embed_dim=(96, 192), key_dim=16, depth=(2, 2), num_heads=(3, 6), stem_type='s8'), 10 classes.
        XCTAssertEqual(try Models.create("levit_nano", numClasses: 10).parameterCount, 988_892)
    }

    /// Keys and shapes equal timm's state_dict() for the tiny config (113 tensors, 16,841 parameters);
    /// attention_bias_idxs is not among them.
    func testKeysAndShapesFollowTimm() throws {
        let model = try LeViT(tinyConfig())
        let dict = model.stateDict()
        XCTAssertEqual(model.parameterCount, 16_841)
        XCTAssertEqual(dict.count, 113)
        let bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
        var want: Set<String> = []
        func linearNorm(_ p: String) { want.insert(p + ".linear.weight"); for b in bn { want.insert(p + ".bn." + b) } }
        for i in 1...3 { linearNorm("stem.conv\(i)") }
        for b in ["stages.0.blocks.0", "stages.1.blocks.0"] {
            want.insert(b + ".attn.attention_biases")
            for p in ["attn.qkv", "attn.proj.ln", "mlp.ln1", "mlp.ln2"] { linearNorm(b + "." + p) }
        }
        let d = "stages.1.downsample."
        want.insert(d + "attn_downsample.attention_biases")
        for p in ["attn_downsample.kv", "attn_downsample.q.ln", "attn_downsample.proj.ln", "mlp.ln1", "mlp.ln2"] { linearNorm(d + p) }
        for h in ["head", "head_dist"] {
            for b in bn { want.insert(h + ".bn." + b) }
            want.insert(h + ".linear.weight"); want.insert(h + ".linear.bias")
        }
        XCTAssertEqual(Set(dict.keys), want)
        XCTAssertEqual(dict["stem.conv1.linear.weight"]?.shape, [4, 3, 3, 3])
        XCTAssertEqual(dict["stages.0.blocks.0.attn.attention_biases"]?.shape, [2, 36])
        XCTAssertEqual(dict["stages.0.blocks.0.attn.qkv.linear.weight"]?.shape, [64, 16])
        XCTAssertEqual(dict["stages.1.downsample.attn_downsample.attention_biases"]?.shape, [2, 36], "in_dim // key_dim heads")
        XCTAssertEqual(dict["stages.1.downsample.attn_downsample.kv.linear.weight"]?.shape, [80, 16], "attn_ratio 4")
        XCTAssertEqual(dict["stages.1.downsample.attn_downsample.q.ln.linear.weight"]?.shape, [16, 16])
        XCTAssertEqual(dict["stages.1.downsample.attn_downsample.proj.ln.linear.weight"]?.shape, [24, 64])
        XCTAssertEqual(dict["stages.1.blocks.0.attn.attention_biases"]?.shape, [3, 9])
        XCTAssertEqual(dict["head_dist.linear.weight"]?.shape, [5, 24])
        // timm's checkpoint filter drops the index tables that old checkpoints stored.
        var old = dict
        old["stages.0.blocks.0.attn.attention_bias_idxs"] = Tensor.zeros([36, 36])
        XCTAssertNoThrow(try model.loadStateDict(model.checkpointFilter(old)))
    }

    func testTinyModelTrainsForwardAndBackward() throws {
        let model = try LeViT(tinyConfig())
        let x = Tensor.randomNormal([2, 48, 48, 3], generator: Generator(seed: 1))
        let grads = assertTrainStep(model, x, labels: [1, 4])
        XCTAssertGreaterThan(grads["stem.conv1.linear.weight"]!.scalars.map { abs($0) }.max()!, 0)
        XCTAssertGreaterThan(grads["stages.1.downsample.attn_downsample.attention_biases"]!.scalars.map { abs($0) }.max()!, 0)

        model.eval()
        let features = withoutGrad { model.forwardFeatures(x) }
        XCTAssertEqual(features.shape, [2, 9, 24])
        let pooled = model.forwardHead(features, preLogits: true)
        XCTAssertEqual(pooled.shape, [2, 24])
        let inter = withoutGrad { model.forwardIntermediates(x) }
        XCTAssertEqual(inter.map(\.name), ["stem", "stages.0.blocks.0", "stages.1.downsample", "stages.1.blocks.0"])
        XCTAssertEqual(inter.map(\.value.shape), [[2, 6, 6, 16], [2, 6, 6, 16], [2, 3, 3, 24], [2, 3, 3, 24]])
        model.resetClassifier(numClasses: 7)
        XCTAssertEqual(withoutGrad { model.logits(x) }.shape, [2, 7])
        XCTAssertEqual(Set(model.stateDict().keys.filter { $0.hasPrefix("head") }).count, 14)
    }

    /// distilled_training is False: eval and train outputs are both (head + head_dist) / 2.
    func testOutputAveragesTheTwoHeadsInBothModes() throws {
        let model = try LeViT(tinyConfig())
        let x = Tensor.randomNormal([4, 48, 48, 3], generator: Generator(seed: 2))
        for training in [false, true] {
            model.train(training)
            let features = withoutGrad { model.forwardFeatures(x) }
            let pooled = features.mean(alongAxes: [1])
            let (h, hd) = withoutGrad { (model.head(pooled), model.headDist!(pooled)) }
            assertClose(withoutGrad { model.forwardHead(features, preLogits: false) }, (h + hd) / 2, atol: 1e-6, rtol: 1e-6,
                        training ? "train" : "eval")
        }
    }

    /// The recorded maps: [B, heads, N, N] with biases indexed by |Δy|·r + |Δx|; the shrinking
    /// attention has its queries on the subsampled grid (rows and columns 0, 2, 4).
    func testAttentionMapsAndBiasTables() throws {
        let model = try LeViT(tinyConfig())
        model.eval()
        let blockAttention = model.stages[0].blocks[0].attn
        let down = try XCTUnwrap((model.stages[1].downsample as? LeViTDownsample)?.attnDownsample)
        // Distinct bias values: value = head·100 + index.
        blockAttention.attentionBiases = Tensor((0..<72).map { Float($0 / 36 * 100 + $0 % 36) }, shape: [2, 36])
        down.attentionBiases = Tensor((0..<72).map { Float($0 / 36 * 100 + $0 % 36) }, shape: [2, 36])
        model.recordAttention()
        XCTAssertEqual(model.attentionLayers().map(\.key), ["stages.0.blocks.0.attn", "stages.1.downsample.attn_downsample",
                                                            "stages.1.blocks.0.attn"])
        let x = Tensor.randomNormal([2, 48, 48, 3], generator: Generator(seed: 3))
        _ = withoutGrad { model.logits(x) }

        let a = try XCTUnwrap(blockAttention.lastAttentionMap)
        XCTAssertEqual(a.probabilities.shape, [2, 2, 36, 36])
        let table = try XCTUnwrap(a.extras["attention_bias"])
        XCTAssertEqual(table.shape, [2, 36, 36])
        // Query (0, 0), key (2, 1) on the 6x6 grid: index 2·6 + 1 = 13; head 1 adds 100.
        XCTAssertEqual(table.scalars[0 * 36 + 13], 13)
        XCTAssertEqual(table.scalars[36 * 36 + 0 * 36 + 13], 113)
        // Query (1, 4) = token 10, key (3, 0) = token 18: |Δ| = (2, 4) → 16.
        XCTAssertEqual(table.scalars[10 * 36 + 18], 16)
        XCTAssertEqual(try XCTUnwrap(a.queryPositions).shape, [36, 2])

        let m = try XCTUnwrap(down.lastAttentionMap)
        XCTAssertEqual(m.probabilities.shape, [2, 2, 9, 36], "3x3 queries over 6x6 keys")
        let qp = try XCTUnwrap(m.queryPositions), kp = try XCTUnwrap(m.keyPositions)
        XCTAssertEqual(qp.shape, [9, 2]); XCTAssertEqual(kp.shape, [36, 2])
        // Query 5 is grid point (2, 4) of the 6x6 key grid.
        XCTAssertEqual(Array(qp.scalars[10..<12]), [2.5 / 6, 4.5 / 6])
        let dt = try XCTUnwrap(m.extras["attention_bias"])
        XCTAssertEqual(dt.shape, [2, 9, 36])
        // Query 5 = (2, 4), key 7 = (1, 1): |Δ| = (1, 3) → 9.
        XCTAssertEqual(dt.scalars[5 * 36 + 7], 9)
        for r in m.probabilities.sum(alongAxes: [3]).scalars { XCTAssertEqual(r, 1, accuracy: 1e-5) }
        XCTAssertEqual(try XCTUnwrap(model.stages[1].blocks[0].attn.lastAttentionMap).probabilities.shape, [2, 3, 9, 9])
        model.recordAttention(false)
    }

    func testUnsupportedConfigsThrow() throws {
        var c = tinyConfig(); c.useConv = true
        XCTAssertThrowsError(try LeViT(c)) { XCTAssertTrue("\($0)".contains("use_conv")) }
        c = tinyConfig(); c.globalPool = ""
        XCTAssertThrowsError(try LeViT(c))
        c = tinyConfig(); c.stemType = "s32"
        XCTAssertThrowsError(try LeViT(c))
        c = tinyConfig(); c.actLayer = "mish_v9"
        XCTAssertThrowsError(try LeViT(c))
        c = tinyConfig(); c.depth = [1]
        XCTAssertThrowsError(try LeViT(c))
        c = tinyConfig(); c.downOp = "pool"
        XCTAssertThrowsError(try LeViT(c))
        let backbone = try JSONDecoder().decode(PatchworkModels.JSONValue.self, from: Data(#"""
            {"img_size": 48, "embed_dim": [16], "key_dim": 8, "depth": [1], "num_heads": 2,
             "stem_backbone": {"$type": "instance", "name": "torch.nn.Identity"}, "stem_stride": 8}
            """#.utf8))
        XCTAssertThrowsError(try Models.family("levit").build(config: backbone)) { XCTAssertTrue("\($0)".contains("stem_backbone")) }
        // A scalar num_heads / attn_ratio applies to every stage, as timm's to_ntuple.
        let scalar = try JSONDecoder().decode(PatchworkModels.JSONValue.self, from: Data(#"""
            {"img_size": 48, "num_classes": 5, "embed_dim": [16, 24], "key_dim": 8, "depth": [1, 1], "num_heads": 2,
             "attn_ratio": 2.0, "mlp_ratio": [2.0, 2.0], "stem_type": "s8", "stem_backbone": null, "attn_act_layer": null}
            """#.utf8))
        let model = try Models.family("levit").build(config: scalar)
        XCTAssertEqual(model.stateDict()["stages.1.blocks.0.attn.attention_biases"]?.shape, [2, 9])
    }
}
