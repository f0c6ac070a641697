import Foundation
import XCTest
import Patchwork
import PatchworkNN
import PatchworkAnalysis
import PatchworkData
import PatchworkModels

/// The analyses measuring their own spread and converging: Lanczos run to
/// convergence (against a dense Hessian and an independent PyTorch reference),
/// the uniform-attention baseline, the error scaled by the room above chance,
/// data-derived frequency bands, Fourier heat-map draws, PGD restarts.
final class AnalysisStatisticsTests: XCTestCase {
    // MARK: Hessian

    /// The tiny network and batch of Fixtures/analysis-reference/hessian (see
    /// scripts/reference/hessian_reference.py), and the reference's numbers.
    struct TinyHessianCase {
        let net: MLP
        let hvp: HessianVectorProduct
        let point: ParameterVector
        let loss: Double
        let reference: [String: Any]
    }

    func tinyHessianCase() throws -> TinyHessianCase {
        let folder = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/analysis-reference/hessian", withExtension: nil)).path
        let weights = try Safetensors(contentsOf: folder + "/weights.safetensors")
        let batch = try Safetensors(contentsOf: folder + "/batch.safetensors")
        let net = MLP(16, hidden: 12, out: 10, activation: .gelu)
        try net.loadStateDict(Dictionary(uniqueKeysWithValues: try weights.names.map { ($0, try weights.tensor($0)) }),
                              source: "weights.safetensors")
        let x = try batch.tensor("x"), labels = try batch.integers("labels")
        XCTAssertEqual(x.shape, [32, 16])
        let lossFunction = { crossEntropy(logits: net(x), labels: labels) }
        let referenceData = try Data(contentsOf: URL(fileURLWithPath: folder + "/reference.json"))
        let reference = try XCTUnwrap(try JSONSerialization.jsonObject(with: referenceData) as? [String: Any])
        return TinyHessianCase(net: net, hvp: HessianVectorProduct(model: net, loss: lossFunction), point: ParameterVector(of: net),
                               loss: Double(withoutGrad { lossFunction() }.scalars[0]), reference: reference)
    }

    /// Patchwork's Lanczos (top, most negative), and the exact trace of the dense
    /// Hessian built from its Hessian-vector products, against PyTorch's full
    /// Hessian of the same loss (float64, torch.autograd.functional.hessian).
    func testHessianOfATinyNetworkMatchesTheTorchReference() throws {
        let c = try tinyHessianCase()
        let ref = c.reference
        let refTop = try XCTUnwrap(ref["top_eigenvalue"] as? Double), refBottom = try XCTUnwrap(ref["most_negative_eigenvalue"] as? Double)
        let refTrace = try XCTUnwrap(ref["trace"] as? Double)
        XCTAssertEqual(c.point.tensors.map(\.count).reduce(0, +), ref["parameters"] as? Int)
        XCTAssertEqual(c.loss, try XCTUnwrap(ref["loss"] as? Double), accuracy: 1e-5, "same network, weights and batch as the reference")
        XCTAssertLessThan(refBottom, -0.1, "the case has clearly negative curvature")

        // Lanczos to convergence: 1e-3 relative to each eigenvalue.
        let extremes = HessianSpectrum.extremeEigenvalues(c.hvp, like: c.point, tolerance: 1e-6, maxSteps: 334, generator: Generator(seed: 3))
        XCTAssertTrue(extremes.converged)
        XCTAssertEqual(extremes.top, refTop, accuracy: 1e-3 * abs(refTop))
        XCTAssertEqual(extremes.bottom, refBottom, accuracy: 1e-3 * abs(refBottom))

        // Exact trace: the dense Hessian's diagonal (334 Hessian-vector products), float32 products summed in double.
        let dense = HessianSpectrum.denseHessian(c.hvp, like: c.point)
        let trace = dense.indices.map { dense[$0][$0] }.reduce(0, +)
        XCTAssertEqual(trace, refTrace, accuracy: 1e-4 * abs(refTrace))
        let eigen = HessianSpectrum.symmetricEigen(dense).values
        XCTAssertEqual(eigen.last!, refTop, accuracy: 1e-4 * abs(refTop), "dense top")
        XCTAssertEqual(eigen.first!, refBottom, accuracy: 1e-4 * abs(refBottom), "dense bottom")

        // Hutchinson is unbiased: within 4 of its own standard errors (σ/√n from its sample
        // variance; a 4σ miss has probability ≈ 6e-5 for a near-normal mean of 400 samples).
        let hutchinson = HessianSpectrum.trace(c.hvp, like: c.point, samples: 400, generator: Generator(seed: 4))
        XCTAssertEqual(hutchinson.mean, refTrace, accuracy: 4 * hutchinson.standardError)
    }

    /// On the tiny network the most negative eigenvalue sits in a cluster (−0.317,
    /// −0.307, −0.298, …): 14 fixed Lanczos steps leave it off by more than the
    /// tolerance, the converged run does not, and says how many steps it took.
    func testLanczosRunsToConvergenceWhereFourteenStepsDoNot() throws {
        let c = try tinyHessianCase()
        let dense = HessianSpectrum.symmetricEigen(HessianSpectrum.denseHessian(c.hvp, like: c.point)).values
        let (top, bottom) = (dense.last!, dense.first!)
        let tolerance = 1e-3
        let fixed = HessianSpectrum.lanczosQuadratures(c.hvp, like: c.point, runs: 1, steps: 14, generator: Generator(seed: 7))[0]
        XCTAssertGreaterThan(abs(fixed.nodes.min()! - bottom), tolerance * top, "14 steps have not found the bottom eigenvalue")
        let run = HessianSpectrum.extremeEigenvalues(c.hvp, like: c.point, tolerance: tolerance, maxSteps: 200, generator: Generator(seed: 7))
        XCTAssertTrue(run.converged)
        XCTAssertGreaterThan(run.steps, 14)
        XCTAssertEqual(run.top, top, accuracy: tolerance * top)
        XCTAssertEqual(run.bottom, bottom, accuracy: 2 * tolerance * top, "the stopping rule's own scale, with a margin for the last steps")
        // A step limit too small to converge is reported, not hidden.
        let capped = HessianSpectrum.extremeEigenvalues(c.hvp, like: c.point, tolerance: 1e-9, maxSteps: 5, generator: Generator(seed: 7))
        XCTAssertFalse(capped.converged)
        XCTAssertEqual(capped.steps, 5)
    }

    /// A known spectrum: the Krylov space of a 6×6 matrix runs out after 6 steps, so the run ends exact and converged.
    func testLanczosOnAKnownMatrixEndsExactWhenTheKrylovSpaceRunsOut() {
        let lambda: [Float] = [5, 3, 1, -0.5, -2, 0.2]
        let model = AnalysisIITests.Quadratic(Tensor(lambda, shape: [6, 1]) * Tensor.eye(6), seed: 1)
        let hvp = HessianVectorProduct(model: model, loss: model.loss)
        let run = HessianSpectrum.extremeEigenvalues(hvp, like: ParameterVector(of: model), tolerance: 1e-12, maxSteps: 50,
                                                     generator: Generator(seed: 2))
        XCTAssertTrue(run.converged)
        XCTAssertLessThanOrEqual(run.steps, 6)
        XCTAssertEqual(run.top, 5, accuracy: 1e-4)
        XCTAssertEqual(run.bottom, -2, accuracy: 1e-4)
    }

    /// The analysis over 3 disjoint batches: the summary is the mean of the batches, with their spread.
    func testHessianAnalysisAveragesDisjointBatches() throws {
        Generator.global.reseed(3)
        let model = TinyCNN(classes: 10)
        let m = AnalysisModel(model, input: .patchwork(imageSize: 8), batchSize: 16)
        let set = try ImageSet(try ShapeTex(split: .test, count: 13, size: 8, seed: 2), count: nil)
        let source = RunSource(model: "tiny", weights: "-", data: "shapetex:size=8", imageSize: 8, normalization: "patchwork", seed: 0)
        let report = try HessianSpectrum.run(m, images: set, source: source, eigenvalues: 1, iterations: 3, traceSamples: 2, lanczosRuns: 1,
                                             lanczosSteps: 4, batches: 3, lanczosTolerance: 1e-2, lanczosMaxSteps: 60, seed: 1, command: "test")
        let s = report.summary
        XCTAssertEqual(s.batches, 3)
        XCTAssertEqual(s.perBatch.map(\.images), [4, 4, 4], "13 images: 3 batches of 4, one left out")
        XCTAssertEqual(report.settings.images, 12)
        XCTAssertEqual(s.topEigenvalue, s.perBatch.map(\.topEigenvalue).reduce(0, +) / 3, accuracy: 1e-12)
        XCTAssertEqual(s.negativeToTopRatio, s.perBatch.map(\.negativeToTopRatio).reduce(0, +) / 3, accuracy: 1e-12)
        let tops = s.perBatch.map(\.topEigenvalue), mean = tops.reduce(0, +) / 3
        XCTAssertEqual(s.topEigenvalueStd, (tops.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 2).squareRoot(), accuracy: 1e-12)
        XCTAssertGreaterThan(s.topEigenvalueStd, 0, "different images, different curvature")
        XCTAssertEqual(s.lanczosConverged, s.perBatch.allSatisfy(\.lanczosConverged))
        XCTAssertEqual(report.data.traceSamples.map(\.count), [2, 2, 2])
        XCTAssertThrowsError(try HessianSpectrum.run(m, images: set, source: source, eigenvalues: 1, iterations: 3, traceSamples: 2,
                                                     lanczosRuns: 1, lanczosSteps: 4, batches: 14, seed: 1, command: "test")) { error in
            XCTAssertTrue("\(error)".contains("--batches") && "\(error)".contains("14"), "\(error)")
        }
        XCTAssertThrowsError(try HessianSpectrum.run(m, images: set, source: source, eigenvalues: 1, iterations: 3, traceSamples: 2,
                                                     lanczosRuns: 1, lanczosSteps: 4, lanczosTolerance: 0, seed: 1, command: "test")) { error in
            XCTAssertTrue("\(error)".contains("--lanczos-tolerance"), "\(error)")
        }
    }

    // MARK: attention distance baseline

    /// Uniform attention on a 3×3 grid of a 30×30 image (tokens 10 px apart), by hand:
    /// summed over all 9×9 query-key pairs, 4 corners give 60 + 30√2 + 20√5 each,
    /// 4 edge centres 50 + 20√2 + 20√5, the centre 40 + 40√2: (480 + 240√2 + 160√5) / 81.
    func testUniformBaselineIsTheGridMeanByHand() throws {
        let positions = AttentionMap.gridPositions(height: 3, width: 3, prefixTokens: 1)
        // Whatever the head does (here: all on itself, and on the class token), the baseline is the geometry's.
        var p = [Float](repeating: 0, count: 100)
        for i in 0..<10 { p[i * 10 + i] = 0.5; p[i * 10] += 0.5 }
        let map = AttentionMap(probabilities: Tensor(p, shape: [1, 1, 10, 10]), queryPositions: positions, keyPositions: positions)
        let tally = try XCTUnwrap(AttentionDistance.tally(map, imageHeight: 30, imageWidth: 30))
        let root2: Double = 2.0.squareRoot(), root5: Double = 5.0.squareRoot()
        let expected: Double = (480 + 240 * root2 + 160 * root5) / 81
        XCTAssertEqual(tally.uniformMean, expected, accuracy: 1e-4)
        XCTAssertEqual(tally.mean[0], 0, accuracy: 1e-9, "the head itself looks at its own token")
        // 2×2 on 32×32 (centres 16 px apart): (0 + 16 + 16 + 16√2) / 4 from every token.
        let two = AttentionMap(probabilities: Tensor([Float](repeating: 0.25, count: 16), shape: [1, 1, 4, 4]),
                               queryPositions: AttentionMap.gridPositions(height: 2, width: 2),
                               keyPositions: AttentionMap.gridPositions(height: 2, width: 2))
        let t2 = try XCTUnwrap(AttentionDistance.tally(two, imageHeight: 32, imageWidth: 32))
        XCTAssertEqual(t2.uniformMean, (32 + 16 * root2) / 4, accuracy: 1e-5)
        XCTAssertEqual(t2.mean[0], t2.uniformMean, accuracy: 1e-5, "a uniform head measures the baseline")
    }

    /// On vit_nano (8×8 patches of 4 px, a class token) the run's baseline is the 8×8 grid's.
    func testUniformBaselineOfAViTIsItsTokenGrid() throws {
        Generator.global.reseed(1)
        let model = try Models.create("vit_nano", numClasses: 10)
        let m = AnalysisModel(model, input: .patchwork(imageSize: 32), batchSize: 4)
        let set = try ImageSet(try ShapeTex(split: .test, count: 4, size: 32, seed: 1), count: nil)
        let source = RunSource(model: "vit_nano", weights: "-", data: "shapetex", imageSize: 32, normalization: "patchwork", seed: 0)
        let report = try AttentionDistance.run(m, images: set, source: source, command: "test")
        let n = 65
        let uniform = AttentionMap(probabilities: Tensor([Float](repeating: 1 / Float(n), count: n * n), shape: [1, 1, n, n]),
                                   queryPositions: AttentionMap.gridPositions(height: 8, width: 8, prefixTokens: 1),
                                   keyPositions: AttentionMap.gridPositions(height: 8, width: 8, prefixTokens: 1))
        let expected = try XCTUnwrap(AttentionDistance.tally(uniform, imageHeight: 32, imageWidth: 32)).mean[0]
        XCTAssertEqual(report.summary.uniformFirstLayerDistance, expected, accuracy: 1e-4)
        for layer in report.data.layers { XCTAssertEqual(layer.uniformDistance, expected, accuracy: 1e-4, layer.key) }
        XCTAssertEqual(expected, 32 * 0.52, accuracy: 0.6, "close to, but not, Claims' 0.52·size approximation")
    }

    // MARK: error scaled by the room above chance

    func testScaledErrorAndItsNullCase() {
        XCTAssertEqual(Statistics.scaledError(0.5, cleanError: 0.1, classes: 10)!, 0.4 / 0.8, accuracy: 1e-12)
        XCTAssertEqual(Statistics.scaledError(0.9, cleanError: 0.1, classes: 10)!, 1, accuracy: 1e-12, "down to chance")
        XCTAssertEqual(Statistics.scaledError(0.1, cleanError: 0.1, classes: 10)!, 0, accuracy: 1e-12)
        XCTAssertEqual(Statistics.scaledError(0.86, cleanError: 0.85, classes: 10)!, 0.01 / 0.05, accuracy: 1e-9, "room 0.05")
        XCTAssertNil(Statistics.scaledError(0.9, cleanError: 0.89, classes: 10), "room 0.01 ≤ 0.02")
        XCTAssertNil(Statistics.scaledError(0.9, cleanError: 0.88, classes: 10), "room exactly 0.02 is not enough")
        XCTAssertNil(Statistics.scaledError(0.9, cleanError: 0.95, classes: 10), "below chance")
        XCTAssertNil(Statistics.scaledError(.nan, cleanError: 0.1, classes: 10))
        XCTAssertEqual(Statistics.standardDeviation([3]), 0)
        XCTAssertEqual(Statistics.standardDeviation([1, 2, 3, 4]), (5.0 / 3).squareRoot(), accuracy: 1e-12)
    }

    // MARK: data-derived bands

    /// One [H, W, 3] image per function value f(y, x), the same in all channels.
    private func images(_ count: Int, size: Int, _ f: (Int, Int, Int) -> Double) -> Tensor {
        var v: [Float] = []
        for i in 0..<count { for y in 0..<size { for x in 0..<size { let p = Float(f(i, y, x)); v += [p, p, p] } } }
        return Tensor(v, shape: [count, size, size, 3])
    }

    func testRadialPowerPutsASinusoidInItsRing() {
        let pure = images(1, size: 16) { _, y, _ in 0.5 + 0.3 * cos(2 * Double.pi * 3 * Double(y) / 16) }
        let power = DataSpectrum.radialPower(pure)
        XCTAssertEqual(power.reduce(0, +), 1, accuracy: 1e-9)
        XCTAssertEqual(power[3], 1, accuracy: 1e-6, "all of the energy at radius 3 (the mean removed)")
    }

    /// Low-frequency blobs (shape) against fine checkerboards (texture): the cut-off falls between.
    func testDataBandsSplitBlobsFromCheckerboards() throws {
        let size = 32
        let blobs = images(6, size: size) { i, y, x in
            let cy = 8.0 + Double(i * 3), cx = 20.0 - Double(i * 2)
            let dy: Double = Double(y) - cy, dx: Double = Double(x) - cx
            return exp(-(dy * dy + dx * dx) / 32)   // σ = 4 px: energy below radius ≈ 3
        }
        let checkers = images(6, size: size) { i, y, x in
            let period = 2 + i % 2                                                     // periods 2 and 3 px: radii ≥ 10
            return ((y / period) + (x / period)) % 2 == 0 ? 0.8 : 0.2
        }
        let report = try DataSpectrum.run(shapeOnly: blobs, textureOnly: checkers, data: "synthetic", command: "test")
        let s = report.summary
        let blobPeak = report.data.shapeOnlyPower.indices.max { report.data.shapeOnlyPower[$0] < report.data.shapeOnlyPower[$1] }!
        let checkerPeak = report.data.textureOnlyPower.indices.max { report.data.textureOnlyPower[$0] < report.data.textureOnlyPower[$1] }!
        XCTAssertLessThanOrEqual(blobPeak, 3)
        XCTAssertGreaterThanOrEqual(checkerPeak, 10)
        XCTAssertGreaterThan(s.cutoffRadius, Double(blobPeak))
        XCTAssertLessThan(s.cutoffRadius, Double(checkerPeak))
        XCTAssertGreaterThan(s.shapeEnergyBelowCutoff, 0.95)
        XCTAssertLessThan(s.textureEnergyBelowCutoff, 0.1)
        XCTAssertEqual(s.separation, s.shapeEnergyBelowCutoff - s.textureEnergyBelowCutoff, accuracy: 1e-12)
        let bands = DataSpectrum.bands(report)
        XCTAssertTrue(bands.isLow(radius: Double(blobPeak)) && bands.isHigh(radius: Double(checkerPeak)))
        XCTAssertFalse(bands.isLow(radius: 0) || bands.isHigh(radius: 0), "the mean is in neither band")
        XCTAssertThrowsError(try DataSpectrum.run(shapeOnly: blobs, textureOnly: images(2, size: 16) { _, _, _ in 0 }, data: "x", command: "t"))
    }

    /// On ShapeTex itself, the cut-off is inside the spectrum and the SVG is written.
    func testDataSpectrumOfShapeTex() throws {
        let report = try DataSpectrum.runShapeTex(spec: "shapetex", imageSize: 32, count: 40, command: "test")
        XCTAssertTrue((1.0..<23.0).contains(report.summary.cutoffRadius), "\(report.summary.cutoffRadius)")
        XCTAssertGreaterThan(report.summary.separation, 0)
        XCTAssertEqual(report.data.shapeOnlyCumulative.last!, 1, accuracy: 1e-9)
        XCTAssertTrue(DataSpectrum.svg(report, title: "shapetex").contains("<svg"))
        XCTAssertThrowsError(try DataSpectrum.runShapeTex(spec: "cifar10:/nowhere", imageSize: 32, count: 4, command: "t")) { error in
            XCTAssertTrue("\(error)".contains("ShapeTex"), "\(error)")
        }
    }

    // MARK: Fourier heat-map draws, frequency-noise bands, PGD restarts

    static var trained: TinyCNN?

    /// A TinyCNN trained briefly on 8×8 ShapeTex (an untrained one answers one class whatever
    /// the noise, and shows no spread), and 10 test images.
    func tinyModel() throws -> (AnalysisModel, ImageSet, RunSource) {
        if Self.trained == nil { Self.trained = try trainTinyCNN(on: ShapeTex(split: .train, count: 300, size: 8, seed: 31), epochs: 4) }
        let model = Self.trained!
        let set = try ImageSet(try ShapeTex(split: .test, count: 10, size: 8, seed: 3), count: nil)
        return (AnalysisModel(model, input: .patchwork(imageSize: 8), batchSize: 10), set,
                RunSource(model: "tiny", weights: "-", data: "shapetex:size=8", imageSize: 8, normalization: "patchwork", seed: 0))
    }

    func testFourierHeatmapDrawsAndBands() throws {
        let (m, set, source) = try tinyModel()
        let one = try FourierHeatmap.run(m, images: set, norm: 3, draws: 1, seed: 4, source: source, command: "test")
        XCTAssertTrue(one.data.errorRateStd.flatMap { $0 }.allSatisfy { $0 == 0 }, "one draw: no spread")
        XCTAssertEqual(one.summary.lowFrequencyErrorStd, 0)
        XCTAssertEqual(one.summary.bandCutoff, 2, "default: a quarter of the 8-pixel side")
        let three = try FourierHeatmap.run(m, images: set, norm: 3, draws: 3, bands: FrequencyBands(cutoff: 1.5, origin: "test"), seed: 4,
                                           source: source, command: "test")
        let s = three.summary
        XCTAssertEqual(s.draws, 3)
        XCTAssertEqual(three.data.drawLowFrequencyError.count, 3)
        // The map is the mean of the draws, so the band means of the map are the means of the draws' band means.
        XCTAssertEqual(s.lowFrequencyError, three.data.drawLowFrequencyError.reduce(0, +) / 3, accuracy: 1e-12)
        XCTAssertEqual(s.highFrequencyError, three.data.drawHighFrequencyError.reduce(0, +) / 3, accuracy: 1e-12)
        XCTAssertEqual(s.lowFrequencyErrorStd, Statistics.standardDeviation(three.data.drawLowFrequencyError), accuracy: 1e-12)
        // Draw 0 keeps the single-draw seeds: the 3-draw map differs from it by at most the other draws' share.
        for (a, b) in zip(one.data.errorRate.flatMap { $0 }, three.data.errorRate.flatMap { $0 }) { XCTAssertLessThanOrEqual(abs(a - b), 2.0 / 3 + 1e-12) }
        XCTAssertGreaterThan(three.data.errorRateStd.flatMap { $0 }.max()!, 0, "independent sign draws differ somewhere")
        // Bands by hand: low = 0 < r ≤ 1.5 (the 8 cells at radius 1 and √2).
        var low: [Double] = []
        for (i, u) in three.data.rowFrequencies.enumerated() {
            for (j, v) in three.data.columnFrequencies.enumerated() where u * u + v * v > 0 && Double(u * u + v * v) <= 2.25 {
                low.append(three.data.errorRate[i][j])
            }
        }
        XCTAssertEqual(low.count, 8)
        XCTAssertEqual(s.lowFrequencyError, low.reduce(0, +) / 8, accuracy: 1e-12)
        XCTAssertEqual(three.data.radialScaledError.count, three.data.radialError.count)
        let classes = 10
        for (e, scaled) in zip(three.data.radialError, three.data.radialScaledError) {
            XCTAssertEqual(scaled, Statistics.scaledError(e, cleanError: s.cleanError, classes: classes))
        }
        XCTAssertEqual(s.lowFrequencyScaledError, Statistics.scaledError(s.lowFrequencyError, cleanError: s.cleanError, classes: classes))
        XCTAssertThrowsError(try FourierHeatmap.run(m, images: set, norm: 3, draws: 0, seed: 4, source: source, command: "t")) { error in
            XCTAssertTrue("\(error)".contains("--draws"), "\(error)")
        }
    }

    func testFrequencyNoiseLowAndHighBandsAndScaledErrors() throws {
        let (m, set, source) = try tinyModel()
        let report = try FrequencyNoise.run(m, images: set, bands: 2, norm: 2, cutoffs: [1], lowHighBands: FrequencyBands(cutoff: 2, origin: "test"),
                                            seed: 1, source: source, command: "test")
        let s = report.summary
        XCTAssertEqual(s.bandCutoff, 2)
        for band in report.data.bands {
            XCTAssertEqual(band.scaledError, Statistics.scaledError(1 - band.accuracy, cleanError: 1 - s.cleanAccuracy, classes: 10))
        }
        XCTAssertEqual(s.lowBandScaledError, Statistics.scaledError(1 - s.lowBandAccuracy, cleanError: 1 - s.cleanAccuracy, classes: 10))
        XCTAssertTrue((0...1).contains(s.lowBandAccuracy) && (0...1).contains(s.highBandAccuracy))
    }

    func testPGDRestartsBreakAtLeastAsManyImagesAsAnyOneRestart() throws {
        let (m, set, source) = try tinyModel()
        let report = try Adversarial.run(m, images: set, epsilons: [4.0 / 255], steps: 2, stepSizeOverEpsilon: 0.5, randomStart: true,
                                         restarts: 3, seed: 2, source: source, command: "test")
        let p = report.data.points[0]
        XCTAssertEqual(p.pgdRestartAccuracies.count, 3)
        XCTAssertLessThanOrEqual(p.pgdAccuracy, p.pgdRestartAccuracies.min()!, "broken by any restart")
        XCTAssertEqual(p.pgdRestartAccuracyStd, Statistics.standardDeviation(p.pgdRestartAccuracies), accuracy: 1e-12)
        XCTAssertEqual(report.summary.pgdRestarts, 3)
        let single = try Adversarial.run(m, images: set, epsilons: [4.0 / 255], steps: 2, stepSizeOverEpsilon: 0.5, randomStart: true,
                                         seed: 2, source: source, command: "test")
        XCTAssertEqual(single.data.points[0].pgdAccuracy, p.pgdRestartAccuracies[0], "restart 0 is the single-start attack")
        XCTAssertEqual(single.data.points[0].pgdRestartAccuracyStd, 0)
        XCTAssertThrowsError(try Adversarial.run(m, images: set, epsilons: [0.01], steps: 2, stepSizeOverEpsilon: 0.5, randomStart: false,
                                                 restarts: 2, seed: 2, source: source, command: "test")) { error in
            XCTAssertTrue("\(error)".contains("--random-start"), "\(error)")
        }
    }
}
