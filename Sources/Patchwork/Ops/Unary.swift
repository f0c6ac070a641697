import Foundation

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
        Tensor.recordUsingOutput("tanh", Kernels.map(self, TanhFunction.self), [self]) { g, y in [g * (1 - y * y)] }
    }

    public func sigmoid() -> Tensor {
        Tensor.recordUsingOutput("sigmoid", Kernels.map(self, SigmoidFunction.self), [self]) { g, y in [g * y * (1 - y)] }
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
        return Tensor.record("relu", Kernels.map(x, ReluFunction.self), [x]) { g in [g * x.greater(0)] }
    }

    /// GELU with the exact erf form: x·Φ(x).
    public func gelu() -> Tensor {
        let x = self
        return Tensor.record("gelu", Kernels.map(x, GeluFunction.self), [x]) { g in [g * x.geluDerivative()] }
    }

    /// Φ(x) + x·φ(x), the derivative of exact GELU, as one kernel.
    func geluDerivative() -> Tensor {
        let x = self
        // GELU''(x) = φ(x)·(2 − x²)
        return Tensor.record("gelu_derivative", Kernels.map(x, GeluDerivativeFunction.self), [x]) { g in
            let pdf = (x.square() * -0.5).exp() * 0.3989422804014327
            return [g * pdf * (2 - x.square())]
        }
    }

    /// GELU with the tanh approximation (PyTorch's approximate="tanh").
    public func geluTanh() -> Tensor {
        let c: Float = 0.7978845608028654  // √(2/π)
        let inner = (self + self * self.square() * 0.044715) * c
        return self * 0.5 * (1 + inner.tanh())
    }

    /// x·σ(x) (also called swish).
    public func silu() -> Tensor {
        let x = self
        return Tensor.record("silu", Kernels.map(x, SiluFunction.self), [x]) { g in
            let s = x.sigmoid()
            return [g * s * (1 + x * (1 - s))]
        }
    }

    /// x·relu6(x+3)/6.
    public func hardswish() -> Tensor {
        let x = self
        // As PyTorch: 0 below -3, x/3 + 1/2 up to 3 (inclusive), 1 above.
        return Tensor.record("hardswish", Kernels.map(x, HardswishFunction.self), [x]) { g in
            let middle = x.greaterEqual(-3) * x.lessEqual(3)
            return [g * (middle * (x / 3 + 0.5) + x.greater(3))]
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
}

enum SigmoidFunction: UnaryFunction {
    @inline(__always) static func apply(_ x: Vec) -> Vec { VectorMath.sigmoid(x) }
    static var cost: Int { 8 }
}

enum ErfFunction: UnaryFunction {
    @inline(__always) static func apply(_ x: Vec) -> Vec { VectorMath.erf(x) }
    static var cost: Int { 8 }
}

enum ReluFunction: UnaryFunction {
    @inline(__always) static func apply(_ x: Vec) -> Vec { VectorMath.select(VectorMath.less(x, Vec(repeating: 0)), Vec(repeating: 0), x) }
}

enum GeluFunction: UnaryFunction {
    @inline(__always) static func apply(_ x: Vec) -> Vec { 0.5 * x * (1 + VectorMath.erf(x * 0.7071067811865476)) }
    static var cost: Int { 10 }
}

enum GeluDerivativeFunction: UnaryFunction {
    @inline(__always) static func apply(_ x: Vec) -> Vec { 0.5 * (1 + VectorMath.erf(x * 0.7071067811865476)) + x * 0.3989422804014327 * VectorMath.exp(-0.5 * x * x) }
    static var cost: Int { 16 }
}

enum SiluFunction: UnaryFunction {
    @inline(__always) static func apply(_ x: Vec) -> Vec { x * VectorMath.sigmoid(x) }
    static var cost: Int { 8 }
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
