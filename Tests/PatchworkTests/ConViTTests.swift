import Foundation
import XCTest
import Patchwork
import PatchworkNN
import PatchworkModels

/// timm's ConVit: variants, keys, GPSA (relative indices, local init, gating), attention maps.
final class ConViTTests: XCTestCase {
    /// 16x16 images, 4x4 patches (4x4 grid), 4 heads of width 4 (model width 16),
    /// two GPSA blocks then one MHSA block.
    func tinyConfig(localUpToLayer: Int = 2, classes: Int = 5) -> ConViTConfig {
        ConViTConfig(imgSize: 16, patchSize: 4, embedDim: 4, depth: 3, numHeads: 4, localUpToLayer: localUpToLayer,
                     numClasses: classes)
    }

    /// timm 1.0.31 `timm.create_model(name)` parameter counts (1000 classes, 224x224).
    func testVariantsHaveTimmParameterCounts() throws {
        let expected = ["convit_tiny": 5_710_512, "convit_small": 27_777_322, "convit_base": 86_540_040]
        let variants = Models.list().filter { $0.family == "convit" && !$0.name.hasSuffix("_nano") }
        XCTAssertEqual(Set(variants.map(\.name)), Set(expected.keys))
        for v in variants {
            XCTAssertEqual(v.inputSize, 224, v.name)
            XCTAssertEqual(try v.create(numClasses: 1000).parameterCount, expected[v.name], v.name)
        }
        let nano = try Models.create("convit_nano", numClasses: 10)
        XCTAssertTrue((200_000...2_000_000).contains(nano.parameterCount), "\(nano.parameterCount)")
    }

    /// The key set and shapes of timm's ConVit(img_size=16, patch_size=4, embed_dim=4,
    /// num_heads=4, depth=3, local_up_to_layer=2, num_classes=5) (10,909 parameters).
    func testKeysAndShapesFollowTimm() throws {
        let model = try ConViT(tinyConfig())
        XCTAssertEqual(model.parameterCount, 10_909)
        let dict = model.stateDict()
        var want: Set<String> = ["cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias",
                                 "norm.weight", "norm.bias", "head.weight", "head.bias"]
        for i in 0..<3 {
            var names = ["norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
                         "mlp.fc2.weight", "mlp.fc2.bias", "attn.proj.weight", "attn.proj.bias"]
            names += i < 2 ? ["attn.qk.weight", "attn.v.weight", "attn.pos_proj.weight", "attn.pos_proj.bias", "attn.gating_param"]
                           : ["attn.qkv.weight"]
            for n in names { want.insert("blocks.\(i).\(n)") }
        }
        XCTAssertEqual(Set(dict.keys), want, "no rel_indices: it is a non-persistent buffer in timm")
        XCTAssertEqual(dict["pos_embed"]?.shape, [1, 16, 16], "no class-token entry")
        XCTAssertEqual(dict["cls_token"]?.shape, [1, 1, 16])
        XCTAssertEqual(dict["patch_embed.proj.weight"]?.shape, [16, 3, 4, 4])
        XCTAssertEqual(dict["blocks.0.attn.qk.weight"]?.shape, [32, 16])
        XCTAssertEqual(dict["blocks.0.attn.pos_proj.weight"]?.shape, [4, 3])
        XCTAssertEqual(dict["blocks.0.attn.gating_param"]?.shape, [4])
        XCTAssertEqual(dict["blocks.2.attn.qkv.weight"]?.shape, [48, 16])
        XCTAssertEqual(dict["blocks.2.mlp.fc1.weight"]?.shape, [64, 16])

        var noPos = tinyConfig()
        noPos.usePosEmbed = false
        XCTAssertNil(try ConViT(noPos).stateDict()["pos_embed"])
    }

    /// timm's get_rel_indices(9): rel[0, 5] = (2, 1, 5), rel[5, 0] = (-2, -1, 5), rel[4, 2] = (1, -1, 2).
    func testRelativeIndicesAndLocalInit() throws {
        let model = try ConViT(ConViTConfig(imgSize: 12, patchSize: 4, embedDim: 4, depth: 1, numHeads: 4, localUpToLayer: 1))
        let gpsa = try XCTUnwrap(model.blocks[0].attn as? GPSA)
        let rel = gpsa.relIndices
        XCTAssertEqual(rel.shape, [9, 9, 3])
        func at(_ n: Int, _ m: Int) -> [Float] { rel.selecting(axis: 0, index: n).selecting(axis: 0, index: m).scalars }
        XCTAssertEqual(at(0, 5), [2, 1, 5])
        XCTAssertEqual(at(5, 0), [-2, -1, 5])
        XCTAssertEqual(at(4, 2), [1, -1, 2])

        // local_init with 4 heads: a 2x2 kernel around centre 0.5; head h1 + 2·h2 has weights
        // (2(h2 − .5), 2(h1 − .5), −1) · locality_strength; v is the identity; gates start at 1.
        var c = tinyConfig()
        c.localityStrength = 2
        let local = try XCTUnwrap(try ConViT(c).blocks[0].attn as? GPSA)
        XCTAssertEqual(local.posProj.weight.scalars, [-2, -2, -2, -2, 2, -2, 2, -2, -2, 2, 2, -2])
        XCTAssertEqual(local.posProj.bias!.scalars, [0, 0, 0, 0])
        let v = local.v.weight.scalars
        for i in 0..<16 { for j in 0..<16 { XCTAssertEqual(v[i * 16 + j], i == j ? 1 : 0) } }
        XCTAssertEqual(local.gatingParam.scalars, [1, 1, 1, 1])
    }

    func testForwardBackwardAndIntermediates() throws {
        let model = try ConViT(tinyConfig())
        let x = Tensor.randomNormal([2, 16, 16, 3], generator: Generator(seed: 1))
        let grads = assertTrainStep(model, x, labels: [1, 4])
        for key in ["pos_embed", "cls_token", "blocks.0.attn.gating_param", "blocks.0.attn.pos_proj.weight", "patch_embed.proj.weight"] {
            XCTAssertGreaterThan(grads[key]!.scalars.map { abs($0) }.max()!, 0, key)
        }
        // pos_proj's bias shifts every key of a head's positional scores alike: softmax cancels it.
        XCTAssertLessThan(grads["blocks.0.attn.pos_proj.bias"]!.scalars.map { abs($0) }.max()!, 1e-6)

        model.eval()
        let features = withoutGrad { model.forwardFeatures(x) }
        XCTAssertEqual(features.shape, [2, 17, 16], "the class token joined before block 2")
        XCTAssertEqual(model.forwardHead(features, preLogits: true).shape, [2, 16])
        let inter = withoutGrad { model.forwardIntermediates(x) }
        XCTAssertEqual(inter.map(\.name), ["patch_embed", "blocks.0", "blocks.1", "blocks.2"])
        XCTAssertEqual(inter.map(\.value.shape), [[2, 16, 16], [2, 16, 16], [2, 16, 16], [2, 17, 16]])
        model.resetClassifier(numClasses: 7)
        XCTAssertEqual(withoutGrad { model.logits(x) }.shape, [2, 7])

        // local_up_to_layer ≥ depth: GPSA everywhere, the class token never joins (timm then reads token 0).
        let allLocal = try ConViT(tinyConfig(localUpToLayer: 3))
        allLocal.eval()
        XCTAssertEqual(withoutGrad { allLocal.forwardFeatures(x) }.shape, [2, 16, 16])
        XCTAssertEqual(withoutGrad { allLocal.logits(x) }.shape, [2, 5])
    }

    /// GPSA records the mixed probabilities (1−σ)·patch + σ·positional and σ(gating) per head;
    /// the MHSA block after the class token has a NaN row for it.
    func testAttentionMapsIncludeGating() throws {
        let model = try ConViT(tinyConfig())
        model.eval()
        let x = Tensor.randomNormal([2, 16, 16, 3], generator: Generator(seed: 2))
        model.recordAttention()
        _ = withoutGrad { model.logits(x) }
        let layers = model.attentionLayers()
        XCTAssertEqual(layers.map(\.key), ["blocks.0.attn", "blocks.1.attn", "blocks.2.attn"])
        for (i, (key, layer)) in layers.enumerated() {
            let map = try XCTUnwrap(layer.lastAttentionMap, key)
            let n = i < 2 ? 16 : 17
            XCTAssertEqual(map.probabilities.shape, [2, 4, n, n], key)
            for r in map.probabilities.sum(alongAxes: [3]).scalars { XCTAssertEqual(r, 1, accuracy: 1e-5) }
            XCTAssertEqual(map.queryPositions?.shape, [n, 2], key)
            XCTAssertEqual(map.keyPositions?.shape, [n, 2], key)
            let first = map.queryPositions!.scalars.prefix(2)
            XCTAssertEqual(first.allSatisfy(\.isNaN), i == 2, key)
            if i < 2 {
                let gating = try XCTUnwrap(map.extras["gating"], key)
                XCTAssertEqual(gating.shape, [4])
                for g in gating.scalars { XCTAssertEqual(g, 1 / (1 + exp(-1)), accuracy: 1e-6) }
            } else {
                XCTAssertNil(map.extras["gating"])
            }
        }

        // A gate near 1 leaves only the positional attention: the same for both images and,
        // per head, softmax over keys of pos_proj(rel_indices).
        let gpsa = try XCTUnwrap(model.blocks[0].attn as? GPSA)
        try model.update(parameters: ["blocks.0.attn.gating_param": Tensor([30, 30, 30, 30])])
        _ = withoutGrad { model.logits(x) }
        let p = try XCTUnwrap(gpsa.lastAttentionMap).probabilities
        assertClose(p.selecting(axis: 0, index: 0), p.selecting(axis: 0, index: 1), atol: 1e-6, rtol: 0, "input-independent")
        let w = gpsa.posProj.weight.selecting(axis: 0, index: 0).reshaped([1, 1, 3])
        let scores = (gpsa.relIndices * w).sum(alongAxes: [2]) + gpsa.posProj.bias!.selecting(axis: 0, index: 0)
        assertClose(p.selecting(axis: 0, index: 0).selecting(axis: 0, index: 0), scores.softmax(axis: -1), atol: 1e-5, rtol: 1e-4)
        model.recordAttention(false)
    }

    /// A checkpoint for another input size: pos_embed (patches only) is resampled to this grid;
    /// the GPSA offsets belong to the model's own grid.
    func testCheckpointFilterResamplesThePositionEmbedding() throws {
        let small = try ConViT(tinyConfig())
        var big = tinyConfig()
        big.imgSize = 32
        let model = try ConViT(big)
        let filtered = model.checkpointFilter(small.stateDict())
        XCTAssertEqual(filtered["pos_embed"]?.shape, [1, 64, 16])
        try model.loadStateDict(filtered)
        assertClose(model.stateDict()["cls_token"]!, small.stateDict()["cls_token"]!, atol: 0, rtol: 0)
        XCTAssertEqual(try XCTUnwrap(model.blocks[0].attn as? GPSA).relIndices.shape, [64, 64, 3])
    }

    func testUnsupportedConfigsThrow() {
        var c = tinyConfig()
        c.globalPool = "max"
        XCTAssertThrowsError(try ConViT(c))
        c = tinyConfig(); c.imgSize = 18
        XCTAssertThrowsError(try ConViT(c))
        c = tinyConfig(); c.hybridBackbone = .object(["$type": .string("instance"), "name": .string("resnet50")])
        XCTAssertThrowsError(try ConViT(c)) { XCTAssertTrue("\($0)".contains("hybrid_backbone")) }
        let bad: PatchworkModels.JSONValue = .object(["img_size": .number(16), "patch_size": .number(4), "embed_dim": .number(4),
                                                      "num_heads": .number(2), "depth": .number(1),
                                                      "norm_layer": .object(["$type": .string("callable"), "name": .string("torch.nn.BatchNorm1d")])])
        XCTAssertThrowsError(try Models.family("convit").build(config: bad)) { XCTAssertTrue("\($0)".contains("norm_layer")) }
    }
}
