import ArgumentParser
import Patchwork

/// The `patchwork` command line: every command is in `Commands/<Command>.swift`;
/// the `patchwork` executable only calls `PatchworkCommand.main()`, so tests can
/// parse and run the commands in-process.
public struct PatchworkCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "patchwork",
        abstract: "Train, compare and dissect CNNs, Vision Transformers and their hybrids — in Swift, on the CPU.",
        version: PatchworkVersion.string,
        subcommands: [TrainCommand.self, EvalCommand.self, PredictCommand.self, ShapeTexCommand.self, ModelsCommand.self,
                      ParityCommand.self, ConvertCommand.self, AnalyzeCommand.self, StudyCommand.self, ReportCommand.self, DemoCommand.self, Bench.self,
                      Version.self])

    public init() {}

    /// Refuses a bad engine environment variable (`EngineEnvironment.problem`) as a usage error,
    /// before any command runs.
    public static func checkEnvironment() throws {
        if let problem = EngineEnvironment.problem { throw ValidationError(problem) }
    }
}
