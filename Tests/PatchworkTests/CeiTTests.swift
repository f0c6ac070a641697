import Foundation
import XCTest
import Patchwork
import PatchworkNN
import PatchworkModels

/// The authors' CeiT (coeusguo/ceit ceit_model.py): variants, keys, I2T stem, LeFF, LCA.
final class CeiTTests: XCTestCase {
    /// 16x16 images; Image2Tokens(3, 8, kernel 3, stride 1) → 16x16 → max-pool → 8x8; 2x2
    /// patches → 4x4 tokens of width 12, 3 heads, two blocks, LeFF hidden 24.
    func tinyConfig(withBN: Bool = true, classes: Int = 5) -> CeiTConfig {
        CeiTConfig(imgSize: 16, patchSize: 2, embedDim: 12, depth: 2, numHeads: 3, mlpRatio: 2, numClasses: classes,
                   stemChannels: 8, stemKernel: 3, stemStride: 1, leffWithBn: withBN)
    }

    /// The authors' ceit_{tiny,small,base}_patch16_224 (1000 classes, 224x224). Counted by
    /// running their ceit_model.py at 44c16d3 with the local torch 2.15 / timm 1.0.31:
    /// sum(p.numel() for p in model.parameters()).
    func testVariantsHaveTheAuthorsParameterCounts() throws {
        let expected = ["ceit_tiny": 6_356_904, "ceit_small": 24_204_840, "ceit_base": 94_405_416]
        let variants = Models.list().filter { $0.family == "ceit" && !$0.name.hasSuffix("_nano") }
        XCTAssertEqual(Set(variants.map(\.name)), Set(expected.keys))
        for v in variants {
            XCTAssertEqual(v.inputSize, 224, v.name)
            let model = try v.create(numClasses: 1000)
            XCTAssertEqual(model.parameterCount, expected[v.name], v.name)
            XCTAssertEqual((model as! CeiT).grid.0, 14, "224 → 112 (conv) → 56 (pool) → 14 (patch 4)")
        }
        let nano = try Models.create("ceit_nano", numClasses: 10)
        XCTAssertTrue((200_000...2_000_000).contains(nano.parameterCount), "\(nano.parameterCount)")
    }

    /// The key set and shapes of the authors' CeIT(hybrid_backbone=Image2Tokens(3, 8, 3, 1),
    /// img_size=16, patch_size=2, embed_dim=12, depth=2, num_heads=3, mlp_ratio=2,
    /// qkv_bias=True, num_classes=5) (5,529 parameters).
    func testKeysAndShapesFollowTheAuthors() throws {
        let model = try CeiT(tinyConfig())
        XCTAssertEqual(model.parameterCount, 5_529)
        let dict = model.stateDict()
        var want: Set<String> = ["cls_token", "pos_embed", "pos_layer_embed", "norm.weight", "norm.bias", "head.weight", "head.bias",
                                 "i2t.backbone.conv.weight", "i2t.proj.weight", "i2t.proj.bias"]
        let bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
        for p in bn { want.insert("i2t.backbone.bn.\(p)") }
        let attention = ["attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
                         "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"]
        for i in 0..<2 {
            for n in attention { want.insert("blocks.\(i).\(n)") }
            for c in 1...3 { want.insert("blocks.\(i).leff.conv\(c).weight"); want.insert("blocks.\(i).leff.conv\(c).bias") }
            for c in 1...3 { for p in bn { want.insert("blocks.\(i).leff.bn\(c).\(p)") } }
        }
        for n in attention + ["feedforward.fc1.weight", "feedforward.fc1.bias", "feedforward.fc2.weight", "feedforward.fc2.bias"] {
            want.insert("lca.\(n)")
        }
        XCTAssertEqual(Set(dict.keys), want)
        XCTAssertEqual(dict["pos_embed"]?.shape, [1, 17, 12])
        XCTAssertEqual(dict["pos_layer_embed"]?.shape, [1, 2, 12])
        XCTAssertEqual(dict["i2t.backbone.conv.weight"]?.shape, [8, 3, 3, 3])
        XCTAssertEqual(dict["i2t.proj.weight"]?.shape, [12, 8, 2, 2])
        XCTAssertEqual(dict["blocks.0.leff.conv1.weight"]?.shape, [24, 12, 1, 1])
        XCTAssertEqual(dict["blocks.0.leff.conv2.weight"]?.shape, [24, 1, 3, 3], "depthwise")
        XCTAssertEqual(dict["blocks.0.leff.conv3.weight"]?.shape, [12, 24, 1, 1])
        XCTAssertEqual(dict["lca.attn.qkv.weight"]?.shape, [36, 12])
        XCTAssertEqual(dict["lca.feedforward.fc1.weight"]?.shape, [24, 12])

        let noBN = try CeiT(tinyConfig(withBN: false)).stateDict()
        XCTAssertFalse(noBN.keys.contains { $0.contains("leff.bn") })
        XCTAssertNotNil(noBN["i2t.backbone.bn.weight"])
    }

    /// Only the last block's class token reaches the head through LCA; that block's LeFF acts on the
    /// patch tokens only, so its gradients are exactly zero, while the earlier LeFFs get gradients.
    func testTheLastLeFFHasZeroGradientsAndTheOthersDoNot() throws {
        let model = try CeiT(tinyConfig())
        try model.update(parameters: ["pos_layer_embed": Tensor.randomNormal([1, 2, 12], std: 0.3, generator: Generator(seed: 4))])
        let x = Tensor.randomNormal([2, 16, 16, 3], generator: Generator(seed: 1))
        model.train()
        let (loss, grads) = valueAndGrad(model) { crossEntropy(logits: model.logits(x), labels: [1, 4]) }
        XCTAssertTrue(loss.item().isFinite)
        XCTAssertEqual(Set(grads.keys), Set(model.trainableParameters().map(\.0)))
        for (key, g) in grads {
            let largest = g.scalars.map { abs($0) }.max()!
            XCTAssertTrue(largest.isFinite, key)
            if key.hasPrefix("blocks.1.leff.") {
                XCTAssertEqual(largest, 0, "\(key): no path to the loss")
            } else if key.hasPrefix("blocks.0.leff.conv") && key.hasSuffix(".bias") {
                // Each feeds a train-mode batch norm, which subtracts it again.
                XCTAssertLessThan(largest, 1e-5, key)
            } else {
                XCTAssertGreaterThan(largest, 0, key)
            }
        }
        // In training the last LeFF still runs (its batch norms update their statistics, as in the reference).
        XCTAssertEqual(model.stateDict()["blocks.1.leff.bn1.num_batches_tracked"]?.item(), 1)
    }

    /// Evaluation skips the last block's LeFF on the patch tokens; the logits equal the
    /// full path through every block's tokens (forwardIntermediates), and the LCA equals the
    /// first-commit formulation (full self-attention over the class tokens, then the last one).
    func testEvaluationShortcutAndLCAFormulation() throws {
        let model = try CeiT(tinyConfig())
        try model.update(parameters: ["pos_layer_embed": Tensor.randomNormal([1, 2, 12], std: 0.3, generator: Generator(seed: 4)),
                                      "lca.attn.qkv.bias": Tensor.randomNormal([36], std: 0.3, generator: Generator(seed: 6))])
        model.eval()
        let x = Tensor.randomNormal([2, 16, 16, 3], generator: Generator(seed: 2))
        let logits = withoutGrad { model.logits(x) }
        let inter = withoutGrad { model.forwardIntermediates(x) }
        XCTAssertEqual(inter.map(\.name), ["i2t", "blocks.0", "blocks.1", "lca"])
        XCTAssertEqual(inter.map(\.value.shape), [[2, 17, 12], [2, 17, 12], [2, 17, 12], [2, 1, 12]])
        let features = withoutGrad { model.forwardFeatures(x) }
        XCTAssertEqual(features.shape, [2, 1, 12])
        assertClose(withoutGrad { model.forwardHead(features, preLogits: false) }, logits, atol: 0, rtol: 0)
        let full = withoutGrad { model.forwardHead(layerNorm(inter[3].value, weight: model.stateDict()["norm.weight"],
                                                             bias: model.stateDict()["norm.bias"], eps: 1e-6), preLogits: false) }
        assertClose(full, logits, atol: 1e-5, rtol: 1e-5, "shortcut vs full tokens")

        // LCA from its parts: the class tokens stacked + pos_layer_embed, full attention, last row.
        let sd = model.stateDict()
        let tokens = withoutGrad { stack([inter[1].value.selecting(axis: 1, index: 0), inter[2].value.selecting(axis: 1, index: 0)], axis: 1)
                                   + sd["pos_layer_embed"]! }
        let lca = model.lca
        let expected: Tensor = withoutGrad {
            let n1 = lca.norm1(tokens)
            let qkv = linear(n1, weight: sd["lca.attn.qkv.weight"]!, bias: sd["lca.attn.qkv.bias"]!)
                .reshaped([2, 2, 3, 3, 4]).permuted([2, 0, 3, 1, 4])
            let q = qkv.selecting(axis: 0, index: 0), k = qkv.selecting(axis: 0, index: 1), v = qkv.selecting(axis: 0, index: 2)
            let p = (matmul(q, k.transposed()) * 0.5).softmax(axis: -1)
            let a = lca.attn.proj(matmul(p, v).permuted([0, 2, 1, 3]).reshaped([2, 2, 12]))
            let h = (tokens + a).sliced(axis: 1, start: 1)
            return h + lca.feedforward(lca.norm2(h))
        }
        assertClose(inter[3].value, expected, atol: 1e-5, rtol: 1e-5, "LCA = last row of full attention")
        model.resetClassifier(numClasses: 7)
        XCTAssertEqual(withoutGrad { model.logits(x) }.shape, [2, 7])
    }

    func testAttentionMapsOfBlocksAndLCA() throws {
        let model = try CeiT(tinyConfig())
        model.eval()
        model.recordAttention()
        _ = withoutGrad { model.logits(Tensor.randomNormal([2, 16, 16, 3], generator: Generator(seed: 3))) }
        let layers = model.attentionLayers()
        XCTAssertEqual(layers.map(\.key), ["blocks.0.attn", "blocks.1.attn", "lca.attn"])
        for (key, layer) in layers {
            let map = try XCTUnwrap(layer.lastAttentionMap, key)
            for r in map.probabilities.sum(alongAxes: [3]).scalars { XCTAssertEqual(r, 1, accuracy: 1e-5, key) }
            if key == "lca.attn" {
                XCTAssertEqual(map.probabilities.shape, [2, 3, 1, 2], "query: the last class token; keys: every block's")
                XCTAssertEqual(map.queryPositions?.shape, [1, 2])
                XCTAssertEqual(map.keyPositions?.shape, [2, 2])
                XCTAssertTrue(map.keyPositions!.scalars.allSatisfy(\.isNaN), "class tokens have no place")
            } else {
                XCTAssertEqual(map.probabilities.shape, [2, 3, 17, 17], key)
                XCTAssertEqual(map.queryPositions?.shape, [17, 2])
                let s = map.queryPositions!.scalars
                XCTAssertTrue(s[0].isNaN && s[1].isNaN)
                XCTAssertEqual(Array(s[2..<4]), [0.125, 0.125])
            }
        }
        model.recordAttention(false)
    }

    func testUnsupportedConfigsThrow() {
        var c = tinyConfig()
        c.hybridBackbone = nil
        XCTAssertThrowsError(try CeiT(c)) { XCTAssertTrue("\($0)".contains("hybrid_backbone")) }
        c = tinyConfig(); c.leffLocalSize = 4
        XCTAssertThrowsError(try CeiT(c))
        c = tinyConfig(); c.numHeads = 5
        XCTAssertThrowsError(try CeiT(c))
        c = tinyConfig(); c.patchSize = 16
        XCTAssertThrowsError(try CeiT(c), "the 8x8 I2T map is smaller than the patch")
        let resnet: PatchworkModels.JSONValue = .object(["img_size": .number(16), "patch_size": .number(2), "embed_dim": .number(12),
                                                         "num_heads": .number(3), "depth": .number(1),
                                                         "hybrid_backbone": .object(["$type": .string("module"), "name": .string("timm.models.resnet50")])])
        XCTAssertThrowsError(try Models.family("ceit").build(config: resnet)) { XCTAssertTrue("\($0)".contains("Image2Tokens")) }
    }
}
