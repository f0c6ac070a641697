import Foundation
import Patchwork

/// A `torch.save` checkpoint (`.pth`, `.pt`, `.bin`, `.pyth`) read without
/// Python and without executing anything in it.
///
/// The zip format (torch ≥ 1.6) holds `<prefix>/data.pkl`, a pickle of the
/// saved object whose tensors refer by key to storages stored as
/// `<prefix>/data/<key>`; the legacy format (before 1.6) is a sequence of
/// pickles followed by the storages' bytes. Both are read by `PickleMachine`,
/// which knows only the globals a state dict needs: every other global (an
/// argparse.Namespace of training arguments, numpy scalars, a pickled class)
/// becomes an inert placeholder listed in `placeholders`.
///
/// The state dict is found as timm's `load_state_dict` finds it (the top
/// level, or under `state_dict_ema`, `model_ema`, `state_dict` or `model`,
/// then `module` and pycls's `model_state`), unless `key` names it, and the
/// wrappers' `module.` and `_orig_mod.` prefixes are removed from its keys.
public struct TorchCheckpoint {
    public let path: String
    /// Globals in the file that are not known, so were kept as placeholders (never called).
    public let placeholders: [String]
    /// The top-level key the state dict was under; nil when it is the top level.
    public let stateDictKey: String?
    /// The state dict's keys (prefixes removed), in file order.
    public let names: [String]
    private let tensors: [String: TorchTensorRef]
    /// Storage key → byte range of its data in `bytes`.
    private let storages: [String: Range<Int>]
    private let bytes: Data
    private let bigEndian: Bool

    /// Where a state dict is looked for when no key is given: timm's order (EMA weights first),
    /// then the other names training scripts use.
    public static let stateDictKeys = ["state_dict_ema", "model_ema", "state_dict", "model", "module", "model_state"]

    /// Whether `bytes` begin like a torch checkpoint: a zip archive, or a legacy file's first pickle.
    public static func recognizes(_ bytes: Data) -> Bool {
        bytes.starts(with: [0x50, 0x4B, 0x03, 0x04]) || bytes.starts(with: [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19])
    }

    /// Reads `path` and finds its state dict (under `key` when given).
    public init(contentsOf path: String, key: String? = nil) throws {
        self.path = path
        let data: Data
        do { data = try BoundedFile.map(path, what: "torch checkpoint") } catch let error as FileReadError {
            throw TorchFileError(path: path, error.reason)
        }
        bytes = data
        let top: PickleValue
        let machine: PickleMachine
        var storages: [String: Range<Int>] = [:]
        if data.starts(with: [0x50, 0x4B, 0x03, 0x04]) {
            let zip = try ZipArchive(path: path, bytes: data)
            // The folder inside the archive is named after the file torch saved to: find it by data.pkl.
            let pickles = zip.names.filter { $0.hasSuffix("/data.pkl") && $0.dropLast(9).contains("/") == false && $0.count > 9 }
            guard pickles.count == 1, let pickle = pickles.first else {
                throw TorchFileError(path: path, pickles.isEmpty
                    ? "the zip archive has no <folder>/data.pkl, so it is not a torch.save checkpoint (entries: \(zip.names.prefix(8).joined(separator: ", ")))"
                    : "the zip archive has \(pickles.count) data.pkl files (\(pickles.joined(separator: ", "))), expected one")
            }
            let prefix = String(pickle.dropLast(8))  // "<folder>/"
            if let order = zip.entries[prefix + "byteorder"] {
                let text = String(decoding: data[order], as: UTF8.self)
                guard text == "little" || text == "big" else { throw TorchFileError(path: path, "byteorder is \"\(text.prefix(20))\", expected little or big") }
                bigEndian = text == "big"
            } else {
                bigEndian = false  // archives from before the byteorder entry are little-endian
            }
            for name in zip.names where name.hasPrefix(prefix + "data/") {
                storages[String(name.dropFirst(prefix.count + 5))] = zip.entries[name]!
            }
            machine = PickleMachine(path: path, what: "data.pkl", bytes: data, range: zip.entries[pickle]!) { pid, items in
                try TorchCheckpoint.storage(pid, items, path: path, legacy: false)
            }
            top = try machine.run(from: zip.entries[pickle]!.lowerBound)
        } else if TorchCheckpoint.recognizes(data) {
            (machine, top, storages) = try TorchCheckpoint.readLegacy(path: path, bytes: data)
            bigEndian = false
        } else {
            throw TorchFileError(path: path, "not a torch checkpoint (neither a zip archive nor a legacy torch.save file)")
        }
        self.storages = storages
        self.placeholders = machine.placeholders

        // The state dict: under `key`, else under the first known key, else the top level.
        guard let topDict = machine.dict(top) else {
            throw TorchFileError(path: path, "the file holds a \(top.kind), not a dict of tensors"
                + (top.kind.hasSuffix("object") ? " (torch.save(model) pickles the model's class; save model.state_dict() instead)" : ""))
        }
        let topKeys = topDict.items.compactMap { if case .string(let s) = $0.key { return s } else { return nil } }
        var chosen: String?
        if let key {
            guard topDict[key] != nil else {
                throw TorchFileError(path: path, "no key \"\(key)\" at the top level (keys: \(topKeys.prefix(20).joined(separator: ", ")))")
            }
            chosen = key
        } else {
            chosen = TorchCheckpoint.stateDictKeys.first { k in
                guard let v = topDict[k] else { return false }
                if case .none = v { return false }
                return true
            }
        }
        let stateDict: PickleDict
        if let chosen {
            guard let d = machine.dict(topDict[chosen]!) else {
                throw TorchFileError(path: path, "\"\(chosen)\" holds a \(topDict[chosen]!.kind), not a state dict")
            }
            stateDict = d
        } else {
            stateDict = topDict
        }
        stateDictKey = chosen
        var tensors: [String: TorchTensorRef] = [:]
        var names: [String] = []
        for (k, v) in stateDict.items {
            guard case .string(var name) = k else {
                throw TorchFileError(path: path, "state dict\(chosen.map { " \"\($0)\"" } ?? "") has a \(k.kind) key; expected names"
                    + (chosen == nil ? " (top-level keys: \(topKeys.prefix(20).joined(separator: ", ")); --key picks one)" : ""))
            }
            guard case .tensor(let t) = v else {
                throw TorchFileError(path: path, "\"\(name)\"\(chosen.map { " in \"\($0)\"" } ?? "") is a \(v.kind), not a tensor"
                    + (chosen == nil ? " (top-level keys: \(topKeys.prefix(20).joined(separator: ", ")); --key picks the state dict)" : ""))
            }
            // timm's clean_state_dict: torch.compile and DataParallel wrappers, in either order.
            for wrapper in ["_orig_mod.", "module.", "_orig_mod."] where name.hasPrefix(wrapper) { name.removeFirst(wrapper.count) }
            guard tensors[name] == nil else { throw TorchFileError(path: path, "the key \"\(name)\" appears twice once wrapper prefixes are removed") }
            tensors[name] = t
            names.append(name)
        }
        self.tensors = tensors
        self.names = names
    }

    /// A persistent id as a storage: `('storage', type, key, location, numel)` in zip files;
    /// legacy files add view metadata, which must be None.
    static func storage(_ pid: PickleValue, _ tuple: [PickleValue]?, path: String, legacy: Bool) throws -> PickleValue {
        guard let items = tuple, items.count == (legacy ? 6 : 5), case .string("storage") = items[0] else {
            throw TorchFileError(path: path, "persistent id is a \(pid.kind), expected ('storage', type, key, location, size)")
        }
        guard case .global(let typeName) = items[1] else {
            throw TorchFileError(path: path, "storage type is a \(items[1].kind), expected a torch storage class")
        }
        guard let dtype = PickleMachine.storageTypes[typeName] else {
            throw TorchFileError(path: path, "unknown storage type \(typeName) (known: \(PickleMachine.storageTypes.keys.sorted().joined(separator: ", ")))")
        }
        guard case .string(let key) = items[2], case .int(let count) = items[4], count >= 0 else {
            throw TorchFileError(path: path, "storage id needs a key and a non-negative size, got \(items[2].kind) and \(items[4].kind)")
        }
        if legacy, case .none = items[5] {} else if legacy {
            throw TorchFileError(path: path, "storage \(key) is a view of another storage (legacy view metadata), which is not read")
        }
        return .storage(TorchStorageRef(key: key, dtype: dtype, count: count))
    }

    /// A legacy (before torch 1.6) file: pickles of the magic number, the protocol version
    /// (1001), the system's description, the object and the sorted storage keys; then each
    /// storage in that order as an 8-byte element count and its bytes.
    static func readLegacy(path: String, bytes: Data) throws -> (PickleMachine, PickleValue, [String: Range<Int>]) {
        final class Seen { var dtypes: [String: Safetensors.DType] = [:] }
        let seen = Seen()
        let machine = PickleMachine(path: path, what: "legacy pickle", bytes: bytes, range: 0 ..< bytes.count) { pid, items in
            let value = try TorchCheckpoint.storage(pid, items, path: path, legacy: true)
            if case .storage(let s) = value { seen.dtypes[s.key] = s.dtype }
            return value
        }
        func fail(_ message: String) -> TorchFileError { TorchFileError(path: path, "legacy torch file: \(message)") }
        guard case .bigInt(let magic) = try machine.run(from: 0), magic == [0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19] else {
            throw fail("the first pickle is not torch's magic number")
        }
        guard case .int(1001) = try machine.run(from: machine.end) else { throw fail("the protocol version is not 1001") }
        guard let info = machine.dict(try machine.run(from: machine.end)) else { throw fail("the system information is not a dict") }
        if case .bool(false) = info["little_endian"] ?? .bool(true) { throw fail("saved on a big-endian machine, which is not read") }
        let top = try machine.run(from: machine.end)
        guard case .list(let keyList) = try machine.run(from: machine.end) else { throw fail("the storage key list is missing") }
        let keys = machine.lists[keyList]
        var storages: [String: Range<Int>] = [:]
        var at = machine.end
        let reader = ByteReader(bytes: bytes, path: path)
        for item in keys {
            guard case .string(let key) = item, let dtype = seen.dtypes[key] else {
                throw fail("storage key \(item.kind) was not named by any tensor")
            }
            let count = try reader.u64(at)
            guard count <= UInt64(bytes.count / dtype.byteSize), Int(count) * dtype.byteSize <= bytes.count - at - 8 else {
                throw fail("storage \(key) of \(count) × \(dtype.rawValue) at byte \(at) runs past the end of the \(bytes.count)-byte file (truncated?)")
            }
            storages[key] = at + 8 ..< at + 8 + Int(count) * dtype.byteSize
            at += 8 + Int(count) * dtype.byteSize
        }
        return (machine, top, storages)
    }

    /// The shape of `name`, or nil when the state dict has no such tensor.
    public func shape(_ name: String) -> [Int]? { tensors[name]?.shape }

    /// The dtype of `name`'s storage, or nil when the state dict has no such tensor.
    public func dtype(_ name: String) -> Safetensors.DType? { tensors[name]?.storage.dtype }

    /// The tensor `name` as Float32, after checking its view lies inside its storage.
    public func tensor(_ name: String) throws -> Tensor {
        guard let t = tensors[name] else { throw TorchFileError(path: path, "tensor \"\(name)\": no such tensor in the state dict") }
        func fail(_ message: String) -> TorchFileError { TorchFileError(path: path, "tensor \"\(name)\": \(message)") }
        let dtype = t.storage.dtype
        guard let range = storages[t.storage.key] else { throw fail("its storage \"\(t.storage.key)\" is not in the file") }
        let (bytesNeeded, overflow) = t.storage.count.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow, bytesNeeded <= range.count else {
            throw fail("its storage \"\(t.storage.key)\" should hold \(t.storage.count) × \(dtype.rawValue) but has \(range.count) bytes (truncated?)")
        }
        guard t.shape.allSatisfy({ $0 >= 0 }), t.strides.allSatisfy({ $0 >= 0 }), t.offset >= 0 else {
            throw fail("size \(t.shape), stride \(t.strides) and offset \(t.offset) must not be negative")
        }
        // The element count and the last element's index, with every product and sum checked.
        var count = 1, last = t.offset
        for (size, stride) in zip(t.shape, t.strides) {
            let (c, o1) = count.multipliedReportingOverflow(by: size)
            let (step, o2) = Swift.max(size - 1, 0).multipliedReportingOverflow(by: stride)
            let (l, o3) = last.addingReportingOverflow(step)
            guard !o1, !o2, !o3 else { throw fail("size \(t.shape) with stride \(t.strides) overflows") }
            (count, last) = (c, l)
        }
        if count > 0 {
            guard last < t.storage.count else {
                throw fail("size \(t.shape), stride \(t.strides), offset \(t.offset) reach element \(last) of a storage of \(t.storage.count) elements")
            }
            // A view of more elements than its storage repeats elements (stride 0 or overlapping):
            // refused, so a few bytes cannot claim gigabytes.
            guard count <= t.storage.count else {
                throw fail("size \(t.shape) has \(count) elements but its storage holds \(t.storage.count) (an expanded view; save it with .contiguous())")
            }
        }
        if count == 0 { return Tensor([], shape: t.shape) }
        // A dimension of size 1 is never stepped along, so its stride (unchecked above) is taken as 0.
        let strides = zip(t.shape, t.strides).map { $0 <= 1 ? 0 : $1 }
        let values: [Float] = bytes.withUnsafeBytes { raw in
            let base = raw.baseAddress! + range.lowerBound
            var contiguousStride = 1
            var contiguous = true
            for (size, stride) in zip(t.shape, strides).reversed() where size != 1 {
                if stride != contiguousStride { contiguous = false }
                contiguousStride *= size
            }
            if contiguous { return dtype.decode(base + t.offset * dtype.byteSize, count: count, bigEndian: bigEndian) }
            // A strided view (a transposed weight, say): walk the indices, last dimension fastest.
            return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                var index = [Int](repeating: 0, count: t.shape.count)
                var element = t.offset
                for i in 0..<count {
                    buffer[i] = dtype.float(base, element, bigEndian: bigEndian)
                    var d = t.shape.count - 1
                    while d >= 0 {
                        index[d] += 1
                        element += strides[d]
                        if index[d] < t.shape[d] { break }
                        element -= strides[d] * t.shape[d]
                        index[d] = 0
                        d -= 1
                    }
                }
                initialized = count
            }
        }
        return Tensor(values, shape: t.shape)
    }
}
