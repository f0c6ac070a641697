import Foundation
import Patchwork
import PatchworkData
import PatchworkModels

/// How images become a model's input, in the two steps the analyses keep apart: an image file becomes
/// [0, 1] pixels at the model's input size (`pixels(contentsOf:)`), and pixels become the tensor the
/// model takes (`normalized`). Perturbations (noise, attacks, corruptions) happen in between.
///
/// Weights trained by Patchwork use Patchwork's pipeline, recorded in their files; a reference checkpoint
/// uses its reference's evaluation transform (`PretrainedConfig`, timm's `create_transform` for eval,
/// on 8-bit pixels as PIL does it).
public struct ModelInput: Codable, Sendable, Equatable {
    /// What the settings are: "patchwork", or the pretrained configuration's name (`resnet18.a1_in1k`).
    public var name: String
    /// The reference's evaluation transform; nil for Patchwork's pipeline (decode to [0, 1], resize
    /// bilinearly, antialiased, to `imageSize` × `imageSize`, standardise as (x − 0.5)·4).
    public var preprocessing: ImagePreprocessing?
    /// The side images are resized to by Patchwork's pipeline.
    public var imageSize: Int
    /// The model takes its channels as BGR (pycls checkpoints, trained on OpenCV's order).
    public var bgr: Bool

    /// The weights file metadata key a run records its input pipeline under (JSON).
    public static let metadataKey = "input"

    /// The JSON recorded under `metadataKey`, with sorted keys: the same bytes every run, since runs are
    /// compared by their weights' SHA-256.
    public func metadataValue() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// Patchwork's own pipeline, at `imageSize`.
    public static func patchwork(imageSize: Int) -> ModelInput {
        ModelInput(name: "patchwork", preprocessing: nil, imageSize: imageSize, bgr: false)
    }

    /// The evaluation transform of a published checkpoint, at `imageSize` when given (else the checkpoint's
    /// own input size): the crop keeps its fraction of the resized image.
    public static func reference(_ config: PretrainedConfig, imageSize: Int? = nil) throws -> ModelInput {
        guard let filter = ResampleFilter(rawValue: config.interpolation) else {
            throw ModelError("\(config.name): unknown interpolation \"\(config.interpolation)\"")
        }
        guard let mode = ImagePreprocessing.CropMode(rawValue: config.cropMode) else {
            throw ModelError("\(config.name): unknown crop mode \"\(config.cropMode)\"")
        }
        let (height, width) = imageSize.map { ($0, $0) } ?? (config.inputSize[0], config.inputSize[1])
        let preprocessing = ImagePreprocessing(inputHeight: height, inputWidth: width, interpolation: filter, mean: config.mean,
                                               std: config.std, cropPct: config.cropPct, cropMode: mode)
        try preprocessing.validate()
        return ModelInput(name: config.name, preprocessing: preprocessing, imageSize: max(height, width),
                          bgr: config.channelOrder == "bgr")
    }

    /// timm's default evaluation transform (ImageNet mean and std, bicubic, crop 0.875) at `imageSize`.
    public static func imageNetDefault(imageSize: Int) -> ModelInput {
        var preprocessing = ImagePreprocessing.imageNetDefault
        (preprocessing.inputHeight, preprocessing.inputWidth) = (imageSize, imageSize)
        return ModelInput(name: "imagenet", preprocessing: preprocessing, imageSize: imageSize, bgr: false)
    }

    /// The same pipeline at input side `side` (the crop keeps its fraction of the resized image).
    public func resized(to side: Int) -> ModelInput {
        var result = self
        result.imageSize = side
        if var p = preprocessing { (p.inputHeight, p.inputWidth) = (side, side); result.preprocessing = p }
        return result
    }

    /// One line for logs: what the input is and where it comes from.
    public var summary: String {
        guard let p = preprocessing else { return "\(imageSize)×\(imageSize), Patchwork's standardisation (x − 0.5)·4" }
        func list(_ v: [Double]) -> String { v.map { String(format: "%g", $0) }.joined(separator: ", ") }
        return "\(p.inputWidth)×\(p.inputHeight) from \(name): \(p.interpolation.rawValue), crop \(p.cropPct) (\(p.cropMode.rawValue)), "
            + "mean (\(list(p.mean))), std (\(list(p.std)))\(bgr ? ", BGR" : "")"
    }

    /// The input's height and width.
    public var size: (height: Int, width: Int) {
        preprocessing.map { ($0.inputHeight, $0.inputWidth) } ?? (imageSize, imageSize)
    }

    /// The image file at `path` as [H, W, 3] pixels in [0, 1] at the input size.
    public func pixels(contentsOf path: String, maxPixels: Int = ImageIO.defaultMaxPixels) throws -> Tensor {
        guard let preprocessing else {
            return resizedImage(try ImageIO.load(path, channels: 3, maxPixels: maxPixels), to: (imageSize, imageSize))
        }
        return try preprocessing.pixels(try ImageIO.decode(path, maxPixels: maxPixels))
    }

    /// Pixels [..., H, W, 3] in [0, 1] as the model takes them.
    public func normalized(_ pixels: Tensor) -> Tensor {
        guard let preprocessing else { return standardize(pixels) }
        let mean = Tensor(preprocessing.mean.map { Float($0) }), std = Tensor(preprocessing.std.map { Float($0) })
        let normalized = (pixels - mean) / std
        return bgr ? normalized.flipped(axes: [normalized.shape.count - 1]) : normalized
    }
}
