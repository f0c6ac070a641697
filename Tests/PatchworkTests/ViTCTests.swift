import Foundation
import XCTest
import Patchwork
import PatchworkNN
import PatchworkModels

/// pycls's ViT with a conv stem (ViT_C): variants, keys, training step, attention maps.
final class ViTCTests: XCTestCase {
    /// A small conv-stem config: 16x16 images, stem strides 2·2·2·1 = patch 8, 2x2 tokens + class token.
    func tinyConfig(clsType: String = "token", stemType: String = "conv", classes: Int = 5) -> ViTCConfig {
        ViTCConfig(imageSize: 16, patchSize: 8, stemType: stemType, cStemKernels: [3, 3, 3, 1], cStemStrides: [2, 2, 2, 1],
                   cStemDims: [4, 8, 16, 16], nLayers: 2, nHeads: 2, hiddenD: 16, mlpD: 24, clsType: clsType, numClasses: classes)
    }

    /// The NOTES.md table (1000 classes, 224x224).
    func testVariantsHaveThePublishedParameterCounts() throws {
        let expected = ["vitc_1gf": 4_567_936, "vitc_4gf": 17_754_136, "vitc_18gf": 81_573_160, "vitc_36gf": 167_796_008]
        let variants = Models.list().filter { $0.family == "vitc" && !$0.name.hasSuffix("_nano") }
        XCTAssertEqual(Set(variants.map(\.name)), Set(expected.keys))
        for v in variants {
            XCTAssertEqual(v.inputSize, 224, v.name)
            let model = try v.create(numClasses: 1000)
            XCTAssertEqual(model.parameterCount, expected[v.name], v.name)
        }
    }

    func testKeysAndShapesFollowPycls() throws {
        let model = try ViTC(tinyConfig())
        let dict = model.stateDict()
        var want: Set<String> = ["class_token", "pos_embedding", "encoder.ln.weight", "encoder.ln.bias",
                                 "head.head_fc.weight", "head.head_fc.bias",
                                 "stem.cstem_last_conv.weight", "stem.cstem_last_conv.bias"]
        for i in 0..<3 {
            want.insert("stem.cstem\(i)_conv.weight")
            for p in ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"] { want.insert("stem.cstem\(i)_bn.\(p)") }
        }
        for i in 0..<2 {
            let b = "encoder.block_\(i)."
            for p in ["ln_1.weight", "ln_1.bias", "ln_2.weight", "ln_2.bias",
                      "self_attention.block.in_proj_weight", "self_attention.block.in_proj_bias",
                      "self_attention.block.out_proj.weight", "self_attention.block.out_proj.bias",
                      "mlp_block.linear_1.weight", "mlp_block.linear_1.bias", "mlp_block.linear_2.weight", "mlp_block.linear_2.bias"] {
                want.insert(b + p)
            }
        }
        XCTAssertEqual(Set(dict.keys), want)
        XCTAssertEqual(dict["pos_embedding"]?.shape, [5, 1, 16], "sequence-first (L, 1, D), as pycls")
        XCTAssertEqual(dict["class_token"]?.shape, [1, 1, 16])
        XCTAssertEqual(dict["stem.cstem0_conv.weight"]?.shape, [4, 3, 3, 3])
        XCTAssertEqual(dict["stem.cstem_last_conv.weight"]?.shape, [16, 16, 1, 1])
        XCTAssertEqual(dict["encoder.block_0.self_attention.block.in_proj_weight"]?.shape, [48, 16])

        let pooled = try ViTC(tinyConfig(clsType: "pooled", stemType: "patchify")).stateDict()
        XCTAssertNil(pooled["class_token"])
        XCTAssertEqual(pooled["pos_embedding"]?.shape, [4, 1, 16])
        XCTAssertEqual(pooled["stem.patchify.weight"]?.shape, [16, 3, 8, 8])
    }

    func testTinyModelTrainsForwardAndBackward() throws {
        for (cls, stem) in [("token", "conv"), ("pooled", "patchify")] {
            let model = try ViTC(tinyConfig(clsType: cls, stemType: stem))
            // pycls zero-initialises the head; give it values so every gradient is non-trivial.
            for (key, value) in model.parameters() where key.hasPrefix("head.") {
                try model.update(parameters: [key: Tensor.randomNormal(value.shape, std: 0.5, generator: Generator(seed: 3))])
            }
            let x = Tensor.randomNormal([2, 16, 16, 3], generator: Generator(seed: 1))
            model.train()
            let (loss, grads) = valueAndGrad(model) { crossEntropy(logits: model.logits(x), labels: [1, 4]) }
            XCTAssertTrue(loss.item().isFinite, "\(cls)/\(stem)")
            let trainable = model.trainableParameters()
            XCTAssertEqual(Set(grads.keys), Set(trainable.map(\.0)), "\(cls)/\(stem)")
            for (key, value) in trainable {
                guard let g = grads[key] else { continue }
                XCTAssertEqual(g.shape, value.shape, key)
                XCTAssertTrue(g.scalars.allSatisfy(\.isFinite), key)
            }
            // Gradients reach the stem's first conv and the position embedding.
            let firstConv = stem == "conv" ? "stem.cstem0_conv.weight" : "stem.patchify.weight"
            XCTAssertGreaterThan(grads[firstConv]!.scalars.map { abs($0) }.max()!, 0, "\(cls)/\(stem)")
            XCTAssertGreaterThan(grads["pos_embedding"]!.scalars.map { abs($0) }.max()!, 0, "\(cls)/\(stem)")

            model.eval()
            let logits = withoutGrad { model.logits(x) }
            XCTAssertEqual(logits.shape, [2, 5])
            let features = withoutGrad { model.forwardFeatures(x) }
            XCTAssertEqual(features.shape, [2, cls == "token" ? 5 : 4, 16])
            XCTAssertEqual(model.forwardHead(features, preLogits: true).shape, [2, 16])
            let inter = withoutGrad { model.forwardIntermediates(x) }
            XCTAssertEqual(inter.map(\.name), ["stem", "encoder.block_0", "encoder.block_1"])
            XCTAssertEqual(inter[0].value.shape, [2, 2, 2, 16])
            if stem == "conv" {
                // In training mode the intermediates run the stem once (one batch-norm update).
                model.train()
                let before = model.stateDict()["stem.cstem0_bn.num_batches_tracked"]!.item()
                _ = withoutGrad { model.forwardIntermediates(x) }
                XCTAssertEqual(model.stateDict()["stem.cstem0_bn.num_batches_tracked"]!.item(), before + 1)
                model.eval()
            }
            model.resetClassifier(numClasses: 7)
            XCTAssertEqual(withoutGrad { model.logits(x) }.shape, [2, 7])
        }
    }

    func testAttentionProbabilitiesHaveTheirShapeAndRowsSumToOne() throws {
        let model = try ViTC(tinyConfig())
        model.eval()
        let x = Tensor.randomNormal([2, 16, 16, 3], generator: Generator(seed: 2))
        for block in model.encoder.blocks { block.attention.recordsAttention = true }
        let (logits, maps) = withoutGrad { model.forwardWithAttention(x) }
        assertClose(logits, withoutGrad { model.logits(x) }, atol: 1e-6, rtol: 1e-6, "attention path gives the same logits")
        XCTAssertEqual(maps.count, 2)
        for (i, a) in maps.enumerated() {
            XCTAssertEqual(a.shape, [2, 2, 5, 5], "block \(i): [B, heads, L, L]")
            let rows = a.sum(alongAxes: [3]).scalars
            for r in rows { XCTAssertEqual(r, 1, accuracy: 1e-5) }
            XCTAssertTrue(a.scalars.allSatisfy { $0 >= 0 })
            let recorded = try XCTUnwrap(model.encoder.blocks[i].attention.lastAttentionMap?.probabilities)
            assertClose(recorded, a, atol: 0, rtol: 0, "recorded attention of block \(i)")
        }
    }

    /// The fused in_proj path equals torch.nn.MultiheadAttention written out with
    /// q/k/v weight slices, per head.
    func testFusedAttentionMatchesPerHeadDefinition() throws {
        let model = try ViTC(tinyConfig())
        let attn = model.encoder.blocks[0].attention
        try model.update(parameters: ["encoder.block_0.self_attention.block.in_proj_bias":
                                        Tensor.randomNormal([48], std: 0.3, generator: Generator(seed: 5))])
        let x = Tensor.randomNormal([2, 5, 16], generator: Generator(seed: 4))
        let (out, probs) = withoutGrad { attn.forward(x, returnAttention: true) }
        let w = attn.inProjWeight, b = attn.inProjBias
        let d = 16, heads = 2, hd = 8
        func proj(_ i: Int) -> Tensor {
            linear(x, weight: w.sliced(axis: 0, start: i * d, end: (i + 1) * d), bias: b.sliced(axis: 0, start: i * d, end: (i + 1) * d))
        }
        let q = proj(0), k = proj(1), v = proj(2)
        var headOutputs: [Tensor] = []
        for h in 0..<heads {
            let qh = q.sliced(axis: 2, start: h * hd, end: (h + 1) * hd) * (1 / Float(hd).squareRoot())
            let kh = k.sliced(axis: 2, start: h * hd, end: (h + 1) * hd)
            let vh = v.sliced(axis: 2, start: h * hd, end: (h + 1) * hd)
            let p = matmul(qh, kh.transposed()).softmax(axis: -1)
            assertClose(p, probs!.selecting(axis: 1, index: h), atol: 1e-6, rtol: 1e-5, "head \(h) probabilities")
            headOutputs.append(matmul(p, vh))
        }
        let expected = attn.outProj(concat(headOutputs, axis: 2))
        assertClose(out, expected, atol: 1e-5, rtol: 1e-5, "attention output")
    }

    func testUnsupportedConfigsThrow() {
        var c = tinyConfig()
        c.cStemStrides = [2, 2, 1, 1]
        XCTAssertThrowsError(try ViTC(c), "stride product must equal patch_size")
        c = tinyConfig(); c.clsType = "gap"
        XCTAssertThrowsError(try ViTC(c))
        c = tinyConfig(); c.stemType = "hybrid"
        XCTAssertThrowsError(try ViTC(c))
        c = tinyConfig(); c.cStemDims = [4, 8, 16, 12]
        XCTAssertThrowsError(try ViTC(c), "stem output must equal hidden_d")
        c = tinyConfig(); c.nHeads = 3
        XCTAssertThrowsError(try ViTC(c))
        let globals: PatchworkModels.JSONValue = .object(["image_size": .number(16), "patch_size": .number(8), "stem_type": .string("patchify"),
                                          "n_layers": .number(1), "n_heads": .number(2), "hidden_d": .number(16),
                                          "mlp_d": .number(8), "cls_type": .string("token"), "num_classes": .number(3),
                                          "cfg_globals": .object(["VIT.PATCH_SIZE": .number(16)])])
        XCTAssertThrowsError(try Models.family("vitc").build(config: globals), "pycls sizes pos_embedding from the global patch size")
    }

    /// A checkpoint for another input size has its position embedding resampled to this grid.
    func testCheckpointFilterResamplesThePositionEmbedding() throws {
        let small = try ViTC(tinyConfig())
        var big = tinyConfig()
        big.imageSize = 32
        let model = try ViTC(big)
        let filtered = model.checkpointFilter(small.stateDict())
        XCTAssertEqual(filtered["pos_embedding"]?.shape, [17, 1, 16])
        try model.loadStateDict(filtered)
        assertClose(model.stateDict()["class_token"]!, small.stateDict()["class_token"]!, atol: 0, rtol: 0)
        let pe = model.stateDict()["pos_embedding"]!, old = small.stateDict()["pos_embedding"]!
        assertClose(pe.selecting(axis: 0, index: 0), old.selecting(axis: 0, index: 0), atol: 0, rtol: 0, "class-token position kept")
    }
}
