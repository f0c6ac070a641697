import Foundation
import XCTest
import Patchwork
import PatchworkNN

final class SafetensorsTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("patchwork-st-\(getpid())-\(name.hashValue)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// Writes a file with the given raw header JSON and data bytes.
    func rawFile(_ name: String, header: String, data: [UInt8], headerLength: UInt64? = nil) throws -> String {
        var bytes = Data()
        var n = (headerLength ?? UInt64(header.utf8.count)).littleEndian
        withUnsafeBytes(of: &n) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: Array(header.utf8))
        bytes.append(contentsOf: data)
        let p = path(name)
        try bytes.write(to: URL(fileURLWithPath: p))
        return p
    }

    func assertReadError(_ p: String, key: String?, mentions: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Safetensors(contentsOf: p), file: file, line: line) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(p), "error does not name the file: \(text)", file: file, line: line)
            if let key { XCTAssertTrue(text.contains("\"\(key)\""), "error does not name key \(key): \(text)", file: file, line: line) }
            XCTAssertTrue(text.contains(mentions), "error does not say \"\(mentions)\": \(text)", file: file, line: line)
        }
    }

    func testRoundTripIsBitIdenticalForF32AndConvertsOtherDtypes() throws {
        let a = Tensor.randomNormal([3, 4, 5], generator: Generator(seed: 1))
        let b = Tensor([1.5, -2.25, 65504, 0.000061035156, -0.0], shape: [5])
        let c = Tensor([0, 1, -7, 123_456], shape: [2, 2])
        let p = path("round.safetensors")
        try Safetensors.write(["a": a, "half": b, "bf": b, "long": c, "int": c, "scalar": Tensor(3.5)],
                              dtypes: ["half": .F16, "bf": .BF16, "long": .I64, "int": .I32],
                              metadata: ["format": "pt", "note": "test"], to: p)
        let file = try Safetensors(contentsOf: p)
        XCTAssertEqual(file.metadata, ["format": "pt", "note": "test"])
        XCTAssertEqual(Set(file.names), ["a", "half", "bf", "long", "int", "scalar"])
        XCTAssertEqual(try file.tensor("a").scalars.map(\.bitPattern), a.scalars.map(\.bitPattern))
        XCTAssertEqual(try file.tensor("a").shape, [3, 4, 5])
        XCTAssertEqual(try file.tensor("half").scalars, [1.5, -2.25, 65504, 0.000061035156, -0.0])
        XCTAssertEqual(try file.tensor("bf").scalars, [1.5, -2.25, 65536, 0.000061035156, -0.0])
        XCTAssertEqual(try file.integers("long"), [0, 1, -7, 123_456])
        XCTAssertEqual(try file.integers("int"), [0, 1, -7, 123_456])
        XCTAssertEqual(try file.tensor("scalar").shape, [])
        XCTAssertEqual(file.entries["long"]?.dtype, .I64)
        XCTAssertThrowsError(try file.tensor("missing")) { XCTAssertTrue("\($0)".contains("\"missing\"")) }
    }

    func testReadsAFileWrittenByTheReferenceLibrary() throws {
        guard let url = Bundle.module.url(forResource: "Fixtures/parity/vit-a", withExtension: "safetensors") else {
            return XCTFail("missing fixture vit-a.safetensors")
        }
        let file = try Safetensors(contentsOf: url.path)
        XCTAssertEqual(file.metadata["format"], "pt")
        let cls = try file.tensor("cls_token")
        XCTAssertEqual(cls.shape, [1, 1, 48])
        // Values read independently from the raw bytes with NumPy.
        XCTAssertEqual(Array(cls.scalars.prefix(3)), [-0.0757553, -0.08526698, -0.3596103])
        XCTAssertEqual(try file.tensor("fixture.loss_train").shape, [])
    }

    func testCorruptFilesFailWithClearErrors() throws {
        let good = #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        // Header length past the end of the file.
        assertReadError(try rawFile("long.st", header: good, data: [UInt8](repeating: 0, count: 8), headerLength: 10_000),
                        key: nil, mentions: "past the end")
        // Shorter than the length prefix.
        let tiny = path("tiny.st")
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: tiny))
        assertReadError(tiny, key: nil, mentions: "shorter than")
        // Bad JSON.
        assertReadError(try rawFile("json.st", header: #"{"w": {"dtype": "F32", "#, data: []), key: nil, mentions: "not valid JSON")
        // Offsets out of range (a truncated data section).
        assertReadError(try rawFile("range.st", header: good, data: [UInt8](repeating: 0, count: 4)), key: "w", mentions: "outside the data section")
        // Overlapping offsets.
        let overlap = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        assertReadError(try rawFile("overlap.st", header: overlap, data: [UInt8](repeating: 0, count: 12)), key: "b", mentions: "overlap")
        // Unknown dtype.
        let dtype = #"{"w":{"dtype":"F8_E4M3X","shape":[2],"data_offsets":[0,2]}}"#
        assertReadError(try rawFile("dtype.st", header: dtype, data: [0, 0]), key: "w", mentions: "unknown dtype")
        // Shape × dtype size ≠ byte length.
        let lying = #"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#
        assertReadError(try rawFile("shape.st", header: lying, data: [UInt8](repeating: 0, count: 8)), key: "w", mentions: "needs 12 bytes")
        // A real file cut short.
        let p = path("cut.safetensors")
        try Safetensors.write(["x": Tensor.ones([100])], to: p)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: p))
        try bytes.prefix(bytes.count - 10).write(to: URL(fileURLWithPath: p))
        assertReadError(p, key: "x", mentions: "outside the data section")
        // No such file.
        assertReadError(path("absent.safetensors"), key: nil, mentions: "no such file")
    }

    func testFailedWriteLeavesTheExistingFileIntact() throws {
        let p = path("keep.safetensors")
        try Safetensors.write(["x": Tensor.ones([4])], to: p)
        let before = try Data(contentsOf: URL(fileURLWithPath: p))
        // Writing into a folder that does not exist fails and touches nothing.
        XCTAssertThrowsError(try Safetensors.write(["x": Tensor.zeros([4])], to: path("missing-dir/keep.safetensors")))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: p)), before)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains(".tmp-") }
        XCTAssertEqual(leftovers, [])
    }
}
