import Foundation
import Patchwork
import PatchworkNN

/// L∞ adversarial attacks through input gradients: FGSM (Goodfellow et al.
/// 2015) and PGD (Madry et al. 2018). ε is in pixel units of [0, 1] images
/// and the perturbation is applied before the model's input
/// standardisation; every adversarial image is clipped to [0, 1].
public enum Adversarial {
    /// The mean cross-entropy of `images` [B, H, W, C] and its gradient with
    /// respect to the pixels, plus the per-image losses and predictions.
    public static func lossAndGradient(_ model: AnalysisModel, _ images: Tensor, labels: [Int]) -> (losses: [Double], predictions: [Int], gradient: Tensor) {
        var logits = Tensor(0)
        let (_, grads) = valueAndGradient(at: [images]) { xs in
            logits = model.model.logits(model.input.normalized(xs[0]))
            return crossEntropy(logits: logits, labels: labels)
        }
        let detached = logits.detached()
        return (crossEntropyRows(detached, labels: labels), argmaxRows(detached), grads[0])
    }

    /// One batch under FGSM: x + ε·sign(∇ₓL), clipped to [0, 1].
    public static func fgsm(_ model: AnalysisModel, images: Tensor, labels: [Int], epsilon: Float) -> Tensor {
        if epsilon == 0 { return images }
        let g = lossAndGradient(model, images, labels: labels).gradient
        return (images + epsilon * g.sign()).clamped(min: 0, max: 1)
    }

    public struct PGDResult {
        /// The iterate with the highest loss per image (the clean image
        /// counts as the first candidate, so the loss never falls below it).
        public var images: Tensor
        public var losses: [Double]
        /// Whether any iterate (or the clean image) was misclassified.
        public var fooled: [Bool]
        /// Loss per image and step (0 = the clean image, 1 = the random start, …).
        public var lossTrace: [[Double]]
    }

    /// PGD with `steps` signed-gradient steps of `stepSize`, each projected
    /// onto the ε-ball around the clean images and onto [0, 1]; with
    /// `randomStart` the first iterate is uniform in the ball.
    public static func pgd(_ model: AnalysisModel, images: Tensor, labels: [Int], epsilon: Float, steps: Int, stepSize: Float,
                           randomStart: Bool, generator: Generator) -> PGDResult {
        let b = labels.count
        let (cleanLoss, cleanPred, _) = lossAndGradient(model, images, labels: labels)
        var best = images.contiguous().scalars, bestLoss = cleanLoss
        var fooled = zip(cleanPred, labels).map { $0 != $1 }
        var trace = cleanLoss.map { [$0] }
        let per = images.count / max(b, 1)
        let lower = (images - epsilon).maximum(Tensor(0)), upper = (images + epsilon).minimum(Tensor(1))
        var x = images
        if randomStart && epsilon > 0 {
            let noise = Tensor.randomUniform(images.shape, low: -epsilon, high: epsilon, generator: generator)
            x = (images + noise).maximum(lower).minimum(upper)
        }
        func record(_ x: Tensor, _ losses: [Double], _ preds: [Int]) {
            let v = x.contiguous().scalars
            for i in 0..<b {
                trace[i].append(losses[i])
                if preds[i] != labels[i] { fooled[i] = true }
                if losses[i] > bestLoss[i] {
                    bestLoss[i] = losses[i]
                    best.replaceSubrange((i * per)..<((i + 1) * per), with: v[(i * per)..<((i + 1) * per)])
                }
            }
        }
        for step in 0...steps {
            let (losses, preds, g) = lossAndGradient(model, x, labels: labels)
            if step > 0 || randomStart { record(x, losses, preds) }
            if step == steps { break }
            x = (x + stepSize * g.sign()).maximum(lower).minimum(upper)
        }
        return PGDResult(images: Tensor(best, shape: images.shape), losses: bestLoss, fooled: fooled, lossTrace: trace)
    }

    public struct Point: Encodable {
        public var epsilon: Double
        public var epsilonIn255: Double
        public var fgsmAccuracy: Double
        public var pgdAccuracy: Double
        public var fgsmMeanLoss: Double
        public var pgdMeanLoss: Double
        /// The accuracy each PGD restart alone leaves, and their sample standard
        /// deviation (0 for one restart); `pgdAccuracy` counts an image broken if any restart breaks it.
        public var pgdRestartAccuracies: [Double]
        public var pgdRestartAccuracyStd: Double
    }

    public struct Summary: Encodable {
        public var cleanAccuracy: Double
        /// Accuracy at the largest ε.
        public var fgsmAccuracyAtMaxEpsilon: Double
        public var pgdAccuracyAtMaxEpsilon: Double
        public var pgdRestarts: Int
        /// The spread of the single restarts' accuracies at the largest ε.
        public var pgdRestartAccuracyStdAtMaxEpsilon: Double
        public var maxEpsilon: Double
        /// Smallest ε of the list at which PGD accuracy falls below half of clean (nil when none).
        public var pgdEpsilonHalvingAccuracy: Double?
    }

    public struct Settings: Encodable {
        public var source: RunSource
        public var images: Int
        public var epsilons: [Double]
        public var norm = "L∞"
        public var pixelSpace = "ε in [0, 1] pixel units, applied before the model's input standardisation; images clipped to [0, 1]"
        public var pgdSteps: Int
        /// Step size as a multiple of ε (the step is stepSizeOverEpsilon·ε).
        public var pgdStepSizeOverEpsilon: Double
        public var pgdRandomStart: Bool
        public var pgdRestarts: Int
        public var pgdSuccess = "an image counts as broken if the clean image or any PGD iterate of any restart is misclassified; the reported loss is the highest over them"
        public var loss = "cross-entropy"
        public var command: String
    }

    public struct Data: Encodable { public var points: [Point] }

    public typealias Report = AnalysisReport<Summary, Settings, Data>

    /// PGD runs `restarts` times (default 1) from independent random starts (Madry et
    /// al.): an image is broken if any restart breaks it.
    public static func run(_ model: AnalysisModel, images set: ImageSet, epsilons: [Double], steps: Int, stepSizeOverEpsilon: Double,
                           randomStart: Bool, restarts: Int = 1, seed: UInt64, source: RunSource, command: String,
                           progress: ProgressHandler? = nil) throws -> Report {
        if let bad = epsilons.first(where: { !($0 >= 0) || !$0.isFinite }) {
            throw AnalysisError("ε must be ≥ 0 (in [0, 1] pixel units, e.g. 0.0314 for 8/255); got \(bad)")
        }
        guard !epsilons.isEmpty else { throw AnalysisError("give at least one ε (--epsilons 0,0.0039,…)") }
        guard steps >= 1 else { throw AnalysisError("--steps must be at least 1, got \(steps)") }
        guard stepSizeOverEpsilon > 0 else { throw AnalysisError("--step-size must be > 0 (a multiple of ε), got \(stepSizeOverEpsilon)") }
        guard restarts >= 1 else { throw AnalysisError("--restarts must be at least 1, got \(restarts)") }
        guard restarts == 1 || randomStart else {
            throw AnalysisError("--restarts \(restarts) needs --random-start true: without a random start every restart is the same attack")
        }
        let n = set.count
        let clean = model.accuracy(set.images, labels: set.labels)
        var points: [Point] = []
        for (k, eps) in epsilons.enumerated() {
            var fgsmCorrect = 0, pgdCorrect = 0, fgsmLoss = 0.0, pgdLoss = 0.0
            var restartCorrect = [Int](repeating: 0, count: restarts)
            var start = 0
            while start < n {
                let end = min(n, start + model.batchSize)
                let x = set.images.sliced(axis: 0, start: start, end: end).contiguous()
                let y = Array(set.labels[start..<end])
                let adv = fgsm(model, images: x, labels: y, epsilon: Float(eps))
                let fl = withoutGrad { model.model.logits(model.input.normalized(adv)) }
                fgsmCorrect += zip(argmaxRows(fl), y).filter { $0 == $1 }.count
                fgsmLoss += crossEntropyRows(fl, labels: y).reduce(0, +)
                var fooled = [Bool](repeating: false, count: y.count), losses = [Double](repeating: -.infinity, count: y.count)
                for restart in 0..<restarts {
                    // Restart 0 keeps the seeds of single-start runs.
                    let g = Generator(seed: restart == 0 ? Generator.derivedSeed(seed, UInt64(k), UInt64(start))
                                                         : Generator.derivedSeed(seed, UInt64(k), UInt64(start), UInt64(restart)))
                    let r = pgd(model, images: x, labels: y, epsilon: Float(eps), steps: steps, stepSize: Float(eps * stepSizeOverEpsilon),
                                randomStart: randomStart, generator: g)
                    restartCorrect[restart] += r.fooled.filter { !$0 }.count
                    for i in y.indices { fooled[i] = fooled[i] || r.fooled[i]; losses[i] = max(losses[i], r.losses[i]) }
                }
                pgdCorrect += fooled.filter { !$0 }.count
                pgdLoss += losses.reduce(0, +)
                start = end
            }
            let restartAccuracies = restartCorrect.map { Double($0) / Double(n) }
            let p = Point(epsilon: eps, epsilonIn255: eps * 255, fgsmAccuracy: Double(fgsmCorrect) / Double(n),
                          pgdAccuracy: Double(pgdCorrect) / Double(n), fgsmMeanLoss: fgsmLoss / Double(n), pgdMeanLoss: pgdLoss / Double(n),
                          pgdRestartAccuracies: restartAccuracies, pgdRestartAccuracyStd: Statistics.standardDeviation(restartAccuracies))
            points.append(p)
            progress?(String(format: "adversarial: ε = %.4f (%.1f/255): FGSM %.3f, PGD-%d %.3f", eps, eps * 255, p.fgsmAccuracy, steps, p.pgdAccuracy))
        }
        let top = points.max { $0.epsilon < $1.epsilon }!
        let summary = Summary(cleanAccuracy: clean, fgsmAccuracyAtMaxEpsilon: top.fgsmAccuracy, pgdAccuracyAtMaxEpsilon: top.pgdAccuracy,
                              pgdRestarts: restarts, pgdRestartAccuracyStdAtMaxEpsilon: top.pgdRestartAccuracyStd, maxEpsilon: top.epsilon,
                              pgdEpsilonHalvingAccuracy: points.sorted { $0.epsilon < $1.epsilon }.first { $0.pgdAccuracy < clean / 2 }?.epsilon)
        return Report(analysis: "adversarial", summary: summary,
                      settings: Settings(source: source, images: n, epsilons: epsilons, pgdSteps: steps,
                                         pgdStepSizeOverEpsilon: stepSizeOverEpsilon, pgdRandomStart: randomStart, pgdRestarts: restarts,
                                         command: command),
                      data: Data(points: points))
    }

    public static func svg(_ report: Report, title: String) -> String {
        let p = report.data.points
        return SVGPlot.lineChart(
            title: "\(title) — accuracy under L∞ attacks", xLabel: "ε (×1/255 of the pixel range)", yLabel: "accuracy",
            series: [SVGPlot.Series(name: "FGSM", x: p.map(\.epsilonIn255), y: p.map(\.fgsmAccuracy)),
                     SVGPlot.Series(name: "PGD-\(report.settings.pgdSteps)", x: p.map(\.epsilonIn255), y: p.map(\.pgdAccuracy))],
            yRange: 0...1)
    }
}
