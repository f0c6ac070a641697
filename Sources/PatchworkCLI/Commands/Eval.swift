import ArgumentParser
import Foundation
import Patchwork
import PatchworkData
import PatchworkModels
import PatchworkNN
import PatchworkTrain

struct EvalCommand: PrecisionCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Evaluate weights on a dataset's test split (loss, top-1, top-5).",
        discussion: """
        --data takes the specs of train, and imagenet:PATH for ImageNet-1k's validation layout (PATH/<WordNet id>/*.JPEG, \
        one folder per class; PATH/val/… also works). Image files go through the weights' preprocessing: a run's own, \
        or a published checkpoint's evaluation transform (its tag's pretrained configuration, which the options below \
        override value by value).
        """)

    @Option(help: "Model variant, as Patchwork or the reference names it, with its pretrained tag where it has one.")
    var model: String
    @Option(help: "Weights: a run's weights.safetensors or checkpoint.safetensors, or a published checkpoint (.safetensors, .pth, .bin).")
    var weights: String
    @Option(help: "Dataset spec, as for train, or imagenet:PATH.") var data: String
    @Option(help: "Evaluate this many images, drawn at random (seed 0) from the split, for a quick look.") var limit: Int?
    @Option(help: "Batch size.") var batchSize: Int = 64
    @Option(help: "The torch checkpoint's entry holding the state dict (default: as timm finds it).") var key: String?
    @OptionGroup var overrides: PreprocessingOverrides
    @Option(help: "Refuse images of more than this many pixels (width × height), before decoding them.")
    var maxImagePixels: Int = ImageIO.defaultMaxPixels
    @OptionGroup var precisionOption: PrecisionOption

    var precision: Precision { precisionOption.value }

    func validate() throws {
        try OptionCheck.model(model)
        try OptionCheck.imageSize(overrides.imgSize, model: model)
        try OptionCheck.integer(batchSize, "--batch-size", atLeast: 1, atMost: 65_536)
        if let limit { try OptionCheck.integer(limit, "--limit", atLeast: 1, atMost: 100_000_000) }
    }

    func execute() throws {
        let loaded = try loadTrainedModel(model, weights: weights, classes: nil, key: key)
        let input = try overrides.applied(to: loaded.input)
        var test = try DatasetSpec.open(data, split: .test, imageSize: input.imageSize, channels: 3, maxImagePixels: maxImagePixels,
                                        preprocessing: input.preprocessing)
        if let names = loaded.fileClassNames, names != test.classNames {
            print("warning: the weights' class names differ from the data's: \(names.prefix(10)) vs \(test.classNames.prefix(10))")
        }
        guard test.classNames.count == loaded.classCount else {
            throw ValidationError("\(data) has \(test.classNames.count) classes but \(weights) predicts \(loaded.classCount)")
        }
        if let limit { test = SubsetDataset(test, count: limit) }
        print("\(model) on \(data): \(test.count) images, input \(input.summary)")
        fflush(stdout)
        let loader = try DataLoader(dataset: test, batchSize: batchSize, shuffle: false, seed: 0)
        let progress = ProgressReporter()
        let started = Date()
        let m = try evaluate(loaded.model, loader: loader, preprocess: input.normalized) { metrics in
            let seconds = Date().timeIntervalSince(started)
            let rate = Double(metrics.samples) / max(seconds, 1e-9)
            progress.update(label: "eval", done: metrics.samples, total: test.count, imagesPerSecond: rate,
                            etaSeconds: Double(test.count - metrics.samples) / max(rate, 1e-9),
                            detail: String(format: "top-1 %.2f%%  top-5 %.2f%%", 100 * metrics.top1, 100 * metrics.top5))
        }
        progress.finishLine()
        print(String(format: "%@ on %@: loss %.4f  top-1 %.2f%%  top-5 %.2f%%  (%d images)", model, data, m.loss,
                     100 * m.top1, 100 * m.top5, m.samples))
    }
}
