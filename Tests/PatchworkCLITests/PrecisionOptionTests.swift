import ArgumentParser
import Foundation
import XCTest
import Patchwork
@testable import PatchworkCLI

/// `--precision` on the commands that run models, and `bench compare` pairing only like with like.
final class PrecisionOptionTests: XCTestCase {
    var root = ""

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "patchwork-precision-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: root) }

    var commands: [[String]] {
        [["train", "--model", "resnet_nano", "--data", "shapetex", "--out", root + "/run"],
         ["eval", "--model", "resnet_nano", "--weights", "w.safetensors", "--data", "shapetex"],
         ["predict", "--model", "resnet_nano", "--weights", "w.safetensors", "a.png"],
         ["analyze", "shape-bias", "--model", "resnet_nano", "--weights", "w.safetensors", "--out", root + "/a"],
         ["analyze", "hessian", "--model", "resnet_nano", "--weights", "w.safetensors", "--out", root + "/h"],
         ["analyze", "cost", "--models", "resnet_nano", "--out", root + "/c"],
         ["bench", "vit-s"], ["bench", "gemm"]]
    }

    func testEveryModelCommandTakesPrecisionAndRefusesOtherValues() throws {
        var tried = 0
        for base in commands {
            XCTAssertNoThrow(try PatchworkCommand.parseAsRoot(base + ["--precision", "bf16"]), "\(base)")
            XCTAssertNoThrow(try PatchworkCommand.parseAsRoot(base + ["--precision", "fp32"]), "\(base)")
            for bad in ["fp16", "BF16", "", "bf16 ", "int8"] {
                XCTAssertThrowsError(try PatchworkCommand.parseAsRoot(base + ["--precision", bad]), "\(base) \(bad)") { error in
                    let message = PatchworkCommand.message(for: error)
                    XCTAssertTrue(message.contains("--precision") && message.contains("fp32, bf16"), "\(base) \(bad): \(message)")
                    XCTAssertFalse(message.contains("\n"), "one line: \(message)")
                }
                tried += 1
            }
        }
        XCTAssertEqual(tried, 40)
    }

    func testPrecisionCommandRunsItsWorkInThePrecisionAndRestoresIt() throws {
        PrecisionProbe.seen = nil
        try PrecisionProbe().run()
        XCTAssertEqual(PrecisionProbe.seen, .bf16)
        XCTAssertEqual(Precision.current, .fp32)
    }

    func write(_ name: String, _ object: [String: Any]) throws -> String {
        let path = root + "/" + name
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
        return path
    }

    func result(_ ips: Double) -> [String: Any] {
        ["case": "vit-s", "mode": "infer", "stats": ["img_per_s": ["median": ips, "min": ips, "max": ips]]]
    }

    func testBenchComparePairsAPrecisionWithItselfAndNamesThePeer() throws {
        let oursBF16 = try write("p-bf16.json", ["meta": ["policy": ["precision": "bf16", "compile": false]], "results": [result(20)]])
        let oursFP32 = try write("p-fp32.json", ["meta": ["policy": ["precision": "fp32"]], "results": [result(10)]])
        let oldOurs = try write("p-old.json", ["meta": ["policy": ["quick": true]], "results": [result(10)]])
        let torchBF16 = try write("t-bf16.json", ["meta": ["policy": ["precision": "bf16", "compile": false]], "results": [result(10)]])
        let torchCompile = try write("t-compile.json", ["meta": ["policy": ["precision": "fp32", "compile": true]], "results": [result(5)]])
        let torchEager = try write("t-eager.json", ["meta": ["policy": ["precision": "fp32", "compile": false]], "results": [result(5)]])

        let md = root + "/ratios.md"
        try BenchCompare.parse(["--patchwork", oursBF16, "--torch", torchBF16, "--markdown", md]).run()
        var text = try String(contentsOfFile: md, encoding: .utf8)
        XCTAssertTrue(text.hasPrefix("Patchwork bf16 autocast vs PyTorch eager, bf16 autocast\n"), text)
        XCTAssertTrue(text.contains("**2.00×**"), text)

        try BenchCompare.parse(["--patchwork", oursFP32, "--torch", torchCompile, "--markdown", md]).run()
        text = try String(contentsOfFile: md, encoding: .utf8)
        XCTAssertTrue(text.hasPrefix("Patchwork fp32 vs PyTorch torch.compile, fp32\n"), text)
        // Files from before the setting existed are fp32 (and eager).
        try BenchCompare.parse(["--patchwork", oldOurs, "--torch", torchEager, "--markdown", md]).run()
        text = try String(contentsOfFile: md, encoding: .utf8)
        XCTAssertTrue(text.hasPrefix("Patchwork fp32 vs PyTorch eager, fp32\n"), text)

        let refused: [([String], String)] = [
            (["--patchwork", oursBF16, "--torch", torchEager], "--torch files were measured in fp32 but --patchwork files in bf16"),
            (["--patchwork", oursFP32, "--torch", torchBF16], "--torch files were measured in bf16 but --patchwork files in fp32"),
            (["--patchwork", oursFP32, oursBF16], "compare runs of one setting"),
            (["--patchwork", oursFP32, "--torch", torchEager, torchCompile], "compare runs of one setting"),
            (["--patchwork", root + "/missing.json"], "--patchwork \(root)/missing.json: no such file"),
            (["--patchwork", oursFP32, "--torch", try write("t-bad.json", ["results": 3])], "not a benchmark JSON file"),
        ]
        for (arguments, fragment) in refused {
            XCTAssertThrowsError(try BenchCompare.parse(arguments).run(), "\(arguments)") { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(arguments): \(error)")
            }
        }
    }

    func testBenchGemmShapesAreChecked() throws {
        XCTAssertNoThrow(try PatchworkCommand.parseAsRoot(["bench", "gemm", "--shape", "1576x384x1536", "--shape", "8X8X8"]))
        for bad in ["1576x384", "0x4x4", "4x4x4x4", "axbxc", "4x-4x4", "70000x4x4", "20000x20000x1", ""] {
            XCTAssertThrowsError(try PatchworkCommand.parseAsRoot(["bench", "gemm", "--shape", bad]), bad) { error in
                XCTAssertTrue(PatchworkCommand.message(for: error).contains("--shape \(bad)"), "\(bad): \(PatchworkCommand.message(for: error))")
            }
        }
    }
}

/// A command that records the precision its work ran in.
struct PrecisionProbe: PrecisionCommand {
    nonisolated(unsafe) static var seen: Precision?
    var precision: Precision = .bf16
    func execute() throws { Self.seen = Precision.current }
}
