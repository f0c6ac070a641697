import Foundation
import Patchwork

/// CIFAR-10 and CIFAR-100, binary versions, as downloaded and unpacked:
///
/// - CIFAR-10, `cifar-10-batches-bin/`: `data_batch_1.bin` … `data_batch_5.bin`
///   (train), `test_batch.bin` (test), `batches.meta.txt` (class names). A
///   record is 1 label byte + 3072 pixel bytes (3073 bytes).
/// - CIFAR-100, `cifar-100-binary/`: `train.bin`, `test.bin`,
///   `fine_label_names.txt`, `coarse_label_names.txt`. A record is 1 coarse
///   label byte + 1 fine label byte + 3072 pixel bytes (3074 bytes).
///
/// Pixels are stored channel-major (1024 red, 1024 green, 1024 blue, each
/// 32 rows of 32); samples come out as [32, 32, 3] channels-last, byte / 255.
/// `directory` may be the unpacked folder itself or the folder holding it.
/// The split is read into memory once (as bytes: 150 MB for CIFAR-10 train).
public struct CIFAR: Dataset {
    public enum Variant: Sendable, Equatable {
        case cifar10
        /// `coarse`: label by the 20 superclasses instead of the 100 classes.
        case cifar100(coarse: Bool = false)

        /// The name of the unpacked folder.
        public var folderName: String { self == .cifar10 ? "cifar-10-batches-bin" : "cifar-100-binary" }
        var labelBytes: Int { self == .cifar10 ? 1 : 2 }
        var recordSize: Int { labelBytes + 3072 }
    }

    public static let recordPixels = 3072

    public let variant: Variant
    public let count: Int
    public let classNames: [String]
    public var imageShape: [Int] { [32, 32, 3] }
    /// The folder the batch files were read from.
    public let folder: String
    private let records: [UInt8]

    public init(directory: String, variant: Variant = .cifar10, split: DatasetSplit) throws {
        self.variant = variant
        guard isFolder(directory) else {
            throw DataError("\(directory): no such folder (expected the unpacked \(variant.folderName) folder, or the folder holding it)")
        }
        let nested = joinPath(directory, variant.folderName)
        let folder = isFolder(nested) ? nested : directory
        self.folder = folder

        let files: [String]
        switch (variant, split) {
        case (.cifar10, .train): files = (1...5).map { "data_batch_\($0).bin" }
        case (.cifar10, .test): files = ["test_batch.bin"]
        case (.cifar100, .train): files = ["train.bin"]
        case (.cifar100, .test): files = ["test.bin"]
        }
        let paths = files.map { joinPath(folder, $0) }
        let missing = paths.filter { !FileManager.default.fileExists(atPath: $0) }
        if !missing.isEmpty {
            throw DataError("missing CIFAR file\(missing.count > 1 ? "s" : ""): \(missing.joined(separator: ", ")) "
                + "(expected the binary version unpacked into \(variant.folderName)/)")
        }

        let record = variant.recordSize
        var records = [UInt8](), fileRecords = [Int]()
        for path in paths {
            let data = try readFile(path, limit: maxDataFileBytes, what: "CIFAR batch file")
            if data.isEmpty { throw DataError("\(path): empty file (expected \(record)-byte records)") }
            guard data.count % record == 0 else {
                throw DataError("\(path): size \(data.count) is not a multiple of the \(record)-byte record "
                    + "(\(data.count / record) whole records and \(data.count % record) bytes left over: truncated, or not a "
                    + "\(variant == .cifar10 ? "CIFAR-10" : "CIFAR-100") binary file?)")
            }
            records.append(contentsOf: data)
            fileRecords.append(data.count / record)
        }

        let (classes, fallback): (Int, [String])
        let namesFile: String
        switch variant {
        case .cifar10: (classes, fallback, namesFile) = (10, CIFAR.cifar10Names, "batches.meta.txt")
        case .cifar100(let coarse):
            (classes, fallback, namesFile) = coarse ? (20, CIFAR.cifar100CoarseNames, "coarse_label_names.txt")
                                                    : (100, CIFAR.cifar100FineNames, "fine_label_names.txt")
        }
        // Check every label once here, so `sample` cannot meet a bad one.
        let labelOffset = variant.labelLabelOffset
        var first = 0
        for (path, n) in zip(paths, fileRecords) {
            for r in 0..<n where Int(records[(first + r) * record + labelOffset]) >= classes {
                throw DataError("\(path): record \(r) has label \(records[(first + r) * record + labelOffset]), "
                    + "not below the \(classes) classes (not a \(variant == .cifar10 ? "CIFAR-10" : "CIFAR-100") binary file?)")
            }
            first += n
        }
        let n = records.count / record
        self.count = n
        self.records = records
        self.classNames = CIFAR.readNames(joinPath(folder, namesFile), count: classes) ?? fallback
    }

    public func sample(_ index: Int) throws -> (image: Tensor, label: Int) {
        guard index >= 0 && index < count else { throw DataError("CIFAR: sample \(index) is outside 0..<\(count)") }
        return (image(index), label(index))
    }

    /// The label of sample `index` (fine or coarse as chosen for CIFAR-100).
    public func label(_ index: Int) -> Int { Int(records[index * variant.recordSize + variant.labelLabelOffset]) }

    /// CIFAR-100's coarse (superclass) label of sample `index`; nil for CIFAR-10.
    public func coarseLabel(_ index: Int) -> Int? {
        variant == .cifar10 ? nil : Int(records[index * variant.recordSize])
    }

    /// CIFAR-100's fine label of sample `index`; nil for CIFAR-10.
    public func fineLabel(_ index: Int) -> Int? {
        variant == .cifar10 ? nil : Int(records[index * variant.recordSize + 1])
    }

    private func image(_ index: Int) -> Tensor {
        var values = [Float](repeating: 0, count: CIFAR.recordPixels)
        let start = index * variant.recordSize + variant.labelBytes
        records.withUnsafeBufferPointer { src in
            let p = src.baseAddress! + start
            for c in 0..<3 {
                for i in 0..<1024 { values[i * 3 + c] = Float(p[c * 1024 + i]) * (1 / 255) }
            }
        }
        return Tensor(values, shape: [32, 32, 3])
    }

    /// One name per non-empty line, if the file holds exactly `count` of them.
    static func readNames(_ path: String, count: Int) -> [String]? {
        guard let bytes = try? readFile(path, limit: 1 << 20, what: "class names file"),
              let text = String(bytes: bytes, encoding: .utf8) else { return nil }
        let names = text.split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return names.count == count ? names : nil
    }

    public static let cifar10Names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    public static let cifar100CoarseNames = [
        "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables", "household_electrical_devices",
        "household_furniture", "insects", "large_carnivores", "large_man-made_outdoor_things",
        "large_natural_outdoor_scenes", "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates",
        "people", "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2",
    ]

    public static let cifar100FineNames = [
        "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
        "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
        "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
        "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
        "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
        "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
        "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
        "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
        "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
        "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
    ]
}

extension CIFAR.Variant {
    /// Offset of the byte `label` reads within a record.
    var labelLabelOffset: Int {
        switch self {
        case .cifar10: return 0
        case .cifar100(let coarse): return coarse ? 0 : 1
        }
    }
}
