import Foundation
import Patchwork

/// The safetensors format: an 8-byte little-endian header length, a JSON
/// header mapping each tensor name to its dtype, shape and byte range, then
/// the raw little-endian bytes. This is the format of Hugging Face and timm
/// checkpoints, so files from either load as they are.
///
/// Reading validates everything before any tensor is handed out: a corrupt,
/// truncated or inconsistent file throws a `SafetensorsError` naming the file
/// and, where one is at fault, the key.
public struct Safetensors {
    public enum DType: String, CaseIterable, Sendable {
        case F32, F16, BF16, I64, I32, F64, I8, U8, BOOL

        public var byteSize: Int {
            switch self {
            case .F64, .I64: return 8
            case .F32, .I32: return 4
            case .F16, .BF16: return 2
            case .I8, .U8, .BOOL: return 1
            }
        }
    }

    public struct Entry: Sendable {
        public let dtype: DType
        public let shape: [Int]
        /// Byte range within the data section (after the header).
        public let range: Range<Int>
    }

    public let path: String
    public let metadata: [String: String]
    public let entries: [String: Entry]
    /// Tensor names in file order (by byte offset).
    public let names: [String]
    private let bytes: Data
    private let dataStart: Int

    /// The largest header read (as the reference Rust reader's `MAX_HEADER_SIZE`).
    public static let maxHeaderBytes = 100_000_000

    /// Reads and validates the header of `path`; tensor data is memory-mapped.
    public init(contentsOf path: String) throws {
        self.path = path
        let data: Data
        do { data = try BoundedFile.map(path, what: "safetensors file") } catch let error as FileReadError {
            throw SafetensorsError(path: path, key: nil, error.reason)
        }
        bytes = data
        guard data.count >= 8 else {
            throw SafetensorsError(path: path, key: nil, "file is \(data.count) bytes, shorter than the 8-byte header length")
        }
        let headerLength = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 0, as: UInt64.self)) }
        guard headerLength <= UInt64(Safetensors.maxHeaderBytes) else {
            throw SafetensorsError(path: path, key: nil, "header length \(headerLength) is over the limit of \(Safetensors.maxHeaderBytes) bytes")
        }
        guard headerLength <= UInt64(data.count - 8) else {
            throw SafetensorsError(path: path, key: nil, "header length \(headerLength) runs past the end of the file (\(data.count) bytes; truncated?)")
        }
        dataStart = 8 + Int(headerLength)
        let headerBytes = data.subdata(in: 8..<dataStart)
        // The format's header is UTF-8 JSON starting with "{". JSONSerialization would also take
        // UTF-16 and UTF-32 (and a byte-order mark), which the reference readers refuse; it tells
        // them by their zero bytes, which UTF-8 JSON never holds.
        guard headerBytes.first == UInt8(ascii: "{"), !headerBytes.contains(0), String(data: headerBytes, encoding: .utf8) != nil else {
            throw SafetensorsError(path: path, key: nil, "header is not UTF-8 JSON beginning with \"{\"")
        }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: headerBytes)
        } catch {
            throw SafetensorsError(path: path, key: nil, "header is not valid JSON (\(error.localizedDescription))")
        }
        guard let header = json as? [String: Any] else {
            throw SafetensorsError(path: path, key: nil, "header is not a JSON object")
        }
        // JSONSerialization keeps one of two equal keys without a word; the file is ambiguous.
        if let duplicate = Safetensors.duplicateKey(inJSON: [UInt8](headerBytes)) {
            let inMetadata = duplicate.tensor == "__metadata__"
            throw SafetensorsError(path: path, key: inMetadata ? nil : duplicate.tensor, "header has the key \"\(duplicate.key)\" twice"
                + (inMetadata ? " in __metadata__" : duplicate.tensor == nil ? "" : " in this tensor's entry"))
        }
        var metadata: [String: String] = [:]
        if let meta = header["__metadata__"] {
            guard let m = meta as? [String: String] else {
                throw SafetensorsError(path: path, key: "__metadata__", "metadata must map strings to strings")
            }
            metadata = m
        }
        let dataLength = data.count - dataStart
        var entries: [String: Entry] = [:]
        for (name, value) in header where name != "__metadata__" {
            guard let info = value as? [String: Any] else {
                throw SafetensorsError(path: path, key: name, "entry is not a JSON object")
            }
            guard let dtypeName = info["dtype"] as? String else {
                throw SafetensorsError(path: path, key: name, "missing dtype")
            }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw SafetensorsError(path: path, key: name, "unknown dtype \"\(dtypeName)\" (known: \(DType.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            guard let shapeValues = info["shape"] as? [Any], let shape = Safetensors.integers(shapeValues), shape.allSatisfy({ $0 >= 0 }) else {
                throw SafetensorsError(path: path, key: name, "shape must be a list of non-negative integers")
            }
            guard let offsetValues = info["data_offsets"] as? [Any], let offsets = Safetensors.integers(offsetValues), offsets.count == 2 else {
                throw SafetensorsError(path: path, key: name, "data_offsets must be two integers")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, begin <= end, end <= dataLength else {
                throw SafetensorsError(path: path, key: name, "data_offsets [\(begin), \(end)] are outside the data section (\(dataLength) bytes)")
            }
            // Every product is checked: a shape such as [2^31, 2^31] must not wrap to a small size.
            // Zeros count as ones here, so an empty tensor of shape [0, 2^40, 2^40] cannot pass
            // with 0 bytes and overflow later, when its strides are computed.
            var byteCount: Int? = dtype.byteSize
            for d in shape {
                guard let b = byteCount else { break }
                let (product, overflow) = b.multipliedReportingOverflow(by: Swift.max(d, 1))
                byteCount = overflow ? nil : product
            }
            if shape.contains(0) && byteCount != nil { byteCount = 0 }
            guard let needed = byteCount else {
                throw SafetensorsError(path: path, key: name, "shape \(shape) is too large: its size in bytes (× \(dtype.rawValue)) passes 2^63")
            }
            guard needed == end - begin else {
                throw SafetensorsError(path: path, key: name, "shape \(shape) × \(dtype.rawValue) (\(dtype.byteSize) bytes) needs "
                    + "\(needed) bytes, but data_offsets [\(begin), \(end)] give \(end - begin)")
            }
            entries[name] = Entry(dtype: dtype, shape: shape, range: begin..<end)
        }
        let ordered = entries.sorted { ($0.value.range.lowerBound, $0.key) < ($1.value.range.lowerBound, $1.key) }
        for (a, b) in zip(ordered, ordered.dropFirst()) where a.value.range.overlaps(b.value.range) {
            throw SafetensorsError(path: path, key: b.key, "bytes \(b.value.range) overlap those of \"\(a.key)\" \(a.value.range)")
        }
        self.metadata = metadata
        self.entries = entries
        self.names = ordered.map(\.key)
    }

    /// The first key that appears twice in one object of `json` (well-formed
    /// JSON text), with the top-level key whose value holds it (nil at the top
    /// level). Keys are compared after unescaping, so `"a"` and `"\u0061"` are equal.
    static func duplicateKey(inJSON json: [UInt8]) -> (key: String, tensor: String?)? {
        // One frame per open object or array: the keys seen so far (nil for an array) and the last key.
        var frames: [(keys: Set<String>?, lastKey: String?)] = []
        var expectingKey = false
        var i = 0
        while i < json.count {
            switch json[i] {
            case UInt8(ascii: "{"): frames.append(([], nil)); expectingKey = true
            case UInt8(ascii: "["): frames.append((nil, nil)); expectingKey = false
            case UInt8(ascii: "}"), UInt8(ascii: "]"): _ = frames.popLast(); expectingKey = false
            case UInt8(ascii: ","): expectingKey = frames.last?.keys != nil
            case UInt8(ascii: "\""):
                let start = i
                i += 1
                // (Bounds-checked although JSONSerialization has parsed the text: the scan trusts nothing.)
                while i < json.count && json[i] != UInt8(ascii: "\"") { i += json[i] == UInt8(ascii: "\\") ? 2 : 1 }
                if expectingKey, i < json.count, frames.last?.keys != nil {
                    let raw = Array(json[start...i])
                    let key = raw.contains(UInt8(ascii: "\\"))
                        ? (try? JSONSerialization.jsonObject(with: Data(raw), options: .fragmentsAllowed)) as? String ?? ""
                        : String(decoding: raw.dropFirst().dropLast(), as: UTF8.self)
                    if frames[frames.count - 1].keys!.insert(key).inserted == false {
                        return (key, frames.count > 1 ? frames[0].lastKey : nil)
                    }
                    frames[frames.count - 1].lastKey = key
                    expectingKey = false
                }
            default: break
            }
            i += 1
        }
        return nil
    }

    private static func integers(_ values: [Any]) -> [Int]? {
        var out: [Int] = []
        for v in values {
            guard let n = v as? NSNumber, n.doubleValue == n.doubleValue.rounded(), Swift.abs(n.doubleValue) < 0x1p53 else { return nil }
            out.append(n.intValue)
        }
        return out
    }

    private func entry(_ name: String) throws -> Entry {
        guard let e = entries[name] else { throw SafetensorsError(path: path, key: name, "no such tensor in the file") }
        return e
    }

    /// The tensor `name` converted to Float32 (integers convert exactly up to 2^24).
    public func tensor(_ name: String) throws -> Tensor {
        let e = try entry(name)
        let count = e.shape.reduce(1, *)
        let values = bytes.withUnsafeBytes { raw in e.dtype.decode(raw.baseAddress! + dataStart + e.range.lowerBound, count: count) }
        return Tensor(values, shape: e.shape)
    }

    /// An integer tensor (I64, I32, I8, U8, BOOL) as Int values.
    public func integers(_ name: String) throws -> [Int] {
        let e = try entry(name)
        guard [.I64, .I32, .I8, .U8, .BOOL].contains(e.dtype) else {
            throw SafetensorsError(path: path, key: name, "dtype \(e.dtype.rawValue) is not an integer type")
        }
        return try tensor(name).scalars.map { Int($0) }
    }

    // MARK: Writing

    /// Writes `tensors` (name → value, stored as `dtype`) with `metadata`.
    ///
    /// Keys are written in sorted order with 8-byte aligned header padding, as
    /// the reference Python writer does. The file goes to a temporary name
    /// first and is renamed into place, so an existing file is never lost to
    /// a failed write.
    public static func write(_ tensors: [String: Tensor], dtypes: [String: DType] = [:], metadata: [String: String] = [:],
                             to path: String) throws {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var payload = Data()
        for name in tensors.keys.sorted() {
            let t = tensors[name]!
            let dtype = dtypes[name] ?? .F32
            let begin = payload.count
            payload.append(encode(t.scalars, as: dtype))
            header[name] = ["dtype": dtype.rawValue, "shape": t.shape, "data_offsets": [begin, payload.count]] as [String: Any]
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        var file = Data()
        var length = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &length) { file.append(contentsOf: $0) }
        file.append(json)
        file.append(payload)
        try AtomicFile.write(file, to: path)
    }

    static func encode(_ values: [Float], as dtype: DType) -> Data {
        var data = Data(capacity: values.count * dtype.byteSize)
        func append<T>(_ v: T) { withUnsafeBytes(of: v) { data.append(contentsOf: $0) } }
        for v in values {
            switch dtype {
            case .F32: append(v.bitPattern.littleEndian)
            case .F64: append(Double(v).bitPattern.littleEndian)
            case .F16: append(HalfPrecision.half(fromFloat: v).littleEndian)
            case .BF16: append(HalfPrecision.bfloat16(fromFloat: v).littleEndian)
            case .I64: append(Int64(v).littleEndian)
            case .I32: append(Int32(v).littleEndian)
            case .I8: append(Int8(v))
            case .U8, .BOOL: append(UInt8(v))
            }
        }
        return data
    }
}

extension Safetensors.DType {
    /// Element `index` of the array at `base` (little-endian, or big-endian when `bigEndian`) as
    /// Float32; integers convert exactly up to 2^24. Bounds are the caller's to check.
    @inline(__always)
    func float(_ base: UnsafeRawPointer, _ index: Int, bigEndian: Bool = false) -> Float {
        switch self {
        case .F32:
            let raw = base.loadUnaligned(fromByteOffset: 4 * index, as: UInt32.self)
            return Float(bitPattern: bigEndian ? UInt32(bigEndian: raw) : UInt32(littleEndian: raw))
        case .F64:
            let raw = base.loadUnaligned(fromByteOffset: 8 * index, as: UInt64.self)
            return Float(Double(bitPattern: bigEndian ? UInt64(bigEndian: raw) : UInt64(littleEndian: raw)))
        case .F16:
            let raw = base.loadUnaligned(fromByteOffset: 2 * index, as: UInt16.self)
            return HalfPrecision.float(fromHalf: bigEndian ? UInt16(bigEndian: raw) : UInt16(littleEndian: raw))
        case .BF16:
            let raw = base.loadUnaligned(fromByteOffset: 2 * index, as: UInt16.self)
            return Float(bitPattern: UInt32(bigEndian ? UInt16(bigEndian: raw) : UInt16(littleEndian: raw)) << 16)
        case .I64:
            let raw = base.loadUnaligned(fromByteOffset: 8 * index, as: Int64.self)
            return Float(bigEndian ? Int64(bigEndian: raw) : Int64(littleEndian: raw))
        case .I32:
            let raw = base.loadUnaligned(fromByteOffset: 4 * index, as: Int32.self)
            return Float(bigEndian ? Int32(bigEndian: raw) : Int32(littleEndian: raw))
        case .I8: return Float(base.load(fromByteOffset: index, as: Int8.self))
        case .U8, .BOOL: return Float(base.load(fromByteOffset: index, as: UInt8.self))
        }
    }

    /// The first `count` elements of the array at `base` as Float32 (see `float(_:_:bigEndian:)`).
    func decode(_ base: UnsafeRawPointer, count: Int, bigEndian: Bool = false) -> [Float] {
        // Little-endian Float32 on a little-endian machine is a copy (most checkpoints).
        if self == .F32 && !bigEndian && 1.littleEndian == 1 {
            return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                if count > 0 { memcpy(buffer.baseAddress!, base, 4 * count) }
                initialized = count
            }
        }
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            for i in 0..<count { buffer[i] = float(base, i, bigEndian: bigEndian) }
            initialized = count
        }
    }
}

public struct SafetensorsError: Error, CustomStringConvertible {
    public let path: String
    public let key: String?
    public let message: String
    init(path: String, key: String?, _ message: String) { self.path = path; self.key = key; self.message = message }
    public var description: String { key.map { "\(path): tensor \"\($0)\": \(message)" } ?? "\(path): \(message)" }
}

/// IEEE half and bfloat16 conversions (round to nearest even).
enum HalfPrecision {
    static func float(fromHalf h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = Int((h >> 10) & 0x1F), mantissa = UInt32(h & 0x3FF)
        if exponent == 0 {
            let magnitude = Float(mantissa) * 0x1p-24  // subnormal or zero
            return sign != 0 ? -magnitude : magnitude
        }
        if exponent == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
        return Float(bitPattern: sign | UInt32(exponent + 112) << 23 | (mantissa << 13))
    }

    static func half(fromFloat f: Float) -> UInt16 {
        let bits = f.bitPattern
        let sign = UInt16((bits >> 16) & 0x8000)
        if f.isNaN { return sign | 0x7E00 }
        let a = Swift.abs(f)
        if a >= 65520 { return sign | 0x7C00 }                 // rounds to infinity
        if a < 0x1p-14 {                                        // subnormal half
            return sign | UInt16((a * 0x1p24).rounded(.toNearestOrEven))
        }
        let exponent = Int((bits >> 23) & 0xFF) - 127 + 15
        var mantissa = (bits & 0x7F_FFFF) >> 13
        let rest = bits & 0x1FFF
        var e = UInt16(exponent)
        if rest > 0x1000 || (rest == 0x1000 && (mantissa & 1) == 1) {
            mantissa += 1
            if mantissa == 0x400 { mantissa = 0; e += 1 }
        }
        return sign | (e << 10) | UInt16(mantissa)
    }

    static func bfloat16(fromFloat f: Float) -> UInt16 {
        if f.isNaN { return UInt16(f.bitPattern >> 16) | 0x40 }
        let bits = f.bitPattern
        let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(rounded >> 16)
    }
}
