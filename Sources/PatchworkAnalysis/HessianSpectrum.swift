import Foundation
import Patchwork
import PatchworkNN
import PatchworkModels

/// The Hessian's spectrum from Hessian-vector products alone (as PyHessian,
/// Yao et al. 2020): top eigenvalues by power iteration with deflation, the trace
/// by Hutchinson's estimator, the eigenvalue density by stochastic Lanczos quadrature.
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
        var basis = [start.normalized()]
        var alpha: [Double] = [], beta: [Double] = []
        for j in 0..<steps {
            var w = hvp(basis[j])
            let a = w.dot(basis[j])
            alpha.append(a)
            if j == steps - 1 { break }
            w = orthogonalized(w, against: basis)
            let b = w.norm
            if b < 1e-10 * max(abs(a), 1) { break }
            beta.append(b)
            basis.append(w * (1 / b))
        }
        return (alpha, beta)
    }

    /// v minus its projections on `basis` (orthonormal), twice for stability.
    static func orthogonalized(_ v: ParameterVector, against basis: [ParameterVector]) -> ParameterVector {
        var v = v
        for _ in 0..<2 { for u in basis { v = v - u * v.dot(u) } }
        return v
    }

    /// Eigenvalues and eigenvectors of a symmetric tridiagonal matrix by cyclic
    /// Jacobi rotations (the matrices are small: one row per Lanczos step).
    /// Eigenvectors are returned as rows: `vectors[i]` belongs to `values[i]`.
    static func symmetricTridiagonalEigen(diagonal: [Double], offDiagonal: [Double]) -> (values: [Double], vectors: [[Double]]) {
        let n: Int = diagonal.count
        // Row-major n×n matrices: a (rotated towards diagonal), v (accumulated rotations).
        var a = [Double](repeating: 0, count: n * n)
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            a[i * n + i] = diagonal[i]
            v[i * n + i] = 1
            if i + 1 < n {
                a[i * n + i + 1] = offDiagonal[i]
                a[(i + 1) * n + i] = offDiagonal[i]
            }
        }
        for _ in 0..<100 {
            var off: Double = 0
            for i in 0..<n { for j in 0..<n where j > i { off += a[i * n + j] * a[i * n + j] } }
            if off < 1e-24 { break }
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
    public struct Summary: AnalysisSummary {
        public static let analysis = "hessian"

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
        let x = model.input.normalized(set.images.contiguous())
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
        return Report(analysis: Summary.analysis, summary: summary,
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
