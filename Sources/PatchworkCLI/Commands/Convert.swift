import ArgumentParser
import Foundation
import Patchwork
import PatchworkModels
import PatchworkNN
import PatchworkTrain

/// `patchwork convert IN OUT.safetensors`: a weights file (a torch checkpoint or
/// safetensors) rewritten as safetensors, without Python.
struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a torch.save checkpoint (.pth, .pt, .bin) to safetensors, without Python.",
        discussion: """
        The state dict is found as timm finds it (the top level, or under state_dict_ema, model_ema, state_dict, model, \
        module or model_state; --key overrides), and DataParallel's module. prefixes are removed. Nothing in the file is \
        executed: classes other than tensors and OrderedDict (training arguments, numpy scalars) are kept as inert \
        placeholders and listed. Without --model the tensors are written under their keys and dtypes; with --model, \
        through that family's checkpoint filter, and only once they load strictly into the model.
        """)

    @Argument(help: "The checkpoint to read (torch.save zip or legacy file, or safetensors).")
    var input: String

    @Argument(help: "The safetensors file to write.")
    var output: String

    @Option(help: "The top-level key that holds the state dict (default: as timm chooses).")
    var key: String?

    @Option(help: "Model variant: apply its checkpoint filter and check the weights load strictly into it.")
    var model: String?

    func validate() throws {
        try OptionCheck.outputFile(output, "OUT")
        if let model { try OptionCheck.model(model) }
    }

    func run() throws {
        let file = try WeightsFile(contentsOf: input, key: key)
        let count: Int
        if let model {
            // loadTrainedModel filters, loads strictly, and names missing or unused keys when it cannot.
            let net = try loadTrainedModel(model, weights: input, classes: nil, key: key).model
            try net.save(to: output)
            count = net.stateDict().count
        } else {
            var tensors: [String: Tensor] = [:]
            var dtypes: [String: Safetensors.DType] = [:]
            for name in file.names {
                tensors[name] = try file.tensor(name)
                dtypes[name] = file.dtype(name)
            }
            try Safetensors.write(tensors, dtypes: dtypes, metadata: ["format": "pt"], to: output)
            count = tensors.count
        }
        let bytes = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        print("\(input) (\(file.format.rawValue)\(file.stateDictKey.map { ", state dict under \"\($0)\"" } ?? "")) → \(output): "
            + "\(count) tensors, \(bytes) bytes\(model.map { ", loads strictly into \($0)" } ?? "")")
        if !file.placeholders.isEmpty {
            print("placeholders (never called): \(file.placeholders.joined(separator: ", "))")
        }
    }
}
