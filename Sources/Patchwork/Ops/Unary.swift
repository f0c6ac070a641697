import Foundation
import CPatchworkKernels

/// Element-wise functions of one tensor. Each forward runs a SIMD kernel; each
/// pullback is written with Tensor ops (so it can be differentiated again).
extension Tensor {
    public static prefix func - (x: Tensor) -> Tensor {
        record("neg", Kernels.map(x, NegFunction.self), [x]) { g in [-g] }
    }

    public func abs() -> Tensor {
        let x = self
        return Tensor.record("abs", Kernels.map(x, AbsFunction.self), [x]) { g in [g * x.sign()] }
    }

    /// -1, 0 or 1 per element (not differentiable: treated as a constant).
    public func sign() -> Tensor { Kernels.map(self, SignFunction.self) }

    public func exp() -> Tensor {
        Tensor.recordUsingOutput("exp", Kernels.map(self, ExpFunction.self), [self]) { g, y in [g * y] }
    }

    public func log() -> Tensor {
        let x = self
        return Tensor.record("log", Kernels.map(x, LogFunction.self), [x]) { g in [g / x] }
    }

    public func sqrt() -> Tensor {
        Tensor.recordUsingOutput("sqrt", Kernels.map(self, SqrtFunction.self), [self]) { g, y in [g * 0.5 / y] }
    }

    public func rsqrt() -> Tensor {
        Tensor.recordUsingOutput("rsqrt", Kernels.map(self, RsqrtFunction.self), [self]) { g, y in [g * (-0.5) * y * y * y] }
    }

    public func square() -> Tensor {
        let x = self
        return Tensor.record("square", Kernels.map(x, SquareFunction.self), [x]) { g in [g * x * 2] }
    }

    public func tanh() -> Tensor {
        // d/dx = 1 − y², and d/dy of g·(1 − y²) = −2g·y
        Tensor.recordUsingOutput("tanh", Kernels.map(self, TanhFunction.self), [self]) { g, y in
            [Tensor.activationPullback("tanh_backward", g, y, TanhPullback.self) { y in -2 * y }]
        }
    }

    public func sigmoid() -> Tensor {
        // d/dx = y·(1 − y), and d/dy of g·y·(1 − y) = g·(1 − 2y)
        Tensor.recordUsingOutput("sigmoid", Kernels.map(self, SigmoidFunction.self), [self]) { g, y in
            [Tensor.activationPullback("sigmoid_backward", g, y, SigmoidPullback.self) { y in 1 - 2 * y }]
        }
    }

    /// g·f′(x) in one pass: the pullback of an activation f at x (or at its output
    /// for tanh and sigmoid), as one kernel `D` (D(g, x) = g·f′(x)). It is itself
    /// differentiable: d/dg = f′(x) (the same kernel), d/dx = g·f″(x) (`second`).
    static func activationPullback<D: BinaryFunction>(_ name: String, _ g: Tensor, _ x: Tensor, _ d: D.Type,
                                                     second: @escaping (Tensor) -> Tensor) -> Tensor {
        let y = Kernels.zip(g, x, op: name, D.self)
        return record(name, y, [g, x]) { gg in
            [g.requiresGrad ? activationPullback(name, gg, x, d, second: second) : nil,
             x.requiresGrad ? gg * g * second(x) : nil]
        }
    }

    public func erf() -> Tensor {
        let x = self
        // d/dx erf(x) = 2/√π · e^{-x²}
        return Tensor.record("erf", Kernels.map(x, ErfFunction.self), [x]) { g in
            [g * (x.square() * -1).exp() * 1.1283791670955126]
        }
    }

    public func relu() -> Tensor {
        let x = self
        return Tensor.record("relu", Kernels.map(x, ReluFunction.self), [x]) { g in
            [Tensor.activationPullback("relu_backward", g, x, ReluPullback.self) { x in Tensor.zeros(x.shape) }]
        }
    }

    /// GELU with the exact erf form: x·Φ(x).
    public func gelu() -> Tensor {
        let x = self
        return Tensor.record("gelu", Kernels.map(x, GeluFunction.self), [x]) { g in
            // GELU′ = Φ(x) + x·φ(x); GELU″ = φ(x)·(2 − x²)
            [Tensor.activationPullback("gelu_backward", g, x, GeluPullback.self) { x in
                (x.square() * -0.5).exp() * 0.3989422804014327 * (2 - x.square())
            }]
        }
    }

    /// GELU with the tanh approximation (PyTorch's approximate="tanh"):
    /// 0.5·x·(1 + tanh(u)), u = √(2/π)·(x + 0.044715·x³).
    public func geluTanh() -> Tensor {
        let x = self
        return Tensor.record("gelu_tanh", Kernels.map(x, GeluTanhFunction.self), [x]) { g in
            [Tensor.activationPullback("gelu_tanh_backward", g, x, GeluTanhPullback.self) { x in
                // f″ = (1 − t²)·(u′ − x·t·u′² + 0.5·x·u″), u′ = c·(1 + 3a·x²), u″ = 6a·c·x
                let c: Float = 0.7978845608028654, a: Float = 0.044715
                let t = ((x + x * x.square() * a) * c).tanh()
                let du = (1 + x.square() * (3 * a)) * c
                return (1 - t.square()) * (du - x * t * du.square() + x * x * (3 * a * c))
            }]
        }
    }

    /// x·σ(x) (also called swish).
    public func silu() -> Tensor {
        let x = self
        return Tensor.record("silu", Kernels.map(x, SiluFunction.self), [x]) { g in
            // f′ = σ·(1 + x·(1 − σ)); f″ = σ·(1 − σ)·(2 + x·(1 − 2σ))
            [Tensor.activationPullback("silu_backward", g, x, SiluPullback.self) { x in
                let s = x.sigmoid()
                return s * (1 - s) * (2 + x * (1 - 2 * s))
            }]
        }
    }

    /// x·relu6(x+3)/6.
    public func hardswish() -> Tensor {
        let x = self
        // As PyTorch: f′ = 0 below -3, x/3 + 1/2 up to 3 (inclusive), 1 above; f″ = 1/3 in between.
        return Tensor.record("hardswish", Kernels.map(x, HardswishFunction.self), [x]) { g in
            [Tensor.activationPullback("hardswish_backward", g, x, HardswishPullback.self) { x in
                x.greaterEqual(-3) * x.lessEqual(3) / 3
            }]
        }
    }

    /// relu6(x+3)/6.
    public func hardsigmoid() -> Tensor {
        let x = self
        return Tensor.record("hardsigmoid", Kernels.map(x, HardsigmoidFunction.self), [x]) { g in
            [g * (x.greater(-3) * x.less(3)) / 6]
        }
    }

    /// log(1 + eˣ), linear above 20 (as torch.nn.Softplus with beta 1, threshold 20).
    public func softplus() -> Tensor {
        let x = self
        return Tensor.record("softplus", Kernels.map(x, SoftplusFunction.self), [x]) { g in
            let linear = x.greater(20)
            return [g * (linear + (1 - linear) * x.sigmoid())]
        }
    }
}

enum NegFunction: UnaryFunction {
    @inline(__always) static func apply(_ x: Vec) -> Vec { -x }
}

enum AbsFunction: UnaryFunction {
    @inline(__always) static func apply(_ x: Vec) -> Vec { VectorMath.abs(x) }
}

enum SignFunction: UnaryFunction {
    @inline(__always) static func apply(_ x: Vec) -> Vec {
        let zero = Vec(repeating: 0)
        return VectorMath.ones(VectorMath.greater(x, zero)) - VectorMath.ones(VectorMath.less(x, zero))
    }
}

enum ExpFunction: UnaryFunction {
    @inline(__always) static func apply(_ x: Vec) -> Vec { VectorMath.exp(x) }
    static var cost: Int { 8 }
    static var cKernel: Int32 { Int32(PW_EXP) }
}

enum LogFunction: UnaryFunction {
    @inline(__always) static func apply(_ x: Vec) -> Vec { VectorMath.log(x) }
    static var cost: Int { 8 }
}

enum SqrtFunction: UnaryFunction {
    @inline(__always) static func apply(_ x: Vec) -> Vec { x.squareRoot() }
    static var cost: Int { 4 }
}

enum RsqrtFunction: UnaryFunction {
    @inline(__always) static func apply(_ x: Vec) -> Vec { 1 / x.squareRoot() }
    static var cost: Int { 4 }
}

enum SquareFunction: UnaryFunction {
    @inline(__always) static func apply(_ x: Vec) -> Vec { x * x }
}

enum TanhFunction: UnaryFunction {
    @inline(__always) static func apply(_ x: Vec) -> Vec { VectorMath.tanh(x) }
    static var cost: Int { 8 }
    static var cKernel: Int32 { Int32(PW_TANH) }
}

enum SigmoidFunction: UnaryFunction {
    @inline(__always) static func apply(_ x: Vec) -> Vec { VectorMath.sigmoid(x) }
    static var cost: Int { 8 }
    static var cKernel: Int32 { Int32(PW_SIGMOID) }
}

enum ErfFunction: UnaryFunction {
    @inline(__always) static func apply(_ x: Vec) -> Vec { VectorMath.erf(x) }
    static var cost: Int { 8 }
    static var cKernel: Int32 { Int32(PW_ERF) }
}

enum ReluFunction: UnaryFunction {
    @inline(__always) static func apply(_ x: Vec) -> Vec { VectorMath.select(VectorMath.less(x, Vec(repeating: 0)), Vec(repeating: 0), x) }
    static var cKernel: Int32 { Int32(PW_RELU) }
}

enum GeluFunction: UnaryFunction {
    @inline(__always) static func apply(_ x: Vec) -> Vec { VectorMath.kernel(cKernel, x) }
    static var cost: Int { 10 }
    static var cKernel: Int32 { Int32(PW_GELU) }
}

enum GeluTanhFunction: UnaryFunction {
    @inline(__always) static func apply(_ x: Vec) -> Vec { VectorMath.kernel(cKernel, x) }
    static var cost: Int { 10 }
    static var cKernel: Int32 { Int32(PW_GELU_TANH) }
}

// Activation pullbacks D(g, x) = g·f′(x) (tanh and sigmoid take their output y).

enum GeluPullback: BinaryFunction {
    @inline(__always) static func apply(_ g: Vec, _ x: Vec) -> Vec { VectorMath.kernelPullback(cKernel, g, x) }
    static var cKernel: Int32 { Int32(PW_GELU) }
}

enum GeluTanhPullback: BinaryFunction {
    @inline(__always) static func apply(_ g: Vec, _ x: Vec) -> Vec { VectorMath.kernelPullback(cKernel, g, x) }
    static var cKernel: Int32 { Int32(PW_GELU_TANH) }
}

enum SiluPullback: BinaryFunction {
    @inline(__always) static func apply(_ g: Vec, _ x: Vec) -> Vec { VectorMath.kernelPullback(cKernel, g, x) }
    static var cKernel: Int32 { Int32(PW_SILU) }
}

enum ReluPullback: BinaryFunction {
    @inline(__always) static func apply(_ g: Vec, _ x: Vec) -> Vec { VectorMath.select(VectorMath.greater(x, Vec(repeating: 0)), g, Vec(repeating: 0)) }
    static var cKernel: Int32 { Int32(PW_RELU) }
}

enum HardswishPullback: BinaryFunction {
    @inline(__always) static func apply(_ g: Vec, _ x: Vec) -> Vec {
        let middle = g * (x * (1.0 / 3) + 0.5)
        let aboveLow = VectorMath.select(VectorMath.less(x, Vec(repeating: -3)), Vec(repeating: 0), middle)
        return VectorMath.select(VectorMath.greater(x, Vec(repeating: 3)), g, aboveLow)
    }
}

enum TanhPullback: BinaryFunction {
    @inline(__always) static func apply(_ g: Vec, _ y: Vec) -> Vec { g * (1 - y * y) }
}

enum SigmoidPullback: BinaryFunction {
    @inline(__always) static func apply(_ g: Vec, _ y: Vec) -> Vec { g * y * (1 - y) }
}

enum SiluFunction: UnaryFunction {
    @inline(__always) static func apply(_ x: Vec) -> Vec { VectorMath.kernel(cKernel, x) }
    static var cost: Int { 8 }
    static var cKernel: Int32 { Int32(PW_SILU) }
}

enum HardswishFunction: UnaryFunction {
    @inline(__always) static func apply(_ x: Vec) -> Vec { x * VectorMath.clamp(x + 3, 0, 6) / 6 }
}

enum HardsigmoidFunction: UnaryFunction {
    @inline(__always) static func apply(_ x: Vec) -> Vec { VectorMath.clamp(x + 3, 0, 6) / 6 }
}

enum SoftplusFunction: UnaryFunction {
    @inline(__always) static func apply(_ x: Vec) -> Vec { VectorMath.softplus(x) }
    static var cost: Int { 16 }
}
