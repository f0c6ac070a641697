import ArgumentParser
import Foundation
import Patchwork
import PatchworkData
import PatchworkModels
import PatchworkTrain

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a model on a dataset; writes checkpoints, metrics.jsonl, weights and summary.json to --out.",
        discussion: """
        DATA is one of: shapetex (built in), shapetex:size=64, cifar10:PATH, cifar100:PATH, mnist:PATH, \
        fashion-mnist:PATH, folder:PATH (PATH/train and PATH/test with one subfolder per class).
        A checkpoint is written atomically after every epoch, every --checkpoint-every steps (by default \
        whenever 10 minutes have passed since the last one) and on Ctrl-C; --resume continues from it \
        with the settings it was started with, to the same weights bit for bit. One run at a time may \
        use a folder (OUT/.lock); a second one stops at once.
        """)

    @Option(help: "Model variant (see `patchwork models`).") var model: String
    @Option(help: "Dataset spec (see below).") var data: String
    @Option(help: "Output folder.") var out: String
    @Option(help: "Epochs (default: 6 for shapetex, 30 otherwise).") var epochs: Int?
    @Option(help: "Batch size.") var batchSize: Int = 64
    @Option(help: "Peak learning rate (default: 0.1·batch/64 for SGD, 1e-3 for AdamW).") var lr: Float?
    @Option(help: "sgd or adamw.") var optimizer: String = "sgd"
    @Option(help: "Weight decay (default: 5e-4 for SGD, 0.05 for AdamW).") var weightDecay: Float?
    @Option(help: "Warmup epochs before the cosine decay.") var warmupEpochs: Double = 0.5
    @Option(help: "Label smoothing.") var labelSmoothing: Float = 0
    @Option(help: "Clip the gradient norm to this value.") var clipNorm: Float?
    @Option(help: "Mixup alpha (0 = off).") var mixup: Float = 0
    @Option(help: "CutMix alpha (0 = off).") var cutmix: Float = 0
    @Option(help: "none, crop or crop-flip (default: none for shapetex, which already randomises position and orientation; crop-flip otherwise).")
    var augment: String?
    @Option(help: "Image side (default: the dataset's; folders need it).") var imgSize: Int?
    @Option(help: "Refuse images of more than this many pixels (width × height), before decoding them.")
    var maxImagePixels: Int = ImageIO.defaultMaxPixels
    @Option(help: "Random seed (weights, data order, augmentation, dropout).") var seed: UInt64 = 0
    @Flag(help: "Continue from OUT/checkpoint.safetensors.") var resume = false
    @Option(help: "Also write the checkpoint every N optimizer steps (default: whenever 10 minutes have passed since the last one).")
    var checkpointEvery: Int?

    func validate() throws {
        try OptionCheck.model(model)
        if let epochs { try OptionCheck.integer(epochs, "--epochs", atLeast: 1, atMost: 100_000) }
        try OptionCheck.integer(batchSize, "--batch-size", atLeast: 1, atMost: 65_536)
        if let lr { try OptionCheck.positive(lr, "--lr") }
        try OptionCheck.oneOf(optimizer, "--optimizer", ["sgd", "adamw"])
        if let weightDecay { try OptionCheck.nonNegative(weightDecay, "--weight-decay") }
        try OptionCheck.nonNegative(warmupEpochs, "--warmup-epochs")
        try OptionCheck.between(labelSmoothing, "--label-smoothing", 0, 1, highIncluded: false)
        if let clipNorm { try OptionCheck.positive(clipNorm, "--clip-norm") }
        try OptionCheck.nonNegative(mixup, "--mixup")
        try OptionCheck.nonNegative(cutmix, "--cutmix")
        if let augment { try OptionCheck.oneOf(augment, "--augment", ["none", "crop", "crop-flip"]) }
        try OptionCheck.imageSize(imgSize, model: model)
        try OptionCheck.outputFolder(out)
    }

    func run() throws {
        do {
            try train()
        } catch let error as TrainingError where error.message.hasPrefix("interrupted") {
            print("\n\(error)")
            throw ExitCode(130)
        }
    }

    func train() throws {
        var options = TrainingOptions()
        let isShapeTex = data.hasPrefix("shapetex")
        options.epochs = epochs ?? (isShapeTex ? 6 : 30)
        options.batchSize = batchSize
        options.learningRate = lr
        options.optimizer = optimizer
        options.weightDecay = weightDecay
        options.warmupEpochs = warmupEpochs
        options.labelSmoothing = labelSmoothing
        options.clipNorm = clipNorm
        options.mixup = mixup
        options.cutmix = cutmix
        options.augment = augment ?? (isShapeTex ? "none" : "crop-flip")
        options.seed = seed
        if let checkpointEvery, checkpointEvery < 1 {
            throw ValidationError("--checkpoint-every must be at least 1 step (got \(checkpointEvery))")
        }
        // Taken before the data and model are built, so a busy folder stops the run at once.
        let lock = try RunLock(folder: out)
        let variant = try Models.variant(model)
        let (train, test) = try DatasetSpec.openSplits(data, imageSize: imgSize ?? variant.inputSize, channels: 3,
                                                        maxImagePixels: maxImagePixels)
        Generator.global.reseed(seed)
        let net = try variant.create(numClasses: train.classNames.count)
        print("\(model): \(net.parameterCount.formatted()) parameters; \(data): \(train.count) train / \(test.count) test images, \(train.classNames.count) classes, \(train.imageShape)")
        fflush(stdout)
        let trainer = try Trainer(model: net, modelName: model, dataName: data, train: train, test: test,
                                  options: options, outDirectory: out)
        trainer.checkpointEvery = checkpointEvery
        let summary = try trainer.run(resume: resume, lock: lock)
        print(String(format: "test accuracy %.2f%% (top-5 %.2f%%) after %d epochs in %.0f s, %.0f img/s; weights: %@",
                     100 * summary.testAccuracy, 100 * summary.testTop5, summary.epochs, summary.trainSeconds,
                     summary.imagesPerSecond, trainer.weightsPath))
    }
}
