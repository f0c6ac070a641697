import Foundation
import Patchwork

/// The resampling filters of PIL's `Image.resize`, named as timm names them in a
/// model's `interpolation`.
public enum ResampleFilter: String, Sendable, Codable, CaseIterable {
    case nearest, bilinear, bicubic, lanczos, box, hamming

    /// The filter's half-width in source pixels when not downscaling (Pillow's `support`).
    var support: Double {
        switch self {
        case .nearest, .box: return 0.5
        case .bilinear, .hamming: return 1
        case .bicubic: return 2
        case .lanczos: return 3
        }
    }

    /// The filter's weight at distance `x`, as Pillow's Resample.c computes it
    /// (same operations in the same order, so the same doubles).
    func weight(_ x: Double) -> Double {
        switch self {
        case .nearest, .box:
            return x > -0.5 && x <= 0.5 ? 1 : 0
        case .bilinear:
            let d = abs(x)
            return d < 1 ? 1 - d : 0
        case .hamming:
            let d = abs(x)
            if d == 0 { return 1 }
            if d >= 1 { return 0 }
            let t = d * Double.pi
            // Pillow writes the constants as C floats (0.54f, 0.46f), widened to double.
            return sin(t) / t * (Double(Float(0.54)) + Double(Float(0.46)) * cos(t))
        case .bicubic:
            let a = -0.5, d = abs(x)
            if d < 1 { return ((a + 2) * d - (a + 3)) * d * d + 1 }
            if d < 2 { return (((d - 5) * d + 8) * d - 4) * a }
            return 0
        case .lanczos:
            func sinc(_ v: Double) -> Double { v == 0 ? 1 : sin(v * Double.pi) / (v * Double.pi) }
            return -3 <= x && x < 3 ? sinc(x) * sinc(x / 3) : 0
        }
    }
}

/// Fixed-point bits of Pillow's 8-bit resampling weights (its PRECISION_BITS: 32 − 8 − 2).
private let precisionBits = 22

/// One output pixel's source window along an axis: `first` and `count` source
/// pixels, weighted by `weights[index * kernelSize ..< index * kernelSize + count]`.
private struct ResampleAxis {
    var first: [Int] = []
    var count: [Int] = []
    var weights: [Int32] = []
    var kernelSize = 0

    /// Pillow's precompute_coeffs then normalize_coeffs_8bpc: the filter is widened
    /// by the downscale factor (antialiasing), each pixel's weights are normalised to
    /// sum to 1, then rounded (half away from zero) to `precisionBits` fixed point.
    init(inSize: Int, outSize: Int, filter: ResampleFilter) {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = filter.support * filterScale
        kernelSize = Int(ceil(support)) * 2 + 1
        weights = [Int32](repeating: 0, count: outSize * kernelSize)
        var k = [Double](repeating: 0, count: kernelSize)
        for xx in 0..<outSize {
            let center = (Double(xx) + 0.5) * scale
            let inverse = 1 / filterScale
            // Int(_:) truncates toward zero, as C's (int) cast does.
            let lo = max(Int(center - support + 0.5), 0)
            let n = min(Int(center + support + 0.5), inSize) - lo
            var total = 0.0
            for x in 0..<n {
                k[x] = filter.weight((Double(x + lo) - center + 0.5) * inverse)
                total += k[x]
            }
            for x in 0..<n {
                let w = total != 0 ? k[x] / total : k[x]
                let fixed = w * Double(1 << precisionBits)
                weights[xx * kernelSize + x] = Int32(w < 0 ? -0.5 + fixed : 0.5 + fixed)
            }
            first.append(lo)
            count.append(n)
        }
    }
}

/// Pillow's rounding of a fixed-point sum back to 8 bits (its clip8).
@inline(__always)
private func clip8(_ sum: Int32) -> UInt8 {
    UInt8(clamping: sum >> Int32(precisionBits))
}

extension DecodedImage {
    /// Resized to `width` × `height` as PIL's `Image.resize((width, height), filter)`
    /// does for L and RGB images: the same pixels, exactly. Every filter but nearest
    /// is Pillow's two-pass convolution (Resample.c): horizontal pass first, over
    /// just the rows the vertical pass reads, each pass rounding to 8 bits. Nearest
    /// is Pillow's affine nearest-neighbour scale (Geometry.c's ImagingScaleAffine).
    /// (PIL resizes LA and RGBA premultiplied; convert those to RGB first, as timm does.)
    public func resized(width outWidth: Int, height outHeight: Int, filter: ResampleFilter) -> DecodedImage {
        require(outWidth > 0 && outHeight > 0, "DecodedImage.resized", "size \(outWidth)×\(outHeight) must be positive")
        require(mode == .L || mode == .RGB, "DecodedImage.resized",
                "resizes L and RGB images (PIL resizes \(mode.rawValue) premultiplied); convert to RGB first")
        if outWidth == width && outHeight == height { return self }
        if filter == .nearest { return nearestResized(width: outWidth, height: outHeight) }

        let vertical = ResampleAxis(inSize: height, outSize: outHeight, filter: filter)
        var source = self
        var rowShift = 0
        if outWidth != width {
            // Only rows firstRow..<lastRow feed the vertical pass.
            let firstRow = vertical.first[0]
            let lastRow = vertical.first[outHeight - 1] + vertical.count[outHeight - 1]
            let horizontal = ResampleAxis(inSize: width, outSize: outWidth, filter: filter)
            source = horizontalPass(horizontal, rows: firstRow..<lastRow, outWidth: outWidth)
            rowShift = firstRow
        }
        guard outHeight != height else { return source }
        return source.verticalPass(vertical, rowShift: rowShift, outHeight: outHeight)
    }

    private func horizontalPass(_ axis: ResampleAxis, rows: Range<Int>, outWidth: Int) -> DecodedImage {
        let c = channels
        var out = [UInt8](repeating: 0, count: rows.count * outWidth * c)
        pixels.withUnsafeBufferPointer { src in
            axis.weights.withUnsafeBufferPointer { weights in
                out.withUnsafeMutableBufferPointer { dst in
                    for (yy, y) in rows.enumerated() {
                        let row = y * width * c
                        for xx in 0..<outWidth {
                            let lo = axis.first[xx], n = axis.count[xx], k = xx * axis.kernelSize
                            for ch in 0..<c {
                                var sum = Int32(1 << (precisionBits - 1))
                                for x in 0..<n {
                                    sum &+= Int32(src[row + (lo + x) * c + ch]) &* weights[k + x]
                                }
                                dst[(yy * outWidth + xx) * c + ch] = clip8(sum)
                            }
                        }
                    }
                }
            }
        }
        return DecodedImage(width: outWidth, height: rows.count, mode: mode, pixels: out)
    }

    /// The vertical pass over an image whose row 0 is source row `rowShift`.
    private func verticalPass(_ axis: ResampleAxis, rowShift: Int, outHeight: Int) -> DecodedImage {
        let c = channels, rowValues = width * c
        var out = [UInt8](repeating: 0, count: outHeight * rowValues)
        pixels.withUnsafeBufferPointer { src in
            axis.weights.withUnsafeBufferPointer { weights in
                out.withUnsafeMutableBufferPointer { dst in
                    for yy in 0..<outHeight {
                        let lo = axis.first[yy] - rowShift, n = axis.count[yy], k = yy * axis.kernelSize
                        for i in 0..<rowValues {
                            var sum = Int32(1 << (precisionBits - 1))
                            for y in 0..<n {
                                sum &+= Int32(src[(lo + y) * rowValues + i]) &* weights[k + y]
                            }
                            dst[yy * rowValues + i] = clip8(sum)
                        }
                    }
                }
            }
        }
        return DecodedImage(width: width, height: outHeight, mode: mode, pixels: out)
    }

    /// Pillow's nearest-neighbour resize: source position (i + 0.5)·scale, accumulated
    /// by repeated addition as Pillow does (not multiplied), truncated. Positions
    /// outside the source stay 0, as in Pillow.
    private func nearestResized(width outWidth: Int, height outHeight: Int) -> DecodedImage {
        func sourceIndices(inSize: Int, outSize: Int) -> [Int?] {
            let step = Double(inSize) / Double(outSize)
            var position = step * 0.5
            var indices: [Int?] = []
            for _ in 0..<outSize {
                let index = position < 0 ? -1 : Int(position)
                indices.append(index >= 0 && index < inSize ? index : nil)
                position += step
            }
            return indices
        }
        let columns = sourceIndices(inSize: width, outSize: outWidth)
        let rows = sourceIndices(inSize: height, outSize: outHeight)
        let c = channels
        var out = [UInt8](repeating: 0, count: outWidth * outHeight * c)
        for (yy, y) in rows.enumerated() {
            guard let y else { continue }
            for (xx, x) in columns.enumerated() {
                guard let x else { continue }
                for ch in 0..<c { out[(yy * outWidth + xx) * c + ch] = pixels[(y * width + x) * c + ch] }
            }
        }
        return DecodedImage(width: outWidth, height: outHeight, mode: mode, pixels: out)
    }
}
