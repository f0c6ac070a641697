/// Pooling on channels-last maps [B, H, W, C] with PyTorch's semantics.
///
/// Each pooling and its backward are recorded ops that are each other's
/// pullbacks (both are linear in the gradient), so pooled networks can be
/// differentiated twice: max pooling's backward scatters to the saved argmax
/// positions and its pullback gathers from them; average pooling's backward
/// is the adjoint of the average, whose pullback is the average again.

/// Max pooling (torch.nn.functional.max_pool2d): padding acts as -∞; with
/// `ceilMode` the last window may overhang the input but must start inside
/// it or the left padding. The gradient goes to the first maximum of each
/// window (row-major order), as PyTorch.
public func maxPool2d(_ x: Tensor, kernel: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0),
                      ceilMode: Bool = false) -> Tensor {
    let op = "max_pool2d"
    let win = PoolWindows.sliding(op: op, input: x.shape, kernel: kernel, stride: stride ?? kernel, padding: padding,
                                  ceilMode: ceilMode, countIncludePad: true)
    guard win.inH * win.inW <= Int(Int32.max) else { fail(op, "input \(x.shape) has too many positions per channel") }
    let b = x.shape[0], c = x.shape[3]
    let src = x.detached().contiguous(recordingGrad: false)
    let out = Tensor(uninitializedShape: [b, win.outH, win.outW, c])
    let indices = PoolIndices(count: out.count)
    withExtendedLifetime(src) { PoolKernels.max(src.base, out.base, indices: indices.pointer, batch: b, channels: c, win) }
    let inputShape = x.shape
    return Tensor.record(op, out, [x]) { g in [maxPoolScatter(g, indices, win, inputShape: inputShape)] }
}

/// The backward of max pooling: g added into zeros at the argmax positions.
private func maxPoolScatter(_ g: Tensor, _ indices: PoolIndices, _ win: PoolWindows, inputShape: [Int]) -> Tensor {
    let gc = g.detached().contiguous(recordingGrad: false)
    let dx = Tensor(uninitializedShape: inputShape)
    withExtendedLifetime(gc) {
        PoolKernels.maxScatter(gc.base, indices: indices.pointer, dx.base, batch: inputShape[0], channels: inputShape[3], win)
    }
    let outputShape = g.shape
    return Tensor.record("max_pool2d_backward", dx, [g]) { gg in [maxPoolGather(gg, indices, win, outputShape: outputShape)] }
}

/// The pullback of `maxPoolScatter`: values read at the argmax positions.
private func maxPoolGather(_ gg: Tensor, _ indices: PoolIndices, _ win: PoolWindows, outputShape: [Int]) -> Tensor {
    let src = gg.detached().contiguous(recordingGrad: false)
    let out = Tensor(uninitializedShape: outputShape)
    withExtendedLifetime(src) {
        PoolKernels.maxGather(src.base, indices: indices.pointer, out.base, batch: outputShape[0], channels: outputShape[3], win)
    }
    let inputShape = gg.shape
    return Tensor.record("max_pool2d_gather", out, [gg]) { h in [maxPoolScatter(h, indices, win, inputShape: inputShape)] }
}

/// Average pooling (torch.nn.functional.avg_pool2d), including its divisors:
/// with `countIncludePad` a window is divided by its size clipped to the
/// padded input (so a ceil-mode window overhanging the padding counts less),
/// otherwise by the number of input elements it covers.
public func avgPool2d(_ x: Tensor, kernel: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0),
                      ceilMode: Bool = false, countIncludePad: Bool = true) -> Tensor {
    let win = PoolWindows.sliding(op: "avg_pool2d", input: x.shape, kernel: kernel, stride: stride ?? kernel,
                                  padding: padding, ceilMode: ceilMode, countIncludePad: countIncludePad)
    return windowAverage(x, win, op: "avg_pool2d")
}

/// Adaptive average pooling (torch.nn.functional.adaptive_avg_pool2d): output
/// bin i averages rows ⌊i·H/o⌋ ..< ⌈(i+1)·H/o⌉ (bins may overlap).
public func adaptiveAvgPool2d(_ x: Tensor, outputSize: (Int, Int)) -> Tensor {
    let win = PoolWindows.adaptive(op: "adaptive_avg_pool2d", input: x.shape, outputSize: outputSize)
    return windowAverage(x, win, op: "adaptive_avg_pool2d")
}

private func windowAverage(_ x: Tensor, _ win: PoolWindows, op: String) -> Tensor {
    let b = x.shape[0], c = x.shape[3]
    let src = x.detached().contiguous(recordingGrad: false)
    let out = Tensor(uninitializedShape: [b, win.outH, win.outW, c])
    withExtendedLifetime(src) { PoolKernels.average(src.base, out.base, batch: b, channels: c, win) }
    return Tensor.record(op, out, [x]) { g in [windowAverageBackward(g, win, op: op)] }
}

private func windowAverageBackward(_ g: Tensor, _ win: PoolWindows, op: String) -> Tensor {
    let b = g.shape[0], c = g.shape[3]
    let src = g.detached().contiguous(recordingGrad: false)
    let dx = Tensor(uninitializedShape: [b, win.inH, win.inW, c])
    withExtendedLifetime(src) { PoolKernels.averageBackward(src.base, dx.base, batch: b, channels: c, win) }
    return Tensor.record(op + "_backward", dx, [g]) { gg in [windowAverage(gg, win, op: op)] }
}
