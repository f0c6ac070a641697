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
        let (imageDims, imageStart, imageBytes) = try MNIST.readIDX(imagesPath, magic: 0x0000_0803, rank: 3)
        let (labelDims, labelStart, labelBytes) = try MNIST.readIDX(labelsPath, magic: 0x0000_0801, rank: 1)
        let (n, rows, cols) = (imageDims[0], imageDims[1], imageDims[2])
        guard rows > 0, cols > 0 else { throw DataError("\(imagesPath): image size \(rows)×\(cols) in the header is empty") }
        // With no images, the data size does not bound rows × cols (up to 2^64): checked on its own.
        let (pixels, overflow) = rows.multipliedReportingOverflow(by: cols)
        guard !overflow, pixels <= ImageIO.defaultMaxPixels else {
            throw DataError("\(imagesPath): image size \(rows)×\(cols) in the header is over the limit of \(ImageIO.defaultMaxPixels) pixels")
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

    /// An IDX file (plain or gzipped): its dimensions, the offset of its data and its bytes.
    /// The header is read first, and the data must then be exactly the size the header
    /// promises (computed without overflow): a gzip file is never expanded past that size.
    private static func readIDX(_ path: String, magic: UInt32, rank: Int) throws -> (dims: [Int], start: Int, bytes: [UInt8]) {
        let raw = try readFile(path, limit: maxDataFileBytes, what: "IDX file")
        let start = 4 + 4 * rank
        let gzipped = Gzip.isGzip(raw)
        let dims = try parseHeader(gzipped ? try Gzip.decompressedPrefix(raw, path: path, count: start) : raw,
                                   path: path, magic: magic, rank: rank)
        var dataBytes: Int? = 1
        for d in dims {
            dataBytes = dataBytes.flatMap { let (p, overflow) = $0.multipliedReportingOverflow(by: d); return overflow ? nil : p }
        }
        let promised = rank == 3 ? "\(dims[0]) images of \(dims[1])×\(dims[2])" : "\(dims[0]) labels"
        guard let count = dataBytes, count <= maxDataFileBytes - start else {
            throw DataError("\(path): its header promises \(promised), more than the limit of \(maxDataFileBytes) bytes")
        }
        let size = start + count
        let bytes = gzipped ? try Gzip.decompress(raw, path: path, limit: size) : raw
        guard bytes.count == size else {
            throw DataError("\(path): \(bytes.count) bytes\(gzipped ? " decompressed" : ""), but its header promises \(promised) "
                + "(\(size) bytes with the header); the file is \(bytes.count < size ? "truncated" : "longer than its header says")")
        }
        return (dims, start, bytes)
    }

    /// IDX header: 4-byte big-endian magic (0, 0, type 0x08 = ubyte, rank),
    /// then one big-endian UInt32 per dimension.
    private static func parseHeader(_ bytes: [UInt8], path: String, magic: UInt32, rank: Int) throws -> [Int] {
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
        guard bytes.count >= 4 + 4 * rank else { throw DataError("\(path): truncated (\(bytes.count) bytes, shorter than the IDX header)") }
        return (0..<rank).map { Int(word(4 + 4 * $0)) }
    }
}
