import Foundation
import XCTest
import Patchwork
import PatchworkNN
import PatchworkAnalysis
import PatchworkModels
import PatchworkData

/// Known answers for the second set of analyses: attention distance, CKA,
/// Hessian spectrum, loss landscape.
final class AnalysisIITests: XCTestCase {
    // MARK: attention distance

    /// 2×2 tokens on a 32×32 image: centres 16 px apart.
    private func twoByTwoMap(_ probabilities: [Float], heads: Int, prefix: Int = 0) -> AttentionMap {
        let n = prefix + 4
        let positions = AttentionMap.gridPositions(height: 2, width: 2, prefixTokens: prefix)
        return AttentionMap(probabilities: Tensor(probabilities, shape: [1, heads, n, n]),
                            queryPositions: positions, keyPositions: positions)
    }

    func testAttentionOnSelfHasDistanceZeroAndUniformHasTheGridMean() throws {
        var identity = [Float](repeating: 0, count: 16)
        for i in 0..<4 { identity[i * 4 + i] = 1 }
        let uniform = [Float](repeating: 0.25, count: 16)
        let d = try XCTUnwrap(AttentionDistance.perHead(twoByTwoMap(identity + uniform, heads: 2), imageHeight: 32, imageWidth: 32))
        XCTAssertEqual(d[0], 0, accuracy: 1e-9)
        // From any token: distances 0, 16, 16, 16√2 → mean (32 + 16√2) / 4.
        XCTAssertEqual(d[1], (32 + 16 * 2.0.squareRoot()) / 4, accuracy: 1e-5)
    }

    func testClassTokensAreNeitherQueriesNorCountedKeys() throws {
        // Query rows 1…4 put half their mass on the class token and half on the token
        // to their right/left; the class-token query row attends far but must not count.
        var p = [Float](repeating: 0, count: 25)
        p[0 * 5 + 4] = 1                           // class-token query → farthest token
        for (q, k) in [(1, 2), (2, 1), (3, 4), (4, 3)] { p[q * 5 + 0] = 0.5; p[q * 5 + k] = 0.5 }
        let d = try XCTUnwrap(AttentionDistance.perHead(twoByTwoMap(p, heads: 1, prefix: 1), imageHeight: 32, imageWidth: 32))
        XCTAssertEqual(d[0], 16, accuracy: 1e-5, "renormalised over spatial keys: every query looks 16 px away")
        XCTAssertNil(AttentionDistance.perHead(AttentionMap(probabilities: Tensor(p, shape: [1, 1, 5, 5])), imageHeight: 32, imageWidth: 32))
    }

    func testRolloutOfUniformAndSelfAttention() throws {
        // Layer 1 attends to itself only; layer 2 uniformly over the 4 grid tokens and the class token.
        let n = 5
        var selfOnly = [Float](repeating: 0, count: n * n)
        for i in 0..<n { selfOnly[i * n + i] = 1 }
        let uniform = [Float](repeating: 1 / Float(n), count: n * n)
        let maps = [("a", twoByTwoMap(selfOnly, heads: 1, prefix: 1)), ("b", twoByTwoMap(uniform, heads: 1, prefix: 1))]
        let result = try AttentionRollout.rollout(maps)
        // Self attention + identity stays the identity; then ½·uniform + ½·I.
        let r = result.rollout.scalars
        for i in 0..<n { for j in 0..<n { XCTAssertEqual(r[i * n + j], 0.5 / Float(n) + (i == j ? 0.5 : 0), accuracy: 1e-6) } }
        let heat = try AttentionRollout.heatMaps(result, gridHeight: 2, gridWidth: 2)
        XCTAssertEqual(heat.shape, [1, 2, 2])
        XCTAssertEqual(heat.scalars, [1, 1, 1, 1], "the class token's row is flat over the grid")

        let windowed = AttentionMap(probabilities: Tensor.full([4, 1, 4, 4], 0.25))
        XCTAssertThrowsError(try AttentionRollout.rollout([("a", twoByTwoMap(uniform, heads: 1, prefix: 1)), ("w", windowed)])) {
            XCTAssertTrue("\($0)".contains("layer w"), "\($0)")
        }
    }

    // MARK: CKA

    private func randomOrthogonal(_ n: Int, seed: UInt64) -> Tensor {
        // Gram–Schmidt on a random matrix (in double precision).
        let g = Generator(seed: seed)
        var rows: [[Double]] = []
        while rows.count < n {
            var v = (0..<n).map { _ in Double(g.nextNormal()) }
            for u in rows { let d = zip(u, v).map(*).reduce(0, +); v = zip(v, u).map { $0 - d * $1 } }
            let norm = v.map { $0 * $0 }.reduce(0, +).squareRoot()
            rows.append(v.map { $0 / norm })
        }
        return Tensor(rows.flatMap { $0.map(Float.init) }, shape: [n, n])
    }

    func testCKAIsOneWithItselfAndInvariantToRotationAndScaling() {
        let g = Generator(seed: 4)
        var cka = CKAAccumulator(layersA: 1, layersB: 4)
        for _ in 0..<3 {
            let x = Tensor.randomNormal([16, 2, 2, 3], generator: g)           // 16 examples, 12 features
            let flat = x.reshaped([16, 12])
            let rotated = matmul(flat, randomOrthogonal(12, seed: 9))
            let unrelated = Tensor.randomNormal([16, 12], generator: g)
            cka.add(featuresA: [x], featuresB: [x, rotated, flat * 3.5, unrelated])
        }
        let m = cka.matrix[0]
        XCTAssertEqual(m[0], 1, accuracy: 1e-9, "CKA with itself")
        XCTAssertEqual(m[1], 1, accuracy: 1e-4, "invariant to an orthogonal transform")
        XCTAssertEqual(m[2], 1, accuracy: 1e-6, "invariant to isotropic scaling")
        XCTAssertLessThan(abs(m[3]), 0.3, "independent features: near 0 (the unbiased estimator can dip below 0)")
    }

    func testCKAMatchesTheDirectFormulaOnOneBatch() {
        // Linear CKA with the unbiased HSIC written out with explicit matrices.
        let g = Generator(seed: 12)
        let x = Tensor.randomNormal([8, 5], generator: g), y = Tensor.randomNormal([8, 3], generator: g) + matmul(x, Tensor.randomNormal([5, 3], generator: g))
        var cka = CKAAccumulator(layersA: 1, layersB: 1)
        cka.add(featuresA: [x], featuresB: [y])
        func gram(_ t: Tensor) -> [[Double]] {
            let s = t.scalars, n = t.shape[0], p = t.shape[1]
            var k = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
            for i in 0..<n {
                for j in 0..<n where i != j {
                    var total: Double = 0
                    for f in 0..<p { total += Double(s[i * p + f]) * Double(s[j * p + f]) }
                    k[i][j] = total
                }
            }
            return k
        }
        func hsic(_ k: [[Double]], _ l: [[Double]]) -> Double {
            let n = Double(k.count)
            var kl = [[Double]](repeating: [Double](repeating: 0, count: k.count), count: k.count)
            for i in k.indices { for j in k.indices { for m in k.indices { kl[i][j] += k[i][m] * l[m][j] } } }
            var trace: Double = 0, sumK: Double = 0, sumL: Double = 0, sumKL: Double = 0
            for i in k.indices {
                trace += kl[i][i]
                for j in k.indices { sumK += k[i][j]; sumL += l[i][j]; sumKL += kl[i][j] }
            }
            let bias: Double = sumK * sumL / ((n - 1) * (n - 2))
            let cross: Double = 2 / (n - 2) * sumKL
            return (trace + bias - cross) / (n * (n - 3))
        }
        let k = gram(x), l = gram(y)
        let expected = hsic(k, l) / (hsic(k, k) * hsic(l, l)).squareRoot()
        XCTAssertEqual(cka.matrix[0][0], expected, accuracy: 1e-5)
    }

    // MARK: Hessian

    /// loss(x) = ½ xᵀ A x for a symmetric A with known eigenvalues (some negative).
    final class Quadratic: Module {
        @Parameter(key: "x") var x: Tensor
        let a: Tensor
        init(_ a: Tensor, seed: UInt64) {
            _x.wrappedValue = Tensor.randomNormal([a.shape[0]], generator: Generator(seed: seed))
            self.a = a
        }
        func loss() -> Tensor { (x * matmul(a, x.reshaped([-1, 1])).reshaped([-1])).sum() * 0.5 }
    }

    private let eigenvalues: [Float] = [5, 3, 1, -0.5, -2, 0.2]

    private func matrixWithEigenvalues(_ lambda: [Float]) -> Tensor {
        let n = lambda.count
        let q = randomOrthogonal(n, seed: 21)
        return matmul(q * Tensor(lambda, shape: [1, n]), q.transposed())
    }

    func testHessianVectorProductOfAQuadraticIsAV() {
        let a = matrixWithEigenvalues(eigenvalues)
        let model = Quadratic(a, seed: 1)
        let hvp = HessianVectorProduct(model: model, loss: model.loss)
        let v = Tensor.randomNormal([6], generator: Generator(seed: 2))
        let hv = hvp(ParameterVector([v])).tensors[0]
        assertClose(hv, matmul(a, v.reshaped([6, 1])).reshaped([6]), atol: 1e-5, rtol: 1e-5, "H·v = A·v")
    }

    func testTopEigenvaluesTraceAndDensityOfAKnownMatrix() {
        let a = matrixWithEigenvalues(eigenvalues)
        let model = Quadratic(a, seed: 1)
        let hvp = HessianVectorProduct(model: model, loss: model.loss)
        let point = ParameterVector(of: model)
        let top = HessianSpectrum.topEigenvalues(hvp, like: point, count: 3, maxIterations: 500, tolerance: 1e-9,
                                                 generator: Generator(seed: 3))
        XCTAssertEqual(top.values[0], 5, accuracy: 1e-3)
        XCTAssertEqual(top.values[1], 3, accuracy: 1e-3)
        XCTAssertEqual(top.values[2], -2, accuracy: 1e-3, "third largest in magnitude is negative")

        // Hutchinson with Rademacher probes is exact for a diagonal matrix.
        let diagonal = Quadratic(Tensor(eigenvalues, shape: [6, 1]) * Tensor.eye(6), seed: 1)
        let trace = HessianSpectrum.trace(HessianVectorProduct(model: diagonal, loss: diagonal.loss), like: point, samples: 4,
                                          generator: Generator(seed: 4))
        XCTAssertEqual(trace.mean, Double(eigenvalues.reduce(0, +)), accuracy: 1e-4)
        // For the rotated matrix: unbiased, within a few standard errors.
        let rotated = HessianSpectrum.trace(hvp, like: point, samples: 200, generator: Generator(seed: 5))
        XCTAssertEqual(rotated.mean, 6.7, accuracy: 4 * rotated.standardError + 1e-6)

        // Lanczos with as many steps as dimensions recovers the whole spectrum, negative part included.
        let quadratures = HessianSpectrum.lanczosQuadratures(hvp, like: point, runs: 2, steps: 6, generator: Generator(seed: 6))
        for q in quadratures {
            XCTAssertEqual(q.weights.reduce(0, +), 1, accuracy: 1e-6)
            for (node, expected) in zip(q.nodes, eigenvalues.sorted()) { XCTAssertEqual(node, Double(expected), accuracy: 1e-3) }
        }
        let grid = LossLandscape.grid(from: -6, to: 8, count: 1401)
        let density = HessianSpectrum.density(quadratures, grid: grid, sigma: 0.1)
        let mass = density.reduce(0, +) * (grid[1] - grid[0])
        XCTAssertEqual(mass, 1, accuracy: 1e-3, "the density integrates to 1")
        let negativeMass = zip(grid, density).filter { $0.0 < 0 }.map(\.1).reduce(0, +) * (grid[1] - grid[0])
        XCTAssertGreaterThan(negativeMass, 0.1, "two of six eigenvalues are negative")
    }

    func testHessianVectorProductOfANetworkMatchesFiniteDifferences() throws {
        Generator.global.reseed(8)
        let net = MLP(4, hidden: 5, out: 3)
        let x = Tensor.randomNormal([6, 4], generator: Generator(seed: 9))
        let labels = [0, 2, 1, 1, 0, 2]
        func loss() -> Tensor { crossEntropy(logits: net(x), labels: labels) }
        let hvp = HessianVectorProduct(model: net, loss: loss)
        let center = ParameterVector(of: net)
        let v = ParameterVector.randomNormal(like: center, generator: Generator(seed: 10))
        let hv = hvp(v)
        let eps = 1e-2
        func gradient(at p: ParameterVector) throws -> ParameterVector {
            try p.assign(to: net)
            let grads = valueAndGrad(net, loss).gradients
            return ParameterVector(net.trainableParameters().map { grads[$0.0]! })
        }
        let numeric = (try gradient(at: center + v * eps) - gradient(at: center - v * eps)) * (1 / (2 * eps))
        try center.assign(to: net)
        for (a, b) in zip(hv.tensors, numeric.tensors) { assertClose(a, b, atol: 2e-3, rtol: 2e-2, "H·v vs finite differences") }
        XCTAssertGreaterThan(hv.norm, 1e-3)
    }

    // MARK: loss landscape

    func testFilterNormalisedDirectionsAndAConvexLandscape() throws {
        final class Target: Module {
            @Parameter(key: "w") var w: Tensor
            @Parameter(key: "b") var b: Tensor
            override init() {
                _w.wrappedValue = Tensor.randomNormal([3, 4], generator: Generator(seed: 1))
                _b.wrappedValue = Tensor.randomNormal([3], generator: Generator(seed: 2))
            }
        }
        let model = Target()
        let center = ParameterVector(of: model)
        let d = LossLandscape.filterNormalizedDirection(for: center, generator: Generator(seed: 3))
        let w = model.w.scalars, dw = d.tensors[0].scalars
        for f in 0..<3 {
            let wn = (0..<4).map { w[f * 4 + $0] * w[f * 4 + $0] }.reduce(0, +).squareRoot()
            let dn = (0..<4).map { dw[f * 4 + $0] * dw[f * 4 + $0] }.reduce(0, +).squareRoot()
            XCTAssertEqual(dn, wn, accuracy: 1e-4 * wn, "filter \(f) has the weight's norm")
        }
        XCTAssertEqual(d.tensors[1].scalars, [0, 0, 0], "biases are not moved")

        // A convex quadratic in the weights: every second difference along the line is ≥ 0.
        let target = Tensor.randomNormal([3, 4], generator: Generator(seed: 4))
        let alphas = LossLandscape.grid(from: -1, to: 1, count: 21)
        let samples = try LossLandscape.evaluate(model: model, center: center, d1: d, d2: nil, alphas: alphas, betas: []) {
            (Double(withoutGrad { (model.w - target).square().sum() }.item()), 0)
        }
        XCTAssertEqual(samples.count, 21)
        for i in 1..<20 {
            XCTAssertGreaterThanOrEqual(samples[i - 1].loss - 2 * samples[i].loss + samples[i + 1].loss, -1e-4)
        }
        XCTAssertEqual(model.w.scalars, w, "the model is restored to the centre")
        let middle = samples[10]
        XCTAssertEqual(middle.alpha, 0, accuracy: 1e-12)
        XCTAssertEqual(middle.loss, Double(withoutGrad { (model.w - target).square().sum() }.item()), accuracy: 1e-5)
    }

    // MARK: cost

    func testCostMeasuresWithoutChangingTheModel() throws {
        let model = try Models.create("resnet_nano", numClasses: 10)
        let before = model.stateDict()
        let cost = ModelCost.measure(model, name: "resnet_nano", inputSize: 16, batch: 4, classes: 10, seconds: 0.05)
        XCTAssertEqual(cost.parameters, model.parameterCount)
        XCTAssertGreaterThan(cost.gflopsPerImage, 0)
        XCTAssertGreaterThan(cost.inferImagesPerSecond, 0)
        XCTAssertGreaterThan(cost.trainImagesPerSecond, 0)
        XCTAssertGreaterThan(ProcessMemory.peakResidentMB(), 0)
        for (key, value) in model.stateDict() { XCTAssertEqual(value.scalars, before[key]!.scalars, key) }
    }

    // MARK: report

    func testReportGathersAnalysesRunsAndClaimsIntoOnePage() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("report-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        for (model, bias) in [("resnet_nano", 0.2), ("vit_nano", 0.7)] {
            let dir = root + "/" + model
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let json = "{\"analysis\": \"shape-bias\", \"summary\": {\"shape_bias\": \(bias)}, \"settings\": {\"source\": {\"model\": \"\(model)\"}}, \"data\": {}}"
            try json.write(toFile: dir + "/shape-bias.json", atomically: true, encoding: .utf8)
            try "<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"><defs><clipPath id=\"c\"/></defs><rect clip-path=\"url(#c)\"/></svg>"
                .write(toFile: dir + "/shape-bias.svg", atomically: true, encoding: .utf8)
            try "{\"model\": \"\(model)\", \"data\": \"shapetex\", \"epochs\": 3, \"test_accuracy\": 0.9}"
                .write(toFile: dir + "/summary.json", atomically: true, encoding: .utf8)
        }
        let claim = ClaimResult(id: "shape-bias", claim: "ViTs lean on shape", setting: "shape bias, ViT minus CNN",
                                baseline: .init(name: "resnet_nano", value: 0.2),
                                seeds: [.init(seed: 0, value: 0.5, parts: [:]), .init(seed: 1, value: 0.48, parts: [:])], settle: "more seeds")
        try JSONEncoder().encode([claim]).write(to: URL(fileURLWithPath: root + "/claims.json"))
        let (entries, runs, claims) = try HTMLReport.collect([root])
        XCTAssertEqual(entries.map(\.model).sorted(), ["resnet_nano", "vit_nano"])
        XCTAssertEqual(runs.count, 2)
        XCTAssertEqual(claims, [claim])
        XCTAssertEqual(claim.verdict, .held)
        let html = HTMLReport.render(title: "T", entries: entries, runs: runs, claims: claims)
        XCTAssertTrue(html.contains("<h2 id=\"shape-bias\">"))
        XCTAssertTrue(html.contains("ViTs lean on shape"))
        XCTAssertTrue(html.contains("<span class=\"held\">held</span>"))
        XCTAssertTrue(html.contains("seed 1: 0.480"))
        XCTAssertFalse(html.contains("<?xml"), "SVG is inlined without its prolog")
        XCTAssertTrue(html.contains("id=\"f1-c\"") && html.contains("url(#f2-c)"), "ids are unique per figure")
        XCTAssertFalse(html.contains("http://") && html.contains("src=\"http"), "nothing is fetched")
        XCTAssertThrowsError(try HTMLReport.collect([root + "/missing"])) { XCTAssertTrue("\($0)".contains("missing")) }
    }

    // MARK: end to end on a model

    /// Each analysis of this set on an (untrained) vit_nano: it runs, its numbers are in range,
    /// its files are written and the report finds them; bad settings are refused by name.
    func testTheAnalysesRunOnANanoModelAndTheReportFindsThem() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("analyses-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        Generator.global.reseed(1)
        let model = try Models.create("vit_nano", numClasses: 10)
        let m = AnalysisModel(model, input: .patchwork(imageSize: 32), batchSize: 8)
        let set = try ImageSet(try ShapeTex(split: .test, count: 40, size: 32, seed: 1), count: 16)
        let source = RunSource(model: "vit_nano", weights: "-", data: "shapetex", imageSize: 32, normalization: "patchwork", seed: 0)

        let distance = try AttentionDistance.run(m, images: set, source: source, command: "test")
        XCTAssertEqual(distance.data.layers.count, model.attentionLayers().count)
        for layer in distance.data.layers {
            XCTAssertTrue((0...(32 * 2.0.squareRoot())).contains(layer.mean), "\(layer.key): \(layer.mean) px")
            XCTAssertEqual(layer.heads.count, 4, layer.key)
        }
        try AnalysisOutput.write(distance, name: "attention-distance", svg: AttentionDistance.svg(distance, title: "t"), to: dir)

        let two = ImageSet(images: set.images.sliced(axis: 0, start: 0, end: 2), labels: Array(set.labels.prefix(2)), indices: [0, 1])
        let maps = try AttentionRollout.run(m, images: two, source: source, command: "test", directory: dir, scale: 2)
        XCTAssertEqual(maps.data.files.count, 2)
        XCTAssertEqual([maps.data.gridHeight, maps.data.gridWidth], [8, 8])
        for file in maps.data.files { XCTAssertEqual(try ImageIO.load(dir + "/" + file).shape, [64, 64, 3]) }
        try AnalysisOutput.write(maps, name: "attention-maps", svg: nil, to: dir)

        let cka = try CKAAccumulator.run(m, m, images: set, sourceA: source, sourceB: source, batchSize: 8, command: "test")
        for i in cka.data.cka.indices { XCTAssertEqual(cka.data.cka[i][i], 1, accuracy: 1e-6, "a layer with itself") }
        try AnalysisOutput.write(cka, name: "cka", svg: CKAAccumulator.svg(cka), to: dir + "/cka")

        let before = model.stateDict()
        let landscape = try LossLandscape.run(m, images: set, source: source, dimensions: 2, range: 0.5, points: 3, seed: 1, command: "test")
        XCTAssertEqual(landscape.data.loss.map(\.count), [3, 3, 3])
        let direct = crossEntropyRows(m.logits(set.images), labels: set.labels).reduce(0, +) / Double(set.count)
        XCTAssertEqual(landscape.summary.centerLoss, direct, accuracy: 1e-4, "the centre is the model itself")
        for (key, value) in model.stateDict() { XCTAssertEqual(value.scalars, before[key]!.scalars, "\(key) restored") }
        try AnalysisOutput.write(landscape, name: "landscape", svg: LossLandscape.svg(landscape, title: "t"), to: dir)

        let four = ImageSet(images: set.images.sliced(axis: 0, start: 0, end: 4), labels: Array(set.labels.prefix(4)), indices: [0, 1, 2, 3])
        let hessian = try HessianSpectrum.run(m, images: four, source: source, eigenvalues: 1, iterations: 2, traceSamples: 1,
                                              lanczosRuns: 1, lanczosSteps: 3, seed: 1, command: "test")
        XCTAssertTrue(hessian.summary.topEigenvalue.isFinite && hessian.summary.trace.isFinite)
        XCTAssertEqual(hessian.data.ritzWeights[0].reduce(0, +), 1, accuracy: 1e-6)
        try AnalysisOutput.write(hessian, name: "hessian", svg: HessianSpectrum.svg(hessian, title: "t"), to: dir)

        let (entries, _, _) = try HTMLReport.collect([dir])
        XCTAssertEqual(Set(entries.map(\.analysis)), ["attention-distance", "attention-maps", "cka", "landscape", "hessian"])
        XCTAssertEqual(entries.first { $0.analysis == "attention-maps" }?.pngs.count, 2)

        let cnn = AnalysisModel(try Models.create("resnet_nano", numClasses: 10), input: .patchwork(imageSize: 32))
        XCTAssertThrowsError(try AttentionDistance.run(cnn, images: four, source: source, command: "test")) {
            XCTAssertTrue("\($0)".contains("no attention layers"), "\($0)")
        }
        XCTAssertThrowsError(try LossLandscape.run(m, images: four, source: source, dimensions: 3, range: 1, points: 3, seed: 1, command: "t")) {
            XCTAssertTrue("\($0)".contains("--dimensions"), "\($0)")
        }
        XCTAssertThrowsError(try CKAAccumulator.run(m, m, images: four, sourceA: source, sourceB: source, batchSize: 2, command: "t")) {
            XCTAssertTrue("\($0)".contains("at least 4"), "\($0)")
        }
    }
}
