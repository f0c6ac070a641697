/// Selecting by index: `indexSelect` (rows picked by a list of indices, as
/// torch.index_select) and `gather` (as torch.gather). Each backward is a
/// scatter-add op whose own pullback is the forward op again, so gradients of
/// gradients work. Index tensors hold integer values as floats and are
/// constants to autograd.
extension Tensor {
    /// The slices `indices[0], indices[1], ...` along `axis` (as torch.index_select);
    /// indices may repeat. Relative-position bias tables use `table.indexSelect(axis: 0, ...)`.
    public func indexSelect(axis: Int, indices: [Int]) -> Tensor {
        let ax = normalizeAxis(axis, rank: rank, op: "index_select", shape: shape)
        let n = shape[ax]
        if let bad = indices.firstIndex(where: { $0 < 0 || $0 >= n }) {
            fail("index_select", "index \(indices[bad]) (position \(bad)) is out of range for axis \(axis) of shape \(shape) (size \(n))")
        }
        let outer = shape[..<ax].reduce(1, *), inner = shape[(ax + 1)...].reduce(1, *)
        var outShape = shape
        outShape[ax] = indices.count
        let out = Tensor(uninitializedShape: outShape)
        let src = contiguous(recordingGrad: false)
        let k = indices.count
        if out.count > 0 {
            let ps = src.base, po = out.base
            indices.withUnsafeBufferPointer { idx in
                if inner == 1 {
                    // A gather of single floats (LeViT's attention biases: N² of them per head):
                    // one loop per outer slice rather than a copy call and a division per float.
                    Parallel.forEach(outer, costPerItem: k) { o in
                        let from = ps + o * n, to = po + o * k
                        for j in 0..<k { to[j] = from[idx[j]] }
                    }
                } else {
                    Parallel.forEach(outer * k, costPerItem: inner) { row in
                        let o = row / k, j = row % k
                        (po + row * inner).update(from: ps + (o * n + idx[j]) * inner, count: inner)
                    }
                }
            }
        }
        return Tensor.record("index_select", out, [self]) { g in
            [g.indexAdd(axis: ax, indices: indices, size: n)]
        }
    }

    /// The gradient of `indexSelect`: zeros of size `size` along `axis`, with
    /// slice j of self added at `indices[j]` (index_add into zeros).
    func indexAdd(axis ax: Int, indices: [Int], size n: Int) -> Tensor {
        require(shape[ax] == indices.count, "indexSelect", "\(indices.count) indices for axis \(ax) of size \(shape[ax])")
        let outer = shape[..<ax].reduce(1, *), inner = shape[(ax + 1)...].reduce(1, *)
        var outShape = shape
        outShape[ax] = n
        let out = Tensor.zeros(outShape)
        let src = contiguous(recordingGrad: false)
        let k = indices.count
        if src.count > 0 {
            let ps = src.base, po = out.base
            // Split over outer slices, and over channel blocks when there are few slices:
            // every piece writes its own part of the output, so repeated indices never race.
            let blocks = (inner + 15) / 16
            let pieces = outer >= Parallel.threadCount ? 1 : Swift.max(1, Swift.min(Parallel.threadCount, blocks))
            indices.withUnsafeBufferPointer { idx in
                if inner == 1 {
                    // Single floats (LeViT's attention-bias gradient): added in a plain loop, in
                    // the same order as below, rather than an accumulate call per float.
                    Parallel.forEach(outer, costPerItem: k) { o in
                        let from = ps + o * k, to = po + o * n
                        for j in 0..<k { to[idx[j]] += from[j] }
                    }
                } else {
                    Parallel.forEach(outer * pieces, costPerItem: k * inner / pieces) { unit in
                        let o = unit / pieces, p = unit % pieces
                        let lo = Swift.min(inner, blocks * p / pieces * 16), hi = Swift.min(inner, blocks * (p + 1) / pieces * 16)
                        for j in 0..<k {
                            Kernels.accumulate(po + (o * n + idx[j]) * inner + lo, ps + (o * k + j) * inner + lo, count: hi - lo, scale: 1)
                        }
                    }
                }
            }
        }
        return Tensor.record("index_select_backward", out, [self]) { gg in
            [gg.indexSelect(axis: ax, indices: indices)]
        }
    }

    /// Values picked along `axis` by `indices` (as torch.gather):
    /// out[i][j][k] = self[i][indices[i][j][k]][k] for axis 1. `indices` has
    /// the rank of self, holds integers (as floats), and is no larger than self
    /// in the other dimensions; the result has the shape of `indices`.
    public func gather(axis: Int, indices: Tensor) -> Tensor {
        let ax = normalizeAxis(axis, rank: rank, op: "gather", shape: shape)
        let index = checkedGatherIndices(indices, axis: ax, op: "gather")
        let out = Tensor(uninitializedShape: index.shape)
        if out.count > 0 {
            let r = rank, n = index.shape[r - 1]
            let idxShape = index.shape, xStrides = strides, ps = storage.pointer + offset, pi = index.base, po = out.base
            let rows = out.count / n
            let lastStride = strides[r - 1]
            Parallel.forEach(rows, costPerItem: n) { row in
                // Offset into self of this row, without the gathered axis.
                var rem = row, base = 0
                for d in stride(from: r - 2, through: 0, by: -1) {
                    let i = rem % idxShape[d]; rem /= idxShape[d]
                    if d != ax { base += i * xStrides[d] }
                }
                let pin = pi + row * n, pout = po + row * n
                if ax == r - 1 {
                    for j in 0..<n { pout[j] = ps[base + Int(pin[j]) * lastStride] }
                } else {
                    let sa = xStrides[ax]
                    for j in 0..<n { pout[j] = ps[base + Int(pin[j]) * sa + j * lastStride] }
                }
            }
        }
        let source = shape
        return Tensor.record("gather", out, [self]) { g in
            [g.gatherBackward(axis: ax, indices: index, shape: source)]
        }
    }

    /// The gradient of `gather`: zeros of `shape` with self's values added at
    /// the gathered positions (scatter_add into zeros).
    func gatherBackward(axis ax: Int, indices index: Tensor, shape target: [Int]) -> Tensor {
        let out = Tensor.zeros(target)
        let g = contiguous(recordingGrad: false)
        if g.count > 0 {
            let r = rank, n = index.shape[r - 1], idxShape = index.shape
            let oStrides = out.strides, po = out.base, pi = index.base, pg = g.base
            let rows = g.count / n
            // Rows that differ before `ax` write to disjoint parts of the output: split over those.
            let outerRows = idxShape[..<ax].reduce(1, *)
            let rowsPerOuter = rows / Swift.max(outerRows, 1)
            Parallel.forEach(outerRows, costPerItem: rowsPerOuter * n) { o in
                for row in (o * rowsPerOuter)..<((o + 1) * rowsPerOuter) {
                    var rem = row, base = 0
                    for d in stride(from: r - 2, through: 0, by: -1) {
                        let i = rem % idxShape[d]; rem /= idxShape[d]
                        if d != ax { base += i * oStrides[d] }
                    }
                    let pin = pi + row * n, pgr = pg + row * n
                    if ax == r - 1 {
                        for j in 0..<n { po[base + Int(pin[j])] += pgr[j] }
                    } else {
                        let sa = oStrides[ax]
                        for j in 0..<n { po[base + Int(pin[j]) * sa + j] += pgr[j] }
                    }
                }
            }
        }
        return Tensor.record("gather_backward", out, [self]) { gg in
            [gg.gather(axis: ax, indices: index)]
        }
    }

    /// Contiguous, detached indices checked against self's shape: integral and in range.
    private func checkedGatherIndices(_ indices: Tensor, axis ax: Int, op: String) -> Tensor {
        guard indices.rank == rank, rank > 0 else {
            fail(op, "indices of shape \(indices.shape) must have the rank of the input, shape \(shape)")
        }
        for d in 0..<rank where d != ax && indices.shape[d] > shape[d] {
            fail(op, "indices of shape \(indices.shape) are larger than the input, shape \(shape), in dimension \(d) (axis is \(ax))")
        }
        let index = indices.detached().contiguous(recordingGrad: false)
        let n = shape[ax]
        let p = index.base
        for i in 0..<index.count {
            let v = p[i]
            if !(v >= 0 && v < Float(n) && v == v.rounded(.down)) {
                fail(op, "index \(v) at position \(i) of indices \(indices.shape) is not an integer in 0..<\(n) "
                     + "(axis \(ax) of shape \(shape))")
            }
        }
        return index
    }
}

extension Kernels {
    /// dst[i] += scale * src[i] for `count` floats.
    @inline(__always)
    static func accumulate(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, count: Int, scale: Float) {
        var i = 0
        let s = Vec(repeating: scale)
        while i + 16 <= count {
            let a = UnsafeRawPointer(dst + i).loadUnaligned(as: Vec.self)
            let b = UnsafeRawPointer(src + i).loadUnaligned(as: Vec.self)
            UnsafeMutableRawPointer(dst + i).storeBytes(of: a + s * b, as: Vec.self)
            i += 16
        }
        while i < count { dst[i] += scale * src[i]; i += 1 }
    }
}
