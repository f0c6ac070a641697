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
        Under Open MPI (`mpirun -np N patchwork train …`) N processes train one model data-parallel: \
        --batch-size is the global batch (each process takes batch/N), gradients are averaged over the \
        processes, and process 0 alone writes to --out (docs/DISTRIBUTED.md).
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
    @Option(help: "Stop as soon as the validation accuracy reaches this fraction (e.g. 0.8), checked every --target-check-steps steps: models compared at equal accuracy. Needs --validation.")
    var targetAccuracy: Double?
    @Option(help: "Steps between validation checks for --target-accuracy.") var targetCheckSteps: Int = 50
    @Option(help: "Hold out N random training images (never trained on) as the validation set for --target-accuracy.")
    var validation: Int?
    @Flag(help: "Continue from OUT/checkpoint.safetensors.") var resume = false
    @Option(help: "Also write the checkpoint every N optimizer steps (default: whenever 10 minutes have passed since the last one).")
    var checkpointEvery: Int?
    @Option(help: "Under mpirun: megabytes of gradients per allreduce.") var bucketMb: Double = 25
    @Flag(help: "Under mpirun: batch norm with the statistics of all processes' batches (SyncBatchNorm); default: each process's own.")
    var syncBn = false
    @OptionGroup var precisionOption: PrecisionOption

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
        try OptionCheck.positive(bucketMb, "--bucket-mb")
        if let targetAccuracy {
            try OptionCheck.between(targetAccuracy, "--target-accuracy", 0, 1, lowIncluded: false, highIncluded: true)
            guard validation != nil else { throw ValidationError("--target-accuracy \(targetAccuracy) needs --validation N (held-out training images to check it on)") }
        }
        try OptionCheck.integer(targetCheckSteps, "--target-check-steps", atLeast: 1, atMost: 1_000_000)
        if let validation { try OptionCheck.integer(validation, "--validation", atLeast: 1, atMost: 10_000_000) }
    }

    func run() throws {
        let group = try ProcessGroup.world()
        do {
            try train(group: group)
            try group.finish()
        } catch let error as TrainingError where error.message.hasPrefix("interrupted") {
            if group.isRoot { print("\n\(error)") }
            try stop(group, code: 130, error: nil)
        } catch {
            try stop(group, code: 1, error: error)
        }
    }

    /// Ends a run that failed. Under mpirun a rank cannot know whether the others failed too, so
    /// it names itself and ends the whole job (MPI_Abort) rather than leave them waiting.
    func stop(_ group: ProcessGroup, code: Int32, error: Error?) throws {
        guard group.size > 1 else {
            if let error { throw error }
            throw ExitCode(code)
        }
        if let error {
            FileHandle.standardError.write(Data("Error: rank \(group.rank) of \(group.size): \(error)\n".utf8))
        }
        fflush(stdout)
        group.abort(code: code)
    }

    func train(group: ProcessGroup) throws {
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
        options.targetAccuracy = targetAccuracy
        options.targetCheckSteps = targetCheckSteps
        options.precision = precisionOption.value
        if let checkpointEvery, checkpointEvery < 1 {
            throw ValidationError("--checkpoint-every must be at least 1 step (got \(checkpointEvery))")
        }
        guard batchSize % group.size == 0 else {
            throw ValidationError("--batch-size \(batchSize) is the global batch and must divide by the \(group.size) processes of this mpirun (each takes an equal share); use a multiple of \(group.size)")
        }
        // Taken before the data and model are built, so a busy folder stops the run at once (rank 0 alone writes to it).
        let lock = group.isRoot ? try RunLock(folder: out) : nil
        let variant = try Models.variant(model)
        let (allTrain, test) = try DatasetSpec.openSplits(data, imageSize: imgSize ?? variant.inputSize, channels: 3,
                                                           maxImagePixels: maxImagePixels)
        let (train, validationSet): (any Dataset, (any Dataset)?) = try validation.map {
            let parts = try SubsetDataset.holdingOut($0, of: allTrain, seed: seed)
            return (parts.train, parts.validation)
        } ?? (allTrain, nil)
        Generator.global.reseed(seed)
        let net = try variant.create(numClasses: train.classNames.count)
        if group.isRoot {
            print("\(model): \(net.parameterCount.formatted()) parameters; \(data): \(train.count) train / \(test.count) test images, \(train.classNames.count) classes, \(train.imageShape)")
            if options.resolvedPrecision == .bf16 {
                print("precision bf16: matrix products and convolutions in bf16 with fp32 accumulation; weights, optimizer, norms and losses fp32"
                      + (Gemm.hasBF16Kernels ? "" : "; \(Gemm.bf16Description)"))
            }
            if group.size > 1 { print("data-parallel over \(group.size) processes: \(batchSize / group.size) images each per step of \(batchSize)") }
            fflush(stdout)
        }
        let trainer = try Trainer(model: net, modelName: model, dataName: data, train: train, test: test,
                                  options: options, outDirectory: out)
        trainer.checkpointEvery = checkpointEvery
        trainer.group = group
        trainer.bucketBytes = max(1, Int(bucketMb * 1_048_576))
        trainer.verbose = group.isRoot
        trainer.syncBatchNorm = syncBn
        trainer.validation = validationSet
        let summary = try trainer.run(resume: resume, lock: lock)
        guard group.isRoot else { return }
        print(String(format: "test accuracy %.2f%% (top-5 %.2f%%) after %d epochs in %.0f s, %.0f img/s; weights: %@",
                     100 * summary.testAccuracy, 100 * summary.testTop5, summary.epochs, summary.trainSeconds,
                     summary.imagesPerSecond, trainer.weightsPath))
    }
}
