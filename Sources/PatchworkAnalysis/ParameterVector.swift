import Foundation
import Patchwork
import PatchworkNN

/// A point or direction in a model's trainable-parameter space: one tensor per
/// trainable parameter, in `Module.trainableParameters()` order. The arithmetic
/// the Hessian and loss-landscape analyses need, in double-precision reductions.
public struct ParameterVector {
    public var tensors: [Tensor]

    public init(_ tensors: [Tensor]) { self.tensors = tensors }

    /// The model's current trainable parameters.
    public init(of model: Module) { tensors = model.trainableParameters().map { $0.1.detached() } }

    public static func randomNormal(like v: ParameterVector, generator: Generator) -> ParameterVector {
        ParameterVector(v.tensors.map { Tensor.randomNormal($0.shape, generator: generator) })
    }

    /// Entries ±1 with equal probability (Hutchinson's and Lanczos' probe vectors).
    public static func rademacher(like v: ParameterVector, generator: Generator) -> ParameterVector {
        ParameterVector(v.tensors.map { t in
            Tensor((0..<t.count).map { _ in generator.next() & 1 == 0 ? -1 : 1 }, shape: t.shape)
        })
    }

    public func dot(_ other: ParameterVector) -> Double {
        var total = 0.0
        for (a, b) in zip(tensors, other.tensors) {
            let x = a.contiguous().scalars, y = b.contiguous().scalars
            for i in x.indices { total += Double(x[i]) * Double(y[i]) }
        }
        return total
    }

    public var norm: Double { dot(self).squareRoot() }

    public static func + (a: ParameterVector, b: ParameterVector) -> ParameterVector {
        ParameterVector(withoutGrad { zip(a.tensors, b.tensors).map { $0 + $1 } })
    }

    public static func - (a: ParameterVector, b: ParameterVector) -> ParameterVector {
        ParameterVector(withoutGrad { zip(a.tensors, b.tensors).map { $0 - $1 } })
    }

    public static func * (a: ParameterVector, s: Double) -> ParameterVector {
        ParameterVector(withoutGrad { a.tensors.map { $0 * Float(s) } })
    }

    public func normalized() -> ParameterVector { self * (1 / max(norm, 1e-30)) }

    /// Writes this point into the model's trainable parameters.
    public func assign(to model: Module) throws {
        let keys = model.trainableParameters().map(\.0)
        require(keys.count == tensors.count, "ParameterVector", "\(tensors.count) tensors for \(keys.count) parameters")
        try model.update(parameters: Dictionary(uniqueKeysWithValues: zip(keys, tensors)))
    }
}

/// Exact Hessian-vector products of a loss with respect to a model's trainable
/// parameters, by double backward (Pearlmutter's trick): H·v = ∇(∇L · v).
public struct HessianVectorProduct {
    public let model: Module
    /// The loss over the data the Hessian is taken on (a fixed set of batches,
    /// the model in eval mode so batch statistics and dropout do not move).
    public let loss: () -> Tensor

    public init(model: Module, loss: @escaping () -> Tensor) { self.model = model; self.loss = loss }

    public func callAsFunction(_ v: ParameterVector) -> ParameterVector {
        let slots = model.namedSlots().filter { $0.1.kind == .parameter && !$0.1.frozen }.map(\.1)
        require(slots.count == v.tensors.count, "HessianVectorProduct",
                "\(v.tensors.count) tensors for \(slots.count) parameters")
        let originals = slots.map(\.value)
        defer { for (slot, value) in zip(slots, originals) { slot.value = value } }
        let leaves = originals.map { $0.detached().requiringGrad() }
        for (slot, leaf) in zip(slots, leaves) { slot.value = leaf }
        let gradients = valueAndGradient(at: leaves, createGraph: true, reusingLeaves: true) { _ in loss() }.gradients
        let gv = withGrad { zip(gradients, v.tensors).map { ($0 * $1).sum() }.reduce(Tensor(0), +) }
        let hv = valueAndGradient(at: leaves, reusingLeaves: true) { _ in gv }.gradients
        return ParameterVector(hv.map { $0.detached() })
    }
}
