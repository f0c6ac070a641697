import Foundation
import Patchwork

/// Opens a dataset from a short text spec, as the CLI takes it:
///
/// | spec                          | dataset |
/// |-------------------------------|---------|
/// | `shapetex[:key=value,…]`      | ShapeTex; keys `size` (32), `seed` (0), `train` (10000), `test` (2000), `noise` (0.02), and the analysis splits' counts `cue-conflict` (900), `shape-only`, `texture-only` (2000) |
/// | `cifar10:PATH`                | CIFAR-10 binary (`PATH` or `PATH/cifar-10-batches-bin`) |
/// | `cifar100:PATH`               | CIFAR-100 binary, 100 fine labels |
/// | `cifar100-coarse:PATH`        | CIFAR-100 binary, 20 coarse labels |
/// | `mnist:PATH`                  | MNIST IDX files, plain or .gz |
/// | `fashion-mnist:PATH`          | Fashion-MNIST (MNIST's format, clothing class names) |
/// | `folder:PATH`                 | `PATH/train/<class>/…` and `PATH/test/<class>/…` image folders |
/// | `imagenet:PATH`               | ImageNet-1k's validation layout, `PATH/<WordNet id>/…` (or `PATH/val/…`), labels by `ImageNet`'s index; one split, given for both |
///
/// `imageSize` resizes to imageSize × imageSize (ShapeTex draws at that size
/// unless its spec names one); `channels` converts between 1 and 3 channels.
/// `maxImagePixels` is the pixel limit of each image of a folder dataset.
/// With `preprocessing`, the images of image files (folder, imagenet) go through
/// that evaluation transform instead (a published checkpoint's, on 8-bit pixels
/// as PIL does it), to pixels in [0, 1] at its input size.
public enum DatasetSpec {
    public static let kinds = ["shapetex", "cifar10", "cifar100", "cifar100-coarse", "mnist", "fashion-mnist", "folder", "imagenet"]
    public static let shapeTexKeys = ["size", "seed", "train", "test", "noise", "cue-conflict", "shape-only", "texture-only"]

    public static func open(_ spec: String, split: DatasetSplit, imageSize: Int? = nil, channels: Int? = nil,
                            maxImagePixels: Int = ImageIO.defaultMaxPixels,
                            preprocessing: ImagePreprocessing? = nil) throws -> any Dataset {
        if let s = imageSize, s <= 0 { throw DataError("image size must be positive, got \(s)") }
        if let c = channels, c != 1 && c != 3 { throw DataError("channels must be 1 or 3, got \(c)") }
        let (kind, argument) = parse(spec)
        let dataset: any Dataset
        switch kind {
        case "shapetex":
            dataset = try shapeTex(spec, split: split == .train ? .train : .test, imageSize: imageSize)!
        case "cifar10", "cifar100", "cifar100-coarse":
            let path = try requirePath(argument, kind, spec)
            let variant: CIFAR.Variant = kind == "cifar10" ? .cifar10 : .cifar100(coarse: kind == "cifar100-coarse")
            dataset = try CIFAR(directory: path, variant: variant, split: split)
        case "mnist", "fashion-mnist":
            let path = try requirePath(argument, kind, spec)
            dataset = try MNIST(directory: path, split: split, classNames: kind == "mnist" ? MNIST.digitNames : MNIST.fashionNames)
        case "folder":
            let path = try requirePath(argument, kind, spec)
            dataset = try openFolder(path, split: split, imageSize: imageSize, maxImagePixels: maxImagePixels,
                                     preprocessing: preprocessing)
        case "imagenet":
            let path = try requirePath(argument, kind, spec)
            let root = isFolder(joinPath(path, "val")) ? joinPath(path, "val") : path
            dataset = try ImageFolder(root: root, height: imageSize, width: imageSize, classNames: ImageNet.wordNetIDs,
                                      maxImagePixels: maxImagePixels, preprocessing: preprocessing)
        default:
            throw DataError("unknown dataset kind \"\(kind)\" in spec \"\(spec)\"; known kinds: \(kinds.joined(separator: ", ")) "
                + "(e.g. shapetex, shapetex:size=64, cifar10:PATH, mnist:PATH, folder:PATH)")
        }
        let shape = dataset.imageShape
        let wantSize = imageSize.map { $0 != shape[0] || $0 != shape[1] } ?? false
        let wantChannels = channels.map { $0 != shape[2] } ?? false
        if !wantSize && !wantChannels { return dataset }
        return try ResizedDataset(dataset, height: imageSize, width: imageSize, channels: channels)
    }

    /// The train and test splits of `spec`.
    public static func openSplits(_ spec: String, imageSize: Int? = nil, channels: Int? = nil,
                                  maxImagePixels: Int = ImageIO.defaultMaxPixels) throws -> (train: any Dataset, test: any Dataset) {
        (try open(spec, split: .train, imageSize: imageSize, channels: channels, maxImagePixels: maxImagePixels),
         try open(spec, split: .test, imageSize: imageSize, channels: channels, maxImagePixels: maxImagePixels))
    }

    /// ShapeTex's split `split` (any of its five, e.g. `.cueConflict`) with the
    /// size, seed, noise and count that `spec` names; nil when `spec` is not a
    /// ShapeTex spec. The count key is the split's name (`train`, `test`,
    /// `cue-conflict`, `shape-only`, `texture-only`).
    public static func shapeTex(_ spec: String, split: ShapeTex.Split, imageSize: Int? = nil) throws -> ShapeTex? {
        let (kind, argument) = parse(spec)
        guard kind == "shapetex" else { return nil }
        let options = try shapeTexOptions(argument ?? "", spec: spec)
        let size = try options["size"].map { try integer($0, "size", spec) } ?? imageSize ?? 32
        let seed = try options["seed"].map { v -> UInt64 in
            guard let s = UInt64(v) else { throw DataError("dataset spec \"\(spec)\": seed \"\(v)\" is not a non-negative integer") }
            return s
        } ?? 0
        // A split of no images evaluates to NaN metrics, and a count past 10⁸ would run for days.
        let count = try options[split.rawValue].map { try integer($0, split.rawValue, spec, in: 1...maximumShapeTexCount) }
        let noise = try options["noise"].map { v -> Float in
            guard let n = Float(v), n >= 0 else { throw DataError("dataset spec \"\(spec)\": noise \"\(v)\" is not a number ≥ 0") }
            return n
        } ?? 0.02
        return try ShapeTex(split: split, count: count, size: size, seed: seed, noise: noise)
    }

    /// (kind, text after the first colon).
    static func parse(_ spec: String) -> (String, String?) {
        guard let colon = spec.firstIndex(of: ":") else { return (spec.lowercased(), nil) }
        return (spec[..<colon].lowercased(), String(spec[spec.index(after: colon)...]))
    }

    static func requirePath(_ argument: String?, _ kind: String, _ spec: String) throws -> String {
        guard let path = argument, !path.isEmpty else {
            throw DataError("dataset spec \"\(spec)\": \(kind) needs a folder, as \(kind):PATH")
        }
        return (path as NSString).expandingTildeInPath
    }

    /// The most images a ShapeTex split may hold (the bound of `eval --limit`).
    public static let maximumShapeTexCount = 100_000_000

    static func integer(_ text: String, _ key: String, _ spec: String, in range: ClosedRange<Int> = 0...Int.max) throws -> Int {
        guard let v = Int(text), range.contains(v) else {
            let wanted = range.upperBound == Int.max ? "a non-negative integer" : "an integer from \(range.lowerBound) to \(range.upperBound)"
            throw DataError("dataset spec \"\(spec)\": \(key) \"\(text)\" is not \(wanted)")
        }
        return v
    }

    static func shapeTexOptions(_ text: String, spec: String) throws -> [String: String] {
        var options: [String: String] = [:]
        for item in text.split(separator: ",") where !item.trimmingCharacters(in: .whitespaces).isEmpty {
            let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, shapeTexKeys.contains(parts[0]) else {
                throw DataError("dataset spec \"\(spec)\": \"\(item)\" is not key=value with a key among \(shapeTexKeys.joined(separator: ", "))")
            }
            options[parts[0]] = parts[1]
        }
        return options
    }

    /// PATH/train or PATH/test; the test split takes the training split's
    /// classes (so labels agree) and, without `imageSize`, its image size.
    static func openFolder(_ path: String, split: DatasetSplit, imageSize: Int?, maxImagePixels: Int,
                           preprocessing: ImagePreprocessing?) throws -> any Dataset {
        let trainPath = joinPath(path, "train"), testPath = joinPath(path, "test")
        guard isFolder(trainPath) && isFolder(testPath) else {
            let missing = [trainPath, testPath].filter { !isFolder($0) }.joined(separator: " and ")
            throw DataError("folder dataset \(path): missing \(missing). Expected the layout PATH/train/<class>/<image> and "
                + "PATH/test/<class>/<image> (PNG, JPEG or BMP; one subfolder per class, the same class names in both)")
        }
        let train = try ImageFolder(root: trainPath, height: imageSize, width: imageSize, maxImagePixels: maxImagePixels,
                                    preprocessing: preprocessing)
        if split == .train { return train }
        return try ImageFolder(root: testPath, height: train.imageShape[0], width: train.imageShape[1], classNames: train.classNames,
                               maxImagePixels: maxImagePixels, preprocessing: preprocessing)
    }
}
