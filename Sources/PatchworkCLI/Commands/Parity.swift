import ArgumentParser
import Foundation
import PatchworkModels

struct ParityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parity",
        abstract: "Check models against reference runs (fixture CASE.json + CASE.safetensors).",
        discussion: """
        For each case: builds the family from the case's config, loads its weights, and compares eval logits, \
        train logits, the loss and every gradient against the reference within the case's tolerances. \
        Prints one line per case; exits non-zero unless every case passes.
        """)

    @Argument(help: "Case files (.json with a .safetensors beside it).")
    var cases: [String]

    func run() throws {
        var failed = 0
        for path in cases {
            do {
                let result = try Parity.run(casePath: path)
                print(result.line)
                if !result.passed { failed += 1 }
            } catch {
                print("FAIL \(URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent)  \(error)")
                failed += 1
            }
            fflush(stdout)
        }
        if cases.count > 1 { print("\(cases.count - failed) passed, \(failed) failed") }
        if failed > 0 { throw ExitCode.failure }
    }
}
