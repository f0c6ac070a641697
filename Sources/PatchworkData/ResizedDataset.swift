import Foundation
import Patchwork

/// Another dataset's images resized (bilinear, antialiased when shrinking)
/// and/or converted to a channel count: 1 → 3 repeats the grey value,
/// 3 → 1 takes the luma 0.299 R + 0.587 G + 0.114 B.
public struct ResizedDataset: Dataset {
    public let base: any Dataset
    public let imageShape: [Int]
    public var count: Int { base.count }
    public var classNames: [String] { base.classNames }

    public init(_ base: any Dataset, height: Int? = nil, width: Int? = nil, channels: Int? = nil) throws {
        let c0 = base.imageShape[2]
        let h = height ?? base.imageShape[0], w = width ?? base.imageShape[1], c = channels ?? c0
        guard h > 0, w > 0 else { throw DataError("image size must be positive, got \(h)×\(w)") }
        guard c == c0 || (c0 == 1 && c == 3) || (c0 == 3 && c == 1) else {
            throw DataError("cannot convert \(c0)-channel images to \(c) channels (only 1 ↔ 3)")
        }
        self.base = base
        self.imageShape = [h, w, c]
    }

    public func sample(_ index: Int) throws -> (image: Tensor, label: Int) {
        let (image, label) = try base.sample(index)
        var out = resizedImage(image, to: (imageShape[0], imageShape[1]))
        let c0 = out.shape[2], c = imageShape[2]
        if c0 != c {
            let src = out.scalars, pixels = imageShape[0] * imageShape[1]
            var values = [Float](repeating: 0, count: pixels * c)
            if c0 == 1 {
                for p in 0..<pixels { values[3 * p] = src[p]; values[3 * p + 1] = src[p]; values[3 * p + 2] = src[p] }
            } else {
                for p in 0..<pixels { values[p] = 0.299 * src[3 * p] + 0.587 * src[3 * p + 1] + 0.114 * src[3 * p + 2] }
            }
            out = Tensor(values, shape: imageShape)
        }
        return (out, label)
    }
}
