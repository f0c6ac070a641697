import Foundation

/// Element-wise functions of two tensors with NumPy broadcasting. Pullbacks
/// sum each gradient back to its input's shape.
extension Tensor {
    public static func + (a: Tensor, b: Tensor) -> Tensor {
        let y = Kernels.zip(a, b, op: "add", AddFunction.self)
        return record("add", y, [a, b]) { g in
            [a.requiresGrad ? g.summed(toShape: a.shape) : nil, b.requiresGrad ? g.summed(toShape: b.shape) : nil]
        }
    }

    public static func - (a: Tensor, b: Tensor) -> Tensor {
        let y = Kernels.zip(a, b, op: "sub", SubFunction.self)
        return record("sub", y, [a, b]) { g in
            [a.requiresGrad ? g.summed(toShape: a.shape) : nil, b.requiresGrad ? (-g).summed(toShape: b.shape) : nil]
        }
    }

    public static func * (a: Tensor, b: Tensor) -> Tensor {
        let y = Kernels.zip(a, b, op: "mul", MulFunction.self)
        return record("mul", y, [a, b]) { g in
            [a.requiresGrad ? (g * b).summed(toShape: a.shape) : nil,
             b.requiresGrad ? (g * a).summed(toShape: b.shape) : nil]
        }
    }

    public static func / (a: Tensor, b: Tensor) -> Tensor {
        let y = Kernels.zip(a, b, op: "div", DivFunction.self)
        return record("div", y, [a, b]) { g in
            [a.requiresGrad ? (g / b).summed(toShape: a.shape) : nil,
             b.requiresGrad ? (-g * a / (b * b)).summed(toShape: b.shape) : nil]
        }
    }

    /// aᵇ element-wise.
    public func pow(_ exponent: Tensor) -> Tensor {
        let a = self, b = exponent
        let y = Kernels.zip(a, b, op: "pow", PowFunction.self)
        return Tensor.recordUsingOutput("pow", y, [a, b]) { g, y in
            [a.requiresGrad ? (g * b * a.pow(b - 1)).summed(toShape: a.shape) : nil,
             b.requiresGrad ? (g * y * a.log()).summed(toShape: b.shape) : nil]
        }
    }

    public func pow(_ exponent: Float) -> Tensor { pow(Tensor(exponent)) }

    /// Element-wise maximum; on ties the gradient is split equally (as PyTorch).
    public func maximum(_ other: Tensor) -> Tensor {
        let a = self, b = other
        let y = Kernels.zip(a, b, op: "maximum", MaximumFunction.self)
        return Tensor.record("maximum", y, [a, b]) { g in
            let toA = a.greater(b) + a.equal(b) * 0.5
            return [a.requiresGrad ? (g * toA).summed(toShape: a.shape) : nil,
                    b.requiresGrad ? (g * (1 - toA)).summed(toShape: b.shape) : nil]
        }
    }

    /// Element-wise minimum; on ties the gradient is split equally (as PyTorch).
    public func minimum(_ other: Tensor) -> Tensor {
        let a = self, b = other
        let y = Kernels.zip(a, b, op: "minimum", MinimumFunction.self)
        return Tensor.record("minimum", y, [a, b]) { g in
            let toA = a.less(b) + a.equal(b) * 0.5
            return [a.requiresGrad ? (g * toA).summed(toShape: a.shape) : nil,
                    b.requiresGrad ? (g * (1 - toA)).summed(toShape: b.shape) : nil]
        }
    }

    public func clamped(min lo: Float, max hi: Float) -> Tensor { maximum(Tensor(lo)).minimum(Tensor(hi)) }

    // Scalars on either side.
    public static func + (a: Tensor, b: Float) -> Tensor { a + Tensor(b) }
    public static func + (a: Float, b: Tensor) -> Tensor { Tensor(a) + b }
    public static func - (a: Tensor, b: Float) -> Tensor { a - Tensor(b) }
    public static func - (a: Float, b: Tensor) -> Tensor { Tensor(a) - b }
    public static func * (a: Tensor, b: Float) -> Tensor { a * Tensor(b) }
    public static func * (a: Float, b: Tensor) -> Tensor { Tensor(a) * b }
    public static func / (a: Tensor, b: Float) -> Tensor { a / Tensor(b) }
    public static func / (a: Float, b: Tensor) -> Tensor { Tensor(a) / b }

    // MARK: Comparisons: 1 where true, 0 where false; constants to autograd.

    public func equal(_ o: Tensor) -> Tensor { Kernels.zip(self, o, op: "equal", EqualFunction.self) }
    public func notEqual(_ o: Tensor) -> Tensor { Kernels.zip(self, o, op: "not_equal", NotEqualFunction.self) }
    public func less(_ o: Tensor) -> Tensor { Kernels.zip(self, o, op: "less", LessFunction.self) }
    public func lessEqual(_ o: Tensor) -> Tensor { Kernels.zip(self, o, op: "less_equal", LessEqualFunction.self) }
    public func greater(_ o: Tensor) -> Tensor { Kernels.zip(self, o, op: "greater", GreaterFunction.self) }
    public func greaterEqual(_ o: Tensor) -> Tensor { Kernels.zip(self, o, op: "greater_equal", GreaterEqualFunction.self) }
    public func equal(_ o: Float) -> Tensor { equal(Tensor(o)) }
    public func less(_ o: Float) -> Tensor { less(Tensor(o)) }
    public func lessEqual(_ o: Float) -> Tensor { lessEqual(Tensor(o)) }
    public func greater(_ o: Float) -> Tensor { greater(Tensor(o)) }
    public func greaterEqual(_ o: Float) -> Tensor { greaterEqual(Tensor(o)) }
}

/// `a` where `condition` is non-zero, else `b` (all three broadcast together).
/// Differentiable in `a` and `b`; the condition is a constant.
extension Tensor {
public static func `where`(_ condition: Tensor, _ a: Tensor, _ b: Tensor) -> Tensor {
    let shape = broadcastShapes(broadcastShapes(condition.shape, a.shape, op: "where"), b.shape, op: "where")
    let out = Tensor(uninitializedShape: shape)
    let layout = RowLayout(shape: shape, strides: [
        Tensor.contiguousStrides(shape), broadcastStrides(condition, to: shape),
        broadcastStrides(a, to: shape), broadcastStrides(b, to: shape),
    ])
    let po = out.storage.pointer, pc = condition.storage.pointer + condition.offset
    let pa = a.storage.pointer + a.offset, pb = b.storage.pointer + b.offset
    layout.forEachRow { o, n, s in
        for i in 0..<n {
            po[o[0] + i * s[0]] = pc[o[1] + i * s[1]] != 0 ? pa[o[2] + i * s[2]] : pb[o[3] + i * s[3]]
        }
    }
    let c = condition.detached()
    return Tensor.record("where", out, [a, b]) { g in
        let zero = Tensor.zeros(like: g)
        return [a.requiresGrad ? Tensor.where(c, g, zero).summed(toShape: a.shape) : nil,
                b.requiresGrad ? Tensor.where(c, zero, g).summed(toShape: b.shape) : nil]
    }
}
}

enum AddFunction: BinaryFunction { @inline(__always) static func apply(_ x: Vec, _ y: Vec) -> Vec { x + y } }
enum SubFunction: BinaryFunction { @inline(__always) static func apply(_ x: Vec, _ y: Vec) -> Vec { x - y } }
enum MulFunction: BinaryFunction { @inline(__always) static func apply(_ x: Vec, _ y: Vec) -> Vec { x * y } }
enum DivFunction: BinaryFunction { @inline(__always) static func apply(_ x: Vec, _ y: Vec) -> Vec { x / y } }
enum MaximumFunction: BinaryFunction { @inline(__always) static func apply(_ x: Vec, _ y: Vec) -> Vec { VectorMath.max(x, y) } }
enum MinimumFunction: BinaryFunction { @inline(__always) static func apply(_ x: Vec, _ y: Vec) -> Vec { VectorMath.min(x, y) } }

/// xʸ, lane by lane through the C library (exact powers matter more than speed here).
enum PowFunction: BinaryFunction {
    @inline(__always) static func apply(_ x: Vec, _ y: Vec) -> Vec {
        var r = x
        for i in 0..<16 { r[i] = Foundation.pow(x[i], y[i]) }
        return r
    }
}

/// Comparisons give 1 where true and 0 where false.
enum EqualFunction: BinaryFunction { @inline(__always) static func apply(_ x: Vec, _ y: Vec) -> Vec { VectorMath.ones(VectorMath.equal(x, y)) } }
enum NotEqualFunction: BinaryFunction { @inline(__always) static func apply(_ x: Vec, _ y: Vec) -> Vec { Vec(repeating: 1) - VectorMath.ones(VectorMath.equal(x, y)) } }
enum LessFunction: BinaryFunction { @inline(__always) static func apply(_ x: Vec, _ y: Vec) -> Vec { VectorMath.ones(VectorMath.less(x, y)) } }
enum LessEqualFunction: BinaryFunction { @inline(__always) static func apply(_ x: Vec, _ y: Vec) -> Vec { VectorMath.ones(VectorMath.lessEqual(x, y)) } }
enum GreaterFunction: BinaryFunction { @inline(__always) static func apply(_ x: Vec, _ y: Vec) -> Vec { VectorMath.ones(VectorMath.greater(x, y)) } }
enum GreaterEqualFunction: BinaryFunction { @inline(__always) static func apply(_ x: Vec, _ y: Vec) -> Vec { VectorMath.ones(VectorMath.lessEqual(y, x)) } }
