import Foundation
import Patchwork

/// A value built by `PickleMachine`. Nothing in a pickle is ever executed: a
/// global the machine does not know is kept as `.global(name)`, and calling
/// or constructing it gives an inert `.object(name)` placeholder.
///
/// Tuples, lists and dicts are indices into the machine's tables rather than
/// nested values: a pickle can nest containers a million deep in a megabyte,
/// and releasing nested values would recurse that deep and overflow the stack.
/// (Lists and dicts are shared through the memo and mutated after, as in Python.)
enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    /// An integer too wide for 64 bits (LONG1), as its little-endian two's-complement bytes.
    case bigInt([UInt8])
    case float(Double)
    case string(String)
    case bytes(Int)  // only the length is kept: no state dict needs the bytes
    case tuple(Int)
    case list(Int)
    case dict(Int)
    /// A class or function named by GLOBAL or STACK_GLOBAL.
    case global(String)
    /// The result of calling or constructing a global that is not known: a placeholder.
    case object(String)
    /// A storage named by a persistent id.
    case storage(TorchStorageRef)
    case tensor(TorchTensorRef)

    /// The kind of value, for error messages.
    var kind: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int, .bigInt: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .tuple: return "tuple"
        case .list: return "list"
        case .dict: return "dict"
        case .global(let name): return "global \(name)"
        case .object(let name): return "\(name) object"
        case .storage: return "storage"
        case .tensor: return "tensor"
        }
    }
}

/// A dict's items in insertion order, found by string key.
struct PickleDict {
    private(set) var items: [(key: PickleValue, value: PickleValue)] = []
    private var stringIndex: [String: Int] = [:]

    mutating func set(_ key: PickleValue, _ value: PickleValue) {
        if case .string(let s) = key {
            if let i = stringIndex[s] { items[i].value = value; return }
            stringIndex[s] = items.count
        }
        items.append((key, value))
    }

    subscript(_ key: String) -> PickleValue? { stringIndex[key].map { items[$0].value } }
}

/// The storage types `torch.save` names, and the dtype each holds.
struct TorchStorageRef {
    let key: String
    let dtype: Safetensors.DType
    /// Elements the persistent id says the storage has.
    let count: Int
}

/// A tensor as `_rebuild_tensor_v2` describes it: a view into a storage.
struct TorchTensorRef {
    let storage: TorchStorageRef
    let offset: Int
    let shape: [Int]
    let strides: [Int]
}

/// The pickle subset that state dicts use (protocols 2 to 5), run without
/// executing anything. Known globals are `collections.OrderedDict`, torch's
/// tensor and parameter rebuild functions and its typed storages; any other
/// global becomes a placeholder whose name is recorded in `placeholders`.
/// An opcode outside the subset, a stack or mark out of balance, or a memo
/// index that was never written is an error naming the byte offset.
final class PickleMachine {
    let path: String
    /// What the file is, for errors ("data.pkl").
    let what: String
    let bytes: Data
    let range: Range<Int>
    /// Globals met that are not known, in the order first met.
    private(set) var placeholders: [String] = []
    /// Turns a persistent id (the popped value, with the tuple's items when it is one) into a
    /// value; the two torch formats differ.
    let persistentLoad: (PickleValue, [PickleValue]?) throws -> PickleValue
    /// Where the last STOP was (the next pickle in a legacy file follows it).
    private(set) var end = 0
    /// The containers that `.tuple(i)`, `.list(i)` (sets too) and `.dict(i)` name.
    private(set) var tuples: [[PickleValue]] = []
    private(set) var lists: [[PickleValue]] = []
    private(set) var dicts: [PickleDict] = []

    static let storageTypes: [String: Safetensors.DType] = [
        "torch.FloatStorage": .F32, "torch.HalfStorage": .F16, "torch.BFloat16Storage": .BF16, "torch.DoubleStorage": .F64,
        "torch.LongStorage": .I64, "torch.IntStorage": .I32, "torch.CharStorage": .I8, "torch.ByteStorage": .U8,
        "torch.BoolStorage": .BOOL,
    ]

    init(path: String, what: String, bytes: Data, range: Range<Int>,
         persistentLoad: @escaping (PickleValue, [PickleValue]?) throws -> PickleValue) {
        self.path = path
        self.what = what
        self.bytes = bytes
        self.range = range
        self.persistentLoad = persistentLoad
    }

    func error(_ message: String, at offset: Int) -> TorchFileError {
        TorchFileError(path: path, "\(what) at byte \(offset - range.lowerBound): \(message)")
    }

    /// Runs the pickle starting at `start` until STOP; returns the value it leaves.
    func run(from start: Int) throws -> PickleValue {
        var stack: [PickleValue] = []
        var marks: [Int] = []
        var memo: [Int: PickleValue] = [:]
        var at = start
        let reader = ByteReader(bytes: bytes, path: path)
        var opcodeAt = at

        func need(_ n: Int) throws {
            guard n >= 0, at <= range.upperBound, n <= range.upperBound - at else {
                throw error("needs \(n) more bytes but the pickle ends at byte \(range.count) (truncated?)", at: opcodeAt)
            }
        }
        func take(_ n: Int) throws -> Int { try need(n); defer { at += n }; return at }
        func fence() -> Int { marks.last ?? 0 }
        func pop() throws -> PickleValue {
            guard stack.count > fence() else { throw error("stack underflow (an opcode needs a value the stack does not have)", at: opcodeAt) }
            return stack.removeLast()
        }
        func popMark() throws -> [PickleValue] {
            guard let mark = marks.popLast() else { throw error("no MARK to pop to", at: opcodeAt) }
            defer { stack.removeSubrange(mark...) }
            return Array(stack[mark...])
        }
        func text(_ n: Int) throws -> String {
            let from = try take(n)
            return String(decoding: bytes[from ..< from + n], as: UTF8.self)
        }
        func length(_ raw: UInt64) throws -> Int {
            guard raw <= UInt64(range.upperBound - at) else {
                throw error("a length of \(raw) bytes runs past the end of the pickle (\(range.upperBound - at) bytes left)", at: opcodeAt)
            }
            return Int(raw)
        }
        func tuple(_ items: [PickleValue]) -> PickleValue { tuples.append(items); return .tuple(tuples.count - 1) }
        func global(_ name: String) -> PickleValue {
            let known = PickleMachine.storageTypes[name] != nil || [
                "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
                "torch._utils._rebuild_parameter_with_state",
            ].contains(name)
            if !known && !placeholders.contains(name) { placeholders.append(name) }
            return .global(name)
        }

        while true {
            opcodeAt = at
            let op = try reader.u8(try take(1))
            switch op {
            case 0x80:  // PROTO
                let version = try reader.u8(try take(1))
                guard version <= 5 else { throw error("pickle protocol \(version) is newer than 5", at: opcodeAt) }
            case 0x95: _ = try take(8)  // FRAME: a size hint
            case 0x28: marks.append(stack.count)  // MARK
            case 0x7D: dicts.append(PickleDict()); stack.append(.dict(dicts.count - 1))  // EMPTY_DICT
            case 0x5D, 0x8F: lists.append([]); stack.append(.list(lists.count - 1))  // EMPTY_LIST, EMPTY_SET (kept as a list)
            case 0x29: stack.append(tuple([]))  // EMPTY_TUPLE
            case 0x64:  // DICT
                let items = try popMark()
                guard items.count % 2 == 0 else { throw error("DICT has an odd number of items (\(items.count))", at: opcodeAt) }
                var dict = PickleDict()
                for i in stride(from: 0, to: items.count, by: 2) { dict.set(items[i], items[i + 1]) }
                dicts.append(dict)
                stack.append(.dict(dicts.count - 1))
            case 0x6C:  // LIST
                lists.append(try popMark())
                stack.append(.list(lists.count - 1))
            case 0x74: stack.append(tuple(try popMark()))  // TUPLE
            case 0x85, 0x86, 0x87:  // TUPLE1, TUPLE2, TUPLE3
                var items: [PickleValue] = []
                for _ in 0 ..< Int(op - 0x84) { items.insert(try pop(), at: 0) }
                stack.append(tuple(items))
            case 0x73, 0x75:  // SETITEM, SETITEMS
                let items = op == 0x73 ? Array([try pop(), try pop()].reversed()) : try popMark()
                guard items.count % 2 == 0 else { throw error("SETITEMS has an odd number of items (\(items.count))", at: opcodeAt) }
                guard let target = stack.last, stack.count > fence() else { throw error("SETITEM(S) with no dict on the stack", at: opcodeAt) }
                switch target {
                case .dict(let d): for i in stride(from: 0, to: items.count, by: 2) { dicts[d].set(items[i], items[i + 1]) }
                case .object: break  // a placeholder's items are dropped
                default: throw error("SETITEM(S) on a \(target.kind), expected a dict", at: opcodeAt)
                }
            case 0x61, 0x65, 0x90:  // APPEND, APPENDS, ADDITEMS
                let items = op == 0x61 ? [try pop()] : try popMark()
                guard let target = stack.last, stack.count > fence() else { throw error("APPEND(S) with no list on the stack", at: opcodeAt) }
                switch target {
                case .list(let l): lists[l] += items
                case .object: break
                default: throw error("APPEND(S) or ADDITEMS on a \(target.kind), expected a list or set", at: opcodeAt)
                }
            case 0x4A: stack.append(.int(Int(Int32(bitPattern: try reader.u32(try take(4))))))  // BININT
            case 0x4B: stack.append(.int(Int(try reader.u8(try take(1)))))  // BININT1
            case 0x4D: stack.append(.int(Int(try reader.u16(try take(2)))))  // BININT2
            case 0x8A:  // LONG1: n little-endian two's-complement bytes
                let n = Int(try reader.u8(try take(1)))
                let from = try take(n)
                let raw = [UInt8](bytes[from ..< from + n])
                if n == 0 { stack.append(.int(0)); break }
                if n > 8 { stack.append(.bigInt(raw)); break }
                var v: UInt64 = 0
                for (k, b) in raw.enumerated() { v |= UInt64(b) << (8 * UInt64(k)) }
                if n < 8 && raw[n - 1] >= 0x80 { v |= UInt64.max << (8 * UInt64(n)) }  // sign-extend
                stack.append(.int(Int(Int64(bitPattern: v))))
            case 0x47:  // BINFLOAT: big-endian double
                let from = try take(8)
                var v: UInt64 = 0
                for k in 0..<8 { v = v << 8 | UInt64(try reader.u8(from + k)) }
                stack.append(.float(Double(bitPattern: v)))
            case 0x4E: stack.append(.none)
            case 0x88: stack.append(.bool(true))
            case 0x89: stack.append(.bool(false))
            case 0x58: stack.append(.string(try text(try length(UInt64(try reader.u32(try take(4)))))))  // BINUNICODE
            case 0x8C: stack.append(.string(try text(Int(try reader.u8(try take(1))))))  // SHORT_BINUNICODE
            case 0x8D: stack.append(.string(try text(try length(try reader.u64(try take(8))))))  // BINUNICODE8
            case 0x54:  // BINSTRING: a signed 32-bit length
                let n = Int32(bitPattern: try reader.u32(try take(4)))
                guard n >= 0 else { throw error("BINSTRING has a negative length \(n)", at: opcodeAt) }
                stack.append(.string(try text(try length(UInt64(n)))))
            case 0x55: stack.append(.string(try text(Int(try reader.u8(try take(1))))))  // SHORT_BINSTRING
            case 0x42: let n = try length(UInt64(try reader.u32(try take(4)))); _ = try take(n); stack.append(.bytes(n))  // BINBYTES
            case 0x43: let n = Int(try reader.u8(try take(1))); _ = try take(n); stack.append(.bytes(n))  // SHORT_BINBYTES
            case 0x8E: let n = try length(try reader.u64(try take(8))); _ = try take(n); stack.append(.bytes(n))  // BINBYTES8
            case 0x71, 0x72, 0x94:  // BINPUT, LONG_BINPUT, MEMOIZE
                let index = op == 0x71 ? Int(try reader.u8(try take(1))) : op == 0x72 ? Int(try reader.u32(try take(4))) : memo.count
                guard let top = stack.last, stack.count > fence() else { throw error("memo put with nothing on the stack", at: opcodeAt) }
                memo[index] = top
            case 0x68, 0x6A:  // BINGET, LONG_BINGET
                let index = op == 0x68 ? Int(try reader.u8(try take(1))) : Int(try reader.u32(try take(4)))
                guard let value = memo[index] else { throw error("memo index \(index) was never written (\(memo.count) entries)", at: opcodeAt) }
                stack.append(value)
            case 0x63:  // GLOBAL: "module\nname\n"
                var parts: [String] = []
                for _ in 0..<2 {
                    let from = at
                    while try reader.u8(try take(1)) != 0x0A {
                        guard at - from < 1000 else { throw error("GLOBAL name longer than 1000 bytes", at: opcodeAt) }
                    }
                    parts.append(String(decoding: bytes[from ..< at - 1], as: UTF8.self))
                }
                stack.append(global(parts.joined(separator: ".")))
            case 0x93:  // STACK_GLOBAL
                let name = try pop(), module = try pop()
                guard case .string(let n) = name, case .string(let m) = module else {
                    throw error("STACK_GLOBAL needs two strings, got \(module.kind) and \(name.kind)", at: opcodeAt)
                }
                stack.append(global(m + "." + n))
            case 0x52, 0x81:  // REDUCE (callable, args), NEWOBJ (class, args)
                let args = try pop(), callable = try pop()
                guard case .tuple(let t) = args else {
                    throw error("\(op == 0x52 ? "REDUCE" : "NEWOBJ") needs an argument tuple, got \(args.kind)", at: opcodeAt)
                }
                stack.append(try call(callable, tuples[t], at: opcodeAt))
            case 0x62:  // BUILD: sets an object's state. Placeholders and dicts (OrderedDict's _metadata) keep none.
                let state = try pop()
                guard let target = stack.last, stack.count > fence() else { throw error("BUILD with nothing to build", at: opcodeAt) }
                switch target {
                case .object, .dict, .tensor: _ = state
                default: throw error("BUILD on a \(target.kind)", at: opcodeAt)
                }
            case 0x51:  // BINPERSID
                let pid = try pop()
                var items: [PickleValue]?
                if case .tuple(let t) = pid { items = tuples[t] }
                do { stack.append(try persistentLoad(pid, items)) } catch let e as TorchFileError where e.path == path {
                    throw error(e.message, at: opcodeAt)
                }
            case 0x2E:  // STOP
                guard marks.isEmpty else { throw error("STOP with \(marks.count) MARK(s) still open", at: opcodeAt) }
                guard stack.count == 1 else { throw error("STOP with \(stack.count) values on the stack, expected 1", at: opcodeAt) }
                end = at
                return stack[0]
            default:
                let printable = op >= 0x20 && op < 0x7F ? " ('\(Character(Unicode.Scalar(op)))')" : ""
                throw error("opcode 0x\(String(op, radix: 16, uppercase: true))\(printable) is outside the pickle subset that state dicts use", at: opcodeAt)
            }
        }
    }

    /// The dict `value` names, or nil when it is not a dict.
    func dict(_ value: PickleValue) -> PickleDict? {
        if case .dict(let d) = value { return dicts[d] }
        return nil
    }

    /// REDUCE or NEWOBJ: the known torch functions are interpreted; anything else gives a placeholder.
    func call(_ callable: PickleValue, _ args: [PickleValue], at offset: Int) throws -> PickleValue {
        guard case .global(let name) = callable else {
            if case .object(let name) = callable { return .object(name) }
            throw error("REDUCE calls a \(callable.kind)", at: offset)
        }
        switch name {
        case "collections.OrderedDict":
            guard args.isEmpty else { return .object(name) }
            dicts.append(PickleDict())
            return .dict(dicts.count - 1)
        case "torch._utils._rebuild_tensor_v2":
            // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
            guard args.count >= 4, case .storage(let storage) = args[0], case .int(let offset) = args[1],
                  let shape = integers(args[2]), let strides = integers(args[3]) else {
                throw error("_rebuild_tensor_v2 needs (storage, offset, size, stride, ...), got (\(args.map(\.kind).joined(separator: ", ")))", at: offset)
            }
            guard shape.count == strides.count else {
                throw error("tensor has \(shape.count) sizes \(shape) but \(strides.count) strides \(strides)", at: offset)
            }
            return .tensor(TorchTensorRef(storage: storage, offset: offset, shape: shape, strides: strides))
        case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
            guard let data = args.first, case .tensor = data else {
                throw error("\(name) needs a tensor first, got (\(args.map(\.kind).joined(separator: ", ")))", at: offset)
            }
            return data
        default:
            return .object(name)
        }
    }

    /// A tuple of ints (a size or a stride), or nil.
    func integers(_ value: PickleValue) -> [Int]? {
        guard case .tuple(let t) = value else { return nil }
        var out: [Int] = []
        for item in tuples[t] {
            guard case .int(let v) = item else { return nil }
            out.append(v)
        }
        return out
    }
}
