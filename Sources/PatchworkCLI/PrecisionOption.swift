import ArgumentParser
import Foundation
import Patchwork

/// `--precision`, for the commands that run models (docs/ARCHITECTURE.md, "Precision").
struct PrecisionOption: ParsableArguments {
    @Option(help: "fp32, or bf16: matrix products and convolutions with bf16 inputs and fp32 accumulation (autocast); weights, optimizer state, normalisations, softmax and losses stay fp32.")
    var precision: String = "fp32"

    func validate() throws {
        try OptionCheck.oneOf(precision, "--precision", Precision.allCases.map(\.rawValue))
    }

    /// The checked value (`validate()` ran before any command reads it).
    var value: Precision { Precision(rawValue: precision) ?? .fp32 }
}

/// A command whose whole work runs with matrix products in its `--precision`: it implements
/// `execute()`, and `run()` wraps it in `Precision.with`, which restores the previous setting
/// (commands also run in-process, from tests).
protocol PrecisionCommand: ParsableCommand {
    var precision: Precision { get }
    func execute() throws
}

extension PrecisionCommand {
    func run() throws {
        if precision == .bf16 && !Gemm.hasBF16Kernels {
            FileHandle.standardError.write(Data("note: --precision bf16: \(Gemm.bf16Description)\n".utf8))
        }
        try Precision.with(precision) { try execute() }
    }
}
