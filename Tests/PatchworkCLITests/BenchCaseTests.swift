import Foundation
import XCTest
import Patchwork
import PatchworkNN
import PatchworkModels
import PatchworkCLI

/// The benchmark suite's cases build the reference's architecture: every case's
/// model has the reference's parameter count, and a case runs a train step.
final class BenchCaseTests: XCTestCase {
    static let suitePath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("bench/cases.json").path

    func testEveryCaseBuildsWithTheReferenceParameterCount() throws {
        let cases = try BenchCase.load(Self.suitePath)
        XCTAssertEqual(cases.count, 27, "the suite's 12 small and 15 imagenet cases")
        for c in cases {
            // model() itself refuses a count that differs from the reference's; check it here too.
            let model = try c.model()
            XCTAssertEqual(model.parameterCount, c.params, c.name)
        }
    }

    func testASmallCaseTrainsAndInfersAtItsInputShape() throws {
        let c = try XCTUnwrap(try BenchCase.load(Self.suitePath).first { $0.name == "levit-s" })
        let model = try c.model()
        let x = Tensor.randomNormal([2, c.inputShape[1], c.inputShape[2], c.inputShape[0]], generator: Generator(seed: 1))
        model.eval()
        XCTAssertEqual(withoutGrad { model.logits(x) }.shape, [2, c.numClasses])
        model.train()
        let (loss, grads) = valueAndGrad(model) { crossEntropy(logits: model.logits(x), labels: [0, 1]) }
        XCTAssertTrue(loss.item().isFinite)
        XCTAssertEqual(grads.count, model.parameters().count)
    }

    func testTranslationsOfTheReferenceArguments() throws {
        func benchCase(_ family: String, _ reference: String) throws -> BenchCase {
            let json = #"{"name": "t", "group": "small", "family": "\#(family)", "reference": \#(reference), "input_shape": [3, 32, 32], "batch": 2, "num_classes": 10, "modes": ["infer"]}"#
            return try JSONDecoder().decode(BenchCase.self, from: Data(json.utf8))
        }
        // timm.create_model merges the overrides into the registered arguments.
        let vit = try benchCase("vit", #"{"callable": "timm.create_model", "args": ["vit_tiny_patch16_224"], "kwargs": {"pretrained": false, "patch_size": 4, "img_size": 32}}"#)
        let config = try vit.familyConfig()
        XCTAssertEqual(config["patch_size"]?.int, 4)
        XCTAssertEqual(config["embed_dim"]?.int, 192)
        XCTAssertNil(config["pretrained"])
        // MaxxVit: transformer_* overrides go into the transformer config, others into the cfg.
        let maxvit = try benchCase("maxvit", #"{"callable": "timm.create_model", "args": ["maxvit_nano_rw_256"], "kwargs": {"img_size": 32, "depths": [1, 1, 1], "embed_dim": [16, 32, 64], "transformer_partition_ratio": 16}}"#)
        let cfg = try maxvit.familyConfig()["cfg"]
        XCTAssertEqual(cfg?["transformer_cfg"]?["partition_ratio"]?.int, 16)
        XCTAssertEqual(cfg?["transformer_cfg"]?["expand_first"]?.bool, false, "the registered value stays")
        XCTAssertEqual(cfg?["depths"]?.array?.count, 3)
        XCTAssertEqual(try maxvit.familyConfig()["img_size"]?.int, 32)

        // Clear errors: an unregistered model, Patchwork's own variant, a family mismatch, an unsupported post_init.
        let unknown = try benchCase("vit", #"{"callable": "timm.create_model", "args": ["vit_huge_patch14_224"]}"#)
        XCTAssertThrowsError(try unknown.model()) { XCTAssertTrue("\($0)".contains("unknown model \"vit_huge_patch14_224\""), "\($0)") }
        let own = try benchCase("vit", #"{"callable": "timm.create_model", "args": ["vit_nano"]}"#)
        XCTAssertThrowsError(try own.model()) { XCTAssertTrue("\($0)".contains("vit_nano is Patchwork's own variant"), "\($0)") }
        let mismatch = try benchCase("swin", #"{"callable": "timm.create_model", "args": ["vit_tiny_patch16_224"]}"#)
        XCTAssertThrowsError(try mismatch.model()) { XCTAssertTrue("\($0)".contains("is a vit model"), "\($0)") }
        let postInit = try benchCase("resnet", #"{"callable": "timm.models.resnet.ResNet", "kwargs": {"block": {"ref": "timm.models.resnet.BasicBlock"}, "layers": [1, 1, 1, 1]}, "post_init": [{"replace": "fc", "with": {"callable": "torch.nn.Identity"}}]}"#)
        XCTAssertThrowsError(try postInit.model()) { XCTAssertTrue("\($0)".contains("replacing fc is not supported"), "\($0)") }
    }
}
