import ArgumentParser
import Foundation
import Patchwork
import PatchworkModels

struct ModelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "List every model variant with its parameter count and GFLOPs (with --json, its reference arguments and pretrained configurations).",
        discussion: """
        Parameters are counted with 1000 classes, as the references publish them. GFLOPs are per image at the \
        variant's default input size, counting matrix products and convolutions only, with one multiply-add = \
        2 FLOPs (so twice the "GMACs" that timm and papers quote). A variant is named as Patchwork or its reference \
        names it, with a pretrained tag (`vit_tiny_patch16_224.augreg_in21k_ft_in1k`) or as a hub repository \
        (`timm/...`, `microsoft/cvt-13`); --json lists each variant's published tags with their evaluation settings \
        (input size, interpolation, crop, mean, std, classes, label set) and where to download them.
        """)

    @Flag(help: "Print JSON.")
    var json = false

    @Option(help: "Only variants of this family.")
    var family: String?

    func run() throws {
        var rows: [[String: Any]] = []
        let variants = Models.list().filter { family == nil || $0.family == family }
        // Columns as wide as the longest name, so rows print as they are measured (one by one).
        let nameWidth = (variants.map(\.name.count).max() ?? 0) + 2
        let familyWidth = (variants.map(\.family.count).max() ?? 0) + 2
        for v in variants {
            let model = try v.create(numClasses: 1000)
            model.eval()
            let input = Tensor.zeros([1, v.inputSize, v.inputSize, 3])
            let (_, flops) = FlopCounter.count { withoutGrad { model.logits(input) } }
            var row: [String: Any] = ["name": v.name, "family": v.family, "params": model.parameterCount,
                                      "gflops": flops / 1e9, "input_size": v.inputSize]
            if let arguments = v.arguments {
                row["arguments"] = try JSONSerialization.jsonObject(with: JSONEncoder().encode(JSONValue.object(arguments)))
            }
            let pretrained = Pretrained.configs(for: v.name)
            if !pretrained.isEmpty {
                row["pretrained"] = try JSONSerialization.jsonObject(with: JSONEncoder().encode(pretrained))
            }
            rows.append(row)
            if !json {
                let params = model.parameterCount.formatted()
                print(v.name.padding(toLength: nameWidth, withPad: " ", startingAt: 0)
                      + v.family.padding(toLength: familyWidth, withPad: " ", startingAt: 0)
                      + String(repeating: " ", count: max(0, 12 - params.count)) + params
                      + String(format: " params %8.2f GFLOPs  %dx%d", flops / 1e9, v.inputSize, v.inputSize))
                fflush(stdout)
            }
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: rows, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            print(String(decoding: data, as: UTF8.self))
        }
    }
}

extension Int {
    func formatted() -> String {
        let s = String(self)
        var out = ""
        for (i, c) in s.reversed().enumerated() { if i > 0 && i % 3 == 0 { out.append(",") }; out.append(c) }
        return String(out.reversed())
    }
}
