import Foundation
import Patchwork

/// timm's evaluation transform, `create_transform(**resolve_data_config({}, model=model))`
/// (transforms_imagenet_eval) on PIL images, reproduced on 8-bit pixels:
///
/// 1. convert to RGB (PIL's `convert("RGB")`, as timm's loaders do);
/// 2. resize by the crop mode, with scale size ⌊input / cropPct⌋ per side:
///    `center` scales the shorter side to the scale size (torchvision's `Resize(int)`,
///    longer side ⌊s·long/short⌋) or, for a non-square input, keeps the aspect ratio
///    with the smaller ratio (timm's ResizeKeepRatio); `squash` resizes to the scale
///    size exactly; `border` keeps the aspect ratio with the larger ratio;
/// 3. centre-crop to the input size, padding an image smaller than it (with 0, or
///    with round(255·mean) in `border` mode, as timm's CenterCropOrPad);
/// 4. scale to [0, 1] and normalise by mean and std, in Float as torchvision does.
///
/// Resizing is PIL's (`DecodedImage.resized`), so the 8-bit crop equals PIL's exactly
/// (Tests/PatchworkTests/PreprocessingTests.swift checks it against the real pipeline).
/// Codable, so a run can record the preprocessing it used.
public struct ImagePreprocessing: Sendable, Codable, Equatable {
    /// timm's `crop_mode`.
    public enum CropMode: String, Sendable, Codable, CaseIterable {
        case center, squash, border
    }

    /// The model's input height and width (timm's `input_size[1:]`).
    public var inputHeight: Int
    public var inputWidth: Int
    public var interpolation: ResampleFilter
    /// Per RGB channel, in [0, 1] units.
    public var mean: [Double]
    public var std: [Double]
    /// The fraction of the resized image the crop keeps (timm's `crop_pct`).
    public var cropPct: Double
    public var cropMode: CropMode

    /// The largest input side accepted (a guard against nonsense in a recorded config).
    public static let maxInputSide = 8192

    /// timm's defaults: 224 × 224, bicubic, ImageNet mean and std, crop 0.875, centre.
    public static let imageNetDefault = ImagePreprocessing(
        inputHeight: 224, inputWidth: 224, interpolation: .bicubic,
        mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], cropPct: 0.875, cropMode: .center)

    public init(inputHeight: Int, inputWidth: Int, interpolation: ResampleFilter, mean: [Double], std: [Double],
                cropPct: Double = 0.875, cropMode: CropMode = .center) {
        self.inputHeight = inputHeight
        self.inputWidth = inputWidth
        self.interpolation = interpolation
        self.mean = mean
        self.std = std
        self.cropPct = cropPct
        self.cropMode = cropMode
    }

    public struct Error: Swift.Error, CustomStringConvertible {
        public let reason: String
        public var description: String { "image preprocessing: \(reason)" }
    }

    /// Throws naming the first field out of range (for values built in code or decoded from a record).
    public func validate() throws {
        guard (1...Self.maxInputSide).contains(inputHeight), (1...Self.maxInputSide).contains(inputWidth) else {
            throw Error(reason: "inputHeight and inputWidth must be 1...\(Self.maxInputSide), got \(inputHeight)×\(inputWidth)")
        }
        guard mean.count == 3, mean.allSatisfy({ $0.isFinite }) else {
            throw Error(reason: "mean must be 3 finite values (R, G, B), got \(mean)")
        }
        guard std.count == 3, std.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw Error(reason: "std must be 3 finite positive values (R, G, B), got \(std)")
        }
        guard cropPct.isFinite, cropPct > 0, scaleSize.height >= 1, scaleSize.width >= 1,
              scaleSize.height <= 4 * Self.maxInputSide, scaleSize.width <= 4 * Self.maxInputSide else {
            throw Error(reason: "cropPct must be positive and give a scale size of 1...\(4 * Self.maxInputSide) pixels "
                + "(⌊input / cropPct⌋), got \(cropPct)")
        }
    }

    /// ⌊input / cropPct⌋ per side, as timm computes it in Python floats.
    public var scaleSize: (height: Int, width: Int) {
        func scaled(_ side: Int) -> Int {
            let s = (Double(side) / cropPct).rounded(.down)
            return s.isFinite && s < Double(Int32.max) ? Int(s) : Int(Int32.max)
        }
        return (scaled(inputHeight), scaled(inputWidth))
    }

    /// The size the image is resized to before the crop, for an h × w image.
    public func resizedSize(height h: Int, width w: Int) throws -> (height: Int, width: Int) {
        let target = scaleSize
        switch cropMode {
        case .squash:
            return target
        case .center where target.height == target.width:
            return Resize(target.height).outputSize(height: h, width: w)
        case .center, .border:
            // timm's ResizeKeepRatio: ratio = max·longest + min·(1 − longest), each side round(side / ratio).
            let longest = cropMode == .border ? 1.0 : 0.0
            let ratioH = Double(h) / Double(target.height), ratioW = Double(w) / Double(target.width)
            let ratio = max(ratioH, ratioW) * longest + min(ratioH, ratioW) * (1 - longest)
            let size = (height: Int((Double(h) * 1 / ratio).rounded(.toNearestOrEven)),
                        width: Int((Double(w) * 1 / ratio).rounded(.toNearestOrEven)))
            guard size.height >= 1, size.width >= 1 else {
                throw Error(reason: "a \(w)×\(h) image resizes to \(size.width)×\(size.height) pixels in \(cropMode.rawValue) mode: "
                    + "its aspect ratio is too extreme")
            }
            return size
        }
    }

    /// The 8-bit RGB crop of `image` at the input size: steps 1–3, before normalisation.
    public func crop(_ image: DecodedImage) throws -> DecodedImage {
        try validate()
        let rgb = image.convertedToRGB()
        let size = try resizedSize(height: rgb.height, width: rgb.width)
        let resized = rgb.resized(width: size.width, height: size.height, filter: interpolation)
        let fill: [UInt8] = cropMode == .border
            ? mean.map { UInt8(clamping: Int((255 * $0).rounded(.toNearestOrEven))) }
            : [0, 0, 0]
        return resized.centerCropped(CenterCrop(height: inputHeight, width: inputWidth), fill: fill)
    }

    /// The crop's values as the [H, W, 3] Float tensor models take: (v / 255 − mean) / std,
    /// each step in Float as torchvision's ToTensor and Normalize compute it.
    public func normalized(_ crop: DecodedImage) -> Tensor {
        require(crop.mode == .RGB, "ImagePreprocessing.normalized", "expected an RGB crop, got \(crop.mode.rawValue)")
        let m = mean.map { Float($0) }, s = std.map { Float($0) }
        let shape = [crop.height, crop.width, 3]
        let storage = TensorStorage(count: crop.pixels.count)
        for i in 0..<crop.pixels.count {
            storage.pointer[i] = (Float(crop.pixels[i]) / 255 - m[i % 3]) / s[i % 3]
        }
        return Tensor(storage: storage, shape: shape, strides: Tensor.contiguousStrides(shape))
    }

    /// The crop as [H, W, 3] pixels v / 255 in [0, 1] (torchvision's ToTensor), before normalisation:
    /// what the analyses perturb.
    public func pixels(_ image: DecodedImage) throws -> Tensor {
        let crop = try crop(image)
        return Tensor(crop.pixels.map { Float($0) / 255 }, shape: [crop.height, crop.width, 3])
    }

    /// The whole transform: the [H, W, 3] tensor for `image` (add a batch axis with `unsqueezed(axis: 0)`).
    public func tensor(_ image: DecodedImage) throws -> Tensor {
        normalized(try crop(image))
    }

    /// Decodes the file at `path` (`ImageIO.decode`) and transforms it.
    public func tensor(contentsOf path: String, maxPixels: Int = ImageIO.defaultMaxPixels) throws -> Tensor {
        try tensor(try ImageIO.decode(path, maxPixels: maxPixels))
    }
}

extension DecodedImage {
    /// The `window` of this image as torchvision's center_crop places it (padding
    /// with `fill`, one value per channel, where the image is smaller than the window).
    func centerCropped(_ window: CenterCrop, fill: [UInt8]) -> DecodedImage {
        let c = channels
        require(fill.count == c, "DecodedImage.centerCropped", "fill has \(fill.count) values for \(c) channels")
        let p = window.placement(height: height, width: width)
        var out = [UInt8](repeating: 0, count: window.height * window.width * c)
        for y in 0..<window.height {
            for x in 0..<window.width {
                // Position in the source image of the padded image's pixel.
                let sy = p.top + y - p.padTop, sx = p.left + x - p.padLeft
                let inside = sy >= 0 && sy < height && sx >= 0 && sx < width
                for ch in 0..<c {
                    out[(y * window.width + x) * c + ch] = inside ? pixels[(sy * width + sx) * c + ch] : fill[ch]
                }
            }
        }
        return DecodedImage(width: window.width, height: window.height, mode: mode, pixels: out)
    }
}
