import CZlib
import Foundation

// Structural checks of PNG, JPEG and BMP files, run before stb_image sees them.
// stb_image decodes what it can: it skips PNG checksums, lets a PNG's image
// data inflate to gigabytes (its output buffer doubles on demand), fills a
// truncated JPEG or BMP with grey or zeros, and allocates whatever size a
// header claims. These checks refuse such files with the reason; the caller
// adds the path.

/// What is wrong with an image file's contents (the caller names the file).
struct ImageFormatError: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}

enum ImageFormat {
    case png, jpeg, bmp

    /// The format by the file's first bytes, or nil for anything else.
    init?(_ bytes: [UInt8]) {
        if bytes.starts(with: pngSignature) { self = .png }
        else if bytes.starts(with: [0xFF, 0xD8]) { self = .jpeg }
        else if bytes.starts(with: [UInt8(ascii: "B"), UInt8(ascii: "M")]) { self = .bmp }
        else { return nil }
    }
}

private let pngSignature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

/// The longest side stb_image decodes (its `STBI_MAX_DIMENSIONS`). With it, sizes computed
/// from a header (at most 2^48 pixels of at most 64 bits) cannot overflow, whatever the pixel limit.
let maxImageSide = 1 << 24

/// Refuses an empty image, a side longer than `maxImageSide`, or more than `maxPixels` pixels.
func checkPixelCount(width: Int, height: Int, maxPixels: Int) throws {
    guard width > 0, height > 0 else { throw ImageFormatError("the header gives an empty image (\(width)×\(height) pixels)") }
    guard width <= maxImageSide, height <= maxImageSide else {
        throw ImageFormatError("the header gives \(width)×\(height) pixels, a side longer than the \(maxImageSide) stb_image decodes")
    }
    guard width * height <= maxPixels else {
        throw ImageFormatError("the header gives \(width)×\(height) pixels, over the limit of \(maxPixels) pixels "
            + "(raise it with --max-image-pixels if the image is genuine)")
    }
}

private func bigEndian32(_ b: [UInt8], _ at: Int) -> Int {
    Int(b[at]) << 24 | Int(b[at + 1]) << 16 | Int(b[at + 2]) << 8 | Int(b[at + 3])
}

private func littleEndian16(_ b: [UInt8], _ at: Int) -> Int { Int(b[at]) | Int(b[at + 1]) << 8 }

private func littleEndian32(_ b: [UInt8], _ at: Int) -> UInt32 {
    UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
}

// MARK: PNG

/// Every chunk is inside the file with a matching CRC, IHDR comes first and is
/// valid, the size is within `maxPixels`, IEND is present, and the IDAT data
/// inflates to exactly the bytes the image needs (inflated here into a small
/// buffer, so a deflate bomb costs time bounded by that size and no memory).
func validatePNG(_ bytes: [UInt8], maxPixels: Int) throws {
    var offset = pngSignature.count
    var header: (width: Int, height: Int, bitsPerPixel: Int, interlaced: Bool)?
    var inflater: IDATInflater?
    while true {
        guard offset + 12 <= bytes.count else {
            throw ImageFormatError("truncated PNG: it ends at byte \(bytes.count) without an IEND chunk")
        }
        let length = bigEndian32(bytes, offset)
        let type = String(decoding: bytes[(offset + 4)..<(offset + 8)], as: UTF8.self)
        guard length <= Int(Int32.max), offset + 12 + length <= bytes.count else {
            throw ImageFormatError("truncated PNG: chunk \(type) at byte \(offset) declares \(length) bytes of data, "
                + "but the file has \(bytes.count - offset - 12) left")
        }
        let stored = UInt32(bigEndian32(bytes, offset + 8 + length))
        let computed = bytes.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress! + offset + 4, UInt32(4 + length))) }
        guard stored == computed else {
            throw ImageFormatError("corrupt PNG: chunk \(type) at byte \(offset) fails its CRC check "
                + "(stored \(String(stored, radix: 16)), computed \(String(computed, radix: 16)))")
        }
        let data = offset + 8
        if header == nil {
            guard type == "IHDR", length == 13 else { throw ImageFormatError("corrupt PNG: the first chunk is \(type), not a 13-byte IHDR") }
            let (width, height) = (bigEndian32(bytes, data), bigEndian32(bytes, data + 4))
            let (depth, colour, interlace) = (Int(bytes[data + 8]), Int(bytes[data + 9]), Int(bytes[data + 12]))
            let channels: [Int: (count: Int, depths: [Int])] = [0: (1, [1, 2, 4, 8, 16]), 2: (3, [8, 16]), 3: (1, [1, 2, 4, 8]),
                                                                4: (2, [8, 16]), 6: (4, [8, 16])]
            guard let kind = channels[colour], kind.depths.contains(depth), interlace <= 1 else {
                throw ImageFormatError("corrupt PNG: IHDR has colour type \(colour), bit depth \(depth) and interlace \(interlace), "
                    + "not a valid combination")
            }
            try checkPixelCount(width: width, height: height, maxPixels: maxPixels)
            header = (width, height, kind.count * depth, interlace == 1)
            inflater = try IDATInflater()
        } else if type == "IDAT" {
            let h = header!
            let expected = pngImageDataSize(width: h.width, height: h.height, bitsPerPixel: h.bitsPerPixel, interlaced: h.interlaced)
            try inflater!.feed(bytes, data..<(data + length), limit: expected)
        } else if type == "IEND" {
            let h = header!
            let expected = pngImageDataSize(width: h.width, height: h.height, bitsPerPixel: h.bitsPerPixel, interlaced: h.interlaced)
            guard inflater!.produced == expected else {
                throw ImageFormatError("truncated PNG: its image data holds \(inflater!.produced) bytes, "
                    + "but a \(h.width)×\(h.height) image needs \(expected)")
            }
            return
        }
        offset += 12 + length
    }
}

/// The bytes of a PNG's filtered image data: one filter byte per row, per
/// Adam7 pass when interlaced. Sides are at most `maxImageSide`, so this cannot overflow.
private func pngImageDataSize(width: Int, height: Int, bitsPerPixel: Int, interlaced: Bool) -> Int {
    func rows(_ w: Int, _ h: Int) -> Int { w == 0 || h == 0 ? 0 : h * (1 + (w * bitsPerPixel + 7) / 8) }
    guard interlaced else { return rows(width, height) }
    let passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    return passes.reduce(0) { total, p in
        total + rows(max(0, (width - p.0 + p.2 - 1) / p.2), max(0, (height - p.1 + p.3 - 1) / p.3))
    }
}

/// zlib inflation of a PNG's IDAT chunks into a scratch buffer, counting the output.
/// (A class: zlib keeps a pointer back to its stream, so the stream must not move.)
private final class IDATInflater {
    let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
    var produced = 0
    var finished = false
    var scratch = [UInt8](repeating: 0, count: 1 << 16)

    init() throws {
        stream.initialize(to: z_stream())
        guard inflateInit_(stream, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            stream.deallocate()
            throw ImageFormatError("cannot start zlib inflation")
        }
    }

    deinit {
        inflateEnd(stream)
        stream.deallocate()
    }

    /// Inflates `bytes[range]`, refusing output past `limit` bytes.
    func feed(_ bytes: [UInt8], _ range: Range<Int>, limit: Int) throws {
        if range.isEmpty { return }
        guard !finished else { throw ImageFormatError("corrupt PNG: image data continues after its zlib stream ended") }
        try bytes.withUnsafeBufferPointer { input in
            stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress! + range.lowerBound)
            stream.pointee.avail_in = UInt32(range.count)
            while stream.pointee.avail_in > 0 && !finished {
                let capacity = scratch.count
                let status = scratch.withUnsafeMutableBufferPointer { out -> Int32 in
                    stream.pointee.next_out = out.baseAddress
                    stream.pointee.avail_out = UInt32(capacity)
                    return inflate(stream, Z_NO_FLUSH)
                }
                produced += capacity - Int(stream.pointee.avail_out)
                guard produced <= limit else {
                    throw ImageFormatError("corrupt PNG: its image data inflates to more than the \(limit) bytes the image needs")
                }
                switch status {
                case Z_STREAM_END: finished = true
                case Z_OK: continue
                case Z_BUF_ERROR: return  // no progress possible without more input
                default:
                    let why = stream.pointee.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                    throw ImageFormatError("corrupt PNG: bad image data (\(why))")
                }
            }
        }
    }
}

// MARK: JPEG

/// Every marker segment lies inside the file and the file reaches its
/// end-of-image marker. (stb_image decodes a JPEG cut short by filling the rest
/// with grey; a file whose end is missing is refused here instead.)
func validateJPEG(_ bytes: [UInt8]) throws {
    var i = 2  // after SOI
    while true {
        // Markers may be preceded by any number of 0xFF fill bytes.
        guard i < bytes.count, bytes[i] == 0xFF else {
            if i >= bytes.count { throw ImageFormatError("truncated JPEG: it ends at byte \(bytes.count) without an end-of-image marker") }
            throw ImageFormatError("corrupt JPEG: expected a marker at byte \(i), found 0x\(String(bytes[i], radix: 16))")
        }
        while i < bytes.count && bytes[i] == 0xFF { i += 1 }
        guard i < bytes.count else { throw ImageFormatError("truncated JPEG: it ends at byte \(bytes.count) without an end-of-image marker") }
        let marker = bytes[i]
        i += 1
        switch marker {
        case 0xD9: return  // EOI; anything after it is ignored, as by every decoder
        case 0x01, 0xD0...0xD7: continue  // markers without a length
        default:
            guard i + 2 <= bytes.count else { throw ImageFormatError("truncated JPEG: marker FF\(String(format: "%02X", marker)) at byte \(i - 2) has no length") }
            let length = Int(bytes[i]) << 8 | Int(bytes[i + 1])
            guard length >= 2, i + length <= bytes.count else {
                throw ImageFormatError("truncated JPEG: segment FF\(String(format: "%02X", marker)) at byte \(i - 2) declares \(length) bytes, "
                    + "but the file has \(bytes.count - i) left")
            }
            i += length
            if marker == 0xDA {
                // Entropy-coded data follows a start-of-scan: it runs to the next marker other than
                // a stuffed zero (FF 00) or a restart marker (FF D0-D7).
                while true {
                    guard i + 1 < bytes.count else {
                        throw ImageFormatError("truncated JPEG: it ends inside the image data, without an end-of-image marker")
                    }
                    if bytes[i] == 0xFF && bytes[i + 1] != 0 && !(0xD0...0xD7).contains(bytes[i + 1]) && bytes[i + 1] != 0xFF { break }
                    i += 1
                }
            }
        }
    }
}

// MARK: BMP

/// The headers lie inside the file, the size is within `maxPixels`, and for
/// uncompressed pixel data, the file holds every row the header promises.
func validateBMP(_ bytes: [UInt8], maxPixels: Int) throws {
    guard bytes.count >= 26 else { throw ImageFormatError("truncated BMP: \(bytes.count) bytes, shorter than its headers") }
    let pixelOffset = Int(littleEndian32(bytes, 10))
    let infoSize = Int(littleEndian32(bytes, 14))
    guard [12, 40, 56, 108, 124].contains(infoSize) else {
        throw ImageFormatError("corrupt BMP: unknown info header size \(infoSize)")
    }
    guard 14 + infoSize <= bytes.count else {
        throw ImageFormatError("truncated BMP: \(bytes.count) bytes, shorter than its \(14 + infoSize) bytes of headers")
    }
    let width, height, bitsPerPixel, compression: Int
    if infoSize == 12 {  // OS/2 BITMAPCOREHEADER
        width = littleEndian16(bytes, 18)
        height = littleEndian16(bytes, 20)
        bitsPerPixel = littleEndian16(bytes, 24)
        compression = 0
    } else {
        width = Int(Int32(bitPattern: littleEndian32(bytes, 18)))
        height = abs(Int(Int32(bitPattern: littleEndian32(bytes, 22))))  // negative: rows stored top-down
        bitsPerPixel = littleEndian16(bytes, 28)
        compression = Int(littleEndian32(bytes, 30))
    }
    try checkPixelCount(width: width, height: height, maxPixels: maxPixels)
    guard pixelOffset <= bytes.count else {
        throw ImageFormatError("truncated BMP: its pixel data starts at byte \(pixelOffset), past the end of the \(bytes.count)-byte file")
    }
    // BI_RGB (0) and BI_BITFIELDS (3): rows padded to 4 bytes. Run-length data (1, 2) has no size to check.
    if compression == 0 || compression == 3 {
        guard [1, 4, 8, 16, 24, 32].contains(bitsPerPixel) else {
            throw ImageFormatError("corrupt BMP: \(bitsPerPixel) bits per pixel")
        }
        let rowBytes = (width * bitsPerPixel + 31) / 32 * 4
        let needed = pixelOffset + rowBytes * height  // sides at most 2^24: no overflow
        guard needed <= bytes.count else {
            throw ImageFormatError("truncated BMP: \(width)×\(height) pixels at \(bitsPerPixel) bits need \(needed) bytes, "
                + "but the file has \(bytes.count)")
        }
    }
}
