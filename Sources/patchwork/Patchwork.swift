import ArgumentParser
import Patchwork

@main
struct PatchworkCLI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "patchwork",
        abstract: "Train, compare and dissect CNNs, Vision Transformers and their hybrids — in Swift, on the CPU.",
        version: PatchworkVersion.string,
        subcommands: [TrainCommand.self, EvalCommand.self, PredictCommand.self, ShapeTexCommand.self, ModelsCommand.self,
                      ParityCommand.self, AnalyzeCommand.self, ReportCommand.self, DemoCommand.self, Bench.self, Version.self])
}
