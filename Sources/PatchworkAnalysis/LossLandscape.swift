import Foundation
import Patchwork
import PatchworkNN
import PatchworkModels

/// Loss landscapes along filter-normalised random directions (Li et al. 2018,
/// "Visualizing the loss landscape of neural nets").
public enum LossLandscape {
    /// A random direction shaped like the model's trainable parameters, each filter
    /// scaled to the norm of the matching filter of the weights ("filter
    /// normalisation"): a filter is one output unit, the first axis of a Linear
    /// [out, in] or conv [out, kh, kw, in] weight. One-dimensional parameters
    /// (biases, norm scales and shifts) get a zero direction, as Li et al.'s
    /// `ignore='biasbn'`, so the picture is about the weights.
    public static func filterNormalizedDirection(for point: ParameterVector, generator: Generator) -> ParameterVector {
        ParameterVector(point.tensors.map { w in
            guard w.rank >= 2, w.shape[0] > 0 else { return Tensor.zeros(w.shape) }
            let filters = w.shape[0], size = w.count / filters
            let weights = w.contiguous().scalars
            var d = Tensor.randomNormal(w.shape, generator: generator).scalars
            for f in 0..<filters {
                let range = (f * size)..<((f + 1) * size)
                var wn = 0.0, dn = 0.0
                for i in range { wn += Double(weights[i]) * Double(weights[i]); dn += Double(d[i]) * Double(d[i]) }
                let scale = Float(wn.squareRoot() / max(dn.squareRoot(), 1e-30))
                for i in range { d[i] *= scale }
            }
            return Tensor(d, shape: w.shape)
        })
    }

    /// What one point of the landscape measured.
    public struct Sample {
        public let alpha: Double
        public let beta: Double
        public let loss: Double
        public let accuracy: Double
    }

    /// Evaluates `measure` (loss, accuracy) at θ + α·d1 (+ β·d2) for every α in
    /// `alphas` and β in `betas` (β only when `d2` is given), restoring θ afterwards.
    /// `progress` is called after each point with (done, total).
    public static func evaluate(model: Module, center: ParameterVector, d1: ParameterVector, d2: ParameterVector?,
                                alphas: [Double], betas: [Double], measure: () throws -> (loss: Double, accuracy: Double),
                                progress: (Int, Int) -> Void = { _, _ in }) throws -> [Sample] {
        defer { try? center.assign(to: model) }
        let betaValues = d2 == nil ? [0.0] : betas
        var samples: [Sample] = []
        let total = alphas.count * betaValues.count
        for beta in betaValues {
            for alpha in alphas {
                var point = center + d1 * alpha
                if let d2 { point = point + d2 * beta }
                try point.assign(to: model)
                let (loss, accuracy) = try measure()
                samples.append(Sample(alpha: alpha, beta: beta, loss: loss, accuracy: accuracy))
                progress(samples.count, total)
            }
        }
        return samples
    }

    /// `count` evenly spaced values from `low` to `high` inclusive.
    public static func grid(from low: Double, to high: Double, count: Int) -> [Double] {
        count <= 1 ? [low] : (0..<count).map { low + (high - low) * Double($0) / Double(count - 1) }
    }
}

/// `analyze landscape`.
extension LossLandscape {
    public struct Summary: Encodable {
        public var centerLoss: Double
        public var centerAccuracy: Double
        /// Loss at the ends of the first direction's range, averaged: how steeply the basin rises.
        public var edgeLoss: Double
        /// Mean second difference of the loss along the first direction, per unit step²: > 0 convex on average.
        public var meanCurvature: Double
        /// Fraction of grid lines (rows and columns) along which the loss is convex (every second difference ≥ 0).
        public var convexFraction: Double
    }

    public struct Settings: Encodable {
        public var source: RunSource
        public var images: Int
        public var dimensions: Int
        public var range: Double
        public var points: Int
        public var directionSeed: UInt64
        public var normalization: String
        public var command: String
    }

    public struct Data: Encodable {
        public var alphas: [Double]
        public var betas: [Double]
        /// loss[j][i] at (alphas[i], betas[j]); one row when 1-D.
        public var loss: [[Double]]
        public var accuracy: [[Double]]
    }

    public typealias Report = AnalysisReport<Summary, Settings, Data>

    public static func run(_ model: AnalysisModel, images set: ImageSet, source: RunSource, dimensions: Int, range: Double,
                           points: Int, seed: UInt64, command: String, progress: ProgressHandler? = nil) throws -> Report {
        guard dimensions == 1 || dimensions == 2 else { throw AnalysisError("landscape: --dimensions must be 1 or 2, got \(dimensions)") }
        guard range > 0 else { throw AnalysisError("landscape: --range must be positive, got \(range)") }
        guard points >= 3 else { throw AnalysisError("landscape: --points must be at least 3, got \(points)") }
        let net = model.model
        net.eval()
        let center = ParameterVector(of: net)
        let generator = Generator(seed: seed)
        let d1 = filterNormalizedDirection(for: center, generator: generator)
        let d2 = dimensions == 2 ? filterNormalizedDirection(for: center, generator: generator) : nil
        let axis = grid(from: -range, to: range, count: points)
        let samples = try evaluate(model: net, center: center, d1: d1, d2: d2, alphas: axis, betas: axis, measure: {
            let logits = model.logits(set.images)
            let losses = crossEntropyRows(logits, labels: set.labels)
            let predictions = argmaxRows(logits)
            return (losses.reduce(0, +) / Double(losses.count),
                    Double(zip(predictions, set.labels).filter { $0 == $1 }.count) / Double(set.count))
        }, progress: { done, total in if done % points == 0 || done == total { progress?("landscape: \(done)/\(total) points") } })
        let rows = dimensions == 2 ? points : 1
        let loss = (0..<rows).map { j in (0..<points).map { samples[j * points + $0].loss } }
        let accuracy = (0..<rows).map { j in (0..<points).map { samples[j * points + $0].accuracy } }
        let mid = rows / 2, c = points / 2
        let line: [Double] = loss[mid]
        let step: Double = axis[1] - axis[0]
        let curvatures: [Double] = (1..<(points - 1)).map { i -> Double in secondDifference(line, i) / (step * step) }
        var lines: [[Double]] = loss
        if rows > 1 { lines += (0..<points).map { i in loss.map { $0[i] } } }
        let convex = lines.filter { l in (1..<(l.count - 1)).allSatisfy { secondDifference(l, $0) >= -1e-6 } }.count
        let summary = Summary(centerLoss: loss[mid][c], centerAccuracy: accuracy[mid][c], edgeLoss: (line.first! + line.last!) / 2,
                              meanCurvature: curvatures.reduce(0, +) / Double(curvatures.count),
                              convexFraction: Double(convex) / Double(lines.count))
        return Report(analysis: "landscape", summary: summary,
                      settings: Settings(source: source, images: set.count, dimensions: dimensions, range: range, points: points,
                                         directionSeed: seed, normalization: "filter (biases and norms fixed)", command: command),
                      data: Data(alphas: axis, betas: dimensions == 2 ? axis : [0], loss: loss, accuracy: accuracy))
    }

    static func secondDifference(_ values: [Double], _ i: Int) -> Double {
        let left: Double = values[i - 1], middle: Double = values[i], right: Double = values[i + 1]
        return left - 2 * middle + right
    }

    /// 1-D: loss and accuracy curves; 2-D: the curve through the centre, a contour map and a surface.
    public static func svg(_ report: Report, title: String) -> String {
        let d = report.data
        let mid = d.loss.count / 2
        let curve = SVGPlot.lineChart(title: "\(title): loss along direction 1", xLabel: "α (filter-normalised)", yLabel: "loss / accuracy",
                                      series: [SVGPlot.Series(name: "loss", x: d.alphas, y: d.loss[mid]),
                                               SVGPlot.Series(name: "accuracy", x: d.alphas, y: d.accuracy[mid])])
        guard d.loss.count > 1 else { return curve }
        let logLoss = d.loss.map { $0.map { Foundation.log10(max($0, 1e-6)) } }
        let contour = SVGPlot.heatMap(title: "\(title): log10 loss over (α, β)", values: logLoss.reversed(),
                                      rowLabels: d.betas.reversed().map { String(format: "%.2f", $0) },
                                      columnLabels: d.alphas.map { String(format: "%.2f", $0) },
                                      xLabel: "α", yLabel: "β", colourLabel: "log10 loss")
        return SVGPlot.stack([curve, contour, surface(logLoss, title: "\(title): loss surface (log10)")])
    }

    /// A wireframe of z over the grid in an oblique projection, back rows first.
    static func surface(_ z: [[Double]], title: String, width: Double = 640, height: Double = 420) -> String {
        let rows = z.count, cols = z.first?.count ?? 0
        let finite = z.flatMap { $0 }.filter(\.isFinite)
        let lo = finite.min() ?? 0, hi = max(finite.max() ?? 1, lo + 1e-9)
        func project(_ i: Int, _ j: Int) -> (Double, Double) {
            let u = Double(i) / Double(max(cols - 1, 1)), v = Double(j) / Double(max(rows - 1, 1))
            let h = (z[j][i] - lo) / (hi - lo)
            return (80 + u * 360 + v * 160, height - 60 - v * 140 - h * 200)
        }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"\(Int(width / 2))\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">\(title)</text>\n"
        func polyline(_ points: [(Double, Double)], colour: String) -> String {
            "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1\" points=\"" + points.map { String(format: "%.1f,%.1f", $0.0, $0.1) }.joined(separator: " ") + "\"/>\n"
        }
        for j in stride(from: rows - 1, through: 0, by: -1) { s += polyline((0..<cols).map { project($0, j) }, colour: "#0072B2") }
        for i in 0..<cols { s += polyline((0..<rows).map { project(i, $0) }, colour: "#D55E00") }
        s += "<text x=\"260\" y=\"\(Int(height - 20))\">α →</text><text x=\"560\" y=\"\(Int(height - 150))\">β ↗</text>\n"
        s += String(format: "<text x=\"10\" y=\"%.0f\">%.2f</text><text x=\"10\" y=\"%.0f\">%.2f</text>\n", height - 60, lo, height - 260, hi)
        return s + "</svg>\n"
    }
}
