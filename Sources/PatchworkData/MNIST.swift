import Foundation
import Patchwork

/// MNIST-format data (IDX files): MNIST itself, Fashion-MNIST and any other
/// set in the same layout. Images are [rows, cols, 1] (28×28×1 for MNIST),
/// values byte / 255; the whole split is read into memory once.
///
/// Files, in `directory`, plain or gzipped (recognised by content, so either
/// name works):
/// - train: `train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`
/// - test:  `t10k-images-idx3-ubyte[.gz]`,  `t10k-labels-idx1-ubyte[.gz]`
///
/// (`train-images.idx3-ubyte`, with a dot, as some mirrors name them, is also found.)
public struct MNIST: Dataset {
    public static let digitNames = (0...9).map(String.init)
    public static let fashionNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

    public let count: Int
    public let classNames: [String]
    public let imageShape: [Int]
    /// The files read.
    public let imagesPath: String, labelsPath: String
    private let pixels: [UInt8]
    private let labels: [UInt8]

    /// Reads `split` from `directory`. `classNames` defaults to the digits;
    /// pass `MNIST.fashionNames` for Fashion-MNIST. Every label must be below
    /// `classNames.count`.
    public init(directory: String, split: DatasetSplit, classNames: [String] = MNIST.digitNames) throws {
        guard isFolder(directory) else { throw DataError("\(directory): no such folder (expected the MNIST IDX files in it)") }
        let prefix = split == .train ? "train" : "t10k"
        imagesPath = try MNIST.find(directory, prefix + "-images", "idx3-ubyte")
        labelsPath = try MNIST.find(directory, prefix + "-labels", "idx1-ubyte")
        let imageBytes = try readDataFile(imagesPath)
        let labelBytes = try readDataFile(labelsPath)

        let (imageDims, imageStart) = try MNIST.parseHeader(imageBytes, path: imagesPath, magic: 0x0000_0803, rank: 3)
        let (labelDims, labelStart) = try MNIST.parseHeader(labelBytes, path: labelsPath, magic: 0x0000_0801, rank: 1)
        let (n, rows, cols) = (imageDims[0], imageDims[1], imageDims[2])
        guard rows > 0, cols > 0 else { throw DataError("\(imagesPath): image size \(rows)×\(cols) in the header is empty") }
        let expected = imageStart + n * rows * cols
        guard imageBytes.count == expected else {
            throw DataError("\(imagesPath): \(imageBytes.count) bytes, but its header promises \(n) images of \(rows)×\(cols) "
                + "(\(expected) bytes); the file is \(imageBytes.count < expected ? "truncated" : "longer than its header says")")
        }
        guard labelBytes.count == labelStart + labelDims[0] else {
            throw DataError("\(labelsPath): \(labelBytes.count) bytes, but its header promises \(labelDims[0]) labels "
                + "(\(labelStart + labelDims[0]) bytes); the file is \(labelBytes.count < labelStart + labelDims[0] ? "truncated" : "longer than its header says")")
        }
        guard labelDims[0] == n else {
            throw DataError("count mismatch: \(imagesPath) holds \(n) images but \(labelsPath) holds \(labelDims[0]) labels")
        }
        let labels = Array(labelBytes[labelStart...])
        if let bad = labels.firstIndex(where: { Int($0) >= classNames.count }) {
            throw DataError("\(labelsPath): label \(labels[bad]) of sample \(bad) is not below the \(classNames.count) class names")
        }
        self.count = n
        self.classNames = classNames
        self.imageShape = [rows, cols, 1]
        self.labels = labels
        self.pixels = imageStart == 0 ? imageBytes : Array(imageBytes[imageStart...])
    }

    public func sample(_ index: Int) throws -> (image: Tensor, label: Int) {
        guard index >= 0 && index < count else { throw DataError("MNIST: sample \(index) is outside 0..<\(count)") }
        let size = imageShape[0] * imageShape[1]
        let start = index * size
        let values = pixels[start..<(start + size)].map { Float($0) / 255 }
        return (Tensor(values, shape: imageShape), Int(labels[index]))
    }

    /// The first of the usual names for `stem` that exists in `directory`.
    private static func find(_ directory: String, _ stem: String, _ kind: String) throws -> String {
        let candidates = ["-", "."].flatMap { sep in ["", ".gz"].map { stem + sep + kind + $0 } }
        for name in candidates where FileManager.default.fileExists(atPath: joinPath(directory, name)) {
            return joinPath(directory, name)
        }
        throw DataError("\(joinPath(directory, stem + "-" + kind)): no such file (nor .gz; looked for \(candidates.joined(separator: ", ")))")
    }

    /// IDX header: 4-byte big-endian magic (0, 0, type 0x08 = ubyte, rank),
    /// then one big-endian UInt32 per dimension. Returns the dimensions and the data offset.
    private static func parseHeader(_ bytes: [UInt8], path: String, magic: UInt32, rank: Int) throws -> ([Int], Int) {
        func word(_ at: Int) -> UInt32 {
            (UInt32(bytes[at]) << 24) | (UInt32(bytes[at + 1]) << 16) | (UInt32(bytes[at + 2]) << 8) | UInt32(bytes[at + 3])
        }
        guard bytes.count >= 4 else { throw DataError("\(path): truncated (\(bytes.count) bytes, shorter than the IDX header)") }
        let found = word(0)
        guard found == magic else {
            func hex(_ v: UInt32) -> String { let s = String(v, radix: 16); return "0x" + String(repeating: "0", count: 8 - s.count) + s }
            throw DataError("\(path): bad magic number \(hex(found)) (expected \(hex(magic)), an IDX file of unsigned bytes "
                + "with \(rank) dimension\(rank == 1 ? "" : "s"))")
        }
        let start = 4 + 4 * rank
        guard bytes.count >= start else { throw DataError("\(path): truncated (\(bytes.count) bytes, shorter than the IDX header)") }
        return ((0..<rank).map { Int(word(4 + 4 * $0)) }, start)
    }
}
