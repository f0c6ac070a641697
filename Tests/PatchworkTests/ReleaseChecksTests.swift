import Foundation
import XCTest

/// The checks a user can trigger stop with their message in the build under test (the README's
/// `swift test -c release`): a model config read from a file (a head count that does not divide
/// the width, a zero head count, a negative or huge depth) or a bad option must end with an error
/// naming the field or option, not a bare "illegal instruction" (what a failed `precondition`
/// gives under -O), a division trap, a hang or a garbage result (under -Ounchecked).
///
/// A trap would end the process, so the test runs the `patchwork` binary that `swift test` built
/// next to this test bundle, in a subprocess, on files written to a temp folder.
final class ReleaseChecksTests: XCTestCase {
    /// The `patchwork` executable of this build (same folder as the test bundle).
    private func patchworkBinary() throws -> URL {
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<3 {
            let candidate = dir.appendingPathComponent("patchwork")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        XCTFail("no patchwork executable next to \(CommandLine.arguments[0]); `swift test` builds it with the tests")
        throw XCTSkip("patchwork binary not found")
    }

    private func run(_ binary: URL, _ arguments: [String]) throws -> (status: Int32, signalled: Bool, output: String) {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        let errPipe = Pipe()   // standard error and output together (parity prints its failures)
        process.standardError = errPipe
        process.standardOutput = errPipe
        var env = ProcessInfo.processInfo.environment
        env["SWIFT_BACKTRACE"] = "enable=no"   // the message, not a page of registers
        process.environment = env
        try process.run()
        let data = errPipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, process.terminationReason == .uncaughtSignal, String(decoding: data, as: UTF8.self))
    }

    /// Bad configs and options, through the binary: each ends with an error exit (not a signal)
    /// and a message naming the field or option.
    func testBadConfigFromAFileStopsWithItsMessage() throws {
        let binary = try patchworkBinary()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("patchwork-release-checks-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }

        // ViT-Tiny's width 192 with 5 heads: timm would raise "dim should be divisible by num_heads".
        let suite = """
        {"description": "one bad case", "conventions": {}, "excluded_families": [], "cases": [
          {"name": "bad-heads", "group": "small", "family": "vit",
           "reference": {"package": "timm 1.0.31", "callable": "timm.create_model", "args": ["vit_tiny_patch16_224"],
                         "kwargs": {"pretrained": false, "img_size": 32, "patch_size": 4, "num_classes": 10,
                                    "num_heads": 5}},
           "input_shape": [3, 32, 32], "batch": 2, "num_classes": 10, "modes": ["infer"],
           "notes": "", "params": 0, "gflops_per_image": {"infer": 0}}
        ]}
        """
        let suiteFile = folder.appendingPathComponent("suite.json")
        try suite.write(to: suiteFile, atomically: true, encoding: .utf8)

        // The vit fixture case with a zero head count (once a division trap) and one with depth -1 (once a hang).
        let fixture = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/parity/vit-a", withExtension: "json"))
        var parityCases: [String] = []
        for (key, value) in [("num_heads", "0"), ("depth", "-1"), ("depth", "1e9")] {
            var json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: fixture)) as? [String: Any])
            var config = try XCTUnwrap(json["config"] as? [String: Any])
            config[key] = Double(value)!
            json["config"] = config
            let file = folder.appendingPathComponent("vit-\(key)\(value).json")
            try JSONSerialization.data(withJSONObject: json).write(to: file)
            parityCases.append(file.path)
        }

        let trials: [([String], String)] = [
            (["bench", "--cases", suiteFile.path, "--quick", "bad-heads"], "vit: embed_dim 192 is not divisible by num_heads 5"),
            (["parity", parityCases[0]], "num_heads 0 must be at least 1"),
            (["parity", parityCases[1]], "depth -1 must not be negative"),
            (["parity", parityCases[2]], "depth 1000000000 is above the limit"),
            (["train", "--model", "resnet_nano", "--data", "shapetex", "--out", folder.path + "/run", "--epochs", "0"],
             "--epochs must be at least 1"),
            (["train", "--model", "resnet_nano", "--data", "shapetex", "--out", suiteFile.path], "--out \(suiteFile.path) is a file"),
        ]
        for (arguments, fragment) in trials {
            let (status, signalled, output) = try run(binary, arguments)
            XCTAssertFalse(signalled, "\(arguments) ended by a signal; output:\n\(output)")
            XCTAssertNotEqual(status, 0, "\(arguments) must fail; output:\n\(output)")
            XCTAssertTrue(output.contains(fragment), "\(arguments): the output does not contain \"\(fragment)\":\n\(output)")
        }
    }
}
