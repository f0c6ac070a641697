import CZlib
import Foundation
import XCTest
import Patchwork
import PatchworkData
import PatchworkNN

/// The hostile inputs of issue 19, one test each, plus the limits that stop
/// them: each must be refused with an error naming the file, without crashing,
/// hanging or allocating what its header claims.
final class HostileInputTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("patchwork-hostile-\(getpid())-\(name.hashValue)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func path(_ components: String...) -> String { components.reduce(dir) { ($0 as NSString).appendingPathComponent($1) } }

    @discardableResult
    func write(_ bytes: [UInt8], _ name: String) throws -> String {
        let p = path(name)
        try FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        return p
    }

    func assertRefused(_ expression: @autoclosure () throws -> Any, naming file: String, saying parts: [String],
                       _ line: UInt = #line) {
        XCTAssertThrowsError(try expression(), line: line) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(file), "does not name \(file): \(text)", line: line)
            for part in parts { XCTAssertTrue(text.contains(part), "does not say \"\(part)\": \(text)", line: line) }
        }
    }

    func safetensors(_ header: [UInt8], data: [UInt8] = []) -> [UInt8] { FuzzFormat.le64(header.count) + header + data }
    func safetensors(_ header: String, data: [UInt8] = []) -> [UInt8] { safetensors(Array(header.utf8), data: data) }

    // MARK: Safetensors

    /// Issue 19: shape [2^31, 2^31] with data_offsets [0, 0] wrapped to 0 bytes and crashed in `tensor`.
    func testSafetensorsShapeWhoseSizeWrapsIsRefused() throws {
        for (dtype, why) in [("F32", "passes 2^63"), ("U8", "needs 4611686018427387904 bytes, but data_offsets [0, 0] give 0")] {
            let p = try write(safetensors("{\"w\":{\"dtype\":\"\(dtype)\",\"shape\":[2147483648,2147483648],\"data_offsets\":[0,0]}}"), "wrap-\(dtype).safetensors")
            assertRefused(try Safetensors(contentsOf: p), naming: p, saying: ["\"w\"", "[2147483648, 2147483648]", why])
        }
        // A zero dimension with huge ones: 0 bytes, but the other dimensions' product must still fit.
        for shape in ["[4294967296,4294967296,0]", "[0,4294967296,4294967296]"] {
            let p = try write(safetensors("{\"w\":{\"dtype\":\"F32\",\"shape\":\(shape),\"data_offsets\":[0,0]}}"), "zero.safetensors")
            assertRefused(try Safetensors(contentsOf: p), naming: p, saying: ["passes 2^63"])
        }
        let empty = try write(safetensors("{\"w\":{\"dtype\":\"F32\",\"shape\":[0,1048576],\"data_offsets\":[0,0]}}"), "empty.safetensors")
        XCTAssertEqual(try Safetensors(contentsOf: empty).tensor("w").shape, [0, 1048576])
    }

    /// Issue 19: an F64 shape [2^52, 512] aborted in the allocator.
    func testSafetensorsHugeF64ShapeIsRefused() throws {
        let p = try write(safetensors("{\"w\":{\"dtype\":\"F64\",\"shape\":[4503599627370496,512],\"data_offsets\":[0,8]}}", data: [UInt8](repeating: 0, count: 8)), "f64.safetensors")
        assertRefused(try Safetensors(contentsOf: p), naming: p, saying: ["\"w\"", "F64", "passes 2^63"])
    }

    /// Issue 19: headers in UTF-16 and UTF-32 (and with a byte-order mark) were accepted.
    func testSafetensorsHeaderMustBeUTF8() throws {
        let header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}"
        let encodings: [(String, [UInt8])] = [
            ("utf16le", [UInt8](header.data(using: .utf16LittleEndian)!)), ("utf16be", [UInt8](header.data(using: .utf16BigEndian)!)),
            ("utf32", [UInt8](header.data(using: .utf32LittleEndian)!)), ("bom", [0xEF, 0xBB, 0xBF] + Array(header.utf8)),
            ("latin1", Array("{\"w\u{E9}\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}".data(using: .isoLatin1)!)),
        ]
        for (name, bytes) in encodings {
            let p = try write(safetensors(bytes, data: [0, 0, 128, 63]), name + ".safetensors")
            assertRefused(try Safetensors(contentsOf: p), naming: p, saying: ["not UTF-8"])
        }
        let p = try write(safetensors(header, data: [0, 0, 128, 63]), "good.safetensors")
        XCTAssertEqual(try Safetensors(contentsOf: p).tensor("w").scalars, [1])
    }

    /// Issue 19: duplicate keys were accepted (the last one won).
    func testSafetensorsDuplicateKeysAreRefused() throws {
        let entry = "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}"
        let p1 = try write(safetensors("{\"w\":\(entry),\"w\":\(entry)}", data: [0, 0, 128, 63]), "top.safetensors")
        assertRefused(try Safetensors(contentsOf: p1), naming: p1, saying: ["the key \"w\" twice"])
        // The same key spelled with an escape.
        let p2 = try write(safetensors("{\"w\":\(entry),\"\\u0077\":\(entry)}", data: [0, 0, 128, 63]), "escaped.safetensors")
        assertRefused(try Safetensors(contentsOf: p2), naming: p2, saying: ["the key \"w\" twice"])
        // Inside an entry, and inside the metadata.
        let p3 = try write(safetensors("{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,4]}}", data: [0, 0, 128, 63]), "inner.safetensors")
        assertRefused(try Safetensors(contentsOf: p3), naming: p3, saying: ["tensor \"w\"", "the key \"dtype\" twice"])
        let p4 = try write(safetensors("{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"},\"w\":\(entry)}", data: [0, 0, 128, 63]), "meta.safetensors")
        assertRefused(try Safetensors(contentsOf: p4), naming: p4, saying: ["the key \"a\" twice in __metadata__"])
        // Equal keys in different objects, and strings that look like keys, are fine.
        let p5 = try write(safetensors("{\"__metadata__\":{\"dtype\":\"a,\\\"b\\\":\"},\"w\":\(entry),\"v\":\(entry.replacingOccurrences(of: "[0,4]", with: "[4,8]"))}",
                                       data: [0, 0, 128, 63, 0, 0, 0, 64]), "fine.safetensors")
        XCTAssertEqual(try Safetensors(contentsOf: p5).tensor("v").scalars, [2])
    }

    func testSafetensorsHeaderLengthIsBounded() throws {
        var bytes = safetensors("{}")
        bytes.replaceSubrange(0..<8, with: FuzzFormat.le64(1 << 40))
        let p = try write(bytes, "long.safetensors")
        assertRefused(try Safetensors(contentsOf: p), naming: p, saying: ["header length 1099511627776", "over the limit of 100000000 bytes"])
    }

    // MARK: Regular files only

    /// Issue 19: a FIFO named x.png blocked forever. FIFOs, folders and devices are refused by every reader.
    func testOnlyRegularFilesAreRead() throws {
        let fifo = path("x.png")
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        assertRefused(try ImageIO.load(fifo), naming: fifo, saying: ["is a FIFO (named pipe)"])
        let fifoWeights = path("w.safetensors")
        XCTAssertEqual(mkfifo(fifoWeights, 0o600), 0)
        assertRefused(try Safetensors(contentsOf: fifoWeights), naming: fifoWeights, saying: ["FIFO"])
        let folder = path("y.png")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        assertRefused(try ImageIO.load(folder), naming: folder, saying: ["is a folder"])
        assertRefused(try Safetensors(contentsOf: "/dev/zero"), naming: "/dev/zero", saying: ["is a device"])
        assertRefused(try BoundedFile.read("/dev/zero", limit: 10, what: "file"), naming: "/dev/zero", saying: ["is a device"])
        // A CIFAR batch that is a FIFO.
        let cifar = path("cifar")
        try FileManager.default.createDirectory(atPath: cifar, withIntermediateDirectories: true)
        XCTAssertEqual(mkfifo(path("cifar", "test_batch.bin"), 0o600), 0)
        assertRefused(try CIFAR(directory: cifar, split: .test), naming: path("cifar", "test_batch.bin"), saying: ["FIFO"])
    }

    func testBoundedFileReadRefusesFilesOverTheLimit() throws {
        let p = try write([UInt8](repeating: 7, count: 100), "a.bin")
        XCTAssertEqual(try BoundedFile.read(p, limit: 100, what: "test file"), [UInt8](repeating: 7, count: 100))
        assertRefused(try BoundedFile.read(p, limit: 99, what: "test file"), naming: p, saying: ["test file of 100 bytes is over the limit of 99 bytes"])
        assertRefused(try BoundedFile.read(path("absent"), limit: 99, what: "test file"), naming: path("absent"), saying: ["no such file"])
    }

    // MARK: MNIST and gzip

    /// Issue 19: an IDX header claiming 2^31 × 2^31 pixels per image wrapped and crashed in `MNIST.sample`.
    func testMNISTHeaderWhoseSizeOverflowsIsRefused() throws {
        let labels = FuzzFormat.mnistFiles().labels
        for dims: [UInt32] in [[1, 1 << 31, 1 << 31], [1 << 31, 1 << 31, 1 << 31], [0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF], [0, 1 << 31, 1 << 31], [0, 0xFFFF_FFFF, 0xFFFF_FFFF]] {
            try write(FuzzFormat.idx(0x803, dims), "m/t10k-images-idx3-ubyte")
            try write(labels, "m/t10k-labels-idx1-ubyte")
            assertRefused(try MNIST(directory: path("m"), split: .test), naming: path("m", "t10k-images-idx3-ubyte"), saying: ["limit"])
        }
    }

    /// Issue 19: a 1 MB gzip expanded to 1 GiB in memory before it was refused. Now it
    /// is expanded no further than the size its IDX header promises.
    func testMNISTGzipBombStopsAtTheHeaderSize() throws {
        let header = FuzzFormat.idx(0x803, [1, 28, 28])
        try write(gzip(header + [UInt8](repeating: 0, count: 64 << 20)), "m/t10k-images-idx3-ubyte.gz")
        try write(FuzzFormat.idx(0x801, [1]) + [3], "m/t10k-labels-idx1-ubyte")
        let clock = Date()
        assertRefused(try MNIST(directory: path("m"), split: .test), naming: path("m", "t10k-images-idx3-ubyte.gz"),
                      saying: ["expands to more than the limit of \(16 + 784) bytes"])
        XCTAssertLessThan(Date().timeIntervalSince(clock), 2, "the bomb was expanded")
    }

    func testGzipDecompressionStopsAtItsLimit() throws {
        let compressed = gzip([UInt8](repeating: 1, count: 1 << 20))
        XCTAssertEqual(try Gzip.decompress(compressed, path: "x.gz", limit: 1 << 20).count, 1 << 20)
        assertRefused(try Gzip.decompress(compressed, path: "x.gz", limit: (1 << 20) - 1), naming: "x.gz",
                      saying: ["expands to more than the limit of 1048575 bytes"])
        XCTAssertEqual(try Gzip.decompressedPrefix(compressed, path: "x.gz", count: 10), [UInt8](repeating: 1, count: 10))
    }

    // MARK: Images

    func png(width: Int, height: Int, idat: [UInt8]? = nil, ihdrCRC: UInt32? = nil) -> [UInt8] {
        func chunk(_ type: String, _ data: [UInt8], crc: UInt32? = nil) -> [UInt8] {
            let body = Array(type.utf8) + data
            let sum = crc ?? body.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, UInt32($0.count))) }
            return FuzzFormat.be32(UInt32(data.count)) + body + FuzzFormat.be32(sum)
        }
        let raw = (0..<height).flatMap { _ in [0] + [UInt8](repeating: 200, count: 3 * width) }
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
            + chunk("IHDR", FuzzFormat.be32(UInt32(width)) + FuzzFormat.be32(UInt32(height)) + [8, 2, 0, 0, 0], crc: ihdrCRC)
            + chunk("IDAT", idat ?? zlibCompress(raw)) + chunk("IEND", [])
    }

    /// Issue 19: a 54-byte BMP whose header claims 16000×16000 pixels was decoded into 6.8 GB.
    func testBMPClaiming16000x16000IsRefusedBeforeDecoding() throws {
        let p = try write(FuzzFormat.bmp(width: 16000, height: 16000, bitsPerPixel: 24, withPixels: false), "big.bmp")
        assertRefused(try ImageIO.load(p), naming: p, saying: ["16000×16000 pixels, over the limit of 89478485 pixels"])
        // With a limit that lets the size through, the missing pixel data is what stops it.
        assertRefused(try ImageIO.load(p, maxPixels: 300_000_000), naming: p, saying: ["truncated BMP"])
    }

    /// Issue 19: a 1.5 KB JPEG whose header claims 16000×16000 pixels was decoded into 6.8 GB.
    func testJPEGClaiming16000x16000IsRefusedBeforeDecoding() throws {
        var bytes = [UInt8](Data(base64Encoded: baselineJPEG24x16)!)
        let sof = (0..<(bytes.count - 1)).first { bytes[$0] == 0xFF && bytes[$0 + 1] == 0xC0 }!
        bytes.replaceSubrange((sof + 5)..<(sof + 9), with: [0x3E, 0x80, 0x3E, 0x80])
        let p = try write(bytes, "big.jpg")
        assertRefused(try ImageIO.load(p), naming: p, saying: ["16000×16000 pixels, over the limit of 89478485 pixels"])
        assertRefused(try ImageIO.size(p), naming: p, saying: ["over the limit"])
    }

    /// Issue 19: truncated BMPs were accepted (stb_image filled the missing rows).
    func testTruncatedBMPIsRefused() throws {
        let bmp = FuzzFormat.bmp(width: 7, height: 5, bitsPerPixel: 24)
        XCTAssertEqual(try ImageIO.load(try write(bmp, "ok.bmp")).shape, [5, 7, 3])
        // Rows stored top-down (a negative height) are fine.
        XCTAssertEqual(try ImageIO.load(try write(FuzzFormat.bmp(width: 6, height: -4, bitsPerPixel: 32), "top-down.bmp")).shape, [4, 6, 3])
        let p = try write(Array(bmp.dropLast(3)), "cut.bmp")
        assertRefused(try ImageIO.load(p), naming: p, saying: ["truncated BMP", "need 174 bytes", "has 171"])
    }

    /// Issue 19: a PNG with a bad IHDR checksum was accepted.
    func testPNGWithBadChecksumIsRefused() throws {
        XCTAssertEqual(try ImageIO.load(try write(png(width: 3, height: 2), "ok.png")).shape, [2, 3, 3])
        let p = try write(png(width: 3, height: 2, ihdrCRC: 0x1234_5678), "crc.png")
        assertRefused(try ImageIO.load(p), naming: p, saying: ["chunk IHDR at byte 8 fails its CRC check"])
    }

    func testTruncatedPNGIsRefused() throws {
        let bytes = png(width: 3, height: 2)
        for cut in [bytes.count - 12, bytes.count - 20, 30] {
            let p = try write(Array(bytes.prefix(cut)), "cut-\(cut).png")
            assertRefused(try ImageIO.load(p), naming: p, saying: ["truncated PNG"])
        }
    }

    /// A 1×1 PNG whose image data inflates to 64 MB: stb_image would grow its buffer to hold it all.
    func testPNGWhoseDataInflatesPastTheImageIsRefused() throws {
        let p = try write(png(width: 1, height: 1, idat: zlibCompress([UInt8](repeating: 0, count: 64 << 20))), "bomb.png")
        let clock = Date()
        assertRefused(try ImageIO.load(p), naming: p, saying: ["inflates to more than the 4 bytes the image needs"])
        XCTAssertLessThan(Date().timeIntervalSince(clock), 2)
        let short = try write(png(width: 4, height: 4, idat: zlibCompress([0, 1, 2])), "short.png")
        assertRefused(try ImageIO.load(short), naming: short, saying: ["holds 3 bytes", "needs 52"])
    }

    func testInterlacedPNGLoadsExactly() throws {
        let image = try ImageIO.load(try write([UInt8](Data(base64Encoded: interlacedPNG13x9)!), "adam7.png"))
        XCTAssertEqual(image.shape, [9, 13, 3])
        // The file's pixel (x, y) is ((19x) mod 256, (27y) mod 256, (7(x + y)) mod 256).
        for (x, y) in [(0, 0), (12, 8), (5, 3), (7, 1)] {
            let expected = [(x * 19) & 255, (y * 27) & 255, ((x + y) * 7) & 255].map { Float($0) / 255 }
            XCTAssertEqual(Array(image.scalars[((y * 13 + x) * 3)..<((y * 13 + x) * 3 + 3)]), expected)
        }
    }

    /// A JPEG cut short is refused (stb_image would fill the rest with grey).
    func testTruncatedJPEGIsRefused() throws {
        let bytes = [UInt8](Data(base64Encoded: baselineJPEG24x16)!)
        XCTAssertEqual(try ImageIO.load(try write(bytes, "ok.jpg")).shape, [16, 24, 3])
        for cut in [bytes.count - 2, bytes.count - 40, 300, 100] {
            let p = try write(Array(bytes.prefix(cut)), "cut-\(cut).jpg")
            assertRefused(try ImageIO.load(p), naming: p, saying: ["truncated JPEG"])
        }
    }

    func testMaxImagePixelsIsTheLimit() throws {
        let p = try write(png(width: 9, height: 7), "a.png")
        assertRefused(try ImageIO.load(p, maxPixels: 62), naming: p, saying: ["9×7 pixels, over the limit of 62 pixels", "--max-image-pixels"])
        XCTAssertEqual(try ImageIO.load(p, maxPixels: 63).shape, [7, 9, 3])
        assertRefused(try ImageIO.load(p, maxPixels: 0), naming: p, saying: ["must be at least 1, got 0"])
        // Folder datasets pass their limit on, for the first image's size and for every sample.
        try write(png(width: 9, height: 7), "folder/train/cat/a.png")
        try write(png(width: 9, height: 7), "folder/test/cat/a.png")
        assertRefused(try DatasetSpec.open("folder:" + path("folder"), split: .train, maxImagePixels: 62),
                      naming: path("folder/train/cat/a.png"), saying: ["over the limit of 62"])
        let sized = try DatasetSpec.open("folder:" + path("folder"), split: .train, imageSize: 4, maxImagePixels: 62)
        assertRefused(try sized.sample(0), naming: path("folder/train/cat/a.png"), saying: ["over the limit of 62"])
        XCTAssertEqual(try DatasetSpec.open("folder:" + path("folder"), split: .test, maxImagePixels: 63).imageShape, [7, 9, 3])
    }

    func testFormatsOtherThanPNGJPEGAndBMPAreRefused() throws {
        let p = try write(Array("GIF89a".utf8) + [1, 0, 1, 0, 0, 0, 0, 0x3B], "a.gif")
        assertRefused(try ImageIO.load(p), naming: p, saying: ["not a PNG, JPEG or BMP file", "47 49 46"])
    }
}

func zlibCompress(_ bytes: [UInt8]) -> [UInt8] {
    var size = compressBound(UInt(bytes.count))
    var out = [UInt8](repeating: 0, count: Int(size))
    precondition(compress(&out, &size, bytes, UInt(bytes.count)) == Z_OK)
    return Array(out.prefix(Int(size)))
}

extension FuzzFormat {
    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 255), UInt8((v >> 8) & 255), UInt8(v & 255)] }
    static func idx(_ magic: UInt32, _ dims: [UInt32]) -> [UInt8] { be32(magic) + dims.flatMap(be32) }
}
