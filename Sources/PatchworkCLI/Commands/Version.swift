import ArgumentParser
import Patchwork

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version and the compute backend.")

    func run() {
        print("patchwork \(PatchworkVersion.string)")
        print("GEMM: \(Gemm.description)")
    }
}
