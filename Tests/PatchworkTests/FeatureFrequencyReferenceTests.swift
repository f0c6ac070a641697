import XCTest
import Patchwork
import PatchworkNN
import PatchworkModels
import PatchworkAnalysis

/// Feature frequency against scripts/reference/feature_frequency_reference.py: a tiny timm ViT,
/// the same ViT with depthwise-convolution token mixers, and a tiny timm ResNet, with fixed
/// weights and images, measured with PyTorch forward hooks from Park & Kim's definition.
final class FeatureFrequencyReferenceTests: XCTestCase {
    /// On relative log amplitudes. Both sides run the models in float32 (differences ~1e-6
    /// relative); the reference takes the FFT in float64, Patchwork in float32 and sums in
    /// double. Away from near-zero amplitudes, log differences stay far below 1e-4.
    let tolerance = 1e-4

    struct Fixture {
        var json: [String: Any]
        var weights: Safetensors
        /// Pixels in [0, 1], [B, 32, 32, 3]; the models see them through Patchwork's pipeline.
        var images: Tensor
    }

    func fixture() throws -> Fixture {
        let folder = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/analysis-reference/feature-frequency", withExtension: nil))
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("reference.json"))) as! [String: Any]
        let weights = try Safetensors(contentsOf: folder.appendingPathComponent("models.safetensors").path)
        return Fixture(json: json, weights: weights, images: try weights.tensor("fixture.pixels"))
    }

    /// The fixture's model `key` ("vit", "vit_dwconv", "resnet") with its weights, in eval mode.
    func model(_ key: String, _ f: Fixture) throws -> AnalysisModel {
        let configs = f.json["configs"] as! [String: Any]
        let config = try JSONDecoder().decode(JSONValue.self, from: JSONSerialization.data(withJSONObject: configs[key]!))
        let model = try Models.family(key == "resnet" ? "resnet" : "vit").build(config: config)
        var dict: [String: Tensor] = [:]
        for name in f.weights.names where name.hasPrefix(key + ".") {
            dict[String(name.dropFirst(key.count + 1))] = try f.weights.tensor(name)
        }
        try model.load(dict, source: "models.safetensors (\(key))")
        return AnalysisModel(model, input: .patchwork(imageSize: 32))
    }

    func assertCurve(_ actual: [Double], _ expected: Any?, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let expected = expected as? [Double] else { return XCTFail("\(what): no reference curve", file: file, line: line) }
        XCTAssertEqual(actual.count, expected.count, what, file: file, line: line)
        for (a, e) in zip(actual, expected) { XCTAssertEqual(a, e, accuracy: tolerance, what, file: file, line: line) }
    }

    func check(_ key: String, resolution: Int?) throws {
        let f = try fixture()
        let m = try model(key, f)
        let source = RunSource(model: key, weights: "fixture", data: "fixture", imageSize: 32, normalization: "patchwork", seed: 0)
        let report = try FeatureFrequency.run(m, images: ImageSet(images: f.images, labels: [0, 0, 0, 0], indices: [0, 1, 2, 3]), resolution: resolution,
                                              source: source, command: "test")
        let results = (f.json["results"] as! [String: Any])[key] as! [String: Any]
        let expected = results[resolution.map { "resolution_\($0)" } ?? "native"] as! [String: Any]
        let label = "\(key) at \(resolution.map(String.init) ?? "native")"

        let layers = expected["layers"] as! [String: Any]
        XCTAssertEqual(Set(report.data.layers.map(\.name)), Set(layers.keys), label)
        for l in report.data.layers { assertCurve(l.deltaLogAmplitude, layers[l.name], "\(label) \(l.name)") }

        let branches = expected["branches"] as! [String: [String: Any]]
        XCTAssertEqual(Set(report.data.branches.map(\.name)), Set(branches.keys), label)
        for b in report.data.branches {
            let e = try XCTUnwrap(branches[b.name], "\(label) \(b.name)")
            XCTAssertEqual(b.kind, e["kind"] as? String, "\(label) \(b.name)")
            assertCurve(b.deltaLogAmplitudeBefore, e["before"], "\(label) \(b.name) before")
            assertCurve(b.deltaLogAmplitudeAfter, e["after"], "\(label) \(b.name) after")
            if let change = e["change"] as? Double {
                XCTAssertEqual(b.highFrequencyChange, change, accuracy: 2 * tolerance, "\(label) \(b.name) change")
            } else {
                XCTAssertTrue(b.highFrequencyChange.isNaN, "\(label) \(b.name): a 1×1 side has no value at π")
            }
        }
        let excludedLayers = expected["excluded_layers"] as! [String], excludedBranches = expected["excluded_branches"] as! [String]
        XCTAssertEqual(report.data.excluded.filter { $0.what == "block" }.map(\.name), excludedLayers, label)
        XCTAssertEqual(report.data.excluded.filter { $0.what == "sub-layer" }.map(\.name), excludedBranches, label)

        // The summary is the data's means.
        let finite = report.data.layers.map(\.highFrequency).filter(\.isFinite)
        XCTAssertEqual(report.summary.meanHighFrequency, finite.reduce(0, +) / Double(finite.count), accuracy: 1e-12, label)
        for (kind, mean) in report.summary.meanChangeByKind ?? [:] {
            let changes = report.data.branches.filter { $0.kind == kind }.map(\.highFrequencyChange).filter(\.isFinite)
            XCTAssertEqual(mean, changes.reduce(0, +) / Double(changes.count), accuracy: 1e-12, "\(label) \(kind)")
        }
        XCTAssertEqual(report.summary.resolution, resolution)
        XCTAssertEqual(report.summary.branches, branches.count)
    }

    func testViTMatchesReference() throws {
        try check("vit", resolution: nil)
        try check("vit", resolution: 4)
    }

    func testDepthwiseConvViTMatchesReference() throws {
        try check("vit_dwconv", resolution: nil)
        try check("vit_dwconv", resolution: 4)
    }

    func testResNetMatchesReference() throws {
        try check("resnet", resolution: nil)
        try check("resnet", resolution: 4)
    }

    /// Recording is off by default and after a run, and leaves the model's output unchanged.
    func testRecordingIsOffByDefaultAndRestored() throws {
        let f = try fixture()
        let m = try model("vit", f)
        let branches = m.model.residualBranchLayers()
        XCTAssertEqual(branches.map(\.key), ["blocks.0.attn", "blocks.0.mlp", "blocks.1.attn", "blocks.1.mlp"])
        XCTAssertEqual(branches.map(\.recorder.kind), ["attention", "mlp", "attention", "mlp"])
        XCTAssertTrue(branches.allSatisfy { !$0.recorder.isOn })
        let plain = withoutGrad { m.model.logits(m.input.normalized(f.images)) }.scalars
        XCTAssertTrue(branches.allSatisfy { $0.recorder.record == nil }, "nothing kept while off")
        m.model.recordResidualBranches(true)
        let recorded = withoutGrad { m.model.logits(m.input.normalized(f.images)) }.scalars
        XCTAssertEqual(plain, recorded)
        XCTAssertEqual(branches[0].recorder.record?.input.shape, [4, 65, 16])
        m.model.recordResidualBranches(false)
        let source = RunSource(model: "vit", weights: "fixture", data: "fixture", imageSize: 32, normalization: "patchwork", seed: 0)
        _ = try FeatureFrequency.run(m, images: ImageSet(images: f.images, labels: [0, 0, 0, 0], indices: [0, 1, 2, 3]), source: source, command: "test")
        XCTAssertTrue(branches.allSatisfy { !$0.recorder.isOn }, "the run turns recording back off")
    }

    /// A resolution the maps cannot reach (all smaller) is an error naming it; 1 is refused.
    func testResolutionErrors() throws {
        let f = try fixture()
        let m = try model("vit", f)
        let source = RunSource(model: "vit", weights: "fixture", data: "fixture", imageSize: 32, normalization: "patchwork", seed: 0)
        let set = ImageSet(images: f.images, labels: [0, 0, 0, 0], indices: [0, 1, 2, 3])
        for (r, words) in [(16, ["16×16", "patch_embed", "smaller"]), (3, ["3×3", "multiple"]), (1, ["resolution 1"])] {
            XCTAssertThrowsError(try FeatureFrequency.run(m, images: set, resolution: r, source: source, command: "test")) { error in
                for w in words { XCTAssertTrue("\(error)".contains(w), "\(r): \(error)") }
            }
        }
    }
}
