import Foundation
import XCTest
import Patchwork
import PatchworkAnalysis
import PatchworkData
import PatchworkModels

/// Attacks, corruptions, and every analysis end to end on a small model.
final class AnalysisRobustnessTests: XCTestCase {
    static var trained: (AnalysisModel, ImageSet)?

    /// A TinyCNN trained on 16×16 ShapeTex, and 40 test images.
    func trainedModel() throws -> (AnalysisModel, ImageSet) {
        if let t = Self.trained { return t }
        let model = try trainTinyCNN(on: ShapeTex(split: .train, count: 400, size: 16, seed: 31), epochs: 6)
        let set = try ImageSet(ShapeTex(split: .test, count: 40, size: 16, seed: 31), count: nil)
        Self.trained = (AnalysisModel(model, input: .patchwork(imageSize: 16), batchSize: 40), set)
        return Self.trained!
    }

    var source: RunSource { RunSource(model: "tiny", weights: "-", data: "shapetex:size=16", imageSize: 16, normalization: "patchwork", seed: 0) }

    func testImageSubsetsKeepEveryClass() throws {
        // ShapeTex cycles its labels (index mod 10): an evenly strided subset would alias; a random one must not.
        let set = try ImageSet(ShapeTex(split: .test, count: 2000, size: 8), count: 300)
        XCTAssertEqual(set.count, 300)
        XCTAssertEqual(Set(set.labels).count, 10)
        XCTAssertTrue((0..<10).allSatisfy { c in set.labels.filter { $0 == c }.count >= 15 }, "classes far from balanced")
        XCTAssertEqual(set.indices, set.indices.sorted())
        XCTAssertEqual(Set(set.indices).count, 300)
    }

    func testEpsilonZeroAttacksLeaveAccuracyUnchanged() throws {
        let (model, set) = try trainedModel()
        let clean = model.accuracy(set.images, labels: set.labels)
        let report = try Adversarial.run(model, images: set, epsilons: [0], steps: 3, stepSizeOverEpsilon: 0.5, randomStart: true, seed: 1,
                                         source: source, command: "test")
        XCTAssertEqual(report.data.points[0].fgsmAccuracy, clean)
        XCTAssertEqual(report.data.points[0].pgdAccuracy, clean)
        let adv = Adversarial.fgsm(model, images: set.images, labels: set.labels, epsilon: 0)
        XCTAssertEqual(adv.scalars, set.images.scalars)
    }

    func testPGDNeverLowersTheLossItMaximisesAndStaysInTheBall() throws {
        let (model, set) = try trainedModel()
        let eps: Float = 4 / 255
        let clean = Adversarial.lossAndGradient(model, set.images, labels: set.labels)
        let r = Adversarial.pgd(model, images: set.images, labels: set.labels, epsilon: eps, steps: 5, stepSize: eps / 4, randomStart: true,
                                generator: Generator(seed: 2))
        let x = set.images.scalars, a = r.images.scalars
        for i in x.indices {
            XCTAssertLessThanOrEqual(abs(a[i] - x[i]), eps * (1 + 1e-5), "outside the ε-ball at \(i)")
            XCTAssertTrue(a[i] >= 0 && a[i] <= 1, "outside [0, 1] at \(i)")
        }
        let reached = crossEntropyRows(model.logits(r.images), labels: set.labels)
        for i in 0..<set.count {
            XCTAssertGreaterThanOrEqual(r.losses[i], clean.losses[i], "image \(i): PGD lowered the loss")
            XCTAssertEqual(reached[i], r.losses[i], accuracy: 1e-4 * max(1, r.losses[i]), "image \(i): the returned image has the reported loss")
            XCTAssertEqual(r.losses[i], r.lossTrace[i].max()!, accuracy: 1e-12)
        }
        // And the attack does something: the mean loss rises and accuracy does not.
        XCTAssertGreaterThan(r.losses.reduce(0, +), clean.losses.reduce(0, +))
        XCTAssertLessThanOrEqual(r.fooled.filter { !$0 }.count, zip(clean.predictions, set.labels).filter { $0 == $1 }.count)
    }

    func testNegativeEpsilonIsRefused() throws {
        let (model, set) = try trainedModel()
        XCTAssertThrowsError(try Adversarial.run(model, images: set, epsilons: [0, -0.01], steps: 2, stepSizeOverEpsilon: 0.5, randomStart: false,
                                                 seed: 0, source: source, command: "test")) {
            XCTAssertTrue("\($0)".contains("ε must be ≥ 0") && "\($0)".contains("-0.01"), "\($0)")
        }
    }

    func testCorruptionsKeepTheRangeAndGrowWithSeverity() {
        let (h, w, c) = (16, 16, 3)
        let image = ShapeTex.render(shape: 2, texture: 5, size: 16, generator: Generator(seed: 4)).scalars
        for corruption in Corruption.allCases {
            var distances: [Double] = []
            for severity in 1...5 {
                let y = corruption.apply(image, height: h, width: w, channels: c, severity: severity, generator: Generator(seed: 9))
                XCTAssertEqual(y.count, image.count)
                XCTAssertTrue(y.allSatisfy { $0 >= 0 && $0 <= 1 }, "\(corruption) \(severity): out of [0, 1]")
                distances.append(zip(y, image).reduce(0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }.squareRoot())
            }
            XCTAssertGreaterThan(distances[4], 0, "\(corruption) changes nothing")
            if corruption != .saturate {   // saturate's severities 1–2 desaturate and 3–5 oversaturate, as in CIFAR-10-C
                XCTAssertGreaterThan(distances[4], distances[0], "\(corruption): severity 5 should change more than severity 1")
            }
        }
        // JPEG is a real round trip: near-lossless at quality 100, lossy at 10.
        let q100 = Corruption.jpegRoundTrip(image, h, w, c, quality: 100), q10 = Corruption.jpegRoundTrip(image, h, w, c, quality: 10)
        let e100 = zip(q100, image).map { abs($0 - $1) }.reduce(0, +) / Float(image.count)
        let e10 = zip(q10, image).map { abs($0 - $1) }.reduce(0, +) / Float(image.count)
        XCTAssertLessThan(e100, 0.02)
        XCTAssertGreaterThan(e10, 2 * e100)
    }

    /// Every analysis runs on a small model and writes JSON with `summary` and `settings`, and an SVG.
    func testEveryAnalysisWritesJSONAndSVG() throws {
        let (model, set) = try trainedModel()
        let small = ImageSet(images: set.images.sliced(axis: 0, start: 0, end: 10).contiguous(), labels: Array(set.labels[0..<10]),
                             indices: Array(set.indices[0..<10]))
        let out = try temporaryFolder("analyses")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let fh = try FourierHeatmap.run(model, images: small, norm: 4, seed: 0, source: source, command: "test")
        XCTAssertEqual(fh.data.errorRate.count, 16)
        XCTAssertFalse(fh.data.errorRate.flatMap { $0 }.contains { $0.isNaN }, "every frequency measured")
        XCTAssertEqual(fh.data.radialRadius, Array(0...11), "radii 0 … round(8√2)")
        XCTAssertEqual(fh.data.radialError[0], fh.data.errorRate[8][8], "radius 0 is the DC cell alone")
        try AnalysisOutput.write(fh, name: "fourier-heatmap", svg: FourierHeatmap.svg(fh, title: "tiny"), to: out)
        let fn = try FrequencyNoise.run(model, images: small, bands: 4, norm: 2, cutoffs: [0, 2, 12], seed: 0, source: source, command: "test")
        XCTAssertEqual(fn.data.cutoffs.last!.lowPassAccuracy, fn.summary.cleanAccuracy, "a low-pass past the corner is the image")
        XCTAssertEqual(fn.data.cutoffs.first!.highPassAccuracy, fn.summary.cleanAccuracy, "a high-pass at 0 keeps everything")
        try AnalysisOutput.write(fn, name: "frequency-noise", svg: FrequencyNoise.svg(fn, title: "tiny"), to: out)
        let ff = try FeatureFrequency.run(model, images: small, source: source, command: "test")
        XCTAssertEqual(ff.data.layers.map(\.name), ["conv1", "conv2", "conv3"])
        XCTAssertEqual(ff.data.layers.map(\.grid), [[16, 16], [8, 8], [4, 4]])
        try AnalysisOutput.write(ff, name: "feature-frequency", svg: FeatureFrequency.svg(ff, title: "tiny"), to: out)
        let co = try Corruptions.run(model, images: small, corruptions: [.gaussianNoise, .jpegCompression], seed: 0, source: source, command: "test")
        XCTAssertEqual(co.data.rows.map(\.accuracy.count), [5, 5])
        try AnalysisOutput.write(co, name: "corruptions", svg: Corruptions.svg(co, title: "tiny"), to: out)
        let ad = try Adversarial.run(model, images: small, epsilons: [0, 2.0 / 255], steps: 2, stepSizeOverEpsilon: 0.5, randomStart: true,
                                     seed: 0, source: source, command: "test")
        try AnalysisOutput.write(ad, name: "adversarial", svg: Adversarial.svg(ad, title: "tiny"), to: out)

        let files = try FileManager.default.contentsOfDirectory(atPath: out).sorted()
        let names = ["adversarial", "corruptions", "feature-frequency", "fourier-heatmap", "frequency-noise"]
        XCTAssertEqual(files, names.flatMap { [$0 + ".json", $0 + ".svg"] }, "exactly the outputs, no temporary files left")
        for name in names {
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/\(name).json"))) as? [String: Any]
            XCTAssertNotNil(json?["summary"] as? [String: Any], "\(name).json has a summary object")
            let settings = json?["settings"] as? [String: Any]
            XCTAssertNotNil(settings?["source"], "\(name).json settings name the model and data")
            XCTAssertEqual(json?["analysis"] as? String, name)
            let svg = try String(contentsOfFile: out + "/\(name).svg", encoding: .utf8)
            XCTAssertTrue(svg.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\"") && svg.hasSuffix("</svg>\n"), "\(name).svg")
            XCTAssertFalse(svg.contains("nan") || svg.contains("inf"), "\(name).svg has non-finite coordinates")
        }
    }
}
