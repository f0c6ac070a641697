import XCTest
import Patchwork
import PatchworkNN
import PatchworkModels
import PatchworkData

/// Smoke tests of the registry: names, reference parameter counts, and the
/// small variants running forward and backward.
final class RegistryTests: XCTestCase {
    func testVariantNamesAreUniqueAndFamiliesKnown() throws {
        let names = Models.list().map(\.name)
        XCTAssertEqual(names.count, Set(names).count)
        for v in Models.list() { XCTAssertNoThrow(try Models.family(v.family)) }
        XCTAssertThrowsError(try Models.create("resnet_5000")) { XCTAssertTrue("\($0)".contains("resnet_5000")) }
    }

    /// Every variant the reference names carries its reference arguments (timm.create_model's and the
    /// benchmark's starting point), and is built from them with the class count asked for.
    func testReferenceVariantsCarryTheirArguments() throws {
        for v in Models.list() where !v.name.hasSuffix("_nano") {
            XCTAssertNotNil(v.arguments, v.name)
        }
        for name in ["resnet18", "pvt_v2_b0", "cvt_13"] {
            let model = try Models.create(name, numClasses: 7)
            XCTAssertEqual(model.logits(Tensor.zeros([1, 64, 64, 3])).shape, [1, 7], name)
        }
    }

    func testParameterCountsEqualTheReferences() throws {
        // timm 1.0.31 with 1000 classes (timm's resnet50: 25,557,032).
        let expected: [String: Int] = [
            "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
            "vit_tiny_patch16_224": 5_717_416, "vit_small_patch16_224": 22_050_664,
        ]
        for (name, count) in expected {
            XCTAssertEqual(try Models.create(name).parameterCount, count, name)
        }
    }

    func testNanoVariantsTrainAStepAt32x32() throws {
        let nanos = Models.list().filter { $0.name.hasSuffix("_nano") }
        XCTAssertEqual(Set(nanos.map(\.family)), Set(Models.families.map(\.name)), "every family has a _nano variant")
        let x = Tensor.randomNormal([2, 32, 32, 3], generator: Generator(seed: 1))
        for v in nanos {
            let model = try v.create(numClasses: 8)
            XCTAssertEqual(v.inputSize, 32)
            XCTAssertTrue((200_000...2_000_000).contains(model.parameterCount), "\(v.name): \(model.parameterCount) parameters")
            let (loss, grads) = valueAndGrad(model) { crossEntropy(logits: model.logits(x), labels: [1, 5]) }
            XCTAssertTrue(loss.item().isFinite, v.name)
            XCTAssertEqual(grads.count, model.trainableParameters().count, v.name)
            XCTAssertTrue(grads.values.allSatisfy { $0.scalars.allSatisfy(\.isFinite) }, v.name)
            let intermediates = withoutGrad { model.forwardIntermediates(x) }
            XCTAssertGreaterThan(intermediates.count, 2, v.name)
        }
    }

    /// Every family learns: ten AdamW steps on one ShapeTex batch at 32x32 lower the
    /// training loss. The loss is measured in training mode (batch statistics, as the
    /// optimiser sees it): after ten steps, batch-norm running averages still lag far
    /// behind the weights, so an eval-mode loss would measure that lag, not learning.
    func testNanoVariantsLowerTheLossOnShapeTex() throws {
        let data = try ShapeTex(split: .train, count: 16, size: 32, seed: 11)
        let samples = try (0..<data.count).map { try data.sample($0) }
        let x = stack(samples.map { ($0.image - 0.5) * 4 }, axis: 0)
        let labels = samples.map(\.label)
        for v in Models.list() where v.name.hasSuffix("_nano") {
            Generator.global.reseed(3)
            let model = try v.create(numClasses: data.classNames.count)
            model.train()
            func trainingLoss() -> Float { withoutGrad { crossEntropy(logits: model.logits(x), labels: labels) }.item() }
            let before = trainingLoss()
            let optimizer = AdamW(learningRate: 1e-3, weightDecay: 0)
            for _ in 0..<10 {
                let (_, grads) = valueAndGrad(model) { crossEntropy(logits: model.logits(x), labels: labels) }
                optimizer.step(model, gradients: grads)
            }
            let after = trainingLoss()
            XCTAssertLessThan(after, 0.8 * before, "\(v.name): loss \(before) → \(after) after 10 steps")
        }
    }
}
