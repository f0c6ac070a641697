import ArgumentParser
import Foundation
import Patchwork
import PatchworkData
import PatchworkModels
import PatchworkNN
import PatchworkTrain

struct PredictCommand: PrecisionCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict", abstract: "The top classes, with probabilities and names, for image files (PNG, JPEG, BMP).",
        discussion: """
        --weights takes a run's weights (or checkpoint) or a published checkpoint, as safetensors or a torch.save file \
        (.pth, .pyth, .bin). A run's images go through the preprocessing it was trained with, recorded in its files; a \
        published checkpoint's through its reference's evaluation transform (the tag's pretrained configuration: \
        --model vit_tiny_patch16_224.augreg_in21k_ft_in1k; the variant's default tag when none is named). \
        `patchwork models --json` shows each tag's values; the options below override them.
        """)

    @Option(help: "Model variant, as Patchwork or the reference names it, with its pretrained tag where it has one.")
    var model: String
    @Option(help: "Weights: a run's weights.safetensors or checkpoint.safetensors, or a published checkpoint (.safetensors, .pth, .bin).")
    var weights: String
    @Argument(help: "Image files.") var images: [String]
    @Option(help: "How many classes to show per image.") var top: Int = 5
    @Option(help: "Write the predictions as JSON to this file, or to standard output with -.") var json: String?
    @Option(help: "The torch checkpoint's entry holding the state dict (default: as timm finds it).") var key: String?
    @OptionGroup var overrides: PreprocessingOverrides
    @Option(help: "Refuse images of more than this many pixels (width × height), before decoding them.")
    var maxImagePixels: Int = ImageIO.defaultMaxPixels
    @OptionGroup var precisionOption: PrecisionOption

    var precision: Precision { precisionOption.value }

    func validate() throws {
        try OptionCheck.model(model)
        try OptionCheck.integer(top, "--top", atLeast: 1, atMost: 100_000)
        if let json, json != "-" { try OptionCheck.outputFile(json, "--json") }
        guard !images.isEmpty else { throw ValidationError("give at least one image file") }
    }

    struct Prediction: Encodable {
        struct Entry: Encodable { let `class`: Int; let label: String; let probability: Double }
        let image: String
        let top: [Entry]
    }

    func execute() throws {
        let loaded = try loadTrainedModel(model, weights: weights, classes: nil, key: key)
        let input = try overrides.applied(to: loaded.input)
        let toStandardOutput = json == "-"
        if !toStandardOutput {
            print("\(model): \(loaded.model.parameterCount.formatted()) parameters, input \(input.summary)")
        }
        var predictions: [Prediction] = []
        for path in images {
            let pixels = try input.pixels(contentsOf: path, maxPixels: maxImagePixels).unsqueezed(axis: 0)
            let probabilities = withoutGrad { loaded.model.logits(input.normalized(pixels)).softmax(axis: -1) }.scalars
            let best = probabilities.indices.sorted { probabilities[$0] > probabilities[$1] || (probabilities[$0] == probabilities[$1] && $0 < $1) }
            let entries = best.prefix(top).map { index in
                Prediction.Entry(class: index, label: loaded.label(index), probability: Double(probabilities[index]))
            }
            predictions.append(Prediction(image: path, top: entries))
            if !toStandardOutput {
                print(path)
                for e in entries { print(String(format: "  %6.2f%%  %5d  %@", 100 * e.probability, e.class, e.label)) }
            }
        }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let data = try encoder.encode(predictions)
            if toStandardOutput {
                FileHandle.standardOutput.write(data + Data("\n".utf8))
            } else {
                try AtomicFile.write(data, to: json)
                print("wrote \(json)")
            }
        }
    }
}
