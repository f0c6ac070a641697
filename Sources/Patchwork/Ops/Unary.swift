import Foundation

/// Element-wise functions of one tensor. Each forward runs a SIMD kernel; each
/// pullback is written with Tensor ops (so it can be differentiated again).
extension Tensor {
    public static prefix func - (x: Tensor) -> Tensor {
        let y = Kernels.map(x, { -$0 }, { -$0 })
        return record("neg", y, [x]) { g in [-g] }
    }

    public func abs() -> Tensor {
        let x = self
        let y = Kernels.map(x, { VectorMath.abs($0) }, { Swift.abs($0) })
        return Tensor.record("abs", y, [x]) { g in [g * x.sign()] }
    }

    /// -1, 0 or 1 per element (not differentiable: treated as a constant).
    public func sign() -> Tensor {
        Kernels.map(self, { v in
            var r = Vec(repeating: 0)
            r.replace(with: 1, where: v .> 0)
            r.replace(with: -1, where: v .< 0)
            return r
        }, { $0 > 0 ? 1 : ($0 < 0 ? -1 : 0) })
    }

    public func exp() -> Tensor {
        let y = Kernels.map(self, cost: 8, { VectorMath.exp($0) }, { VectorMath.exp($0) })
        return Tensor.recordUsingOutput("exp", y, [self]) { g, y in [g * y] }
    }

    public func log() -> Tensor {
        let x = self
        let y = Kernels.map(x, cost: 8, { v in
            var r = v
            for i in 0..<16 { r[i] = Foundation.log(v[i]) }
            return r
        }, { Foundation.log($0) })
        return Tensor.record("log", y, [x]) { g in [g / x] }
    }

    public func sqrt() -> Tensor {
        let y = Kernels.map(self, cost: 4, { $0.squareRoot() }, { $0.squareRoot() })
        return Tensor.recordUsingOutput("sqrt", y, [self]) { g, y in [g * 0.5 / y] }
    }

    public func rsqrt() -> Tensor {
        let y = Kernels.map(self, cost: 4, { 1 / $0.squareRoot() }, { 1 / $0.squareRoot() })
        return Tensor.recordUsingOutput("rsqrt", y, [self]) { g, y in [g * (-0.5) * y * y * y] }
    }

    public func square() -> Tensor {
        let x = self
        let y = Kernels.map(x, { $0 * $0 }, { $0 * $0 })
        return Tensor.record("square", y, [x]) { g in [g * x * 2] }
    }

    public func tanh() -> Tensor {
        let y = Kernels.map(self, cost: 8, { VectorMath.tanh($0) }, { VectorMath.tanh($0) })
        return Tensor.recordUsingOutput("tanh", y, [self]) { g, y in [g * (1 - y * y)] }
    }

    public func sigmoid() -> Tensor {
        let y = Kernels.map(self, cost: 8, { VectorMath.sigmoid($0) }, { VectorMath.sigmoid($0) })
        return Tensor.recordUsingOutput("sigmoid", y, [self]) { g, y in [g * y * (1 - y)] }
    }

    public func erf() -> Tensor {
        let x = self
        let y = Kernels.map(x, cost: 8, { VectorMath.erf($0) }, { VectorMath.erf($0) })
        // d/dx erf(x) = 2/√π · e^{-x²}
        return Tensor.record("erf", y, [x]) { g in [g * (x.square() * -1).exp() * 1.1283791670955126] }
    }

    public func relu() -> Tensor {
        let x = self
        let y = Kernels.map(x, { $0.replacing(with: 0, where: $0 .< 0) }, { $0 < 0 ? 0 : $0 })
        return Tensor.record("relu", y, [x]) { g in [g * x.greater(0)] }
    }

    /// GELU with the exact erf form: x·Φ(x).
    public func gelu() -> Tensor {
        let x = self
        let y = Kernels.map(x, cost: 10, { v in 0.5 * v * (1 + VectorMath.erf(v * 0.7071067811865476)) },
                            { v in 0.5 * v * (1 + VectorMath.erf(v * 0.7071067811865476)) })
        return Tensor.record("gelu", y, [x]) { g in [g * x.geluDerivative()] }
    }

    /// Φ(x) + x·φ(x), the derivative of exact GELU, as one kernel.
    func geluDerivative() -> Tensor {
        let x = self
        let d = Kernels.map(x, cost: 16, { v in
            0.5 * (1 + VectorMath.erf(v * 0.7071067811865476)) + v * 0.3989422804014327 * VectorMath.exp(-0.5 * v * v)
        }, { v in
            0.5 * (1 + VectorMath.erf(v * 0.7071067811865476)) + v * 0.3989422804014327 * VectorMath.exp(-0.5 * v * v)
        })
        // GELU''(x) = φ(x)·(2 − x²)
        return Tensor.record("gelu_derivative", d, [x]) { g in
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
        let y = Kernels.map(x, cost: 8, { $0 * VectorMath.sigmoid($0) }, { $0 * VectorMath.sigmoid($0) })
        return Tensor.record("silu", y, [x]) { g in
            let s = x.sigmoid()
            return [g * s * (1 + x * (1 - s))]
        }
    }

    /// x·relu6(x+3)/6.
    public func hardswish() -> Tensor {
        let x = self
        let y = Kernels.map(x, { v in v * VectorMath.clamp(v + 3, 0, 6) / 6 },
                            { v in v * Swift.min(Swift.max(v + 3, 0), 6) / 6 })
        // As PyTorch: 0 below -3, x/3 + 1/2 up to 3 (inclusive), 1 above.
        return Tensor.record("hardswish", y, [x]) { g in
            let middle = x.greaterEqual(-3) * x.lessEqual(3)
            return [g * (middle * (x / 3 + 0.5) + x.greater(3))]
        }
    }

    /// relu6(x+3)/6.
    public func hardsigmoid() -> Tensor {
        let x = self
        let y = Kernels.map(x, { v in VectorMath.clamp(v + 3, 0, 6) / 6 },
                            { v in Swift.min(Swift.max(v + 3, 0), 6) / 6 })
        return Tensor.record("hardsigmoid", y, [x]) { g in [g * (x.greater(-3) * x.less(3)) / 6] }
    }

    /// log(1 + eˣ), linear above `threshold` (as torch.nn.Softplus with beta 1).
    public func softplus(threshold: Float = 20) -> Tensor {
        let x = self
        let y = Kernels.map(x, cost: 16, { v in
            var r = v
            for i in 0..<16 where v[i] <= threshold { r[i] = Foundation.log1p(Foundation.exp(v[i])) }
            return r
        }, { v in v > threshold ? v : Foundation.log1p(Foundation.exp(v)) })
        return Tensor.record("softplus", y, [x]) { g in
            let linear = x.greater(threshold)
            return [g * (linear + (1 - linear) * x.sigmoid())]
        }
    }
}
