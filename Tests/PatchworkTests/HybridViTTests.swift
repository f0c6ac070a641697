import Foundation
import XCTest
import Patchwork
import PatchworkNN
import PatchworkModels

/// The vit_hybrid family (ResNetV2 backbone + HybridEmbed + ViT). Its parity
/// case (Fixtures/parity/vit_hybrid-a) runs in ParityTests; these check the
/// named variants, a forward/backward on a tiny config and the TF "SAME"
/// padding by hand.
final class HybridViTTests: XCTestCase {
    /// The models' JSON value (the test target has its own `JSONValue` for op cases).
    typealias Config = PatchworkModels.JSONValue

    /// Parameter counts of timm 1.0.31 with 1000 classes,
    /// `sum(p.numel() for p in timm.create_model(name, num_classes=1000).parameters())`.
    /// (timm's default vit_base_r50_s16_224 is its in21k checkpoint without a head: 97,890,112.)
    static let referenceCounts: [(String, Int, (Int, Int))] = [
        ("vit_small_r26_s32_224", 36_431_912, (7, 7)),
        ("vit_small_r26_s32_384", 36_468_392, (12, 12)),
        ("vit_base_r26_s32_224", 101_383_976, (7, 7)),
        ("vit_base_r50_s16_224", 98_659_112, (14, 14)),
        ("vit_base_r50_s16_384", 98_950_952, (24, 24)),
    ]

    func testVariantsHaveTheReferenceParameterCounts() throws {
        for (name, count, grid) in Self.referenceCounts {
            let model = try XCTUnwrap(try Models.create(name, numClasses: 1000) as? VisionTransformer, name)
            XCTAssertEqual(model.parameterCount, count, name)
            XCTAssertEqual(model.grid.0, grid.0, name)
            XCTAssertEqual(model.grid.1, grid.1, name)
        }
        let names = Set(Models.list().filter { $0.family == "vit_hybrid" }.map(\.name))
        XCTAssertTrue(names.isSuperset(of: ["vit_base_r50_s16_224", "vit_small_r26_s32_224"]))
    }

    func testR50KeysAreTimms() throws {
        let keys = Set(try Models.create("vit_base_r50_s16_224").stateDict().keys)
        for key in ["patch_embed.backbone.stem.conv.weight", "patch_embed.backbone.stem.norm.weight",
                    "patch_embed.backbone.stages.0.blocks.0.downsample.conv.weight",
                    "patch_embed.backbone.stages.0.blocks.0.downsample.norm.bias",
                    "patch_embed.backbone.stages.2.blocks.8.conv3.weight", "patch_embed.backbone.stages.2.blocks.8.norm3.bias",
                    "patch_embed.proj.weight", "patch_embed.proj.bias", "cls_token", "pos_embed",
                    "blocks.11.attn.qkv.weight", "norm.weight", "head.bias"] {
            XCTAssertTrue(keys.contains(key), key)
        }
        XCTAssertFalse(keys.contains { $0.hasPrefix("patch_embed.backbone.stages.3") }, "R50 of the hybrid has three stages")
        XCTAssertFalse(keys.contains { $0.contains("stages.0.blocks.1.downsample") }, "only a stage's first block projects")
        XCTAssertFalse(keys.contains { $0.hasPrefix("patch_embed.backbone.head") || $0.hasPrefix("patch_embed.backbone.norm") })
        XCTAssertEqual(keys.count, 3 + (3 + 4 + 9) * 9 + 3 * 3 + 2 + 2 + 12 * 12 + 2 + 2)  // = timm's 308 state_dict keys
    }

    /// A tiny hybrid in the fixture's format: ResNetV2 (8 groups so the widths stay small) + 2 blocks.
    static func tinyConfig(stemType: String = "same", conv: String = "StdConv2dSame", img: Int = 32) -> Config {
        let backbone: Config = .object([
            "$type": .string("instance"), "name": .string("timm.models.resnetv2.ResNetV2"),
            "kwargs": .object([
                "layers": .array([.number(1), .number(2)]), "channels": .array([.number(32), .number(64)]),
                "stem_chs": .number(16), "num_classes": .number(0), "global_pool": .string(""), "preact": .bool(false),
                "stem_type": .string(stemType),
                "conv_layer": .object(["$type": .string("partial"), "name": .string("timm.layers.std_conv.\(conv)"),
                                       "kwargs": .object(["eps": .number(1e-8)])]),
                "norm_layer": .object(["$type": .string("partial"), "name": .string("timm.layers.norm_act.GroupNormAct"),
                                       "kwargs": .object(["num_groups": .number(8)])]),
            ]),
        ])
        return .object([
            "img_size": .number(Double(img)), "patch_size": .number(1), "num_classes": .number(5), "embed_dim": .number(24),
            "depth": .number(2), "num_heads": .number(2),
            "embed_layer": .object(["$type": .string("partial"), "name": .string("timm.layers.hybrid_embed.HybridEmbed"),
                                    "kwargs": .object(["backbone": backbone])]),
        ])
    }

    func testTinyHybridForwardAndBackward() throws {
        let model = try Models.family("vit_hybrid").build(config: Self.tinyConfig())
        let x = Tensor.randomNormal([2, 32, 32, 3], generator: Generator(seed: 3))
        let (loss, grads) = valueAndGrad(model) { crossEntropy(logits: model.logits(x), labels: [1, 4]) }
        XCTAssertTrue(loss.item().isFinite)
        let slots = Dictionary(uniqueKeysWithValues: model.namedSlots().map { ($0.0, $0.1.value) })
        XCTAssertEqual(Set(grads.keys), Set(model.trainableParameters().map(\.0)))
        for (key, g) in grads {
            XCTAssertEqual(g.shape, slots[key]!.shape, key)
            XCTAssertTrue(g.scalars.allSatisfy(\.isFinite), key)
        }
        // 32 → stem conv 16 → pool 8 → stage 2 at stride 2: 4x4 tokens + cls.
        XCTAssertEqual(model.forwardFeatures(x).shape, [2, 17, 24])
        XCTAssertEqual(model.logits(x).shape, [2, 5])
        for key in ["patch_embed.backbone.stem.conv.weight", "patch_embed.backbone.stages.1.blocks.1.conv2.weight",
                    "patch_embed.proj.weight", "patch_embed.backbone.stages.0.blocks.0.downsample.norm.weight"] {
            XCTAssertGreaterThan(grads[key]!.scalars.map(abs).max()!, 0, "\(key) gets a gradient")
        }
    }

    /// The grid is computed without a forward pass; it must match the real feature map for every stem and input size.
    func testFeatureSizeMatchesTheForwardPass() throws {
        for (stem, conv) in [("same", "StdConv2dSame"), ("", "StdConv2d"), ("fixed", "StdConv2d"), ("deep_same", "StdConv2dSame")] {
            for size in [23, 30, 33] {
                let kwargs = Self.tinyConfig(stemType: stem, conv: conv)["embed_layer"]!["kwargs"]!["backbone"]!["kwargs"]!
                let net = try ResNetV2(kwargs.decode(ResNetV2Config.self))
                let y = withoutGrad { net.forwardFeatures(Tensor.zeros([1, size, size, 3])) }
                let predicted = net.featureSize(for: (size, size))
                XCTAssertEqual([y.shape[1], y.shape[2]], [predicted.0, predicted.1], "stem \"\(stem)\", input \(size)")
            }
        }
    }

    func testSamePaddingIsAsymmetricAtStride2() {
        func pad(_ n: Int, _ k: Int, _ s: Int) -> [Int] {
            let p = StdConv2d.samePadding(inputSize: n, kernel: k, stride: s)
            return [p.before, p.after]
        }
        XCTAssertEqual(pad(32, 7, 2), [2, 3])  // stem conv on an even input: (15·2 + 7 − 32) = 5
        XCTAssertEqual(pad(33, 7, 2), [3, 3])  // odd input: 16·2 + 7 − 33 = 6
        XCTAssertEqual(pad(16, 3, 2), [0, 1])  // stem pool / 3x3 stride-2 conv on even input
        XCTAssertEqual(pad(15, 3, 2), [1, 1])
        XCTAssertEqual(pad(8, 1, 2), [0, 0])   // 1x1 projection shortcut
        XCTAssertEqual(pad(9, 3, 1), [1, 1])   // stride 1: the static symmetric padding
    }

    /// A 3x3 stride-2 StdConv2dSame on ones, with a weight whose standardised
    /// form is known: 1 at the centre, 0 elsewhere → mean 1/9, variance 8/81,
    /// so ŵ = −1/√8 off-centre and 8/√8 at the centre (summing to 0). A window
    /// fully inside a ones input gives 0; one that overhangs gives the sum of
    /// the weights it leaves inside.
    func testStdConv2dSameByHand() {
        let conv = StdConv2d(1, 1, kernelSize: 3, stride: 2, eps: 1e-8, same: true)
        conv.weight = Tensor([0, 0, 0, 0, 1, 0, 0, 0, 0], shape: [1, 3, 3, 1])
        let r = 1 / Float(8).squareRoot()
        XCTAssertEqual(conv.standardizedWeight.scalars, [-r, -r, -r, -r, 8 * r, -r, -r, -r, -r], accuracy: 1e-5)

        // Even 4x4: padding (0, 1) → windows start at rows/cols 0 and 2; the second overhangs the bottom/right.
        let even = conv(Tensor.ones([1, 4, 4, 1]))
        XCTAssertEqual(even.shape, [1, 2, 2, 1])
        XCTAssertEqual(even.scalars, [0, 3 * r, 3 * r, 5 * r], accuracy: 1e-5)
        // Symmetric padding 1 (PyTorch's padding=1) would have given [5r, 3r, 3r, 0]: the asymmetry matters.

        // Odd 5x5: padding (1, 1) → 3x3 output, border windows overhang on their own side.
        let odd = conv(Tensor.ones([1, 5, 5, 1]))
        XCTAssertEqual(odd.shape, [1, 3, 3, 1])
        XCTAssertEqual(odd.scalars, [5 * r, 3 * r, 5 * r, 3 * r, 0, 3 * r, 5 * r, 3 * r, 5 * r], accuracy: 1e-5)
    }

    /// MaxPool2dSame pads with −∞ (not 0) and only after on an even input.
    func testMaxPool2dSamePadsWithMinusInfinity() {
        let x = Tensor((0..<16).map { -Float($0) - 1 }, shape: [1, 4, 4, 1])  // −1 … −16, row-major
        let y = MaxPool2dSame(kernel: 3, stride: 2)(x)
        XCTAssertEqual(y.shape, [1, 2, 2, 1])
        XCTAssertEqual(y.scalars, [-1, -3, -9, -11])
    }

    /// The weight standardisation is differentiable: ⟨∇w L, v⟩ matches a central difference.
    func testStandardisationGradientMatchesFiniteDifferences() {
        let gen = Generator(seed: 11)
        let conv = StdConv2d(3, 4, kernelSize: 3, stride: 2, eps: 1e-8, same: true, generator: gen)
        let x = Tensor.randomNormal([2, 6, 5, 3], generator: gen)
        let r = Tensor.randomNormal([2, 3, 3, 4], generator: gen)
        let v = Tensor.randomNormal(conv.weight.shape, std: 0.1, generator: gen)
        func loss() -> Tensor { (conv(x) * r).sum() }
        let (_, grads) = valueAndGrad(conv, loss)
        let analytic = (grads["weight"]! * v).sum().item()
        let w0 = conv.weight
        let h: Float = 1e-2
        conv.weight = w0 + v * h
        let plus = withoutGrad { loss() }.item()
        conv.weight = w0 - v * h
        let minus = withoutGrad { loss() }.item()
        conv.weight = w0
        let numeric = (plus - minus) / (2 * h)
        XCTAssertGreaterThan(abs(numeric), 1e-2, "the direction must change the loss for the check to mean anything")
        XCTAssertEqual(analytic, numeric, accuracy: 2e-2 * max(1, abs(numeric)))
    }
}

private func XCTAssertEqual(_ a: [Float], _ b: [Float], accuracy: Float, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, file: file, line: line)
    for (i, (x, y)) in zip(a, b).enumerated() where !(abs(x - y) <= accuracy) {
        XCTFail("element \(i): \(x) vs \(y) (accuracy \(accuracy))", file: file, line: line)
    }
}
