import Foundation
import Patchwork
import PatchworkNN
import PatchworkModels

/// The Hessian's spectrum from Hessian-vector products alone (as PyHessian,
/// Yao et al. 2020): top eigenvalues by power iteration with deflation, the trace
/// by Hutchinson's estimator, the eigenvalue density by stochastic Lanczos quadrature,
/// and the largest and most negative eigenvalues by Lanczos run to convergence.
public enum HessianSpectrum {
    /// The `count` eigenvalues of largest magnitude (PyHessian's `eigenvalues`):
    /// power iteration on H, each new vector kept orthogonal to those found, until
    /// the Rayleigh quotient changes by less than `tolerance` (relative).
    public static func topEigenvalues(_ hvp: HessianVectorProduct, like point: ParameterVector, count: Int,
                                      maxIterations: Int = 100, tolerance: Double = 1e-3,
                                      generator: Generator) -> (values: [Double], vectors: [ParameterVector]) {
        var values: [Double] = [], vectors: [ParameterVector] = []
        for _ in 0..<count {
            var v = orthogonalized(ParameterVector.randomNormal(like: point, generator: generator), against: vectors).normalized()
            var eigenvalue = 0.0
            for iteration in 0..<maxIterations {
                let hv = hvp(v)
                let next = v.dot(hv)
                v = orthogonalized(hv, against: vectors).normalized()
                if iteration > 0, abs(next - eigenvalue) <= tolerance * (abs(eigenvalue) + 1e-12) { eigenvalue = next; break }
                eigenvalue = next
            }
            values.append(eigenvalue)
            vectors.append(v)
        }
        return (values, vectors)
    }

    /// Hutchinson's estimator of tr(H): the mean of vᵀHv over Rademacher vectors v,
    /// with its standard error.
    public static func trace(_ hvp: HessianVectorProduct, like point: ParameterVector, samples: Int,
                             generator: Generator) -> (mean: Double, standardError: Double, samples: [Double]) {
        let draws = (0..<samples).map { _ -> Double in
            let v = ParameterVector.rademacher(like: point, generator: generator)
            return v.dot(hvp(v))
        }
        let mean = draws.reduce(0, +) / Double(max(samples, 1))
        let variance = samples > 1 ? draws.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(samples - 1) : 0
        return (mean, (variance / Double(max(samples, 1))).squareRoot(), draws)
    }

    /// One Lanczos run's quadrature: nodes (Ritz values) and weights (squared first
    /// components of the Ritz vectors, summing to 1).
    public struct Quadrature {
        public let nodes: [Double]
        public let weights: [Double]
    }

    /// Stochastic Lanczos quadrature: `runs` Lanczos runs of `steps` steps (full
    /// reorthogonalisation) from Rademacher starts; each gives a quadrature of the
    /// spectral density.
    public static func lanczosQuadratures(_ hvp: HessianVectorProduct, like point: ParameterVector, runs: Int, steps: Int,
                                          generator: Generator) -> [Quadrature] {
        (0..<runs).map { _ in
            let start = ParameterVector.rademacher(like: point, generator: generator)
            let (alpha, beta) = lanczos(hvp, start: start, steps: steps)
            let (eigenvalues, eigenvectors) = symmetricTridiagonalEigen(diagonal: alpha, offDiagonal: beta)
            return Quadrature(nodes: eigenvalues, weights: eigenvectors.map { $0[0] * $0[0] })
        }
    }

    /// The density on `grid` from the quadratures, each node smoothed by a Gaussian
    /// of standard deviation `sigma` (PyHessian's density with σ² = variance).
    public static func density(_ quadratures: [Quadrature], grid: [Double], sigma: Double) -> [Double] {
        let norm = 1 / (sigma * (2 * Double.pi).squareRoot()) / Double(max(quadratures.count, 1))
        return grid.map { x in
            var total = 0.0
            for q in quadratures {
                for (node, weight) in zip(q.nodes, q.weights) {
                    let z = (x - node) / sigma
                    total += weight * Foundation.exp(-0.5 * z * z)
                }
            }
            return total * norm
        }
    }

    /// Lanczos tridiagonalisation with full reorthogonalisation: α (diagonal) and
    /// β (off-diagonal, one shorter). Stops early when the Krylov space is exhausted.
    static func lanczos(_ hvp: HessianVectorProduct, start: ParameterVector, steps: Int) -> (alpha: [Double], beta: [Double]) {
        var run = LanczosRun(start: start)
        while run.alpha.count < steps, run.step(hvp, last: run.alpha.count == steps - 1) {}
        return (run.alpha, run.beta)
    }

    /// The state of one Lanczos run with full reorthogonalisation, one Hessian-vector
    /// product per `step`.
    struct LanczosRun {
        var basis: [ParameterVector]
        var alpha: [Double] = [], beta: [Double] = []

        init(start: ParameterVector) { basis = [start.normalized()] }

        /// Adds α_j, and unless `last`, β_j and the next basis vector. Returns false
        /// when the Krylov space is exhausted (the Ritz values are then exact).
        mutating func step(_ hvp: HessianVectorProduct, last: Bool = false) -> Bool {
            let j = alpha.count
            var w = hvp(basis[j])
            let a = w.dot(basis[j])
            alpha.append(a)
            if last { return true }
            w = orthogonalized(w, against: basis)
            let b = w.norm
            if b < 1e-10 * max(abs(a), 1) { return false }
            beta.append(b)
            basis.append(w * (1 / b))
            return true
        }

        /// The current Ritz values, lowest first, and each one's residual norm ‖H·y − θ·y‖
        /// = β_k·|last component of its eigenvector| (0 when no β_k was added: the space ran out).
        var ritz: (values: [Double], residuals: [Double]) {
            let k = alpha.count
            let (values, vectors) = symmetricTridiagonalEigen(diagonal: alpha, offDiagonal: Array(beta.prefix(k - 1)))
            let next = beta.count >= k ? beta[k - 1] : 0
            return (values, vectors.map { next * abs($0[k - 1]) })
        }
    }

    /// The largest and the most negative eigenvalue from one Lanczos run, with how it ended.
    public struct ExtremeEigenvalues: Codable, Sendable {
        /// The largest Ritz value (the top eigenvalue).
        public var top: Double
        /// The smallest Ritz value (the most negative eigenvalue when < 0).
        public var bottom: Double
        /// Hessian-vector products (Lanczos steps) taken.
        public var steps: Int
        /// Whether the stopping rule was met (or the Krylov space ran out) before `maxSteps`.
        public var converged: Bool
    }

    /// Lanczos (full reorthogonalisation, Rademacher start) run until its extreme Ritz
    /// values settle: stopped once both the top and the bottom Ritz value changed by at
    /// most `tolerance`·|top| in the last step AND both Ritz pairs' residuals
    /// ‖H·y − θ·y‖ are at most `tolerance`·|top| (then an eigenvalue of H lies that
    /// close to each); or when the Krylov space is exhausted (then they are exact); or
    /// after `maxSteps` steps (not converged). The residual test matters: on a cluster
    /// of bottom eigenvalues the bottom Ritz value creeps down by less than the
    /// tolerance per step long before it arrives (the tiny network of
    /// AnalysisStatisticsTests stopped at −0.311 for a true −0.317 on change alone).
    public static func extremeEigenvalues(_ hvp: HessianVectorProduct, like point: ParameterVector, tolerance: Double = 1e-3,
                                          maxSteps: Int = 100, generator: Generator) -> ExtremeEigenvalues {
        var run = LanczosRun(start: ParameterVector.rademacher(like: point, generator: generator))
        var previous: (top: Double, bottom: Double)?
        while run.alpha.count < maxSteps {
            let more = run.step(hvp)
            let (values, residuals) = run.ritz
            let (top, bottom) = (values.last!, values.first!)
            if !more { return ExtremeEigenvalues(top: top, bottom: bottom, steps: run.alpha.count, converged: true) }
            let allowed = tolerance * abs(top)
            if let previous, abs(top - previous.top) <= allowed, abs(bottom - previous.bottom) <= allowed,
               residuals.last! <= allowed, residuals.first! <= allowed {
                return ExtremeEigenvalues(top: top, bottom: bottom, steps: run.alpha.count, converged: true)
            }
            previous = (top, bottom)
        }
        let values = run.ritz.values
        return ExtremeEigenvalues(top: values.last!, bottom: values.first!, steps: run.alpha.count, converged: false)
    }

    /// The whole Hessian, one Hessian-vector product per parameter (column i = H·eᵢ),
    /// symmetrised: for tiny models only (tests, and exact traces and spectra to check
    /// the estimators against).
    public static func denseHessian(_ hvp: HessianVectorProduct, like point: ParameterVector) -> [[Double]] {
        let shapes = point.tensors.map(\.shape), counts = point.tensors.map(\.count)
        let n = counts.reduce(0, +)
        var columns: [[Double]] = []
        for i in 0..<n {
            var flat = [Float](repeating: 0, count: n)
            flat[i] = 1
            var offset = 0
            let basis = ParameterVector(zip(shapes, counts).map { shape, count in
                defer { offset += count }
                return Tensor(Array(flat[offset..<(offset + count)]), shape: shape)
            })
            columns.append(hvp(basis).tensors.flatMap { $0.contiguous().scalars.map(Double.init) })
        }
        return (0..<n).map { i in (0..<n).map { j in (columns[i][j] + columns[j][i]) / 2 } }
    }

    /// v minus its projections on `basis` (orthonormal), twice for stability.
    static func orthogonalized(_ v: ParameterVector, against basis: [ParameterVector]) -> ParameterVector {
        var v = v
        for _ in 0..<2 { for u in basis { v = v - u * v.dot(u) } }
        return v
    }

    /// Eigenvalues and eigenvectors of a symmetric tridiagonal matrix (one row per
    /// Lanczos step). Eigenvectors are returned as rows: `vectors[i]` belongs to `values[i]`.
    static func symmetricTridiagonalEigen(diagonal: [Double], offDiagonal: [Double]) -> (values: [Double], vectors: [[Double]]) {
        let n = diagonal.count
        var matrix = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
        for i in 0..<n {
            matrix[i][i] = diagonal[i]
            if i + 1 < n { matrix[i][i + 1] = offDiagonal[i]; matrix[i + 1][i] = offDiagonal[i] }
        }
        return symmetricEigen(matrix)
    }

    /// Eigenvalues (ascending) and eigenvectors (rows) of a small symmetric matrix by
    /// cyclic Jacobi rotations.
    public static func symmetricEigen(_ matrix: [[Double]]) -> (values: [Double], vectors: [[Double]]) {
        let n: Int = matrix.count
        // Row-major n×n matrices: a (rotated towards diagonal), v (accumulated rotations).
        var a = matrix.flatMap { $0 }
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        let scale = max(a.map { $0 * $0 }.reduce(0, +), 1e-300)
        for _ in 0..<100 {
            var off: Double = 0
            for i in 0..<n { for j in 0..<n where j > i { off += a[i * n + j] * a[i * n + j] } }
            if off < 1e-24 * scale { break }
            for p in 0..<n {
                for q in 0..<n where q > p && abs(a[p * n + q]) > 1e-300 {
                    let apq: Double = a[p * n + q]
                    let theta: Double = (a[q * n + q] - a[p * n + p]) / (2 * apq)
                    let sign: Double = theta >= 0 ? 1 : -1
                    let t: Double = sign / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c: Double = 1 / (t * t + 1).squareRoot()
                    let s: Double = t * c
                    for k in 0..<n {
                        let akp: Double = a[k * n + p], akq: Double = a[k * n + q]
                        a[k * n + p] = c * akp - s * akq
                        a[k * n + q] = s * akp + c * akq
                    }
                    for k in 0..<n {
                        let apk: Double = a[p * n + k], aqk: Double = a[q * n + k]
                        a[p * n + k] = c * apk - s * aqk
                        a[q * n + k] = s * apk + c * aqk
                    }
                    for k in 0..<n {
                        let vkp: Double = v[k * n + p], vkq: Double = v[k * n + q]
                        v[k * n + p] = c * vkp - s * vkq
                        v[k * n + q] = s * vkp + c * vkq
                    }
                }
            }
        }
        let order: [Int] = (0..<n).sorted { a[$0 * n + $0] < a[$1 * n + $1] }
        let values: [Double] = order.map { a[$0 * n + $0] }
        let vectors: [[Double]] = order.map { col in (0..<n).map { row in v[row * n + col] } }
        return (values, vectors)
    }
}

/// `analyze hessian`.
extension HessianSpectrum {
    /// One batch's numbers (each batch a disjoint set of images).
    public struct Batch: Codable, Sendable {
        public var images: Int
        /// Largest and most negative eigenvalue from Lanczos run to convergence.
        public var topEigenvalue: Double
        public var mostNegativeEigenvalue: Double
        /// |most negative| ÷ |top| (0 when no eigenvalue found is negative).
        public var negativeToTopRatio: Double
        /// Hutchinson's estimate and its standard error.
        public var trace: Double
        public var traceStandardError: Double
        /// Share of the stochastic-Lanczos density's mass below zero.
        public var negativeMass: Double
        public var lanczosSteps: Int
        public var lanczosConverged: Bool
    }

    /// Means over the batches, their sample standard deviations (`…Std`, 0 for one
    /// batch), and each batch's values.
    public struct Summary: AnalysisSummary {
        public static let analysis = "hessian"

        public var topEigenvalue: Double
        public var trace: Double
        /// Hutchinson's standard error of `trace` (the batches' errors combined:
        /// √Σse² / batches), not the spread between batches (`traceStd`).
        public var traceStandardError: Double
        /// The mean over batches of each batch's most negative eigenvalue.
        public var mostNegativeEigenvalue: Double
        /// Share of the spectral density's mass below zero.
        public var negativeMass: Double
        /// The mean over batches of |most negative| ÷ top: how strong the non-convex directions are.
        public var negativeToTopRatio: Double
        public var batches: Int
        public var topEigenvalueStd: Double
        public var mostNegativeEigenvalueStd: Double
        public var negativeToTopRatioStd: Double
        public var traceStd: Double
        /// Whether every batch's Lanczos run met its stopping rule.
        public var lanczosConverged: Bool
        public var perBatch: [Batch]
    }

    public struct Settings: Encodable {
        public var source: RunSource
        public var images: Int
        public var batches: Int
        public var imagesPerBatch: Int
        public var eigenvalues: Int
        public var powerIterations: Int
        public var traceSamples: Int
        public var lanczosRuns: Int
        public var lanczosSteps: Int
        public var lanczosTolerance: Double
        public var lanczosMaxSteps: Int
        public var extremes = "top and most negative eigenvalue: one Lanczos run per batch (Rademacher start, full reorthogonalisation), stopped when both extreme Ritz values changed by ≤ tolerance·|top| in the last step and both residuals ‖Hy − θy‖ are ≤ tolerance·|top|"
        public var densitySigma: Double
        public var command: String
    }

    public struct Data: Encodable {
        /// Power iteration's top eigenvalues (by magnitude), one list per batch.
        public var topEigenvalues: [[Double]]
        /// Hutchinson's samples, one list per batch.
        public var traceSamples: [[Double]]
        /// The density's Lanczos runs, all batches' runs in order.
        public var ritzValues: [[Double]]
        public var ritzWeights: [[Double]]
        public var densityGrid: [Double]
        public var density: [Double]
    }

    public typealias Report = AnalysisReport<Summary, Settings, Data>

    /// The images are split into `batches` disjoint batches of ⌊images / batches⌋
    /// (the rest left out); each batch's loss gets its own spectrum, and the summary
    /// averages them. Defaults: one batch, Lanczos tolerance 1e-3, at most 100 steps.
    public static func run(_ model: AnalysisModel, images set: ImageSet, source: RunSource, eigenvalues k: Int, iterations: Int,
                           traceSamples: Int, lanczosRuns: Int, lanczosSteps: Int, batches: Int = 1, lanczosTolerance: Double = 1e-3,
                           lanczosMaxSteps: Int = 100, seed: UInt64, command: String,
                           progress: ProgressHandler? = nil) throws -> Report {
        guard k >= 1, iterations >= 1, traceSamples >= 1, lanczosRuns >= 1, lanczosSteps >= 2 else {
            throw AnalysisError("hessian: --eigenvalues, --iterations, --trace-samples, --lanczos-runs must be ≥ 1 and --lanczos-steps ≥ 2")
        }
        guard batches >= 1, set.count / batches >= 1 else {
            throw AnalysisError("hessian: --batches must be between 1 and the number of images (\(set.count)), got \(batches)")
        }
        guard lanczosTolerance > 0, lanczosTolerance < 1 else {
            throw AnalysisError("hessian: --lanczos-tolerance must be in (0, 1), got \(lanczosTolerance)")
        }
        guard lanczosMaxSteps >= 2 else { throw AnalysisError("hessian: the Lanczos step limit must be ≥ 2, got \(lanczosMaxSteps)") }
        let net = model.model
        net.eval()  // fixed batch statistics and no dropout: the Hessian of one deterministic function
        let point = ParameterVector(of: net)
        let generator = Generator(seed: seed)
        let perBatchImages = set.count / batches
        var rows: [Batch] = [], tops: [[Double]] = [], traces: [[Double]] = [], quadratures: [Quadrature] = []
        for b in 0..<batches {
            let range = (b * perBatchImages)..<((b + 1) * perBatchImages)
            let x = model.input.normalized(set.images.sliced(axis: 0, start: range.lowerBound, end: range.upperBound).contiguous())
            let labels = Array(set.labels[range])
            let hvp = HessianVectorProduct(model: net) { crossEntropy(logits: net.logits(x), labels: labels) }
            let tag = batches > 1 ? "hessian, batch \(b + 1)/\(batches)" : "hessian"
            progress?("\(tag): top \(k) eigenvalues (power iteration)")
            let top = topEigenvalues(hvp, like: point, count: k, maxIterations: iterations, generator: generator)
            progress?("\(tag): trace (\(traceSamples) Hutchinson samples)")
            let tr = trace(hvp, like: point, samples: traceSamples, generator: generator)
            progress?("\(tag): density (\(lanczosRuns) Lanczos runs of \(lanczosSteps) steps)")
            let q = lanczosQuadratures(hvp, like: point, runs: lanczosRuns, steps: lanczosSteps, generator: generator)
            let extremes = extremeEigenvalues(hvp, like: point, tolerance: lanczosTolerance, maxSteps: lanczosMaxSteps, generator: generator)
            progress?("\(tag): extremes \(extremes.converged ? "converged" : "NOT converged") after \(extremes.steps) Lanczos steps")
            // Negative mass straight from the quadrature weights (the smoothing would spill mass across 0).
            let negative = q.map { zip($0.nodes, $0.weights).filter { $0.0 < 0 }.map(\.1).reduce(0, +) }.reduce(0, +) / Double(q.count)
            rows.append(Batch(images: range.count, topEigenvalue: extremes.top, mostNegativeEigenvalue: extremes.bottom,
                              negativeToTopRatio: extremes.bottom < 0 ? -extremes.bottom / abs(extremes.top) : 0,
                              trace: tr.mean, traceStandardError: tr.standardError, negativeMass: negative,
                              lanczosSteps: extremes.steps, lanczosConverged: extremes.converged))
            tops.append(top.values)
            traces.append(tr.samples)
            quadratures += q
        }
        let nodes = quadratures.flatMap(\.nodes)
        let lo = min(nodes.min() ?? -1, 0), hi = max(nodes.max() ?? 1, 0)
        let pad = 0.05 * (hi - lo) + 1e-6
        let sigma = max((hi - lo) / 200, 1e-6)
        let grid = LossLandscape.grid(from: lo - pad, to: hi + pad, count: 600)
        let dens = density(quadratures, grid: grid, sigma: sigma)
        func mean(_ f: (Batch) -> Double) -> Double { Statistics.mean(rows.map(f)) }
        func std(_ f: (Batch) -> Double) -> Double { Statistics.standardDeviation(rows.map(f)) }
        let summary = Summary(topEigenvalue: mean(\.topEigenvalue), trace: mean(\.trace),
                              traceStandardError: rows.map { $0.traceStandardError * $0.traceStandardError }.reduce(0, +).squareRoot()
                                  / Double(batches),
                              mostNegativeEigenvalue: mean(\.mostNegativeEigenvalue), negativeMass: mean(\.negativeMass),
                              negativeToTopRatio: mean(\.negativeToTopRatio), batches: batches, topEigenvalueStd: std(\.topEigenvalue),
                              mostNegativeEigenvalueStd: std(\.mostNegativeEigenvalue), negativeToTopRatioStd: std(\.negativeToTopRatio),
                              traceStd: std(\.trace), lanczosConverged: rows.allSatisfy(\.lanczosConverged), perBatch: rows)
        return Report(analysis: Summary.analysis, summary: summary,
                      settings: Settings(source: source, images: perBatchImages * batches, batches: batches, imagesPerBatch: perBatchImages,
                                         eigenvalues: k, powerIterations: iterations, traceSamples: traceSamples, lanczosRuns: lanczosRuns,
                                         lanczosSteps: lanczosSteps, lanczosTolerance: lanczosTolerance, lanczosMaxSteps: lanczosMaxSteps,
                                         densitySigma: sigma, command: command),
                      data: Data(topEigenvalues: tops, traceSamples: traces, ritzValues: quadratures.map(\.nodes),
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
