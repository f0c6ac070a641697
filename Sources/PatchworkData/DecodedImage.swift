import CPatchworkJPEG
import CSTB
import Foundation
import Patchwork

/// An image of 8-bit pixels as a file holds them: rows top to bottom, channels
/// interleaved. The evaluation preprocessing (`ImagePreprocessing`) works on
/// these, as PIL does, rather than on `ImageIO.load`'s floats.
public struct DecodedImage: Sendable, Equatable {
    /// PIL's names for the layouts a decoder gives.
    public enum Mode: String, Sendable, Codable, CaseIterable {
        case L, LA, RGB, RGBA

        public var channels: Int {
            switch self {
            case .L: return 1
            case .LA: return 2
            case .RGB: return 3
            case .RGBA: return 4
            }
        }

        init?(channels: Int) {
            guard let mode = Mode.allCases.first(where: { $0.channels == channels }) else { return nil }
            self = mode
        }
    }

    public let width: Int
    public let height: Int
    public let mode: Mode
    /// height × width × mode.channels values.
    public let pixels: [UInt8]

    public var channels: Int { mode.channels }

    /// Stops with a message when `pixels` does not hold width × height × channels values.
    public init(width: Int, height: Int, mode: Mode, pixels: [UInt8]) {
        require(width > 0 && height > 0, "DecodedImage", "size \(width)×\(height) must be positive")
        require(pixels.count == width * height * mode.channels, "DecodedImage",
                "\(pixels.count) values for a \(width)×\(height) \(mode.rawValue) image, which needs \(width * height * mode.channels)")
        self.width = width
        self.height = height
        self.mode = mode
        self.pixels = pixels
    }

    /// As PIL's `convert("RGB")`: grey replicated to three channels, alpha dropped
    /// (not composited onto a background: PIL does not either).
    public func convertedToRGB() -> DecodedImage {
        if mode == .RGB { return self }
        let n = width * height, c = channels
        var out = [UInt8](repeating: 0, count: n * 3)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for i in 0..<n {
                    if mode == .L || mode == .LA {
                        let v = src[i * c]
                        dst[i * 3] = v; dst[i * 3 + 1] = v; dst[i * 3 + 2] = v
                    } else {
                        dst[i * 3] = src[i * c]; dst[i * 3 + 1] = src[i * c + 1]; dst[i * 3 + 2] = src[i * c + 2]
                    }
                }
            }
        }
        return DecodedImage(width: width, height: height, mode: .RGB, pixels: out)
    }
}

extension ImageIO {
    /// Decodes a PNG, JPEG or BMP file to 8-bit pixels in the file's own layout
    /// (grey, grey + alpha, RGB or RGBA; palettes expanded), after the same bounded
    /// checks as `load` (file size, structure, `maxPixels` from the header).
    ///
    /// JPEG goes through libjpeg-turbo with Pillow's settings (ISLOW DCT, fancy
    /// upsampling, no draft scaling), so the pixels are those PIL decodes. Stricter
    /// than PIL: data libjpeg warns is corrupt is refused, where PIL keeps whatever
    /// the decoder made of it; CMYK and YCCK JPEGs are refused. PNG and BMP go through
    /// stb_image, whose 8-bit output equals PIL's for 8-bit PNGs; 16-bit PNGs are
    /// refused (PIL's `convert("RGB")` clips 16-bit grey at 255 rather than scaling it).
    public static func decode(_ path: String, maxPixels: Int = defaultMaxPixels) throws -> DecodedImage {
        let bytes = try read(path)
        if ImageFormat(bytes) == .jpeg {
            // libjpeg reads the header itself (its messages are clearer than stb_image's
            // "unknown image type") and stops before allocating when it is over the limit.
            try validateStructure(bytes, path: path, maxPixels: maxPixels)
            return try decodeJPEG(bytes, path: path, maxPixels: maxPixels)
        }
        let (width, height) = try checkedSize(bytes, path: path, maxPixels: maxPixels)
        let image = try decodeWithSTB(bytes, path: path)
        guard image.width == width, image.height == height else {
            throw Error(path: path, reason: "decoded \(image.width)×\(image.height) pixels, but the header says \(width)×\(height)")
        }
        return image
    }

    private static func decodeJPEG(_ bytes: [UInt8], path: String, maxPixels: Int) throws -> DecodedImage {
        var image = PatchworkJPEGImage()
        var message = [CChar](repeating: 0, count: 256)
        let status = bytes.withUnsafeBufferPointer { data in
            message.withUnsafeMutableBufferPointer { text in
                patchwork_jpeg_decode(data.baseAddress, data.count, Int64(maxPixels), &image, text.baseAddress, text.count)
            }
        }
        if status == 2 {
            try checkPixelCount(width: Int(image.width), height: Int(image.height), maxPixels: maxPixels, path: path)
        }
        guard status == 0 else {
            let why = String(cString: message)
            throw Error(path: path, reason: "cannot decode JPEG: \(why.isEmpty ? "unknown error" : why)")
        }
        defer { patchwork_jpeg_free(&image) }
        let (width, height, channels) = (Int(image.width), Int(image.height), Int(image.channels))
        let pixels = [UInt8](UnsafeBufferPointer(start: image.pixels, count: width * height * channels))
        return DecodedImage(width: width, height: height, mode: channels == 1 ? .L : .RGB, pixels: pixels)
    }

    private static func decodeWithSTB(_ bytes: [UInt8], path: String) throws -> DecodedImage {
        let sixteenBit = bytes.withUnsafeBufferPointer { stbi_is_16_bit_from_memory($0.baseAddress, Int32($0.count)) }
        guard sixteenBit == 0 else {
            throw Error(path: path, reason: "16-bit PNGs are not supported by the 8-bit decoder (PIL's convert(\"RGB\") clips "
                + "16-bit grey at 255 rather than scaling it, so there is no reference result to match); convert it to 8 bits")
        }
        var w: Int32 = 0, h: Int32 = 0, n: Int32 = 0
        let decoded = bytes.withUnsafeBufferPointer { stbi_load_from_memory($0.baseAddress, Int32($0.count), &w, &h, &n, 0) }
        guard let pixels = decoded else {
            let why = stbi_failure_reason().map { String(cString: $0) } ?? "unknown error"
            throw Error(path: path, reason: "cannot decode image (\(why))")
        }
        defer { stbi_image_free(pixels) }
        guard let mode = DecodedImage.Mode(channels: Int(n)) else {
            throw Error(path: path, reason: "decoded \(n) channels per pixel, not 1 to 4")
        }
        let values = [UInt8](UnsafeBufferPointer(start: pixels, count: Int(w) * Int(h) * Int(n)))
        return DecodedImage(width: Int(w), height: Int(h), mode: mode, pixels: values)
    }
}
