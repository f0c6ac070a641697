import Foundation
import Patchwork

/// Updates a module's trainable parameters from their gradients.
///
/// State (momenta, step counts) is keyed by the parameters' dotted keys, and
/// `stateDict()` / `loadStateDict(_:)` save and restore it with the
/// checkpoint, so a resumed run continues exactly.
public protocol Optimizer: AnyObject {
    var learningRate: Float { get set }
    /// One update of every parameter that has a gradient.
    func step(_ model: Module, gradients: [String: Tensor])
    func stateDict() -> [String: Tensor]
    func loadStateDict(_ state: [String: Tensor]) throws
}

/// Models name the parameters that must not get weight decay (position
/// embeddings, class tokens, relative-position tables), as timm's
/// `no_weight_decay()`. Norm weights and biases (rank ≤ 1) never get decay.
public protocol NoWeightDecay {
    var noWeightDecayKeys: Set<String> { get }
}
