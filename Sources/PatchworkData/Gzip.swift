import CZlib
import Foundation
import Patchwork

/// gzip decompression through Debian's zlib, for MNIST's `.gz` files.
public enum Gzip {
    /// True when `bytes` begin with the gzip magic number (1f 8b).
    public static func isGzip(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
    }

    /// The decompressed contents of gzip data (concatenated members are
    /// joined, as `gunzip` does), refused as soon as they would pass `limit`
    /// bytes: a small file that expands to gigabytes never gets the memory.
    /// `path` only names the source in errors.
    public static func decompress(_ compressed: [UInt8], path: String, limit: Int) throws -> [UInt8] {
        let output = try inflateStream(compressed, path: path, stopAfter: limit + 1)
        guard output.count <= limit else {
            throw DataError("\(path): gzip data expands to more than the limit of \(limit) bytes")
        }
        return output
    }

    /// The first `count` decompressed bytes (fewer when the data is shorter),
    /// without decompressing the rest: enough to read a header.
    public static func decompressedPrefix(_ compressed: [UInt8], path: String, count: Int) throws -> [UInt8] {
        try inflateStream(compressed, path: path, stopAfter: count)
    }

    /// Inflates `compressed` until it ends or `stopAfter` bytes are out (then returns those).
    private static func inflateStream(_ compressed: [UInt8], path: String, stopAfter: Int) throws -> [UInt8] {
        if compressed.isEmpty { throw DataError("\(path): empty file, not gzip data") }
        var stream = z_stream()
        // windowBits 15 + 32: detect a gzip or zlib header automatically.
        guard inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw DataError("\(path): cannot start zlib inflation")
        }
        defer { inflateEnd(&stream) }
        var output = [UInt8]()
        // The gzip trailer's size (modulo 2^32) is only a hint from the file, so it never reserves past the stop.
        if compressed.count >= 18 {
            let n = compressed.count
            let hint = Int(compressed[n - 4]) | Int(compressed[n - 3]) << 8 | Int(compressed[n - 2]) << 16 | Int(compressed[n - 1]) << 24
            output.reserveCapacity(min(hint, stopAfter))
        }
        let chunk = 1 << 16
        var buffer = [UInt8](repeating: 0, count: chunk)
        try compressed.withUnsafeBufferPointer { input in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress!)
            stream.avail_in = UInt32(input.count)
            while true {
                let (status, produced) = buffer.withUnsafeMutableBufferPointer { out -> (Int32, Int) in
                    stream.next_out = out.baseAddress
                    stream.avail_out = UInt32(chunk)
                    let status = inflate(&stream, Z_NO_FLUSH)
                    return (status, chunk - Int(stream.avail_out))
                }
                output.append(contentsOf: buffer[0..<min(produced, stopAfter - output.count)])
                if output.count == stopAfter { return }
                switch status {
                case Z_STREAM_END:
                    // Another gzip member may follow (skip trailing zero padding).
                    let rest = Int(stream.avail_in)
                    let start = input.count - rest
                    if rest == 0 || input[start...].allSatisfy({ $0 == 0 }) { return }
                    guard inflateReset(&stream) == Z_OK else { throw DataError("\(path): cannot reset zlib inflation") }
                case Z_OK:
                    continue
                case Z_BUF_ERROR where stream.avail_in == 0:
                    throw DataError("\(path): truncated gzip data (ended after \(output.count) decompressed bytes)")
                default:
                    let why = stream.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                    throw DataError("\(path): corrupt gzip data (\(why))")
                }
            }
        }
        return output
    }
}

/// The largest data file (IDX, CIFAR batch) read, after decompression: a whole
/// split is held in memory, and EMNIST's largest IDX file is 550 MB.
public let maxDataFileBytes = 1 << 30

/// `BoundedFile.read` with its error as a `DataError`, as the data readers throw.
func readFile(_ path: String, limit: Int, what: String) throws -> [UInt8] {
    do { return try BoundedFile.read(path, limit: limit, what: what) } catch let error as FileReadError {
        throw DataError(error.description)
    }
}

/// Whether `path` is an existing folder.
func isFolder(_ path: String) -> Bool {
    var isDirectory: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
}

/// `path` joined with `component`.
func joinPath(_ path: String, _ component: String) -> String {
    (path as NSString).appendingPathComponent(component)
}
