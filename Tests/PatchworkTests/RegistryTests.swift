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

    /// A timm entrypoint and the registered variant of the same name build the same model.
    func testTimmEntrypointsBuildTheRegisteredVariants() throws {
        var compared = 0
        for entry in Models.timmEntrypoints {
            XCTAssertNoThrow(try Models.family(entry.family), entry.name)
            guard let variant = Models.list().first(where: { $0.name == entry.name }) else { continue }
            XCTAssertEqual(variant.family, entry.family, entry.name)
            let fromArguments = try Models.family(entry.family).build(config: .object(entry.arguments))
            let registered = try variant.create(numClasses: 1000)
            let a = fromArguments.stateDict().mapValues(\.shape), b = registered.stateDict().mapValues(\.shape)
            XCTAssertEqual(Set(a.keys), Set(b.keys), entry.name)
            XCTAssertEqual(a, b, entry.name)
            XCTAssertEqual(fromArguments.parameterCount, registered.parameterCount, entry.name)
            compared += 1
        }
        XCTAssertEqual(compared, Models.timmEntrypoints.count - 2, "all but coatnet_nano_rw_224 and maxvit_nano_rw_256 are registered variants")
        XCTAssertThrowsError(try Models.timmEntrypoint("vit_huge_patch14_224")) { XCTAssertTrue("\($0)".contains("is not listed"), "\($0)") }
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
