import CZlib
import Foundation
import XCTest
import Patchwork
import PatchworkData
import PatchworkNN

/// Seeded mutation fuzzing of every file reader: valid files of each format
/// are truncated, bit-flipped, given lying lengths and overflowing shapes or
/// dimensions, and each mutated input must either load or throw an error that
/// names its file: never crash, hang or take absurd memory.
///
/// The suite runs a fixed set (`FUZZ_ITERATIONS` cases per format, default
/// 300, from `FUZZ_SEED`, default 19). `scripts/fuzz.sh` runs longer sets, one
/// format per child process; it sets `FUZZ_CURRENT` (each input is written
/// there before it is tried, so the input that crashed or hung the process can
/// be kept), `FUZZ_START` (the case to start from, after a crash) and
/// `FUZZ_REPORT` (a file that gets one line of counts per format).
/// An input that ever crashed is kept in Fixtures/fuzz-regressions as
/// `<format>--<name>.bin` and replayed by `testKeptRegressionInputs`.
final class FuzzTests: XCTestCase {
    func testFuzzSafetensors() throws { try fuzz(.safetensors) }
    func testFuzzPNG() throws { try fuzz(.png) }
    func testFuzzJPEG() throws { try fuzz(.jpeg) }
    func testFuzzBMP() throws { try fuzz(.bmp) }
    func testFuzzIDXImages() throws { try fuzz(.idxImages) }
    func testFuzzIDXLabels() throws { try fuzz(.idxLabels) }
    func testFuzzGzipIDX() throws { try fuzz(.idxImagesGzip) }
    func testFuzzCIFAR10() throws { try fuzz(.cifar10) }
    func testFuzzCIFAR100() throws { try fuzz(.cifar100) }
    func testFuzzTorchCheckpoint() throws { try fuzz(.torch) }

    /// Every input in Fixtures/fuzz-regressions loads or gives a clean error.
    func testKeptRegressionInputs() throws {
        guard let folder = Bundle.module.url(forResource: "Fixtures/fuzz-regressions", withExtension: nil) else {
            return XCTFail("missing Fixtures/fuzz-regressions")
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".bin") }.sorted()
        XCTAssertFalse(files.isEmpty)
        for file in files {
            let formatName = String(file.prefix(while: { $0 != "-" }))
            guard let format = FuzzFormat(rawValue: formatName) else { XCTFail("\(file): unknown format \(formatName)"); continue }
            let bytes = [UInt8](try Data(contentsOf: folder.appendingPathComponent(file)))
            _ = try check(format, bytes, label: file)
        }
    }

    /// Loads the file `FUZZ_REPLAY_FILE` as `FUZZ_REPLAY_FORMAT` (a format's raw name, such as
    /// `png`) and prints the outcome: `scripts/fuzz.sh replay` runs it in a child process to
    /// triage an input or measure its peak memory. Skipped when they are not set.
    func testReplayFromEnvironment() throws {
        let environment = ProcessInfo.processInfo.environment
        guard let file = environment["FUZZ_REPLAY_FILE"], let name = environment["FUZZ_REPLAY_FORMAT"] else {
            throw XCTSkip("FUZZ_REPLAY_FILE and FUZZ_REPLAY_FORMAT are not set")
        }
        let format = try XCTUnwrap(FuzzFormat(rawValue: name), "unknown format \(name)")
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("patchwork-replay-\(getpid())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        do {
            try format.load(bytes, in: folder)
            print("replay \(file): loaded")
        } catch {
            print("replay \(file): refused: \(error)")
        }
    }

    // MARK: The runner

    /// Tries `FUZZ_ITERATIONS` mutations of `format`'s seed files and reports the outcomes.
    func fuzz(_ format: FuzzFormat) throws {
        let environment = ProcessInfo.processInfo.environment
        let iterations = environment["FUZZ_ITERATIONS"].flatMap(Int.init) ?? 300
        let seed = environment["FUZZ_SEED"].flatMap(UInt64.init) ?? 19
        let start = environment["FUZZ_START"].flatMap(Int.init) ?? 0
        let seeds = format.seedFiles()
        // The unmutated files load: what the mutations break is theirs to break.
        for (i, original) in seeds.enumerated() { XCTAssertTrue(try check(format, original, label: "\(format.rawValue) seed file \(i)")) }
        var loaded = 0, refused = 0, slowest = 0.0
        let before = peakResidentMB()
        for index in start..<max(start, iterations) {
            // One generator per case, so a case can be rerun alone from its index.
            var random = FuzzRandom(seed: seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(format.hashSeed))
            let original = seeds[random.below(seeds.count)]
            let (bytes, how) = format.mutate(original, &random)
            let label = "\(format.rawValue) seed \(seed) case \(index) (\(how))"
            if let current = environment["FUZZ_CURRENT"] {
                try Data(bytes).write(to: URL(fileURLWithPath: current))
                try Data(label.utf8).write(to: URL(fileURLWithPath: current + ".txt"))
            }
            let clock = Date()
            if try check(format, bytes, label: label) { loaded += 1 } else { refused += 1 }
            slowest = max(slowest, Date().timeIntervalSince(clock))
        }
        // ru_maxrss only rises: in a fresh process (as scripts/fuzz.sh runs it) this is the fuzzing's own peak.
        let growth = peakResidentMB() - before
        XCTAssertLessThan(growth, 1024, "\(format.rawValue): peak memory grew by \(growth) MB while fuzzing")
        let line = "fuzz \(format.rawValue): \(max(0, iterations - start)) tried (seed \(seed)), \(loaded) loaded, \(refused) clean errors; slowest \(String(format: "%.3f", slowest)) s; peak RSS \(peakResidentMB()) MB"
        print(line)
        if let report = environment["FUZZ_REPORT"] {
            let earlier = (try? String(contentsOfFile: report, encoding: .utf8)) ?? ""
            try (earlier + line + "\n").write(toFile: report, atomically: true, encoding: .utf8)
        }
    }

    /// Loads `bytes` as `format` in a fresh folder: true when it loaded; false for an
    /// error, which must name the file. Fails when a case takes over 10 s (a hang in the making).
    @discardableResult
    func check(_ format: FuzzFormat, _ bytes: [UInt8], label: String) throws -> Bool {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("patchwork-fuzz-\(getpid())").path
        try? FileManager.default.removeItem(atPath: folder)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let clock = Date()
        defer {
            let seconds = Date().timeIntervalSince(clock)
            XCTAssertLessThan(seconds, 10, "\(label): took \(seconds) s")
        }
        do {
            try format.load(bytes, in: folder)
            return true
        } catch {
            let message = "\(error)"
            XCTAssertTrue(message.contains(folder), "\(label): the error does not name the file: \(message)")
            return false
        }
    }

    func peakResidentMB() -> Int {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return usage.ru_maxrss / 1024
    }
}

/// A deterministic generator (SplitMix64) for mutations.
struct FuzzRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
    mutating func pick<T>(_ values: [T]) -> T { values[below(values.count)] }
}

/// Values that make sizes overflow, wrap or lie.
let interesting32: [UInt32] = [0, 1, 2, 0x7F, 0xFF, 0x100, 0x7FFF, 0xFFFF, 0x1_0000, 16000, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF]
let interesting64: [UInt64] = [0, 1, 0x8000_0000, 1 << 52, 1 << 62, UInt64(Int64.max), UInt64.max]
let interestingNumbers = ["0", "-1", "1", "2147483648", "4294967296", "4503599627370496", "4611686018427387904",
                          "9223372036854775807", "18446744073709551616", "1e308", "0.5", "99999999999999999999"]

enum FuzzFormat: String {
    case safetensors, png, jpeg, bmp, idxImages = "idx_images", idxLabels = "idx_labels", idxImagesGzip = "idx_images_gz"
    case cifar10, cifar100, torch

    var hashSeed: Int { ["safetensors", "png", "jpeg", "bmp", "idx_images", "idx_labels", "idx_images_gz", "cifar10", "cifar100", "torch"].firstIndex(of: rawValue)! }

    // MARK: Loading

    func load(_ bytes: [UInt8], in folder: String) throws {
        func put(_ data: [UInt8], _ name: String) throws -> String {
            let path = (folder as NSString).appendingPathComponent(name)
            try Data(data).write(to: URL(fileURLWithPath: path))
            return path
        }
        switch self {
        case .safetensors:
            let file = try Safetensors(contentsOf: try put(bytes, "weights.safetensors"))
            for name in file.names { _ = try file.tensor(name) }
        case .png, .jpeg, .bmp:
            let path = try put(bytes, "image." + rawValue)
            // (Each image is released at the end of its statement: one decoded image at a time.)
            let rgb = try ImageIO.load(path).shape, grey = try ImageIO.load(path, channels: 1).shape
            XCTAssertEqual([rgb.last, grey.last], [3, 1])
            XCTAssertEqual(rgb.dropLast(), grey.dropLast())
        case .idxImages, .idxLabels, .idxImagesGzip:
            let (images, labels) = FuzzFormat.mnistFiles()
            switch self {
            case .idxImages: _ = try put(bytes, "t10k-images-idx3-ubyte")
            case .idxImagesGzip: _ = try put(bytes, "t10k-images-idx3-ubyte.gz")
            default: _ = try put(images, "t10k-images-idx3-ubyte")
            }
            _ = try put(self == .idxLabels ? bytes : labels, "t10k-labels-idx1-ubyte")
            let mnist = try MNIST(directory: folder, split: .test)
            for i in 0..<min(mnist.count, 3) { _ = try mnist.sample(i) }
        case .cifar10, .cifar100:
            let variant: CIFAR.Variant = self == .cifar10 ? .cifar10 : .cifar100()
            _ = try put(bytes, self == .cifar10 ? "test_batch.bin" : "test.bin")
            let cifar = try CIFAR(directory: folder, variant: variant, split: .test)
            for i in 0..<min(cifar.count, 3) { _ = try cifar.sample(i) }
        case .torch:
            _ = try WeightsFile(contentsOf: try put(bytes, "weights.pth")).tensors()
        }
    }

    // MARK: Seed files

    func seedFiles() -> [[UInt8]] {
        switch self {
        case .safetensors: return FuzzFormat.safetensorsSeeds()
        case .png: return [FuzzFormat.stbPNG(width: 9, height: 7, channels: 3), FuzzFormat.stbPNG(width: 5, height: 11, channels: 4),
                           [UInt8](Data(base64Encoded: interlacedPNG13x9)!)]
        case .jpeg: return [[UInt8](Data(base64Encoded: baselineJPEG24x16)!)]
        case .bmp: return [FuzzFormat.bmp(width: 7, height: 5, bitsPerPixel: 24), FuzzFormat.bmp(width: 6, height: -4, bitsPerPixel: 32)]
        case .idxImages: return [FuzzFormat.mnistFiles().images]
        case .idxLabels: return [FuzzFormat.mnistFiles().labels]
        case .idxImagesGzip: return [gzip(FuzzFormat.mnistFiles().images)]
        case .cifar10: return [FuzzFormat.cifarRecords(labels: [[0], [3], [9]])]
        case .cifar100: return [FuzzFormat.cifarRecords(labels: [[0, 5], [19, 99]])]
        case .torch:
            // Written by torch.save (Fixtures/torch/make_fixtures.py): zip with every dtype and views, a training
            // checkpoint with placeholders, and the legacy format.
            return ["dtypes.pth", "training.pth", "legacy.pth"].map { name in
                [UInt8](try! Data(contentsOf: Bundle.module.url(forResource: "Fixtures/torch/\(name)", withExtension: nil)!))
            }
        }
    }

    /// CIFAR records: each record's label bytes, then 3072 pixel bytes.
    static func cifarRecords(labels: [[UInt8]]) -> [UInt8] {
        var bytes: [UInt8] = []
        for (r, label) in labels.enumerated() {
            bytes += label
            bytes += (0..<3072).map { (i: Int) -> UInt8 in UInt8((i * 7 + r) % 256) }
        }
        return bytes
    }

    static func safetensorsSeeds() -> [[UInt8]] {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("patchwork-fuzz-seed-\(getpid()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let g = Generator(seed: 3)
        let tensors = ["a.weight": Tensor.randomNormal([3, 4], generator: g), "a.bias": Tensor.randomNormal([4], generator: g),
                       "b": Tensor.randomNormal([2, 2, 2], generator: g), "c": Tensor([1, 2, 3], shape: [3])]
        try! Safetensors.write(tensors, dtypes: ["b": .F16, "c": .I64], metadata: ["format": "pt"], to: path)
        return [[UInt8](try! Data(contentsOf: URL(fileURLWithPath: path)))]
    }

    static func stbPNG(width: Int, height: Int, channels: Int) -> [UInt8] {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("patchwork-fuzz-seed-\(getpid()).png").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let values = (0..<(width * height * channels)).map { Float(($0 * 37) % 256) / 255 }
        try! ImageIO.savePNG(Tensor(values, shape: [height, width, channels]), to: path)
        return [UInt8](try! Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// An uncompressed BMP (a negative height stores rows top-down).
    static func bmp(width: Int, height: Int, bitsPerPixel: Int, withPixels: Bool = true) -> [UInt8] {
        let row = (width * bitsPerPixel + 31) / 32 * 4
        let size = 54 + row * abs(height)
        func le32(_ v: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        var bytes: [UInt8] = [0x42, 0x4D] + le32(size) + le32(0) + le32(54)
        bytes += le32(40) + le32(width) + le32(height) + [1, 0, UInt8(bitsPerPixel), 0] + le32(0) + le32(row * abs(height))
        bytes += le32(2835) + le32(2835) + le32(0) + le32(0)
        if withPixels { bytes += (0..<(row * abs(height))).map { UInt8(($0 * 29) % 256) } }
        return bytes
    }

    static func mnistFiles() -> (images: [UInt8], labels: [UInt8]) {
        func be(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 255), UInt8((v >> 8) & 255), UInt8(v & 255)] }
        let images = be(0x803) + be(3) + be(6) + be(5) + (0..<90).map { UInt8(($0 * 11) % 256) }
        let labels = be(0x801) + be(3) + [4, 0, 9]
        return (images, labels)
    }

    // MARK: Mutations

    /// One mutation of `bytes`, with words saying what it did.
    func mutate(_ bytes: [UInt8], _ random: inout FuzzRandom) -> ([UInt8], String) {
        // Half of the cases get the format's own mutation, which reaches past its first checks.
        if random.below(2) == 0, let specific = formatMutation(bytes, &random) { return specific }
        var out = bytes
        var how: [String] = []
        for _ in 0...random.below(2) {
            let (mutated, what) = genericMutation(out, &random)
            out = mutated
            how.append(what)
        }
        return (out, how.joined(separator: ", "))
    }

    func genericMutation(_ bytes: [UInt8], _ random: inout FuzzRandom) -> ([UInt8], String) {
        var out = bytes
        guard !out.isEmpty else { return ([0], "one zero byte") }
        switch random.below(7) {
        case 0:
            let n = random.below(out.count)
            return (Array(out.prefix(n)), "truncated to \(n) bytes")
        case 1:
            let flips = 1 + random.below(8)
            for _ in 0..<flips { let i = random.below(out.count); out[i] ^= UInt8(1 << random.below(8)) }
            return (out, "\(flips) bit flips")
        case 2:
            let i = random.below(out.count), v = random.pick([0x00, 0xFF, 0x7F, 0x80] as [UInt8])
            out[i] = v
            return (out, "byte \(i) set to \(v)")
        case 3:
            let i = random.below(out.count), v = random.pick(interesting32), bigEndian = random.below(2) == 0
            for k in 0..<4 where i + k < out.count { out[i + k] = UInt8(truncatingIfNeeded: bigEndian ? v >> (24 - 8 * k) : v >> (8 * k)) }
            return (out, "word at \(i) set to \(v) \(bigEndian ? "BE" : "LE")")
        case 4:
            let i = random.below(out.count), v = random.pick(interesting64)
            for k in 0..<8 where i + k < out.count { out[i + k] = UInt8(truncatingIfNeeded: v >> (8 * k)) }
            return (out, "64-bit word at \(i) set to \(v)")
        case 5:
            let from = random.below(out.count), n = 1 + random.below(min(64, out.count - from)), at = random.below(out.count)
            out.insert(contentsOf: Array(out[from..<(from + n)]), at: at)
            return (out, "\(n) bytes from \(from) inserted at \(at)")
        default:
            let from = random.below(out.count), n = 1 + random.below(min(64, out.count - from))
            out.removeSubrange(from..<(from + n))
            return (out, "\(n) bytes at \(from) removed")
        }
    }

    /// A mutation that knows the format: header numbers, sizes, and checksums fixed after a change.
    func formatMutation(_ bytes: [UInt8], _ random: inout FuzzRandom) -> ([UInt8], String)? {
        switch self {
        case .safetensors: return FuzzFormat.mutateSafetensorsHeader(bytes, &random)
        case .torch: return FuzzFormat.mutateTorchPickle(bytes, &random)
        case .png:
            // A generic mutation with every chunk's CRC then made right, so the change reaches the decoder.
            let (mutated, what) = genericMutation(bytes, &random)
            if random.below(2) == 0 {
                var out = mutated
                let v = random.pick(interesting32)
                let field = 16 + 4 * random.below(2)  // IHDR width or height
                for k in 0..<4 where field + k < out.count { out[field + k] = UInt8(truncatingIfNeeded: v >> (24 - 8 * k)) }
                return (FuzzFormat.fixPNGChecksums(out), "\(what), IHDR \(field == 16 ? "width" : "height") \(v), CRCs fixed")
            }
            return (FuzzFormat.fixPNGChecksums(mutated), "\(what), CRCs fixed")
        case .jpeg:
            // The frame header's height and width (after FF C0, length, precision).
            guard let sof = (0..<(bytes.count - 1)).first(where: { bytes[$0] == 0xFF && bytes[$0 + 1] == 0xC0 }) else { return nil }
            var out = bytes
            let v = UInt16(truncatingIfNeeded: random.pick(interesting32)), field = sof + 5 + 2 * random.below(2)
            out[field] = UInt8(v >> 8); out[field + 1] = UInt8(v & 0xFF)
            return (out, "JPEG frame \(field == sof + 5 ? "height" : "width") \(v)")
        case .bmp:
            var out = bytes
            let field = random.pick([2, 10, 14, 18, 22, 28, 30, 34])
            let v = random.pick(interesting32)
            for k in 0..<4 { out[field + k] = UInt8(truncatingIfNeeded: v >> (8 * k)) }
            return (out, "BMP field at \(field) set to \(v)")
        case .idxImages, .idxLabels, .idxImagesGzip:
            var out = self == .idxImagesGzip ? FuzzFormat.mnistFiles().images : bytes
            let field = 4 + 4 * random.below(self == .idxLabels ? 1 : 3)
            let v = random.pick(interesting32)
            for k in 0..<4 { out[field + k] = UInt8(truncatingIfNeeded: v >> (24 - 8 * k)) }
            if self == .idxImagesGzip {
                if random.below(2) == 0 { out += [UInt8](repeating: 0, count: 1 << 20) }  // more data than the header says
                return (gzip(out), "IDX dimension at \(field) set to \(v), gzipped")
            }
            return (out, "IDX dimension at \(field) set to \(v)")
        case .cifar10, .cifar100:
            var out = bytes
            let record = self == .cifar10 ? 3073 : 3074
            let r = random.below(out.count / record)
            out[r * record + random.below(self == .cifar10 ? 1 : 2)] = UInt8(random.below(256))
            return (out, "label of record \(r) changed")
        }
    }

    /// Changes the pickle of a zip checkpoint (data.pkl, the first entry torch writes) in one
    /// place: an opcode's byte or an argument set to a value that makes sizes, indices or
    /// lengths lie. The zip's CRCs are not checked, so the change reaches the pickle machine.
    static func mutateTorchPickle(_ bytes: [UInt8], _ random: inout FuzzRandom) -> ([UInt8], String)? {
        guard bytes.count > 30, bytes.starts(with: [0x50, 0x4B, 0x03, 0x04]) else { return nil }
        func le(_ at: Int, _ n: Int) -> Int { (0..<n).reduce(0) { $0 | Int(bytes[at + $1]) << (8 * $1) } }
        let start = 30 + le(26, 2) + le(28, 2), size = le(18, 4)
        guard size > 0, start + size <= bytes.count else { return nil }
        var out = bytes
        let at = start + random.below(size)
        switch random.below(3) {
        case 0:
            let v = random.pick([0x00, 0x28, 0x2E, 0x4B, 0x4A, 0x58, 0x68, 0x71, 0x74, 0x75, 0x85, 0x8A, 0x51, 0x52, 0x62, 0xFF] as [UInt8])
            out[at] = v
            return (out, "data.pkl byte \(at - start) set to \(v)")
        case 1:
            let v = random.pick(interesting32)
            for k in 0..<4 where at + k < start + size { out[at + k] = UInt8(truncatingIfNeeded: v >> (8 * k)) }
            return (out, "data.pkl word at \(at - start) set to \(v)")
        default:
            out[at] ^= UInt8(1 << random.below(8))
            return (out, "data.pkl bit flip at \(at - start)")
        }
    }

    /// Rewrites one number, dtype or key of the JSON header (keeping the header length right).
    static func mutateSafetensorsHeader(_ bytes: [UInt8], _ random: inout FuzzRandom) -> ([UInt8], String)? {
        let length = Int(bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        var header = String(decoding: bytes[8..<(8 + length)], as: UTF8.self)
        let data = Array(bytes[(8 + length)...])
        let what: String
        switch random.below(5) {
        case 0, 1:
            // Replace one number (a shape dimension or an offset).
            let numbers = FuzzFormat.ranges(in: header) { $0.isNumber || $0 == "-" }
            guard !numbers.isEmpty else { return nil }
            let range = random.pick(numbers), value = random.pick(interestingNumbers)
            what = "header number \(header[range]) → \(value)"
            header.replaceSubrange(range, with: value)
        case 2:
            let dtypes = FuzzFormat.ranges(in: header) { $0.isUppercase || $0.isNumber }.filter { ["F32", "F16", "I64"].contains(header[$0]) }
            guard !dtypes.isEmpty else { return nil }
            let range = random.pick(dtypes), value = random.pick(["F64", "U8", "BOOL", "X9", "", "F32\\u0000"])
            what = "dtype \(header[range]) → \(value)"
            header.replaceSubrange(range, with: value)
        case 3:
            // A second entry under an existing name.
            what = "key \"b\" repeated"
            header = "{\"b\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}," + header.dropFirst()
        default:
            let encoding: String.Encoding = random.pick([.utf16, .utf16BigEndian, .utf32LittleEndian])
            let encoded = [UInt8](header.data(using: encoding)!)
            what = "header re-encoded as \(encoding)"
            return (le64(encoded.count) + encoded + data, what)
        }
        let encoded = Array(header.utf8)
        return (le64(encoded.count) + encoded + data, what)
    }

    /// The maximal runs of characters satisfying `belongs` in `text`.
    static func ranges(in text: String, where belongs: (Character) -> Bool) -> [Range<String.Index>] {
        var result: [Range<String.Index>] = []
        var i = text.startIndex
        while i < text.endIndex {
            guard belongs(text[i]) else { i = text.index(after: i); continue }
            var j = i
            while j < text.endIndex && belongs(text[j]) { j = text.index(after: j) }
            result.append(i..<j)
            i = j
        }
        return result
    }

    static func le64(_ v: Int) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: UInt64(v) >> (8 * UInt64($0))) } }

    /// The PNG with every complete chunk's CRC recomputed.
    static func fixPNGChecksums(_ bytes: [UInt8]) -> [UInt8] {
        var out = bytes
        var offset = 8
        while offset + 12 <= out.count {
            let length = Int(out[offset]) << 24 | Int(out[offset + 1]) << 16 | Int(out[offset + 2]) << 8 | Int(out[offset + 3])
            guard offset + 12 + length <= out.count else { break }
            let crc = out.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress! + offset + 4, UInt32(4 + length))) }
            for k in 0..<4 { out[offset + 8 + length + k] = UInt8(truncatingIfNeeded: crc >> (24 - 8 * UInt32(k))) }
            offset += 12 + length
        }
        return out
    }
}

/// gzip-compressed `bytes` (zlib's deflate with a gzip wrapper).
func gzip(_ bytes: [UInt8]) -> [UInt8] {
    var stream = z_stream()
    precondition(deflateInit2_(&stream, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK)
    defer { deflateEnd(&stream) }
    var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(bytes.count))) + 64)
    var input = bytes
    let produced = input.withUnsafeMutableBufferPointer { inp in
        output.withUnsafeMutableBufferPointer { out -> Int in
            stream.next_in = inp.baseAddress; stream.avail_in = UInt32(inp.count)
            stream.next_out = out.baseAddress; stream.avail_out = UInt32(out.count)
            precondition(deflate(&stream, Z_FINISH) == Z_STREAM_END)
            return out.count - Int(stream.avail_out)
        }
    }
    return Array(output.prefix(produced))
}

/// A 24×16 baseline JPEG written by stb_image_write (quality 80).
let baselineJPEG24x16 = "/9j/4AAQSkZJRgABAQAAAQABAAD/2wCEAAYEBQYFBAYGBQYHBwYIChAKCgkJChQODwwQFxQYGBcUFhYaHSUfGhsjHBYWICwgIyYnKSopGR8tMC0oMCUoKSgBBwcHCggKEwoKEygaFhooKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKP/AABEIABAAGAMBIgACEQEDEQH/xAGiAAABBQEBAQEBAQAAAAAAAAAAAQIDBAUGBwgJCgsQAAIBAwMCBAMFBQQEAAABfQECAwAEEQUSITFBBhNRYQcicRQygZGhCCNCscEVUtHwJDNicoIJChYXGBkaJSYnKCkqNDU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6g4SFhoeIiYqSk5SVlpeYmZqio6Slpqeoqaqys7S1tre4ubrCw8TFxsfIycrS09TV1tfY2drh4uPk5ebn6Onq8fLz9PX29/j5+gEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoLEQACAQIEBAMEBwUEBAABAncAAQIDEQQFITEGEkFRB2FxEyIygQgUQpGhscEJIzNS8BVictEKFiQ04SXxFxgZGiYnKCkqNTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqCg4SFhoeIiYqSk5SVlpeYmZqio6Slpqeoqaqys7S1tre4ubrCw8TFxsfIycrS09TV1tfY2dri4+Tl5ufo6ery8/T19vf4+fr/2gAMAwEAAhEDEQA/APDbDw7nHyfpXSWHhrOPk/Su+0vw7nHyfpXXaX4azj5P0rxsJW+tHn5RxJy21POLDwvnH7v9Kv8A/CK/9M/0r1y20SOAhfLLv6Dt9at/2X/06/8Aj3/1q1rV8soTdOtUSkt7Jv8AJNfI/ScHxJN0k0z/2Q=="

/// A 13×9 RGB PNG with Adam7 interlacing (built with Python's zlib).
let interlacedPNG13x9 = "iVBORw0KGgoAAAANSUhEUgAAAA0AAAAJCAIAAAERHwGrAAABJ0lEQVR4nAXBIa7EIAAFwOfWrSGrqGtSUVdDisJVgSCpqyCpa4JoatatI5h/ADSWM8AdcByAg/wZAAhYgbaGdkNi6Ngh297bH2AHaddg925vTHg/mAs2THZ+7FbsialtTztL+wHsPbFBsvlha2BbYXtnJxDnKa4ybk/cQzxLvHv8geDF8TEYHZYEUaFA2Iez0bDFMZGYquwAsSO3i7HCWZXsUe0FEhcehYnKxSPFq8YvSBO8KdMO167UvrU5gL4IfU/0w+kg6Wjo/NDF0TVQkehWqKp07/QA9IfoYdIj17PUi9Hro4XTW9Aq6b3oo+qz6wvwI/Hz5BfuV+mF8dvjlfN78EfyZ/FX9Xf3XyAvJK9TFjxvMiuT9ycfLp8hXynfJX9r/vXs/gFeH4V1JvjXFQAAAABJRU5ErkJggg=="
