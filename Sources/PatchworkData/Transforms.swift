import Foundation
import Patchwork

// Image transforms on channels-last [H, W, C] images, following torchvision's
// tensor transforms (torchvision.transforms, v0.2x) formula for formula; and
// batch transforms (mixup, cutmix) following timm's `Mixup` in batch mode.
// Every random draw comes from the `Generator` passed in, so a seeded loader
// reproduces an epoch bit for bit. Python's round() is round-half-to-even,
// which is what `.toNearestOrEven` reproduces.

/// Checks that `image` is [H, W, C] and returns (H, W, C).
@inline(__always)
private func imageSize(_ image: Tensor, _ op: String) -> (h: Int, w: Int, c: Int) {
    guard image.rank == 3 else { fail(op, "expected an [H, W, C] image, got shape \(image.shape)") }
    return (image.shape[0], image.shape[1], image.shape[2])
}

/// The window rows top..<top+height, columns left..<left+width (a contiguous copy).
public func cropImage(_ image: Tensor, top: Int, left: Int, height: Int, width: Int) -> Tensor {
    let (h, w, _) = imageSize(image, "crop")
    guard top >= 0, left >= 0, height > 0, width > 0, top + height <= h, left + width <= w else {
        fail("crop", "window (top \(top), left \(left), height \(height), width \(width)) is not inside an image of shape \(image.shape)")
    }
    return image.sliced(axis: 0, start: top, end: top + height).sliced(axis: 1, start: left, end: left + width).contiguous()
}

/// An [H, W, C] image resized to (height, width), bilinear with antialiasing
/// when shrinking, as torchvision's resize of a tensor (antialias=True).
public func resizeImage(_ image: Tensor, height: Int, width: Int) -> Tensor {
    let (h, w, c) = imageSize(image, "resizeImage")
    if h == height && w == width { return image }
    return resize(image.reshaped([1, h, w, c]), size: (height, width), mode: .bilinear, antialias: true)
        .reshaped([height, width, c])
}

/// How `RandomCrop` fills the border it adds (torchvision's padding_mode).
public enum PaddingMode: Sendable, Equatable {
    /// A constant value (torchvision's `fill`).
    case constant(Float)
    /// Mirror without repeating the edge: 2 1 | 0 1 2 | 1 0.
    case reflect
    /// Mirror repeating the edge: 1 0 | 0 1 2 | 2 1.
    case symmetric
    /// Repeat the edge: 0 0 | 0 1 2 | 2 2.
    case edge
}

/// `image` with `padding` pixels added on every side of H and W.
public func padImage(_ image: Tensor, padding: Int, mode: PaddingMode) -> Tensor {
    let (h, w, _) = imageSize(image, "padImage")
    guard padding >= 0 else { fail("padImage", "padding \(padding) must be ≥ 0") }
    if padding == 0 { return image }
    if case .constant(let value) = mode {
        return image.padded([(padding, padding), (padding, padding), (0, 0)], value: value)
    }
    if mode == .reflect && (padding >= h || padding >= w) {
        fail("padImage", "reflect padding \(padding) must be smaller than the image's height and width (shape \(image.shape))")
    }
    func source(_ i: Int, _ n: Int) -> Int {
        var j = i
        // Fold repeatedly so that symmetric/edge paddings wider than the image still resolve.
        while j < 0 || j >= n {
            switch mode {
            case .reflect: j = j < 0 ? -j : 2 * (n - 1) - j
            case .symmetric: j = j < 0 ? -j - 1 : 2 * n - 1 - j
            default: j = Swift.min(Swift.max(j, 0), n - 1)
            }
        }
        return j
    }
    let rows = (-padding..<(h + padding)).map { source($0, h) }
    let cols = (-padding..<(w + padding)).map { source($0, w) }
    return image.indexSelect(axis: 0, indices: rows).indexSelect(axis: 1, indices: cols)
}

// MARK: - Composition

/// Transforms applied in order, all drawing from the same generator.
public struct Compose: ImageTransform {
    public let transforms: [ImageTransform]
    public init(_ transforms: [ImageTransform]) { self.transforms = transforms }
    public func callAsFunction(_ image: Tensor, generator: Generator) -> Tensor {
        transforms.reduce(image) { $1($0, generator: generator) }
    }
}

// MARK: - Geometry

/// A random crop of `size`, after optional padding of every side (as
/// torchvision's RandomCrop(size, padding, fill, padding_mode)): the window's
/// top is uniform in 0...H-h and its left in 0...W-w.
public struct RandomCrop: ImageTransform {
    public let height: Int
    public let width: Int
    public let padding: Int
    public let paddingMode: PaddingMode

    public init(size: Int, padding: Int = 0, paddingMode: PaddingMode = .constant(0)) {
        self.init(height: size, width: size, padding: padding, paddingMode: paddingMode)
    }

    public init(height: Int, width: Int, padding: Int = 0, paddingMode: PaddingMode = .constant(0)) {
        guard height > 0, width > 0, padding >= 0 else {
            fail("RandomCrop", "size (\(height), \(width)) must be positive and padding \(padding) ≥ 0")
        }
        self.height = height; self.width = width; self.padding = padding; self.paddingMode = paddingMode
    }

    public func callAsFunction(_ image: Tensor, generator: Generator) -> Tensor {
        let padded = padImage(image, padding: padding, mode: paddingMode)
        let (h, w, _) = imageSize(padded, "RandomCrop")
        guard height <= h, width <= w else {
            fail("RandomCrop", "crop (\(height), \(width)) is larger than the padded image \(padded.shape)")
        }
        if h == height && w == width { return padded }
        let top = generator.nextInt(below: h - height + 1)
        let left = generator.nextInt(below: w - width + 1)
        return cropImage(padded, top: top, left: left, height: height, width: width)
    }
}

/// A crop of random area and aspect ratio resized to `size`, as torchvision's
/// RandomResizedCrop: up to 10 tries of area·U(scale) and exp(U(log ratio)),
/// taking the first that fits (then a uniform position); otherwise a central
/// crop of the whole image clamped to the ratio range. Bilinear, antialiased.
public struct RandomResizedCrop: ImageTransform {
    public let height: Int
    public let width: Int
    public let scale: ClosedRange<Float>
    public let ratio: ClosedRange<Float>

    public init(size: Int, scale: ClosedRange<Float> = 0.08...1, ratio: ClosedRange<Float> = (3.0 / 4)...(4.0 / 3)) {
        self.init(height: size, width: size, scale: scale, ratio: ratio)
    }

    public init(height: Int, width: Int, scale: ClosedRange<Float> = 0.08...1,
                ratio: ClosedRange<Float> = (3.0 / 4)...(4.0 / 3)) {
        guard height > 0, width > 0, scale.lowerBound > 0, ratio.lowerBound > 0 else {
            fail("RandomResizedCrop", "size (\(height), \(width)), scale \(scale) and ratio \(ratio) must be positive")
        }
        self.height = height; self.width = width; self.scale = scale; self.ratio = ratio
    }

    /// The crop window (torchvision's get_params) for an image of the given size.
    public func window(imageHeight h: Int, imageWidth w: Int, generator: Generator)
        -> (top: Int, left: Int, height: Int, width: Int) {
        let area = Double(h * w)
        let logLow = Foundation.log(Double(ratio.lowerBound)), logHigh = Foundation.log(Double(ratio.upperBound))
        for _ in 0..<10 {
            let target = area * Double(generator.nextUniform(scale.lowerBound, scale.upperBound))
            let aspect = Foundation.exp(logLow + (logHigh - logLow) * Double(generator.nextUniform()))
            let cw = Int((target * aspect).squareRoot().rounded(.toNearestOrEven))
            let ch = Int((target / aspect).squareRoot().rounded(.toNearestOrEven))
            if cw > 0 && cw <= w && ch > 0 && ch <= h {
                let top = generator.nextInt(below: h - ch + 1)
                let left = generator.nextInt(below: w - cw + 1)
                return (top, left, ch, cw)
            }
        }
        let inRatio = Double(w) / Double(h)
        var cw = w, ch = h
        if inRatio < Double(ratio.lowerBound) {
            ch = Int((Double(w) / Double(ratio.lowerBound)).rounded(.toNearestOrEven))
        } else if inRatio > Double(ratio.upperBound) {
            cw = Int((Double(h) * Double(ratio.upperBound)).rounded(.toNearestOrEven))
        }
        return ((h - ch) / 2, (w - cw) / 2, ch, cw)
    }

    public func callAsFunction(_ image: Tensor, generator: Generator) -> Tensor {
        let (h, w, _) = imageSize(image, "RandomResizedCrop")
        let box = window(imageHeight: h, imageWidth: w, generator: generator)
        let crop = cropImage(image, top: box.top, left: box.left, height: box.height, width: box.width)
        return resizeImage(crop, height: height, width: width)
    }
}

/// Mirrors the image left–right with probability `p` (one uniform draw: flip when u < p).
public struct RandomHorizontalFlip: ImageTransform {
    public let p: Float
    public init(p: Float = 0.5) { self.p = p }
    public func callAsFunction(_ image: Tensor, generator: Generator) -> Tensor {
        _ = imageSize(image, "RandomHorizontalFlip")
        return generator.nextUniform() < p ? image.flipped(axes: [1]) : image
    }
}

/// Resizes as torchvision's Resize: `Resize(size)` scales the shorter edge to
/// `size` (the longer to ⌊size·long/short⌋); `Resize(height:width:)` resizes
/// to exactly that. Bilinear, antialiased.
public struct Resize: ImageTransform {
    public let shorterEdge: Int?
    public let size: (height: Int, width: Int)?

    public init(_ shorterEdge: Int) {
        guard shorterEdge > 0 else { fail("Resize", "size \(shorterEdge) must be positive") }
        self.shorterEdge = shorterEdge; self.size = nil
    }

    public init(height: Int, width: Int) {
        guard height > 0, width > 0 else { fail("Resize", "size (\(height), \(width)) must be positive") }
        self.shorterEdge = nil; self.size = (height, width)
    }

    /// The output (height, width) for an input of (h, w).
    public func outputSize(height h: Int, width w: Int) -> (height: Int, width: Int) {
        if let size { return size }
        let s = shorterEdge!
        if w <= h { return (Int(Double(s) * Double(h) / Double(w)), s) }
        return (s, Int(Double(s) * Double(w) / Double(h)))
    }

    public func callAsFunction(_ image: Tensor, generator: Generator) -> Tensor {
        let (h, w, _) = imageSize(image, "Resize")
        let out = outputSize(height: h, width: w)
        return resizeImage(image, height: out.height, width: out.width)
    }
}

/// The central window of `size`, as torchvision's center_crop: top =
/// round((H - h)/2), left = round((W - w)/2); an image smaller than the
/// window is first padded with zeros ((d/2) before, ((d+1)/2) after).
public struct CenterCrop: ImageTransform {
    public let height: Int
    public let width: Int

    public init(size: Int) { self.init(height: size, width: size) }
    public init(height: Int, width: Int) {
        guard height > 0, width > 0 else { fail("CenterCrop", "size (\(height), \(width)) must be positive") }
        self.height = height; self.width = width
    }

    /// Where the window falls in an h × w image: the zero padding added first on each
    /// side (none unless the image is smaller than the window), then the window's
    /// top-left corner in the padded image (Python's round: halves to even).
    public func placement(height h: Int, width w: Int)
        -> (padTop: Int, padBottom: Int, padLeft: Int, padRight: Int, top: Int, left: Int) {
        let dh = Swift.max(height - h, 0), dw = Swift.max(width - w, 0)
        let (paddedH, paddedW) = (h + dh, w + dw)
        let top = Int((Double(paddedH - height) / 2).rounded(.toNearestOrEven))
        let left = Int((Double(paddedW - width) / 2).rounded(.toNearestOrEven))
        return (dh / 2, (dh + 1) / 2, dw / 2, (dw + 1) / 2, top, left)
    }

    public func callAsFunction(_ image: Tensor, generator: Generator) -> Tensor {
        let (h, w, _) = imageSize(image, "CenterCrop")
        let p = placement(height: h, width: w)
        var img = image
        if p.padTop + p.padBottom + p.padLeft + p.padRight > 0 {
            img = img.padded([(p.padTop, p.padBottom), (p.padLeft, p.padRight), (0, 0)], value: 0)
        }
        return cropImage(img, top: p.top, left: p.left, height: height, width: width)
    }
}

// MARK: - Values

/// (x - mean[c]) / std[c] per channel, as torchvision's Normalize.
public struct Normalize: ImageTransform {
    public let mean: [Float]
    public let std: [Float]

    /// ImageNet's statistics (timm's IMAGENET_DEFAULT_MEAN / STD).
    public static let imageNet = Normalize(mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])

    public init(mean: [Float], std: [Float]) {
        guard mean.count == std.count, !mean.isEmpty, std.allSatisfy({ $0 > 0 }) else {
            fail("Normalize", "mean \(mean) and std \(std) need the same number of channels and std > 0")
        }
        self.mean = mean; self.std = std
    }

    public func callAsFunction(_ image: Tensor, generator: Generator) -> Tensor {
        let (_, _, c) = imageSize(image, "Normalize")
        guard c == mean.count else {
            fail("Normalize", "image of shape \(image.shape) has \(c) channels, mean/std have \(mean.count)")
        }
        return (image - Tensor(mean)) / Tensor(std)
    }
}

/// Random brightness, contrast, saturation and hue, as torchvision's
/// ColorJitter: the four adjustments in a random order (a permutation drawn
/// first), then one factor each for those enabled, in the order brightness,
/// contrast, saturation, hue. A strength b gives factors U(max(0, 1-b), 1+b);
/// hue h gives U(-h, h). Formulas of torchvision's tensor functions:
///
/// - blend(a, b, r) = clamp(r·a + (1-r)·b, 0, 1)
/// - brightness: blend(x, 0, f); contrast: blend(x, mean(gray(x)), f);
///   saturation: blend(x, gray(x), f) with gray = 0.2989 R + 0.587 G + 0.114 B;
/// - hue: RGB → HSV, h = (h + f) mod 1, HSV → RGB.
///
/// Grey (1-channel) images: saturation and hue leave them as they are.
public struct ColorJitter: ImageTransform {
    public let brightness: ClosedRange<Float>?
    public let contrast: ClosedRange<Float>?
    public let saturation: ClosedRange<Float>?
    public let hue: ClosedRange<Float>?

    public init(brightness: Float = 0, contrast: Float = 0, saturation: Float = 0, hue: Float = 0) {
        guard brightness >= 0, contrast >= 0, saturation >= 0, (0...0.5).contains(hue) else {
            fail("ColorJitter", "brightness \(brightness), contrast \(contrast), saturation \(saturation) must be ≥ 0 and hue \(hue) in [0, 0.5]")
        }
        func range(_ v: Float) -> ClosedRange<Float>? { v == 0 ? nil : Swift.max(0, 1 - v)...(1 + v) }
        self.brightness = range(brightness); self.contrast = range(contrast); self.saturation = range(saturation)
        self.hue = hue == 0 ? nil : -hue...hue
    }

    public func callAsFunction(_ image: Tensor, generator: Generator) -> Tensor {
        let order = generator.permutation(4)
        let b = brightness.map { generator.nextUniform($0.lowerBound, $0.upperBound) }
        let c = contrast.map { generator.nextUniform($0.lowerBound, $0.upperBound) }
        let s = saturation.map { generator.nextUniform($0.lowerBound, $0.upperBound) }
        let h = hue.map { generator.nextUniform($0.lowerBound, $0.upperBound) }
        var img = image
        for k in order {
            switch k {
            case 0: if let b { img = ColorJitter.adjustBrightness(img, b) }
            case 1: if let c { img = ColorJitter.adjustContrast(img, c) }
            case 2: if let s { img = ColorJitter.adjustSaturation(img, s) }
            default: if let h { img = ColorJitter.adjustHue(img, h) }
            }
        }
        return img
    }

    // The four adjustments (torchvision.transforms.functional.adjust_*), public for direct use.

    public static func adjustBrightness(_ image: Tensor, _ factor: Float) -> Tensor {
        let c = checkChannels(image, "adjustBrightness")
        return map(image) { px, n in blend(px, n, c, factor) { _ in 0 } }
    }

    public static func adjustContrast(_ image: Tensor, _ factor: Float) -> Tensor {
        let c = checkChannels(image, "adjustContrast")
        return map(image) { px, n in
            var sum = 0.0
            for i in 0..<(n / c) { sum += Double(c == 3 ? gray(px, i) : px[i]) }
            let mean = Float(sum / Double(n / c))
            blend(px, n, c, factor) { _ in mean }
        }
    }

    public static func adjustSaturation(_ image: Tensor, _ factor: Float) -> Tensor {
        let c = checkChannels(image, "adjustSaturation")
        if c == 1 { return image }
        return map(image) { px, n in blend(px, n, 3, factor) { gray(px, $0) } }
    }

    public static func adjustHue(_ image: Tensor, _ factor: Float) -> Tensor {
        let c = checkChannels(image, "adjustHue")
        guard (-0.5...0.5).contains(factor) else { fail("adjustHue", "hue factor \(factor) is not in [-0.5, 0.5]") }
        if c == 1 { return image }
        return map(image) { px, n in
            for i in 0..<(n / 3) {
                let (r, g, b) = (px[3 * i], px[3 * i + 1], px[3 * i + 2])
                // torchvision's _rgb2hsv
                let maxc = Swift.max(r, g, b), minc = Swift.min(r, g, b)
                let eqc = maxc == minc
                let cr = maxc - minc
                let s = cr / (eqc ? 1 : maxc)
                let crd: Float = eqc ? 1 : cr
                let rc = (maxc - r) / crd, gc = (maxc - g) / crd, bc = (maxc - b) / crd
                let hr: Float = maxc == r ? bc - gc : 0
                let hg: Float = maxc == g && maxc != r ? 2 + rc - bc : 0
                let hb: Float = maxc != g && maxc != r ? 4 + gc - rc : 0
                var hue = fmodf((hr + hg + hb) / 6 + 1, 1)
                // (h + factor) % 1.0, Python's floored modulo
                hue = fmodf(hue + factor, 1)
                if hue < 0 { hue += 1 }
                // torchvision's _hsv2rgb
                let v = maxc
                let fi = floorf(hue * 6)
                let f = hue * 6 - fi
                let p = Swift.min(Swift.max(v * (1 - s), 0), 1)
                let q = Swift.min(Swift.max(v * (1 - s * f), 0), 1)
                let t = Swift.min(Swift.max(v * (1 - s * (1 - f)), 0), 1)
                let sector = ((Int(fi) % 6) + 6) % 6
                let rgb: (Float, Float, Float)
                switch sector {
                case 0: rgb = (v, t, p)
                case 1: rgb = (q, v, p)
                case 2: rgb = (p, v, t)
                case 3: rgb = (p, q, v)
                case 4: rgb = (t, p, v)
                default: rgb = (v, p, q)
                }
                px[3 * i] = rgb.0; px[3 * i + 1] = rgb.1; px[3 * i + 2] = rgb.2
            }
        }
    }

    @discardableResult
    private static func checkChannels(_ image: Tensor, _ op: String) -> Int {
        let (_, _, c) = imageSize(image, op)
        guard c == 1 || c == 3 else { fail(op, "image of shape \(image.shape) must have 1 or 3 channels") }
        return c
    }

    /// torchvision's rgb_to_grayscale of pixel i (Float, its order of operations).
    @inline(__always)
    private static func gray(_ px: UnsafeMutablePointer<Float>, _ i: Int) -> Float {
        Float(0.2989) * px[3 * i] + Float(0.587) * px[3 * i + 1] + Float(0.114) * px[3 * i + 2]
    }

    /// px = clamp(f·px + (1-f)·other(pixel), 0, 1) in place, channel by channel, with (1-f)
    /// computed in double as Python does; `other` is read before the pixel changes.
    @inline(__always)
    private static func blend(_ px: UnsafeMutablePointer<Float>, _ n: Int, _ channels: Int, _ f: Float,
                              _ other: (Int) -> Float) {
        let g = Float(1 - Double(f))
        for pixel in 0..<(n / channels) {
            let o = other(pixel)
            for k in (pixel * channels)..<((pixel + 1) * channels) {
                px[k] = Swift.min(Swift.max(f * px[k] + g * o, 0), 1)
            }
        }
    }

    /// A contiguous copy of `image` modified in place by `body(pointer, count)`.
    private static func map(_ image: Tensor, _ body: (UnsafeMutablePointer<Float>, Int) -> Void) -> Tensor {
        let out = Tensor(image.scalars, shape: image.shape)
        body(out.storage.pointer + out.offset, out.count)
        return out
    }
}

// MARK: - Batch transforms

/// Mixup and CutMix as timm's `Mixup` in batch mode: each sample is paired
/// with its mirror in the batch (i with B-1-i), one λ per batch.
///
/// Per batch, from the generator: u < `probability` decides whether to mix at
/// all; with both alphas > 0, u < `switchProbability` picks CutMix; then
/// λ ~ Beta(α, α) of the chosen kind. Mixup: x = λ·x + (1-λ)·flip(x). CutMix:
/// a box of side ⌊H·√(1-λ)⌋ × ⌊W·√(1-λ)⌋ centred uniformly, clipped to the
/// image, pasted from flip(x), and λ corrected to 1 - box area / image area.
/// Targets (always produced): y·λ + flip(y)·(1-λ) of one-hot rows smoothed to
/// off = ε/classes, on = 1 - ε + off.
public struct MixupOrCutmix: BatchTransform {
    public let mixupAlpha: Float
    public let cutmixAlpha: Float
    public let switchProbability: Float
    public let probability: Float
    public let labelSmoothing: Float
    /// Correct λ by the clipped box's actual area (timm's correct_lam).
    public let correctLambda: Bool

    public init(mixupAlpha: Float = 0.8, cutmixAlpha: Float = 1.0, switchProbability: Float = 0.5,
                probability: Float = 1, labelSmoothing: Float = 0, correctLambda: Bool = true) {
        guard mixupAlpha >= 0, cutmixAlpha >= 0, mixupAlpha > 0 || cutmixAlpha > 0 else {
            fail("MixupOrCutmix", "mixupAlpha \(mixupAlpha) and cutmixAlpha \(cutmixAlpha) must be ≥ 0, one of them > 0")
        }
        guard (0...1).contains(switchProbability), (0...1).contains(probability), (0..<1).contains(labelSmoothing) else {
            fail("MixupOrCutmix", "switchProbability \(switchProbability) and probability \(probability) must be in [0, 1], labelSmoothing \(labelSmoothing) in [0, 1)")
        }
        self.mixupAlpha = mixupAlpha; self.cutmixAlpha = cutmixAlpha; self.switchProbability = switchProbability
        self.probability = probability; self.labelSmoothing = labelSmoothing; self.correctLambda = correctLambda
    }

    /// What one application did.
    public struct Outcome: Sendable {
        public var batch: Batch
        /// Weight of each sample's own label (after CutMix's area correction); 1 when nothing was mixed.
        public var lambda: Float
        public var usedCutmix: Bool
        /// CutMix's box (rows top..<bottom, columns left..<right), nil otherwise.
        public var box: (top: Int, bottom: Int, left: Int, right: Int)?
    }

    public func callAsFunction(_ batch: Batch, classes: Int, generator: Generator) -> Batch {
        apply(batch, classes: classes, generator: generator).batch
    }

    public func apply(_ batch: Batch, classes: Int, generator: Generator) -> Outcome {
        let x = batch.images
        guard x.rank == 4, x.shape[0] == batch.labels.count else {
            fail("MixupOrCutmix", "images of shape \(x.shape) do not form a [B, H, W, C] batch for \(batch.labels.count) labels")
        }
        if let bad = batch.labels.first(where: { $0 < 0 || $0 >= classes }) {
            fail("MixupOrCutmix", "label \(bad) is outside 0..<\(classes)")
        }
        // timm's _params_per_batch
        var lambda = 1.0
        var cutmix = false
        if Double(generator.nextOpenUniformDouble()) < Double(probability) {
            if mixupAlpha > 0 && cutmixAlpha > 0 {
                cutmix = generator.nextOpenUniformDouble() < Double(switchProbability)
                let a = Double(cutmix ? cutmixAlpha : mixupAlpha)
                lambda = generator.nextBeta(a, a)
            } else if mixupAlpha > 0 {
                lambda = generator.nextBeta(Double(mixupAlpha), Double(mixupAlpha))
            } else {
                cutmix = true
                lambda = generator.nextBeta(Double(cutmixAlpha), Double(cutmixAlpha))
            }
        }
        var images = x
        var box: (top: Int, bottom: Int, left: Int, right: Int)?
        if lambda != 1 {
            let flippedImages = x.flipped(axes: [0])
            if cutmix {
                let (h, w) = (x.shape[1], x.shape[2])
                // timm's rand_bbox
                let ratio = (1 - lambda).squareRoot()
                let cutH = Int(Double(h) * ratio), cutW = Int(Double(w) * ratio)
                let cy = generator.nextInt(below: h), cx = generator.nextInt(below: w)
                let b = (top: Swift.min(Swift.max(cy - cutH / 2, 0), h), bottom: Swift.min(Swift.max(cy + (cutH + 1) / 2, 0), h),
                         left: Swift.min(Swift.max(cx - cutW / 2, 0), w), right: Swift.min(Swift.max(cx + (cutW + 1) / 2, 0), w))
                if correctLambda {
                    lambda = 1 - Double((b.bottom - b.top) * (b.right - b.left)) / Double(h * w)
                }
                box = b
                if b.bottom > b.top && b.right > b.left {
                    let out = x.contiguous().scalars
                    var values = out
                    let src = flippedImages.scalars
                    let c = x.shape[3]
                    for n in 0..<x.shape[0] {
                        for r in b.top..<b.bottom {
                            let start = ((n * h + r) * w + b.left) * c, end = ((n * h + r) * w + b.right) * c
                            values.replaceSubrange(start..<end, with: src[start..<end])
                        }
                    }
                    images = Tensor(values, shape: x.shape)
                }
            } else {
                images = x * Float(lambda) + flippedImages * Float(1 - lambda)
            }
        }
        // timm's mixup_target
        let off = labelSmoothing / Float(classes), on = 1 - labelSmoothing + off
        let b = batch.labels.count
        var y = [Float](repeating: 0, count: b * classes)
        let l = Float(lambda), l2 = Float(1 - lambda)
        for i in 0..<b {
            let own = batch.labels[i], partner = batch.labels[b - 1 - i]
            for k in 0..<classes {
                let y1: Float = k == own ? on : off, y2: Float = k == partner ? on : off
                y[i * classes + k] = y1 * l + y2 * l2
            }
        }
        let result = Batch(images: images, labels: batch.labels, targets: Tensor(y, shape: [b, classes]))
        return Outcome(batch: result, lambda: l, usedCutmix: cutmix, box: box)
    }
}

/// Mixup alone: λ ~ Beta(α, α), x = λ·x + (1-λ)·flip(x) (see `MixupOrCutmix`).
public struct Mixup: BatchTransform {
    public let core: MixupOrCutmix
    public init(alpha: Float = 0.8, probability: Float = 1, labelSmoothing: Float = 0) {
        core = MixupOrCutmix(mixupAlpha: alpha, cutmixAlpha: 0, probability: probability, labelSmoothing: labelSmoothing)
    }
    public func callAsFunction(_ batch: Batch, classes: Int, generator: Generator) -> Batch {
        core(batch, classes: classes, generator: generator)
    }
}

/// CutMix alone: a box from flip(x) pasted into x, λ = 1 - box area / image area (see `MixupOrCutmix`).
public struct CutMix: BatchTransform {
    public let core: MixupOrCutmix
    public init(alpha: Float = 1.0, probability: Float = 1, labelSmoothing: Float = 0, correctLambda: Bool = true) {
        core = MixupOrCutmix(mixupAlpha: 0, cutmixAlpha: alpha, probability: probability, labelSmoothing: labelSmoothing,
                             correctLambda: correctLambda)
    }
    public func callAsFunction(_ batch: Batch, classes: Int, generator: Generator) -> Batch {
        core(batch, classes: classes, generator: generator)
    }
}
