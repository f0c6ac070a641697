import Foundation
import Patchwork

/// The one way a weights file is opened: safetensors or a `torch.save`
/// checkpoint, told apart by their first bytes (never by the extension).
/// Either way it gives the state dict's names, shapes and tensors.
public struct WeightsFile {
    public enum Format: String, Sendable { case safetensors, torch }

    public let path: String
    public let format: Format
    /// Safetensors metadata (torch checkpoints have none).
    public let metadata: [String: String]
    /// The state dict's keys: file order for torch, byte order for safetensors.
    public let names: [String]
    /// Globals of a torch checkpoint that were kept as inert placeholders.
    public let placeholders: [String]
    /// The top-level key a torch checkpoint's state dict was under (nil: the top level, or safetensors).
    public let stateDictKey: String?
    private let safetensors: Safetensors?
    private let torch: TorchCheckpoint?

    /// Opens `path`; `key` names the torch checkpoint's entry that holds the state dict
    /// (by default the first of `TorchCheckpoint.stateDictKeys` it has, else the top level).
    public init(contentsOf path: String, key: String? = nil) throws {
        self.path = path
        // (A file that cannot be opened falls through to the safetensors reader, which says why.)
        let head = (try? BoundedFile.map(path, what: "weights file").prefix(16)) ?? Data()
        if TorchCheckpoint.recognizes(head) {
            let file = try TorchCheckpoint(contentsOf: path, key: key)
            (format, metadata, names, placeholders, stateDictKey) = (.torch, [:], file.names, file.placeholders, file.stateDictKey)
            (torch, safetensors) = (file, nil)
        } else {
            if let key { throw TorchFileError(path: path, "a key (\"\(key)\") picks the state dict of a torch checkpoint, but this is not one") }
            let file = try Safetensors(contentsOf: path)
            (format, metadata, names, placeholders, stateDictKey) = (.safetensors, file.metadata, file.names, [], nil)
            (torch, safetensors) = (nil, file)
        }
    }

    /// The shape of `name`, or nil when the file has no such tensor.
    public func shape(_ name: String) -> [Int]? {
        if let torch { return torch.shape(name) }
        return safetensors!.entries[name]?.shape
    }

    /// The dtype `name` is stored as, or nil when the file has no such tensor.
    public func dtype(_ name: String) -> Safetensors.DType? {
        if let torch { return torch.dtype(name) }
        return safetensors!.entries[name]?.dtype
    }

    /// The tensor `name` as Float32.
    public func tensor(_ name: String) throws -> Tensor {
        if let torch { return try torch.tensor(name) }
        return try safetensors!.tensor(name)
    }

    /// Every tensor whose name `include` accepts, by name.
    public func tensors(where include: (String) -> Bool = { _ in true }) throws -> [String: Tensor] {
        var dict: [String: Tensor] = [:]
        for name in names where include(name) { dict[name] = try tensor(name) }
        return dict
    }
}
