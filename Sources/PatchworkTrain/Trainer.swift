import Foundation
import Patchwork
import PatchworkData
import PatchworkModels
import PatchworkNN

/// Everything that defines a training run (saved with each checkpoint, so
/// `--resume` continues with exactly the same settings).
public struct TrainingOptions: Codable, Sendable {
    public var epochs = 10
    public var batchSize = 64
    /// "sgd" (momentum) or "adamw".
    public var optimizer = "sgd"
    /// Peak learning rate; nil picks the optimizer's default (see `resolvedLearningRate`).
    public var learningRate: Float?
    public var momentum: Float = 0.9
    public var nesterov = true
    /// nil picks 5e-4 for SGD and 0.05 for AdamW.
    public var weightDecay: Float?
    public var warmupEpochs: Double = 0.5
    public var labelSmoothing: Float = 0
    public var clipNorm: Float?
    public var mixup: Float = 0
    public var cutmix: Float = 0
    /// "none", "crop" (random crop with 1/8 padding) or "crop-flip" (plus horizontal flips).
    public var augment = "crop-flip"
    public var seed: UInt64 = 0
    /// Stop as soon as the validation set's top-1 accuracy reaches this, so that models can be
    /// compared at equal accuracy; nil trains every epoch. Checked every `targetCheckSteps` steps,
    /// more often as the accuracy nears the target. Needs the trainer's `validation` set. The
    /// schedule stays the one of `epochs`. A large validation set is checked in two stages:
    /// `Trainer.firstStageValidation` random images of it, then the whole set only where those are
    /// within three standard errors of the target.
    public var targetAccuracy: Double?
    public var targetCheckSteps = 50
    /// The precision of the run's matrix products (`Precision`, autocast semantics): the whole
    /// run, training steps and evaluations, runs in it. nil is fp32, as in options written
    /// before the setting existed.
    public var precision: Precision?

    public init() {}

    public var resolvedLearningRate: Float {
        learningRate ?? (optimizer == "adamw" ? 1e-3 : 0.1 * Float(batchSize) / 64)
    }

    public var resolvedWeightDecay: Float { weightDecay ?? (optimizer == "adamw" ? 0.05 : 5e-4) }

    public var resolvedPrecision: Precision { precision ?? .fp32 }
}

/// The numbers a finished run reports (DIR/summary.json).
public struct TrainingSummary: Codable, Sendable {
    public var model: String
    public var data: String
    public var epochs: Int
    public var trainSeconds: Double
    public var testAccuracy: Double
    public var testTop5: Double
    public var testLoss: Double
    public var imagesPerSecond: Double
    public var parameters: Int
    public var seed: UInt64
    public var weightsSha256: String
    public var options: TrainingOptions
    /// Processes that trained the model together (nil in summaries written before distributed training).
    public var worldSize: Int?
    /// With `TrainingOptions.targetAccuracy`: where the run reached it (nil when it never did).
    public var target: TargetReached?
    /// With a validation set: its last measured top-1 accuracy.
    public var validationAccuracy: Double?
    /// Training images the run took steps on (steps × batch size).
    public var imagesSeen: Int?
    /// With `TrainingOptions.targetAccuracy`: every check of this process's run, in order.
    public var validationChecks: [ValidationCheck]?
}

/// One check of the target accuracy: the step, the accuracy, and how many validation images it read
/// (the first stage only, or the whole set).
public struct ValidationCheck: Codable, Sendable, Equatable {
    public var step: Int
    public var accuracy: Double
    public var images: Int
    public init(step: Int, accuracy: Double, images: Int) { self.step = step; self.accuracy = accuracy; self.images = images }
}

/// The step at which a run reached its target accuracy on the validation set.
public struct TargetReached: Codable, Sendable {
    public var step: Int
    /// Training images seen by then (steps × batch size).
    public var images: Int
    public var validationAccuracy: Double
}

/// Images in [0, 1] → the models' input scale: (x − 0.5) / 0.25, the same for
/// every dataset, so a checkpoint's predictions need no dataset statistics.
public func standardize(_ images: Tensor) -> Tensor { (images - 0.5) * 4 }

/// Set by SIGINT: the loop saves a checkpoint at the next batch and stops.
nonisolated(unsafe) var interruptRequested = false

/// The training loop: SGD/AdamW with warmup + cosine, metrics per epoch as
/// JSON lines, an atomic resumable checkpoint after every epoch, every
/// `checkpointEvery` steps (or every 10 minutes) and on Ctrl-C, final weights
/// and summary.json. The run holds its folder's lock (`RunLock`) throughout.
///
/// Data-parallel over the ranks of `group` (under `mpirun`): every rank holds the whole model and
/// trains on its shard of each global batch (`DataLoader.Shard`); the gradients are averaged over
/// the ranks (`GradientAverager`) before every rank takes the same optimizer step. Rank 0 alone
/// holds the folder's lock and writes files and progress; docs/DISTRIBUTED.md has the details.
public final class Trainer {
    public let model: ImageClassifier
    public let modelName: String
    public let dataName: String
    public let train: any Dataset
    public let test: any Dataset
    public let options: TrainingOptions
    public let outDirectory: String
    /// Print progress and epoch lines (tests turn it off).
    public var verbose = true
    /// A step checkpoint after every this many optimizer steps; nil: one whenever
    /// `defaultCheckpointSeconds` have passed since the last checkpoint. Where the
    /// checkpoints fall does not change the result: a resume from any step is bit-identical.
    public var checkpointEvery: Int?
    /// Ten minutes: the most work a kill loses by default, for a few seconds of writing per checkpoint.
    public static let defaultCheckpointSeconds = 600.0
    /// Test hook: stop (as if killed, without saving) after this many optimizer steps in total.
    public var stopAfterSteps: Int?
    /// Test hook: behave as if Ctrl-C was pressed after this many steps.
    public var interruptAfterSteps: Int?
    /// The processes training this model together (`ProcessGroup.single`: this one alone).
    public var group = ProcessGroup.single
    /// The size of one gradient allreduce in a distributed run (DistributedDataParallel's default: 25 MB).
    public var bucketBytes = 25 << 20
    /// Batch norm with the statistics of all ranks' batches (as SyncBatchNorm) instead of each rank's own.
    public var syncBatchNorm = false
    /// Held-out images for `TrainingOptions.targetAccuracy` (never trained on; the test set stays untouched).
    public var validation: (any Dataset)?
    /// The first stage of a target check on a validation set of at least twice this many images.
    public static let firstStageValidation = 500

    public var checkpointPath: String { outDirectory + "/checkpoint.safetensors" }
    public var weightsPath: String { outDirectory + "/weights.safetensors" }
    public var metricsPath: String { outDirectory + "/metrics.jsonl" }
    public var summaryPath: String { outDirectory + "/summary.json" }

    public init(model: ImageClassifier, modelName: String, dataName: String, train: any Dataset, test: any Dataset,
                options: TrainingOptions, outDirectory: String) throws {
        guard ["sgd", "adamw"].contains(options.optimizer) else {
            throw TrainingError("unknown optimizer \"\(options.optimizer)\" (sgd, adamw)")
        }
        guard ["none", "crop", "crop-flip"].contains(options.augment) else {
            throw TrainingError("unknown augmentation \"\(options.augment)\" (none, crop, crop-flip)")
        }
        guard train.classNames == test.classNames else {
            throw TrainingError("train and test splits have different classes")
        }
        self.model = model; self.modelName = modelName; self.dataName = dataName
        self.train = train; self.test = test; self.options = options; self.outDirectory = outDirectory
    }

    func makeOptimizer() -> Optimizer {
        let lr = options.resolvedLearningRate, wd = options.resolvedWeightDecay
        if options.optimizer == "adamw" { return AdamW(learningRate: lr, weightDecay: wd) }
        return SGD(learningRate: lr, momentum: options.momentum, nesterov: options.nesterov, weightDecay: wd)
    }

    func makeTransform() -> ImageTransform? {
        let size = train.imageShape[0]
        let pad = max(1, size / 8)
        switch options.augment {
        case "crop": return RandomCrop(size: size, padding: pad)
        case "crop-flip": return Compose([RandomCrop(size: size, padding: pad), RandomHorizontalFlip()])
        default: return nil
        }
    }

    func makeBatchTransform() -> BatchTransform? {
        switch (options.mixup > 0, options.cutmix > 0) {
        case (true, true): return MixupOrCutmix(mixupAlpha: options.mixup, cutmixAlpha: options.cutmix)
        case (true, false): return Mixup(alpha: options.mixup)
        case (false, true): return CutMix(alpha: options.cutmix)
        default: return nil
        }
    }

    /// Trains (from scratch, or from DIR/checkpoint.safetensors with `resume`) and returns the summary.
    /// `lock` is the folder's lock when the caller took it already (the CLI does, before loading
    /// data); otherwise the run takes it, and a folder another run holds stops it at once.
    /// Everything runs in `options.resolvedPrecision`, recorded in the summary's options.
    @discardableResult
    public func run(resume: Bool = false, lock: RunLock? = nil) throws -> TrainingSummary {
        try Precision.with(options.resolvedPrecision) { try runInPrecision(resume: resume, lock: lock) }
    }

    private func runInPrecision(resume: Bool, lock: RunLock?) throws -> TrainingSummary {
        if let lock, lock.folder != outDirectory {
            throw TrainingError("the run folder's lock is for \(lock.folder), not \(outDirectory)")
        }
        // Only rank 0 writes, so only rank 0 locks the folder.
        let writes = group.isRoot
        let verbose = self.verbose && writes
        let ownLock = lock == nil && writes ? try RunLock(folder: outDirectory) : nil
        defer { ownLock?.release() }
        if let every = checkpointEvery, every < 1 {
            throw TrainingError("--checkpoint-every must be at least 1 step (got \(every))")
        }
        guard options.batchSize % group.size == 0 else {
            throw TrainingError("--batch-size \(options.batchSize) is the global batch and must divide by the \(group.size) processes (each takes an equal share); use a multiple of \(group.size)")
        }
        // Under the lock no other process writes here, so any temporary file is a killed writer's.
        let stale = writes ? AtomicFile.removeStaleTemporaries(in: outDirectory) : []
        if verbose, !stale.isEmpty { print("removed \(stale.count) unfinished file(s) a killed run left: \(stale.joined(separator: ", "))") }

        let optimizer = makeOptimizer()
        let classes = train.classNames
        // How images reach the model, recorded in the weights and checkpoints for eval, predict and the analyses.
        let modelInput = ModelInput.patchwork(imageSize: train.imageShape[0])
        let metricsLog = MetricsLog(path: metricsPath)
        var start = TrainingCheckpoint(epoch: 0, batch: 0, step: 0, seed: options.seed, modelName: modelName,
                                       classNames: classes, optimizerName: options.optimizer, elapsedSeconds: 0)
        if resume {
            guard !writes || FileManager.default.fileExists(atPath: checkpointPath) else {
                throw TrainingError("--resume: no checkpoint at \(checkpointPath) (a run stopped before its first checkpoint starts again without --resume)")
            }
            let saved = try loadCheckpoint(model: model, optimizer: optimizer)
            guard saved.modelName == modelName else {
                throw TrainingError("\(checkpointPath) is a checkpoint of \(saved.modelName), not \(modelName)")
            }
            guard saved.classNames == classes else {
                throw TrainingError("\(checkpointPath) was trained on \(saved.classNames.count) classes; the data has \(classes.count)")
            }
            start = saved
            // Epochs after the checkpoint are trained again: their lines go.
            if writes { try metricsLog.truncate(toEpochs: saved.epoch) }
            if verbose { print("resuming \(modelName) at epoch \(saved.epoch + 1), batch \(saved.batch)") }
        } else if writes {
            try metricsLog.reset()
        }
        // Every rank starts from rank 0's weights and buffers (equal already when built from the
        // same seed or loaded from the same checkpoint; this makes sure).
        try broadcastFromRoot(model.namedSlots().map { $0.1 })
        let averager = GradientAverager(group: group, bucketBytes: bucketBytes)
        if syncBatchNorm && group.size > 1 {
            let group = self.group
            BatchNormSync.sum = { values in
                var sums = values
                do { try group.allreduceSum(&sums) } catch {
                    // Inside the forward or backward pass there is no way to throw: end the job.
                    FileHandle.standardError.write(Data("Error: rank \(group.rank) of \(group.size): synchronised batch norm: \(error)\n".utf8))
                    group.abort(code: 1)
                }
                return sums
            }
        }
        defer { BatchNormSync.sum = nil }
        let buffers = model.namedSlots().map { $0.1 }.filter { $0.kind == .buffer }
        let shard = DataLoader.Shard(rank: group.rank, count: group.size)

        let trainLoader = DataLoader(dataset: train, batchSize: options.batchSize, shuffle: true, dropLast: true,
                                     transform: makeTransform(), batchTransform: makeBatchTransform(), seed: options.seed,
                                     shard: shard)
        let testBatch = max(options.batchSize, 128)
        let testLoader = DataLoader(dataset: test, batchSize: (testBatch + group.size - 1) / group.size * group.size,
                                    shuffle: false, dropLast: false, seed: options.seed, shard: shard)
        let validationLoader = validation.map {
            DataLoader(dataset: $0, batchSize: testLoader.batchSize, shuffle: false, dropLast: false, seed: options.seed, shard: shard)
        }
        // A large validation set makes the stopping accuracy precise but costs a pass per check, and
        // most checks come while the model is far below the target: those look at a first stage of
        // the set only, a seeded random sample of it (a class-sorted set's first images would be a
        // few classes).
        let firstStage = validation.flatMap { v -> DataLoader? in
            guard v.count >= 2 * Self.firstStageValidation else { return nil }
            return DataLoader(dataset: SubsetDataset(v, count: Self.firstStageValidation, seed: options.seed), batchSize: testLoader.batchSize,
                              shuffle: false, dropLast: false, seed: options.seed, shard: shard)
        }
        if let target = options.targetAccuracy {
            guard validationLoader != nil else {
                throw TrainingError("a target accuracy (\(target)) needs a validation set: hold training images out for it")
            }
            guard target > 0 && target <= 1, options.targetCheckSteps >= 1 else {
                throw TrainingError("the target accuracy must be in (0, 1] and checked every ≥ 1 steps (got \(target), every \(options.targetCheckSteps))")
            }
        }
        guard trainLoader.count > 0 else {
            throw TrainingError("the training set has \(train.count) images, fewer than one batch of \(options.batchSize)")
        }
        let stepsPerEpoch = trainLoader.count
        let schedule = WarmupCosine(base: options.resolvedLearningRate,
                                    warmupSteps: Int(options.warmupEpochs * Double(stepsPerEpoch)),
                                    totalSteps: options.epochs * stepsPerEpoch)
        let progress = ProgressReporter()

        interruptRequested = false
        // The ranks stop together: a rank's Ctrl-C reaches the others through the step's allreduce.
        var stopRequested = false
        signal(SIGINT) { _ in
            interruptRequested = true
            signal(SIGINT, SIG_DFL)  // a second Ctrl-C stops at once
        }
        defer { signal(SIGINT, SIG_DFL) }

        var step = start.step
        var elapsed = start.elapsedSeconds
        var trainImages = 0, trainSeconds = 0.0
        var lastTest = ClassificationMetrics()
        var lastCheckpoint = Date()
        var reached: TargetReached?
        var lastValidation: Double?
        /// When to check the target next, and every check so far (`stepsToNextCheck` reads them).
        var nextCheck = step + options.targetCheckSteps
        var checks: [ValidationCheck] = []
        /// The position after `batch` batches of `epoch` (0-based), with that epoch's running metrics.
        func saveCheckpoint(epoch: Int, batch: Int, metrics: ClassificationMetrics, elapsed: Double) throws {
            guard writes else { return }
            let checkpoint = TrainingCheckpoint(epoch: epoch, batch: batch, step: step, seed: options.seed, modelName: modelName,
                                                classNames: classes, optimizerName: options.optimizer,
                                                elapsedSeconds: elapsed, epochMetrics: metrics, worldSize: group.size)
            try checkpoint.save(model: model, optimizer: optimizer, input: modelInput, to: checkpointPath)
            lastCheckpoint = Date()
        }
        for epoch in start.epoch..<options.epochs {
            let epochStart = Date()
            let firstBatch = epoch == start.epoch ? start.batch : 0
            model.train()
            var metrics = epoch == start.epoch ? start.epochMetrics : ClassificationMetrics()
            let iterator = trainLoader.batches(epoch: epoch, startingAt: firstBatch).makeIterator()
            var batchIndex = firstBatch
            while let batch = try iterator.nextBatch() {
                if let stop = stopAfterSteps, step >= stop { return try partialSummary() }
                if interruptAfterSteps == step { stopRequested = true }
                // One process stops at the next batch after Ctrl-C; ranks stop where all of them learnt of it.
                if stopRequested || (group.size == 1 && interruptRequested) {
                    progress.finishLine()
                    try saveCheckpoint(epoch: epoch, batch: batchIndex, metrics: metrics,
                                       elapsed: elapsed + Date().timeIntervalSince(epochStart))
                    throw TrainingError("interrupted: checkpoint saved to \(checkpointPath) (epoch \(epoch + 1), batch \(batchIndex)); continue with --resume")
                }
                let t0 = Date()
                optimizer.learningRate = schedule.learningRate(step: step)
                model.reseedStochasticLayers(seed: options.seed, step: step)
                let input = standardize(batch.images)
                var logits = Tensor(0)
                var (loss, grads) = valueAndGrad(model) {
                    logits = model.logits(input)
                    if let targets = batch.targets {
                        return crossEntropy(logits: logits, softTargets: targets, labelSmoothing: options.labelSmoothing)
                    }
                    return crossEntropy(logits: logits, labels: batch.labels, labelSmoothing: options.labelSmoothing)
                }
                // The batch's totals over all ranks (and whether any rank was asked to stop).
                var batchMetrics = ClassificationMetrics()
                batchMetrics.add(loss: loss.item(), logits: logits.detached(), labels: batch.labels)
                var totals = [Double(batchMetrics.samples), batchMetrics.lossSum, Double(batchMetrics.top1Hits),
                              Double(batchMetrics.top5Hits), interruptRequested ? 1 : 0]
                try group.allreduceSum(&totals)
                batchMetrics = ClassificationMetrics(samples: Int(totals[0]), lossSum: totals[1], top1Hits: Int(totals[2]),
                                                     top5Hits: Int(totals[3]))
                if totals[4] > 0 { stopRequested = true }
                // Checked before the step, so a non-finite loss never reaches the weights; the files
                // written so far (checkpoint, metrics.jsonl) stay as they were. Every rank sees the same total.
                let lossValue = group.size > 1 ? Float(batchMetrics.loss) : loss.item()
                guard lossValue.isFinite else {
                    progress.finishLine()
                    throw TrainingError("the training loss became \(lossValue) at epoch \(epoch + 1), step \(step + 1) (batch \(batchIndex + 1) of \(stepsPerEpoch)) with learning rate \(optimizer.learningRate); lower --lr or set --clip-norm. The last checkpoint, if any, is \(checkpointPath)")
                }
                try averager.average(&grads)
                if let maxNorm = options.clipNorm { _ = clipGradientNorm(&grads, maxNorm: maxNorm) }
                optimizer.step(model, gradients: grads)
                // Batch norm's running statistics follow each rank's own batches: rank 0's are kept
                // (as DistributedDataParallel's broadcast_buffers), so the ranks stay identical.
                if group.size > 1, !buffers.isEmpty { try broadcastFromRoot(buffers) }
                step += 1
                batchIndex += 1
                metrics.add(batchMetrics)
                trainSeconds += Date().timeIntervalSince(t0)
                trainImages += batchMetrics.samples
                // A step checkpoint, unless the epoch's own checkpoint follows right away.
                if batchIndex < stepsPerEpoch {
                    let due = checkpointEvery.map { step % $0 == 0 }
                        ?? (Date().timeIntervalSince(lastCheckpoint) >= Self.defaultCheckpointSeconds)
                    if due {
                        try saveCheckpoint(epoch: epoch, batch: batchIndex, metrics: metrics,
                                           elapsed: elapsed + Date().timeIntervalSince(epochStart))
                    }
                }
                if verbose {
                    let rate = Double(trainImages) / max(trainSeconds, 1e-9)
                    let remaining = Double((options.epochs - epoch) * stepsPerEpoch - batchIndex) * Double(options.batchSize) / rate
                    progress.update(label: "epoch \(epoch + 1)/\(options.epochs)", done: batchIndex, total: stepsPerEpoch,
                                    imagesPerSecond: rate, etaSeconds: remaining,
                                    detail: String(format: "loss %.4f  acc %.1f%%", metrics.loss, 100 * metrics.top1))
                }
                if let target = options.targetAccuracy, let validationLoader, step >= nextCheck {
                    var check = ValidationCheck(step: step, accuracy: 0, images: validation?.count ?? 0)
                    if let firstStage {
                        check.accuracy = try evaluate(model, loader: firstStage, preprocess: standardize).summed(over: group).top1
                        check.images = Self.firstStageValidation
                        // Three standard errors of the first stage's accuracy at the target: a model this far
                        // below it has not reached it; one nearer is checked on the whole set.
                        let margin = 3 * (target * (1 - target) / Double(Self.firstStageValidation)).squareRoot()
                        if check.accuracy >= target - margin {
                            check.accuracy = try evaluate(model, loader: validationLoader, preprocess: standardize).summed(over: group).top1
                            check.images = validation?.count ?? 0
                        }
                    } else {
                        check.accuracy = try evaluate(model, loader: validationLoader, preprocess: standardize).summed(over: group).top1
                    }
                    model.train()
                    lastValidation = check.accuracy
                    if check.accuracy >= target {
                        checks.append(check)
                        reached = TargetReached(step: step, images: step * options.batchSize, validationAccuracy: check.accuracy)
                        break
                    }
                    nextCheck = step + Self.stepsToNextCheck(after: checks, check, target: target, most: options.targetCheckSteps)
                    checks.append(check)
                }
            }
            progress.finishLine()
            try checkRanksAgree(after: epoch + 1)
            lastTest = try evaluate(model, loader: testLoader, preprocess: standardize).summed(over: group)
            elapsed += Date().timeIntervalSince(epochStart)
            if writes { try metricsLog.append(EpochRecord(
                epoch: epoch + 1, step: step, lr: Double(optimizer.learningRate),
                trainLoss: metrics.loss, trainTop1: metrics.top1,
                testLoss: lastTest.loss, testTop1: lastTest.top1, testTop5: lastTest.top5,
                seconds: elapsed, imagesPerSecond: Double(trainImages) / max(trainSeconds, 1e-9))) }
            if verbose {
                print(String(format: "epoch %d/%d  train loss %.4f acc %.2f%%  test loss %.4f acc %.2f%% top-5 %.2f%%  %.0fs",
                             epoch + 1, options.epochs, metrics.loss, 100 * metrics.top1, lastTest.loss,
                             100 * lastTest.top1, 100 * lastTest.top5, elapsed))
                if group.size > 1 {
                    print(String(format: "  %d processes: allreduce %.1f s of %.1f s of steps (%.1f%%, rank 0)", group.size,
                                 averager.allreduceSeconds, trainSeconds, 100 * averager.allreduceSeconds / max(trainSeconds, 1e-9)))
                }
                fflush(stdout)
            }
            // The last step left finite losses but weights that are not: stop before they are saved.
            guard lastTest.samples == 0 || lastTest.loss.isFinite else {
                throw TrainingError("the test loss became \(lastTest.loss) after epoch \(epoch + 1) (step \(step)): the weights are no longer finite; lower --lr or set --clip-norm. The last checkpoint, if any, is \(checkpointPath)")
            }
            try saveCheckpoint(epoch: epoch + 1, batch: 0, metrics: ClassificationMetrics(), elapsed: elapsed)
            if let reached {
                if verbose {
                    print(String(format: "reached the target: validation accuracy %.2f%% ≥ %.2f%% at step %d (%d images)",
                                 100 * reached.validationAccuracy, 100 * options.targetAccuracy!, reached.step, reached.images))
                }
                break
            }
        }
        if start.epoch >= options.epochs {
            lastTest = try evaluate(model, loader: testLoader, preprocess: standardize).summed(over: group)
        }
        guard writes else {
            return try partialSummary()
        }
        try model.save(to: weightsPath, metadata: ["model": modelName,
                                                   "class_names": String(decoding: try JSONEncoder().encode(classes), as: UTF8.self),
                                                   ModelInput.metadataKey: try modelInput.metadataValue()])
        let summary = TrainingSummary(
            model: modelName, data: dataName, epochs: options.epochs, trainSeconds: elapsed, testAccuracy: lastTest.top1,
            testTop5: lastTest.top5, testLoss: lastTest.loss,
            imagesPerSecond: trainSeconds > 0 ? Double(trainImages) / trainSeconds : 0,
            parameters: model.parameterCount, seed: options.seed,
            weightsSha256: SHA256.hex(try Data(contentsOf: URL(fileURLWithPath: weightsPath))), options: recordedOptions,
            worldSize: group.size, target: reached, validationAccuracy: lastValidation,
            imagesSeen: step * options.batchSize, validationChecks: options.targetAccuracy == nil ? nil : checks)
        try RunJSON.write(summary, to: summaryPath)
        return summary
    }

    /// Steps from `check` to the next target check. A fast learner gains 20 points in 20 steps and
    /// would stop far above the target, so the next check comes halfway to where the target would be
    /// reached at the recent rate (at least 1 step later, at most `most`). The rate is taken over
    /// the last `3 × most` steps, from the latest earlier check at least that old (or the first):
    /// between two adjacent checks, evaluation noise (and batch-norm statistics catching up) can
    /// show a fall while the model is rising fast, which would reset the interval to `most`.
    public static func stepsToNextCheck(after earlier: [ValidationCheck], _ check: ValidationCheck, target: Double, most: Int) -> Int {
        let window = 3 * most
        guard let reference = earlier.last(where: { check.step - $0.step >= window }) ?? earlier.first,
              check.accuracy > reference.accuracy, check.step > reference.step else { return most }
        let rate = (check.accuracy - reference.accuracy) / Double(check.step - reference.step)
        let stepsToTarget = (target - check.accuracy) / rate
        return min(most, max(1, Int(stepsToTarget / 2)))
    }

    /// The options as the summary records them: with the precision the run used, even when left nil.
    private var recordedOptions: TrainingOptions {
        var recorded = options
        recorded.precision = options.resolvedPrecision
        return recorded
    }

    /// The summary of a run stopped by `stopAfterSteps` (nothing is written).
    private func partialSummary() throws -> TrainingSummary {
        TrainingSummary(model: modelName, data: dataName, epochs: options.epochs, trainSeconds: 0, testAccuracy: .nan,
                        testTop5: .nan, testLoss: .nan, imagesPerSecond: 0, parameters: model.parameterCount,
                        seed: options.seed, weightsSha256: "", options: recordedOptions, worldSize: group.size)
    }

    // MARK: Distributed runs

    /// The checkpoint at `checkpointPath`, restored into `model` and `optimizer` on every rank: rank 0
    /// reads the file and sends its bytes, so the other ranks need no access to the run folder.
    private func loadCheckpoint(model: Module, optimizer: Optimizer) throws -> TrainingCheckpoint {
        guard group.size > 1 else { return try TrainingCheckpoint.load(from: checkpointPath, model: model, optimizer: optimizer) }
        var bytes: [UInt8] = []
        if group.isRoot {
            do { bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: checkpointPath))) } catch {
                throw TrainingError("cannot read \(checkpointPath): \(error.localizedDescription)")
            }
        }
        bytes = try group.broadcast(bytes: bytes)
        if group.isRoot { return try TrainingCheckpoint.load(from: checkpointPath, model: model, optimizer: optimizer) }
        let copy = NSTemporaryDirectory() + "/patchwork-rank\(group.rank)-\(getpid())-checkpoint.safetensors"
        try AtomicFile.write(Data(bytes), to: copy)
        defer { try? FileManager.default.removeItem(atPath: copy) }
        return try TrainingCheckpoint.load(from: copy, model: model, optimizer: optimizer)
    }

    /// Gives `slots` rank 0's values on every rank.
    private func broadcastFromRoot(_ slots: [TensorSlot]) throws {
        guard group.size > 1 else { return }
        let values = try group.broadcast(slots.map { $0.value })
        for (slot, value) in zip(slots, values) { slot.value = value }
    }

    /// FNV-1a over the bit patterns of every parameter and buffer, in the model's order.
    static func weightsChecksum(_ model: Module) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for (_, slot) in model.namedSlots() {
            for value in slot.value.scalars {
                hash = (hash ^ UInt64(value.bitPattern)) &* 0x0000_0100_0000_01b3
            }
        }
        return hash
    }

    /// Stops the run when the ranks' weights and buffers are no longer bit-identical (they take the
    /// same steps from the same averaged gradients, so they never should).
    private func checkRanksAgree(after epoch: Int) throws {
        guard group.size > 1 else { return }
        let checksums = try group.allgather(Self.weightsChecksum(model))
        let differing = checksums.indices.filter { checksums[$0] != checksums[0] }
        guard differing.isEmpty else {
            throw TrainingError("after epoch \(epoch) the weights of rank(s) \(differing.map(String.init).joined(separator: ", ")) differ from rank 0's (checksums \(checksums.map { String($0, radix: 16) }.joined(separator: " "))): the processes no longer train the same model; the last checkpoint is \(checkpointPath)")
        }
    }
}
