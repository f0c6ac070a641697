import Foundation
import Patchwork
import PatchworkNN

/// An image classifier: what every model family offers (DESIGN.md §4).
///
/// Inputs are channels-last images [B, H, W, C].
public protocol ImageClassifier: Module {
    /// Features before pooling: a map [B, h, w, C] or tokens [B, N, D].
    func forwardFeatures(_ x: Tensor) -> Tensor
    /// Pooling and classifier; with `preLogits` the pooled features before the last Linear.
    func forwardHead(_ features: Tensor, preLogits: Bool) -> Tensor
    /// The output of every stage or block, in order, named by module key (for CKA and feature analyses).
    func forwardIntermediates(_ x: Tensor) -> [(name: String, value: Tensor)]
    /// Replaces the classifier with a fresh one for `numClasses` classes.
    func resetClassifier(numClasses: Int)
}

extension ImageClassifier {
    /// Class logits [B, classes].
    public func logits(_ x: Tensor) -> Tensor { forwardHead(forwardFeatures(x), preLogits: false) }
}

public struct ModelError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A named variant: a family with its paper's hyperparameters.
public struct ModelVariant: Sendable {
    public let name: String
    public let family: String
    /// Default input side (images are square).
    public let inputSize: Int
    /// For a model the reference names (`vit_tiny_patch16_224`, `pvt_tiny`, `cmt_ti`): the arguments
    /// its entrypoint passes to the family's constructor (timm's `model_args` or `model_cfgs` entry, a
    /// Hugging Face config, the authors' factory), under the reference's argument names, as a parity
    /// fixture's `config`. The variant is built from them, and so is `timm.create_model(name, **overrides)`
    /// (the benchmark's cases). Nil for a variant built by code of its own (most `_nano` variants).
    public let arguments: [String: JSONValue]?
    /// The argument that holds the class count (`num_classes`; Hugging Face configs call it `num_labels`).
    let classesKey: String
    let make: @Sendable (_ numClasses: Int) throws -> ImageClassifier

    /// One of Patchwork's own variants, built by `make`.
    public init(_ name: String, family: String, inputSize: Int, make: @escaping @Sendable (Int) throws -> ImageClassifier) {
        self.name = name; self.family = family; self.inputSize = inputSize; self.arguments = nil; self.classesKey = "num_classes"
        self.make = make
    }

    /// A reference's named model: `build` (the family's) of `arguments` with the class count set.
    public init(_ name: String, family: String, inputSize: Int, arguments: [String: JSONValue],
                classesKey: String = "num_classes", build: @escaping @Sendable (JSONValue) throws -> ImageClassifier) {
        self.name = name; self.family = family; self.inputSize = inputSize; self.arguments = arguments; self.classesKey = classesKey
        self.make = { classes in try build(Self.config(arguments, classesKey, classes)) }
    }

    /// The family config that builds this variant with `numClasses` classes: its reference arguments
    /// with the class count set; nil for a variant built by code of its own.
    public func referenceConfig(numClasses: Int) -> JSONValue? {
        arguments.map { Self.config($0, classesKey, numClasses) }
    }

    private static func config(_ arguments: [String: JSONValue], _ classesKey: String, _ numClasses: Int) -> JSONValue {
        var config = arguments
        config[classesKey] = .number(Double(numClasses))
        return .object(config)
    }

    public func create(numClasses: Int = 1000) throws -> ImageClassifier { try make(numClasses) }
}

/// A model family: builds a model from the reference constructor's arguments
/// (a fixture's `config`), and lists its named variants.
public struct ModelFamily: Sendable {
    public let name: String
    /// The reference implementation the family reproduces.
    public let reference: String
    let build: @Sendable (JSONValue) throws -> ImageClassifier
    public let variants: [ModelVariant]

    public init(name: String, reference: String, variants: [ModelVariant], build: @escaping @Sendable (JSONValue) throws -> ImageClassifier) {
        self.name = name; self.reference = reference; self.variants = variants; self.build = build
    }

    /// Builds the model for a reference config (keys are the reference's argument names).
    public func build(config: JSONValue) throws -> ImageClassifier { try build(config) }
}
