import Foundation
import Patchwork
import PatchworkData
import PatchworkModels
import PatchworkNN

/// A model loaded from a weights file, with what it takes to use it.
public struct TrainedModel {
    /// The model, in eval mode.
    public let model: ImageClassifier
    /// How many classes it predicts.
    public let classCount: Int
    /// The class names the file carries (runs trained by Patchwork), else nil.
    public let fileClassNames: [String]?
    /// The class names to print: the file's, else the pretrained configuration's label set's (ImageNet-1k) when
    /// the class count agrees, else nil.
    public let classNames: [String]?
    /// How images reach the model: the pipeline recorded in the file (Patchwork's runs), else the evaluation
    /// transform of the checkpoint's pretrained configuration (the tag the model name gives, or the default tag).
    public let input: ModelInput
    /// The pretrained configuration the model name resolves to, if any.
    public let pretrained: PretrainedConfig?

    /// The name of class `index` for printing.
    public func label(_ index: Int) -> String {
        guard let classNames, index < classNames.count else { return "class \(index)" }
        return classNames[index]
    }
}

/// Builds variant `name` and loads `weights` into it: a run's weights.safetensors
/// or checkpoint.safetensors, or a published checkpoint as safetensors or a
/// `torch.save` file (see `WeightsFile`; `key` picks a torch checkpoint's state
/// dict, which is otherwise found as timm finds it). The class count comes
/// from the file (its class names, else its classifier's shape); when
/// `expected` is given and differs, the error says both counts. `imageSize`
/// overrides the input side of the model's preprocessing.
public func loadTrainedModel(_ name: String, weights: String, classes expected: Int?, key: String? = nil,
                             imageSize: Int? = nil) throws -> TrainedModel {
    let (variant, pretrained) = try Models.resolve(name)
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
    let classCount = classes ?? expected ?? 1000
    let model = try variant.create(numClasses: classCount)
    if isCheckpoint {
        var dict: [String: Tensor] = [:]
        for n in file.names where n.hasPrefix("model.") { dict[String(n.dropFirst(6))] = try file.tensor(n) }
        try model.loadStateDict(dict, source: weights)
    } else {
        try model.load(try file.tensors(), source: weights)
    }
    model.eval()

    // The input pipeline: recorded by the run that trained the weights; a Patchwork file from before it was
    // recorded (class names, no pipeline) used Patchwork's; anything else is a published checkpoint.
    var input: ModelInput
    if let recorded = file.metadata[ModelInput.metadataKey] {
        do {
            input = try JSONDecoder().decode(ModelInput.self, from: Data(recorded.utf8))
            try input.preprocessing?.validate()
        } catch {
            throw TrainingError("\(weights): the recorded input pipeline (metadata \"\(ModelInput.metadataKey)\") is not valid: \(error)")
        }
        if let imageSize { input = input.resized(to: imageSize) }
    } else if names != nil || isCheckpoint {
        input = .patchwork(imageSize: imageSize ?? variant.inputSize)
    } else if let pretrained {
        input = try .reference(pretrained, imageSize: imageSize)
    } else {
        input = .imageNetDefault(imageSize: imageSize ?? variant.inputSize)
    }
    let labelSetNames = pretrained.flatMap { ImageNet.classNames(labelSet: $0.labelSet) }
    return TrainedModel(model: model, classCount: classCount, fileClassNames: names,
                        classNames: names ?? labelSetNames.flatMap { $0.count == classCount ? $0 : nil },
                        input: input, pretrained: pretrained)
}
