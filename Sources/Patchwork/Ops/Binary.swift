import Foundation

/// Element-wise functions of two tensors with NumPy broadcasting. Pullbacks
/// sum each gradient back to its input's shape.
extension Tensor {
    public static func + (a: Tensor, b: Tensor) -> Tensor {
        let y = Kernels.zip(a, b, op: "add", { $0 + $1 }, { $0 + $1 })
        return record("add", y, [a, b]) { g in
            [a.requiresGrad ? g.summed(toShape: a.shape) : nil, b.requiresGrad ? g.summed(toShape: b.shape) : nil]
        }
    }

    public static func - (a: Tensor, b: Tensor) -> Tensor {
        let y = Kernels.zip(a, b, op: "sub", { $0 - $1 }, { $0 - $1 })
        return record("sub", y, [a, b]) { g in
            [a.requiresGrad ? g.summed(toShape: a.shape) : nil, b.requiresGrad ? (-g).summed(toShape: b.shape) : nil]
        }
    }

    public static func * (a: Tensor, b: Tensor) -> Tensor {
        let y = Kernels.zip(a, b, op: "mul", { $0 * $1 }, { $0 * $1 })
        return record("mul", y, [a, b]) { g in
            [a.requiresGrad ? (g * b).summed(toShape: a.shape) : nil,
             b.requiresGrad ? (g * a).summed(toShape: b.shape) : nil]
        }
    }

    public static func / (a: Tensor, b: Tensor) -> Tensor {
        let y = Kernels.zip(a, b, op: "div", { $0 / $1 }, { $0 / $1 })
        return record("div", y, [a, b]) { g in
            [a.requiresGrad ? (g / b).summed(toShape: a.shape) : nil,
             b.requiresGrad ? (-g * a / (b * b)).summed(toShape: b.shape) : nil]
        }
    }

    /// aᵇ element-wise.
    public func pow(_ exponent: Tensor) -> Tensor {
        let a = self, b = exponent
        let y = Kernels.zip(a, b, op: "pow", { u, w in
            var r = u
            for i in 0..<16 { r[i] = Foundation.pow(u[i], w[i]) }
            return r
        }, { Foundation.pow($0, $1) })
        return Tensor.recordUsingOutput("pow", y, [a, b]) { g, y in
            [a.requiresGrad ? (g * b * a.pow(b - 1)).summed(toShape: a.shape) : nil,
             b.requiresGrad ? (g * y * a.log()).summed(toShape: b.shape) : nil]
        }
    }

    public func pow(_ exponent: Float) -> Tensor { pow(Tensor(exponent)) }

    /// Element-wise maximum; on ties the gradient is split equally (as PyTorch).
    public func maximum(_ other: Tensor) -> Tensor {
        let a = self, b = other
        let y = Kernels.zip(a, b, op: "maximum", { $0.replacing(with: $1, where: $1 .> $0) }, { Swift.max($0, $1) })
        return Tensor.record("maximum", y, [a, b]) { g in
            let toA = a.greater(b) + a.equal(b) * 0.5
            return [a.requiresGrad ? (g * toA).summed(toShape: a.shape) : nil,
                    b.requiresGrad ? (g * (1 - toA)).summed(toShape: b.shape) : nil]
        }
    }

    /// Element-wise minimum; on ties the gradient is split equally (as PyTorch).
    public func minimum(_ other: Tensor) -> Tensor {
        let a = self, b = other
        let y = Kernels.zip(a, b, op: "minimum", { $0.replacing(with: $1, where: $1 .< $0) }, { Swift.min($0, $1) })
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

    private func compare(_ other: Tensor, _ op: String, _ v: (Vec, Vec) -> SIMDMask<SIMD16<Int32>>, _ s: (Float, Float) -> Bool) -> Tensor {
        Kernels.zip(self, other, op: op, { u, w in Vec(repeating: 0).replacing(with: 1, where: v(u, w)) }, { s($0, $1) ? 1 : 0 })
    }

    public func equal(_ o: Tensor) -> Tensor { compare(o, "equal", { $0 .== $1 }, { $0 == $1 }) }
    public func notEqual(_ o: Tensor) -> Tensor { compare(o, "not_equal", { $0 .!= $1 }, { $0 != $1 }) }
    public func less(_ o: Tensor) -> Tensor { compare(o, "less", { $0 .< $1 }, { $0 < $1 }) }
    public func lessEqual(_ o: Tensor) -> Tensor { compare(o, "less_equal", { $0 .<= $1 }, { $0 <= $1 }) }
    public func greater(_ o: Tensor) -> Tensor { compare(o, "greater", { $0 .> $1 }, { $0 > $1 }) }
    public func greaterEqual(_ o: Tensor) -> Tensor { compare(o, "greater_equal", { $0 .>= $1 }, { $0 >= $1 }) }
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
