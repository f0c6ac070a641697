import Foundation
import XCTest
import Patchwork
import PatchworkData
import PatchworkModels
import PatchworkNN
@testable import PatchworkTrain

/// Runs that are killed, share a folder, or go non-finite (issue 19, "Runs").
extension TrainingTests {
    func metricsLines(_ name: String) throws -> [[String: Any]] {
        try String(contentsOf: dir.appendingPathComponent(name + "/metrics.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    }

    func testStepCheckpointsResumeMidEpochToTheSameWeightsAndMetrics() throws {
        // 2 epochs of 3 steps.
        let straight = try makeTrainer("straight")
        try straight.run()
        let expected = weights(straight)
        let expectedLines = try metricsLines("straight")

        // Killed at step 2 (mid epoch 1) with a checkpoint every step: it resumes from batch 2, not from scratch.
        let first = try makeTrainer("killed")
        first.checkpointEvery = 1
        first.stopAfterSteps = 2
        try first.run()
        let meta = try Safetensors(contentsOf: first.checkpointPath).metadata
        XCTAssertEqual([meta["epoch"], meta["batch"], meta["step"]], ["0", "2", "2"])

        // Resumed, then killed again at step 4 (mid epoch 2), after epoch 1's line was written.
        let second = try makeTrainer("killed")
        second.checkpointEvery = 1
        second.stopAfterSteps = 4
        try second.run(resume: true)
        XCTAssertEqual(try metricsLines("killed").map { $0["epoch"] as? Int }, [1])
        // As if a run had written epoch 2's line and died before its checkpoint.
        let log = MetricsLog(path: second.metricsPath)
        try log.append(EpochRecord(epoch: 2, step: 6, lr: 0, trainLoss: 9, trainTop1: 0, testLoss: 9, testTop1: 0, testTop5: 0,
                                   seconds: 0, imagesPerSecond: 0))

        let last = try makeTrainer("killed")
        try last.run(resume: true)
        XCTAssertEqual(weights(last), expected, "a resume from step checkpoints must reproduce the uninterrupted weights")
        let lines = try metricsLines("killed")
        XCTAssertEqual(lines.map { $0["epoch"] as? Int }, [1, 2], "each epoch once")
        // The interrupted epochs' train metrics cover all their batches: the same numbers as the straight run.
        for key in ["step", "lr", "train_loss", "train_top1", "test_loss", "test_top1", "test_top5"] {
            XCTAssertEqual(lines.map { "\($0[key]!)" }, expectedLines.map { "\($0[key]!)" }, key)
        }
        XCTAssertTrue(try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("killed").path)
            .allSatisfy { !AtomicFile.isTemporaryName($0) })
    }

    func testASecondRunIntoABusyFolderStopsAtOnce() throws {
        let folder = dir.appendingPathComponent("busy").path
        let held = try RunLock(folder: folder)
        XCTAssertThrowsError(try RunLock(folder: folder)) { error in
            XCTAssertTrue("\(error)".contains(folder) && "\(error)".contains("process \(getpid())"), "\(error)")
        }
        let trainer = try makeTrainer("busy", epochs: 1)
        XCTAssertThrowsError(try trainer.run()) { XCTAssertTrue("\($0)".contains("in use"), "\($0)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: trainer.metricsPath), "the busy folder is not touched")
        held.release()
        try trainer.run()   // free again

        // Another process holding the lock, then killed with SIGKILL: no stale lock is left.
        let flock = "/usr/bin/flock"
        guard FileManager.default.isExecutableFile(atPath: flock) else { throw XCTSkip("no \(flock)") }
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: flock)
        holder.arguments = ["--close", folder + "/.lock", "sleep", "20"]   // the lock stays with flock itself, not its child
        try holder.run()
        var refused = false
        for _ in 0..<200 where !refused {   // until the child holds it
            do { try RunLock(folder: folder).release(); usleep(10_000) } catch { refused = "\(error)".contains(folder) }
        }
        XCTAssertTrue(refused, "a lock held by another process must refuse the folder")
        // Within 2 s, where the holder would have slept 20 s: the kernel drops a killed holder's lock.
        kill(holder.processIdentifier, SIGKILL)
        var freed = false
        for _ in 0..<200 where !freed {
            do { try RunLock(folder: folder).release(); freed = true } catch { usleep(10_000) }
        }
        XCTAssertTrue(freed, "the lock of a process killed with SIGKILL must be free")

        // A file where the folder should be.
        let file = dir.appendingPathComponent("plain").path
        XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: Data()))
        XCTAssertThrowsError(try RunLock(folder: file)) { XCTAssertTrue("\($0)".contains(file), "\($0)") }
    }

    func testStaleTemporaryFilesAreRemovedOnStart() throws {
        let trainer = try makeTrainer("stale", epochs: 1)
        let folder = trainer.outDirectory
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let stale = [".checkpoint.safetensors.tmp-123-4567", ".metrics.jsonl.tmp-9-0", ".dat.nosync7BAB.0122FE"]
        let kept = [".tmp-notes", "x.tmp-1-2", ".notes.tmp-1", ".a.tmp-1-2-3", "notes.txt"]
        for name in stale + kept { XCTAssertTrue(FileManager.default.createFile(atPath: folder + "/" + name, contents: Data("x".utf8))) }
        try trainer.run()
        let now = Set(try FileManager.default.contentsOfDirectory(atPath: folder))
        XCTAssertTrue(now.isDisjoint(with: stale), "\(now)")
        XCTAssertTrue(Set(kept).isSubset(of: now), "\(now)")
        XCTAssertTrue(AtomicFile.isTemporaryName(".weights.safetensors.tmp-1-2"))

        // A write leaves no file but its target: its temporary is its own, named as above.
        let target = folder + "/x.bin"
        try AtomicFile.write(Data([1, 2, 3]), to: target)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: target)), Data([1, 2, 3]))
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: folder)).subtracting(now), ["x.bin"])
        XCTAssertThrowsError(try AtomicFile.write(Data(), to: folder + "/missing/x.bin")) {
            XCTAssertTrue("\($0)".contains(folder + "/missing/x.bin"), "\($0)")
        }
    }

    func testANonFiniteLossStopsNamingTheStepAndLeavesValidFiles() throws {
        let train = try ShapeTex(split: .train, count: 96, size: 16, seed: 3)
        let test = try ShapeTex(split: .test, count: 32, size: 16, seed: 3)
        Generator.global.reseed(7)
        var options = TrainingOptions()
        options.epochs = 3
        options.batchSize = 32
        options.learningRate = 1e30
        options.warmupEpochs = 0
        let trainer = try Trainer(model: try Models.create("resnet_nano", numClasses: train.classNames.count), modelName: "resnet_nano",
                                  dataName: "shapetex", train: train, test: test, options: options,
                                  outDirectory: dir.appendingPathComponent("nan").path)
        trainer.verbose = false
        XCTAssertThrowsError(try trainer.run()) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("loss became") && message.contains("epoch ") && message.contains("step ")
                          && message.contains("--lr"), message)
        }
        // Whatever was written stays valid: JSON lines (non-finite numbers as null) and a loadable checkpoint.
        if FileManager.default.fileExists(atPath: trainer.metricsPath) { XCTAssertNoThrow(try metricsLines("nan")) }
        if FileManager.default.fileExists(atPath: trainer.checkpointPath) {
            XCTAssertNoThrow(try TrainingCheckpoint.load(from: trainer.checkpointPath,
                                                         model: try Models.create("resnet_nano", numClasses: train.classNames.count),
                                                         optimizer: SGD(learningRate: 0.1)))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: trainer.summaryPath))
    }

    func testNonFiniteNumbersAreWrittenAsNull() throws {
        var options = TrainingOptions()
        options.mixup = .nan
        let summary = TrainingSummary(model: "m", data: "d", epochs: 1, trainSeconds: 1, testAccuracy: .nan, testTop5: .infinity,
                                      testLoss: -.infinity, imagesPerSecond: 2, parameters: 3, seed: .max,
                                      weightsSha256: "", options: options)
        let path = dir.appendingPathComponent("summary.json").path
        try RunJSON.write(summary, to: path)
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        for key in ["test_accuracy", "test_top5", "test_loss"] { XCTAssertTrue(object[key] is NSNull, "\(key): \(object[key]!)") }
        XCTAssertTrue((object["options"] as! [String: Any])["mixup"] is NSNull)
        XCTAssertEqual(object["images_per_second"] as? Double, 2)
        XCTAssertTrue(String(decoding: try Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self).contains("18446744073709551615"),
                      "a large seed is written exactly")
    }
}
