import Foundation
import XCTest
import Patchwork
import PatchworkNN
import PatchworkModels

/// Hugging Face's CvT (CvtForImageClassification): variants, keys, the reference's
/// quirks (scale, drop-path indexing, class-token path), attention maps, bad configs.
final class CvTTests: XCTestCase {
    /// Two stages: 16x16 input → 4x4 tokens (no class token) → 2x2 tokens + class token.
    func tinyConfig(classes: Int = 5) -> CvTConfig {
        var c = CvTConfig(numLabels: classes, embedDim: [8, 16], numHeads: [1, 2], depth: [1, 2])
        c.patchSizes = [7, 3]; c.patchStride = [4, 2]; c.patchPadding = [2, 1]
        c.mlpRatio = [4, 2]; c.attentionDropRate = [0, 0]; c.dropRate = [0, 0]; c.dropPathRate = [0, 0]
        c.qkvBias = [true, false]; c.clsToken = [false, true]; c.qkvProjectionMethod = ["dw_bn", "dw_bn"]
        c.kernelQkv = [3, 3]; c.paddingKv = [1, 1]; c.strideKv = [2, 2]; c.paddingQ = [1, 1]; c.strideQ = [1, 1]
        return c
    }

    /// transformers 5.24.0 CvtForImageClassification, random init, 1000 labels, with the
    /// microsoft/cvt-13, cvt-21 and cvt-w24-384 configs.
    func testVariantsHaveTheReferenceParameterCounts() throws {
        let expected = ["cvt_13": 19_997_480, "cvt_21": 31_622_696, "cvt_w24": 277_196_392]
        let sizes = ["cvt_13": 224, "cvt_21": 224, "cvt_w24": 384]
        let variants = Models.list().filter { $0.family == "cvt" && !$0.name.hasSuffix("_nano") }
        XCTAssertEqual(Set(variants.map(\.name)), Set(expected.keys))
        for v in variants {
            XCTAssertEqual(v.inputSize, sizes[v.name], v.name)
            XCTAssertEqual(try v.create(numClasses: 1000).parameterCount, expected[v.name], v.name)
        }
        // The nano, checked against CvtForImageClassification with its config (10 labels).
        XCTAssertEqual(try Models.create("cvt_nano", numClasses: 10).parameterCount, 820_810)
    }

    /// Keys and shapes of the tiny config equal CvtForImageClassification's state_dict()
    /// (109 tensors, 9077 parameters in transformers 5.24.0).
    func testKeysAndShapesFollowHuggingFace() throws {
        let model = try CvT(tinyConfig())
        let dict = model.stateDict()
        XCTAssertEqual(model.parameterCount, 9077)
        var want: Set<String> = ["layernorm.weight", "layernorm.bias", "classifier.weight", "classifier.bias",
                                 "cvt.encoder.stages.1.cls_token"]
        for (s, depth) in [(0, 1), (1, 2)] {
            let stage = "cvt.encoder.stages.\(s)."
            for p in ["projection.weight", "projection.bias", "normalization.weight", "normalization.bias"] {
                want.insert(stage + "embedding.convolution_embeddings." + p)
            }
            for l in 0..<depth {
                let layer = stage + "layers.\(l)."
                for which in ["query", "key", "value"] {
                    let conv = layer + "attention.attention.convolution_projection_\(which).convolution_projection."
                    want.insert(conv + "convolution.weight")
                    for p in ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"] { want.insert(conv + "normalization." + p) }
                    want.insert(layer + "attention.attention.projection_\(which).weight")
                    if s == 0 { want.insert(layer + "attention.attention.projection_\(which).bias") }   // qkv_bias [true, false]
                }
                for p in ["attention.output.dense", "intermediate.dense", "output.dense", "layernorm_before", "layernorm_after"] {
                    want.insert(layer + p + ".weight"); want.insert(layer + p + ".bias")
                }
            }
        }
        XCTAssertEqual(dict.count, 109)
        XCTAssertEqual(Set(dict.keys), want)
        let l = "cvt.encoder.stages.1.layers.0."
        XCTAssertEqual(dict["cvt.encoder.stages.1.cls_token"]?.shape, [1, 1, 16])
        XCTAssertEqual(dict["cvt.encoder.stages.0.embedding.convolution_embeddings.projection.weight"]?.shape, [8, 3, 7, 7])
        XCTAssertEqual(dict[l + "attention.attention.convolution_projection_key.convolution_projection.convolution.weight"]?.shape, [16, 1, 3, 3])
        XCTAssertEqual(dict[l + "attention.attention.projection_value.weight"]?.shape, [16, 16])
        XCTAssertEqual(dict[l + "intermediate.dense.weight"]?.shape, [32, 16])
        XCTAssertEqual(dict["classifier.weight"]?.shape, [5, 16])
        // The fixture's config decodes straight into CvTConfig (layer_norm_eps is read and ignored).
        let json = try JSONDecoder().decode(PatchworkModels.JSONValue.self, from: Data(#"""
            {"num_labels": 3, "embed_dim": [8, 16], "num_heads": [1, 2], "depth": [1, 2], "patch_sizes": [7, 3],
             "patch_stride": [4, 2], "patch_padding": [2, 1], "mlp_ratio": [4.0, 2.0], "qkv_bias": [true, false],
             "cls_token": [false, true], "layer_norm_eps": 1e-12, "id2label": {"0": "a"}}
            """#.utf8))
        let built = try Models.family("cvt").build(config: json)
        XCTAssertEqual(built.parameterCount, 9077 - 2 * 16 - 2)
    }

    func testTinyModelTrainsForwardAndBackward() throws {
        let model = try CvT(tinyConfig())
        let x = Tensor.randomNormal([2, 16, 16, 3], generator: Generator(seed: 1))
        let grads = assertTrainStep(model, x, labels: [1, 4])
        XCTAssertGreaterThan(grads["cvt.encoder.stages.0.embedding.convolution_embeddings.projection.weight"]!.scalars.map { abs($0) }.max()!, 0)
        XCTAssertGreaterThan(grads["cvt.encoder.stages.1.cls_token"]!.scalars.map { abs($0) }.max()!, 0)

        model.eval()
        let features = withoutGrad { model.forwardFeatures(x) }
        XCTAssertEqual(features.shape, [2, 5, 16], "class token + 2x2 tokens")
        XCTAssertEqual(model.forwardHead(features, preLogits: true).shape, [2, 16])
        let inter = withoutGrad { model.forwardIntermediates(x) }
        XCTAssertEqual(inter.map(\.name), ["cvt.encoder.stages.0.embedding", "cvt.encoder.stages.0.layers.0",
                                           "cvt.encoder.stages.1.embedding", "cvt.encoder.stages.1.layers.0",
                                           "cvt.encoder.stages.1.layers.1"])
        XCTAssertEqual(inter[0].value.shape, [2, 4, 4, 8])
        XCTAssertEqual(inter[1].value.shape, [2, 16, 8])
        XCTAssertEqual(inter[4].value.shape, [2, 5, 16])
        assertClose(inter[4].value, features, atol: 0, rtol: 0, "the last layer's tokens are the features")
        model.resetClassifier(numClasses: 7)
        XCTAssertEqual(withoutGrad { model.logits(x) }.shape, [2, 7])

        // Without a class token in the last stage the head normalises and averages every token.
        var c = tinyConfig(); c.clsToken = [false, false]
        let pooled = try CvT(c)
        pooled.eval()
        let map = withoutGrad { pooled.forwardFeatures(x) }
        XCTAssertEqual(map.shape, [2, 2, 2, 16])
        let manual = withoutGrad { pooled.classifier(pooled.layernorm(map.reshaped([2, 4, 16])).mean(alongAxes: [1])) }
        assertClose(withoutGrad { pooled.logits(x) }, manual, atol: 1e-6, rtol: 1e-6)
    }

    /// Scores are scaled by embed_dim^-0.5 (the stage width), not head_dim^-0.5; the class
    /// token joins q, k and v without the conv projections; keys and values are strided.
    func testAttentionFollowsTheReferenceDefinition() throws {
        let model = try CvT(tinyConfig())
        model.eval()
        let attn = model.stages[1].layers[0].attention.attention
        attn.recordsAttention = true
        let x = Tensor.randomNormal([2, 1 + 16, 16], generator: Generator(seed: 3))   // class token + 4x4 grid
        let out = withoutGrad { attn.forward(x, height: 4, width: 4) }
        XCTAssertEqual(out.shape, [2, 17, 16])
        let map = try XCTUnwrap(attn.lastAttentionMap)
        XCTAssertEqual(map.probabilities.shape, [2, 2, 17, 5], "queries: class + 4x4; keys: class + 2x2 (stride 2)")

        let (cls, grid) = (x.sliced(axis: 1, start: 0, end: 1), x.sliced(axis: 1, start: 1).reshaped([2, 4, 4, 16]))
        func project(_ p: CvTProjection, _ l: Linear) -> Tensor {
            let y = withoutGrad { p.convolutionProjection(grid) }
            return withoutGrad { l(concat([cls, y.reshaped([2, y.shape[1] * y.shape[2], 16])], axis: 1)) }
        }
        let q = project(attn.convolutionProjectionQuery, attn.projectionQuery)
        let k = project(attn.convolutionProjectionKey, attn.projectionKey)
        let v = project(attn.convolutionProjectionValue, attn.projectionValue)
        var heads: [Tensor] = []
        for h in 0..<2 {
            let qh = q.sliced(axis: 2, start: 8 * h, end: 8 * h + 8), kh = k.sliced(axis: 2, start: 8 * h, end: 8 * h + 8)
            let p = (matmul(qh, kh.transposed()) * (1 / Float(16).squareRoot())).softmax(axis: -1)
            assertClose(map.probabilities.selecting(axis: 1, index: h), p, atol: 1e-6, rtol: 1e-5, "head \(h): scale 16^-0.5")
            heads.append(matmul(p, v.sliced(axis: 2, start: 8 * h, end: 8 * h + 8)))
        }
        assertClose(out, concat(heads, axis: 2), atol: 1e-5, rtol: 1e-5)

        // Positions: the class token has none; keys sit at the centres of the stride-2 windows.
        let qp = try XCTUnwrap(map.queryPositions), kp = try XCTUnwrap(map.keyPositions)
        XCTAssertEqual(qp.shape, [17, 2]); XCTAssertEqual(kp.shape, [5, 2])
        XCTAssertTrue(qp.scalars[0].isNaN && kp.scalars[1].isNaN)
        XCTAssertEqual(Array(qp.scalars[2..<4]), [0.125, 0.125])
        XCTAssertEqual(Array(kp.scalars[2...]), [0.125, 0.125, 0.125, 0.625, 0.625, 0.125, 0.625, 0.625])
    }

    /// The last layer's query projection feeds only the patch-token queries, whose outputs are
    /// dropped before the head (it reads the class token): its gradient is exactly zero.
    func testLastQueryProjectionHasNoPathToTheClassToken() throws {
        let model = try CvT(tinyConfig())
        model.train()
        let x = Tensor.randomNormal([2, 16, 16, 3], generator: Generator(seed: 4))
        let (_, grads) = valueAndGrad(model) { crossEntropy(logits: model.logits(x), labels: [0, 2]) }
        let last = "cvt.encoder.stages.1.layers.1.attention.attention.convolution_projection_query.convolution_projection."
        for key in ["convolution.weight", "normalization.weight", "normalization.bias"] {
            XCTAssertEqual(grads[last + key]!.scalars.map { abs($0) }.max()!, 0, key)
        }
        let first = "cvt.encoder.stages.1.layers.0.attention.attention.convolution_projection_query.convolution_projection.convolution.weight"
        XCTAssertGreaterThan(grads[first]!.scalars.map { abs($0) }.max()!, 0)
    }

    /// Every layer of stage s gets linspace(0, drop_path_rate[s], depth[s])[s].
    func testDropPathRatesAreIndexedByStage() throws {
        var c = CvTConfig(numLabels: 3, embedDim: [8, 8, 16], numHeads: [1, 1, 2], depth: [1, 3, 5])
        c.dropPathRate = [0.1, 0.2, 0.3]
        let model = try CvT(c)
        XCTAssertEqual(model.stages[0].layers.map(\.dropPath.probability), [0])
        for p in model.stages[1].layers.map(\.dropPath.probability) { XCTAssertEqual(p, 0.1, accuracy: 1e-7) }
        for p in model.stages[2].layers.map(\.dropPath.probability) { XCTAssertEqual(p, 0.15, accuracy: 1e-7) }
    }

    func testUnsupportedConfigsThrow() {
        var c = tinyConfig(); c.depth = [1, 1]
        XCTAssertThrowsError(try CvT(c), "depth[1] must be > 1") { XCTAssertTrue("\($0)".contains("depth[1]")) }
        c = tinyConfig(); c.qkvProjectionMethod = ["dw_bn", "avg"]
        XCTAssertThrowsError(try CvT(c)) { XCTAssertTrue("\($0)".contains("avg")) }
        c = tinyConfig(); c.strideQ = [1, 2]
        XCTAssertThrowsError(try CvT(c))
        c = tinyConfig(); c.numHeads = [3, 2]
        XCTAssertThrowsError(try CvT(c))
        c = tinyConfig(); c.clsToken = [true, true]
        XCTAssertThrowsError(try CvT(c), "class tokens are sized by the last stage")
        c = tinyConfig(); c.kernelQkv = [3]
        XCTAssertThrowsError(try CvT(c))
    }

    /// A bare CvtModel state dict (no `cvt.` prefix) loads through the filter.
    func testCheckpointFilterAddsTheBaseModelPrefix() throws {
        let source = try CvT(tinyConfig()), model = try CvT(tinyConfig())
        var bare: [String: Tensor] = [:]
        for (k, v) in source.stateDict() { bare[k.hasPrefix("cvt.") ? String(k.dropFirst(4)) : k] = v }
        try model.loadStateDict(model.checkpointFilter(bare))
        assertClose(model.stateDict()["cvt.encoder.stages.1.cls_token"]!, source.stateDict()["cvt.encoder.stages.1.cls_token"]!, atol: 0, rtol: 0)
    }
}
