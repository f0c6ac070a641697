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
    public let key: String?
    public let layout: CheckpointLayout
    /// The dtype the reference stores this tensor in (I64 for batch-norm's counter).
    public let checkpointDType: Safetensors.DType
    /// Frozen parameters are left out of `trainableParameters()`.
    public var frozen = false

    init(_ value: Tensor, kind: Kind, key: String?, layout: CheckpointLayout, checkpointDType: Safetensors.DType = .F32) {
        self.value = value; self.kind = kind; self.key = key; self.layout = layout; self.checkpointDType = checkpointDType
    }

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

/// A trainable tensor of a module: `@Parameter var weight: Tensor`.
@propertyWrapper
public struct Parameter {
    public let slot: TensorSlot
    public init(wrappedValue: Tensor, key: String? = nil, layout: TensorSlot.CheckpointLayout = .same) {
        slot = TensorSlot(wrappedValue, kind: .parameter, key: key, layout: layout)
    }
    public var wrappedValue: Tensor {
        get { slot.value }
        nonmutating set { slot.value = newValue }
    }
}

/// A parameter that a layer may not have (`bias: false`):
/// `@OptionalParameter var bias: Tensor?`. Absent parameters have no key.
@propertyWrapper
public struct OptionalParameter {
    public let slot: TensorSlot?
    public init(wrappedValue: Tensor?, key: String? = nil, layout: TensorSlot.CheckpointLayout = .same) {
        slot = wrappedValue.map { TensorSlot($0, kind: .parameter, key: key, layout: layout) }
    }
    public var wrappedValue: Tensor? {
        get { slot?.value }
        nonmutating set {
            guard let slot, let newValue else { fatalError("OptionalParameter: cannot add or remove a parameter after construction") }
            slot.value = newValue
        }
    }
}

/// Non-trainable state saved in checkpoints (batch-norm running statistics).
@propertyWrapper
public struct Buffer {
    public let slot: TensorSlot
    public init(wrappedValue: Tensor, key: String? = nil, checkpointDType: Safetensors.DType = .F32) {
        slot = TensorSlot(wrappedValue, kind: .buffer, key: key, layout: .same, checkpointDType: checkpointDType)
    }
    public var wrappedValue: Tensor {
        get { slot.value }
        nonmutating set { slot.value = newValue }
    }
}

/// A child module stored under a checkpoint key other than the snake_case of
/// its Swift name: `@Child(key: "attn") var attention: Attention`.
@propertyWrapper
public struct Child<M> {
    public let key: String
    public var wrappedValue: M
    public init(wrappedValue: M, key: String) { self.key = key; self.wrappedValue = wrappedValue }
}

protocol KeyedChild {
    var key: String { get }
    var anyValue: Any { get }
}

extension Child: KeyedChild {
    var anyValue: Any { wrappedValue }
}

/// The base class of layers and models (in the manner of MLX Swift's Module).
///
/// Children, parameters and buffers are found by reflection over stored
/// properties: `Module`s (also in arrays and optionals), `@Parameter` and
/// `@Buffer` tensors. Their dotted keys are the snake_case of the Swift names,
/// or the explicit `key:`, so that a model's keys equal the reference
/// implementation's `state_dict()` keys.
open class Module: @unchecked Sendable {
    /// Training mode (batch statistics, dropout) or evaluation mode.
    public private(set) var training = true

    public init() {}

    /// Applies the module (layers override one of the `callAsFunction` forms).
    open func callAsFunction(_ x: Tensor) -> Tensor {
        fatalError("\(type(of: self)) does not define callAsFunction(_:)")
    }

    /// Direct children with their keys, in declaration order.
    open func namedChildren() -> [(String, Module)] {
        var result: [(String, Module)] = []
        forEachReflectedProperty { key, value in
            Module.collectModules(value, key: key, into: &result)
        }
        return result
    }

    private static func collectModules(_ value: Any, key: String, into result: inout [(String, Module)]) {
        if let keyed = value as? KeyedChild {
            collectModules(keyed.anyValue, key: keyed.key, into: &result)
        } else if let m = value as? Module {
            result.append((key, m))
        } else if let array = value as? [Module] {
            for (i, m) in array.enumerated() { result.append(("\(key).\(i)", m)) }
        } else if let array = value as? [Any] {
            for (i, v) in array.enumerated() { collectModules(v, key: "\(key).\(i)", into: &result) }
        } else {
            let mirror = Mirror(reflecting: value)
            if mirror.displayStyle == .optional, let wrapped = mirror.children.first?.value {
                collectModules(wrapped, key: key, into: &result)
            }
        }
    }

    /// This module's own parameter and buffer slots with their keys.
    open func ownSlots() -> [(String, TensorSlot)] {
        var result: [(String, TensorSlot)] = []
        forEachReflectedProperty { key, value in
            if let p = value as? Parameter { result.append((p.slot.key ?? key, p.slot)) }
            else if let p = value as? OptionalParameter, let slot = p.slot { result.append((slot.key ?? key, slot)) }
            else if let b = value as? Buffer { result.append((b.slot.key ?? key, b.slot)) }
        }
        return result
    }

    private func forEachReflectedProperty(_ body: (String, Any) -> Void) {
        var mirror: Mirror? = Mirror(reflecting: self)
        var levels: [Mirror] = []
        while let m = mirror { levels.append(m); mirror = m.superclassMirror }
        // Base-class properties first, as in a PyTorch module's __init__ order.
        for m in levels.reversed() {
            for child in m.children {
                guard let label = child.label else { continue }
                let name = label.hasPrefix("_") ? String(label.dropFirst()) : label
                body(Module.snakeCase(name), child.value)
            }
        }
    }

    /// "patchEmbed" → "patch_embed", "qkvBias" → "qkv_bias", "fc1" → "fc1".
    public static func snakeCase(_ name: String) -> String {
        var out = ""
        for c in name {
            if c.isUppercase { if !out.isEmpty { out.append("_") }; out.append(Character(c.lowercased())) }
            else { out.append(c) }
        }
        return out
    }

    /// Every slot in the tree with its dotted key.
    public func namedSlots() -> [(String, TensorSlot)] {
        var result = ownSlots()
        for (key, child) in namedChildren() {
            result += child.namedSlots().map { ("\(key).\($0.0)", $0.1) }
        }
        return result
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
        for (_, c) in namedChildren() { c.train(on) }
    }

    public func eval() { train(false) }

    /// Excludes every parameter below this module from training.
    public func freeze() { for (_, s) in namedSlots() { s.frozen = true } }
    public func unfreeze() { for (_, s) in namedSlots() { s.frozen = false } }

    /// Every module in the tree with its dotted key ("" for self).
    public func namedModules() -> [(String, Module)] {
        var result: [(String, Module)] = [("", self)]
        for (key, child) in namedChildren() {
            result += child.namedModules().map { ($0.0.isEmpty ? key : "\(key).\($0.0)", $0.1) }
        }
        return result
    }
}

/// Layers in order; keys "0", "1", ... as torch.nn.Sequential.
public final class Sequential: Module {
    public let layers: [Module]
    public init(_ layers: [Module]) { self.layers = layers }
    public override func namedChildren() -> [(String, Module)] { layers.enumerated().map { ("\($0.offset)", $0.element) } }
    public override func callAsFunction(_ x: Tensor) -> Tensor { layers.reduce(x) { $1($0) } }
}

/// Passes its input through unchanged (a placeholder where a reference has nn.Identity).
public final class Identity: Module {
    public override init() {}
    public override func callAsFunction(_ x: Tensor) -> Tensor { x }
}
