import Foundation
import XCTest
import Patchwork
import PatchworkNN
import PatchworkModels
import PatchworkTrain
import PatchworkAnalysis

/// Each analysis against an independent implementation: scripts/reference/analyses.py computes the
/// quantity from the paper's definition in float64 PyTorch, on a small fixed model, weights and batch
/// committed under Fixtures/analysis-reference/<quantity>/ (fixture.safetensors, expected.json).
/// Patchwork computes in float32 (with double accumulators), so deterministic quantities are compared
/// with a relative tolerance that float32 rounding stays well inside; counts and decisions exactly.
final class AnalysisReferenceTests: XCTestCase {
    struct Fixture {
        let quantity: String
        let expected: [String: Any]
        let file: Safetensors

        init(_ quantity: String) throws {
            let folder = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/analysis-reference/\(quantity)", withExtension: nil),
                                       "missing Fixtures/analysis-reference/\(quantity)")
            self.quantity = quantity
            expected = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("expected.json")))
                                     as? [String: Any])
            file = try Safetensors(contentsOf: folder.appendingPathComponent("fixture.safetensors").path)
        }

        func tensor(_ name: String) throws -> Tensor { try file.tensor(name) }

        /// The timm model of family `family` built from `expected[configKey]`, with the state dict stored under `prefix`.
        func model(_ family: String, configKey: String, prefix: String) throws -> ImageClassifier {
            let json = try JSONSerialization.data(withJSONObject: try XCTUnwrap(expected[configKey]))
            let model = try Models.family(family).build(config: try JSONDecoder().decode(JSONValue.self, from: json))
            var stateDict: [String: Tensor] = [:]
            for name in file.names where name.hasPrefix(prefix) { stateDict[String(name.dropFirst(prefix.count))] = try file.tensor(name) }
            try model.load(stateDict, strict: true, source: "\(quantity)/fixture.safetensors (\(prefix)*)")
            return model
        }

        /// The committed batch as an image set (pixels [N, H, W, 3] in [0, 1]).
        func images(labels: [Int]? = nil) throws -> ImageSet {
            let images = try tensor("images")
            let n = images.shape[0]
            return ImageSet(images: images, labels: labels ?? [Int](repeating: 0, count: n), indices: Array(0..<n))
        }
    }

    let source = RunSource(model: "fixture", weights: "-", data: "fixture", imageSize: 16, normalization: "patchwork", seed: 0)

    /// Largest |a − b| / |b| over the pairs.
    func maxRelative(_ a: [Double], _ b: [Double]) -> Double {
        zip(a, b).map { abs($0 - $1) / abs($1) }.max() ?? .nan
    }

    /// Mean attention distance per layer and head (Dosovitskiy et al. 2021 Fig. 7, Raghu et al. 2021),
    /// patch-centre distances in pixels, class token left out as query and key (weights renormalised):
    /// the convention AttentionDistance.swift states and the script implements from the definition.
    /// Tolerance 1e-5 relative: Patchwork's attention probabilities are float32 (relative rounding
    /// ~1e-7 per value, a few 1e-7 through two blocks), the averages double; the reference is float64.
    func testMeanAttentionDistanceMatchesReference() throws {
        let f = try Fixture("attention-distance")
        let model = AnalysisModel(try f.model("vit", configKey: "config", prefix: "model."), input: .patchwork(imageSize: 16))
        let report = try AttentionDistance.run(model, images: try f.images(), source: source, command: "test")
        let layers = try XCTUnwrap(f.expected["layers"] as? [[String: Any]])
        XCTAssertEqual(report.data.layers.count, layers.count)
        var worst = 0.0
        for (got, want) in zip(report.data.layers, layers) {
            let heads = try XCTUnwrap(want["heads"] as? [Double])
            XCTAssertEqual(got.heads.count, heads.count, got.key)
            let d = maxRelative(got.heads, heads)
            worst = max(worst, d)
            XCTAssertLessThanOrEqual(d, 1e-5, "\(got.key): Patchwork \(got.heads), reference \(heads)")
        }
        print("attention distance: max relative difference \(worst)")
    }

    /// Minibatch unbiased linear CKA (Nguyen, Raghu & Kornblith 2021; HSIC₁ of Song et al. 2012) between
    /// the ViT's token embedding and blocks and the ResNet's stem and blocks, 15 images in minibatches of 5.
    /// The reference sums the U-statistic over distinct 4-tuples in float64. Tolerance 1e-4 relative, on
    /// a scale floored at 0.1 (so 1e-5 absolute for the entries near 0): Patchwork's Gram matrices come
    /// from float32 features, and HSIC₁ subtracts terms of the size of the Gram entries to get a much
    /// smaller result, so the rounding error of an entry does not shrink with its value: the same
    /// estimator on PyTorch's own float32 features and Gram matrices is at most 2e-6 off in absolute
    /// terms, but 1.7e-4 relative on the entry at 0.003. (Patchwork: 1.2e-6 absolute, 2.3e-5 relative.)
    func testMinibatchCKAMatchesReference() throws {
        let f = try Fixture("cka")
        let a = AnalysisModel(try f.model("vit", configKey: "vit_config", prefix: "vit."), input: .patchwork(imageSize: 16))
        let b = AnalysisModel(try f.model("resnet", configKey: "resnet_config", prefix: "resnet."), input: .patchwork(imageSize: 16))
        let batch = try XCTUnwrap(f.expected["batch_size"] as? Int)
        let report = try CKAAccumulator.run(a, b, images: try f.images(), sourceA: source, sourceB: source, batchSize: batch, command: "test")
        XCTAssertEqual(report.data.layersA, try XCTUnwrap(f.expected["vit_layers"] as? [String]))
        XCTAssertEqual(report.data.layersB, try XCTUnwrap(f.expected["resnet_layers"] as? [String]))
        let want = try XCTUnwrap(f.expected["cka"] as? [[Double]])
        XCTAssertEqual(report.data.cka.count, want.count)
        var worst = (absolute: 0.0, relative: 0.0)
        for (i, (got, row)) in zip(report.data.cka, want).enumerated() {
            XCTAssertEqual(got.count, row.count)
            for (j, (g, w)) in zip(got, row).enumerated() {
                XCTAssertLessThanOrEqual(abs(g - w), 1e-4 * max(abs(w), 0.1), "CKA[\(i)][\(j)]: Patchwork \(g), reference \(w)")
                worst = (max(worst.absolute, abs(g - w)), max(worst.relative, abs(g - w) / abs(w)))
            }
        }
        print("cka: max difference \(worst.absolute) absolute, \(worst.relative) relative")
    }

    /// Fourier heat-map cells (Yin et al. 2019) with the signs r drawn by the script: the basis image
    /// U(u, v), the perturbed images clip(x + r·v·U, 0, 1), the logits and the error rate, for cells
    /// including the zero frequency and the Nyquist rows and columns. Basis and perturbed images:
    /// 1e-6 absolute (pixels in [0, 1], float32 FFT vs float64). Logits: 1e-4 relative to the largest
    /// logit of the image (float32 forward vs float64). Error rates: exactly, since the script checked
    /// that every decision wins by more than 1e-3.
    func testFourierHeatmapCellsMatchReference() throws {
        let f = try Fixture("fourier")
        let labels = try f.file.integers("labels")
        let set = try f.images(labels: labels)
        let model = AnalysisModel(try f.model("vit", configKey: "config", prefix: "model."), input: .patchwork(imageSize: 16))
        let norm = try XCTUnwrap(f.expected["norm"] as? Double)
        let cells = try XCTUnwrap(f.expected["cells"] as? [[String: Any]])
        XCTAssertEqual(1 - model.accuracy(set.images, labels: labels), 0, "labels are the model's clean predictions")
        var worst = (basis: 0.0, image: 0.0, logits: 0.0)
        for (idx, cell) in cells.enumerated() {
            let u = try XCTUnwrap(cell["u"] as? Int), v = try XCTUnwrap(cell["v"] as? Int)
            let name = "cell (\(u), \(v))"
            let basis = FourierHeatmap.basis(u: u, v: v, height: set.height, width: set.width)
            let wantBasis = try f.tensor("cell\(idx).basis").scalars
            let db = zip(basis, wantBasis).map { Double(abs($0 - $1)) }.max()!
            XCTAssertLessThanOrEqual(db, 1e-6, "\(name): basis image")

            let signs = try f.tensor("cell\(idx).signs").scalars
            let noisy = FourierHeatmap.perturbed(set.images, u: u, v: v, norm: norm, signs: signs)
            let wantNoisy = try f.tensor("cell\(idx).perturbed")
            XCTAssertEqual(noisy.shape, wantNoisy.shape)
            let dn = zip(noisy.scalars, wantNoisy.scalars).map { Double(abs($0 - $1)) }.max()!
            XCTAssertLessThanOrEqual(dn, 1e-6, "\(name): perturbed images")

            let logits = model.logits(noisy), wantLogits = try f.tensor("cell\(idx).logits")
            XCTAssertEqual(logits.shape, wantLogits.shape)
            let classes = logits.shape[1]
            var dl = 0.0
            for i in 0..<logits.shape[0] {
                let got = logits.scalars[(i * classes)..<((i + 1) * classes)], want = wantLogits.scalars[(i * classes)..<((i + 1) * classes)]
                let scale = Double(want.map { abs($0) }.max()!)
                dl = max(dl, zip(got, want).map { Double(abs($0 - $1)) / scale }.max()!)
            }
            XCTAssertLessThanOrEqual(dl, 1e-4, "\(name): logits")

            let error = 1 - model.accuracy(noisy, labels: labels)
            XCTAssertEqual(error, try XCTUnwrap(cell["error"] as? Double), accuracy: 1e-12, "\(name): error rate")
            worst = (max(worst.basis, db), max(worst.image, dn), max(worst.logits, dl))
        }
        print("fourier: max basis difference \(worst.basis), perturbed pixels \(worst.image), logits (relative) \(worst.logits)")
    }

    /// Shape bias from fixed decisions (Geirhos et al. 2019): counts per class (by shape) and overall for
    /// a 10-class list of (shape, texture, decision), and for 16 images' ImageNet-1k probabilities mapped
    /// to the 16 categories by the mean over each category's indices (human_categories.py). Counts and
    /// decisions exactly; category scores 1e-6 relative (both sides average the same float32
    /// probabilities in double, in a different order); shape biases are ratios of the same integers.
    func testShapeBiasMatchesReference() throws {
        let f = try Fixture("shape-bias")
        func check(_ got: ShapeBias.Counts, _ want: [String: Any], _ what: String) throws {
            XCTAssertEqual(got.images, want["images"] as? Int, what)
            XCTAssertEqual(got.shapeDecisions, want["shape"] as? Int, what)
            XCTAssertEqual(got.textureDecisions, want["texture"] as? Int, what)
            XCTAssertEqual(got.otherDecisions, want["other"] as? Int, what)
            if let bias = want["shape_bias"] as? Double {
                XCTAssertEqual(got.shapeBias, bias, accuracy: 1e-12, what)
            } else {
                XCTAssertTrue(got.shapeBias.isNaN, "\(what): no cue decision, so no shape bias")
            }
        }

        let direct = try XCTUnwrap(f.expected["direct"] as? [String: Any])
        let classes = try XCTUnwrap(direct["classes"] as? Int)
        let (overall, perClass) = ShapeBias.tally(decisions: try XCTUnwrap(direct["decisions"] as? [Int]),
                                                  shapes: try XCTUnwrap(direct["shapes"] as? [Int]),
                                                  textures: try XCTUnwrap(direct["textures"] as? [Int]), classCount: classes)
        try check(overall, try XCTUnwrap(direct["overall"] as? [String: Any]), "10-class overall")
        let wantPerClass = try XCTUnwrap(direct["per_class"] as? [[String: Any]])
        XCTAssertEqual(perClass.count, wantPerClass.count)
        for (c, (got, want)) in zip(perClass, wantPerClass).enumerated() { try check(got, want, "10-class, class \(c)") }

        let geirhos = try XCTUnwrap(f.expected["imagenet16"] as? [String: Any])
        XCTAssertEqual(GeirhosCategories.names, try XCTUnwrap(geirhos["categories"] as? [String]))
        let probabilities = try f.tensor("probabilities")
        let n = probabilities.shape[0]
        let wantScores = try XCTUnwrap(geirhos["scores"] as? [[Double]])
        let wantDecisions = try XCTUnwrap(geirhos["decisions"] as? [Int])
        var decisions: [Int] = [], worst = 0.0
        for i in 0..<n {
            let p = Array(probabilities.scalars[(i * 1000)..<((i + 1) * 1000)])
            let d = maxRelative(GeirhosCategories.scores(probabilities: p), wantScores[i])
            worst = max(worst, d)
            XCTAssertLessThanOrEqual(d, 1e-6, "image \(i): 16 category scores")
            decisions.append(GeirhosCategories.decision(probabilities: p))
        }
        XCTAssertEqual(decisions, wantDecisions)
        let (overall16, perClass16) = ShapeBias.tally(decisions: decisions, shapes: try XCTUnwrap(geirhos["shapes"] as? [Int]),
                                                      textures: try XCTUnwrap(geirhos["textures"] as? [Int]), classCount: 16)
        try check(overall16, try XCTUnwrap(geirhos["overall"] as? [String: Any]), "16-category overall")
        let wantPerClass16 = try XCTUnwrap(geirhos["per_class"] as? [[String: Any]])
        XCTAssertEqual(perClass16.count, wantPerClass16.count)
        for (c, (got, want)) in zip(perClass16, wantPerClass16).enumerated() { try check(got, want, "16-category, \(GeirhosCategories.names[c])") }
        print("shape bias: max relative difference of category scores \(worst)")
    }
}
