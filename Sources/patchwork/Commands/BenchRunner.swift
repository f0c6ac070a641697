import ArgumentParser
import Foundation
import Patchwork
import PatchworkAnalysis
import PatchworkModels
import PatchworkNN

/// How many steps to run: torch_bench.py's FULL_POLICY and QUICK_POLICY.
struct BenchPolicy {
    let warmup: Int, minReps: Int, maxReps: Int, targetSeconds: Double
    static let full = BenchPolicy(warmup: 3, minReps: 10, maxReps: 100, targetSeconds: 6)
    static let quick = BenchPolicy(warmup: 2, minReps: 3, maxReps: 20, targetSeconds: 1)
}

/// One case in one mode, measured.
struct BenchRow {
    let benchCase: BenchCase
    let mode: String
    let params: Int
    /// Seconds per timed step.
    let times: [Double]
    let peakRSSMiB: Double
    /// CPU cores other processes used during the timed steps (from /proc/stat), as torch_bench.py records it.
    let othersCores: Double?
    let finalLoss: Float?

    var imagesPerSecond: (median: Double, min: Double, max: Double) {
        let ips = times.map { Double(benchCase.batch) / $0 }.sorted()
        return (median(ips), ips.first ?? 0, ips.last ?? 0)
    }

    var gflopsPerImage: Double? { benchCase.gflopsPerImage?[mode] }

    var json: [String: Any] {
        let ips = imagesPerSecond
        let ms = times.map { 1000 * $0 }.sorted()
        var stats: [String: Any] = [
            "reps": times.count,
            "img_per_s": ["median": ips.median, "min": ips.min, "max": ips.max],
            "ms_per_batch": ["median": median(ms), "min": ms.first ?? 0, "max": ms.last ?? 0],
        ]
        if let g = gflopsPerImage {
            stats["achieved_gflop_per_s"] = ["median": g * ips.median, "min": g * ips.min, "max": g * ips.max]
        }
        var row: [String: Any] = [
            "case": benchCase.name, "group": benchCase.group, "family": benchCase.family, "mode": mode,
            "batch": benchCase.batch, "input_shape": benchCase.inputShape, "params": params, "stats": stats,
            "peak_rss_mb": peakRSSMiB,
        ]
        if let g = gflopsPerImage { row["gflops_per_image"] = g }
        if let othersCores { row["load"] = ["others_cores": othersCores] }
        if let finalLoss { row["final_loss"] = Double(finalLoss) }
        return row
    }

    var line: String {
        let ips = imagesPerSecond
        let gflops = gflopsPerImage.map { String(format: "%7.1f GFLOP/s", $0 * ips.median) } ?? ""
        return benchCase.name.padding(toLength: max(30, benchCase.name.count + 1), withPad: " ", startingAt: 0)
            + mode.padding(toLength: 6, withPad: " ", startingAt: 0)
            + String(format: "%9.1f img/s [%.1f-%.1f] %9.1f ms/batch %@  reps=%d  others=%.2f  peak RSS %.0f MiB", ips.median, ips.min, ips.max, 1000 * median(times), gflops, times.count,
                      othersCores ?? .nan, peakRSSMiB)
    }
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    guard !s.isEmpty else { return 0 }
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

enum BenchRunner {
    /// Builds the case's model and times `mode` ("train" or "infer").
    static func measure(_ c: BenchCase, mode: String, policy: BenchPolicy) throws -> BenchRow {
        guard c.inputShape.count == 3 else { throw ValidationError("case \(c.name): input_shape must be (C, H, W), got \(c.inputShape)") }
        _ = ProcessMemory.resetPeak()
        let model = try c.model()
        // The same kind of batch as torch_bench.py: standard normal images, uniform labels (channels-last here).
        let (channels, height, width) = (c.inputShape[0], c.inputShape[1], c.inputShape[2])
        let x = Tensor.randomNormal([c.batch, height, width, channels], generator: Generator(seed: 1))
        let labelGenerator = Generator(seed: 2)
        let labels = (0..<c.batch).map { _ in Int(labelGenerator.next() % UInt64(c.numClasses)) }

        let step: () -> Void
        var lastLoss: Float?
        switch mode {
        case "train":
            model.train()
            let optimizer = SGD(learningRate: 1e-3, momentum: 0.9)
            step = {
                let (loss, grads) = valueAndGrad(model) { crossEntropy(logits: model.logits(x), labels: labels) }
                optimizer.step(model, gradients: grads)
                lastLoss = loss.item()
            }
        case "infer":
            model.eval()
            step = { _ = withoutGrad { model.logits(x) } }
        default:
            throw ValidationError("case \(c.name): unknown mode \(mode) (train, infer)")
        }
        for _ in 0..<policy.warmup { step() }
        var times: [Double] = []
        var spent = 0.0
        let load = CPULoad.start()
        while times.count < policy.maxReps && (times.count < policy.minReps || spent < policy.targetSeconds) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            step()
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            times.append(dt)
            spent += dt
        }
        let others = load.othersCores()
        if let lastLoss, !lastLoss.isFinite { FileHandle.standardError.write(Data("warning: non-finite loss in \(c.name)\n".utf8)) }
        return BenchRow(benchCase: c, mode: mode, params: model.parameterCount, times: times,
                        peakRSSMiB: ProcessMemory.peakResidentMB(), othersCores: others, finalLoss: lastLoss)
    }
}

/// CPU time other processes took while we ran (busy jiffies in /proc/stat minus ours):
/// with 2 threads on 2 cores, any of it slows a parallel kernel down.
struct CPULoad {
    let wall: Double, busy: Double, ours: Double

    static func read() -> (wall: Double, busy: Double, ours: Double)? {
        guard let stat = try? String(contentsOfFile: "/proc/stat", encoding: .ascii),
              let first = stat.split(separator: "\n").first else { return nil }
        let v = first.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard v.count >= 7 else { return nil }
        let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let ours = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        return (Double(DispatchTime.now().uptimeNanoseconds) / 1e9, (v[0] + v[1] + v[2] + v[5] + v[6]) / hz, ours)
    }

    static func start() -> CPULoad {
        let r = read() ?? (0, 0, 0)
        return CPULoad(wall: r.wall, busy: r.busy, ours: r.ours)
    }

    func othersCores() -> Double? {
        guard let end = CPULoad.read(), end.wall > wall else { return nil }
        return max(0, (end.busy - busy) - (end.ours - ours)) / (end.wall - wall)
    }
}

enum BenchMachine {
    static func cpuModel() -> String {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown CPU" }
        for line in info.split(separator: "\n") where line.hasPrefix("model name") {
            return line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
        }
        return "unknown CPU"
    }
}
