import Patchwork

/// y = x·Wᵀ + b (torch.nn.Linear: weight [out, in], bias [out]).
public final class Linear: Module {
    @Parameter(key: "weight") public var weight: Tensor
    @OptionalParameter(key: "bias") public var bias: Tensor?

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, generator: Generator = .global) {
        _weight.wrappedValue = Init.torchDefault([outFeatures, inFeatures], fanIn: inFeatures, generator: generator)
        _bias.wrappedValue = bias ? Init.torchDefault([outFeatures], fanIn: inFeatures, generator: generator) : nil
        super.init()
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        linear(x, weight: weight, bias: bias)
    }
}

/// Activation functions by the names the references use.
public enum Activation: String, Codable, Sendable {
    case gelu, geluTanh = "gelu_tanh", relu, silu, swish, hardswish, sigmoid, tanh, identity

    public func callAsFunction(_ x: Tensor) -> Tensor {
        switch self {
        case .gelu: return x.gelu()
        case .geluTanh: return x.geluTanh()
        case .relu: return x.relu()
        case .silu, .swish: return x.silu()
        case .hardswish: return x.hardswish()
        case .sigmoid: return x.sigmoid()
        case .tanh: return x.tanh()
        case .identity: return x
        }
    }
}

/// A layer that draws random numbers in training (dropout, drop-path). The
/// training loop reseeds these generators at every step from the run's seed,
/// so a resumed run draws exactly what an uninterrupted one would.
public protocol StochasticLayer: Module {
    var generator: Generator { get }
}

extension Module {
    /// Reseeds every stochastic layer in the tree from (seed, step, layer index).
    public func reseedStochasticLayers(seed: UInt64, step: Int) {
        for (i, (_, m)) in namedModules().enumerated() {
            if let layer = m as? StochasticLayer {
                layer.generator.reseed(Generator.derivedSeed(seed, UInt64(step), UInt64(i)))
            }
        }
    }
}

/// Dropout with its own generator (inverted: kept values scaled by 1/(1-p)).
public final class Dropout: Module, StochasticLayer {
    public let probability: Float
    public let generator: Generator

    public init(_ probability: Float = 0, seed: UInt64 = 0) {
        self.probability = probability
        self.generator = Generator(seed: seed)
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        dropout(x, probability: probability, generator: generator, training: training)
    }
}

/// The stochastic-depth rate of each of `count` blocks, rising linearly from 0 to `rate`
/// (torch.linspace(0, rate, count), as every reference computes it).
public func dropPathRates(_ rate: Float, count: Int) -> [Float] {
    (0..<count).map { count > 1 ? rate * Float($0) / Float(count - 1) : 0 }
}

/// Stochastic depth: drops a whole residual branch per sample (timm's DropPath).
public final class DropPath: Module, StochasticLayer {
    public let probability: Float
    public let generator: Generator

    public init(_ probability: Float = 0, seed: UInt64 = 0) {
        self.probability = probability
        self.generator = Generator(seed: seed)
    }

    /// Whether this layer passes its input through unchanged (evaluation, or a rate of 0).
    public var isIdentity: Bool { !training || probability == 0 }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        guard !isIdentity else { return x }
        let keep = 1 - probability
        let maskShape = [x.shape[0]] + [Int](repeating: 1, count: x.rank - 1)
        let mask = Tensor.randomUniform(maskShape, generator: generator).greaterEqual(probability)
        return x * (mask / keep)
    }
}

/// timm's Mlp: fc1 → activation → dropout → fc2 → dropout.
public final class MLP: Module {
    @Child(key: "fc1") public var fc1: Linear
    public let act: Activation
    @Child(key: "drop1") public var drop1: Dropout
    @Child(key: "fc2") public var fc2: Linear
    @Child(key: "drop2") public var drop2: Dropout

    public init(_ inFeatures: Int, hidden: Int, out: Int? = nil, activation: Activation = .gelu, bias: Bool = true,
                dropout: Float = 0, generator: Generator = .global) {
        _fc1.wrappedValue = Linear(inFeatures, hidden, bias: bias, generator: generator)
        act = activation
        _drop1.wrappedValue = Dropout(dropout)
        _fc2.wrappedValue = Linear(hidden, out ?? inFeatures, bias: bias, generator: generator)
        _drop2.wrappedValue = Dropout(dropout)
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        drop2(fc2(drop1(act(fc1(x)))))
    }
}
