import Foundation
import XCTest

/// The checks a user can trigger stop with their message in the build under test (the README's
/// `swift test -c release`): a model config read from a file, with a head count that does not
/// divide the width, must stop with the layer's words, not a bare "illegal instruction"
/// (what a failed `precondition` gives under -O) or a garbage result (under -Ounchecked).
///
/// The stop ends the process, so the test runs the `patchwork` binary that `swift test` built
/// next to this test bundle, in a subprocess, on a one-case bench suite written to a temp file.
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

    private func run(_ binary: URL, _ arguments: [String]) throws -> (status: Int32, stderr: String) {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        let errPipe = Pipe()
        process.standardError = errPipe
        process.standardOutput = FileHandle.nullDevice
        var env = ProcessInfo.processInfo.environment
        env["SWIFT_BACKTRACE"] = "enable=no"   // the message, not a page of registers
        process.environment = env
        try process.run()
        let data = errPipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func testBadConfigFromAFileStopsWithItsMessage() throws {
        let binary = try patchworkBinary()
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
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("patchwork-bad-heads-\(getpid()).json")
        try suite.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }

        let (status, stderr) = try run(binary, ["bench", "--cases", file.path, "--quick", "bad-heads"])
        XCTAssertNotEqual(status, 0, "a bad config must stop the run; stderr:\n\(stderr)")
        XCTAssertTrue(stderr.contains("Patchwork error in Attention: dim 192 is not divisible by 5 heads"),
                      "the stop must carry the layer's message; stderr:\n\(stderr)")
    }
}
