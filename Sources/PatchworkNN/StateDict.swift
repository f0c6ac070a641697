import Foundation
import Patchwork

/// What went wrong when loading a state dict: every problem at once.
public struct StateDictError: Error, CustomStringConvertible {
    public var source: String
    public var missing: [String] = []
    public var unexpected: [String] = []
    /// Key, the model's shape, the checkpoint's shape (both in the checkpoint's layout).
    public var mismatched: [(key: String, expected: [Int], found: [Int])] = []

    public var isEmpty: Bool { missing.isEmpty && unexpected.isEmpty && mismatched.isEmpty }

    public var description: String {
        var lines = ["cannot load \(source):"]
        if !missing.isEmpty { lines.append("  missing keys (\(missing.count)): \(missing.joined(separator: ", "))") }
        if !unexpected.isEmpty { lines.append("  unused keys (\(unexpected.count)): \(unexpected.joined(separator: ", "))") }
        for m in mismatched { lines.append("  shape mismatch for \(m.key): model has \(m.expected), checkpoint has \(m.found)") }
        return lines.joined(separator: "\n")
    }
}

/// A model that maps foreign checkpoints (timm's, Hugging Face's, the authors')
/// onto its own keys before loading, like timm's `checkpoint_filter_fn`:
/// dropping derived buffers, renaming, resampling position tables.
public protocol CheckpointFiltering: Module {
    func checkpointFilter(_ stateDict: [String: Tensor]) -> [String: Tensor]
}

extension Module {
    /// Parameters and buffers under their reference keys, in the reference's layout.
    public func stateDict() -> [String: Tensor] {
        Dictionary(uniqueKeysWithValues: namedSlots().map { ($0.0, $0.1.checkpointValue) })
    }

    /// Replaces parameters and buffers from a state dict in the reference's layout.
    ///
    /// Strict by default: any missing key, unused key or shape mismatch fails
    /// the whole load (nothing is changed) with all problems listed.
    public func loadStateDict(_ dict: [String: Tensor], strict: Bool = true, source: String = "state dict") throws {
        let slots = namedSlots()
        var error = StateDictError(source: source)
        var updates: [(TensorSlot, Tensor)] = []
        for (key, slot) in slots {
            guard let value = dict[key] else { error.missing.append(key); continue }
            let expected = slot.checkpointValue.shape
            guard value.shape == expected else {
                error.mismatched.append((key, expected, value.shape)); continue
            }
            updates.append((slot, TensorSlot.fromCheckpoint(value, slot.layout)))
        }
        let known = Set(slots.map(\.0))
        error.unexpected = dict.keys.filter { !known.contains($0) }.sorted()
        if !error.mismatched.isEmpty || (strict && !error.isEmpty) { throw error }
        for (slot, value) in updates { slot.value = value.detached() }
    }

    /// Replaces parameters (in Patchwork's in-memory layout) by key, as MLX's
    /// `update(parameters:verify:)`. With `verify`, unknown keys and shape
    /// changes are errors.
    public func update(parameters: [String: Tensor], verify: Bool = true) throws {
        let slots = Dictionary(uniqueKeysWithValues: namedSlots())
        var error = StateDictError(source: "update(parameters:)")
        for (key, value) in parameters {
            guard let slot = slots[key] else { error.unexpected.append(key); continue }
            if value.shape != slot.value.shape { error.mismatched.append((key, slot.value.shape, value.shape)) }
        }
        error.unexpected.sort()
        if verify && !error.isEmpty { throw error }
        for (key, value) in parameters { if let slot = slots[key], value.shape == slot.value.shape { slot.value = value } }
    }

    /// Writes the state dict as safetensors (reference keys and layout), atomically.
    public func save(to path: String, metadata: [String: String] = [:]) throws {
        let dtypes = Dictionary(uniqueKeysWithValues: namedSlots().map { ($0.0, $0.1.checkpointDType) })
        try Safetensors.write(stateDict(), dtypes: dtypes, metadata: metadata.merging(["format": "pt"]) { a, _ in a }, to: path)
    }

    /// Loads a weights file (safetensors or a torch checkpoint, see `WeightsFile`), through the
    /// model's checkpoint filter when it has one. Extra tensors whose keys start with
    /// `ignoringPrefixes` (e.g. "fixture.") are skipped; `key` picks a torch checkpoint's state dict.
    public func load(from path: String, strict: Bool = true, ignoringPrefixes: [String] = [], key: String? = nil) throws {
        let file = try WeightsFile(contentsOf: path, key: key)
        try load(file.tensors { name in !ignoringPrefixes.contains { name.hasPrefix($0) } }, strict: strict, source: path)
    }

    /// Loads a state dict read from a file (reference keys), through the model's checkpoint
    /// filter when it has one, so foreign checkpoints map onto the model's keys.
    public func load(_ stateDict: [String: Tensor], strict: Bool = true, source: String) throws {
        var dict = stateDict
        if let filtering = self as? CheckpointFiltering { dict = filtering.checkpointFilter(dict) }
        try loadStateDict(dict, strict: strict, source: source)
    }
}

/// The value of `f` and its gradient with respect to every trainable
/// parameter of `model`, keyed by the parameters' dotted keys.
///
/// Gradients are in Patchwork's in-memory layout; `TensorSlot.toCheckpoint`
/// converts one to the reference's layout.
public func valueAndGrad(_ model: Module, createGraph: Bool = false, _ f: () -> Tensor) -> (value: Tensor, gradients: [String: Tensor]) {
    let slots = model.namedSlots().filter { $0.1.kind == .parameter && !$0.1.frozen }
    let originals = slots.map { $0.1.value }
    for (_, slot) in slots { slot.value = slot.value.detached().requiringGrad() }
    defer { for ((_, slot), original) in zip(slots, originals) { slot.value = original } }
    let leaves = slots.map { $0.1.value }
    let (value, grads) = valueAndGradient(at: leaves, createGraph: createGraph, reusingLeaves: true) { _ in f() }
    var result: [String: Tensor] = [:]
    for ((key, _), g) in zip(slots, grads) { result[key] = g }
    return (value, result)
}
