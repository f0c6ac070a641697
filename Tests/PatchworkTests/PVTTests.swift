import Foundation
import XCTest
import Patchwork
import PatchworkNN
import PatchworkModels

/// PVT v1 as Hugging Face's PvtForImageClassification: variants, keys, training step,
/// attention maps with reduced keys, another input size.
final class PVTTests: XCTestCase {
    /// Two stages on 32x32: 8x8 tokens with sr 2 (4x4 keys), then 4x4 tokens + class token.
    func tinyConfig(imageSize: Int = 32, classes: Int = 3) -> PvtConfig {
        PvtConfig(imageSize: imageSize, depths: [1, 2], hiddenSizes: [8, 16], numAttentionHeads: [1, 2],
                  sequenceReductionRatios: [2, 1], mlpRatios: [2, 2], patchSizes: [4, 2], numLabels: classes)
    }

    /// transformers 5.24.0, PvtConfig with the Zetatech/pvt-*-224 hyperparameters, 1000 classes.
    func testVariantsHaveTheReferenceParameterCounts() throws {
        let expected = ["pvt_tiny": 13_229_288, "pvt_small": 24_485_864, "pvt_medium": 44_208_104, "pvt_large": 61_369_320]
        let variants = Models.list().filter { $0.family == "pvt" && !$0.name.hasSuffix("_nano") }
        XCTAssertEqual(Set(variants.map(\.name)), Set(expected.keys))
        for v in variants {
            XCTAssertEqual(v.inputSize, 224, v.name)
            XCTAssertEqual(try v.create(numClasses: 1000).parameterCount, expected[v.name], v.name)
        }
        let nano = try Models.create("pvt_nano", numClasses: 10)
        XCTAssertEqual(nano.parameterCount, 1_366_522, "PvtForImageClassification with the same config")
    }

    /// The state_dict() of PvtForImageClassification(PvtConfig(tinyConfig)), names and shapes.
    func testKeysAndShapesFollowHuggingFace() throws {
        let want: [String: [Int]] = [
        "pvt.encoder.patch_embeddings.0.position_embeddings": [1, 64, 8],
        "pvt.encoder.patch_embeddings.0.projection.weight": [8, 3, 4, 4], "pvt.encoder.patch_embeddings.0.projection.bias": [8],
        "pvt.encoder.patch_embeddings.0.layer_norm.weight": [8], "pvt.encoder.patch_embeddings.0.layer_norm.bias": [8],
        "pvt.encoder.patch_embeddings.1.position_embeddings": [1, 17, 16],
        "pvt.encoder.patch_embeddings.1.cls_token": [1, 1, 16],
        "pvt.encoder.patch_embeddings.1.projection.weight": [16, 8, 2, 2],
        "pvt.encoder.patch_embeddings.1.projection.bias": [16], "pvt.encoder.patch_embeddings.1.layer_norm.weight": [16],
        "pvt.encoder.patch_embeddings.1.layer_norm.bias": [16], "pvt.encoder.block.0.0.layer_norm_1.weight": [8],
        "pvt.encoder.block.0.0.layer_norm_1.bias": [8], "pvt.encoder.block.0.0.attention.self.query.weight": [8, 8],
        "pvt.encoder.block.0.0.attention.self.query.bias": [8], "pvt.encoder.block.0.0.attention.self.key.weight": [8, 8],
        "pvt.encoder.block.0.0.attention.self.key.bias": [8], "pvt.encoder.block.0.0.attention.self.value.weight": [8, 8],
        "pvt.encoder.block.0.0.attention.self.value.bias": [8],
        "pvt.encoder.block.0.0.attention.self.sequence_reduction.weight": [8, 8, 2, 2],
        "pvt.encoder.block.0.0.attention.self.sequence_reduction.bias": [8],
        "pvt.encoder.block.0.0.attention.self.layer_norm.weight": [8],
        "pvt.encoder.block.0.0.attention.self.layer_norm.bias": [8],
        "pvt.encoder.block.0.0.attention.output.dense.weight": [8, 8], "pvt.encoder.block.0.0.attention.output.dense.bias": [8],
        "pvt.encoder.block.0.0.layer_norm_2.weight": [8], "pvt.encoder.block.0.0.layer_norm_2.bias": [8],
        "pvt.encoder.block.0.0.mlp.dense1.weight": [16, 8], "pvt.encoder.block.0.0.mlp.dense1.bias": [16],
        "pvt.encoder.block.0.0.mlp.dense2.weight": [8, 16], "pvt.encoder.block.0.0.mlp.dense2.bias": [8],
        "pvt.encoder.block.1.0.layer_norm_1.weight": [16], "pvt.encoder.block.1.0.layer_norm_1.bias": [16],
        "pvt.encoder.block.1.0.attention.self.query.weight": [16, 16], "pvt.encoder.block.1.0.attention.self.query.bias": [16],
        "pvt.encoder.block.1.0.attention.self.key.weight": [16, 16], "pvt.encoder.block.1.0.attention.self.key.bias": [16],
        "pvt.encoder.block.1.0.attention.self.value.weight": [16, 16], "pvt.encoder.block.1.0.attention.self.value.bias": [16],
        "pvt.encoder.block.1.0.attention.output.dense.weight": [16, 16],
        "pvt.encoder.block.1.0.attention.output.dense.bias": [16], "pvt.encoder.block.1.0.layer_norm_2.weight": [16],
        "pvt.encoder.block.1.0.layer_norm_2.bias": [16], "pvt.encoder.block.1.0.mlp.dense1.weight": [32, 16],
        "pvt.encoder.block.1.0.mlp.dense1.bias": [32], "pvt.encoder.block.1.0.mlp.dense2.weight": [16, 32],
        "pvt.encoder.block.1.0.mlp.dense2.bias": [16], "pvt.encoder.block.1.1.layer_norm_1.weight": [16],
        "pvt.encoder.block.1.1.layer_norm_1.bias": [16], "pvt.encoder.block.1.1.attention.self.query.weight": [16, 16],
        "pvt.encoder.block.1.1.attention.self.query.bias": [16], "pvt.encoder.block.1.1.attention.self.key.weight": [16, 16],
        "pvt.encoder.block.1.1.attention.self.key.bias": [16], "pvt.encoder.block.1.1.attention.self.value.weight": [16, 16],
        "pvt.encoder.block.1.1.attention.self.value.bias": [16], "pvt.encoder.block.1.1.attention.output.dense.weight": [16, 16],
        "pvt.encoder.block.1.1.attention.output.dense.bias": [16], "pvt.encoder.block.1.1.layer_norm_2.weight": [16],
        "pvt.encoder.block.1.1.layer_norm_2.bias": [16], "pvt.encoder.block.1.1.mlp.dense1.weight": [32, 16],
        "pvt.encoder.block.1.1.mlp.dense1.bias": [32], "pvt.encoder.block.1.1.mlp.dense2.weight": [16, 32],
        "pvt.encoder.block.1.1.mlp.dense2.bias": [16], "pvt.encoder.layer_norm.weight": [16],
        "pvt.encoder.layer_norm.bias": [16], "classifier.weight": [3, 16], "classifier.bias": [3],
        ]
        let dict = try PVT(tinyConfig()).stateDict()
        XCTAssertEqual(Set(dict.keys), Set(want.keys))
        for (key, shape) in want { XCTAssertEqual(dict[key]?.shape, shape, key) }
        XCTAssertEqual(try PVT(tinyConfig()).parameterCount, 7179)
    }

    func testTinyModelTrainsForwardAndBackward() throws {
        let model = try PVT(tinyConfig(classes: 5))
        let x = Tensor.randomNormal([2, 32, 32, 3], generator: Generator(seed: 1))
        model.train()
        let (loss, grads) = valueAndGrad(model) { crossEntropy(logits: model.logits(x), labels: [1, 4]) }
        XCTAssertTrue(loss.item().isFinite)
        XCTAssertEqual(Set(grads.keys), Set(model.trainableParameters().map(\.0)))
        for key in ["pvt.encoder.patch_embeddings.0.projection.weight", "pvt.encoder.patch_embeddings.0.position_embeddings",
                    "pvt.encoder.patch_embeddings.1.cls_token", "pvt.encoder.block.0.0.attention.self.sequence_reduction.weight"] {
            XCTAssertGreaterThan(grads[key]!.scalars.map { abs($0) }.max()!, 0, key)
        }
        model.eval()
        let features = withoutGrad { model.forwardFeatures(x) }
        XCTAssertEqual(features.shape, [2, 17, 16], "class token + 4x4 tokens after the final LayerNorm")
        XCTAssertEqual(model.forwardHead(features, preLogits: true).shape, [2, 16])
        let inter = withoutGrad { model.forwardIntermediates(x) }
        XCTAssertEqual(inter.map(\.name), ["pvt.encoder.block.0.0", "pvt.encoder.block.1.0", "pvt.encoder.block.1.1",
                                          "pvt.encoder.layer_norm"])
        XCTAssertEqual(inter[0].value.shape, [2, 8, 8, 8])
        XCTAssertEqual(inter[2].value.shape, [2, 17, 16])
        assertClose(inter[3].value, features, atol: 1e-6, rtol: 1e-6, "intermediates end with the features")
        model.resetClassifier(numClasses: 7)
        XCTAssertEqual(withoutGrad { model.logits(x) }.shape, [2, 7])
    }

    /// Queries at their token centres (NaN for the class token); reduced keys at the
    /// centres of their sr×sr cells.
    func testAttentionMapsPlaceReducedKeysAtTheirCells() throws {
        let model = try PVT(tinyConfig())
        model.eval()
        let layers = model.attentionLayers()
        XCTAssertEqual(layers.map(\.key), ["pvt.encoder.block.0.0.attention.self", "pvt.encoder.block.1.0.attention.self",
                                          "pvt.encoder.block.1.1.attention.self"])
        model.recordAttention()
        let x = Tensor.randomNormal([2, 32, 32, 3], generator: Generator(seed: 2))
        _ = withoutGrad { model.logits(x) }
        let first = try XCTUnwrap(layers[0].layer.lastAttentionMap)
        XCTAssertEqual(first.probabilities.shape, [2, 1, 64, 16])
        XCTAssertEqual(first.queryPositions?.shape, [64, 2])
        XCTAssertEqual(first.keyPositions?.shape, [16, 2])
        let q = first.queryPositions!.scalars, k = first.keyPositions!.scalars
        XCTAssertEqual(Array(q[0..<4]), [0.0625, 0.0625, 0.0625, 0.1875])
        // Key (0, 0) averages tokens 0-1 of 8 in each direction; key (1, 3) rows 2-3, columns 6-7.
        XCTAssertEqual(Array(k[0..<2]), [0.125, 0.125])
        XCTAssertEqual(Array(k[14..<16]), [0.375, 0.875])
        for r in first.probabilities.sum(alongAxes: [3]).scalars { XCTAssertEqual(r, 1, accuracy: 1e-5) }
        let last = try XCTUnwrap(layers[2].layer.lastAttentionMap)
        XCTAssertEqual(last.probabilities.shape, [2, 2, 17, 17])
        let lq = last.queryPositions!.scalars
        XCTAssertTrue(lq[0].isNaN && lq[1].isNaN, "the class token has no place")
        XCTAssertEqual(Array(lq[2..<4]), [0.125, 0.125])
        XCTAssertEqual(last.keyPositions?.shape, [17, 2], "sr 1: keys are the tokens")
        assertClose(last.keyPositions!.sliced(axis: 0, start: 1), last.queryPositions!.sliced(axis: 0, start: 1), atol: 0, rtol: 0)
    }

    func testUnsupportedConfigsThrow() {
        var c = tinyConfig()
        c.sequenceReductionRatios = [2, 2]
        XCTAssertThrowsError(try PVT(c), "the class-token stage must not reduce") { XCTAssertTrue("\($0)".contains("sequence_reduction_ratio")) }
        c = tinyConfig(); c.numAttentionHeads = [3, 2]
        XCTAssertThrowsError(try PVT(c))
        c = tinyConfig(); c.hiddenAct = "mish"
        XCTAssertThrowsError(try PVT(c)) { XCTAssertTrue("\($0)".contains("mish")) }
        c = tinyConfig(); c.numEncoderBlocks = 3
        XCTAssertThrowsError(try PVT(c), "lists shorter than num_encoder_blocks")
        c = tinyConfig(); c.numEncoderBlocks = 1; c.sequenceReductionRatios = [1, 1]
        XCTAssertThrowsError(try PVT(c), "the final LayerNorm is sized by hidden_sizes[-1]")
        c = tinyConfig(); c.imageSize = 4
        XCTAssertThrowsError(try PVT(c), "no grid left for the second stage")
    }

    /// The fixture's JSON (a PvtConfig's keys) builds through the registry.
    func testReferenceConfigDecodes() throws {
        let json: PatchworkModels.JSONValue = .object([
            "num_labels": .number(4), "image_size": .number(32), "num_encoder_blocks": .number(2),
            "depths": .array([.number(1), .number(1)]), "hidden_sizes": .array([.number(8), .number(12)]),
            "num_attention_heads": .array([.number(2), .number(3)]), "sequence_reduction_ratios": .array([.number(4), .number(1)]),
            "patch_sizes": .array([.number(4), .number(2)]), "strides": .array([.number(4), .number(2)]),
            "mlp_ratios": .array([.number(4), .number(4)]), "hidden_act": .string("gelu"), "layer_norm_eps": .number(1e-6),
            "qkv_bias": .bool(false), "initializer_range": .number(0.02), "id2label": .null])
        let model = try Models.family("pvt").build(config: json)
        let dict = model.stateDict()
        XCTAssertEqual(dict["classifier.weight"]?.shape, [4, 12])
        XCTAssertNil(dict["pvt.encoder.block.0.0.attention.self.query.bias"], "qkv_bias false")
        XCTAssertEqual(dict["pvt.encoder.block.0.0.attention.self.sequence_reduction.weight"]?.shape, [8, 8, 4, 4])
    }

    /// A model built for 32x32 loads into one built for 64x64 through the checkpoint
    /// filter (position embeddings resampled bilinearly, the class token's entry kept) and
    /// gives finite logits.
    func testCheckpointForAnotherInputSizeLoadsAndRuns() throws {
        let small = try PVT(tinyConfig(imageSize: 32))
        let big = try PVT(tinyConfig(imageSize: 64))
        let filtered = big.checkpointFilter(small.stateDict())
        XCTAssertEqual(filtered["pvt.encoder.patch_embeddings.0.position_embeddings"]?.shape, [1, 256, 8])
        XCTAssertEqual(filtered["pvt.encoder.patch_embeddings.1.position_embeddings"]?.shape, [1, 65, 16])
        try big.loadStateDict(filtered)
        let old = small.stateDict()["pvt.encoder.patch_embeddings.1.position_embeddings"]!
        let new = big.stateDict()["pvt.encoder.patch_embeddings.1.position_embeddings"]!
        assertClose(new.sliced(axis: 1, start: 0, end: 1), old.sliced(axis: 1, start: 0, end: 1), atol: 0, rtol: 0, "class-token entry")
        big.eval()
        let logits = withoutGrad { big.logits(Tensor.randomNormal([2, 64, 64, 3], generator: Generator(seed: 3))) }
        XCTAssertEqual(logits.shape, [2, 3])
        XCTAssertTrue(logits.scalars.allSatisfy(\.isFinite))
        // The same size passes unchanged.
        let same = small.checkpointFilter(small.stateDict())
        for (key, value) in small.stateDict() { assertClose(same[key]!, value, atol: 0, rtol: 0, key) }
        // Bilinear, align_corners false (torch's F.interpolate): a 2-row ramp becomes 0, 1/4, 3/4, 1.
        let c = PvtConfig(imageSize: 16, depths: [1], hiddenSizes: [4], numAttentionHeads: [1], sequenceReductionRatios: [1],
                          mlpRatios: [1], patchSizes: [8], numLabels: 2)
        var dict = try PVT(c).stateDict()
        var ramp = [Float](repeating: 7, count: 4)
        for i in 0..<2 { for _ in 0..<2 { ramp += [Float(i), Float(i), Float(i), Float(i)] } }
        dict["pvt.encoder.patch_embeddings.0.position_embeddings"] = Tensor(ramp, shape: [1, 5, 4])
        var c2 = c; c2.imageSize = 32
        let target = try PVT(c2)
        let resampled = target.checkpointFilter(dict)["pvt.encoder.patch_embeddings.0.position_embeddings"]!
        XCTAssertEqual(resampled.shape, [1, 17, 4])
        // Channel 0 of the class token, then of each first-column token (tokens 1, 5, 9, 13).
        let values = resampled.scalars
        XCTAssertEqual([0, 4, 20, 36, 52].map { values[$0] }, [7, 0, 0.25, 0.75, 1])
    }

    /// Running at another input size without a filtered checkpoint resamples at run time.
    func testAnotherInputSizeRuns() throws {
        let model = try PVT(tinyConfig(imageSize: 32))
        model.eval()
        let logits = withoutGrad { model.logits(Tensor.randomNormal([1, 48, 48, 3], generator: Generator(seed: 4))) }
        XCTAssertTrue(logits.scalars.allSatisfy(\.isFinite))
    }
}
