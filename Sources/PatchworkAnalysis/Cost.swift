import Foundation
import Patchwork
import PatchworkNN
import PatchworkModels

/// What a model costs: parameters, FLOPs, peak memory and throughput, measured
/// on this machine (the `analyze cost` table and the accuracy-versus-FLOPs plot).
public struct ModelCost: Codable {
    public let model: String
    public let parameters: Int
    /// Forward FLOPs per image (matrix products and convolutions, multiply-add = 2).
    public let gflopsPerImage: Double
    /// Inference (eval mode, no tape) and training-step (forward + backward + SGD) throughput.
    public let inferImagesPerSecond: Double
    public let trainImagesPerSecond: Double
    /// Peak resident memory of a training step above what the process held before, MiB.
    public let trainPeakMemoryMB: Double
    public let batch: Int
    public let inputSize: Int

    /// Measures `model` on random inputs [batch, size, size, 3]; each mode is
    /// warmed up once, then timed for at least `seconds` (and at least 2 steps).
    public static func measure(_ model: ImageClassifier, name: String, inputSize: Int, batch: Int, classes: Int,
                               seconds: Double = 2) -> ModelCost {
        let x = Tensor.randomNormal([batch, inputSize, inputSize, 3], generator: Generator(seed: 1))
        let labels = (0..<batch).map { $0 % classes }
        let saved = model.stateDict()
        defer { try? model.loadStateDict(saved) }

        model.eval()
        let flops = FlopCounter.count { withoutGrad { model.logits(x) } }.flops / Double(batch)
        let infer = imagesPerSecond(batch: batch, seconds: seconds) { _ = withoutGrad { model.logits(x) } }

        model.train()
        let optimizer = SGD(learningRate: 1e-3, momentum: 0.9)
        let before = ProcessMemory.resetPeak()
        let train = imagesPerSecond(batch: batch, seconds: seconds) {
            let (_, grads) = valueAndGrad(model) { crossEntropy(logits: model.logits(x), labels: labels) }
            optimizer.step(model, gradients: grads)
        }
        let peak = ProcessMemory.peakResidentMB()
        model.eval()
        return ModelCost(model: name, parameters: model.parameterCount, gflopsPerImage: flops / 1e9,
                         inferImagesPerSecond: infer, trainImagesPerSecond: train,
                         trainPeakMemoryMB: before.map { max(0, peak - $0) } ?? peak, batch: batch, inputSize: inputSize)
    }

    static func imagesPerSecond(batch: Int, seconds: Double, _ step: () -> Void) -> Double {
        step()  // warm-up: buffer pool, lazy initialisation
        var steps = 0
        let start = DispatchTime.now().uptimeNanoseconds
        var elapsed = 0.0
        while steps < 2 || elapsed < seconds {
            step()
            steps += 1
            elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        return Double(steps * batch) / elapsed
    }
}

/// The process's resident memory from /proc/self/status (Linux).
public enum ProcessMemory {
    /// Peak resident set size so far (VmHWM), MiB; 0 where /proc is missing.
    public static func peakResidentMB() -> Double { field("VmHWM") }

    /// Current resident set size (VmRSS), MiB.
    public static func residentMB() -> Double { field("VmRSS") }

    /// Resets the peak to the current size (writing 5 to /proc/self/clear_refs,
    /// Linux ≥ 4.0) and returns that size; nil where the kernel refuses.
    public static func resetPeak() -> Double? {
        guard FileManager.default.isWritableFile(atPath: "/proc/self/clear_refs"),
              (try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .ascii)) != nil else { return nil }
        return residentMB()
    }

    private static func field(_ name: String) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix(name + ":") {
            let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
            return kb / 1024
        }
        return 0
    }
}

/// `analyze cost`.
public enum CostAnalysis {
    public struct Row: Encodable {
        public var cost: ModelCost
        /// Test accuracy from a training run's summary.json, when one was given.
        public var accuracy: Double?
        public init(cost: ModelCost, accuracy: Double?) { self.cost = cost; self.accuracy = accuracy }
    }

    public struct Summary: Encodable {
        public var models: Int
        public var cheapestModel: String
        public var fastestInferModel: String
    }

    public struct Settings: Encodable {
        public var models: [String]
        public var batch: Int
        public var seconds: Double
        public var classes: Int
        public var command: String
    }

    public struct Data: Encodable { public var rows: [Row] }

    public typealias Report = AnalysisReport<Summary, Settings, Data>

    public static func report(rows: [Row], batch: Int, seconds: Double, classes: Int, command: String) -> Report {
        let cheapest = rows.min { $0.cost.gflopsPerImage < $1.cost.gflopsPerImage }?.cost.model ?? ""
        let fastest = rows.max { $0.cost.inferImagesPerSecond < $1.cost.inferImagesPerSecond }?.cost.model ?? ""
        return Report(analysis: "cost", summary: Summary(models: rows.count, cheapestModel: cheapest, fastestInferModel: fastest),
                      settings: Settings(models: rows.map(\.cost.model), batch: batch, seconds: seconds, classes: classes, command: command),
                      data: Data(rows: rows))
    }

    /// The table, and accuracy against FLOPs where accuracies are known.
    public static func svg(_ report: Report) -> String {
        var table = [["model", "params (M)", "GFLOP/img", "infer img/s", "train img/s", "train peak MiB", "accuracy"]]
        for r in report.data.rows {
            let c = r.cost
            table.append([c.model, String(format: "%.2f", Double(c.parameters) / 1e6), String(format: "%.4f", c.gflopsPerImage),
                          String(format: "%.0f", c.inferImagesPerSecond), String(format: "%.0f", c.trainImagesPerSecond),
                          String(format: "%.0f", c.trainPeakMemoryMB), r.accuracy.map { String(format: "%.4f", $0) } ?? "–"])
        }
        let tableSVG = SVGPlot.table(title: "cost on this machine (batch \(report.settings.batch))", rows: table, columnWidth: 110)
        let known = report.data.rows.filter { $0.accuracy != nil }
        guard !known.isEmpty else { return tableSVG }
        let series = known.map { SVGPlot.Series(name: $0.cost.model, points: [($0.cost.gflopsPerImage, $0.accuracy!)]) }
        let scatter = SVGPlot.lineChart(title: "accuracy vs FLOPs", xLabel: "GFLOP per image", yLabel: "test accuracy", series: series)
        return SVGPlot.stack([tableSVG, scatter])
    }
}
