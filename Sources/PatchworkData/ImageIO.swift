import CSTB
import Foundation
import Patchwork

/// Reading and writing images (stb_image / stb_image_write from Debian's libstb).
public enum ImageIO {
    public struct Error: Swift.Error, CustomStringConvertible {
        public let path: String
        public let reason: String
        public var description: String { "\(path): \(reason)" }
    }

    /// Decodes a PNG, JPEG, BMP, GIF (first frame), TGA or PNM file into an
    /// [H, W, channels] tensor with values in [0, 1]. Grey images are
    /// replicated to 3 channels and alpha dropped when `channels` is 3.
    public static func load(_ path: String, channels: Int = 3) throws -> Tensor {
        guard (1...4).contains(channels) else { throw Error(path: path, reason: "channels must be 1...4, got \(channels)") }
        var w: Int32 = 0, h: Int32 = 0, original: Int32 = 0
        guard let pixels = stbi_load(path, &w, &h, &original, Int32(channels)) else {
            let why = stbi_failure_reason().map { String(cString: $0) } ?? "unknown error"
            let exists = FileManager.default.fileExists(atPath: path)
            throw Error(path: path, reason: exists ? "cannot decode image (\(why))" : "no such file")
        }
        defer { stbi_image_free(pixels) }
        let count = Int(w) * Int(h) * channels
        var values = [Float](repeating: 0, count: count)
        for i in 0..<count { values[i] = Float(pixels[i]) / 255 }
        return Tensor(values, shape: [Int(h), Int(w), channels])
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
