import XCTest
import Patchwork
import PatchworkNN
import PatchworkModels

/// The ViT whose attention is a depthwise convolution over the token grid (`token_mixer`
/// "depthwise_conv", variant vit_dwconv_nano): the control of the feature-frequency claim.
/// Its forward pass is checked against PyTorch in FeatureFrequencyReferenceTests (the
/// vit_dwconv fixture); here its keys, gradients and training.
final class ViTTokenMixerTests: XCTestCase {
    func smallConfig() -> ViTConfig {
        var c = ViTConfig(imgSize: 8, patchSize: 2, embedDim: 8, depth: 2, numHeads: 2, numClasses: 3)
        c.mlpRatio = 2
        c.tokenMixer = "depthwise_conv"
        c.tokenMixerKernel = 3
        c.globalPool = "avg"
        return c
    }

    func testVariantKeysAndNoAttention() throws {
        let model = try Models.create("vit_dwconv_nano", numClasses: 10)
        let keys = Set(model.stateDict().keys)
        XCTAssertTrue(keys.contains("blocks.0.mixer.conv.weight") && keys.contains("blocks.5.mixer.conv.bias"))
        XCTAssertFalse(keys.contains { $0.contains(".attn.") }, "no attention parameters")
        XCTAssertEqual(model.stateDict()["blocks.0.mixer.conv.weight"]?.shape, [128, 1, 3, 3], "depthwise: torch's [out, in/groups, kH, kW]")
        XCTAssertTrue(model.attentionLayers().isEmpty)
        let branches = model.residualBranchLayers()
        XCTAssertEqual(branches.count, 12)
        XCTAssertEqual(branches.first?.key, "blocks.0.mixer")
        XCTAssertEqual(Set(branches.map(\.recorder.kind)), ["depthwise-conv", "mlp"])
        // vit_nano less its attention (qkv, proj: 4·128² + 4·128 per block) plus 128·9 + 128 per block,
        // plus fc_norm in place of norm (same size).
        let vit = try Models.create("vit_nano", numClasses: 10).parameterCount
        XCTAssertEqual(model.parameterCount, vit - 6 * (4 * 128 * 128 + 4 * 128) + 6 * (128 * 9 + 128))
    }

    /// The mixer is a depthwise convolution of the patch tokens on their grid, and leaves the
    /// class token's branch at zero.
    func testMixerIsADepthwiseConvolutionOfTheGrid() throws {
        let mixer = DepthwiseTokenMixer(dim: 2, kernelSize: 3, grid: (2, 3), prefixTokens: 1)
        mixer.conv.weight = Tensor((0..<18).map { Float($0) / 10 }, shape: [2, 3, 3, 1])
        mixer.conv.bias = Tensor([0.5, -1], shape: [2])
        let x = Tensor((0..<(7 * 2)).map { Float($0 % 5) - 2 }, shape: [1, 7, 2])
        let y = mixer(x).scalars
        XCTAssertEqual(Array(y[0..<2]), [0, 0], "class token: zero branch")
        let xs = x.scalars, w = mixer.conv.weight.scalars
        for i in 0..<2 {
            for j in 0..<3 {
                for c in 0..<2 {
                    var s = c == 0 ? 0.5 : -1 as Float
                    for di in -1...1 {
                        for dj in -1...1 where (0..<2).contains(i + di) && (0..<3).contains(j + dj) {
                            s += w[c * 9 + (di + 1) * 3 + (dj + 1)] * xs[(1 + (i + di) * 3 + (j + dj)) * 2 + c]
                        }
                    }
                    XCTAssertEqual(y[(1 + i * 3 + j) * 2 + c], s, accuracy: 1e-5, "token (\(i), \(j)) channel \(c)")
                }
            }
        }
    }

    /// Gradients of the mixer (tokens, kernel, bias) and of the whole model (image) against
    /// central finite differences.
    func testGradientsMatchFiniteDifferences() throws {
        let mixer = DepthwiseTokenMixer(dim: 3, kernelSize: 3, grid: (3, 3), prefixTokens: 1)
        let g = Generator(seed: 5)
        let tokens = Tensor.randomNormal([2, 10, 3], generator: g)
        let weight = Tensor.randomNormal([3, 3, 3, 1], generator: g), bias = Tensor.randomNormal([3], generator: g)
        checkGradients([tokens, weight, bias], "depthwise mixer") { xs in
            mixer.conv.weight = xs[1]
            mixer.conv.bias = xs[2]
            return mixer(xs[0])
        }

        Generator.global.reseed(7)
        let model = try VisionTransformer(smallConfig())
        model.eval()
        let image = Tensor.randomNormal([1, 8, 8, 3], generator: g)
        checkGradients([image], eps: 1e-2, atol: 2e-3, rtol: 2e-2, "vit with depthwise mixers") { xs in model.logits(xs[0]) }
    }

    /// Hostile token-mixer settings are refused naming the field.
    func testConfigRefusesBadMixers() throws {
        var c = smallConfig()
        for (edit, field) in [({ (c: inout ViTConfig) in c.tokenMixer = "fourier" }, "token_mixer"),
                              ({ $0.tokenMixerKernel = 4 }, "token_mixer_kernel"),
                              ({ $0.tokenMixerKernel = -3 }, "token_mixer_kernel"),
                              ({ $0.tokenMixerKernel = 1_000_001 }, "token_mixer_kernel"),
                              ({ $0.globalPool = "token" }, "global_pool")] {
            c = smallConfig()
            edit(&c)
            XCTAssertThrowsError(try VisionTransformer(c)) { XCTAssertTrue("\($0)".contains(field), "\($0)") }
        }
        XCTAssertNoThrow(try VisionTransformer(smallConfig()))
    }
}
