import Foundation
import Patchwork

/// Storage of one parameter or buffer: a reference box, so reflection can
/// find and replace it, and so a module's tensors can be swapped in place by
/// `update(parameters:)` and optimizers.
public final class TensorSlot: @unchecked Sendable {
    public enum Kind: Sendable { case parameter, buffer }
    /// How the reference framework lays the tensor out in a checkpoint when
    /// it differs from Patchwork's in-memory layout.
    public enum CheckpointLayout: Sendable {
        case same
        /// In memory [O, kH, kW, I] (channels-last), in PyTorch [O, I, kH, kW].
        case convWeight
    }

    public var value: Tensor
    public let kind: Kind
    public let key: String
    public let layout: CheckpointLayout
    /// The dtype the reference stores this tensor in (I64 for batch-norm's counter).
    public let checkpointDType: Safetensors.DType
    /// Frozen parameters are left out of `trainableParameters()`.
    public var frozen = false

    init(_ value: Tensor, kind: Kind, key: String, layout: CheckpointLayout, checkpointDType: Safetensors.DType = .F32) {
        self.value = value; self.kind = kind; self.key = key; self.layout = layout; self.checkpointDType = checkpointDType
    }

    /// The placeholder of a parameter or buffer whose value the module's initializer sets.
    static let unset = Tensor.zeros([0])

    /// The value in the checkpoint's (reference's) layout.
    public var checkpointValue: Tensor { TensorSlot.toCheckpoint(value, layout) }

    public static func toCheckpoint(_ t: Tensor, _ layout: CheckpointLayout) -> Tensor {
        switch layout {
        case .same: return t
        case .convWeight: return t.permuted([0, 3, 1, 2]).contiguous()
        }
    }

    public static func fromCheckpoint(_ t: Tensor, _ layout: CheckpointLayout) -> Tensor {
        switch layout {
        case .same: return t
        case .convWeight: return t.permuted([0, 2, 3, 1]).contiguous()
        }
    }

    /// The in-memory shape that a checkpoint tensor of `shape` maps to.
    static func memoryShape(fromCheckpoint shape: [Int], _ layout: CheckpointLayout) -> [Int] {
        switch layout {
        case .same: return shape
        case .convWeight: return shape.count == 4 ? [shape[0], shape[2], shape[3], shape[1]] : shape
        }
    }
}

// The wrappers follow MLX Swift's `@ModuleInfo(key:)` / `@ParameterInfo(key:)`:
// the key is written once, in the declaration, and an initializer that sets the
// value before `super.init()` writes `_name.wrappedValue = value` (Swift allows
// plain `name = value` only for wrappers without attribute arguments).

/// A trainable tensor of a module, under its checkpoint key:
/// `@Parameter(key: "cls_token") var clsToken: Tensor`.
@propertyWrapper
public struct Parameter {
    public let slot: TensorSlot
    public init(wrappedValue: Tensor, key: String, layout: TensorSlot.CheckpointLayout = .same) {
        slot = TensorSlot(wrappedValue, kind: .parameter, key: key, layout: layout)
    }
    /// The value is set in the module's initializer.
    public init(key: String, layout: TensorSlot.CheckpointLayout = .same) {
        self.init(wrappedValue: TensorSlot.unset, key: key, layout: layout)
    }
    public var wrappedValue: Tensor {
        get { slot.value }
        nonmutating set { slot.value = newValue }
    }
}

/// A parameter that a layer may not have (`bias: false`):
/// `@OptionalParameter(key: "bias") var bias: Tensor?`. An absent parameter has
/// no key in the tree; whether it exists is decided when the module is built.
@propertyWrapper
public struct OptionalParameter {
    let box: OptionalSlotBox
    public var slot: TensorSlot? { box.slot }
    public init(wrappedValue: Tensor? = nil, key: String, layout: TensorSlot.CheckpointLayout = .same) {
        box = OptionalSlotBox(key: key, layout: layout)
        box.slot = wrappedValue.map { TensorSlot($0, kind: .parameter, key: key, layout: layout) }
    }
    public var wrappedValue: Tensor? {
        get { box.slot?.value }
        nonmutating set {
            switch (box.slot, newValue) {
            case let (slot?, value?): slot.value = value
            case (nil, nil): break
            case let (nil, value?) where box.owner == nil:
                box.slot = TensorSlot(value, kind: .parameter, key: box.key, layout: box.layout)
            default: fatalError("OptionalParameter \(box.key): cannot add or remove a parameter after the module is built")
            }
        }
    }
}

final class OptionalSlotBox {
    let key: String
    let layout: TensorSlot.CheckpointLayout
    var slot: TensorSlot?
    /// Set when the owner's cache is built; from then on the parameter cannot appear or disappear.
    weak var owner: Module?
    init(key: String, layout: TensorSlot.CheckpointLayout) { self.key = key; self.layout = layout }
}

/// Non-trainable state saved in checkpoints (batch-norm running statistics), under its key:
/// `@Buffer(key: "running_mean") var runningMean: Tensor`.
@propertyWrapper
public struct Buffer {
    public let slot: TensorSlot
    public init(wrappedValue: Tensor, key: String, checkpointDType: Safetensors.DType = .F32) {
        slot = TensorSlot(wrappedValue, kind: .buffer, key: key, layout: .same, checkpointDType: checkpointDType)
    }
    /// The value is set in the module's initializer.
    public init(key: String, checkpointDType: Safetensors.DType = .F32) {
        self.init(wrappedValue: TensorSlot.unset, key: key, checkpointDType: checkpointDType)
    }
    public var wrappedValue: Tensor {
        get { slot.value }
        nonmutating set { slot.value = newValue }
    }
}

/// A child module under its checkpoint key: `@Child(key: "attn") var attention: Attention`.
///
/// The value may be a module, an optional module, an array of modules (keys
/// `key.0`, `key.1`, … as torch's ModuleList), an array of arrays, or an array
/// of `(name, module)` pairs (keys `key.name`, as torch's Sequential over an
/// OrderedDict). An empty key puts the elements directly under the module
/// (`0`, `1`, … as in torch.nn.Sequential itself).
///
/// Assigning a new value keeps the owner's cached tree true; from outside a
/// model, `Module.update(modules:)` replaces a child by its dotted key.
@propertyWrapper
public struct Child<Value> {
    let slot: ChildSlot<Value>
    public init(wrappedValue: Value, key: String) { slot = ChildSlot(wrappedValue, key: key) }
    /// The value is set in the module's initializer.
    public init(key: String) { slot = ChildSlot(nil, key: key) }
    public var wrappedValue: Value {
        get {
            guard let value = slot.value else { fatalError("child \(slot.key) was read before it was set") }
            return value
        }
        nonmutating set { slot.value = newValue; slot.owner?.invalidateTreeCache() }
    }
}

/// Where a `@Child` keeps its value: a reference box, so the module's cache can
/// find it once and `update(modules:)` can replace what it holds.
class AnyChildSlot {
    let key: String
    /// The module whose cache lists this slot's children (set when that cache is built).
    weak var owner: Module?
    init(key: String) { self.key = key }
    var anyValue: Any { fatalError("abstract") }
    /// True until the module's initializer sets the value.
    var isUnset: Bool { fatalError("abstract") }
    /// Replaces the whole value (`element == nil`) or one element of an array by its index or name.
    func replace(element: String?, with module: Module) throws { fatalError("abstract") }
}

final class ChildSlot<Value>: AnyChildSlot {
    var value: Value?
    init(_ value: Value?, key: String) { self.value = value; super.init(key: key) }
    override var anyValue: Any { value as Any }
    override var isUnset: Bool { value == nil }

    override func replace(element: String?, with module: Module) throws {
        guard let element else {
            guard let v = module as? Value else { throw ModuleUpdateError("\(key) holds \(Value.self), not \(type(of: module))") }
            value = v
            return
        }
        if var named = value as? [(String, Module)], let i = named.firstIndex(where: { $0.0 == element }) {
            named[i].1 = module
            guard let v = named as? Value else { throw ModuleUpdateError("\(key).\(element) cannot hold \(type(of: module))") }
            value = v
        } else if var array = value as? [Module], let i = Int(element), array.indices.contains(i) {
            array[i] = module
            guard let v = array as? Value else { throw ModuleUpdateError("\(key).\(element) holds an element of \(Value.self), not \(type(of: module))") }
            value = v
        } else {
            throw ModuleUpdateError("\(key).\(element) cannot be replaced (\(Value.self))")
        }
    }
}

/// A module replacement that `update(modules:)` refused.
public struct ModuleUpdateError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = "update(modules:): " + description }
}

/// The base class of layers and models (in the manner of MLX Swift's Module).
///
/// Children, parameters and buffers are declared with explicit checkpoint keys
/// (`@Child(key:)`, `@Parameter(key:)`, `@OptionalParameter(key:)`,
/// `@Buffer(key:)`), so that a model's keys equal the reference
/// implementation's `state_dict()` keys and renaming a Swift property changes
/// no key. They are found once, by reflection on first use, and cached; a
/// stored module without `@Child` is a programming error reported then (it
/// would never be saved, loaded or trained). Training steps walk the cache.
open class Module: @unchecked Sendable {
    /// Training mode (batch statistics, dropout) or evaluation mode.
    public private(set) var training = true

    public init() {}

    /// Applies the module (layers override one of the `callAsFunction` forms).
    open func callAsFunction(_ x: Tensor) -> Tensor {
        fatalError("\(type(of: self)) does not define callAsFunction(_:)")
    }

    /// One direct child in the cache: its key, the module, and the `@Child` slot (and element) that holds it.
    private struct CachedChild {
        let key: String
        let module: Module
        let slot: AnyChildSlot
        let element: String?
    }

    private struct TreeCache {
        var children: [CachedChild]
        var slots: [(String, TensorSlot)]
    }

    private var treeCache: TreeCache?

    /// Forgets the cached children (a `@Child` of this module was replaced).
    func invalidateTreeCache() { treeCache = nil }

    private var cache: TreeCache {
        if let treeCache { return treeCache }
        let built = buildTreeCache()
        treeCache = built
        return built
    }

    /// Reflects over the stored properties of every class level, base class first
    /// (as a PyTorch module's __init__ order), once.
    private func buildTreeCache() -> TreeCache {
        var children: [CachedChild] = []
        var slots: [(String, TensorSlot)] = []
        var mirror: Mirror? = Mirror(reflecting: self)
        var levels: [Mirror] = []
        while let m = mirror { levels.append(m); mirror = m.superclassMirror }
        for level in levels.reversed() {
            for property in level.children {
                let value = property.value
                if let p = value as? Parameter { slots.append((checkSet(p.slot), p.slot)) }
                else if let p = value as? OptionalParameter {
                    p.box.owner = self
                    if let slot = p.slot { slots.append((slot.key, slot)) }
                }
                else if let b = value as? Buffer { slots.append((checkSet(b.slot), b.slot)) }
                else if let holder = value as? ChildSlotHolder {
                    let slot = holder.anyChildSlot
                    if slot.isUnset { fatalError("\(type(of: self)): child \(slot.key) was never set by the initializer") }
                    slot.owner = self
                    var found: [(String, String?, Module)] = []
                    Module.collect(slot.anyValue, key: slot.key, element: nil, into: &found)
                    children += found.map { CachedChild(key: $0.0, module: $0.2, slot: slot, element: $0.1) }
                } else {
                    var stray: [(String, String?, Module)] = []
                    Module.collect(value, key: property.label ?? "?", element: nil, into: &stray)
                    if !stray.isEmpty {
                        fatalError("\(type(of: self)): stored property `\(property.label ?? "?")` holds \(type(of: stray[0].2)) without @Child(key:); "
                                   + "it would never be saved, loaded or trained")
                    }
                }
            }
        }
        return TreeCache(children: children, slots: slots)
    }

    /// The slot's key, after checking that the initializer set its value.
    private func checkSet(_ slot: TensorSlot) -> String {
        if slot.value.storage === TensorSlot.unset.storage {
            fatalError("\(type(of: self)): \(slot.key) was never set by the initializer")
        }
        return slot.key
    }

    /// Modules in a child value with their keys; `element` is the array index or name below the slot's key.
    private static func collect(_ value: Any, key: String, element: String?, into result: inout [(String, String?, Module)]) {
        func join(_ a: String, _ b: String) -> String { a.isEmpty ? b : "\(a).\(b)" }
        // Index tables and tensor lists hold no modules: skip them without reflecting each element.
        if value is [Int] || value is [Float] || value is [Double] || value is [Tensor] || value is [[Int]] { return }
        if let m = value as? Module {
            result.append((key, element, m))
        } else if let named = value as? [(String, Module)] {
            for (name, m) in named { result.append((join(key, name), element ?? name, m)) }
        } else if let array = value as? [Any] {
            for (i, v) in array.enumerated() { collect(v, key: join(key, "\(i)"), element: element ?? "\(i)", into: &result) }
        } else {
            let mirror = Mirror(reflecting: value)
            if mirror.displayStyle == .optional, let wrapped = mirror.children.first?.value {
                collect(wrapped, key: key, element: element, into: &result)
            }
        }
    }

    /// Direct children with their keys, in declaration order (cached).
    public final func namedChildren() -> [(String, Module)] { cache.children.map { ($0.key, $0.module) } }

    /// This module's own parameter and buffer slots with their keys (cached).
    public final func ownSlots() -> [(String, TensorSlot)] { cache.slots }

    /// Every slot in the tree with its dotted key.
    public func namedSlots() -> [(String, TensorSlot)] {
        var result: [(String, TensorSlot)] = []
        appendSlots(prefix: "", to: &result)
        return result
    }

    private func appendSlots(prefix: String, to result: inout [(String, TensorSlot)]) {
        let c = cache
        for (key, slot) in c.slots { result.append((prefix + key, slot)) }
        for child in c.children { child.module.appendSlots(prefix: prefix + child.key + ".", to: &result) }
    }

    /// Trainable parameters (not frozen), dotted keys → values.
    public func trainableParameters() -> [(String, Tensor)] {
        namedSlots().filter { $0.1.kind == .parameter && !$0.1.frozen }.map { ($0.0, $0.1.value) }
    }

    /// All parameters, dotted keys → values.
    public func parameters() -> [(String, Tensor)] {
        namedSlots().filter { $0.1.kind == .parameter }.map { ($0.0, $0.1.value) }
    }

    /// Number of parameter elements (what papers and timm count).
    public var parameterCount: Int { parameters().reduce(0) { $0 + $1.1.count } }

    /// Switches this module and all descendants to training (`true`) or evaluation mode.
    public func train(_ on: Bool = true) {
        training = on
        for child in cache.children { child.module.train(on) }
    }

    public func eval() { train(false) }

    /// Excludes every parameter below this module from training.
    public func freeze() { for (_, s) in namedSlots() { s.frozen = true } }
    public func unfreeze() { for (_, s) in namedSlots() { s.frozen = false } }

    /// Every module in the tree with its dotted key ("" for self).
    public func namedModules() -> [(String, Module)] {
        var result: [(String, Module)] = []
        appendModules(key: "", to: &result)
        return result
    }

    private func appendModules(key: String, to result: inout [(String, Module)]) {
        result.append((key, self))
        for child in cache.children { child.module.appendModules(key: key.isEmpty ? child.key : "\(key).\(child.key)", to: &result) }
    }

    /// Replaces children by their dotted keys (`"head"`, `"blocks.3"`,
    /// `"stages.0.downsample"`), as MLX's `update(modules:)`. The new module
    /// must fit the declared type; every key is checked before anything changes.
    public func update(modules: [String: Module]) throws {
        var targets: [(Module, CachedChild, Module)] = []
        var problems: [String] = []
        for (key, module) in modules.sorted(by: { $0.key < $1.key }) {
            if let (owner, child) = findChild(key) { targets.append((owner, child, module)) }
            else { problems.append("no child module \(key) in \(type(of: self))") }
        }
        if !problems.isEmpty { throw ModuleUpdateError(problems.joined(separator: "; ")) }
        for (owner, child, module) in targets {
            try child.slot.replace(element: child.element, with: module)
            owner.invalidateTreeCache()
        }
    }

    /// The module whose cache lists `key` (a dotted path from self), with that entry.
    private func findChild(_ key: String) -> (Module, CachedChild)? {
        for child in cache.children {
            if child.key == key { return (self, child) }
            if key.hasPrefix(child.key + "."), let found = child.module.findChild(String(key.dropFirst(child.key.count + 1))) {
                return found
            }
        }
        return nil
    }
}

/// Lets the cache builder reach a `@Child`'s slot whatever its value type.
protocol ChildSlotHolder {
    var anyChildSlot: AnyChildSlot { get }
}

extension Child: ChildSlotHolder {
    var anyChildSlot: AnyChildSlot { slot }
}

/// Layers in order; keys "0", "1", ... as torch.nn.Sequential.
public final class Sequential: Module {
    @Child(key: "") public var layers: [Module]
    public init(_ layers: [Module]) { _layers.wrappedValue = layers }
    public override func callAsFunction(_ x: Tensor) -> Tensor { layers.reduce(x) { $1($0) } }
}

/// Passes its input through unchanged (a placeholder where a reference has nn.Identity).
public final class Identity: Module {
    public override init() {}
    public override func callAsFunction(_ x: Tensor) -> Tensor { x }
}
