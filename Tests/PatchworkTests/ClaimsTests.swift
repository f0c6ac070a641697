import Foundation
import XCTest
import PatchworkAnalysis
import PatchworkTrain

/// The demo's claims over seeds: the verdict rule (held, not held, inconclusive),
/// each claim's value and preconditions, and malformed input (a missing file, a
/// missing, renamed or mistyped field), which must fail naming the file and the field.
final class ClaimsTests: XCTestCase {
    var root = ""

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "patchwork-claims-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: root) }

    /// The numbers the claims compare, for one model; the rest of each summary is filler.
    struct Numbers {
        var shapeBias = 0.3, shapeOnlyAccuracy = 0.6, singleCueImages = 300
        var cleanError = 0.1, scaledLowFrequencyError: Double? = 0.2, scaledHighFrequencyError: Double? = 0.3
        var meanHighFrequency = 0.0, attentionChange = -0.5, convChange = 0.2
        var firstLayerDistance = 10.0, lastLayerDistance = 12.0, uniformDistance = 13.0
        var negativeToTopRatio = 0.1, testAccuracy = 0.5, imagesToTarget: Int? = nil

        /// Each file's contents by name, as the analyses and the trainer write them.
        var files: [String: [String: Any]] {
            [
                "shape-bias": ["analysis": "shape-bias", "summary": [
                    "shape_bias": shapeBias, "cue_match_rate": 0.9, "cue_conflict_images": 90, "shape_only_accuracy": shapeOnlyAccuracy,
                    "texture_only_accuracy": 0.9, "single_cue_images": singleCueImages]],
                "fourier-heatmap": ["analysis": "fourier-heatmap", "summary": [
                    "clean_error": cleanError, "mean_error": 0.3, "low_frequency_error": 0.2, "high_frequency_error": 0.3,
                    "low_frequency_scaled_error": scaledLowFrequencyError.map { $0 as Any } ?? NSNull(),
                    "high_frequency_scaled_error": scaledHighFrequencyError.map { $0 as Any } ?? NSNull(),
                    "draws": 2, "band_cutoff": 8.0, "low_frequency_error_std": 0.01, "high_frequency_error_std": 0.02,
                    "worst_frequency": [3, 4], "worst_error": 0.9]],
                "feature-frequency": ["analysis": "feature-frequency", "summary": [
                    "layers": 4, "mean_high_frequency": meanHighFrequency, "first_high_frequency": 0.1, "last_high_frequency": "nan",
                    "increases_over_depth": 1, "decreases_over_depth": 2, "resolution": 8, "excluded_layers": 0, "branches": 12,
                    "excluded_branches": 0, "mean_change_by_kind": ["attention": attentionChange, "mlp": 0.1, "depthwise-conv": convChange]]],
                "attention-distance": ["analysis": "attention-distance", "summary": [
                    "layers": 6, "first_layer_mean_distance": firstLayerDistance, "last_layer_mean_distance": lastLayerDistance,
                    "mean_distance": 11.0, "image_size": 32, "uniform_first_layer_distance": uniformDistance]],
                "hessian": ["analysis": "hessian", "summary": [
                    "top_eigenvalue": 10.0, "trace": 50.0, "trace_standard_error": 1.0, "most_negative_eigenvalue": -10 * negativeToTopRatio,
                    "negative_mass": 0.1, "negative_to_top_ratio": negativeToTopRatio, "batches": 1, "top_eigenvalue_std": 0.0,
                    "most_negative_eigenvalue_std": 0.0, "negative_to_top_ratio_std": 0.0, "trace_std": 0.0, "lanczos_converged": true,
                    "per_batch": [[
                        "images": 128, "top_eigenvalue": 10.0, "most_negative_eigenvalue": -10 * negativeToTopRatio,
                        "negative_to_top_ratio": negativeToTopRatio, "trace": 50.0, "trace_standard_error": 1.0, "negative_mass": 0.1,
                        "lanczos_steps": 30, "lanczos_converged": true]]]],
            ]
        }
    }

    /// Writes a model's folder: every analysis file (with `edit` applied to the named
    /// file's object; nil removes the file) and its training summary.
    func model(_ name: String, _ numbers: Numbers = Numbers(), edit: (file: String, change: (inout [String: Any]?) -> Void)? = nil) throws
        -> ModelResults {
        let folder = (root as NSString).appendingPathComponent(name)
        try? FileManager.default.removeItem(atPath: folder)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var files = numbers.files
        files["summary"] = try trainingSummary(name, numbers)
        if let edit {
            var object = files[edit.file]
            edit.change(&object)
            files[edit.file] = object
        }
        for (file, object) in files {
            try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: folder + "/\(file).json"))
        }
        return ModelResults(model: (name as NSString).lastPathComponent, folder: folder)
    }

    /// A run's summary.json; with `imagesToTarget` a run to a target accuracy that reached it after
    /// that many images (or, when negative, never did).
    func trainingSummary(_ model: String, _ numbers: Numbers) throws -> [String: Any] {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        var trainingOptions = TrainingOptions()
        if numbers.imagesToTarget != nil { trainingOptions.targetAccuracy = 0.7 }
        let options = try JSONSerialization.jsonObject(with: encoder.encode(trainingOptions))
        var summary: [String: Any] = [
            "model": model, "data": "shapetex", "epochs": 1, "train_seconds": 1.0, "test_accuracy": numbers.testAccuracy, "test_top5": 1.0,
            "test_loss": 1.0, "images_per_second": 100.0, "parameters": 1000, "seed": 0, "weights_sha256": "0", "options": options,
            "images_seen": 50_000]
        if let images = numbers.imagesToTarget, images >= 0 {
            summary["target"] = ["step": images / 64, "images": images, "validation_accuracy": 0.71]
        }
        return summary
    }

    /// Changes `key` of a file's summary (nil removes it).
    static func summaryField(_ key: String, _ value: Any?) -> (inout [String: Any]?) -> Void {
        { object in
            var summary = object?["summary"] as? [String: Any] ?? [:]
            summary[key] = value
            object?["summary"] = summary
        }
    }

    func assertFails(_ body: @autoclosure () throws -> ClaimResult, naming parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            for part in parts { XCTAssertTrue("\(error)".contains(part), "\"\(error)\" does not name \(part)", file: file, line: line) }
        }
    }

    /// Seeds whose models get the numbers `cnn(i)`, `vit(i)`, … for seed i (folders under root/seed-i/).
    func seeds(_ count: Int, cnn: (Int) -> Numbers = { _ in Numbers() }, vit: (Int) -> Numbers = { _ in Numbers() },
               control: ((Int) -> Numbers)? = { _ in Numbers() }, untrained: ((Int) -> Numbers)? = { _ in Numbers() },
               hybrids: [(Int) -> Numbers] = []) throws -> [SeedResults] {
        try (0..<count).map { i in
            SeedResults(seed: UInt64(i), cnn: try model("seed-\(i)/cnn", cnn(i)), vit: try model("seed-\(i)/vit", vit(i)),
                        untrainedViT: try untrained.map { try model("seed-\(i)/vit-untrained", $0(i)) },
                        control: try control.map { try model("seed-\(i)/control", $0(i)) },
                        hybrids: try hybrids.enumerated().map { try model("seed-\(i)/h\($0.offset)", $0.element(i)) })
        }
    }

    func testSpreadAndIntervals() {
        let s = Spread([1, 2, 3])
        XCTAssertEqual(s.mean, 2)
        XCTAssertEqual(s.std, 1, accuracy: 1e-12)
        // t(0.975, 2) = 4.303: half-width 4.303 / √3.
        XCTAssertEqual(s.interval![0], 2 - 4.303 / 3.0.squareRoot(), accuracy: 1e-9)
        XCTAssertEqual(s.interval![1], 2 + 4.303 / 3.0.squareRoot(), accuracy: 1e-9)
        XCTAssertNil(Spread([5]).interval)
        XCTAssertFalse(Spread([5]).excludesAbove(0))
        XCTAssertEqual(Spread.tCritical95(degreesOfFreedom: 1), 12.706)
        // Beyond the table the approximation is within 0.002 of t(0.975, 40) = 2.021 and t(0.975, 120) = 1.980.
        XCTAssertEqual(Spread.tCritical95(degreesOfFreedom: 40), 2.021, accuracy: 0.002)
        XCTAssertEqual(Spread.tCritical95(degreesOfFreedom: 120), 1.980, accuracy: 0.002)
        // Wilson's interval for 5 of 10: 0.2366 to 0.7634.
        let w = wilsonInterval(successes: 5, trials: 10)
        XCTAssertEqual(w[0], 0.2366, accuracy: 1e-4)
        XCTAssertEqual(w[1], 0.7634, accuracy: 1e-4)
        XCTAssertEqual(wilsonInterval(successes: 0, trials: 20)[0], 0)
    }

    func testVerdictRule() {
        func verdict(_ values: [Double?], failures: [String] = []) -> ClaimResult {
            ClaimResult(id: "x", claim: "c", setting: "s", baseline: .init(name: "b", value: nil),
                        seeds: values.enumerated().map { .init(seed: UInt64($0.offset), value: $0.element, parts: [:]) },
                        preconditionFailures: failures, settle: "more seeds")
        }
        XCTAssertEqual(verdict([0.30, 0.32, 0.31]).verdict, .held)
        XCTAssertNil(verdict([0.30, 0.32, 0.31]).settle)
        XCTAssertEqual(verdict([-0.30, -0.32]).verdict, .notHeld)
        XCTAssertEqual(verdict([-0.30, -0.32]).settle, "more seeds")
        // Two seeds of opposite sign, or one seed, or a failed precondition: inconclusive.
        XCTAssertEqual(verdict([0.3, -0.1]).verdict, .inconclusive)
        XCTAssertEqual(verdict([0.3]).verdict, .inconclusive)
        XCTAssertTrue(verdict([0.3]).reason.contains("no interval"))
        let failed = verdict([0.3, 0.31, nil], failures: ["seed 2: at chance"])
        XCTAssertEqual(failed.verdict, .inconclusive)
        XCTAssertEqual(failed.reason, "seed 2: at chance")
        XCTAssertEqual(failed.mean!, 0.305, accuracy: 1e-12)
        // With 2 seeds the t quantile is 12.7: a wide spread stays inconclusive even when both are positive.
        XCTAssertEqual(verdict([0.05, 0.5]).verdict, .inconclusive)
    }

    func testShapeBiasNeedsShapeOnlyAccuracyAboveChance() throws {
        let ok = try Claims.shapeBias(try seeds(3, cnn: { Numbers(shapeBias: 0.2 + 0.01 * Double($0)) },
                                                vit: { Numbers(shapeBias: 0.45 + 0.01 * Double($0)) }), classes: 10)
        XCTAssertEqual(ok.verdict, .held)
        XCTAssertEqual(ok.mean!, 0.25, accuracy: 1e-12)
        for (got, want) in zip(ok.seeds.map { $0.parts["vit"]! }, [0.45, 0.46, 0.47]) { XCTAssertEqual(got, want, accuracy: 1e-12) }
        XCTAssertEqual(ok.baseline.value!, 0.21, accuracy: 1e-12)
        // The ViT at chance on silhouettes in seed 1 (0.12 of 300: the interval reaches below 0.1).
        let chance = try Claims.shapeBias(try seeds(3, cnn: { _ in Numbers(shapeBias: 0.2) },
                                                    vit: { Numbers(shapeBias: 0.45, shapeOnlyAccuracy: $0 == 1 ? 0.12 : 0.6) }), classes: 10)
        XCTAssertEqual(chance.verdict, .inconclusive)
        XCTAssertTrue(chance.reason.contains("seed 1: vit's shape-only accuracy 0.120"), chance.reason)
        XCTAssertNil(chance.seeds[1].value)
        // A renamed field (as a renamed Swift property would write it).
        let renamed: (inout [String: Any]?) -> Void = { object in
            var summary = object?["summary"] as? [String: Any] ?? [:]
            summary["shape_bias_score"] = summary.removeValue(forKey: "shape_bias")
            object?["summary"] = summary
        }
        let broken = [SeedResults(seed: 0, cnn: try model("cnn"), vit: try model("vit", edit: ("shape-bias", renamed)))]
        assertFails(try Claims.shapeBias(broken, classes: 10), naming: ["vit/shape-bias.json", "no field summary.shape_bias"])
    }

    func testNoiseClaimsUseErrorScaledByRoomAboveChance() throws {
        let high = try Claims.highFrequencyNoise(try seeds(2, cnn: { Numbers(scaledHighFrequencyError: 0.6 + 0.01 * Double($0)) },
                                                           vit: { _ in Numbers(scaledHighFrequencyError: 0.2) }))
        XCTAssertEqual(high.verdict, .held)
        XCTAssertEqual(high.mean!, 0.405, accuracy: 1e-12)
        let low = try Claims.lowFrequencyNoise(try seeds(2, cnn: { _ in Numbers(scaledLowFrequencyError: 0.5) },
                                                         vit: { Numbers(scaledLowFrequencyError: 0.2 + 0.01 * Double($0)) }))
        XCTAssertEqual(low.verdict, .notHeld)
        // A model with no room above chance (the analysis writes null): inconclusive, naming the model and seed.
        let none = try Claims.lowFrequencyNoise(try seeds(2, vit: { Numbers(cleanError: 0.9, scaledLowFrequencyError: $0 == 0 ? nil : 0.3) }))
        XCTAssertEqual(none.verdict, .inconclusive)
        XCTAssertTrue(none.reason.contains("seed 0: vit has no room above chance"), none.reason)
        assertFails(try Claims.highFrequencyNoise([SeedResults(seed: 0, cnn: try model("cnn", edit: ("fourier-heatmap", Self.summaryField("clean_error", nil))),
                                                               vit: try model("vit"))]),
                    naming: ["cnn/fourier-heatmap.json", "no field summary.clean_error"])
    }

    func testLowPassClaims() throws {
        XCTAssertEqual(try Claims.featuresLowPass(try seeds(2, cnn: { Numbers(meanHighFrequency: 0.5 + 0.01 * Double($0)) },
                                                            vit: { _ in Numbers(meanHighFrequency: -0.2) })).verdict, .held)
        // Attention against the depthwise-conv control: conv change minus attention change.
        let withControl = try Claims.attentionLowPass(try seeds(2, vit: { Numbers(attentionChange: -0.4 - 0.01 * Double($0)) },
                                                                control: { _ in Numbers(convChange: 0.3) }))
        XCTAssertEqual(withControl.verdict, .held)
        XCTAssertEqual(withControl.mean!, 0.705, accuracy: 1e-12)
        XCTAssertEqual(withControl.baseline.value!, 0.3, accuracy: 1e-12)
        let without = try Claims.attentionLowPass(try seeds(2, vit: { Numbers(attentionChange: 0.4 + 0.01 * Double($0)) }, control: nil))
        XCTAssertEqual(without.verdict, .notHeld)
        assertFails(try Claims.featuresLowPass([SeedResults(seed: 0, cnn: try model("cnn"), vit: try model("vit", edit: ("feature-frequency", { $0 = nil })))]),
                    naming: ["vit/feature-frequency.json", "cannot read"])
    }

    func testAttentionClaimsAgainstUniformAndUntrained() throws {
        // First layer at 98 % of uniform in every seed: global.
        let global = try Claims.globalAttentionInFirstLayer(try seeds(3, vit: { Numbers(firstLayerDistance: 12.7 + 0.05 * Double($0), uniformDistance: 13) }))
        XCTAssertEqual(global.verdict, .held)
        XCTAssertEqual(global.baseline.value!, 13, accuracy: 1e-12)
        // Learned to look locally (6 px of 13).
        XCTAssertEqual(try Claims.globalAttentionInFirstLayer(try seeds(2, vit: { Numbers(firstLayerDistance: 6 + Double($0) * 0.1) })).verdict, .notHeld)
        // Growth with depth beyond the untrained model's.
        let grows = try Claims.attentionDistanceGrowsWithDepth(try seeds(2, vit: { Numbers(firstLayerDistance: 8, lastLayerDistance: 12 + Double($0) * 0.1) },
                                                                         untrained: { _ in Numbers(firstLayerDistance: 12.9, lastLayerDistance: 13) }))
        XCTAssertEqual(grows.verdict, .held)
        XCTAssertEqual(grows.mean!, (4.05 - 0.1), accuracy: 1e-9)
        assertFails(try Claims.globalAttentionInFirstLayer(try seeds(1, vit: { _ in Numbers() }).map {
            SeedResults(seed: 0, cnn: $0.cnn, vit: try model("vit", edit: ("attention-distance", Self.summaryField("first_layer_mean_distance", NSNull())))) }),
                    naming: ["vit/attention-distance.json", "summary.first_layer_mean_distance is null"])
    }

    func testHybridsByImagesToTargetOrAccuracy() throws {
        // Fixed budgets: test accuracies.
        let byAccuracy = try Claims.hybridsLearnFromLittleData(try seeds(2, vit: { _ in Numbers(testAccuracy: 0.3) },
                                                                         hybrids: [{ Numbers(testAccuracy: 0.5 + 0.01 * Double($0)) },
                                                                                   { _ in Numbers(testAccuracy: 0.6) }]))
        XCTAssertEqual(byAccuracy.verdict, .held)
        XCTAssertEqual(byAccuracy.mean!, 0.205, accuracy: 1e-12)
        // To a target: the fraction of the ViT's images a hybrid saves.
        let byImages = try Claims.hybridsLearnFromLittleData(try seeds(2, vit: { _ in Numbers(imagesToTarget: 40_000) },
                                                                       hybrids: [{ Numbers(imagesToTarget: 10_000 + 1000 * $0) }]))
        XCTAssertTrue(byImages.setting.contains("training images"))
        XCTAssertEqual(byImages.seeds.map(\.value!), [0.75, 0.725])
        XCTAssertEqual(byImages.verdict, .held)
        // A hybrid that never reached the target: inconclusive.
        let missed = try Claims.hybridsLearnFromLittleData(try seeds(2, vit: { _ in Numbers(imagesToTarget: 40_000) },
                                                                     hybrids: [{ $0 == 0 ? Numbers(imagesToTarget: 9000) : Numbers(imagesToTarget: -1) }]))
        XCTAssertEqual(missed.verdict, .inconclusive)
        XCTAssertTrue(missed.reason.contains("seed 1: h0 did not reach the target accuracy"), missed.reason)
    }

    func testLessConvexLoss() throws {
        XCTAssertEqual(try Claims.lessConvexLoss(try seeds(2, cnn: { _ in Numbers(negativeToTopRatio: 0.1) },
                                                           vit: { Numbers(negativeToTopRatio: 0.4 + 0.01 * Double($0)) })).verdict, .held)
        let cnn = try model("cnn")
        try Data("{\"summary\": ".utf8).write(to: URL(fileURLWithPath: cnn.folder + "/hessian.json"))
        assertFails(try Claims.lessConvexLoss([SeedResults(seed: 0, cnn: cnn, vit: try model("vit"))]), naming: ["cnn/hessian.json", "not valid JSON"])
    }

    func testEvaluateWritesWhatTheReportReads() throws {
        let all = try Claims.evaluate(try seeds(2, hybrids: [{ _ in Numbers() }]), classes: 10)
        XCTAssertEqual(all.map(\.id), ["shape-bias", "high-frequency-noise", "low-frequency-noise", "features-low-pass", "attention-low-pass",
                                       "global-attention-first-layer", "attention-distance-grows-with-depth",
                                       "hybrids-learn-from-little-data", "hessian-negative-eigenvalues"])
        let fewer = try Claims.evaluate(try seeds(2, untrained: nil), classes: 10)
        XCTAssertEqual(fewer.count, 6)
        XCTAssertFalse(fewer.contains { $0.id.hasPrefix("hybrids") || $0.id.contains("attention-distance") })
        // claims.json as the demo writes it is what the report reads, and every claim has seeds, spread and a verdict.
        try JSONEncoder().encode(all).write(to: URL(fileURLWithPath: root + "/claims.json"))
        let (_, _, read) = try HTMLReport.collect([root])
        XCTAssertEqual(read, all)
        for c in read {
            XCTAssertEqual(c.seeds.count, 2, c.id)
            XCTAssertNotNil(c.mean, c.id)
        }
        let json = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(all)) as! [[String: Any]]
        // Equal shape biases in every seed: the difference is 0 with no spread, an interval that excludes nothing.
        XCTAssertEqual(Set(json[0].keys), ["id", "claim", "setting", "baseline", "seeds", "mean", "std", "interval", "verdict", "reason", "settle"])
        XCTAssertEqual(json[0]["verdict"] as? String, "inconclusive")
    }

    /// The summaries decode and encode back to the same JSON: the files' field names
    /// and the Swift types agree both ways (snake_case conversion included).
    func testSummariesRoundTrip() throws {
        let m = try model("m")
        func roundTrip<S: AnalysisSummary>(_ type: S.Type) throws {
            let decoded = try m.summary(S.self)
            let written = try JSONSerialization.jsonObject(with: AnalysisOutput.encoder().encode(decoded)) as? NSDictionary
            XCTAssertEqual(written, Numbers().files[S.analysis]?["summary"] as? NSDictionary, S.analysis)
        }
        try roundTrip(ShapeBias.Summary.self)
        try roundTrip(FourierHeatmap.Summary.self)
        try roundTrip(FeatureFrequency.Summary.self)
        try roundTrip(AttentionDistance.Summary.self)
        try roundTrip(HessianSpectrum.Summary.self)
        XCTAssertEqual(try m.training().testAccuracy, 0.5)
    }
}
