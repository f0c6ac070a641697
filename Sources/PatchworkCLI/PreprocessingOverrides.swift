import ArgumentParser
import PatchworkData
import PatchworkTrain

/// Options that override a checkpoint's evaluation transform, value by value.
struct PreprocessingOverrides: ParsableArguments {
    @Option(help: "Input side (default: the checkpoint's).") var imgSize: Int?
    @Option(help: "Resize filter: nearest, bilinear, bicubic, lanczos, box, hamming (default: the checkpoint's).")
    var interpolation: String?
    @Option(help: "The fraction of the resized image the centre crop keeps (default: the checkpoint's).") var cropPct: Double?
    @Option(help: "center, squash or border (default: the checkpoint's).") var cropMode: String?
    @Option(help: "Per-channel mean, as R,G,B in [0, 1] (default: the checkpoint's).") var mean: String?
    @Option(help: "Per-channel standard deviation, as R,G,B (default: the checkpoint's).") var std: String?

    func validate() throws {
        if let imgSize { try OptionCheck.integer(imgSize, "--img-size", atLeast: 1, atMost: 4096) }
        if let interpolation, ResampleFilter(rawValue: interpolation) == nil {
            throw ValidationError("--interpolation must be one of \(ResampleFilter.allCases.map(\.rawValue).joined(separator: ", ")), not \(interpolation)")
        }
        if let cropPct, !(cropPct > 0 && cropPct <= 1) { throw ValidationError("--crop-pct must be in (0, 1], not \(cropPct)") }
        if let cropMode, ImagePreprocessing.CropMode(rawValue: cropMode) == nil {
            throw ValidationError("--crop-mode must be one of \(ImagePreprocessing.CropMode.allCases.map(\.rawValue).joined(separator: ", ")), not \(cropMode)")
        }
        _ = try mean.map { try Self.triple($0, "--mean") }
        _ = try std.map { try Self.triple($0, "--std", positive: true) }
    }

    var isEmpty: Bool { imgSize == nil && interpolation == nil && cropPct == nil && cropMode == nil && mean == nil && std == nil }

    /// `input` with the values given here; for a run trained here only --img-size applies.
    func applied(to input: ModelInput) throws -> ModelInput {
        var result = input
        guard var p = input.preprocessing else {
            if interpolation != nil || cropPct != nil || cropMode != nil || mean != nil || std != nil {
                throw ValidationError("--interpolation, --crop-pct, --crop-mode, --mean and --std apply to published checkpoints; "
                                      + "these weights were trained by Patchwork and keep the preprocessing they were trained with")
            }
            return imgSize.map { input.resized(to: $0) } ?? input
        }
        if let imgSize { (p.inputHeight, p.inputWidth) = (imgSize, imgSize); result.imageSize = imgSize }
        if let interpolation { p.interpolation = ResampleFilter(rawValue: interpolation)! }
        if let cropPct { p.cropPct = cropPct }
        if let cropMode { p.cropMode = ImagePreprocessing.CropMode(rawValue: cropMode)! }
        if let mean { p.mean = try Self.triple(mean, "--mean") }
        if let std { p.std = try Self.triple(std, "--std", positive: true) }
        try p.validate()
        result.preprocessing = p
        if !isEmpty { result.name += " (overridden)" }
        return result
    }

    static func triple(_ text: String, _ option: String, positive: Bool = false) throws -> [Double] {
        let values = text.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard values.count == 3, values.allSatisfy({ $0 != nil && $0!.isFinite && (!positive || $0! > 0) }) else {
            throw ValidationError("\(option) takes three \(positive ? "positive " : "")numbers R,G,B, not \"\(text)\"")
        }
        return values.map { $0! }
    }
}
