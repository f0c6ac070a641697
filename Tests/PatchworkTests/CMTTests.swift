import Foundation
import XCTest
import Patchwork
import PatchworkNN
import PatchworkModels

/// The authors' CMT (huawei-noah/Efficient-AI-Backbones cmt_pytorch/cmt.py): variants, keys,
/// attention maps, the relative_pos checkpoint filter, configs that must fail.
final class CMTTests: XCTestCase {
    /// 32x32 images: token grids 8/4/2/1, sr 2,2,2,1 (keys on 4x4, 2x2, 1x1, 1x1 grids).
    func tinyConfig(imgSize: Int = 32, classes: Int = 5) -> CMTConfig {
        CMTConfig(imgSize: imgSize, numClasses: classes, embedDims: [8, 16, 16, 16], stemChannel: 4, fcDim: 12,
                  numHeads: [1, 2, 2, 2], mlpRatios: [2, 2, 2, 2], depths: [1, 1, 1, 1], srRatios: [2, 2, 2, 1], dp: 0)
    }

    /// The authors' cmt_ti/xs/s/b built by their code with torch (1000 classes, img_size 224, their default).
    func testVariantsHaveTheReferenceParameterCounts() throws {
        let expected = ["cmt_ti": 9_705_546, "cmt_xs": 15_379_808, "cmt_s": 26_256_160, "cmt_b": 45_511_676]
        let variants = Models.list().filter { $0.family == "cmt" && !$0.name.hasSuffix("_nano") }
        XCTAssertEqual(Set(variants.map(\.name)), Set(expected.keys))
        for v in variants {
            XCTAssertEqual(v.inputSize, 224, v.name)
            XCTAssertEqual(try v.create(numClasses: 1000).parameterCount, expected[v.name], v.name)
        }
        let nano = try Models.create("cmt_nano", numClasses: 10)
        XCTAssertTrue((200_000...2_000_000).contains(nano.parameterCount), "\(nano.parameterCount)")
    }

    /// Key set of the tiny config equals the reference's state_dict() (211 keys, 14,535 parameters
    /// when the authors' CMT is built with the same arguments).
    func testKeysAndShapesFollowTheReference() throws {
        let model = try CMT(tinyConfig())
        let dict = model.stateDict()
        XCTAssertEqual(model.parameterCount, 14_535)
        let bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
        var want: Set<String> = ["relative_pos_a", "relative_pos_b", "relative_pos_c", "relative_pos_d",
                                 "_fc.weight", "_fc.bias", "head.weight", "head.bias"]
        for p in bn { want.insert("_bn.\(p)") }
        for i in 1...3 {
            want.formUnion(["stem_conv\(i).weight", "stem_conv\(i).bias"])
            for p in bn { want.insert("stem_norm\(i).\(p)") }
        }
        for (s, sr) in zip(["a", "b", "c", "d"], [2, 2, 2, 1]) {
            want.formUnion(["weight", "bias"].flatMap { ["patch_embed_\(s).proj.\($0)", "patch_embed_\(s).norm.\($0)"] })
            let b = "blocks_\(s).0."
            for m in ["norm1", "norm2", "attn.q", "attn.k", "attn.v", "attn.proj", "mlp.conv1.0", "mlp.proj", "mlp.conv2.0", "proj"] {
                want.formUnion([b + m + ".weight", b + m + ".bias"])
            }
            for m in ["mlp.conv1.2", "mlp.proj_bn", "mlp.conv2.1"] + (sr > 1 ? ["attn.sr.1"] : []) {
                for p in bn { want.insert(b + m + "." + p) }
            }
            if sr > 1 { want.formUnion([b + "attn.sr.0.weight", b + "attn.sr.0.bias"]) }
        }
        XCTAssertEqual(Set(dict.keys), want)
        XCTAssertEqual(dict.count, 211)
        let shapes: [String: [Int]] = [
            "relative_pos_a": [1, 64, 16], "relative_pos_b": [2, 16, 4], "relative_pos_c": [2, 4, 1], "relative_pos_d": [2, 1, 1],
            "stem_conv1.weight": [4, 3, 3, 3], "patch_embed_a.proj.weight": [8, 4, 2, 2],
            "blocks_a.0.attn.sr.0.weight": [8, 1, 2, 2], "blocks_a.0.mlp.conv1.0.weight": [16, 8, 1, 1],
            "blocks_a.0.mlp.proj.weight": [16, 1, 3, 3], "blocks_a.0.proj.weight": [8, 1, 3, 3],
            "blocks_b.0.mlp.conv2.0.weight": [16, 32, 1, 1], "_fc.weight": [12, 16, 1, 1], "head.weight": [5, 12],
        ]
        for (key, shape) in shapes { XCTAssertEqual(dict[key]?.shape, shape, key) }
    }

    func testTinyModelTrainsAndOffersTheClassifierInterface() throws {
        let model = try CMT(tinyConfig())
        let x = Tensor.randomNormal([2, 32, 32, 3], generator: Generator(seed: 1))
        let grads = assertTrainStep(model, x, labels: [1, 4])
        XCTAssertGreaterThan(grads["relative_pos_a"]!.scalars.map { abs($0) }.max()!, 0)
        XCTAssertGreaterThan(grads["stem_conv1.weight"]!.scalars.map { abs($0) }.max()!, 0)

        model.eval()
        let features = withoutGrad { model.forwardFeatures(x) }
        XCTAssertEqual(features.shape, [2, 1, 1, 16])
        XCTAssertEqual(model.forwardHead(features, preLogits: true).shape, [2, 12], "pooled fc_dim features")
        let inter = withoutGrad { model.forwardIntermediates(x) }
        XCTAssertEqual(inter.map(\.name), ["stem", "blocks_a.0", "blocks_b.0", "blocks_c.0", "blocks_d.0"])
        XCTAssertEqual(inter[0].value.shape, [2, 16, 16, 4])
        XCTAssertEqual(inter[1].value.shape, [2, 8, 8, 8])
        model.resetClassifier(numClasses: 7)
        XCTAssertEqual(withoutGrad { model.logits(x) }.shape, [2, 7])
    }

    /// Probabilities [B, heads, N, N/sr²]; queries at token centres, keys at the centres of the
    /// sr×sr cells that the reducing conv covers.
    func testAttentionMapsPutReducedKeysAtTheirCellCentres() throws {
        let model = try CMT(tinyConfig())
        model.eval()
        model.recordAttention()
        let layers = model.attentionLayers()
        XCTAssertEqual(layers.map(\.key), ["blocks_a.0.attn", "blocks_b.0.attn", "blocks_c.0.attn", "blocks_d.0.attn"])
        let x = Tensor.randomNormal([2, 32, 32, 3], generator: Generator(seed: 2))
        _ = withoutGrad { model.logits(x) }
        let expected: [(heads: Int, nq: Int, nk: Int)] = [(1, 64, 16), (2, 16, 4), (2, 4, 1), (2, 1, 1)]
        for ((key, layer), e) in zip(layers, expected) {
            let map = try XCTUnwrap(layer.lastAttentionMap, key)
            XCTAssertEqual(map.probabilities.shape, [2, e.heads, e.nq, e.nk], key)
            for r in map.probabilities.sum(alongAxes: [3]).scalars { XCTAssertEqual(r, 1, accuracy: 1e-5, key) }
            XCTAssertEqual(map.queryPositions?.shape, [e.nq, 2], key)
            XCTAssertEqual(map.keyPositions?.shape, [e.nk, 2], key)
        }
        // Stage a: 8x8 tokens, sr 2 → key (i, j) covers tokens 2i, 2i+1: centre (2i + 1) / 8.
        let keys = try XCTUnwrap(layers[0].layer.lastAttentionMap?.keyPositions).scalars
        XCTAssertEqual(Array(keys[0..<4]), [0.125, 0.125, 0.125, 0.375])
        XCTAssertEqual(Array(keys[30..<32]), [0.875, 0.875])
        let queries = try XCTUnwrap(layers[0].layer.lastAttentionMap?.queryPositions).scalars
        XCTAssertEqual(Array(queries[0..<4]), [0.0625, 0.0625, 0.0625, 0.1875])
        // Stage c: 2x2 tokens reduced to one key at the image centre.
        XCTAssertEqual(try XCTUnwrap(layers[2].layer.lastAttentionMap?.keyPositions).scalars, [0.5, 0.5])
        model.recordAttention(false)
    }

    /// A 32x32 state dict loads into a 64x64 model: the relative_pos tables are resampled
    /// (query grid 8x8 → 16x16, key grid 4x4 → 8x8 at stage a) and the model runs.
    func testCheckpointFilterResamplesRelativePositionTablesForAnotherSize() throws {
        let small = try CMT(tinyConfig(imgSize: 32))
        let big = try CMT(tinyConfig(imgSize: 64))
        let filtered = big.checkpointFilter(small.stateDict())
        XCTAssertEqual(filtered["relative_pos_a"]?.shape, [1, 256, 64])
        XCTAssertEqual(filtered["relative_pos_b"]?.shape, [2, 64, 16])
        XCTAssertEqual(filtered["relative_pos_c"]?.shape, [2, 16, 4])
        XCTAssertEqual(filtered["relative_pos_d"]?.shape, [2, 4, 4])
        try big.loadStateDict(filtered)
        assertClose(big.stateDict()["stem_conv1.weight"]!, small.stateDict()["stem_conv1.weight"]!, atol: 0, rtol: 0)
        big.eval()
        let logits = withoutGrad { big.logits(Tensor.randomNormal([2, 64, 64, 3], generator: Generator(seed: 3))) }
        XCTAssertEqual(logits.shape, [2, 5])
        XCTAssertTrue(logits.scalars.allSatisfy(\.isFinite))
        // Without the filter the sizes do not fit.
        XCTAssertThrowsError(try big.loadStateDict(small.stateDict()))
        // A same-size checkpoint passes through unchanged.
        let same = small.checkpointFilter(small.stateDict())
        assertClose(same["relative_pos_a"]!, small.relativePosA, atol: 0, rtol: 0)
    }

    /// The resampling equals torch: queries [4x4] → [8x8] then keys [2x2] → [4x4], each
    /// F.interpolate(bicubic, align_corners=False, antialias=True); and back down.
    func testRelativePositionResamplingMatchesTorch() throws {
        let table = Tensor((0..<64).map { Float(sin(0.37 * Double($0))) }, shape: [1, 16, 4])
        let up = try XCTUnwrap(CMT.resampleRelativePosition(table, queryGrid: (8, 8), keyGrid: (4, 4)))
        XCTAssertEqual(up.shape, [1, 64, 16])
        let u = up.scalars
        XCTAssertEqual(u.reduce(0, +), 39.6514054, accuracy: 1e-3)
        for (got, want) in zip(Array(u[0..<4]), [-0.15675019, -0.03565991, 0.20445368, 0.32554396] as [Float]) {
            XCTAssertEqual(got, want, accuracy: 1e-5)
        }
        XCTAssertEqual(u[37 * 16 + 5], 0.23051033, accuracy: 1e-5)
        XCTAssertEqual(u[63 * 16 + 15], -1.11779511, accuracy: 1e-5)
        let down = try XCTUnwrap(CMT.resampleRelativePosition(up, queryGrid: (4, 4), keyGrid: (2, 2)))
        XCTAssertEqual(down.scalars.reduce(0, +), 3.04670501, accuracy: 1e-4)
        for (got, want) in zip(Array(down.scalars[20..<24]), [0.77450519, 0.81315578, 0.78192754, 0.68504706] as [Float]) {
            XCTAssertEqual(got, want, accuracy: 1e-5)
        }
    }

    func testUnsupportedConfigsThrow() {
        var c = tinyConfig(); c.imgSize = 48
        XCTAssertThrowsError(try CMT(c), "img_size must be a multiple of 32")
        c = tinyConfig(); c.srRatios = [3, 2, 2, 1]
        XCTAssertThrowsError(try CMT(c), "an 8x8 grid is not divisible by sr 3")
        c = tinyConfig(); c.numHeads = [3, 2, 2, 2]
        XCTAssertThrowsError(try CMT(c))
        c = tinyConfig(); c.depths = [1, 1, 1]
        XCTAssertThrowsError(try CMT(c))
        c = tinyConfig(); c.representationSize = 32
        XCTAssertThrowsError(try CMT(c))
        c = tinyConfig(); c.hybridBackbone = .string("resnet26d")
        XCTAssertThrowsError(try CMT(c))
        c = tinyConfig(); c.inChans = 1
        XCTAssertThrowsError(try CMT(c))
        c = tinyConfig(); c.normLayer = .object(["$type": .string("callable"), "name": .string("torch.nn.BatchNorm2d")])
        XCTAssertThrowsError(try CMT(c)) { XCTAssertTrue("\($0)".contains("norm_layer")) }
        c = tinyConfig(); c.normLayer = .object(["$type": .string("partial"), "name": .string("torch.nn.LayerNorm"),
                                                 "kwargs": .object(["eps": .number(1e-5)])])
        XCTAssertNoThrow(try CMT(c))
    }
}
