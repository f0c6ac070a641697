import Foundation
import XCTest
import Patchwork
import PatchworkData
import PatchworkModels
import PatchworkNN
import PatchworkTrain

final class TrainingTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("patchwork-train-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// A tiny run: resnet_nano on 16x16 ShapeTex, 96 training images, batches of 32.
    func makeTrainer(_ name: String, epochs: Int = 2, configure: (inout TrainingOptions) -> Void = { _ in }) throws -> Trainer {
        let train = try ShapeTex(split: .train, count: 96, size: 16, seed: 3)
        let test = try ShapeTex(split: .test, count: 32, size: 16, seed: 3)
        Generator.global.reseed(7)
        let model = try Models.create("resnet_nano", numClasses: train.classNames.count)
        var options = TrainingOptions()
        options.epochs = epochs
        options.batchSize = 32
        options.seed = 7
        configure(&options)
        let trainer = try Trainer(model: model, modelName: "resnet_nano", dataName: "shapetex", train: train, test: test,
                                  options: options, outDirectory: dir.appendingPathComponent(name).path)
        trainer.verbose = false
        return trainer
    }

    func weights(_ trainer: Trainer) -> [String: [UInt32]] {
        trainer.model.stateDict().mapValues { $0.scalars.map(\.bitPattern) }
    }

    func testKilledAndResumedRunEndsWithTheSameWeights() throws {
        let straight = try makeTrainer("straight")
        let summary = try straight.run()
        XCTAssertEqual(summary.epochs, 2)
        XCTAssertEqual(summary.weightsSha256.count, 64)
        let expected = weights(straight)

        // Killed mid-epoch 2 (step 4 of 6): only the end-of-epoch-1 checkpoint exists.
        let killed = try makeTrainer("killed")
        killed.stopAfterSteps = 4
        try killed.run()
        let resumed = try makeTrainer("killed")
        let resumedSummary = try resumed.run(resume: true)
        XCTAssertEqual(weights(resumed), expected, "resume after a kill must reproduce the uninterrupted weights")
        XCTAssertEqual(resumedSummary.weightsSha256, summary.weightsSha256)

        // Ctrl-C mid-epoch: a checkpoint at that batch, then resume from there.
        let interrupted = try makeTrainer("interrupted")
        interrupted.interruptAfterSteps = 4
        XCTAssertThrowsError(try interrupted.run()) { XCTAssertTrue("\($0)".contains("interrupted"), "\($0)") }
        let continued = try makeTrainer("interrupted")
        try continued.run(resume: true)
        XCTAssertEqual(weights(continued), expected, "resume after Ctrl-C must reproduce the uninterrupted weights")

        // metrics.jsonl has one line per epoch; summary.json has the required fields.
        let summaryJSON = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("straight/summary.json"))) as! [String: Any]
        for key in ["model", "epochs", "train_seconds", "test_accuracy", "images_per_second", "weights_sha256", "seed"] {
            XCTAssertNotNil(summaryJSON[key], "summary.json lacks \(key)")
        }
        let lines = try String(contentsOf: dir.appendingPathComponent("straight/metrics.jsonl"), encoding: .utf8)
            .split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
    }

    func testBadResumesFailClearlyAndLeaveTheCheckpointIntact() throws {
        let first = try makeTrainer("run", epochs: 1)
        try first.run()
        let checkpoint = first.checkpointPath
        let before = try Data(contentsOf: URL(fileURLWithPath: checkpoint))

        // Another model name against the same folder.
        let train = try ShapeTex(split: .train, count: 96, size: 16, seed: 3)
        let test = try ShapeTex(split: .test, count: 32, size: 16, seed: 3)
        let other = try Trainer(model: try Models.create("vit_nano", numClasses: 8), modelName: "vit_nano", dataName: "shapetex",
                                train: train, test: test, options: TrainingOptions(),
                                outDirectory: dir.appendingPathComponent("run").path)
        other.verbose = false
        XCTAssertThrowsError(try other.run(resume: true)) { error in
            XCTAssertTrue("\(error)".contains(checkpoint), "\(error)")
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: checkpoint)), before, "a failed resume must not touch the checkpoint")

        // No checkpoint to resume from.
        let fresh = try makeTrainer("empty")
        XCTAssertThrowsError(try fresh.run(resume: true)) { XCTAssertTrue("\($0)".contains("no checkpoint"), "\($0)") }

        // A truncated checkpoint names the file.
        let cut = dir.appendingPathComponent("cut.safetensors").path
        try before.prefix(before.count / 2).write(to: URL(fileURLWithPath: cut))
        XCTAssertThrowsError(try TrainingCheckpoint.load(from: cut, model: try Models.create("resnet_nano", numClasses: 8),
                                                         optimizer: SGD(learningRate: 0.1))) { error in
            XCTAssertTrue("\(error)".contains(cut), "\(error)")
        }
    }

    /// --target-accuracy: the run stops at the first check that reaches it and says where; an unreachable
    /// target trains every epoch and says it was not reached; no validation set is an error.
    func testTargetAccuracyStopsTheRunWhereItIsReached() throws {
        // Validation on the training images themselves (all ten classes): any constant guess is right
        // on some, so a target of 1e-9 is met at the first check.
        let reachable = try makeTrainer("reachable", epochs: 3) { $0.targetAccuracy = 1e-9; $0.targetCheckSteps = 1 }
        reachable.validation = reachable.train
        let early = try reachable.run()
        XCTAssertEqual(early.target?.step, 1)
        XCTAssertEqual(early.target?.images, 32)
        XCTAssertEqual(early.imagesSeen, 32)
        XCTAssertGreaterThan(early.validationAccuracy ?? 0, 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: reachable.weightsPath))

        let unreachable = try makeTrainer("unreachable", epochs: 2) { $0.targetAccuracy = 1; $0.targetCheckSteps = 2 }
        unreachable.validation = try ShapeTex(split: .test, count: 40, size: 16, seed: 3)
        let all = try unreachable.run()
        XCTAssertNil(all.target)
        XCTAssertEqual(all.imagesSeen, 2 * 3 * 32)
        XCTAssertNotNil(all.validationAccuracy)

        let missing = try makeTrainer("missing") { $0.targetAccuracy = 0.5 }
        XCTAssertThrowsError(try missing.run()) { XCTAssertTrue("\($0)".contains("needs a validation set"), "\($0)") }
    }

    /// A dataset that records which samples were read (the loader reads on its own threads).
    final class ReadRecorder: Dataset, @unchecked Sendable {
        let base: any Dataset
        private let lock = NSLock()
        private var read = Set<Int>()
        init(_ base: any Dataset) { self.base = base }
        var count: Int { base.count }
        var classNames: [String] { base.classNames }
        var imageShape: [Int] { base.imageShape }
        var readIndices: Set<Int> { lock.withLock { read } }
        func sample(_ index: Int) throws -> (image: Tensor, label: Int) {
            lock.withLock { _ = read.insert(index) }
            return try base.sample(index)
        }
    }

    func testTargetChecksALargeValidationSetInTwoStages() throws {
        let images = 2 * Trainer.firstStageValidation
        // A target of 1 is never within three standard errors (none, at 1) of a first stage below 1:
        // every check reads the first stage only, the same random half of the set each time.
        let far = try makeTrainer("two-stage-far", epochs: 1) { $0.targetAccuracy = 1; $0.targetCheckSteps = 1 }
        let farValidation = ReadRecorder(try ShapeTex(split: .test, count: images, size: 16, seed: 5))
        far.validation = farValidation
        let farSummary = try far.run()
        XCTAssertNil(farSummary.target)
        XCTAssertEqual(farValidation.readIndices.count, Trainer.firstStageValidation)
        XCTAssertGreaterThan(farValidation.readIndices.max() ?? 0, Trainer.firstStageValidation, "a random sample, not the first images")
        XCTAssertEqual(farSummary.validationChecks?.map(\.step), [1, 2, 3])
        XCTAssertEqual(farSummary.validationChecks?.map(\.images), [500, 500, 500])

        // A first stage near the target sends the check to the whole set, which decides.
        let near = try makeTrainer("two-stage-near", epochs: 1) { $0.targetAccuracy = 1e-9; $0.targetCheckSteps = 1 }
        let nearValidation = ReadRecorder(try ShapeTex(split: .test, count: images, size: 16, seed: 5))
        near.validation = nearValidation
        let reached = try near.run()
        XCTAssertEqual(reached.target?.step, 1)
        XCTAssertEqual(nearValidation.readIndices, Set(0..<images))
        XCTAssertEqual(reached.validationChecks, [ValidationCheck(step: 1, accuracy: reached.validationAccuracy ?? -1, images: images)])
    }

    func testTargetChecksComeSoonerAsTheTargetNears() {
        func check(_ step: Int, _ accuracy: Double) -> ValidationCheck { ValidationCheck(step: step, accuracy: accuracy, images: 500) }
        // No history, or no rise over the window: the longest interval.
        XCTAssertEqual(Trainer.stepsToNextCheck(after: [], check(20, 0.3), target: 0.65, most: 20), 20)
        XCTAssertEqual(Trainer.stepsToNextCheck(after: [check(20, 0.3)], check(40, 0.3), target: 0.65, most: 20), 20)
        // Slow (0.1 point per step over 60 steps), 20 points below: the longest interval.
        XCTAssertEqual(Trainer.stepsToNextCheck(after: [check(40, 0.39), check(100, 0.4)], check(100 + 60, 0.45), target: 0.65, most: 20), 20)
        // A fast rise (0.5 point per step since step 240), 5 points below: halfway there, 5 steps.
        let rising = [check(200, 0.25), check(240, 0.3), check(280, 0.5), check(290, 0.55)]
        XCTAssertEqual(Trainer.stepsToNextCheck(after: rising, check(300, 0.60), target: 0.65, most: 20), 5)
        // The same rise with a noisy fall at the last check: the rate is read over the window, not from
        // the previous check, so the interval stays short (the previous rule gave 20).
        XCTAssertEqual(Trainer.stepsToNextCheck(after: rising + [check(300, 0.60)], check(302, 0.58), target: 0.65, most: 20), 7)
        // Right below the target: at least one step.
        XCTAssertEqual(Trainer.stepsToNextCheck(after: rising, check(300, 0.6499), target: 0.65, most: 20), 1)
    }

    func testHoldingOutSplitsTheTrainingSetInTwo() throws {
        let base = try ShapeTex(split: .train, count: 50, size: 16, seed: 3)
        let (train, validation) = try SubsetDataset.holdingOut(10, of: base, seed: 4)
        XCTAssertEqual(train.count, 40)
        XCTAssertEqual(validation.count, 10)
        XCTAssertTrue(Set(train.indices).isDisjoint(with: validation.indices))
        XCTAssertEqual(Set(train.indices + validation.indices), Set(0..<50))
        XCTAssertEqual(try SubsetDataset.holdingOut(10, of: base, seed: 4).validation.indices, validation.indices)
        XCTAssertNotEqual(try SubsetDataset.holdingOut(10, of: base, seed: 5).validation.indices, validation.indices)
        for bad in [0, 50, -1] {
            XCTAssertThrowsError(try SubsetDataset.holdingOut(bad, of: base, seed: 4)) { XCTAssertTrue("\($0)".contains("hold out \(bad) of 50"), "\($0)") }
        }
    }

    func testSHA256KnownAnswers() {
        XCTAssertEqual(SHA256.hex(Data("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(Data()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(Data(String(repeating: "a", count: 1000).utf8)),
                       "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }

    func testMetricsTopK() {
        var m = ClassificationMetrics()
        let logits = Tensor([0.1, 0.9, 0.3, 0.2, 0.0, 0.5,
                             0.8, 0.1, 0.2, 0.3, 0.4, 0.0], shape: [2, 6])
        m.add(loss: 1, logits: logits, labels: [1, 5])
        XCTAssertEqual(m.top1, 0.5)
        XCTAssertEqual(m.top5, 0.5)   // class 5 ranks last in row 2
        XCTAssertEqual(m.loss, 1)
    }
}

extension TrainingTests {
    func testWeightsForAnotherClassCountAreRejectedByName() throws {
        let trainer = try makeTrainer("classes", epochs: 1)
        try trainer.run()
        let loaded = try loadTrainedModel("resnet_nano", weights: trainer.weightsPath, classes: 10)
        let model = loaded.model
        XCTAssertEqual(loaded.fileClassNames?.count, 10)
        // The run recorded its input pipeline: Patchwork's, at the side it trained on.
        XCTAssertEqual(loaded.input, .patchwork(imageSize: 16))
        XCTAssertEqual(model.logits(Tensor.zeros([1, 16, 16, 3])).shape, [1, 10])
        XCTAssertThrowsError(try loadTrainedModel("resnet_nano", weights: trainer.weightsPath, classes: 100)) { error in
            XCTAssertTrue("\(error)".contains("100 classes") && "\(error)".contains(trainer.weightsPath), "\(error)")
        }
        // The checkpoint loads too, and a reference-style file without class names is sized from its classifier.
        XCTAssertEqual(try loadTrainedModel("resnet_nano", weights: trainer.checkpointPath, classes: 10).input, .patchwork(imageSize: 16))
        let bare = dir.appendingPathComponent("bare.safetensors").path
        try Safetensors.write(model.stateDict(), to: bare)
        XCTAssertThrowsError(try loadTrainedModel("resnet_nano", weights: bare, classes: 7)) { error in
            XCTAssertTrue("\(error)".contains("trained for 10"), "\(error)")
        }
        XCTAssertThrowsError(try loadTrainedModel("resnet_nope", weights: bare, classes: nil)) { error in
            XCTAssertTrue("\(error)".contains("resnet_nope"), "\(error)")
        }
    }
}
