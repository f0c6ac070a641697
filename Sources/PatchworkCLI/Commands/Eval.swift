import ArgumentParser
import Foundation
import Patchwork
import PatchworkData
import PatchworkModels
import PatchworkNN
import PatchworkTrain

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Evaluate weights on a dataset's test split (loss, top-1, top-5).")

    @Option(help: "Model variant.") var model: String
    @Option(help: "Weights (weights.safetensors or checkpoint.safetensors of a run).") var weights: String
    @Option(help: "Dataset spec, as for train.") var data: String
    @Option(help: "Image side (default: the model's).") var imgSize: Int?
    @Option(help: "Batch size.") var batchSize: Int = 128
    @Option(help: "Refuse images of more than this many pixels (width × height), before decoding them.")
    var maxImagePixels: Int = ImageIO.defaultMaxPixels

    func validate() throws {
        try OptionCheck.model(model)
        try OptionCheck.imageSize(imgSize, model: model)
        try OptionCheck.integer(batchSize, "--batch-size", atLeast: 1, atMost: 65_536)
    }

    func run() throws {
        let variant = try Models.variant(model)
        let test = try DatasetSpec.open(data, split: .test, imageSize: imgSize ?? variant.inputSize, channels: 3,
                                        maxImagePixels: maxImagePixels)
        let (net, names) = try loadTrainedModel(model, weights: weights, classes: test.classNames.count)
        if let names, names != test.classNames {
            print("warning: the weights' class names differ from the data's: \(names) vs \(test.classNames)")
        }
        let loader = try DataLoader(dataset: test, batchSize: batchSize, shuffle: false, seed: 0)
        let m = try evaluate(net, loader: loader, preprocess: standardize)
        print(String(format: "%@ on %@: loss %.4f  top-1 %.2f%%  top-5 %.2f%%  (%d images)", model, data, m.loss,
                     100 * m.top1, 100 * m.top5, m.samples))
    }
}
