import ArgumentParser
import Foundation
import XCTest
@testable import PatchworkCLI

/// Out-of-range option values (the hostile trial's zero epochs, negative rates, NaN, unwritable
/// --out, ...) are refused while the arguments are parsed, before any data or model is built,
/// with a message naming the option.
final class OptionValidationTests: XCTestCase {
    var root = ""

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "patchwork-options-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: root) }

    func assertRefused(_ cases: [([String], String)], file: StaticString = #filePath, line: UInt = #line) {
        for (arguments, fragment) in cases {
            XCTAssertThrowsError(try PatchworkCommand.parseAsRoot(arguments), "\(arguments)", file: file, line: line) { error in
                let message = PatchworkCommand.message(for: error)
                XCTAssertTrue(message.contains(fragment), "\(arguments): \"\(message)\" does not mention \(fragment)", file: file, line: line)
                XCTAssertNotEqual(PatchworkCommand.exitCode(for: error), .success, "\(arguments)", file: file, line: line)
            }
        }
    }

    func testTrainOptions() throws {
        let base = ["train", "--model", "resnet_nano", "--data", "shapetex", "--out", root + "/run"]
        XCTAssertNoThrow(try PatchworkCommand.parseAsRoot(base + ["--epochs", "1", "--clip-norm", "1", "--mixup", "0.2", "--lr", "0.01"]))
        XCTAssertNoThrow(try PatchworkCommand.parseAsRoot(base + ["--img-size", "64"]), "a ResNet runs on any side")
        assertRefused([
            (base + ["--epochs", "0"], "--epochs"), (base + ["--epochs=-3"], "--epochs"), (base + ["--batch-size", "0"], "--batch-size"),
            (base + ["--batch-size", "100000000"], "--batch-size"), (base + ["--lr=-1"], "--lr"), (base + ["--lr", "0"], "--lr"),
            (base + ["--lr", "nan"], "--lr"), (base + ["--lr", "inf"], "--lr"), (base + ["--label-smoothing", "2"], "--label-smoothing"),
            (base + ["--label-smoothing", "1"], "--label-smoothing"), (base + ["--label-smoothing=-0.1"], "--label-smoothing"),
            (base + ["--warmup-epochs", "nan"], "--warmup-epochs"), (base + ["--warmup-epochs=-1"], "--warmup-epochs"),
            (base + ["--clip-norm", "nan"], "--clip-norm"), (base + ["--clip-norm", "0"], "--clip-norm"),
            (base + ["--mixup=-1"], "--mixup"), (base + ["--mixup", "nan"], "--mixup"), (base + ["--cutmix=-1"], "--cutmix"),
            (base + ["--weight-decay=-1"], "--weight-decay"), (base + ["--weight-decay", "nan"], "--weight-decay"),
            (base + ["--optimizer", "lion"], "--optimizer"), (base + ["--augment", "rotate"], "--augment"),
            (base + ["--img-size", "0"], "--img-size"), (base + ["--img-size", "1000000"], "--img-size"),
            (["train", "--model", "vit_nano", "--data", "shapetex", "--out", root, "--img-size", "64"], "built for 32×32"),
            (["train", "--model", "resnet_999", "--data", "shapetex", "--out", root], "--model"),
        ])
    }

    func testOutputPaths() throws {
        let file = root + "/a-file"
        FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        let readOnly = root + "/read-only"
        try FileManager.default.createDirectory(atPath: readOnly, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o555], ofItemAtPath: readOnly)
        defer { try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: readOnly) }
        let train = ["train", "--model", "resnet_nano", "--data", "shapetex", "--out"]
        // A new folder (with parents) under a writable one is fine.
        XCTAssertNoThrow(try PatchworkCommand.parseAsRoot(train + [root + "/new/deeper"]))
        var cases: [([String], String)] = [
            (train + [file], "--out \(file) is a file"), (train + [file + "/sub"], "--out \(file)/sub cannot be created"),
            (train + [""], "--out must not be empty"),
            (["analyze", "cost", "--models", "resnet_nano", "--out", file], "--out"),
            (["shapetex", "--out", file], "--out"), (["demo", "--out", file], "--out"),
            (["report", "runs/a", "--out", root], "--out \(root) is a folder"),
            (["report", "runs/a", "--out", file + "/r.html"], "--out"),
            (["bench", "--json", root], "--json"), (["bench", "compare", "--patchwork", "a.json", "--markdown", root], "--markdown"),
        ]
        // Permissions do not bind root, which the CI may run as.
        if getuid() != 0 {
            cases.append((train + [readOnly], "not writable"))
            cases.append((train + [readOnly + "/run"], "not writable"))
        }
        assertRefused(cases)
    }

    func testEvaluationAnalysisAndOtherCommandsOptions() throws {
        let analysis = ["--model", "vit_nano", "--weights", "w", "--out", root + "/a"]
        assertRefused([
            (["eval", "--model", "resnet_nano", "--weights", "w", "--data", "shapetex", "--batch-size", "0"], "--batch-size"),
            (["eval", "--model", "resnet_nano", "--weights", "w", "--data", "shapetex", "--img-size=-1"], "--img-size"),
            (["eval", "--model", "nonet", "--weights", "w", "--data", "shapetex"], "--model"),
            (["predict", "--model", "nonet", "--weights", "w", "a.png"], "--model"),
            (["analyze", "shape-bias"] + analysis + ["--samples", "0"], "--samples"),
            (["analyze", "shape-bias"] + analysis + ["--single-cue-samples=-1"], "--single-cue-samples"),
            (["analyze", "fourier-heatmap"] + analysis + ["--norm", "nan"], "--norm"),
            (["analyze", "fourier-heatmap"] + analysis + ["--norm", "0"], "--norm"),
            (["analyze", "frequency-noise"] + analysis + ["--bands", "0"], "--bands"),
            (["analyze", "frequency-noise"] + analysis + ["--cutoffs", "1,x"], "--cutoffs"),
            (["analyze", "frequency-noise"] + analysis + ["--cutoffs", "inf"], "--cutoffs"),
            (["analyze", "feature-frequency"] + analysis + ["--samples=-5"], "--samples"),
            (["analyze", "feature-frequency"] + analysis + ["--resolution", "1"], "--resolution"),
            (["analyze", "feature-frequency"] + analysis + ["--resolution=-8"], "--resolution"),
            (["analyze", "feature-frequency"] + analysis + ["--resolution", "1000000"], "--resolution"),
            (["analyze", "corruptions"] + analysis + ["--only", "smoke"], "--only"),
            (["analyze", "adversarial"] + analysis + ["--epsilons", "0,nan"], "--epsilons"),
            (["analyze", "adversarial"] + analysis + ["--epsilons", "2"], "--epsilons"),
            (["analyze", "adversarial"] + analysis + ["--steps", "0"], "--steps"),
            (["analyze", "adversarial"] + analysis + ["--step-size=-1"], "--step-size"),
            (["analyze", "attention-distance"] + analysis + ["--samples", "0"], "--samples"),
            (["analyze", "attention-maps"] + analysis + ["--scale", "0"], "--scale"),
            (["analyze", "attention-maps"] + analysis + ["--scale", "100000"], "--scale"),
            (["analyze", "cka"] + analysis + ["--model-b", "resnet_nano", "--weights-b", "w", "--cka-batch", "2"], "--cka-batch"),
            (["analyze", "cka"] + analysis + ["--model-b", "nonet", "--weights-b", "w"], "--model-b"),
            (["analyze", "cka"] + analysis + ["--model-b", "resnet50", "--weights-b", "w", "--img-size", "224"], "--img-size"),
            (["analyze", "attention-distance"] + analysis + ["--img-size", "48"], "--img-size"),
            (["analyze", "cka"] + analysis + ["--model-b", "resnet_nano", "--weights-b", "w", "--samples", "10"], "--samples"),
            (["analyze", "landscape"] + analysis + ["--dimensions", "3"], "--dimensions"),
            (["analyze", "landscape"] + analysis + ["--range", "nan"], "--range"),
            (["analyze", "landscape"] + analysis + ["--points", "1"], "--points"),
            (["analyze", "hessian"] + analysis + ["--eigenvalues", "0"], "--eigenvalues"),
            (["analyze", "hessian"] + analysis + ["--lanczos-steps", "0"], "--lanczos-steps"),
            (["analyze", "hessian"] + analysis + ["--trace-samples=-1"], "--trace-samples"),
            (["analyze", "hessian"] + analysis + ["--batches", "0"], "--batches"),
            (["analyze", "hessian"] + analysis + ["--samples", "4", "--batches", "5"], "--batches"),
            (["analyze", "hessian"] + analysis + ["--lanczos-tolerance", "0"], "--lanczos-tolerance"),
            (["analyze", "hessian"] + analysis + ["--lanczos-tolerance", "1"], "--lanczos-tolerance"),
            (["analyze", "hessian"] + analysis + ["--lanczos-tolerance", "nan"], "--lanczos-tolerance"),
            (["analyze", "hessian"] + analysis + ["--lanczos-max-steps", "1"], "--lanczos-max-steps"),
            (["analyze", "fourier-heatmap"] + analysis + ["--draws", "0"], "--draws"),
            (["analyze", "fourier-heatmap"] + analysis + ["--band-cutoff", "inf"], "--band-cutoff"),
            (["analyze", "frequency-noise"] + analysis + ["--band-cutoff=-1"], "--band-cutoff"),
            (["analyze", "adversarial"] + analysis + ["--restarts", "0"], "--restarts"),
            (["analyze", "adversarial"] + analysis + ["--restarts", "2", "--random-start", "false"], "--random-start"),
            (["analyze", "data-spectrum", "--out", root, "--samples", "0"], "--samples"),
            (["analyze", "data-spectrum", "--out", root, "--img-size", "4"], "--img-size"),
            (["analyze", "shape-bias", "--model", "nonet", "--weights", "w", "--out", root], "--model"),
            (["analyze", "cost", "--out", root, "--batch", "0"], "--batch"),
            (["analyze", "cost", "--out", root, "--seconds", "nan"], "--seconds"),
            (["analyze", "cost", "--out", root, "--classes", "0"], "--classes"),
            (["analyze", "cost", "--out", root, "--models", "resnet_nano,nonet"], "--models"),
            (["shapetex", "--out", root, "--size", "4"], "--size"), (["shapetex", "--out", root, "--noise", "nan"], "--noise"),
            (["shapetex", "--out", root, "--count", "100000000"], "--count"),
            (["demo", "--out", root, "--models", "resnet_nano,nonet"], "--models"),
            (["demo", "--out", root, "--control", "resnet_nano"], "--control resnet_nano has no depthwise-convolution token mixer"),
            (["demo", "--out", root, "--target-accuracy", "0"], "--target-accuracy must be in (0.0, 1.0]"),
            (["train", "--model", "resnet_nano", "--data", "shapetex", "--out", root, "--validation", "10", "--target-accuracy", "0"],
             "--target-accuracy must be in (0.0, 1.0]"),
            (["bench", "gemm", "--seconds", "0"], "--seconds"), (["bench", "gemm", "--seconds", "nan"], "--seconds"),
        ])
    }

    /// The engine's environment variables are checked before any command runs (main.swift), as
    /// usage errors naming the variable, not as a stop in the middle of a run.
    func testEngineEnvironmentVariablesAreChecked() throws {
        let names = ["PATCHWORK_CONV_PATH", "PATCHWORK_POOL_MB", "PATCHWORK_BF16_BACKWARD"]
        defer { names.forEach { unsetenv($0) } }
        XCTAssertNoThrow(try PatchworkCommand.checkEnvironment())
        for value in ["automatic", "im2col", "onednn"] {
            setenv("PATCHWORK_CONV_PATH", value, 1)
            XCTAssertNoThrow(try PatchworkCommand.checkEnvironment(), value)
        }
        for value in ["bf16", "fp32"] {
            setenv("PATCHWORK_BF16_BACKWARD", value, 1)
            XCTAssertNoThrow(try PatchworkCommand.checkEnvironment(), value)
        }
        let bad: [(String, String, String)] = [
            ("PATCHWORK_CONV_PATH", "fast", "PATCHWORK_CONV_PATH is 'fast'; use automatic, im2col or onednn"),
            ("PATCHWORK_CONV_PATH", "", "PATCHWORK_CONV_PATH is ''"),
            ("PATCHWORK_POOL_MB", "-1", "PATCHWORK_POOL_MB is '-1'"),
            ("PATCHWORK_POOL_MB", "2G", "PATCHWORK_POOL_MB is '2G'"),
            ("PATCHWORK_BF16_BACKWARD", "fp16", "PATCHWORK_BF16_BACKWARD is 'fp16'; use bf16"),
        ]
        for (name, value, fragment) in bad {
            names.forEach { unsetenv($0) }
            setenv(name, value, 1)
            XCTAssertThrowsError(try PatchworkCommand.checkEnvironment(), "\(name)=\(value)") { error in
                let message = PatchworkCommand.message(for: error)
                XCTAssertTrue(message.contains(fragment), "\(name)=\(value): \(message)")
                XCTAssertEqual(PatchworkCommand.exitCode(for: error), .validationFailure)
            }
        }
    }
}
