import Foundation
import Patchwork

/// Weight initialisers with the reference frameworks' formulas.
public enum Init {
    /// Fan-in and fan-out as torch.nn.init computes them, from a PyTorch-layout shape
    /// ([out, in] or [out, in/groups, kH, kW]).
    public static func fans(_ torchShape: [Int]) -> (fanIn: Int, fanOut: Int) {
        guard torchShape.count >= 2 else { return (torchShape.first ?? 1, torchShape.first ?? 1) }
        let receptive = torchShape.dropFirst(2).reduce(1, *)
        return (torchShape[1] * receptive, torchShape[0] * receptive)
    }

    /// torch.nn.init.trunc_normal_(std:, a: -2, b: 2) — timm's default for transformer weights.
    public static func truncatedNormal(_ shape: [Int], std: Float = 0.02, generator: Generator = .global) -> Tensor {
        Tensor.randomTruncatedNormal(shape, mean: 0, std: std, lower: -2, upper: 2, generator: generator)
    }

    /// U(-1/√fanIn, 1/√fanIn): PyTorch's default for Linear and Conv2d weights
    /// (kaiming_uniform_ with a = √5) and for their biases.
    public static func torchDefault(_ shape: [Int], fanIn: Int, generator: Generator = .global) -> Tensor {
        let bound = fanIn > 0 ? 1 / Float(fanIn).squareRoot() : 0
        return Tensor.randomUniform(shape, low: -bound, high: bound, generator: generator)
    }

    /// kaiming_normal_(mode: "fan_out", nonlinearity: "relu"): timm's ResNet conv init.
    public static func kaimingNormalFanOut(_ shape: [Int], fanOut: Int, generator: Generator = .global) -> Tensor {
        Tensor.randomNormal(shape, std: (2 / Float(fanOut)).squareRoot(), generator: generator)
    }

    /// xavier_uniform_: U(±√(6 / (fanIn + fanOut))).
    public static func xavierUniform(_ shape: [Int], fanIn: Int, fanOut: Int, generator: Generator = .global) -> Tensor {
        let bound = (6 / Float(fanIn + fanOut)).squareRoot()
        return Tensor.randomUniform(shape, low: -bound, high: bound, generator: generator)
    }
}
