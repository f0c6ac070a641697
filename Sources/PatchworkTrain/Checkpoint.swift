import Foundation
import Patchwork
import PatchworkNN

/// A resumable training checkpoint: model weights and buffers (reference keys,
/// prefixed "model."), optimizer state ("optimizer."), and the position in
/// the run (epoch and batch done, global step, seed, the unfinished epoch's
/// running train metrics) in the metadata.
/// Written to a temporary file and renamed, so an interrupted write never
/// damages the previous checkpoint.
public struct TrainingCheckpoint {
    public var epoch: Int          // epochs fully done
    public var batch: Int          // batches done in the next epoch (non-zero for a step or Ctrl-C checkpoint)
    public var step: Int           // optimizer steps done
    public var seed: UInt64
    public var modelName: String
    public var classNames: [String]
    public var optimizerName: String
    public var elapsedSeconds: Double
    /// The train loss and accuracy so far of the unfinished epoch (empty at an epoch's end), so that
    /// the epoch's line in metrics.jsonl covers all its batches after a mid-epoch resume.
    public var epochMetrics = ClassificationMetrics()
    /// Processes that trained up to this checkpoint (a record only: the position counts global
    /// batches, so a run resumes from it with any number of processes).
    public var worldSize = 1

    static let modelPrefix = "model.", optimizerPrefix = "optimizer."

    /// Writes the checkpoint; `input`, when given, is recorded for `loadTrainedModel`.
    public func save(model: Module, optimizer: Optimizer, input: ModelInput? = nil, to path: String) throws {
        var tensors: [String: Tensor] = [:]
        var dtypes: [String: Safetensors.DType] = [:]
        for (key, slot) in model.namedSlots() {
            tensors[Self.modelPrefix + key] = slot.checkpointValue
            dtypes[Self.modelPrefix + key] = slot.checkpointDType
        }
        for (key, value) in optimizer.stateDict() { tensors[Self.optimizerPrefix + key] = value }
        let classes = String(decoding: try JSONEncoder().encode(classNames), as: UTF8.self)
        var metadata = [
            "format": "patchwork-checkpoint", "epoch": String(epoch), "batch": String(batch), "step": String(step),
            "seed": String(seed), "model": modelName, "class_names": classes, "optimizer": optimizerName,
            "elapsed_seconds": String(elapsedSeconds), "patchwork": PatchworkVersion.string,
            "epoch_samples": String(epochMetrics.samples), "epoch_loss_sum": String(epochMetrics.lossSum),
            "epoch_top1_hits": String(epochMetrics.top1Hits), "epoch_top5_hits": String(epochMetrics.top5Hits),
            "world_size": String(worldSize),
        ]
        if let input { metadata[ModelInput.metadataKey] = try input.metadataValue() }
        try Safetensors.write(tensors, dtypes: dtypes, metadata: metadata, to: path)
    }

    /// Reads a checkpoint's position and restores `model` and `optimizer` from it.
    public static func load(from path: String, model: Module, optimizer: Optimizer) throws -> TrainingCheckpoint {
        let file = try Safetensors(contentsOf: path)
        let meta = file.metadata
        guard meta["format"] == "patchwork-checkpoint",
              let epoch = meta["epoch"].flatMap(Int.init), let batch = meta["batch"].flatMap(Int.init),
              let step = meta["step"].flatMap(Int.init), let seed = meta["seed"].flatMap(UInt64.init),
              let modelName = meta["model"], let optimizerName = meta["optimizer"],
              let classes = meta["class_names"].flatMap({ try? JSONDecoder().decode([String].self, from: Data($0.utf8)) })
        else {
            throw TrainingError("\(path): not a Patchwork training checkpoint (metadata missing or incomplete)")
        }
        var weights: [String: Tensor] = [:], state: [String: Tensor] = [:]
        for name in file.names {
            if name.hasPrefix(modelPrefix) { weights[String(name.dropFirst(modelPrefix.count))] = try file.tensor(name) }
            else if name.hasPrefix(optimizerPrefix) { state[String(name.dropFirst(optimizerPrefix.count))] = try file.tensor(name) }
        }
        try model.loadStateDict(weights, source: path)
        do { try optimizer.loadStateDict(state) } catch {
            throw TrainingError("\(path): optimizer state does not match (\(error))")
        }
        // Checkpoints written before the running metrics were saved start the epoch's metrics afresh.
        let epochMetrics = ClassificationMetrics(
            samples: meta["epoch_samples"].flatMap(Int.init) ?? 0, lossSum: meta["epoch_loss_sum"].flatMap(Double.init) ?? 0,
            top1Hits: meta["epoch_top1_hits"].flatMap(Int.init) ?? 0, top5Hits: meta["epoch_top5_hits"].flatMap(Int.init) ?? 0)
        return TrainingCheckpoint(epoch: epoch, batch: batch, step: step, seed: seed, modelName: modelName,
                                  classNames: classes, optimizerName: optimizerName,
                                  elapsedSeconds: meta["elapsed_seconds"].flatMap(Double.init) ?? 0,
                                  epochMetrics: epochMetrics, worldSize: meta["world_size"].flatMap(Int.init) ?? 1)
    }
}

public struct TrainingError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
