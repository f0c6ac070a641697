import Foundation
import XCTest
import Patchwork
import PatchworkData
import PatchworkModels
import PatchworkNN
import PatchworkTrain

/// Seven timm ImageNet-1k variants of seven families against the reference
/// (Fixtures/pretrained/make_fixtures.py): real photographs through timm's eval
/// transform and the model, the top-5 classes and probabilities. Patchwork goes
/// the way a user does: the model's name resolves to its pretrained configuration,
/// the weights load from a file, the image file goes through `ModelInput`.
final class PretrainedPredictionTests: XCTestCase {
    struct Expected: Decodable {
        struct Variant: Decodable {
            struct Config: Decodable {
                let input_size: [Int]
                let interpolation: String
                let mean: [Double]
                let std: [Double]
                let crop_pct: Double
                let crop_mode: String
            }
            struct Row: Decodable { let image: String; let top5: [Int]; let probabilities: [Double] }
            let gain: Double
            let classifier_scale: Double
            let crop: String
            let config: Config
            let images: [Row]
        }
        let variants: [String: Variant]
    }

    private func folder() throws -> URL {
        try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/pretrained", withExtension: nil))
    }

    private func photo(_ name: String) throws -> String {
        try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/preprocess/images", withExtension: nil)).appendingPathComponent(name).path
    }

    private func expected() throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: folder().appendingPathComponent("expected.json")))
    }

    /// The fixture script's `deterministic_weights`: value i of tensor `key` is (k − 128) / 128 · scale, with k the
    /// top byte of splitmix64(FNV-1a(key) + i); weights of two or more dimensions are on ±sqrt(gain / fan-in)
    /// rounded to a power of two, the classifier's times `classifierScale`.
    static func deterministicWeights(key: String, shape: [Int], gain: Double, classifierScale: Double, classes: Int = 1000) -> Tensor {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in key.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 }
        let count = shape.reduce(1, *)
        var signed = [Double](repeating: 0, count: count)
        for i in 0..<count {
            var z = hash &+ UInt64(i) &+ 0x9E37_79B9_7F4A_7C15
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            signed[i] = (Double(z >> 56) - 128) / 128
        }
        let values: [Double]
        if key.hasSuffix("running_var") {
            values = signed.map { 1 + $0 / 2 }
        } else if key.hasSuffix("running_mean") {
            values = signed.map { $0 / 4 }
        } else if shape.count == 1 && key.hasSuffix("weight") {
            values = signed.map { 1 + $0 / 4 }
        } else if shape.count <= 1 {
            values = signed.map { $0 / 16 }
        } else {
            let fanIn = Double(shape.dropFirst().reduce(1, *))
            var scale = pow(2, (log2((gain / fanIn).squareRoot())).rounded(.toNearestOrEven))
            if shape.count == 2 && shape[0] == classes { scale *= classifierScale }
            values = signed.map { $0 * scale }
        }
        return Tensor(values.map { Float($0) }, shape: shape)
    }

    /// The variant's state dict with the deterministic weights (integer buffers keep the model's values),
    /// written as safetensors in the reference's keys, as a downloaded checkpoint would be.
    private func writeWeights(_ name: String, _ variant: Expected.Variant, to path: String) throws {
        let model = try Models.create(name, numClasses: 1000)
        var tensors: [String: Tensor] = [:], dtypes: [String: Safetensors.DType] = [:]
        for (key, slot) in model.namedSlots() {
            let value = slot.checkpointValue
            dtypes[key] = slot.checkpointDType
            tensors[key] = [.F32, .F16, .BF16, .F64].contains(slot.checkpointDType)
                ? Self.deterministicWeights(key: key, shape: value.shape, gain: variant.gain,
                                           classifierScale: variant.classifier_scale) : value
        }
        try Safetensors.write(tensors, dtypes: dtypes, to: path)
    }

    /// Patchwork's top-5 for each fixture image against the reference's: same classes in the same order,
    /// probabilities within 2e-3; the preprocessed crop within one 8-bit step of timm's.
    private func checkPredictions(_ name: String, weights: String, _ variant: Expected.Variant, crops: Safetensors,
                                  file: StaticString = #filePath, line: UInt = #line) throws {
        let loaded = try loadTrainedModel(name, weights: weights, classes: nil)
        XCTAssertEqual(loaded.classCount, 1000, file: file, line: line)
        XCTAssertEqual(loaded.label(0), ImageNet.classNames[0], file: file, line: line)
        let p = try XCTUnwrap(loaded.input.preprocessing, "\(name): a published checkpoint gets its evaluation transform")
        for row in variant.images {
            let path = try photo(row.image)
            let crop = try p.crop(try ImageIO.decode(path))
            let reference = try crops.integers("\(variant.crop)/\(row.image)")
            XCTAssertEqual(crop.pixels.count, reference.count, "\(name) \(row.image)", file: file, line: line)
            let worst = zip(crop.pixels, reference).map { abs(Int($0) - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, 1, "\(name) \(row.image): the crop differs from timm's by \(worst) steps", file: file, line: line)

            let pixels = try loaded.input.pixels(contentsOf: path).unsqueezed(axis: 0)
            let probabilities = withoutGrad { loaded.model.logits(loaded.input.normalized(pixels)).softmax(axis: -1) }.scalars
            let top = probabilities.indices.sorted { probabilities[$0] > probabilities[$1] }.prefix(5)
            XCTAssertEqual(Array(top), row.top5, "\(name) \(row.image): top-5 classes", file: file, line: line)
            for (index, p) in zip(row.top5, row.probabilities) {
                XCTAssertEqual(Double(probabilities[index]), p, accuracy: 2e-3, "\(name) \(row.image): class \(index)", file: file, line: line)
            }
        }
    }

    func testPatchworksPretrainedConfigurationsAreTimms() throws {
        for (name, variant) in try expected().variants {
            let config = try XCTUnwrap(Models.resolve(name).pretrained, name)
            XCTAssertEqual(config.inputSize, Array(variant.config.input_size.dropFirst()), name)
            XCTAssertEqual(config.interpolation, variant.config.interpolation, name)
            XCTAssertEqual(config.mean, variant.config.mean, name)
            XCTAssertEqual(config.std, variant.config.std, name)
            XCTAssertEqual(config.cropPct, variant.config.crop_pct, name)
            XCTAssertEqual(config.cropMode, variant.config.crop_mode, name)
        }
    }

    func testSevenVariantsGiveTheReferenceTop5FromSafetensors() throws {
        let expected = try expected()
        XCTAssertEqual(expected.variants.count, 7)
        XCTAssertGreaterThanOrEqual(Set(try expected.variants.keys.map { try Models.variant($0).family }).count, 5)
        let crops = try Safetensors(contentsOf: try folder().appendingPathComponent("crops.safetensors").path)
        let dir = try temporaryFolder("pretrained")
        for (name, variant) in expected.variants.sorted(by: { $0.key < $1.key }) {
            let path = dir + "/\(name).safetensors"
            try writeWeights(name, variant, to: path)
            try checkPredictions(name, weights: path, variant, crops: crops)
            try FileManager.default.removeItem(atPath: path)
        }
    }

    /// The real torch.save file (float16 storages under "model", beside an epoch and a note): loaded as is.
    func testPvtV2B0FromTheTorchSaveFile() throws {
        let expected = try expected()
        let crops = try Safetensors(contentsOf: try folder().appendingPathComponent("crops.safetensors").path)
        let pth = try folder().appendingPathComponent("pvt_v2_b0.pth").path
        try checkPredictions("pvt_v2_b0.in1k", weights: pth, try XCTUnwrap(expected.variants["pvt_v2_b0"]), crops: crops)
    }
}
