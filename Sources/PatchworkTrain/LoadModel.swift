import Foundation
import Patchwork
import PatchworkModels
import PatchworkNN

/// Builds variant `name` and loads `weights` into it: a run's weights.safetensors
/// or checkpoint.safetensors, or a reference checkpoint as safetensors or a
/// `torch.save` file (see `WeightsFile`; `key` picks a torch checkpoint's state
/// dict, which is otherwise found as timm finds it). The class count comes
/// from the file (its class names, else its classifier's shape); when
/// `expected` is given and differs, the error says both counts.
/// Returns the model in eval mode and the class names when the file has them.
public func loadTrainedModel(_ name: String, weights: String, classes expected: Int?, key: String? = nil) throws -> (ImageClassifier, [String]?) {
    let variant = try Models.variant(name)
    let file = try WeightsFile(contentsOf: weights, key: key)
    let names = file.metadata["class_names"].flatMap { try? JSONDecoder().decode([String].self, from: Data($0.utf8)) }
    let isCheckpoint = file.metadata["format"] == "patchwork-checkpoint"
    // The class count the weights were trained for: from the metadata, else from the classifier's shape.
    var classes = names?.count
    if classes == nil {
        // The classifier is the 2-D weight whose first dimension follows the class count.
        let shapes1000 = try variant.create(numClasses: 1000).stateDict().mapValues(\.shape)
        for (slot, shape) in shapes1000 where shape.count == 2 && shape[0] == 1000 {
            if let found = file.shape(isCheckpoint ? "model." + slot : slot), found.count == 2 { classes = found[0] }
        }
    }
    if let classes, let expected, expected != classes {
        throw TrainingError("the data has \(expected) classes but \(weights) was trained for \(classes)\(names.map { ": \($0.joined(separator: ", "))" } ?? "")")
    }
    // No classifier of the model's in the file: these weights are not this model's (or not under its
    // keys). The strict load below names the keys that do not fit, which says more than a class count.
    let model = try variant.create(numClasses: classes ?? expected ?? 1000)
    if isCheckpoint {
        var dict: [String: Tensor] = [:]
        for n in file.names where n.hasPrefix("model.") { dict[String(n.dropFirst(6))] = try file.tensor(n) }
        try model.loadStateDict(dict, source: weights)
    } else {
        try model.load(try file.tensors(), source: weights)
    }
    model.eval()
    return (model, names)
}

