import Foundation
import XCTest
import PatchworkAnalysis
import PatchworkTrain

/// The demo's claims: each one held, not held, and on malformed input (a missing
/// file, a missing, renamed or mistyped field), which must fail naming the file
/// and the field.
final class ClaimsTests: XCTestCase {
    var root = ""

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "patchwork-claims-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: root) }

    /// The numbers the claims compare, for one model; the rest of each summary is filler.
    struct Numbers {
        var shapeBias = 0.3, cleanError = 0.1, lowFrequencyError = 0.2, highFrequencyError = 0.3
        var meanHighFrequency = 0.0, firstLayerDistance = 10.0, imageSize = 32, negativeToTopRatio = 0.1, testAccuracy = 0.5

        /// Each file's contents by name, as the analyses and the trainer write them.
        var files: [String: [String: Any]] {
            [
                "shape-bias": ["analysis": "shape-bias", "summary": ["shape_bias": shapeBias, "cue_match_rate": 0.9, "cue_conflict_images": 90]],
                "fourier-heatmap": ["analysis": "fourier-heatmap", "summary": [
                    "clean_error": cleanError, "mean_error": 0.3, "low_frequency_error": lowFrequencyError,
                    "high_frequency_error": highFrequencyError, "worst_frequency": [3, 4], "worst_error": 0.9, "draws": 1,
                    "band_cutoff": 8.0, "low_frequency_error_std": 0.0, "high_frequency_error_std": 0.0]],
                "feature-frequency": ["analysis": "feature-frequency", "summary": [
                    "layers": 4, "mean_high_frequency": meanHighFrequency, "first_high_frequency": 0.1, "last_high_frequency": "nan",
                    "increases_over_depth": 1, "decreases_over_depth": 2]],
                "attention-distance": ["analysis": "attention-distance", "summary": [
                    "layers": 6, "first_layer_mean_distance": firstLayerDistance, "last_layer_mean_distance": 12.0, "mean_distance": 11.0,
                    "uniform_first_layer_distance": 16.5, "image_size": imageSize]],
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
        files["summary"] = try trainingSummary(name, accuracy: numbers.testAccuracy)
        if let edit {
            var object = files[edit.file]
            edit.change(&object)
            files[edit.file] = object
        }
        for (file, object) in files {
            try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: folder + "/\(file).json"))
        }
        return ModelResults(model: name, folder: folder)
    }

    func trainingSummary(_ model: String, accuracy: Double) throws -> [String: Any] {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        let options = try JSONSerialization.jsonObject(with: encoder.encode(TrainingOptions()))
        return ["model": model, "data": "shapetex", "epochs": 1, "train_seconds": 1.0, "test_accuracy": accuracy, "test_top5": 1.0,
                "test_loss": 1.0, "images_per_second": 100.0, "parameters": 1000, "seed": 0, "weights_sha256": "0", "options": options]
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

    func testTextureVersusShape() throws {
        let held = try Claims.textureVersusShape(cnn: model("cnn", Numbers(shapeBias: 0.17)), vit: model("vit", Numbers(shapeBias: 0.4)))
        XCTAssertEqual(held, ClaimResult(claim: "CNNs decide by texture more than ViTs; ViTs by shape (Geirhos et al. 2019; Naseer et al. 2021)",
                                         measured: "shape bias cnn 0.170, vit 0.400", held: true))
        XCTAssertFalse(try Claims.textureVersusShape(cnn: model("cnn", Numbers(shapeBias: 0.5)), vit: model("vit", Numbers(shapeBias: 0.4))).held)
        // A renamed field (as a renamed Swift property would write it).
        let renamed: (inout [String: Any]?) -> Void = { object in
            var summary = object?["summary"] as? [String: Any] ?? [:]
            summary["shape_bias_score"] = summary.removeValue(forKey: "shape_bias")
            object?["summary"] = summary
        }
        assertFails(try Claims.textureVersusShape(cnn: model("cnn"), vit: model("vit", edit: ("shape-bias", renamed))),
                    naming: ["vit/shape-bias.json", "no field summary.shape_bias"])
    }

    func testHighFrequencyNoise() throws {
        let cnn = Numbers(cleanError: 0.1, highFrequencyError: 0.6), vit = Numbers(cleanError: 0.3, highFrequencyError: 0.4)
        let held = try Claims.highFrequencyNoise(cnn: model("cnn", cnn), vit: model("vit", vit))
        XCTAssertTrue(held.held)
        XCTAssertEqual(held.measured, "error added by high-frequency Fourier noise cnn 0.500, vit 0.100")
        XCTAssertFalse(try Claims.highFrequencyNoise(cnn: model("cnn", vit), vit: model("vit", cnn)).held)
        assertFails(try Claims.highFrequencyNoise(cnn: model("cnn", edit: ("fourier-heatmap", Self.summaryField("clean_error", nil))),
                                                  vit: model("vit")),
                    naming: ["cnn/fourier-heatmap.json", "no field summary.clean_error"])
    }

    func testLowFrequencyNoise() throws {
        let cnn = Numbers(cleanError: 0.1, lowFrequencyError: 0.2), vit = Numbers(cleanError: 0.3, lowFrequencyError: 0.6)
        XCTAssertTrue(try Claims.lowFrequencyNoise(cnn: model("cnn", cnn), vit: model("vit", vit)).held)
        XCTAssertFalse(try Claims.lowFrequencyNoise(cnn: model("cnn", vit), vit: model("vit", cnn)).held)
        assertFails(try Claims.lowFrequencyNoise(cnn: model("cnn"),
                                                 vit: model("vit", edit: ("fourier-heatmap", Self.summaryField("low_frequency_error", "0.3")))),
                    naming: ["vit/fourier-heatmap.json", "summary.low_frequency_error is not a Double"])
    }

    func testLowPassFeatures() throws {
        XCTAssertTrue(try Claims.lowPassFeatures(cnn: model("cnn", Numbers(meanHighFrequency: 0.5)),
                                                 vit: model("vit", Numbers(meanHighFrequency: -0.2))).held)
        XCTAssertFalse(try Claims.lowPassFeatures(cnn: model("cnn", Numbers(meanHighFrequency: -0.2)),
                                                  vit: model("vit", Numbers(meanHighFrequency: 0.5))).held)
        // A missing file.
        assertFails(try Claims.lowPassFeatures(cnn: model("cnn"), vit: model("vit", edit: ("feature-frequency", { $0 = nil }))),
                    naming: ["vit/feature-frequency.json", "cannot read"])
    }

    func testGlobalAttentionInFirstLayer() throws {
        let held = try Claims.globalAttentionInFirstLayer(vit: model("vit", Numbers(firstLayerDistance: 12, imageSize: 32)))
        XCTAssertTrue(held.held)
        XCTAssertEqual(held.measured, "vit mean attention distance: first layer 12.000 px, last 12.000 px (a uniform head on a 32px image: about 16.640 px)")
        XCTAssertFalse(try Claims.globalAttentionInFirstLayer(vit: model("vit", Numbers(firstLayerDistance: 5, imageSize: 32))).held)
        assertFails(try Claims.globalAttentionInFirstLayer(vit: model("vit", edit: ("attention-distance", Self.summaryField("image_size", NSNull())))),
                    naming: ["vit/attention-distance.json", "summary.image_size is null"])
    }

    func testHybridsLearnFromLittleData() throws {
        let vit = Numbers(testAccuracy: 0.3)
        let held = try Claims.hybridsLearnFromLittleData(vit: model("vit", vit), hybrids: [model("h1", Numbers(testAccuracy: 0.5)),
                                                                                           model("h2", Numbers(testAccuracy: 0.6))])
        XCTAssertTrue(held.held)
        XCTAssertEqual(held.measured, "test accuracy vit 0.300; h1 0.500, h2 0.600")
        XCTAssertFalse(try Claims.hybridsLearnFromLittleData(vit: model("vit", vit), hybrids: [model("h1", Numbers(testAccuracy: 0.5)),
                                                                                                model("h2", Numbers(testAccuracy: 0.2))]).held)
        assertFails(try Claims.hybridsLearnFromLittleData(vit: model("vit"), hybrids: [model("h1", edit: ("summary", { object in
            object?.removeValue(forKey: "test_accuracy")
        }))]), naming: ["h1/summary.json", "no field test_accuracy"])
    }

    func testLessConvexLoss() throws {
        XCTAssertTrue(try Claims.lessConvexLoss(cnn: model("cnn", Numbers(negativeToTopRatio: 0.1)),
                                                vit: model("vit", Numbers(negativeToTopRatio: 0.4))).held)
        XCTAssertFalse(try Claims.lessConvexLoss(cnn: model("cnn", Numbers(negativeToTopRatio: 0.4)),
                                                 vit: model("vit", Numbers(negativeToTopRatio: 0.1))).held)
        // Not JSON at all.
        let cnn = try model("cnn")
        try Data("{\"summary\": ".utf8).write(to: URL(fileURLWithPath: cnn.folder + "/hessian.json"))
        assertFails(try Claims.lessConvexLoss(cnn: cnn, vit: model("vit")), naming: ["cnn/hessian.json", "not valid JSON"])
    }

    func testEvaluateChecksEveryClaimAndTheHybridOneOnlyWithHybrids() throws {
        let cnn = try model("cnn"), vit = try model("vit"), hybrid = try model("hybrid")
        XCTAssertEqual(try Claims.evaluate(cnn: cnn, vit: vit, hybrids: [hybrid]).count, 7)
        let withoutHybrids = try Claims.evaluate(cnn: cnn, vit: vit, hybrids: [])
        XCTAssertEqual(withoutHybrids.count, 6)
        XCTAssertFalse(withoutHybrids.contains { $0.claim.hasPrefix("Hybrids") })
        // claims.json as the demo writes it is what the report reads.
        let path = root + "/claims.json"
        try JSONEncoder().encode(withoutHybrids).write(to: URL(fileURLWithPath: path))
        let (_, _, read) = try HTMLReport.collect([root])
        XCTAssertEqual(read.map(\.claim), withoutHybrids.map(\.claim))
        XCTAssertEqual(read.map(\.held), withoutHybrids.map(\.held))
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
