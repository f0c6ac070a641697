/// Joining and splitting tensors, padding, rolling and flipping.
///
/// `split` returns views; `concat`, `stack`, `padded`, `rolled` and `flipped`
/// write a fresh contiguous result. Every pullback is itself one of these ops
/// (or a slice), so gradients stay differentiable.

/// Tensors joined along an existing `axis` (as torch.cat). All must have the
/// same rank and the same sizes except along `axis`.
public func concat(_ tensors: [Tensor], axis: Int) -> Tensor {
    guard let first = tensors.first else { fail("concat", "needs at least one tensor") }
    guard first.rank > 0 else { fail("concat", "cannot concatenate rank-0 tensors (shape \(first.shape))") }
    let ax = normalizeAxis(axis, rank: first.rank, op: "concat", shape: first.shape)
    for (k, t) in tensors.enumerated() {
        var ok = t.rank == first.rank
        if ok { for d in 0..<t.rank where d != ax && t.shape[d] != first.shape[d] { ok = false } }
        if !ok {
            fail("concat", "tensor \(k) has shape \(t.shape), which does not match shape \(first.shape) of tensor 0 "
                 + "outside axis \(axis) (shapes \(tensors.map { $0.shape }))")
        }
    }
    if tensors.count == 1 { return first }
    var shape = first.shape
    shape[ax] = tensors.reduce(0) { $0 + $1.shape[ax] }
    let out = Tensor(uninitializedShape: shape)
    var starts: [Int] = []
    var start = 0
    for t in tensors {
        starts.append(start)
        if t.count > 0 {
            let window = Tensor(storage: out.storage, shape: t.shape, strides: out.strides, offset: start * out.strides[ax])
            Kernels.copy(t, into: window)
        }
        start += t.shape[ax]
    }
    let sizes = tensors.map { $0.shape[ax] }
    return Tensor.record("concat", out, tensors) { g in
        zip(starts, sizes).enumerated().map { k, piece in
            tensors[k].requiresGrad ? g.sliced(axis: ax, start: piece.0, end: piece.0 + piece.1) : nil
        }
    }
}

/// Tensors of one shape joined along a new dimension at `axis` (as torch.stack).
public func stack(_ tensors: [Tensor], axis: Int = 0) -> Tensor {
    guard let first = tensors.first else { fail("stack", "needs at least one tensor") }
    let ax = axis < 0 ? axis + first.rank + 1 : axis
    guard ax >= 0 && ax <= first.rank else {
        fail("stack", "axis \(axis) is out of range for stacking tensors of shape \(first.shape)")
    }
    for (k, t) in tensors.enumerated() where t.shape != first.shape {
        fail("stack", "tensor \(k) has shape \(t.shape), tensor 0 has shape \(first.shape); stack needs equal shapes")
    }
    return concat(tensors.map { $0.unsqueezed(axis: ax) }, axis: ax)
}

extension Tensor {
    /// Consecutive pieces of the given sizes along `axis` (views, as torch.split
    /// with a list); the sizes must add up to the size of `axis`.
    ///
    /// The pieces share one gradient node: backward writes the source's gradient once, laid out
    /// like the source, from all the pieces' gradients (attention's q, k and v from one qkv
    /// product), instead of a zero-filled source-sized gradient per piece, summed.
    public func split(sizes: [Int], axis: Int) -> [Tensor] {
        let ax = normalizeAxis(axis, rank: rank, op: "split", shape: shape)
        guard sizes.allSatisfy({ $0 >= 0 }), sizes.reduce(0, +) == shape[ax] else {
            fail("split", "sizes \(sizes) do not add up to \(shape[ax]), the size of axis \(axis) of shape \(shape)")
        }
        var starts: [Int] = []
        var start = 0
        for n in sizes { starts.append(start); start += n }
        var pieces = zip(starts, sizes).map { start, n in
            var pieceShape = shape
            pieceShape[ax] = n
            return Tensor(storage: storage, shape: pieceShape, strides: strides, offset: offset + start * strides[ax])
        }
        guard GradMode.enabled, let source = node else { return pieces }
        let sourceShape = shape, sourceStrides = strides
        let whole = GradNode(split: source, pieces: pieces.count) { grads in
            Tensor.assembleSplitGradient(grads, shape: sourceShape, layoutLike: sourceStrides, axis: ax, starts: starts)
        }
        for i in pieces.indices { pieces[i].node = GradNode(pieceOf: whole, index: i) }
        return pieces
    }

    /// The pieces at each index of `axis`, with that axis removed (views, as torch.unbind);
    /// one gradient node for all of them, as `split`.
    public func unbound(axis: Int) -> [Tensor] {
        let ax = normalizeAxis(axis, rank: rank, op: "unbind", shape: shape)
        var pieceShape = shape
        pieceShape.remove(at: ax)
        return split(sizes: [Int](repeating: 1, count: shape[ax]), axis: ax).map { $0.reshaped(pieceShape) }
    }

    /// The gradient of a split's source: the pieces' gradients (nil: zeros) placed at `starts` along
    /// `axis`, in memory laid out like the source's `strides` when those are a dense layout (so a
    /// permuted qkv view gets a gradient that un-permutes to a contiguous one without a copy).
    fileprivate static func assembleSplitGradient(_ grads: [Tensor?], shape: [Int], layoutLike strides: [Int],
                                                  axis: Int, starts: [Int]) -> Tensor {
        let count = shape.reduce(1, *)
        let storage = grads.contains(where: { $0 == nil }) ? TensorStorage(count: count, repeating: 0) : TensorStorage(count: count)
        let out = Tensor(storage: storage, shape: shape, strides: denseStrides(shape: shape, orderedLike: strides))
        var present: [Tensor] = [], presentStarts: [Int] = []
        for (g, start) in zip(grads, starts) {
            guard let g else { continue }
            if g.count > 0 {
                let window = Tensor(storage: storage, shape: g.shape, strides: out.strides, offset: start * out.strides[axis])
                Kernels.copy(g, into: window)
            }
            present.append(g); presentStarts.append(start)
        }
        return record("split_backward", out, present) { gg in
            zip(present, presentStarts).map { g, start in gg.sliced(axis: axis, start: start, end: start + g.shape[axis]) }
        }
    }

    /// `strides` when they lay out `shape` densely (a permutation of contiguous strides, size-1
    /// dimensions aside), else the contiguous strides.
    fileprivate static func denseStrides(shape: [Int], orderedLike strides: [Int]) -> [Int] {
        let dims = shape.indices.filter { shape[$0] != 1 }.sorted { strides[$0] < strides[$1] }
        var expected = 1
        for d in dims {
            guard strides[d] == expected else { return contiguousStrides(shape) }
            expected *= shape[d]
        }
        return shape.indices.map { shape[$0] == 1 ? 1 : strides[$0] }
    }

    /// `count` equal pieces along `axis` (views); the size of `axis` must be divisible by `count`.
    public func split(count: Int, axis: Int) -> [Tensor] {
        let ax = normalizeAxis(axis, rank: rank, op: "split", shape: shape)
        guard count > 0, shape[ax] % count == 0 else {
            fail("split", "axis \(axis) of shape \(shape) (size \(shape[ax])) cannot be split into \(count) equal pieces")
        }
        return split(sizes: [Int](repeating: shape[ax] / count, count: count), axis: ax)
    }

    // MARK: Padding

    /// Constant padding: `widths[d]` elements of `value` before and after
    /// dimension d (one pair per dimension). Negative widths crop, as in F.pad.
    public func padded(_ widths: [(before: Int, after: Int)], value: Float = 0) -> Tensor {
        guard widths.count == rank else {
            fail("pad", "\(widths.count) (before, after) pairs for shape \(shape) of rank \(rank); give one pair per dimension")
        }
        var outShape = shape
        for d in 0..<rank {
            outShape[d] = shape[d] + widths[d].before + widths[d].after
            guard outShape[d] >= 0 else {
                fail("pad", "widths \(widths[d]) crop dimension \(d) of shape \(shape) below zero")
            }
        }
        if widths.allSatisfy({ $0.before == 0 && $0.after == 0 }) { return self }
        let out = Tensor.full(outShape, value)
        // The region present in both: source start, destination start, length per dimension.
        var srcOffset = offset, dstOffset = 0, overlap = shape
        for d in 0..<rank {
            let s = Swift.max(0, -widths[d].before), t = Swift.max(0, widths[d].before)
            overlap[d] = Swift.max(0, Swift.min(shape[d] - s, outShape[d] - t))
            srcOffset += s * strides[d]
            dstOffset += t * out.strides[d]
        }
        if !overlap.contains(0) {
            let src = Tensor(storage: storage, shape: overlap, strides: strides, offset: srcOffset)
            let dst = Tensor(storage: out.storage, shape: overlap, strides: out.strides, offset: dstOffset)
            Kernels.copy(src, into: dst)
        }
        let inverse = widths.map { (before: -$0.before, after: -$0.after) }
        return Tensor.record("pad", out, [self]) { g in [g.padded(inverse, value: 0)] }
    }

    /// Constant padding of one dimension (negative widths crop).
    public func padded(axis: Int, before: Int, after: Int, value: Float = 0) -> Tensor {
        let ax = normalizeAxis(axis, rank: rank, op: "pad", shape: shape)
        var widths = [(before: Int, after: Int)](repeating: (0, 0), count: rank)
        widths[ax] = (before, after)
        return padded(widths, value: value)
    }

    // MARK: Roll and flip

    /// Elements shifted cyclically by `shifts[i]` along `axes[i]` (as torch.roll):
    /// element j moves to (j + shift) mod n. An axis may appear more than once.
    public func rolled(shifts: [Int], axes: [Int]) -> Tensor {
        guard shifts.count == axes.count else {
            fail("roll", "\(shifts.count) shifts \(shifts) for \(axes.count) axes \(axes) (shape \(shape))")
        }
        var total = [Int](repeating: 0, count: rank)
        for (s, a) in zip(shifts, axes) {
            let ax = normalizeAxis(a, rank: rank, op: "roll", shape: shape)
            total[ax] += s
        }
        for d in 0..<rank { total[d] = shape[d] == 0 ? 0 : ((total[d] % shape[d]) + shape[d]) % shape[d] }
        let moved = (0..<rank).filter { total[$0] != 0 }
        if moved.isEmpty { return self }
        let out = Tensor(uninitializedShape: shape)
        // Each moved axis splits into two blocks; copy every combination of blocks.
        for mask in 0..<(1 << moved.count) {
            var blockShape = shape, src = offset, dst = 0
            for (k, d) in moved.enumerated() {
                let n = shape[d], s = total[d]
                if mask & (1 << k) == 0 {  // source [0, n-s) -> destination [s, n)
                    blockShape[d] = n - s
                    dst += s * out.strides[d]
                } else {                   // source [n-s, n) -> destination [0, s)
                    blockShape[d] = s
                    src += (n - s) * strides[d]
                }
            }
            Kernels.copy(Tensor(storage: storage, shape: blockShape, strides: strides, offset: src),
                         into: Tensor(storage: out.storage, shape: blockShape, strides: out.strides, offset: dst))
        }
        let back = moved.map { -total[$0] }
        return Tensor.record("roll", out, [self]) { g in [g.rolled(shifts: back, axes: moved)] }
    }

    /// Elements in reverse order along each of `axes` (as torch.flip; a copy).
    public func flipped(axes: [Int]) -> Tensor {
        let flip = Set(axes.map { normalizeAxis($0, rank: rank, op: "flip", shape: shape) })
        guard flip.count == axes.count else { fail("flip", "axes \(axes) repeat a dimension of shape \(shape)") }
        if flip.isEmpty || count == 0 { return self }
        var reversedStrides = strides, start = offset
        for d in flip {
            start += (shape[d] - 1) * strides[d]
            reversedStrides[d] = -strides[d]
        }
        let out = Tensor(uninitializedShape: shape)
        Kernels.copy(Tensor(storage: storage, shape: shape, strides: reversedStrides, offset: start), into: out)
        let ax = Array(flip).sorted()
        return Tensor.record("flip", out, [self]) { g in [g.flipped(axes: ax)] }
    }
}
