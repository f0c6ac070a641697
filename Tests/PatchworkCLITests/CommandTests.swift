import ArgumentParser
import Foundation
import XCTest
import Patchwork
import PatchworkAnalysis
import PatchworkData
import PatchworkModels
import PatchworkNN
@testable import PatchworkCLI

/// The command line, in-process: every command's arguments parsed (valid and
/// invalid), and train → eval → analyze, models and version run on tiny data.
final class CommandTests: XCTestCase {
    var root = ""

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "patchwork-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: root) }

    /// Parses `arguments` as `patchwork ARGUMENTS` would (including each command's `validate()`).
    func parse(_ arguments: [String]) throws -> ParsableCommand { try PatchworkCommand.parseAsRoot(arguments) }

    /// Parses and runs `arguments`, returning what the command printed.
    func run(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> String {
        var command = try parse(arguments)
        return try captureStandardOutput { try command.run() }
    }

    /// Standard output while `body` runs (through a file, so no pipe can fill up).
    func captureStandardOutput(_ body: () throws -> Void) throws -> String {
        let path = root + "/stdout-\(UUID().uuidString).txt"
        FileManager.default.createFile(atPath: path, contents: nil)
        let file = open(path, O_WRONLY)
        let saved = dup(STDOUT_FILENO)
        fflush(stdout)
        dup2(file, STDOUT_FILENO)
        defer {
            fflush(stdout)
            dup2(saved, STDOUT_FILENO)
            close(saved)
            close(file)
        }
        try body()
        fflush(stdout)
        return String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self)
    }

    func testEveryCommandParsesValidArguments() throws {
        let valid: [([String], ParsableCommand.Type)] = [
            (["train", "--model", "resnet_nano", "--data", "shapetex", "--out", "o", "--epochs", "2", "--optimizer", "adamw", "--resume"],
             TrainCommand.self),
            (["eval", "--model", "resnet_nano", "--weights", "w.safetensors", "--data", "shapetex"], EvalCommand.self),
            (["predict", "--model", "resnet_nano", "--weights", "w.safetensors", "a.png", "b.png"], PredictCommand.self),
            (["shapetex", "--out", "o", "--split", "cue-conflict", "--count", "3"], ShapeTexCommand.self),
            (["models", "--json", "--family", "vit"], ModelsCommand.self),
            (["parity", "a.json", "b.json"], ParityCommand.self),
            (["analyze", "shape-bias", "--model", "vit_nano", "--weights", "w", "--out", "o", "--samples", "10"], ShapeBiasCommand.self),
            (["analyze", "fourier-heatmap", "--model", "vit_nano", "--weights", "w", "--out", "o", "--norm", "2"], FourierHeatmapCommand.self),
            (["analyze", "frequency-noise", "--model", "vit_nano", "--weights", "w", "--out", "o", "--cutoffs", "1,2"], FrequencyNoiseCommand.self),
            (["analyze", "feature-frequency", "--model", "vit_nano", "--weights", "w", "--out", "o"], FeatureFrequencyCommand.self),
            (["analyze", "corruptions", "--model", "vit_nano", "--weights", "w", "--out", "o", "--only", "contrast"], CorruptionsCommand.self),
            (["analyze", "adversarial", "--model", "vit_nano", "--weights", "w", "--out", "o", "--steps", "2"], AdversarialCommand.self),
            (["analyze", "attention-distance", "--model", "vit_nano", "--weights", "w", "--out", "o"], AttentionDistanceCommand.self),
            (["analyze", "attention-maps", "--model", "vit_nano", "--weights", "w", "--out", "o", "--scale", "2"], AttentionMapsCommand.self),
            (["analyze", "cka", "--model", "vit_nano", "--weights", "w", "--model-b", "resnet_nano", "--weights-b", "w2", "--out", "o"],
             CKACommand.self),
            (["analyze", "landscape", "--model", "vit_nano", "--weights", "w", "--out", "o", "--dimensions", "1"], LandscapeCommand.self),
            (["analyze", "hessian", "--model", "vit_nano", "--weights", "w", "--out", "o", "--eigenvalues", "2"], HessianCommand.self),
            (["analyze", "cost", "--models", "vit_nano,resnet_nano", "--out", "o"], CostCommand.self),
            (["report", "runs/a", "runs/b", "--out", "r.html"], ReportCommand.self),
            (["demo", "--quick", "--out", "o"], DemoCommand.self),
            (["bench", "levit-s", "--mode", "train", "--quick"], BenchRun.self),
            (["bench", "gemm", "--json"], BenchGemm.self),
            (["bench", "compare", "--patchwork", "a.json", "--torch", "b.json"], BenchCompare.self),
            (["version"], Version.self),
            (["convert", "a.pth", "b.safetensors", "--key", "model", "--model", "resnet_nano"], ConvertCommand.self),
            (["bench", "load", "a.pth", "b.safetensors", "--seconds", "0.5"], BenchLoad.self),
            (["analyze", "data-spectrum", "--out", "o"], DataSpectrumCommand.self),
        ]
        for (arguments, type) in valid {
            let command = try parse(arguments)
            XCTAssertTrue(Swift.type(of: command) == type, "\(arguments) parsed as \(Swift.type(of: command))")
        }
        // The values arrive where they belong.
        let train = try XCTUnwrap(try parse(valid[0].0) as? TrainCommand)
        XCTAssertEqual(train.model, "resnet_nano")
        XCTAssertEqual(train.epochs, 2)
        XCTAssertEqual(train.optimizer, "adamw")
        XCTAssertTrue(train.resume)
        XCTAssertEqual(train.batchSize, 64, "the default")
        let cka = try XCTUnwrap(try parse(valid[14].0) as? CKACommand)
        XCTAssertEqual(cka.options.model, "vit_nano")
        XCTAssertEqual(cka.modelB, "resnet_nano")
        XCTAssertEqual(cka.options.data, "shapetex", "the default")
        let bench = try XCTUnwrap(try parse(valid[20].0) as? BenchRun)
        XCTAssertEqual(bench.names, ["levit-s"])
        XCTAssertEqual(bench.mode, "train")
    }

    func testInvalidArgumentsAreRefusedWithAMessage() throws {
        let invalid: [([String], String)] = [
            (["train", "--data", "shapetex", "--out", "o"], "--model"),
            (["train", "--model", "resnet_nano", "--data", "shapetex", "--out", "o", "--batch-size", "many"], "many"),
            (["eval", "--model", "resnet_nano", "--data", "shapetex"], "--weights"),
            (["predict", "--model", "resnet_nano", "--weights", "w"], "images"),
            (["shapetex", "--out", "o", "--split", "sideways"], "--split must be one of"),
            (["shapetex", "--out", "o", "--count=-1"], "--count must not be negative"),
            (["models", "--family"], "--family"),
            (["analyze", "shape-bias", "--model", "vit_nano", "--out", "o"], "--weights"),
            (["analyze", "fourier-heatmap", "--model", "vit_nano", "--weights", "w", "--out", "o", "--batch-size", "0"],
             "--batch-size must be at least 1"),
            (["analyze", "corruptions", "--model", "vit_nano", "--weights", "w", "--out", "o", "--normalize", "zscore"],
             "--normalize must be patchwork or imagenet"),
            (["analyze", "cka", "--model", "vit_nano", "--weights", "w", "--out", "o"], "--model-b"),
            (["analyze", "x-ray"], "x-ray"),
            (["report", "--out", "r.html"], "folders"),
            (["demo", "--seed", "minus"], "minus"),
            (["bench", "--group", "huge"], "--group must be small or imagenet"),
            (["bench", "--mode", "sideways"], "--mode must be train or infer"),
            (["bench", "compare", "--torch", "b.json"], "--patchwork"),
            (["version", "--verbose"], "--verbose"),
            (["convert", "a.pth"], "output"),
            (["convert", "a.pth", "b.safetensors", "--model", "resnet_nope"], "resnet_nope"),
            (["bench", "load"], "<files>"),
            (["transmogrify"], "transmogrify"),
        ]
        for (arguments, fragment) in invalid {
            XCTAssertThrowsError(try parse(arguments), "\(arguments)") { error in
                let message = PatchworkCommand.message(for: error)
                XCTAssertTrue(message.contains(fragment), "\(arguments): \"\(message)\" does not mention \(fragment)")
                XCTAssertNotEqual(PatchworkCommand.exitCode(for: error), .success, "\(arguments)")
            }
        }
    }

    /// train (a nano model on ShapeTex, two steps) → eval → analyze shape-bias, as files in a temporary folder.
    func testTrainEvalAndAnalyzeOnTinyData() throws {
        let run = root + "/run", data = "shapetex:train=64,test=32"
        let trained = try self.run(["train", "--model", "resnet_nano", "--data", data, "--out", run, "--epochs", "1", "--batch-size", "32"])
        XCTAssertTrue(trained.contains("resnet_nano: "), trained)
        XCTAssertTrue(trained.contains("64 train / 32 test images, 10 classes"), trained)
        XCTAssertTrue(trained.contains("test accuracy "), trained)
        for file in ["weights.safetensors", "checkpoint.safetensors", "metrics.jsonl", "summary.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/" + file), file)
        }
        let summary = try ModelResults(model: "resnet_nano", folder: run).training()
        XCTAssertEqual(summary.epochs, 1)
        XCTAssertEqual(summary.model, "resnet_nano")

        let evaluated = try self.run(["eval", "--model", "resnet_nano", "--weights", run + "/weights.safetensors", "--data", data])
        XCTAssertTrue(evaluated.contains("resnet_nano on \(data): loss "), evaluated)
        XCTAssertTrue(evaluated.contains("(32 images)"), evaluated)

        let out = root + "/analyses"
        let analysed = try self.run(["analyze", "shape-bias", "--model", "resnet_nano", "--weights", run + "/weights.safetensors",
                                     "--out", out, "--samples", "20", "--single-cue-samples", "10", "--batch-size", "20"])
        XCTAssertTrue(analysed.contains("shape bias "), analysed)
        XCTAssertTrue(analysed.contains("wrote \(out)/shape-bias.json and \(out)/shape-bias.svg"), analysed)
        // What the analysis wrote reads back as the type it was written from.
        let bias = try ModelResults(model: "resnet_nano", folder: out).summary(ShapeBias.Summary.self)
        XCTAssertEqual(bias.cueConflictImages, 20)
        XCTAssertTrue((0...1).contains(bias.shapeBias) || bias.shapeBias.isNaN)

        // A missing weights file is an error that names it.
        XCTAssertThrowsError(try self.run(["eval", "--model", "resnet_nano", "--weights", root + "/none.safetensors", "--data", data])) {
            XCTAssertTrue("\($0)".contains("none.safetensors"), "\($0)")
        }
    }

    /// A torch.save training checkpoint (Tests/PatchworkTests/Fixtures/torch) to safetensors, and
    /// with --model, through the family's filter and a strict load.
    func testConvertWritesSafetensorsAndChecksAgainstAModel() throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("PatchworkTests/Fixtures/torch").path
        let out = root + "/training.safetensors"
        let printed = try run(["convert", fixtures + "/training.pth", out])
        XCTAssertTrue(printed.contains("state dict under \"model\""), printed)
        XCTAssertTrue(printed.contains("9 tensors"), printed)
        XCTAssertTrue(printed.contains("placeholders (never called): ") && printed.contains("argparse.Namespace"), printed)
        let written = try Safetensors(contentsOf: out), expected = try Safetensors(contentsOf: fixtures + "/training.expected.safetensors")
        XCTAssertEqual(written.names.sorted(), expected.names.sorted())
        for name in expected.names { XCTAssertEqual(try written.tensor(name).scalars, try expected.tensor(name).scalars, name) }
        XCTAssertEqual(written.entries["1.num_batches_tracked"]?.dtype, .I64, "dtypes are kept")

        // Weights that are not the model's: the keys that do not fit are named.
        XCTAssertThrowsError(try run(["convert", fixtures + "/training.pth", root + "/no.safetensors", "--model", "resnet_nano"])) { error in
            XCTAssertTrue("\(error)".contains("missing keys") && "\(error)".contains("unused keys"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/no.safetensors"))
        // A model's own weights pass the strict check.
        let net = try Models.create("resnet_nano", numClasses: 5)
        try net.save(to: root + "/nano.safetensors")
        let checked = try run(["convert", root + "/nano.safetensors", root + "/nano2.safetensors", "--model", "resnet_nano"])
        XCTAssertTrue(checked.contains("loads strictly into resnet_nano"), checked)
        XCTAssertEqual(try Safetensors(contentsOf: root + "/nano2.safetensors").names.count, net.stateDict().count)
    }

    /// A published checkpoint (the torch.save fixture of pvt_v2_b0 with ImageNet-1k's classes): predict prints
    /// the top classes with ImageNet's names and writes them as JSON; eval reads ImageNet's validation layout
    /// (one folder per WordNet id) through the checkpoint's evaluation transform.
    func testPredictAndEvalOnAPublishedCheckpoint() throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("PatchworkTests/Fixtures").path
        let weights = fixtures + "/pretrained/pvt_v2_b0.pth"
        let chelsea = fixtures + "/preprocess/images/chelsea.png", rocket = fixtures + "/preprocess/images/rocket.jpg"
        let printed = try run(["predict", "--model", "pvt_v2_b0", "--weights", weights, "--top", "3", chelsea, rocket])
        XCTAssertTrue(printed.contains("from pvt_v2_b0.in1k: bicubic, crop 0.9"), printed)
        XCTAssertTrue(printed.contains("passenger car, coach, carriage"), printed)   // the reference's top class for chelsea.png

        let json = root + "/predictions.json"
        _ = try run(["predict", "--model", "pvt_v2_b0.in1k", "--weights", weights, "--top", "2", "--json", json, chelsea, rocket])
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [[String: Any]])
        XCTAssertEqual(rows.map { $0["image"] as? String }, [chelsea, rocket])
        let top = try XCTUnwrap(rows[0]["top"] as? [[String: Any]])
        XCTAssertEqual(top.count, 2)
        XCTAssertEqual(top[0]["class"] as? Int, 705)
        XCTAssertEqual(top[0]["label"] as? String, "passenger car, coach, carriage")
        XCTAssertEqual(try XCTUnwrap(top[0]["probability"] as? Double), 0.0764, accuracy: 2e-3)

        // ImageNet's validation layout: the images under their classes' WordNet ids.
        let val = root + "/imagenet/val"
        for (wnid, image) in [("n03895866", chelsea), ("n03041632", rocket)] {   // 705 passenger car, 499 cleaver
            try FileManager.default.createDirectory(atPath: val + "/" + wnid, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: image, toPath: val + "/\(wnid)/" + (image as NSString).lastPathComponent)
        }
        let evaluated = try run(["eval", "--model", "pvt_v2_b0", "--weights", weights, "--data", "imagenet:" + root + "/imagenet"])
        XCTAssertTrue(evaluated.contains("top-1 100.00%") && evaluated.contains("(2 images)"), evaluated)
        try FileManager.default.createDirectory(atPath: val + "/not_a_wnid", withIntermediateDirectories: true)
        XCTAssertThrowsError(try run(["eval", "--model", "pvt_v2_b0", "--weights", weights, "--data", "imagenet:" + root + "/imagenet"])) {
            XCTAssertTrue("\($0)".contains("not_a_wnid"), "\($0)")
        }
    }

    /// study over a folder of two "published" checkpoints (nano variants with ImageNet-1k classifiers, random
    /// weights), a few cue-conflict stimuli and an ImageNet validation folder: every analysis and the report.
    func testStudyAnalysesEveryCheckpointInAFolder() throws {
        let weights = root + "/weights", stimuli = root + "/stimuli", val = root + "/imagenet"
        try FileManager.default.createDirectory(atPath: weights, withIntermediateDirectories: true)
        Generator.global.reseed(5)
        try Models.create("resnet_nano", numClasses: 1000).save(to: weights + "/resnet_nano.safetensors")
        try Models.create("vit_nano", numClasses: 1000).save(to: weights + "/vit_nano.safetensors")
        FileManager.default.createFile(atPath: weights + "/notes.txt", contents: Data("not weights".utf8))
        func png(_ path: String, _ seed: UInt64) throws {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try ImageIO.savePNG(Tensor.randomUniform([40, 48, 3], generator: Generator(seed: seed)), to: path)
        }
        for (i, name) in ["cat/cat1-elephant2.png", "elephant/elephant3-cat1.png", "dog/dog1-clock2.png", "clock/clock1-dog2.png"].enumerated() {
            try png(stimuli + "/" + name, UInt64(i))
        }
        try png(val + "/n01440764/a.png", 10)
        try png(val + "/n15075141/b.png", 11)
        let out = root + "/study"
        let printed = try run(["study", "--weights-dir", weights, "--stimuli", stimuli, "--images", "imagenet:" + val, "--out", out,
                               "--samples", "4", "--small-samples", "2", "--batch-size", "4"])
        XCTAssertTrue(printed.contains("2 checkpoints (resnet_nano, vit_nano), CNN resnet_nano"), printed)
        for file in ["resnet_nano/shape-bias.json", "vit_nano/shape-bias.json", "vit_nano/attention-distance.json",
                     "vit_nano/feature-frequency.json", "vit_nano/frequency-noise.json", "vit_nano/fourier-heatmap.json",
                     "vit_nano/hessian.json", "cka-resnet_nano-vs-vit_nano/cka.json", "cost/cost.json", "report.html"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + file), file)
        }
        XCTAssertThrowsError(try run(["study", "--weights-dir", weights, "--stimuli", stimuli, "--out", out, "--cnn", "resnet18"])) {
            XCTAssertTrue("\($0)".contains("resnet18 is not among the checkpoints"), "\($0)")
        }
    }

    func testModelsListsAFamilysVariants() throws {
        let table = try run(["models", "--family", "resnet"])
        let lines = table.split(separator: "\n")
        XCTAssertEqual(lines.count, 4, table)
        XCTAssertTrue(lines.contains { $0.hasPrefix("resnet18 ") && $0.contains("11,689,512 params") }, table)
        XCTAssertTrue(lines.contains { $0.hasPrefix("resnet_nano ") && $0.hasSuffix("32x32") }, table)
        // (--json builds the same models again: its parsing is tested above, and one pass is enough here.)
    }

    func testVersionPrintsTheVersionAndTheGEMM() throws {
        let text = try run(["version"])
        XCTAssertTrue(text.hasPrefix("patchwork "), text)
        XCTAssertTrue(text.contains("\nGEMM: "), text)
    }
}
