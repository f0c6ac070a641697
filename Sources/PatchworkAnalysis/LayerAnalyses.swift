import Foundation
import Patchwork
import PatchworkNN
import PatchworkModels

/// `analyze cka`: linear CKA between every layer of model A and every layer of model B.
extension CKAAccumulator {
    public struct Summary: Encodable {
        public var layersA: Int
        public var layersB: Int
        public var meanCka: Double
        /// CKA of the first and of the last layers of the two models.
        public var firstLayersCka: Double
        public var lastLayersCka: Double
        /// For each A layer, its best match in B, averaged: how much of A B reproduces somewhere.
        public var meanBestMatch: Double
    }

    public struct Settings: Encodable {
        public var sourceA: RunSource
        public var sourceB: RunSource
        public var models: [String]
        public var images: Int
        public var batchSize: Int
        public var command: String
    }

    public struct Data: Encodable {
        public var layersA: [String]
        public var layersB: [String]
        /// Rows: layers of A; columns: layers of B.
        public var cka: [[Double]]
    }

    public typealias Report = AnalysisReport<Summary, Settings, Data>

    /// CKA over `images` in minibatches of `batchSize` (≥ 4) through both models' `forwardIntermediates`.
    public static func run(_ a: AnalysisModel, _ b: AnalysisModel, images set: ImageSet, sourceA: RunSource, sourceB: RunSource,
                           batchSize: Int, command: String, progress: ProgressHandler? = nil) throws -> Report {
        guard batchSize >= 4 else { throw AnalysisError("cka: --batch-size must be at least 4 for the unbiased estimator, got \(batchSize)") }
        var names: ([String], [String]) = ([], [])
        var acc: CKAAccumulator? = nil
        var start = 0
        while start + 4 <= set.count {
            let end = min(set.count, start + batchSize)
            let images = set.images.sliced(axis: 0, start: start, end: end).contiguous()
            let fa = withoutGrad { a.model.forwardIntermediates(a.normalization.apply(images)) }
            let fb = withoutGrad { b.model.forwardIntermediates(b.normalization.apply(images)) }
            if acc == nil {
                names = (fa.map(\.name), fb.map(\.name))
                acc = CKAAccumulator(layersA: fa.count, layersB: fb.count)
            }
            acc!.add(featuresA: fa.map(\.value), featuresB: fb.map(\.value))
            start = end
            progress?("cka: \(end)/\(set.count) images")
        }
        guard let acc else { throw AnalysisError("cka needs at least 4 images, got \(set.count)") }
        let m = acc.matrix
        let flat = m.flatMap { $0 }.filter(\.isFinite)
        let best = m.map { $0.filter(\.isFinite).max() ?? .nan }.filter(\.isFinite)
        let summary = Summary(layersA: m.count, layersB: m.first?.count ?? 0,
                              meanCka: flat.reduce(0, +) / Double(max(flat.count, 1)),
                              firstLayersCka: m.first?.first ?? .nan, lastLayersCka: m.last?.last ?? .nan,
                              meanBestMatch: best.reduce(0, +) / Double(max(best.count, 1)))
        return Report(analysis: "cka", summary: summary,
                      settings: Settings(sourceA: sourceA, sourceB: sourceB, models: [sourceA.model, sourceB.model],
                                         images: set.count, batchSize: batchSize, command: command),
                      data: Data(layersA: names.0, layersB: names.1, cka: m))
    }

    public static func svg(_ report: Report) -> String {
        let s = report.settings
        return SVGPlot.heatMap(title: "linear CKA: \(s.models[0]) (rows) vs \(s.models[1]) (columns)",
                               values: report.data.cka.reversed(), rowLabels: report.data.layersA.reversed(),
                               columnLabels: report.data.layersB, xLabel: "\(s.models[1]) layer", yLabel: "\(s.models[0]) layer",
                               colourLabel: "CKA", range: 0...1)
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

/// `analyze hessian`.
extension HessianSpectrum {
    public struct Summary: Encodable {
        public var topEigenvalue: Double
        public var trace: Double
        public var traceStandardError: Double
        /// The most negative Ritz value over the Lanczos runs.
        public var mostNegativeEigenvalue: Double
        /// Share of the spectral density's mass below zero.
        public var negativeMass: Double
        /// |most negative| ÷ top: how strong the non-convex directions are.
        public var negativeToTopRatio: Double
    }

    public struct Settings: Encodable {
        public var source: RunSource
        public var images: Int
        public var eigenvalues: Int
        public var powerIterations: Int
        public var traceSamples: Int
        public var lanczosRuns: Int
        public var lanczosSteps: Int
        public var densitySigma: Double
        public var command: String
    }

    public struct Data: Encodable {
        public var topEigenvalues: [Double]
        public var traceSamples: [Double]
        public var ritzValues: [[Double]]
        public var ritzWeights: [[Double]]
        public var densityGrid: [Double]
        public var density: [Double]
    }

    public typealias Report = AnalysisReport<Summary, Settings, Data>

    public static func run(_ model: AnalysisModel, images set: ImageSet, source: RunSource, eigenvalues k: Int, iterations: Int,
                           traceSamples: Int, lanczosRuns: Int, lanczosSteps: Int, seed: UInt64, command: String,
                           progress: ProgressHandler? = nil) throws -> Report {
        guard k >= 1, iterations >= 1, traceSamples >= 1, lanczosRuns >= 1, lanczosSteps >= 2 else {
            throw AnalysisError("hessian: --eigenvalues, --iterations, --trace-samples, --lanczos-runs must be ≥ 1 and --lanczos-steps ≥ 2")
        }
        let net = model.model
        net.eval()  // fixed batch statistics and no dropout: the Hessian of one deterministic function
        let x = model.normalization.apply(set.images.contiguous())
        let labels = set.labels
        let hvp = HessianVectorProduct(model: net) { crossEntropy(logits: net.logits(x), labels: labels) }
        let point = ParameterVector(of: net)
        let generator = Generator(seed: seed)
        progress?("hessian: top \(k) eigenvalues (power iteration)")
        let top = topEigenvalues(hvp, like: point, count: k, maxIterations: iterations, generator: generator)
        progress?("hessian: trace (\(traceSamples) Hutchinson samples)")
        let tr = trace(hvp, like: point, samples: traceSamples, generator: generator)
        progress?("hessian: density (\(lanczosRuns) Lanczos runs of \(lanczosSteps) steps)")
        let quadratures = lanczosQuadratures(hvp, like: point, runs: lanczosRuns, steps: lanczosSteps, generator: generator)
        let nodes = quadratures.flatMap(\.nodes)
        let lo = min(nodes.min() ?? -1, 0), hi = max(nodes.max() ?? 1, 0)
        let pad = 0.05 * (hi - lo) + 1e-6
        let sigma = max((hi - lo) / 200, 1e-6)
        let grid = LossLandscape.grid(from: lo - pad, to: hi + pad, count: 600)
        let dens = density(quadratures, grid: grid, sigma: sigma)
        // Negative mass straight from the quadrature weights (the smoothing would spill mass across 0).
        let negative = quadratures.map { q in zip(q.nodes, q.weights).filter { $0.0 < 0 }.map(\.1).reduce(0, +) }
            .reduce(0, +) / Double(quadratures.count)
        let mostNegative = nodes.min() ?? .nan
        let summary = Summary(topEigenvalue: top.values.first ?? .nan, trace: tr.mean, traceStandardError: tr.standardError,
                              mostNegativeEigenvalue: mostNegative, negativeMass: negative,
                              negativeToTopRatio: mostNegative < 0 ? -mostNegative / abs(top.values.first ?? 1) : 0)
        return Report(analysis: "hessian", summary: summary,
                      settings: Settings(source: source, images: set.count, eigenvalues: k, powerIterations: iterations,
                                         traceSamples: traceSamples, lanczosRuns: lanczosRuns, lanczosSteps: lanczosSteps,
                                         densitySigma: sigma, command: command),
                      data: Data(topEigenvalues: top.values, traceSamples: tr.samples, ritzValues: quadratures.map(\.nodes),
                                 ritzWeights: quadratures.map(\.weights), densityGrid: grid, density: dens))
    }

    /// The eigenvalue density (log scale), negative part included.
    public static func svg(_ report: Report, title: String) -> String {
        let d = report.data
        let logDensity = d.density.map { Foundation.log10(max($0, 1e-8)) }
        return SVGPlot.lineChart(title: "\(title): Hessian eigenvalue density", xLabel: "eigenvalue",
                                 yLabel: "log10 density", series: [SVGPlot.Series(name: "density", x: d.densityGrid, y: logDensity)])
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
