import Foundation
import XCTest
import Patchwork
import PatchworkNN
import PatchworkModels

/// timm's SwinTransformer: variants, keys, window/shift rules, attention maps, another input size.
final class SwinTests: XCTestCase {
    /// 32×32 images, patch 2: stages of 16², 8², 4² tokens; window 8 clamps to 4 in the last stage.
    func tinyConfig(size: Int = 32, window: Int = 8, classes: Int = 3) -> SwinConfig {
        var c = SwinConfig(imgSize: size, patchSize: 2, embedDim: 8, depths: [2, 2, 2], numHeads: [1, 2, 2], windowSize: window,
                           numClasses: classes)
        c.dropPathRate = 0
        return c
    }

    /// timm 1.0.31's counts (1000 classes, 224×224).
    func testVariantsHaveTimmsParameterCounts() throws {
        let expected = ["swin_tiny_patch4_window7_224": 28_288_354, "swin_small_patch4_window7_224": 49_606_258,
                        "swin_base_patch4_window7_224": 87_768_224]
        let variants = Models.list().filter { $0.family == "swin" && !$0.name.hasSuffix("_nano") }
        XCTAssertEqual(Set(variants.map(\.name)), Set(expected.keys))
        for v in variants {
            XCTAssertEqual(v.inputSize, 224, v.name)
            XCTAssertEqual(try v.create(numClasses: 1000).parameterCount, expected[v.name], v.name)
        }
        let nano = try Models.create("swin_nano", numClasses: 10)
        XCTAssertEqual(nano.parameterCount, 567_046, "timm's SwinTransformer with the nano config")
        XCTAssertTrue((200_000...2_000_000).contains(nano.parameterCount))
    }

    /// The key set and shapes equal timm's state_dict (the swin-a fixture file), with no
    /// relative_position_index / attn_mask (non-persistent in timm).
    func testKeysAndShapesEqualTimms() throws {
        let (model, file) = try parityCaseModel("swin-a")
        let reference = file.names.filter { !$0.hasPrefix("fixture.") }
        let dict = model.stateDict()
        XCTAssertEqual(Set(dict.keys), Set(reference))
        for name in reference { XCTAssertEqual(dict[name]?.shape, try file.tensor(name).shape, name) }
        XCTAssertFalse(dict.keys.contains { $0.contains("relative_position_index") || $0.contains("attn_mask") })
        for key in ["patch_embed.proj.weight", "patch_embed.norm.weight", "layers.1.downsample.reduction.weight",
                    "layers.1.downsample.norm.bias", "layers.0.blocks.1.attn.relative_position_bias_table",
                    "layers.2.blocks.0.mlp.fc2.bias", "norm.weight", "head.fc.weight"] {
            XCTAssertNotNil(dict[key], key)
        }
        XCTAssertNil(dict["layers.0.downsample.reduction.weight"], "the first stage has no patch merging")
    }

    /// Blocks alternate shift 0 / window // 2; a stage whose resolution ≤ window clamps the window and does not shift.
    func testWindowsShiftsAndMasks() throws {
        let model = try SwinTransformer(tinyConfig())
        let blocks = model.layers.map { $0.blocks }
        XCTAssertTrue(blocks[0][0].window == (8, 8) && blocks[0][0].shift == (0, 0))
        XCTAssertTrue(blocks[0][1].window == (8, 8) && blocks[0][1].shift == (4, 4))
        XCTAssertTrue(blocks[1][1].window == (8, 8) && blocks[1][1].shift == (0, 0), "8² resolution ≤ window 8")
        XCTAssertTrue(blocks[2][1].window == (4, 4) && blocks[2][1].shift == (0, 0), "4² resolution clamps the window")
        XCTAssertEqual(model.stateDict()["layers.2.blocks.0.attn.relative_position_bias_table"]?.shape, [49, 2])
        XCTAssertNil(blocks[0][0].mask)
        // The mask: 0 inside a region, −100 across; windows that do not touch the border are unmasked.
        let mask = SwinWindows.shiftMask(height: 8, width: 8, window: (4, 4), shift: (2, 2))
        XCTAssertEqual(mask.shape, [4, 16, 16])
        XCTAssertTrue(mask.scalars.allSatisfy { $0 == 0 || $0 == -100 })
        XCTAssertEqual(mask.selecting(axis: 0, index: 0).scalars.filter { $0 != 0 }.count, 0)
        XCTAssertEqual(mask.selecting(axis: 0, index: 3).scalars.filter { $0 != 0 }.count, 16 * 16 - 4 * 4 * 4)
        XCTAssertEqual(SwinWindows.relativePositionIndex((2, 2)), [4, 3, 1, 0, 5, 4, 2, 1, 7, 6, 4, 3, 8, 7, 5, 4])
    }

    func testTinyModelTrainsAndHasItsHeads() throws {
        let model = try SwinTransformer(tinyConfig())
        let x = Tensor.randomNormal([2, 32, 32, 3], generator: Generator(seed: 1))
        let grads = assertTrainStep(model, x, labels: [0, 2])
        XCTAssertGreaterThan(grads["layers.0.blocks.1.attn.relative_position_bias_table"]!.scalars.map { abs($0) }.max()!, 0)
        model.eval()
        let features = withoutGrad { model.forwardFeatures(x) }
        XCTAssertEqual(features.shape, [2, 4, 4, 32])
        XCTAssertEqual(model.forwardHead(features, preLogits: true).shape, [2, 32])
        let inter = withoutGrad { model.forwardIntermediates(x) }
        XCTAssertEqual(inter.map(\.name), ["patch_embed"] + (0..<3).flatMap { i in (0..<2).map { "layers.\(i).blocks.\($0)" } })
        XCTAssertEqual(inter[0].value.shape, [2, 16, 16, 8])
        XCTAssertEqual(inter.last!.value.shape, [2, 4, 4, 32])
        model.resetClassifier(numClasses: 7)
        XCTAssertEqual(withoutGrad { model.logits(x) }.shape, [2, 7])
    }

    /// G = batch × windows; each window's tokens at their own (shifted) positions; the mask keeps
    /// tokens that wrapped around apart.
    func testAttentionMapsPerWindow() throws {
        let model = try SwinTransformer(tinyConfig(window: 4))
        model.eval()
        model.recordAttention()
        let x = Tensor.randomNormal([2, 32, 32, 3], generator: Generator(seed: 2))
        _ = withoutGrad { model.logits(x) }
        let layers = model.attentionLayers()
        XCTAssertEqual(layers.map(\.key).first, "layers.0.blocks.0.attn")
        XCTAssertEqual(layers.count, 6)
        for (key, layer) in layers {
            let map = try XCTUnwrap(layer.lastAttentionMap, key)
            let p = map.probabilities
            for r in p.sum(alongAxes: [3]).scalars { XCTAssertEqual(r, 1, accuracy: 1e-4, key) }
            let q = try XCTUnwrap(map.queryPositions)
            XCTAssertEqual(q.shape, [p.shape[0], p.shape[2], 2], key)
            // Every token of each image appears exactly once over its windows.
            let perImage = p.shape[0] / 2 * p.shape[2]
            let side = Int(Double(perImage).squareRoot())
            var seen = Set<Int>()
            let s = q.scalars
            for t in 0..<perImage {
                seen.insert(Int(s[2 * t] * Float(side)) * side + Int(s[2 * t + 1] * Float(side)))
            }
            XCTAssertEqual(seen.count, perImage, key)
        }
        // layers.0.blocks.1: 16² tokens, windows of 4 shifted by 2: 2 images × 16 windows.
        let shifted = try XCTUnwrap(model.layers[0].blocks[1].attn.lastAttentionMap)
        XCTAssertEqual(shifted.probabilities.shape, [32, 1, 16, 16])
        let pos = shifted.queryPositions!.scalars
        XCTAssertEqual(pos[0], 2.5 / 16, accuracy: 1e-6, "window 0 starts at row 2 after the roll by −2")
        // Last window of image 0: rows 14, 15, 0, 1 — pairs that wrapped around get ~0 probability.
        let last = 15, probs = shifted.probabilities.selecting(axis: 0, index: last).scalars
        for i in 0..<16 {
            for j in 0..<16 {
                let dy = abs(pos[(last * 16 + i) * 2] - pos[(last * 16 + j) * 2])
                let dx = abs(pos[(last * 16 + i) * 2 + 1] - pos[(last * 16 + j) * 2 + 1])
                if dy > 0.5 || dx > 0.5 { XCTAssertLessThan(probs[i * 16 + j], 1e-30) }
            }
        }
    }

    /// A model built for 32×32 loads into one built for 64×64 through the checkpoint filter:
    /// the clamped 4×4 window of the last stage becomes 8×8 and its table is resampled.
    func testAnotherInputSizeLoadsThroughTheFilter() throws {
        let small = try SwinTransformer(tinyConfig(size: 32))
        let large = try SwinTransformer(tinyConfig(size: 64))
        XCTAssertTrue(large.layers[2].blocks[1].window == (8, 8) && large.layers[2].blocks[1].shift == (0, 0))
        XCTAssertTrue(large.layers[1].blocks[1].shift == (4, 4))
        var dict = small.stateDict()
        dict["layers.0.blocks.1.attn.relative_position_index"] = Tensor.zeros([64 * 64])
        dict["layers.0.blocks.1.attn_mask"] = Tensor.zeros([4, 64, 64])
        let filtered = large.checkpointFilter(dict)
        XCTAssertNil(filtered["layers.0.blocks.1.attn_mask"])
        XCTAssertNil(filtered["layers.0.blocks.1.attn.relative_position_index"])
        XCTAssertEqual(filtered["layers.2.blocks.0.attn.relative_position_bias_table"]?.shape, [225, 2])
        XCTAssertThrowsError(try large.loadStateDict(small.stateDict()), "without the filter the tables do not fit")
        try large.loadStateDict(filtered)
        large.eval()
        let logits = withoutGrad { large.logits(Tensor.randomNormal([2, 64, 64, 3], generator: Generator(seed: 3))) }
        XCTAssertEqual(logits.shape, [2, 3])
        XCTAssertTrue(logits.scalars.allSatisfy(\.isFinite))
        // An unchanged table passes through untouched.
        assertClose(filtered["layers.0.blocks.0.attn.relative_position_bias_table"]!,
                    small.stateDict()["layers.0.blocks.0.attn.relative_position_bias_table"]!, atol: 0, rtol: 0)
    }

    /// Microsoft's original layout (downsample at the end of a stage, `head.`) maps onto timm's.
    func testOriginalCheckpointLayoutIsRenamed() throws {
        let model = try SwinTransformer(tinyConfig())
        var original: [String: Tensor] = [:]
        for (key, value) in model.stateDict() {
            var k = key
            if key.hasPrefix("layers.1.downsample") { k = key.replacingOccurrences(of: "layers.1.", with: "layers.0.") }
            if key.hasPrefix("layers.2.downsample") { k = key.replacingOccurrences(of: "layers.2.", with: "layers.1.") }
            if key.hasPrefix("head.fc.") { k = key.replacingOccurrences(of: "head.fc.", with: "head.") }
            original[k] = value
        }
        XCTAssertEqual(Set(model.checkpointFilter(original).keys), Set(model.stateDict().keys))
    }

    func testUnsupportedConfigsThrow() {
        func throwsMessage(_ c: SwinConfig, _ fragment: String) {
            XCTAssertThrowsError(try SwinTransformer(c)) { XCTAssertTrue("\($0)".contains(fragment), "\($0)") }
        }
        var c = tinyConfig(); c.globalPool = "max"; throwsMessage(c, "global_pool")
        c = tinyConfig(); c.numHeads = [1, 2]; throwsMessage(c, "num_heads")
        c = tinyConfig(); c.imgSize = 33; throwsMessage(c, "divisible")
        c = tinyConfig(); c.dynamicImgSize = true; throwsMessage(c, "dynamic_img_size")
        c = tinyConfig(); c.numHeads = [3, 2, 2]; throwsMessage(c, "heads")
        c = tinyConfig(); c.normLayer = try? JSONDecoder().decode(ReferenceCallable.self, from: Data(#"{"$type": "callable", "name": "timm.layers.RmsNorm"}"#.utf8))
        throwsMessage(c, "norm_layer")
    }
}
