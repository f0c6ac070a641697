import ArgumentParser
import Foundation
import Patchwork
import PatchworkData
import PatchworkModels
import PatchworkNN
import PatchworkTrain

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict", abstract: "Top-5 classes for image files (PNG, JPEG, BMP).")

    @Option(help: "Model variant.") var model: String
    @Option(help: "Weights of a run (weights.safetensors or checkpoint.safetensors).") var weights: String
    @Argument(help: "Image files.") var images: [String]
    @Option(help: "Refuse images of more than this many pixels (width × height), before decoding them.")
    var maxImagePixels: Int = ImageIO.defaultMaxPixels

    func validate() throws {
        try OptionCheck.model(model)
    }

    func run() throws {
        let variant = try Models.variant(model)
        let (net, names) = try loadTrainedModel(model, weights: weights, classes: nil)
        for path in images {
            var image = try ImageIO.load(path, channels: 3, maxPixels: maxImagePixels).unsqueezed(axis: 0)
            if image.shape[1] != variant.inputSize || image.shape[2] != variant.inputSize {
                image = resize(image, size: (variant.inputSize, variant.inputSize), mode: .bilinear, alignCorners: false,
                               antialias: true)
            }
            let probabilities = withoutGrad { net.logits(standardize(image)).softmax(axis: -1) }.scalars
            let top = probabilities.enumerated().sorted { $0.element > $1.element }.prefix(5)
            print(path)
            for (index, p) in top {
                let name = names.map { index < $0.count ? $0[index] : "class \(index)" } ?? "class \(index)"
                print(String(format: "  %6.2f%%  %@", 100 * p, name))
            }
        }
    }
}
