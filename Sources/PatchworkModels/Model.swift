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
    let make: @Sendable (_ numClasses: Int) throws -> ImageClassifier

    public init(_ name: String, family: String, inputSize: Int, make: @escaping @Sendable (Int) throws -> ImageClassifier) {
        self.name = name; self.family = family; self.inputSize = inputSize; self.make = make
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
