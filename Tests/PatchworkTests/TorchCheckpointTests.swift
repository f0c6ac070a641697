import Foundation
import XCTest
import Patchwork
import PatchworkModels
import PatchworkNN

/// torch.save checkpoints read without Python: the fixtures in Fixtures/torch
/// were written by the real torch.save (make_fixtures.py beside them), each
/// with the state dict torch reads from it saved as safetensors to compare with.
final class TorchCheckpointTests: XCTestCase {
    func fixture(_ name: String) throws -> String {
        try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/torch/\(name)", withExtension: nil), "missing Fixtures/torch/\(name)").path
    }

    /// `file`'s state dict equals the expected safetensors exactly: same keys, shapes and values.
    func assertMatches(_ file: WeightsFile, expected name: String, line: UInt = #line) throws {
        let expected = try Safetensors(contentsOf: try fixture(name + ".expected.safetensors"))
        XCTAssertEqual(Set(file.names), Set(expected.names), line: line)
        XCTAssertEqual(file.names.count, expected.names.count, "duplicate names", line: line)
        for key in expected.names {
            let got = try file.tensor(key), want = try expected.tensor(key)
            XCTAssertEqual(got.shape, want.shape, key, line: line)
            XCTAssertEqual(got.scalars.map(\.bitPattern), want.scalars.map(\.bitPattern), key, line: line)
        }
    }

    func testEveryDtypeSharedStorageAndStridedViewMatchTorch() throws {
        let file = try WeightsFile(contentsOf: try fixture("dtypes.pth"))
        XCTAssertEqual(file.format, .torch)
        XCTAssertNil(file.stateDictKey, "a bare state dict is the top level")
        XCTAssertEqual(file.placeholders, [])
        try assertMatches(file, expected: "dtypes")
        let dtypes: [String: Safetensors.DType] = ["f32": .F32, "f16": .F16, "bf16": .BF16, "f64": .F64, "i64": .I64, "i32": .I32,
                                                   "i8": .I8, "u8": .U8, "bool": .BOOL]
        for (name, dtype) in dtypes { XCTAssertEqual(file.dtype(name), dtype, name) }
        // The views are what torch saved, not their storages.
        XCTAssertEqual(try file.tensor("transposed").shape, [6, 4])
        XCTAssertEqual(try file.tensor("strided").shape, [3, 3])
        XCTAssertEqual(try file.tensor("shared_b").scalars, [1.0, 1.25, 1.5, 1.75, 2.0, 2.25])
    }

    func testTrainingCheckpointGivesItsModelAndNamesThePlaceholders() throws {
        let file = try WeightsFile(contentsOf: try fixture("training.pth"))
        XCTAssertEqual(file.stateDictKey, "model")
        try assertMatches(file, expected: "training")
        // argparse's Namespace and numpy's scalar are kept as inert placeholders, and listed.
        XCTAssertTrue(file.placeholders.contains("argparse.Namespace"), "\(file.placeholders)")
        XCTAssertTrue(file.placeholders.contains { $0.hasPrefix("numpy") && $0.hasSuffix("scalar") }, "\(file.placeholders)")
    }

    func testDataParallelPrefixesAreRemoved() throws {
        let file = try WeightsFile(contentsOf: try fixture("dataparallel.pth"))
        XCTAssertEqual(file.stateDictKey, "state_dict")
        XCTAssertFalse(file.names.contains { $0.hasPrefix("module.") })
        try assertMatches(file, expected: "training")
    }

    func testEMAWeightsComeFirstAsInTimmAndAKeyOverrides() throws {
        let path = try fixture("ema.pth")
        let file = try WeightsFile(contentsOf: path)
        XCTAssertEqual(file.stateDictKey, "model_ema")
        try assertMatches(file, expected: "ema")
        let model = try WeightsFile(contentsOf: path, key: "model")
        XCTAssertEqual(model.stateDictKey, "model")
        try assertMatches(model, expected: "training")
        XCTAssertThrowsError(try WeightsFile(contentsOf: path, key: "weights")) { error in
            XCTAssertTrue("\(error)".contains("no key \"weights\""), "\(error)")
            XCTAssertTrue("\(error)".contains("model_ema"), "the error lists the keys there are: \(error)")
        }
        XCTAssertThrowsError(try WeightsFile(contentsOf: path, key: "epoch")) { error in
            XCTAssertTrue("\(error)".contains("\"epoch\" holds a int, not a state dict"), "\(error)")
        }
    }

    func testLegacyFormatBeforeTorch16() throws {
        let file = try WeightsFile(contentsOf: try fixture("legacy.pth"))
        XCTAssertEqual(file.format, .torch)
        try assertMatches(file, expected: "training")
    }

    /// A checkpoint whose pickle would run `os.system("touch ...")` and `open(..., "w")` if it
    /// were executed: it loads, the two functions are reported as placeholders, and no file appears.
    func testPayloadsAreNeverExecuted() throws {
        let pwned = "/tmp/patchwork-torch-fixture-pwned"
        try? FileManager.default.removeItem(atPath: pwned)
        let file = try WeightsFile(contentsOf: try fixture("malicious.pth"))
        _ = try file.tensors()
        XCTAssertFalse(FileManager.default.fileExists(atPath: pwned), "the payload ran")
        XCTAssertTrue(file.placeholders.contains("posix.system") || file.placeholders.contains("os.system"), "\(file.placeholders)")
        XCTAssertTrue(file.placeholders.contains("builtins.open") || file.placeholders.contains("io.open"), "\(file.placeholders)")
        try assertMatches(file, expected: "training")
    }

    func testHostileFilesGiveClearErrors() throws {
        let cases: [(String, String)] = [
            ("hostile-truncated.pth", "end-of-central-directory"),
            ("hostile-no-data-pkl.pth", "has no <folder>/data.pkl"),
            ("hostile-short-storage.pth", "truncated?"),
            ("hostile-unknown-storage.pth", "unknown storage type torch.ComplexFloatStorage"),
            ("hostile-opcode.pth", "opcode 0x70 ('p') is outside the pickle subset"),
        ]
        for (name, fragment) in cases {
            let path = try fixture(name)
            XCTAssertThrowsError(try WeightsFile(contentsOf: path).tensors(), name) { error in
                XCTAssertTrue("\(error)".hasPrefix(path + ": "), "\(name): the error does not name the file: \(error)")
                XCTAssertTrue("\(error)".contains(fragment), "\(name): \(error)")
            }
        }
    }

    /// Pickles written by hand, each broken in one way, in a stored zip as torch lays it out.
    func testBrokenPicklesGiveClearErrors() throws {
        let folder = NSTemporaryDirectory() + "patchwork-torch-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // ('storage', torch.FloatStorage, '0', 'cpu', 4) as a persistent id, then _rebuild_tensor_v2 with size and stride.
        func tensor(size: [UInt8], stride: [UInt8], offset: UInt8 = 0) -> [UInt8] {
            latin1("ctorch._utils\n_rebuild_tensor_v2\n((X\u{7}\0\0\0storagectorch\nFloatStorage\nX\u{1}\0\0\00X\u{3}\0\0\0cpuK\u{4}tQK")
                + [offset] + [0x28] + size.flatMap { [0x4B, $0] } + [0x74, 0x28] + stride.flatMap { [0x4B, $0] } + [0x74]
                + latin1("\u{89}NtR")
        }
        let w: [UInt8] = latin1("\u{80}\u{2}}(X\u{1}\0\0\0w")
        let data = (0..<4).flatMap { (i: Int) in withUnsafeBytes(of: Float(i).bitPattern.littleEndian) { Array($0) } }
        let cases: [(String, [UInt8], String)] = [
            ("good", w + tensor(size: [2, 2], stride: [1, 2]) + latin1("u."), ""),
            ("memo", latin1("\u{80}\u{2}h\u{5}."), "memo index 5 was never written"),
            ("mark", latin1("\u{80}\u{2}(}."), "STOP with 1 MARK(s) still open"),
            ("underflow", latin1("\u{80}\u{2}s."), "stack underflow"),
            ("two values", latin1("\u{80}\u{2}}}."), "STOP with 2 values on the stack"),
            ("list", latin1("\u{80}\u{2}]."), "holds a list, not a dict"),
            ("past storage", w + tensor(size: [2, 3], stride: [3, 1]) + latin1("u."), "reach element 5 of a storage of 4"),
            ("offset", w + tensor(size: [4], stride: [1], offset: 1) + latin1("u."), "reach element 4 of a storage of 4"),
            ("expanded", w + tensor(size: [200, 200], stride: [0, 0]) + latin1("u."), "an expanded view"),
            ("not a tensor", w + [0x4B, 3] + latin1("u."), "\"w\" is a int, not a tensor"),
            ("truncated pickle", w + tensor(size: [2, 2], stride: [2, 1]).dropLast(3), "truncated?"),
            // Nesting a million deep, and a list inside itself: no recursion, so no stack overflow or endless walk.
            ("deep", latin1("\u{80}\u{2})") + [UInt8](repeating: 0x85, count: 1_000_000) + latin1("."), "holds a tuple, not a dict"),
            ("cycle", latin1("\u{80}\u{2}]q\u{0}h\u{0}a."), "holds a list, not a dict"),
            ("huge string", latin1("\u{80}\u{2}X\u{ff}\u{ff}\u{ff}\u{7f}"), "runs past the end of the pickle"),
        ]
        for (name, pickle, fragment) in cases {
            let path = folder + "/\(name.replacingOccurrences(of: " ", with: "-")).pth"
            try Data(storedZip([("archive/data.pkl", pickle), ("archive/byteorder", latin1("little")), ("archive/data/0", data)]))
                .write(to: URL(fileURLWithPath: path))
            if fragment.isEmpty {
                let t = try WeightsFile(contentsOf: path).tensor("w")
                XCTAssertEqual(t.shape, [2, 2])
                XCTAssertEqual(t.scalars, [0, 2, 1, 3], "column-major strides read as torch reads them")
                continue
            }
            XCTAssertThrowsError(try WeightsFile(contentsOf: path).tensors(), name) { error in
                XCTAssertTrue("\(error)".hasPrefix(path + ": "), "\(name): \(error)")
                XCTAssertTrue("\(error)".contains(fragment), "\(name): \(error)")
            }
        }
    }

    /// The parity case vitc-a's weights, saved as its authors' repository (pycls) saves a
    /// checkpoint, give the reference's eval logits, and exactly the logits of its safetensors.
    func testAuthorsCheckpointGivesTheParityLogits() throws {
        let parity = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/parity", withExtension: nil)).path
        struct Case: Decodable { let family: String; let config: JSONValue; let tolerance: Parity.Tolerance }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let spec = try decoder.decode(Case.self, from: Data(contentsOf: URL(fileURLWithPath: parity + "/vitc-a.json")))
        let reference = try Safetensors(contentsOf: parity + "/vitc-a.safetensors")
        let input = try reference.tensor("fixture.input").permuted([0, 2, 3, 1]).contiguous()

        let checkpoint = try fixture("vitc-a.pth")
        let file = try WeightsFile(contentsOf: checkpoint)
        XCTAssertEqual(file.stateDictKey, "model_state")
        let fromTorch = try Models.family(spec.family).build(config: spec.config)
        try fromTorch.load(from: checkpoint)
        fromTorch.eval()
        let logits = withoutGrad { fromTorch.logits(input) }
        let want = try reference.tensor("fixture.logits_eval")
        XCTAssertEqual(logits.shape, want.shape)
        for (g, w) in zip(logits.scalars, want.scalars) {
            XCTAssertLessThanOrEqual(abs(g - w), spec.tolerance.logitsAtol + spec.tolerance.logitsRtol * abs(w))
        }
        let fromSafetensors = try Models.family(spec.family).build(config: spec.config)
        try fromSafetensors.load(from: parity + "/vitc-a.safetensors", ignoringPrefixes: ["fixture."])
        fromSafetensors.eval()
        XCTAssertEqual(logits.scalars, withoutGrad { fromSafetensors.logits(input) }.scalars)
    }
}

/// The bytes of `text`'s characters, each below 256 (a pickle's opcodes, written as a string).
func latin1(_ text: String) -> [UInt8] { text.unicodeScalars.map { UInt8($0.value) } }

/// A zip archive of stored entries, laid out as `torch.save` writes one (without its alignment padding).
func storedZip(_ entries: [(String, [UInt8])]) -> [UInt8] {
    func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF)] }
    func le32(_ v: Int) -> [UInt8] { le16(v & 0xFFFF) + le16((v >> 16) & 0xFFFF) }
    var out: [UInt8] = [], directory: [UInt8] = []
    for (name, data) in entries {
        let offset = out.count, nameBytes = Array(name.utf8)
        // CRCs are written as zero: the reader does not check them (torch's does not either, by default).
        let common = le16(20) + le16(0) + le16(0) + le16(0) + le16(0) + le32(0) + le32(data.count) + le32(data.count) + le16(nameBytes.count)
        out += le32(0x0403_4B50) + common + le16(0) + nameBytes + data
        directory += le32(0x0201_4B50) + le16(20) + common + le16(0) + le16(0) + le16(0) + le16(0) + le32(0) + le32(offset) + nameBytes
    }
    let directoryOffset = out.count
    out += directory
    out += le32(0x0605_4B50) + le16(0) + le16(0) + le16(entries.count) + le16(entries.count) + le32(directory.count) + le32(directoryOffset) + le16(0)
    return out
}
