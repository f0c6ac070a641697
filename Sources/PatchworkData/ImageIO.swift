import CSTB
import Foundation
import Patchwork

/// Reading and writing images (stb_image / stb_image_write from Debian's libstb).
///
/// Reading is bounded before anything is decoded: the file must be a regular
/// file of at most `maxFileBytes`; it must be a PNG, JPEG or BMP whose
/// structure holds (PNG chunk checksums and image data size, JPEG segments up
/// to the end-of-image marker, BMP pixel data inside the file: see
/// `ImageValidation.swift`); and its width × height from the header must be
/// within the pixel limit. Only then does stb_image decode it.
public enum ImageIO {
    public struct Error: Swift.Error, CustomStringConvertible {
        public let path: String
        public let reason: String
        public var description: String { "\(path): \(reason)" }
    }

    /// The default pixel limit (width × height), Pillow's `MAX_IMAGE_PIXELS`: a
    /// larger header is refused before decoding (`--max-image-pixels` on the CLI).
    public static let defaultMaxPixels = 89_478_485

    /// The largest image file read.
    public static let maxFileBytes = 256 << 20

    /// Decodes a PNG, JPEG or BMP file into an [H, W, channels] tensor with
    /// values in [0, 1]. Grey images are replicated to 3 channels and alpha
    /// dropped when `channels` is 3. Images of more than `maxPixels` pixels are refused.
    public static func load(_ path: String, channels: Int = 3, maxPixels: Int = defaultMaxPixels) throws -> Tensor {
        guard (1...4).contains(channels) else { throw Error(path: path, reason: "channels must be 1...4, got \(channels)") }
        let bytes = try read(path)
        let (width, height) = try checkedSize(bytes, path: path, maxPixels: maxPixels)
        var w: Int32 = 0, h: Int32 = 0, original: Int32 = 0
        let decoded = bytes.withUnsafeBufferPointer { stbi_load_from_memory($0.baseAddress, Int32($0.count), &w, &h, &original, Int32(channels)) }
        guard let pixels = decoded else {
            let why = stbi_failure_reason().map { String(cString: $0) } ?? "unknown error"
            throw Error(path: path, reason: "cannot decode image (\(why))")
        }
        defer { stbi_image_free(pixels) }
        guard Int(w) == width, Int(h) == height else {
            throw Error(path: path, reason: "decoded \(w)×\(h) pixels, but the header says \(width)×\(height)")
        }
        // Straight into the tensor's storage: no intermediate [Float] of the image's size.
        let shape = [height, width, channels]
        let storage = TensorStorage(count: width * height * channels)
        for i in 0..<storage.count { storage.pointer[i] = Float(pixels[i]) / 255 }
        return Tensor(storage: storage, shape: shape, strides: Tensor.contiguousStrides(shape))
    }

    /// The width and height of the image in `path`, read from its header after
    /// the same checks as `load` (file, structure, pixel limit), without decoding it.
    public static func size(_ path: String, maxPixels: Int = defaultMaxPixels) throws -> (width: Int, height: Int) {
        try checkedSize(try read(path), path: path, maxPixels: maxPixels)
    }

    static func read(_ path: String) throws -> [UInt8] {
        do { return try BoundedFile.read(path, limit: maxFileBytes, what: "image file") } catch let error as FileReadError {
            throw Error(path: path, reason: error.reason)
        }
    }

    /// Validates the file's structure for its format, then reads its size from
    /// the header and checks it against `maxPixels`.
    static func checkedSize(_ bytes: [UInt8], path: String, maxPixels: Int) throws -> (width: Int, height: Int) {
        try validateStructure(bytes, path: path, maxPixels: maxPixels)
        var w: Int32 = 0, h: Int32 = 0, c: Int32 = 0
        guard bytes.withUnsafeBufferPointer({ stbi_info_from_memory($0.baseAddress, Int32($0.count), &w, &h, &c) }) != 0 else {
            let why = stbi_failure_reason().map { String(cString: $0) } ?? "unknown error"
            throw Error(path: path, reason: "cannot decode image: cannot read its header (\(why))")
        }
        // stb_image's info gives a top-down BMP's height as the header's negative number.
        let (width, height) = (Int(w), abs(Int(h)))
        try checkPixelCount(width: width, height: height, maxPixels: maxPixels, path: path)
        return (width, height)
    }

    /// The structural checks of `checkedSize` (PNG chunks, JPEG segments, BMP data), by the format's signature.
    static func validateStructure(_ bytes: [UInt8], path: String, maxPixels: Int) throws {
        guard maxPixels >= 1 else { throw Error(path: path, reason: "the pixel limit (--max-image-pixels) must be at least 1, got \(maxPixels)") }
        do {
            switch ImageFormat(bytes) {
            case .png: try validatePNG(bytes, maxPixels: maxPixels)
            case .jpeg: try validateJPEG(bytes)
            case .bmp: try validateBMP(bytes, maxPixels: maxPixels)
            case nil:
                let start = bytes.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " ")
                throw ImageFormatError("cannot decode image: not a PNG, JPEG or BMP file (it begins with \(start.isEmpty ? "nothing" : start))")
            }
        } catch let error as ImageFormatError {
            throw Error(path: path, reason: error.reason)
        }
    }

    /// `checkPixelCount`, its refusal naming the file.
    static func checkPixelCount(width: Int, height: Int, maxPixels: Int, path: String) throws {
        do { try PatchworkData.checkPixelCount(width: width, height: height, maxPixels: maxPixels) } catch let error as ImageFormatError {
            throw Error(path: path, reason: error.reason)
        }
    }

    /// Writes an [H, W, C] tensor (C = 1, 3 or 4; values in [0, 1], clipped)
    /// as PNG. The file is written to a temporary name and renamed, so an
    /// existing file is never left half-written.
    public static func savePNG(_ image: Tensor, to path: String) throws {
        guard image.rank == 3, [1, 3, 4].contains(image.shape[2]) else {
            throw Error(path: path, reason: "expected an [H, W, C] image with C = 1, 3 or 4, got shape \(image.shape)")
        }
        let h = image.shape[0], w = image.shape[1], c = image.shape[2]
        let bytes = image.scalars.map { UInt8((min(max($0, 0), 1) * 255).rounded()) }
        try AtomicFile.write(to: path) { temporary in
            let ok = bytes.withUnsafeBufferPointer { buffer in
                stbi_write_png(temporary, Int32(w), Int32(h), Int32(c), buffer.baseAddress, Int32(w * c))
            }
            guard ok != 0 else { throw Error(path: path, reason: "cannot write PNG (is the folder writable?)") }
        }
    }
}
