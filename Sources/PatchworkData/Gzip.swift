import CZlib
import Foundation

/// gzip decompression through Debian's zlib, for MNIST's `.gz` files.
public enum Gzip {
    /// True when `bytes` begin with the gzip magic number (1f 8b).
    public static func isGzip(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
    }

    /// The decompressed contents of gzip data (concatenated members are
    /// joined, as `gunzip` does). `path` only names the source in errors.
    public static func decompress(_ compressed: [UInt8], path: String) throws -> [UInt8] {
        if compressed.isEmpty { throw DataError("\(path): empty file, not gzip data") }
        var stream = z_stream()
        // windowBits 15 + 32: detect a gzip or zlib header automatically.
        guard inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw DataError("\(path): cannot start zlib inflation")
        }
        defer { inflateEnd(&stream) }
        var output = [UInt8]()
        output.reserveCapacity(compressed.count * 4)
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
                output.append(contentsOf: buffer[0..<produced])
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

/// The bytes of a data file, gunzipped when it is gzip data (by its magic
/// number, whatever its name). Errors name the file.
func readDataFile(_ path: String) throws -> [UInt8] {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw DataError("\(path): no such file")
    }
    if isDirectory.boolValue { throw DataError("\(path): is a folder, expected a file") }
    guard let data = FileManager.default.contents(atPath: path) else {
        throw DataError("\(path): cannot read (permissions?)")
    }
    let bytes = [UInt8](data)
    return Gzip.isGzip(bytes) ? try Gzip.decompress(bytes, path: path) : bytes
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
