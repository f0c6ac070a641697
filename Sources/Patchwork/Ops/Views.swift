/// Movement ops. Each returns a view sharing storage where the layout allows
/// it (reshape of compatible strides, permute, slice, expand) and a copy
/// otherwise; pullbacks map the gradient back to the source's shape.
extension Tensor {
    /// A contiguous tensor with the same values (self when already contiguous).
    public func contiguous() -> Tensor { contiguous(recordingGrad: true) }

    func contiguous(recordingGrad: Bool) -> Tensor {
        if isContiguous {
            // Normalise strides so callers can rely on them.
            if strides == Tensor.contiguousStrides(shape) || !recordingGrad { return self }
            var t = Tensor(storage: storage, shape: shape, strides: Tensor.contiguousStrides(shape), offset: offset)
            t.node = node
            return t
        }
        let out = Kernels.copyToContiguous(self)
        return recordingGrad ? Tensor.record("contiguous", out, [self]) { g in [g] } : out
    }

    /// Same values in a new shape; one dimension may be -1 (inferred).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var shape = newShape
        let known = newShape.filter { $0 != -1 }.reduce(1, *)
        if let i = newShape.firstIndex(of: -1) {
            guard newShape.filter({ $0 == -1 }).count == 1, known > 0, count % known == 0 else {
                fail("reshape", "cannot reshape \(self.shape) (\(count) elements) to \(newShape)")
            }
            shape[i] = count / known
        }
        guard shape.reduce(1, *) == count, !shape.contains(where: { $0 < 0 }) else {
            fail("reshape", "cannot reshape \(self.shape) (\(count) elements) to \(newShape)")
        }
        let source = self.shape
        let out: Tensor
        if let strides = viewStrides(for: shape) {
            out = Tensor(storage: storage, shape: shape, strides: strides, offset: offset)
        } else {
            let c = Kernels.copyToContiguous(self)
            out = Tensor(storage: c.storage, shape: shape, strides: Tensor.contiguousStrides(shape))
        }
        return Tensor.record("reshape", out, [self]) { g in [g.reshaped(source)] }
    }

    /// Strides that present this tensor's memory in `newShape` without a copy, if any.
    private func viewStrides(for newShape: [Int]) -> [Int]? {
        if isContiguous { return Tensor.contiguousStrides(newShape) }
        // Split the old shape into contiguous chunks; each new dim must fall inside one chunk.
        var newStrides = [Int](repeating: 0, count: newShape.count)
        var oldDims = zip(shape, strides).filter { $0.0 != 1 }
        var newIndex = newShape.count - 1
        while newIndex >= 0 && newShape[newIndex] == 1 { newStrides[newIndex] = 1; newIndex -= 1 }
        while let (size, st) = oldDims.popLast() {
            // Merge old dims while contiguous with each other.
            var chunkSize = size, chunkStride = st
            while let (prevSize, prevStride) = oldDims.last, prevStride == chunkStride * chunkSize {
                chunkSize *= prevSize; oldDims.removeLast()
            }
            var produced = 1, stride = chunkStride
            while produced < chunkSize {
                guard newIndex >= 0 else { return nil }
                let d = newShape[newIndex]
                newStrides[newIndex] = stride
                if d != 1 { stride *= d; produced *= d }
                newIndex -= 1
            }
            if produced != chunkSize { return nil }
        }
        while newIndex >= 0 { newStrides[newIndex] = 1; newIndex -= 1 }
        return newStrides
    }

    /// Dimensions reordered: result dimension i is source dimension `order[i]`.
    public func permuted(_ order: [Int]) -> Tensor {
        guard order.count == rank, Set(order.map { $0 < 0 ? $0 + rank : $0 }) == Set(0..<rank) else {
            fail("permute", "order \(order) is not a permutation of the \(rank) dimensions of \(shape)")
        }
        let o = order.map { $0 < 0 ? $0 + rank : $0 }
        let out = Tensor(storage: storage, shape: o.map { shape[$0] }, strides: o.map { strides[$0] }, offset: offset)
        var inverse = [Int](repeating: 0, count: rank)
        for (i, d) in o.enumerated() { inverse[d] = i }
        return Tensor.record("permute", out, [self]) { g in [g.permuted(inverse)] }
    }

    /// Two dimensions swapped (a view).
    public func transposed(_ a: Int = -2, _ b: Int = -1) -> Tensor {
        let a = normalizeAxis(a, rank: rank, op: "transpose", shape: shape)
        let b = normalizeAxis(b, rank: rank, op: "transpose", shape: shape)
        var order = Array(0..<rank)
        order.swapAt(a, b)
        return permuted(order)
    }

    /// Elements `start..<end` by `step` along `axis` (a view). Negative start/end count from the end.
    public func sliced(axis: Int, start: Int, end: Int? = nil, step: Int = 1) -> Tensor {
        let ax = normalizeAxis(axis, rank: rank, op: "slice", shape: shape)
        let n = shape[ax]
        var lo = start < 0 ? start + n : start
        var hi = end.map { $0 < 0 ? $0 + n : $0 } ?? n
        lo = Swift.min(Swift.max(lo, 0), n); hi = Swift.min(Swift.max(hi, lo), n)
        guard step >= 1 else { fail("slice", "step \(step) must be positive (axis \(axis) of shape \(shape))") }
        let length = (hi - lo + step - 1) / step
        var newShape = shape, newStrides = strides
        newShape[ax] = length
        newStrides[ax] = strides[ax] * step
        let out = Tensor(storage: storage, shape: newShape, strides: newStrides, offset: offset + lo * strides[ax])
        let source = shape
        return Tensor.record("slice", out, [self]) { g in
            [g.sliceBackward(sourceShape: source, axis: ax, start: lo, step: step)]
        }
    }

    /// The gradient of `sliced`: g placed into zeros of the source shape.
    func sliceBackward(sourceShape: [Int], axis: Int, start: Int, step: Int) -> Tensor {
        let out = Tensor.zeros(sourceShape)
        var strides = out.strides
        strides[axis] *= step
        let window = Tensor(storage: out.storage, shape: shape, strides: strides, offset: start * out.strides[axis])
        Kernels.copy(self, into: window)
        return Tensor.record("slice_backward", out, [self]) { gg in
            [gg.sliced(axis: axis, start: start, end: start + self.shape[axis] * step, step: step)]
        }
    }

    /// The sub-tensor at `index` along `axis`, with that dimension removed.
    public func selecting(axis: Int, index: Int) -> Tensor {
        let ax = normalizeAxis(axis, rank: rank, op: "select", shape: shape)
        let i = index < 0 ? index + shape[ax] : index
        guard i >= 0 && i < shape[ax] else { fail("select", "index \(index) out of range for axis \(axis) of shape \(shape)") }
        var s = shape; s.remove(at: ax)
        return sliced(axis: ax, start: i, end: i + 1).reshaped(s)
    }

    /// A view repeating size-1 dimensions (and new leading ones) to `newShape`.
    public func expanded(to newShape: [Int]) -> Tensor {
        guard newShape.count >= rank else { fail("expand", "cannot expand \(shape) to fewer dimensions \(newShape)") }
        let lead = newShape.count - rank
        for i in 0..<rank where shape[i] != 1 && shape[i] != newShape[lead + i] {
            fail("expand", "cannot expand \(shape) to \(newShape): dimension \(i) has size \(shape[i])")
        }
        if newShape == shape { return self }
        let out = Tensor(storage: storage, shape: newShape, strides: broadcastStrides(self, to: newShape), offset: offset)
        let source = shape
        return Tensor.record("expand", out, [self]) { g in [g.summed(toShape: source)] }
    }

    /// Sums a broadcast gradient back to `target` (the inverse of broadcasting).
    public func summed(toShape target: [Int]) -> Tensor {
        if shape == target { return self }
        let lead = rank - target.count
        guard lead >= 0 else { fail("sum_to_shape", "cannot sum \(shape) to larger rank \(target)") }
        var axes = Array(0..<lead)
        for i in 0..<target.count where target[i] == 1 && shape[lead + i] != 1 { axes.append(lead + i) }
        for i in 0..<target.count where target[i] != 1 && target[i] != shape[lead + i] {
            fail("sum_to_shape", "cannot sum \(shape) to \(target)")
        }
        return sum(alongAxes: axes, keepDims: true).reshaped(target)
    }

    /// Inserts a size-1 dimension at `axis`.
    public func unsqueezed(axis: Int) -> Tensor {
        let ax = axis < 0 ? axis + rank + 1 : axis
        guard ax >= 0 && ax <= rank else { fail("unsqueeze", "axis \(axis) out of range for shape \(shape)") }
        var s = shape; s.insert(1, at: ax)
        return reshaped(s)
    }

    /// Removes size-1 dimensions (all, or the given axes).
    public func squeezed(axes: [Int]? = nil) -> Tensor {
        let drop = Set((axes ?? (0..<rank).filter { shape[$0] == 1 }).map { normalizeAxis($0, rank: rank, op: "squeeze", shape: shape) })
        for a in drop where shape[a] != 1 { fail("squeeze", "axis \(a) of shape \(shape) has size \(shape[a]), not 1") }
        return reshaped(shape.enumerated().filter { !drop.contains($0.offset) }.map { $0.element })
    }

    /// Merges dimensions `start...end` into one.
    public func flattened(from start: Int = 0, to end: Int = -1) -> Tensor {
        if rank == 0 { return reshaped([1]) }
        let s = normalizeAxis(start, rank: rank, op: "flatten", shape: shape)
        let e = normalizeAxis(end, rank: rank, op: "flatten", shape: shape)
        guard s <= e else { fail("flatten", "start \(start) is after end \(end) for shape \(shape)") }
        return reshaped(Array(shape[..<s]) + [shape[s...e].reduce(1, *)] + Array(shape[(e + 1)...]))
    }
}

extension Kernels {
    /// Writes `source` (any layout) into the view `destination` of the same shape.
    static func copy(_ source: Tensor, into destination: Tensor) {
        require(source.shape == destination.shape, "copy",
                "source \(source.shape) and destination \(destination.shape) differ")
        let layout = RowLayout(shape: source.shape, strides: [destination.strides, source.strides])
        let pd = destination.storage.pointer + destination.offset, ps = source.storage.pointer + source.offset
        layout.forEachRow { o, n, inner in
            let d = pd + o[0], s = ps + o[1], sd = inner[0], ss = inner[1]
            if sd == 1 && ss == 1 { d.update(from: s, count: n) } else { for i in 0..<n { d[i * sd] = s[i * ss] } }
        }
    }
}
