import Foundation
import Patchwork
import PatchworkData
import PatchworkModels

/// Running loss and top-1/top-5 accuracy over batches.
public struct ClassificationMetrics {
    public private(set) var samples = 0
    public private(set) var lossSum = 0.0
    public private(set) var top1Hits = 0
    public private(set) var top5Hits = 0

    public init() {}

    /// Running totals as saved in a mid-epoch checkpoint.
    public init(samples: Int, lossSum: Double, top1Hits: Int, top5Hits: Int) {
        self.samples = samples; self.lossSum = lossSum; self.top1Hits = top1Hits; self.top5Hits = top5Hits
    }

    /// Adds a batch: its mean loss and logits [B, classes] against labels.
    public mutating func add(loss: Float, logits: Tensor, labels: [Int]) {
        let classes = logits.shape[1]
        let values = logits.scalars
        for (i, label) in labels.enumerated() {
            let row = values[(i * classes)..<((i + 1) * classes)]
            let target = row[row.startIndex + label]
            // Rank of the label: how many classes score strictly higher.
            let higher = row.reduce(0) { $0 + ($1 > target ? 1 : 0) }
            if higher == 0 { top1Hits += 1 }
            if higher < 5 { top5Hits += 1 }
        }
        lossSum += Double(loss) * Double(labels.count)
        samples += labels.count
    }

    /// Adds another set of batches' totals (another rank's, in a distributed run).
    public mutating func add(_ other: ClassificationMetrics) {
        samples += other.samples; lossSum += other.lossSum; top1Hits += other.top1Hits; top5Hits += other.top5Hits
    }

    /// The totals over every rank of `group` (each rank passes its own).
    public func summed(over group: ProcessGroup) throws -> ClassificationMetrics {
        guard group.size > 1 else { return self }
        var totals = [Double(samples), lossSum, Double(top1Hits), Double(top5Hits)]
        try group.allreduceSum(&totals)
        return ClassificationMetrics(samples: Int(totals[0]), lossSum: totals[1], top1Hits: Int(totals[2]), top5Hits: Int(totals[3]))
    }

    public var loss: Double { samples > 0 ? lossSum / Double(samples) : .nan }
    public var top1: Double { samples > 0 ? Double(top1Hits) / Double(samples) : .nan }
    public var top5: Double { samples > 0 ? Double(top5Hits) / Double(samples) : .nan }
}

/// Loss and accuracy of `model` (in eval mode, without the tape) over a loader's epoch 0.
public func evaluate(_ model: ImageClassifier, loader: DataLoader, preprocess: (Tensor) -> Tensor = { $0 },
                     progress: ((ClassificationMetrics) -> Void)? = nil) throws -> ClassificationMetrics {
    model.eval()
    var metrics = ClassificationMetrics()
    let iterator = loader.batches(epoch: 0).makeIterator()
    while let batch = try iterator.nextBatch() {
        try withoutGrad {
            let logits = model.logits(preprocess(batch.images))
            guard logits.shape[1] > (batch.labels.max() ?? 0) else {
                throw TrainingError("the data has label \(batch.labels.max()!) but the model has \(logits.shape[1]) classes")
            }
            metrics.add(loss: crossEntropy(logits: logits, labels: batch.labels).item(), logits: logits, labels: batch.labels)
        }
        progress?(metrics)
    }
    return metrics
}
