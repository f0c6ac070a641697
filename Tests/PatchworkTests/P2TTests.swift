import Foundation
import XCTest
import Patchwork
import PatchworkNN
import PatchworkModels

/// The authors' P2T (yuhuan-wu/P2T p2t.py): variants, keys, pyramid pooling (Python rounding,
/// PyTorch's overlapping adaptive bins), attention maps, the pool-ratio option, bad configs.
final class P2TTests: XCTestCase {
    /// 32x32 images (token maps 8/4/2/1) with pool ratios that fit them.
    func tinyConfig(imgSize: Int = 32, poolRatios: [[Int]]? = [[2, 3, 4, 8], [1, 2, 3, 4], [1, 2], [1]]) -> P2TConfig {
        P2TConfig(imgSize: imgSize, numClasses: 5, embedDims: [8, 16, 16, 16], numHeads: [1, 2, 2, 2],
                  mlpRatios: [2, 2, 2, 2], depths: [1, 1, 1, 1], dropPathRate: 0, poolRatios: poolRatios)
    }

    /// p2t.py's registered models built with torch (1000 classes).
    func testVariantsHaveTheReferenceParameterCounts() throws {
        let expected = ["p2t_tiny": 11_590_840, "p2t_small": 24_079_848, "p2t_base": 36_066_408,
                        "p2t_medium": 40_861_480, "p2t_large": 54_477_096]
        let variants = Models.list().filter { $0.family == "p2t" && !$0.name.hasSuffix("_nano") }
        XCTAssertEqual(Set(variants.map(\.name)), Set(expected.keys))
        for v in variants {
            XCTAssertEqual(v.inputSize, 224, v.name)
            XCTAssertEqual(try v.create(numClasses: 1000).parameterCount, expected[v.name], v.name)
        }
    }

    /// The reference's ratios at 96x96: 122 keys and 17,933 parameters (the authors' class
    /// built with the same arguments).
    func testKeysAndShapesFollowTheReference() throws {
        let model = try P2T(tinyConfig(imgSize: 96, poolRatios: nil))
        XCTAssertEqual(model.poolRatios, P2TConfig.referencePoolRatios)
        XCTAssertEqual(model.parameterCount, 17_933)
        let dict = model.stateDict()
        var want: Set<String> = ["head.weight", "head.bias"]
        for s in 1...4 {
            for p in ["weight", "bias"] {
                want.formUnion(["patch_embed\(s).proj.\(p)", "patch_embed\(s).norm.\(p)"])
                for r in 0..<4 { want.insert("d_convs\(s).\(r).\(p)") }
                for m in ["norm1", "attn.q.0", "attn.kv.0", "attn.proj", "attn.norm", "norm2", "mlp.fc1", "mlp.conv", "mlp.fc2"] {
                    want.insert("block\(s).0.\(m).\(p)")
                }
            }
        }
        XCTAssertEqual(Set(dict.keys), want)
        XCTAssertEqual(dict.count, 122)
        let shapes: [String: [Int]] = [
            "patch_embed1.proj.weight": [8, 3, 7, 7], "patch_embed2.proj.weight": [16, 8, 3, 3],
            "d_convs1.3.weight": [8, 1, 3, 3], "block1.0.attn.kv.0.weight": [16, 8], "block2.0.attn.q.0.weight": [16, 16],
            "block1.0.mlp.fc1.weight": [16, 8, 1, 1], "block1.0.mlp.conv.weight": [16, 1, 3, 3], "head.weight": [5, 16],
        ]
        for (key, shape) in shapes { XCTAssertEqual(dict[key]?.shape, shape, key) }
        let small = try P2T(tinyConfig()).stateDict()
        XCTAssertEqual(small.keys.filter { $0.hasPrefix("d_convs") }.count, 2 * (4 + 4 + 2 + 1), "one conv per ratio")
    }

    /// Our engine's adaptive average pooling uses PyTorch's overlapping bins
    /// [⌊i·H/o⌋, ⌈(i+1)·H/o⌉): 9 → 2 averages rows 0...4 and 4...8, 3 → 2 rows 0...1 and 1...2
    /// (values from torch.nn.functional.adaptive_avg_pool2d).
    func testAdaptivePoolingBinsOverlapAsInPyTorch() {
        let nine = Tensor((0..<9).map(Float.init), shape: [1, 9, 1, 1])
        XCTAssertEqual(adaptiveAvgPool2d(nine, outputSize: (2, 1)).scalars, [2, 6])
        let three = Tensor((0..<3).map(Float.init), shape: [1, 3, 1, 1])
        XCTAssertEqual(adaptiveAvgPool2d(three, outputSize: (2, 1)).scalars, [0.5, 1.5])
    }

    /// Pooled sizes use Python's round (half to even): a 24x24 map with ratios 12/16/20/24
    /// pools to 2 (exact), 2 (1.5), 1 (1.2), 1; a 3x3 map with 1/2/3/4 to 3, 2 (1.5), 1, 1 (0.75);
    /// 2/4 = 0.5 rounds to 0, which the reference cannot run.
    func testPooledSizesRoundHalfToEven() throws {
        let model = try P2T(tinyConfig(imgSize: 96, poolRatios: nil))
        XCTAssertEqual(model.block1[0].attn.pooledSizes(height: 24, width: 24).map(\.0), [2, 2, 1, 1])
        XCTAssertEqual(model.block4[0].attn.pooledSizes(height: 3, width: 3).map(\.0), [3, 2, 1, 1])
        XCTAssertEqual(model.block4[0].attn.pooledSizes(height: 2, width: 5).map(\.0), [2, 1, 1, 0])
        XCTAssertEqual(model.block4[0].attn.pooledSizes(height: 2, width: 5).map(\.1), [5, 2, 2, 1], "round(2.5) = 2")
    }

    /// The reference's fixed ratios need inputs above 64 px; p2t_nano takes its own ratios for 32x32.
    func testPoolRatiosAreAnOptionAndTheNanoFitsThirtyTwoPixels() throws {
        XCTAssertThrowsError(try P2T(tinyConfig(imgSize: 32, poolRatios: nil))) {
            XCTAssertTrue("\($0)".contains("pool ratio"), "\($0)")
        }
        XCTAssertThrowsError(try P2T(tinyConfig(imgSize: 64, poolRatios: nil)), "round(2/4) = 0 at stage 4")
        XCTAssertNoThrow(try P2T(tinyConfig(imgSize: 96, poolRatios: nil)))
        let nano = try XCTUnwrap(Models.create("p2t_nano", numClasses: 10) as? P2T)
        XCTAssertEqual(nano.poolRatios, P2T.nanoPoolRatios)
        XCTAssertNotEqual(P2T.nanoPoolRatios, P2TConfig.referencePoolRatios, "p2t_nano's ratios are its own, not the paper's")
        XCTAssertEqual(nano.block1[0].attn.pooledSizes(height: 8, width: 8).map(\.0), [4, 3, 2, 1])
        XCTAssertTrue((200_000...2_000_000).contains(nano.parameterCount), "\(nano.parameterCount)")
        nano.eval()
        let logits = withoutGrad { nano.logits(Tensor.randomNormal([2, 32, 32, 3], generator: Generator(seed: 4))) }
        XCTAssertEqual(logits.shape, [2, 10])
        // The option decodes from a reference-style config.
        func numbers(_ xs: [Double]) -> PatchworkModels.JSONValue { .array(xs.map { .number($0) }) }
        let json: PatchworkModels.JSONValue = .object([
            "img_size": .number(32), "num_classes": .number(3), "embed_dims": numbers([8, 16, 16, 16]),
            "num_heads": numbers([1, 2, 2, 2]), "depths": numbers([1, 1, 1, 1]),
            "pool_ratios": .array([numbers([2, 4]), numbers([2]), numbers([1]), numbers([1])]),
        ])
        let built = try XCTUnwrap(Models.family("p2t").build(config: json) as? P2T)
        XCTAssertEqual(built.poolRatios, [[2, 4], [2], [1], [1]])
    }

    func testTinyModelTrainsAndOffersTheClassifierInterface() throws {
        let model = try P2T(tinyConfig())
        let x = Tensor.randomNormal([2, 32, 32, 3], generator: Generator(seed: 1))
        let grads = assertTrainStep(model, x, labels: [1, 4])
        for key in ["d_convs1.0.weight", "d_convs1.3.weight", "patch_embed1.proj.weight"] {
            XCTAssertGreaterThan(grads[key]!.scalars.map { abs($0) }.max()!, 0, key)
        }
        model.eval()
        let features = withoutGrad { model.forwardFeatures(x) }
        XCTAssertEqual(features.shape, [2, 1, 16], "stage-4 tokens, no final norm")
        XCTAssertEqual(model.forwardHead(features, preLogits: true).shape, [2, 16])
        let inter = withoutGrad { model.forwardIntermediates(x) }
        XCTAssertEqual(inter.map(\.name), ["block1.0", "block2.0", "block3.0", "block4.0"])
        XCTAssertEqual(inter[0].value.shape, [2, 64, 8])
        model.resetClassifier(numClasses: 7)
        XCTAssertEqual(withoutGrad { model.logits(x) }.shape, [2, 7])
    }

    /// Keys: every pooled cell at the centre of its adaptive bin, levels in ratio order.
    func testAttentionMapsPutPooledKeysAtTheirBinCentres() throws {
        let model = try P2T(tinyConfig())
        model.eval()
        model.recordAttention()
        let layers = model.attentionLayers()
        XCTAssertEqual(layers.map(\.key), ["block1.0.attn", "block2.0.attn", "block3.0.attn", "block4.0.attn"])
        _ = withoutGrad { model.logits(Tensor.randomNormal([2, 32, 32, 3], generator: Generator(seed: 2))) }
        // Stage 1: 8x8 tokens, ratios 2/3/4/8 → 4x4 + 3x3 (round 2.67) + 2x2 + 1x1 = 30 keys.
        let expected: [(heads: Int, nq: Int, nk: Int)] = [(1, 64, 30), (2, 16, 16 + 4 + 1 + 1), (2, 4, 5), (2, 1, 1)]
        for ((key, layer), e) in zip(layers, expected) {
            let map = try XCTUnwrap(layer.lastAttentionMap, key)
            XCTAssertEqual(map.probabilities.shape, [2, e.heads, e.nq, e.nk], key)
            for r in map.probabilities.sum(alongAxes: [3]).scalars { XCTAssertEqual(r, 1, accuracy: 1e-5, key) }
            XCTAssertEqual(map.queryPositions?.shape, [e.nq, 2], key)
            XCTAssertEqual(map.keyPositions?.shape, [e.nk, 2], key)
        }
        let keys = try XCTUnwrap(layers[0].layer.lastAttentionMap?.keyPositions).scalars
        // Level 1 (4x4 of 8): bin 0 = tokens 0..<2, centre 1/8.
        XCTAssertEqual(Array(keys[0..<4]), [0.125, 0.125, 0.125, 0.375])
        // Level 2 (3x3 of 8): bins [0,3), [2,6), [5,8) → centres 1.5, 4, 6.5 (of 8); key 16 is (0, 0).
        let level2: [Float] = [0.1875, 0.1875, 0.1875, 0.5, 0.1875, 0.8125]  // 1.5/8, 4/8, 6.5/8
        XCTAssertEqual(Array(keys[32..<38]), level2)
        // Level 4 (1x1): the image centre, last.
        XCTAssertEqual(Array(keys[58..<60]), [0.5, 0.5])
        // Stage 3: 2x2 tokens, ratios 1/2 → 4 single-token cells, then the centre.
        let stage3 = try XCTUnwrap(layers[2].layer.lastAttentionMap?.keyPositions).scalars
        XCTAssertEqual(stage3, [0.25, 0.25, 0.25, 0.75, 0.75, 0.25, 0.75, 0.75, 0.5, 0.5])
        model.recordAttention(false)
    }

    func testUnsupportedConfigsThrow() {
        var c = tinyConfig(); c.imgSize = 48
        XCTAssertThrowsError(try P2T(c), "the reference's patch embeddings assert img_size divisibility")
        c = tinyConfig(); c.numHeads = [3, 2, 2, 2]
        XCTAssertThrowsError(try P2T(c))
        c = tinyConfig(); c.depths = [1, 1, 1]
        XCTAssertThrowsError(try P2T(c))
        c = tinyConfig(); c.patchSize = 8
        XCTAssertThrowsError(try P2T(c))
        c = tinyConfig(); c.poolRatios = [[2], [], [1], [1]]
        XCTAssertThrowsError(try P2T(c))
        c = tinyConfig(); c.normLayer = .object(["$type": .string("callable"), "name": .string("torch.nn.GroupNorm")])
        XCTAssertThrowsError(try P2T(c))
    }
}
