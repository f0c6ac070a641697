import Foundation
import Patchwork

/// A zip archive whose entries are stored (not compressed), the way
/// `torch.save` writes its checkpoints: the central directory is read
/// (zip64 included, for archives over 4 GB) and each entry's bytes are a
/// range of the memory-mapped file, checked to lie inside it.
///
/// Only what `torch.save` writes is taken: compressed or encrypted entries
/// are refused with an error naming the entry, since reading them would need
/// an inflater that torch's own reader does not use either.
struct ZipArchive {
    let path: String
    let bytes: Data
    /// Entry name → byte range of its (stored) data in `bytes`.
    let entries: [String: Range<Int>]
    /// Entry names in central-directory order.
    let names: [String]

    /// The most entries read (a checkpoint has one per storage, plus a few).
    static let maxEntries = 10_000_000

    init(path: String, bytes: Data) throws {
        self.path = path
        self.bytes = bytes
        let reader = ByteReader(bytes: bytes, path: path)
        func fail(_ message: String) -> TorchFileError { TorchFileError(path: path, message) }

        // The end-of-central-directory record: 22 bytes plus a comment of up to 65535 bytes, at the end.
        let eocdSize = 22
        guard bytes.count >= eocdSize else { throw fail("zip archive of \(bytes.count) bytes is shorter than its end record (truncated?)") }
        var eocd: Int?
        var position = bytes.count - eocdSize
        let lowest = max(0, bytes.count - eocdSize - 65535)
        while position >= lowest {
            if try reader.u32(position) == 0x0605_4B50 { eocd = position; break }
            position -= 1
        }
        guard let eocd else { throw fail("no zip end-of-central-directory record (truncated or not a zip archive)") }
        var entryCount = Int(try reader.u16(eocd + 10))
        var directorySize = Int(try reader.u32(eocd + 12))
        var directoryOffset = Int(try reader.u32(eocd + 16))
        // Zip64: the locator just before the end record points at the zip64 end record with 64-bit fields.
        if eocd >= 20, try reader.u32(eocd - 20) == 0x0706_4B50 {
            let zip64 = try reader.u64(eocd - 20 + 8)
            guard bytes.count >= 56, zip64 <= UInt64(bytes.count - 56), try reader.u32(Int(zip64)) == 0x0606_4B50 else {
                throw fail("zip64 end record offset \(zip64) does not point at a zip64 end record")
            }
            let record = Int(zip64)
            let count64 = try reader.u64(record + 32), size64 = try reader.u64(record + 40), offset64 = try reader.u64(record + 48)
            guard count64 <= UInt64(ZipArchive.maxEntries), size64 <= UInt64(bytes.count), offset64 <= UInt64(bytes.count) else {
                throw fail("zip64 end record gives \(count64) entries, a \(size64)-byte directory at \(offset64): outside the \(bytes.count)-byte file")
            }
            (entryCount, directorySize, directoryOffset) = (Int(count64), Int(size64), Int(offset64))
        }
        guard directoryOffset <= bytes.count, directorySize <= bytes.count - directoryOffset else {
            throw fail("zip central directory (\(directorySize) bytes at \(directoryOffset)) runs past the end of the \(bytes.count)-byte file (truncated?)")
        }

        var entries: [String: Range<Int>] = [:]
        var names: [String] = []
        var at = directoryOffset
        let directoryEnd = directoryOffset + directorySize
        for index in 0..<entryCount {
            guard at + 46 <= directoryEnd, try reader.u32(at) == 0x0201_4B50 else {
                throw fail("zip central directory entry \(index) at byte \(at) is missing or damaged")
            }
            let flags = try reader.u16(at + 8), method = try reader.u16(at + 10)
            var compressedSize = UInt64(try reader.u32(at + 20)), size = UInt64(try reader.u32(at + 24))
            let nameLength = Int(try reader.u16(at + 28)), extraLength = Int(try reader.u16(at + 30)), commentLength = Int(try reader.u16(at + 32))
            var localOffset = UInt64(try reader.u32(at + 42))
            let nameStart = at + 46, extraStart = nameStart + nameLength, next = extraStart + extraLength + commentLength
            guard next <= directoryEnd else { throw fail("zip central directory entry \(index) runs past the directory's end") }
            let name = String(decoding: bytes[bytes.startIndex + nameStart ..< bytes.startIndex + extraStart], as: UTF8.self)
            // The zip64 extra field holds, in this order, whichever of the three fields are 0xFFFFFFFF.
            var extra = extraStart
            while extra + 4 <= extraStart + extraLength {
                let id = try reader.u16(extra), length = Int(try reader.u16(extra + 2))
                guard extra + 4 + length <= extraStart + extraLength else { break }
                if id == 0x0001 {
                    var field = extra + 4
                    for keyPath in [0, 1, 2] {
                        let value = [size, compressedSize, localOffset][keyPath]
                        guard value == 0xFFFF_FFFF else { continue }
                        guard field + 8 <= extra + 4 + length else { throw fail("zip entry \"\(name)\": zip64 extra field is too short") }
                        let wide = try reader.u64(field)
                        switch keyPath { case 0: size = wide; case 1: compressedSize = wide; default: localOffset = wide }
                        field += 8
                    }
                }
                extra += 4 + length
            }
            guard flags & 1 == 0 else { throw fail("zip entry \"\(name)\" is encrypted") }
            guard method == 0 else {
                throw fail("zip entry \"\(name)\" is compressed (method \(method)); torch.save stores entries uncompressed, and only those are read")
            }
            guard compressedSize == size else { throw fail("zip entry \"\(name)\" is stored but its sizes differ (\(compressedSize) and \(size))") }
            // The local header repeats the name and has its own extra field; the data follows it.
            guard bytes.count >= 30, localOffset <= UInt64(bytes.count - 30), try reader.u32(Int(localOffset)) == 0x0403_4B50 else {
                throw fail("zip entry \"\(name)\": local header offset \(localOffset) does not point at a local header (file of \(bytes.count) bytes)")
            }
            let local = Int(localOffset)
            let dataStart = local + 30 + Int(try reader.u16(local + 26)) + Int(try reader.u16(local + 28))
            guard dataStart <= bytes.count, size <= UInt64(bytes.count - dataStart) else {
                throw fail("zip entry \"\(name)\" (\(size) bytes at \(dataStart)) runs past the end of the \(bytes.count)-byte file (truncated?)")
            }
            guard entries[name] == nil else { throw fail("zip archive has the entry \"\(name)\" twice") }
            entries[name] = dataStart ..< dataStart + Int(size)
            names.append(name)
            at = next
        }
        self.entries = entries
        self.names = names
    }
}

/// Little-endian reads from a byte buffer that throw, naming the file, instead of reading past its end.
struct ByteReader {
    let bytes: Data
    let path: String

    func u8(_ offset: Int) throws -> UInt8 {
        guard offset >= 0, offset < bytes.count else { throw TorchFileError(path: path, "read past the end of the file at byte \(offset)") }
        return bytes[bytes.startIndex + offset]
    }

    func little(_ offset: Int, _ width: Int) throws -> UInt64 {
        guard offset >= 0, width <= bytes.count, offset <= bytes.count - width else {
            throw TorchFileError(path: path, "read of \(width) bytes at byte \(offset) runs past the end of the \(bytes.count)-byte file (truncated?)")
        }
        return bytes.withUnsafeBytes { raw in
            var v: UInt64 = 0
            for k in 0..<width { v |= UInt64(raw[offset + k]) << (8 * UInt64(k)) }
            return v
        }
    }

    func u16(_ offset: Int) throws -> UInt16 { UInt16(try little(offset, 2)) }
    func u32(_ offset: Int) throws -> UInt32 { UInt32(try little(offset, 4)) }
    func u64(_ offset: Int) throws -> UInt64 { try little(offset, 8) }
}

/// A torch checkpoint that cannot be read: names the file and what is wrong with it.
public struct TorchFileError: Error, CustomStringConvertible {
    public let path: String
    public let message: String
    public init(path: String, _ message: String) { self.path = path; self.message = message }
    public var description: String { "\(path): \(message)" }
}
