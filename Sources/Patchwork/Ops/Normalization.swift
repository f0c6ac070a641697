/// Layer, batch and group normalisation over channels-last tensors.
///
/// All three normalise x̂ = (x − μ)·rstd with rstd = 1/√(σ² + eps) (σ² the
/// biased variance) and apply y = x̂·w + b per channel (the last axis). They
/// differ only in which elements share μ and σ²:
///   layer norm: each position's channels (timm's LayerNorm, and LayerNorm2d
///               in channels-last);
///   batch norm: each channel over every other axis (B, H, W or B, N);
///   group norm: each sample's groups of consecutive channels over H, W.
///
/// Forward passes are fused kernels (`Kernels/Normalization.swift`). The
/// pullback is written in Tensor ops:
///   dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ⊙x̂)),  ĝ = g⊙w,
///   dw = Σ g⊙x̂,  db = Σ g.
/// For a plain backward pass it reuses the statistics saved by the forward
/// kernel (no graph is being recorded, so they are exact constants); when
/// the backward pass is itself recorded (`createGraph: true`) and x is being
/// differentiated, it recomputes μ and rstd as ops of x, so second
/// derivatives see their dependence on x.

/// Layer norm over the last dimension of `x`, with optional per-channel
/// `weight` and `bias` of shape [C] (torch.nn.functional.layer_norm).
public func layerNorm(_ x: Tensor, weight: Tensor? = nil, bias: Tensor? = nil, eps: Float = 1e-5) -> Tensor {
    let op = "layerNorm"
    guard x.rank >= 1, x.shape[x.rank - 1] > 0 else {
        fail(op, "input of shape \(x.shape) has no channels (last dimension) to normalise")
    }
    let c = x.shape[x.rank - 1]
    checkChannelParameter(weight, "weight", channels: c, op: op, input: x.shape)
    checkChannelParameter(bias, "bias", channels: c, op: op, input: x.shape)
    let src = x.contiguous(recordingGrad: false)
    let w = (weight ?? Tensor.ones([c])).contiguous(recordingGrad: false)
    let b = (bias ?? Tensor.zeros([c])).contiguous(recordingGrad: false)
    let y = Tensor(uninitializedShape: x.shape)
    let statShape = Array(x.shape.dropLast()) + [1]
    let mean = Tensor(uninitializedShape: statShape), rstd = Tensor(uninitializedShape: statShape)
    Kernels.layerNormRows(src.base, y.base, rows: x.count / c, length: c, weight: w.base, bias: b.base, eps: eps,
                          mean: mean.base, rstd: rstd.base)
    return recordNormalization(op, y, x: x, weight: weight, bias: bias, view: x.shape, axes: [x.rank - 1],
                               eps: eps, savedMean: mean, savedRstd: rstd)
}

/// Batch norm in evaluation form: y = (x − mean)/√(variance + eps)·w + b per
/// channel (the last axis of [B, H, W, C], [B, N, C] or [B, C]), with given
/// running statistics `mean` and `variance` of shape [C]. Differentiable in
/// every tensor argument.
///
/// With `residual` (x's shape) the result is y + residual, and with `relu` max(0, ·) of that,
/// computed in the same pass: a ResNet block's norm, shortcut add and ReLU read and write the
/// activations once instead of three times.
public func batchNorm(_ x: Tensor, mean: Tensor, variance: Tensor, weight: Tensor? = nil, bias: Tensor? = nil,
                      eps: Float = 1e-5, adding residual: Tensor? = nil, relu: Bool = false) -> Tensor {
    let op = "batchNorm"
    guard x.rank >= 2, x.shape[x.rank - 1] > 0 else {
        fail(op, "input of shape \(x.shape) must be [B, ..., C] with at least one channel")
    }
    let c = x.shape[x.rank - 1]
    checkChannelParameter(mean, "mean", channels: c, op: op, input: x.shape)
    checkChannelParameter(variance, "variance", channels: c, op: op, input: x.shape)
    checkChannelParameter(weight, "weight", channels: c, op: op, input: x.shape)
    checkChannelParameter(bias, "bias", channels: c, op: op, input: x.shape)
    if let residual, residual.shape != x.shape {
        fail(op, "residual of shape \(residual.shape) does not match the input's \(x.shape)")
    }
    let m = mean.scalars, v = variance.scalars
    let w = weight?.scalars ?? [Float](repeating: 1, count: c)
    let b = bias?.scalars ?? [Float](repeating: 0, count: c)
    let scale = (0..<c).map { w[$0] / (v[$0] + eps).squareRoot() }
    let src = x.contiguous(recordingGrad: false), added = residual?.contiguous(recordingGrad: false)
    let y = Tensor(uninitializedShape: x.shape)
    withExtendedLifetime(added) {
        Kernels.channelAffine(src.base, y.base, batches: 1, rows: x.count / c, channels: c, mean: m, scale: scale, bias: b,
                              residual: added.map { UnsafePointer($0.base) }, relu: relu)
    }
    let inputs = [x, mean, variance] + [weight, bias, residual].compactMap { $0 }
    return Tensor.recordUsingOutput(op, y, inputs) { gy, y in
        // ReLU's mask from its output: y > 0 exactly where its input was.
        let g = relu ? Tensor.activationPullback("relu_backward", gy, y, ReluPullback.self) { Tensor.zeros($0.shape) } : gy
        let rstd = (variance + eps).rsqrt()
        let centered = x - mean
        let scale = weight.map { $0 * rstd } ?? rstd
        let gx = g * scale
        var grads: [Tensor?] = [
            x.requiresGrad ? gx : nil,
            mean.requiresGrad ? (-gx).summed(toShape: [c]) : nil,
            variance.requiresGrad ? (g * centered).summed(toShape: [c]) * scale * rstd.square() * -0.5 : nil,
        ]
        if let weight { grads.append(weight.requiresGrad ? (g * centered * rstd).summed(toShape: [c]) : nil) }
        if let bias { grads.append(bias.requiresGrad ? g.summed(toShape: [c]) : nil) }
        if let residual { grads.append(residual.requiresGrad ? g : nil) }
        return grads
    }
}

/// Batch norm in training form: normalises each channel (the last axis of
/// [B, H, W, C], [B, N, C] or [B, C]) with the statistics of this batch, as
/// torch.nn.BatchNorm in training mode.
///
/// Returns the output, the batch mean and the *unbiased* batch variance
/// (what PyTorch folds into running_var; the output itself uses the biased
/// one). Gradients flow through the batch statistics exactly; the returned
/// mean and variance are differentiable too (usually they only update
/// running statistics, under `withoutGrad`).
///
/// While `BatchNormSync.sum` is set (a data-parallel run with `--sync-bn`), the statistics are
/// those of all processes' batches together (`syncBatchNormTraining`).
public func batchNormTraining(_ x: Tensor, weight: Tensor? = nil, bias: Tensor? = nil, eps: Float = 1e-5)
    -> (output: Tensor, mean: Tensor, unbiasedVariance: Tensor) {
    if let sum = BatchNormSync.sum { return syncBatchNormTraining(x, weight: weight, bias: bias, eps: eps, sum: sum) }
    let op = "batchNormTraining"
    guard x.rank >= 2, x.shape[x.rank - 1] > 0 else {
        fail(op, "input of shape \(x.shape) must be [B, ..., C] with at least one channel")
    }
    let c = x.shape[x.rank - 1]
    let rows = x.count / c
    guard rows > 1 else {
        fail(op, "expected more than 1 value per channel when training, got input of shape \(x.shape)")
    }
    checkChannelParameter(weight, "weight", channels: c, op: op, input: x.shape)
    checkChannelParameter(bias, "bias", channels: c, op: op, input: x.shape)
    let src = x.contiguous(recordingGrad: false)
    let sums = Kernels.channelSums(src.base, batches: 1, rows: rows, channels: c, center: nil)
    let mean = sums.map { Float($0 / Double(rows)) }
    let squares = Kernels.channelSums(src.base, batches: 1, rows: rows, channels: c, center: mean)
    let w = weight?.scalars ?? [Float](repeating: 1, count: c)
    let b = bias?.scalars ?? [Float](repeating: 0, count: c)
    let rstd = squares.map { Float(1 / ($0 / Double(rows) + Double(eps)).squareRoot()) }
    let scale = (0..<c).map { rstd[$0] * w[$0] }
    let y = Tensor(uninitializedShape: x.shape)
    Kernels.channelAffine(src.base, y.base, batches: 1, rows: rows, channels: c, mean: mean, scale: scale, bias: b)

    let axes = Array(0..<(x.rank - 1))
    let statShape = [Int](repeating: 1, count: x.rank - 1) + [c]
    let output = recordNormalization(op, y, x: x, weight: weight, bias: bias, view: x.shape, axes: axes, eps: eps,
                                     savedMean: Tensor(mean, shape: statShape), savedRstd: Tensor(rstd, shape: statShape))
    let meanOut = Tensor.record("batchNormTraining.mean", Tensor(mean, shape: [c]), [x]) { g in
        [(g * (1 / Float(rows))).expanded(to: x.shape)]
    }
    let unbiased = squares.map { Float($0 / Double(rows - 1)) }
    let varianceOut = Tensor.record("batchNormTraining.variance", Tensor(unbiased, shape: [c]), [x]) { g in
        [g * (x - x.mean(alongAxes: axes, keepDims: true)) * (2 / Float(rows - 1))]
    }
    return (output, meanOut, varianceOut)
}

/// Synchronised batch norm for data-parallel training (what a trainer sets while it runs).
public enum BatchNormSync {
    /// Replaces its argument by the element-wise sum over the processes (an allreduce, called at
    /// the same points on every process); nil: each process's batch norm uses its own batch.
    nonisolated(unsafe) public static var sum: (([Double]) -> [Double])?
}

/// Batch norm in training form over the batches of all processes of a data-parallel run
/// (torch.nn.SyncBatchNorm's math, our code): `sum` adds a vector over the processes.
///
/// Forward: the channel sums and the row count, then the centred squares about the global mean,
/// each summed over the processes (two passes, as `batchNormTraining`). Backward, with M the
/// global count and x̂ = (x − mean)·rstd: the sums over all processes of g and of g·x̂ give
/// dx = w·rstd·(g − Σg/M − x̂·Σ(g·x̂)/M); the weight and bias gradients are this process's own
/// (Σg·x̂, Σg), which the data-parallel gradient averaging combines. With a `sum` that returns
/// its input this is `batchNormTraining` (up to the order of float sums). Not twice differentiable.
public func syncBatchNormTraining(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float, sum: @escaping ([Double]) -> [Double])
    -> (output: Tensor, mean: Tensor, unbiasedVariance: Tensor) {
    let op = "syncBatchNormTraining"
    guard x.rank >= 2, x.shape[x.rank - 1] > 0 else {
        fail(op, "input of shape \(x.shape) must be [B, ..., C] with at least one channel")
    }
    let c = x.shape[x.rank - 1]
    let rows = x.count / c
    checkChannelParameter(weight, "weight", channels: c, op: op, input: x.shape)
    checkChannelParameter(bias, "bias", channels: c, op: op, input: x.shape)
    let src = x.contiguous(recordingGrad: false)
    let totals = sum(Kernels.channelSums(src.base, batches: 1, rows: rows, channels: c, center: nil) + [Double(rows)])
    guard totals.count == c + 1, totals[c] > 1 else {
        fail(op, "expected more than 1 value per channel over all processes when training, got \(totals.last ?? 0) for input of shape \(x.shape)")
    }
    let count = totals[c]
    let mean = (0..<c).map { Float(totals[$0] / count) }
    let squares = sum(Kernels.channelSums(src.base, batches: 1, rows: rows, channels: c, center: mean))
    let rstd = squares.map { Float(1 / ($0 / count + Double(eps)).squareRoot()) }
    let w = weight?.scalars ?? [Float](repeating: 1, count: c)
    let b = bias?.scalars ?? [Float](repeating: 0, count: c)
    let scale = (0..<c).map { rstd[$0] * w[$0] }
    let y = Tensor(uninitializedShape: x.shape)
    Kernels.channelAffine(src.base, y.base, batches: 1, rows: rows, channels: c, mean: mean, scale: scale, bias: b)
    let output = Tensor.record(op, y, [x] + [weight, bias].compactMap { $0 }) { g in
        withoutGrad {
            let xhat = ((x.detached() - Tensor(mean, shape: [c])) * Tensor(rstd, shape: [c])).contiguous(recordingGrad: false)
            let gs = g.contiguous(recordingGrad: false)
            let gxhat = (gs * xhat).contiguous(recordingGrad: false)
            // Σg and Σg·x̂ nearly cancel over a batch: summed in double, as the one-process kernel does.
            let local = Kernels.channelSums(gs.base, batches: 1, rows: rows, channels: c, center: nil)
                + Kernels.channelSums(gxhat.base, batches: 1, rows: rows, channels: c, center: nil)
            let reduced = sum(local)
            let meanG = Tensor((0..<c).map { Float(reduced[$0] / count) }, shape: [c])
            let meanGx = Tensor((0..<c).map { Float(reduced[c + $0] / count) }, shape: [c])
            var grads: [Tensor?] = [Tensor(scale, shape: [c]) * (gs - meanG - xhat * meanGx)]
            if weight != nil { grads.append(Tensor(local[c..<(2 * c)].map { Float($0) }, shape: [c])) }
            if bias != nil { grads.append(Tensor(local[0..<c].map { Float($0) }, shape: [c])) }
            return grads
        }
    }
    let unbiased = squares.map { Float($0 / (count - 1)) }
    return (output, Tensor(mean, shape: [c]), Tensor(unbiased, shape: [c]))
}

/// Group norm (torch.nn.GroupNorm) of channels-last `x` ([B, H, W, C],
/// [B, N, C] or [B, C]): the C channels form `groups` groups of consecutive
/// channels; each sample's group is normalised over its channels and all
/// positions; then per-channel `weight` and `bias` ([C]) apply.
public func groupNorm(_ x: Tensor, groups: Int, weight: Tensor? = nil, bias: Tensor? = nil, eps: Float = 1e-5) -> Tensor {
    let op = "groupNorm"
    guard x.rank >= 2, x.shape[x.rank - 1] > 0 else {
        fail(op, "input of shape \(x.shape) must be [B, ..., C] with at least one channel")
    }
    let c = x.shape[x.rank - 1], batch = x.shape[0]
    guard groups > 0, c % groups == 0 else {
        fail(op, "groups \(groups) must be positive and divide the \(c) channels of input \(x.shape)")
    }
    checkChannelParameter(weight, "weight", channels: c, op: op, input: x.shape)
    checkChannelParameter(bias, "bias", channels: c, op: op, input: x.shape)
    let positions = x.shape[1..<(x.rank - 1)].reduce(1, *)
    let perGroup = c / groups
    let n = Double(positions * perGroup)
    let src = x.contiguous(recordingGrad: false)
    // Per (sample, channel) sums → per (sample, group) mean, broadcast back to channels.
    func groupTotals(_ perChannel: [Double]) -> [Double] {
        (0..<(batch * groups)).map { k in
            let start = k * perGroup  // (sample, group) k covers channels k·perGroup ..< (k+1)·perGroup of row `sample`
            return perChannel[start..<(start + perGroup)].reduce(0, +)
        }
    }
    let groupMean = groupTotals(Kernels.channelSums(src.base, batches: batch, rows: positions, channels: c, center: nil))
        .map { Float($0 / n) }
    let center = (0..<(batch * c)).map { groupMean[$0 / perGroup] }
    let groupSquares = groupTotals(Kernels.channelSums(src.base, batches: batch, rows: positions, channels: c, center: center))
    let groupRstd = groupSquares.map { Float(1 / ($0 / n + Double(eps)).squareRoot()) }
    let w = weight?.scalars ?? [Float](repeating: 1, count: c)
    let b = bias?.scalars ?? [Float](repeating: 0, count: c)
    let scale = (0..<(batch * c)).map { groupRstd[$0 / perGroup] * w[$0 % c] }
    let y = Tensor(uninitializedShape: x.shape)
    Kernels.channelAffine(src.base, y.base, batches: batch, rows: positions, channels: c, mean: center, scale: scale, bias: b)
    return recordNormalization(op, y, x: x, weight: weight, bias: bias, view: [batch, positions, groups, perGroup],
                               axes: [1, 3], eps: eps,
                               savedMean: Tensor(groupMean, shape: [batch, 1, groups, 1]),
                               savedRstd: Tensor(groupRstd, shape: [batch, 1, groups, 1]))
}

/// Stops unless `parameter` is nil or of shape [channels].
private func checkChannelParameter(_ parameter: Tensor?, _ name: String, channels: Int, op: String, input: [Int]) {
    if let parameter, parameter.shape != [channels] {
        fail(op, "\(name) of shape \(parameter.shape) does not match the \(channels) channels of input \(input) (expected [\(channels)])")
    }
}

/// Records y = x̂·w + b, where x̂ normalises x viewed as `view` over `axes`.
private func recordNormalization(_ op: String, _ y: Tensor, x: Tensor, weight: Tensor?, bias: Tensor?, view: [Int],
                                 axes: [Int], eps: Float, savedMean: Tensor, savedRstd: Tensor) -> Tensor {
    let inputs = [x] + [weight, bias].compactMap { $0 }
    return Tensor.record(op, y, inputs) { g in
        // Layer norm and batch norm (statistics over the last axis, or over all but it) have
        // one-sweep kernels; they serve every backward pass that is not itself being recorded.
        let c = x.shape[x.rank - 1]
        let overLast = axes == [x.rank - 1], overAllButLast = axes == Array(0..<(x.rank - 1))
        if !(GradMode.isEnabled && (g.requiresGrad || x.requiresGrad || weight?.requiresGrad == true)),
           view == x.shape, overLast || overAllButLast {
            let xs = x.contiguous(recordingGrad: false), gs = g.contiguous(recordingGrad: false)
            let w = (weight ?? Tensor.ones([c])).contiguous(recordingGrad: false)
            let gx = x.requiresGrad ? Tensor(uninitializedShape: x.shape) : nil
            let dw = weight?.requiresGrad == true ? Tensor(uninitializedShape: [c]) : nil
            let db = bias?.requiresGrad == true ? Tensor(uninitializedShape: [c]) : nil
            let m = savedMean.contiguous(recordingGrad: false), r = savedRstd.contiguous(recordingGrad: false)
            if overLast {
                Kernels.layerNormBackward(x: xs.base, g: gs.base, mean: m.base, rstd: r.base, weight: w.base, rows: x.count / c,
                                          length: c, gx: gx?.base, dw: dw?.base, db: db?.base)
            } else {
                Kernels.batchNormBackward(x: xs.base, g: gs.base, mean: m.base, rstd: r.base, weight: w.base, rows: x.count / c,
                                          channels: c, gx: gx?.base, dw: dw?.base, db: db?.base)
            }
            var grads: [Tensor?] = [gx]
            if weight != nil { grads.append(dw) }
            if bias != nil { grads.append(db) }
            return grads
        }
        let xv = x.reshaped(view)
        let xhat, rstd: Tensor
        if GradMode.isEnabled && x.requiresGrad {
            // The backward pass is being recorded: statistics as ops of x.
            let centered = xv - xv.mean(alongAxes: axes, keepDims: true)
            rstd = (centered.square().mean(alongAxes: axes, keepDims: true) + eps).rsqrt()
            xhat = centered * rstd
        } else {
            rstd = savedRstd
            xhat = (xv - savedMean) * rstd
        }
        var grads: [Tensor?] = []
        if x.requiresGrad {
            let gxhat = (weight.map { g * $0 } ?? g).reshaped(view)
            let gx = rstd * (gxhat - gxhat.mean(alongAxes: axes, keepDims: true)
                             - xhat * (gxhat * xhat).mean(alongAxes: axes, keepDims: true))
            grads.append(gx.reshaped(x.shape))
        } else {
            grads.append(nil)
        }
        if let weight {
            grads.append(weight.requiresGrad ? (g * xhat.reshaped(x.shape)).summed(toShape: weight.shape) : nil)
        }
        if let bias { grads.append(bias.requiresGrad ? g.summed(toShape: bias.shape) : nil) }
        return grads
    }
}
