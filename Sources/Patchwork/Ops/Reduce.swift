/// Reductions over any set of axes, with or without keeping them as size 1.
extension Tensor {
    public func sum(alongAxes axes: [Int], keepDims: Bool = false) -> Tensor {
        let x = self
        let (y, kept) = Kernels.reduce(x, axes: axes, op: "sum", kind: .sum)
        let out = keepDims ? y : y.reshaped(kept)
        return Tensor.record("sum", out, [x]) { g in [g.reshaped(y.shape).expanded(to: x.shape)] }
    }

    public func sum() -> Tensor { sum(alongAxes: Array(0..<rank)) }
    public func sum(axis: Int, keepDims: Bool = false) -> Tensor { sum(alongAxes: [axis], keepDims: keepDims) }

    public func mean(alongAxes axes: [Int], keepDims: Bool = false) -> Tensor {
        let n = reducedCount(axes, op: "mean")
        return sum(alongAxes: axes, keepDims: keepDims) * (1 / Float(Swift.max(n, 1)))
    }

    public func mean() -> Tensor { mean(alongAxes: Array(0..<rank)) }
    public func mean(axis: Int, keepDims: Bool = false) -> Tensor { mean(alongAxes: [axis], keepDims: keepDims) }

    /// Variance over `axes`; `correction` 0 is the population variance (layer
    /// norm, batch norm), 1 the unbiased sample variance (torch.var's default).
    public func variance(alongAxes axes: [Int], keepDims: Bool = false, correction: Int = 0) -> Tensor {
        let n = reducedCount(axes, op: "variance")
        guard n - correction > 0 else {
            fail("variance", "\(n) elements along axes \(axes) of \(shape) with correction \(correction)")
        }
        let centered = self - mean(alongAxes: axes, keepDims: true)
        return centered.square().sum(alongAxes: axes, keepDims: keepDims) * (1 / Float(n - correction))
    }

    public func max(alongAxes axes: [Int], keepDims: Bool = false) -> Tensor { extremum(axes, keepDims, .max, "max") }
    public func min(alongAxes axes: [Int], keepDims: Bool = false) -> Tensor { extremum(axes, keepDims, .min, "min") }
    public func max(axis: Int, keepDims: Bool = false) -> Tensor { max(alongAxes: [axis], keepDims: keepDims) }
    public func min(axis: Int, keepDims: Bool = false) -> Tensor { min(alongAxes: [axis], keepDims: keepDims) }
    public func max() -> Tensor { max(alongAxes: Array(0..<rank)) }
    public func min() -> Tensor { min(alongAxes: Array(0..<rank)) }

    /// Gradient goes to the elements equal to the extremum, split equally among ties (as torch.amax).
    private func extremum(_ axes: [Int], _ keepDims: Bool, _ kind: Kernels.ReduceKind, _ op: String) -> Tensor {
        let x = self
        let (y, kept) = Kernels.reduce(x, axes: axes, op: op, kind: kind)
        let out = keepDims ? y : y.reshaped(kept)
        return Tensor.record(op, out, [x]) { g in
            let mask = x.equal(y)
            let share = mask / mask.sum(alongAxes: axes, keepDims: true)
            return [g.reshaped(y.shape) * share]
        }
    }

    /// Index of the largest element along `axis` (first one on ties), as
    /// float values; not differentiable.
    public func argmax(axis: Int, keepDims: Bool = false) -> Tensor {
        let ax = normalizeAxis(axis, rank: rank, op: "argmax", shape: shape)
        var order = (0..<rank).filter { $0 != ax }
        order.append(ax)
        let rows = detached().permuted(order).contiguous(recordingGrad: false)
        let n = shape[ax]
        guard n > 0 else { fail("argmax", "axis \(axis) of shape \(shape) is empty") }
        let outer = count / n
        let out = Tensor(uninitializedShape: [outer])
        let src = rows.base, dst = out.base
        Parallel.forEach(outer, costPerItem: n) { r in
            let row = src + r * n
            var best = row[0], index = 0
            for i in 1..<n where row[i] > best || (best != best) { best = row[i]; index = i }
            dst[r] = Float(index)
        }
        var s = shape
        if keepDims { s[ax] = 1 } else { s.remove(at: ax) }
        return out.reshaped(s)
    }

    private func reducedCount(_ axes: [Int], op: String) -> Int {
        Set(axes.map { normalizeAxis($0, rank: rank, op: op, shape: shape) }).reduce(1) { $0 * shape[$1] }
    }
}

extension Kernels {
    enum ReduceKind { case sum, max, min }

    /// Reduces `x` over `axes`; returns the result with the axes kept as size 1,
    /// and the shape without them.
    static func reduce(_ x: Tensor, axes: [Int], op: String, kind: ReduceKind) -> (Tensor, [Int]) {
        let reduced = Set(axes.map { normalizeAxis($0, rank: x.rank, op: op, shape: x.shape) })
        let keptAxes = (0..<x.rank).filter { !reduced.contains($0) }
        var keptDimsShape = x.shape
        for a in reduced { keptDimsShape[a] = 1 }
        let keptShape = keptAxes.map { x.shape[$0] }
        let outer = keptShape.reduce(1, *)
        let inner = reduced.reduce(1) { $0 * x.shape[$1] }
        if (kind != .sum) && inner == 0 { fail(op, "reducing empty axes \(axes) of shape \(x.shape)") }
        let out = Tensor(uninitializedShape: keptDimsShape)

        // Reduced axes leading in a contiguous tensor: accumulate rows into the output (column reduce).
        let sortedReduced = reduced.sorted()
        if x.isContiguous && sortedReduced == Array(0..<reduced.count) && outer > 1 {
            columnReduce(x.base, out.base, rows: inner, columns: outer, kind: kind)
            return (out, keptShape)
        }
        // Otherwise lay the reduced axes last (a view when they already are) and reduce rows.
        let rows = x.detached().permuted(keptAxes + sortedReduced).contiguous(recordingGrad: false)
        rowReduce(rows.base, out.base, rows: outer, length: inner, kind: kind)
        return (out, keptShape)
    }

    static func rowReduce(_ src: UnsafeMutablePointer<Float>, _ dst: UnsafeMutablePointer<Float>, rows: Int, length n: Int, kind: ReduceKind) {
        Parallel.forEach(rows, costPerItem: n) { r in
            let row = src + r * n
            var i = 0
            switch kind {
            case .sum:
                var acc = Vec(repeating: 0)
                while i + 16 <= n { acc += UnsafeRawPointer(row + i).loadUnaligned(as: Vec.self); i += 16 }
                var s = acc.sum()
                while i < n { s += row[i]; i += 1 }
                dst[r] = s
            case .max, .min:
                let isMax = kind == .max
                var acc = Vec(repeating: row[0])
                while i + 16 <= n {
                    let v = UnsafeRawPointer(row + i).loadUnaligned(as: Vec.self)
                    acc = isMax ? VectorMath.max(acc, v) : VectorMath.min(acc, v)
                    i += 16
                }
                var m = isMax ? acc.max() : acc.min()
                while i < n { m = isMax ? Swift.max(m, row[i]) : Swift.min(m, row[i]); i += 1 }
                dst[r] = m
            }
        }
    }

    static func columnReduce(_ src: UnsafeMutablePointer<Float>, _ dst: UnsafeMutablePointer<Float>, rows: Int, columns: Int, kind: ReduceKind) {
        Parallel.forChunks(columns, costPerItem: rows) { range in
            let lo = range.lowerBound, width = range.count
            switch kind {
            case .sum: (dst + lo).update(repeating: 0, count: width)
            case .max, .min: (dst + lo).update(from: src + lo, count: width)
            }
            for r in (kind == .sum ? 0 : 1)..<rows {
                let row = src + r * columns + lo, acc = dst + lo
                var i = 0
                while i + 16 <= width {
                    let a = UnsafeRawPointer(acc + i).loadUnaligned(as: Vec.self)
                    let v = UnsafeRawPointer(row + i).loadUnaligned(as: Vec.self)
                    let result: Vec
                    switch kind {
                    case .sum: result = a + v
                    case .max: result = VectorMath.max(a, v)
                    case .min: result = VectorMath.min(a, v)
                    }
                    UnsafeMutableRawPointer(acc + i).storeBytes(of: result, as: Vec.self)
                    i += 16
                }
                while i < width {
                    switch kind {
                    case .sum: acc[i] += row[i]
                    case .max: acc[i] = Swift.max(acc[i], row[i])
                    case .min: acc[i] = Swift.min(acc[i], row[i])
                    }
                    i += 1
                }
            }
        }
    }
}
