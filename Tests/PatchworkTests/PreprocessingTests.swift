import Foundation
import XCTest
import Patchwork
import PatchworkData
import PatchworkNN
import PatchworkTrain

/// The evaluation transform against the real PIL / torchvision / timm pipeline
/// (Fixtures/preprocess/make_fixtures.py writes the references), PIL's resampler on
/// synthetic images, and the 8-bit decoder on hostile JPEGs.
final class PreprocessingTests: XCTestCase {
    private func fixtures() throws -> URL {
        try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/preprocess", withExtension: nil))
    }

    private func cases(_ file: String) throws -> [[String: Any]] {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: fixtures().appendingPathComponent(file))) as! [String: Any]
        return json["cases"] as! [[String: Any]]
    }

    /// The U8 tensor `name` as a DecodedImage ([H, W, C]; C = 1 or 3).
    private func image(_ weights: Safetensors, _ name: String) throws -> DecodedImage {
        let entry = try XCTUnwrap(weights.entries[name], name)
        XCTAssertEqual(entry.dtype, .U8, name)
        let values = try weights.integers(name).map { UInt8($0) }
        return DecodedImage(width: entry.shape[1], height: entry.shape[0], mode: entry.shape[2] == 1 ? .L : .RGB, pixels: values)
    }

    private func preprocessing(_ c: [String: Any]) throws -> ImagePreprocessing {
        let size = c["input_size"] as! [Int]
        return ImagePreprocessing(
            inputHeight: size[0], inputWidth: size[1],
            interpolation: try XCTUnwrap(ResampleFilter(rawValue: c["interpolation"] as! String)),
            mean: c["mean"] as! [Double], std: c["std"] as! [Double], cropPct: c["crop_pct"] as! Double,
            cropMode: try XCTUnwrap(ImagePreprocessing.CropMode(rawValue: c["crop_mode"] as! String)))
    }

    /// Every (photograph, configuration) case: the 8-bit crop equals PIL's pixel for pixel,
    /// and the normalised tensor equals torchvision's (bit for bit: the same Float operations).
    func testEvalTransformMatchesTimmOnPhotographs() throws {
        let folder = try fixtures()
        let reference = try Safetensors(contentsOf: folder.appendingPathComponent("eval.safetensors").path)
        let all = try cases("cases.json")
        XCTAssertEqual(all.count, 83)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("cases.json"))) as! [String: Any]
        let digests = json["decoded_rgb_sha256"] as! [String: String]
        XCTAssertEqual(digests.count, 8)
        var decoded: [String: DecodedImage] = [:]
        var tensorsChecked = 0
        var modes = Set<DecodedImage.Mode>()
        for c in all {
            let name = c["name"] as! String, file = c["image"] as! String
            if decoded[file] == nil {
                decoded[file] = try ImageIO.decode(folder.appendingPathComponent("images/\(file)").path)
                // The whole decoded image equals PIL's Image.open(p).convert("RGB"), byte for byte.
                XCTAssertEqual(SHA256.hex(Data(decoded[file]!.convertedToRGB().pixels)), digests[file], "\(file): decoded pixels differ from PIL's")
            }
            let source = decoded[file]!
            modes.insert(source.mode)
            let p = try preprocessing(c)
            let crop = try p.crop(source)
            let expected = try image(reference, name + ".crop")
            XCTAssertEqual(crop.width, expected.width, name)
            XCTAssertEqual(crop.height, expected.height, name)
            let differing = zip(crop.pixels, expected.pixels).filter { $0 != $1 }.count
            XCTAssertEqual(differing, 0, "\(name): \(differing) of \(expected.pixels.count) values differ from PIL's crop")
            if c["tensor"] as! Bool {
                let want = try reference.tensor(name + ".tensor")
                let got = p.normalized(crop)
                XCTAssertEqual(got.shape, want.shape, name)
                let maxError = zip(got.scalars, want.scalars).map { abs($0 - $1) }.max() ?? .infinity
                XCTAssertEqual(maxError, 0, "\(name): normalised values differ from torchvision's by up to \(maxError)")
                XCTAssertEqual(try p.tensor(source).scalars, got.scalars, name)
                tensorsChecked += 1
            }
        }
        XCTAssertGreaterThanOrEqual(tensorsChecked, 10)
        // Grey, RGBA, RGB (PNG and JPEG) and palette (stb expands it to RGB) sources were all covered.
        XCTAssertEqual(modes, [.L, .RGB, .RGBA])
    }

    /// PIL's Image.resize with each filter on small random L and RGB images: up- and
    /// down-scaling, odd sizes, one axis at a time, down to one pixel.
    func testResampleMatchesPILOnSyntheticImages() throws {
        let folder = try fixtures()
        let reference = try Safetensors(contentsOf: folder.appendingPathComponent("resample.safetensors").path)
        let all = try cases("resample.json")
        XCTAssertEqual(all.count, 144)
        var filters = Set<ResampleFilter>()
        for c in all {
            let name = c["name"] as! String
            let filter = try XCTUnwrap(ResampleFilter(rawValue: c["filter"] as! String))
            filters.insert(filter)
            let source = try image(reference, c["source"] as! String)
            XCTAssertEqual(source.mode.rawValue, c["mode"] as! String)
            let got = source.resized(width: c["width"] as! Int, height: c["height"] as! Int, filter: filter)
            let want = try image(reference, name)
            XCTAssertEqual(got, want, name)
        }
        XCTAssertEqual(filters, Set(ResampleFilter.allCases))
    }

    func testSizesFollowTorchvisionAndTimm() throws {
        var p = ImagePreprocessing.imageNetDefault
        XCTAssertEqual(p.scaleSize.height, 256)
        let tall = try p.resizedSize(height: 451, width: 300)
        XCTAssertEqual([tall.height, tall.width], [384, 256])  // ⌊256·451/300⌋ = 384
        p.cropMode = .squash
        let squashed = try p.resizedSize(height: 451, width: 300)
        XCTAssertEqual([squashed.height, squashed.width], [256, 256])
        p.cropMode = .border
        p.cropPct = 1
        let bordered = try p.resizedSize(height: 451, width: 300)
        XCTAssertEqual([bordered.height, bordered.width], [224, 149])  // round(300 / (451/224)) = round(149.0)
        // The crop is padded with round(255·mean) in border mode.
        let crop = try p.crop(DecodedImage(width: 300, height: 451, mode: .RGB, pixels: [UInt8](repeating: 7, count: 300 * 451 * 3)))
        XCTAssertEqual(Array(crop.pixels[0..<3]), [124, 116, 104])
        XCTAssertEqual(Array(crop.pixels[(112 * 224 + 112) * 3..<(112 * 224 + 112) * 3 + 3]), [7, 7, 7])
    }

    func testBadConfigurationsAreRefusedNamingTheField() throws {
        let grey = DecodedImage(width: 4, height: 4, mode: .L, pixels: [UInt8](repeating: 0, count: 16))
        var p = ImagePreprocessing.imageNetDefault
        p.std = [0.2, 0, 0.2]
        XCTAssertThrowsError(try p.crop(grey)) { XCTAssertTrue("\($0)".contains("std"), "\($0)") }
        p = .imageNetDefault
        p.mean = [0.5]
        XCTAssertThrowsError(try p.crop(grey)) { XCTAssertTrue("\($0)".contains("mean"), "\($0)") }
        p = .imageNetDefault
        p.cropPct = 0
        XCTAssertThrowsError(try p.crop(grey)) { XCTAssertTrue("\($0)".contains("cropPct"), "\($0)") }
        p.cropPct = .nan
        XCTAssertThrowsError(try p.validate()) { XCTAssertTrue("\($0)".contains("cropPct"), "\($0)") }
        p = .imageNetDefault
        p.inputWidth = 0
        XCTAssertThrowsError(try p.validate()) { XCTAssertTrue("\($0)".contains("inputWidth"), "\($0)") }
        // An aspect ratio no resize can keep.
        p = .imageNetDefault
        p.cropMode = .border
        let line = DecodedImage(width: 2000, height: 1, mode: .L, pixels: [UInt8](repeating: 0, count: 2000))
        XCTAssertThrowsError(try p.crop(line)) { XCTAssertTrue("\($0)".contains("aspect ratio"), "\($0)") }
    }

    func testCodableRoundTrip() throws {
        var p = ImagePreprocessing.imageNetDefault
        p.cropMode = .squash
        p.interpolation = .lanczos
        let data = try JSONEncoder().encode(p)
        XCTAssertEqual(try JSONDecoder().decode(ImagePreprocessing.self, from: data), p)
        let text = String(decoding: data, as: UTF8.self)
        XCTAssertTrue(text.contains("\"squash\"") && text.contains("\"lanczos\""), text)
    }

    // MARK: Decoding

    private func temporaryFile(_ bytes: [UInt8], _ name: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("patchwork-prep-\(getpid())-\(name)").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    private func rocket() throws -> [UInt8] {
        [UInt8](try Data(contentsOf: fixtures().appendingPathComponent("images/rocket.jpg")))
    }

    /// The offset of the first byte of entropy-coded data (after the first SOS segment).
    private func scanStart(_ jpeg: [UInt8]) -> Int {
        var i = 2
        while jpeg[i + 1] != 0xDA { i += 2 + (Int(jpeg[i + 2]) << 8 | Int(jpeg[i + 3])) }
        return i + 2 + (Int(jpeg[i + 2]) << 8 | Int(jpeg[i + 3]))
    }

    func testDecodeGivesTheFilesLayout() throws {
        let folder = try fixtures()
        let expected: [(String, DecodedImage.Mode, Int, Int)] = [
            ("coins.png", .L, 384, 303), ("horse.png", .RGBA, 400, 328), ("chelsea_palette.png", .RGB, 225, 150),
            ("rocket.jpg", .RGB, 640, 427), ("camera_grey.jpg", .L, 256, 200)]
        for (file, mode, width, height) in expected {
            let image = try ImageIO.decode(folder.appendingPathComponent("images/\(file)").path)
            XCTAssertEqual(image.mode, mode, file)
            XCTAssertEqual([image.width, image.height], [width, height], file)
        }
        let rgba = DecodedImage(width: 2, height: 1, mode: .RGBA, pixels: [10, 20, 30, 0, 40, 50, 60, 255])
        XCTAssertEqual(rgba.convertedToRGB().pixels, [10, 20, 30, 40, 50, 60])  // alpha dropped, not composited
        let la = DecodedImage(width: 2, height: 1, mode: .LA, pixels: [9, 0, 200, 128])
        XCTAssertEqual(la.convertedToRGB().pixels, [9, 9, 9, 200, 200, 200])
    }

    /// Damaged JPEGs that get past the structural checks reach libjpeg, whose errors and
    /// corrupt-data warnings must come back as ImageIO.Error naming the file (never exit()).
    func testHostileJPEGsThrowClearErrors() throws {
        let good = try rocket()
        let start = scanStart(good)
        var hostile: [(name: String, bytes: [UInt8], expected: String)] = []

        // Cut inside the entropy-coded data, with an end-of-image marker appended so the
        // structural check passes and libjpeg meets the end early.
        hostile.append(("cut-with-eoi", Array(good[..<(start + 2000)]) + [0xFF, 0xD9], "libjpeg"))
        // Cut without an end marker: refused by the structural check.
        hostile.append(("truncated", Array(good[..<(start + 2000)]), "truncated JPEG"))
        // Huffman data overwritten with a pattern no table decodes.
        var huffman = good
        for i in (start + 100)..<(start + 600) { huffman[i] = 0xFE }
        hostile.append(("bad-huffman", huffman, "libjpeg"))
        // A zero width in the frame header (SOF0 at its standard place in this file).
        var zeroWidth = good
        let sof = try XCTUnwrap((2..<good.count - 1).first { good[$0] == 0xFF && good[$0 + 1] == 0xC0 })
        zeroWidth[sof + 7] = 0; zeroWidth[sof + 8] = 0
        hostile.append(("zero-width", zeroWidth, "Empty JPEG image"))
        // An unknown quantisation table selected by a component.
        var badTable = good
        badTable[sof + 12] = 3  // component 1's table: 3 was never defined
        hostile.append(("undefined-quant-table", badTable, "libjpeg"))
        // A 12-bit precision frame header.
        var twelveBit = good
        twelveBit[sof + 4] = 12
        hostile.append(("12-bit", twelveBit, "Unsupported JPEG data precision 12"))
        // Just the start-of-image marker, then the end.
        hostile.append(("no-image", [0xFF, 0xD8, 0xFF, 0xD9], "contains no image"))
        // Four components (CMYK, encoded by PIL).
        let cmyk = [UInt8](try Data(contentsOf: fixtures().appendingPathComponent("images/cmyk.jpg")))
        hostile.append(("cmyk", cmyk, "CMYK"))
        // Not JPEG after the signature.
        hostile.append(("garbage", [0xFF, 0xD8] + [UInt8](repeating: 0x41, count: 64), "corrupt JPEG"))

        var refused = 0
        for h in hostile {
            let path = try temporaryFile(h.bytes, h.name + ".jpg")
            XCTAssertThrowsError(try ImageIO.decode(path), h.name) { error in
                XCTAssertTrue(error is ImageIO.Error, "\(h.name): \(type(of: error))")
                XCTAssertTrue("\(error)".contains(path) && "\(error)".contains(h.expected), "\(h.name): \(error)")
                print("hostile JPEG \(h.name): \(error)")
                refused += 1
            }
        }
        XCTAssertEqual(refused, hostile.count)
        // Over the pixel limit: refused from the header, before decoding.
        XCTAssertThrowsError(try ImageIO.decode(try temporaryFile(good, "limit.jpg"), maxPixels: 1000)) { error in
            XCTAssertTrue("\(error)".contains("640×427") && "\(error)".contains("limit of 1000 pixels"), "\(error)")
        }
        // The undamaged file decodes.
        XCTAssertEqual(try ImageIO.decode(try temporaryFile(good, "good.jpg")).width, 640)
    }

    /// Seeded random damage to two JPEGs (baseline grey, progressive colour): 1-8 bytes
    /// overwritten or the file cut and closed with an end marker. Each must decode to the
    /// original size or throw ImageIO.Error naming the file; never crash.
    func testRandomlyDamagedJPEGsDecodeOrThrow() throws {
        var state: UInt64 = 15
        func next() -> Int {  // SplitMix64
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Int(truncatingIfNeeded: (z ^ (z >> 31)) >> 1)
        }
        var decoded = 0, refused = 0
        for file in ["camera_grey.jpg", "chelsea_progressive.jpg"] {
            let good = [UInt8](try Data(contentsOf: fixtures().appendingPathComponent("images/\(file)")))
            let original = try ImageIO.decode(fixtures().appendingPathComponent("images/\(file)").path)
            let start = scanStart(good)
            for trial in 0..<150 {
                var bytes = good
                if trial % 5 == 4 {
                    bytes = Array(bytes[..<(start + next() % (bytes.count - start - 2))]) + [0xFF, 0xD9]
                } else {
                    for _ in 0...(next() % 8) { bytes[2 + next() % (bytes.count - 4)] = UInt8(next() % 256) }
                }
                let path = try temporaryFile(bytes, "damaged-\(trial)-\(file)")
                do {
                    let image = try ImageIO.decode(path)
                    XCTAssertEqual([image.width, image.height], [original.width, original.height], "\(file) trial \(trial)")
                    decoded += 1
                } catch let error as ImageIO.Error {
                    XCTAssertTrue("\(error)".contains(path), "\(error)")
                    refused += 1
                }
            }
        }
        print("damaged JPEGs: \(decoded) decoded, \(refused) refused with ImageIO.Error")
        XCTAssertEqual(decoded + refused, 300)
        XCTAssertGreaterThan(refused, 100)
    }

    func testSixteenBitPNGIsRefused() throws {
        // A 1×1 16-bit grey PNG: signature, IHDR (depth 16, colour 0), IDAT, IEND.
        func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
            let body = Array(type.utf8) + data
            var crc: UInt32 = 0xFFFF_FFFF
            for b in body {
                crc ^= UInt32(b)
                for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
            }
            crc ^= 0xFFFF_FFFF
            let length = UInt32(data.count)
            return [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: length >> $0) } + body + [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: crc >> $0) }
        }
        // zlib stream of the row [filter 0, 0x12, 0x34]: stored block.
        let raw: [UInt8] = [0, 0x12, 0x34]
        var adlerA: UInt32 = 1, adlerB: UInt32 = 0
        for b in raw { adlerA = (adlerA + UInt32(b)) % 65521; adlerB = (adlerB + adlerA) % 65521 }
        let adler = adlerB << 16 | adlerA
        let zlib: [UInt8] = [0x78, 0x01, 0x01, 3, 0, 0xFC, 0xFF] + raw + [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: adler >> $0) }
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
            + chunk("IHDR", [0, 0, 0, 1, 0, 0, 0, 1, 16, 0, 0, 0, 0]) + chunk("IDAT", zlib) + chunk("IEND", [])
        let path = try temporaryFile(png, "sixteen.png")
        XCTAssertEqual(try ImageIO.size(path).width, 1)  // structurally valid
        XCTAssertThrowsError(try ImageIO.decode(path)) { error in
            XCTAssertTrue("\(error)".contains(path) && "\(error)".contains("16-bit"), "\(error)")
        }
    }
}
