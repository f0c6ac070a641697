/// Softmax and log-softmax along one axis.
///
/// The last axis (the contiguous one: channels, classes, attention keys)
/// runs a fused, max-shifted row kernel; any other axis is permuted to the
/// end and back (views, one copy). Pullbacks are differentiable functions of
/// the op's output (softmax's is one fused kernel with its own pullback):
///   softmax:     dx = y ⊙ (g − Σ g⊙y)
///   log-softmax: dx = g − eʸ ⊙ Σ g
extension Tensor {
    /// e^x / Σ e^x along `axis` (default: the last).
    public func softmax(axis: Int = -1) -> Tensor { softmaxLike(axis: axis, log: false, scale: 1) }

    /// softmax(scale·x) along the last axis in one pass (attention's q·kᵀ/√d):
    /// the same values as `(x * scale).softmax()`, without the scaled copy. `scale` > 0.
    public func softmax(scale: Float) -> Tensor {
        guard scale > 0 else { fail("softmax", "scale must be positive, got \(scale)") }
        return softmaxLike(axis: -1, log: false, scale: scale)
    }

    /// softmax(scale·x + addend) along the last axis in one kernel, without the summed scores: attention's
    /// scores plus a relative-position bias or a window mask. `addend` repeats over x's leading dimensions:
    /// its shape, without leading 1s, is x's trailing dimensions (e.g. [heads, Nq, Nk] against
    /// [G, heads, Nq, Nk]). Any other broadcast adds first and takes the plain softmax. `scale` > 0.
    public func softmax(scale: Float, adding addend: Tensor) -> Tensor {
        guard scale > 0 else { fail("softmax", "scale must be positive, got \(scale)") }
        guard rank > 0 else { fail("softmax", "needs a tensor with at least one dimension, got a scalar (shape \(shape))") }
        var trailing = addend.shape
        while trailing.count > 1 && trailing.first == 1 { trailing.removeFirst() }
        guard !trailing.isEmpty, trailing.count <= rank, Array(shape.suffix(trailing.count)) == trailing else {
            return ((scale == 1 ? self : self * scale) + addend).softmax()
        }
        let x = contiguous(recordingGrad: false), a = addend.contiguous(recordingGrad: false)
        let y = Tensor(uninitializedShape: shape)
        let n = shape[rank - 1]
        if y.count > 0 {
            Kernels.softmaxRowsAdding(x.base, a.base, period: a.count / n, y.base, rows: y.count / n, length: n, scale: scale)
        }
        let inputNeedsGrad = requiresGrad, addendNeedsGrad = addend.requiresGrad, addendShape = addend.shape
        return Tensor.recordUsingOutput("softmax_add", y, [self, addend]) { g, y in
            // d/d(scale·x + a) is softmax's pullback; x's gradient is that times scale, a's is it summed
            // over the dimensions a repeats along.
            guard addendNeedsGrad else { return [Tensor.softmaxPullback(g, y, scale: scale), nil] }
            let dz = Tensor.softmaxPullback(g, y, scale: 1)
            return [inputNeedsGrad ? (scale == 1 ? dz : dz * scale) : nil, dz.summed(toShape: addendShape)]
        }
    }

    /// x − log Σ e^x along `axis` (default: the last), computed without overflow.
    public func logSoftmax(axis: Int = -1) -> Tensor { softmaxLike(axis: axis, log: true, scale: 1) }

    private func softmaxLike(axis: Int, log: Bool, scale: Float) -> Tensor {
        let op = log ? "logSoftmax" : "softmax"
        guard rank > 0 else { fail(op, "needs a tensor with at least one dimension, got a scalar (shape \(shape))") }
        let ax = normalizeAxis(axis, rank: rank, op: op, shape: shape)
        if ax != rank - 1 {
            var order = (0..<rank).filter { $0 != ax }
            order.append(ax)
            var inverse = [Int](repeating: 0, count: rank)
            for (i, d) in order.enumerated() { inverse[d] = i }
            return permuted(order).softmaxLike(axis: -1, log: log, scale: scale).permuted(inverse)
        }
        let x = contiguous(recordingGrad: false)
        let y = Tensor(uninitializedShape: shape)
        let n = shape[rank - 1]
        if y.count > 0 {
            Kernels.softmaxRows(x.base, y.base, rows: y.count / n, length: n, log: log, scale: scale)
        }
        if log {
            require(scale == 1, "logSoftmax", "log-softmax has no scale (got \(scale))")
            return Tensor.recordUsingOutput("logSoftmax", y, [self]) { g, y in
                [g - y.exp() * g.sum(axis: -1, keepDims: true)]
            }
        }
        return Tensor.recordUsingOutput("softmax", y, [self]) { g, y in [Tensor.softmaxPullback(g, y, scale: scale)] }
    }

    /// s·y ⊙ (g − Σ g⊙y) along the last axis (s = the softmax's scale) as one kernel,
    /// itself differentiable: d/dg of it is the same map of the incoming gradient gg,
    /// and d/dy = s·(gg ⊙ (g − Σ g⊙y) − g ⊙ Σ gg⊙y).
    static func softmaxPullback(_ g: Tensor, _ y: Tensor, scale: Float) -> Tensor {
        let gs = g.contiguous(recordingGrad: false), ys = y.contiguous(recordingGrad: false)
        let dx = Tensor(uninitializedShape: y.shape)
        let n = y.shape[y.rank - 1]
        if dx.count > 0 { Kernels.softmaxBackwardRows(gs.base, ys.base, dx.base, rows: dx.count / n, length: n, scale: scale) }
        return record("softmax_backward", dx, [g, y]) { gg in
            [g.requiresGrad ? softmaxPullback(gg, y, scale: scale) : nil,
             y.requiresGrad ? (gg * (g - (g * y).sum(axis: -1, keepDims: true)) - g * (gg * y).sum(axis: -1, keepDims: true)) * scale : nil]
        }
    }
}
