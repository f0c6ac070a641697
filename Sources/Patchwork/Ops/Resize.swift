import Foundation

/// Interpolation of `resize`.
public enum ResizeMode: String, Sendable {
    case nearest, bilinear, bicubic
}

/// A feature map `[B, H, W, C]` resized to `size` = (height, width), matching
/// torch.nn.functional.interpolate(mode:, align_corners:, antialias:) on the
/// NCHW equivalent.
///
/// - `nearest`: PyTorch's "nearest" (source index floor(j · in / out));
///   `alignCorners` must be false, as in PyTorch.
/// - `bilinear`, `bicubic` (Keys cubic with A = -0.75, taps clamped at the
///   border), with either `alignCorners` setting.
/// - `antialias` (bilinear and bicubic only): PyTorch's/PIL's antialiased
///   filter, widened by the downsampling factor, taps cut at the border and
///   renormalised; bicubic then uses A = -0.5 as PyTorch does.
///
/// The resize runs as two separable passes (height, width), each a sparse
/// weighted sum along one axis; the backward of a pass is the transposed pass,
/// whose own pullback is the forward pass again.
public func resize(_ x: Tensor, size: (Int, Int), mode: ResizeMode = .bilinear,
                   alignCorners: Bool = false, antialias: Bool = false) -> Tensor {
    guard x.rank == 4 else {
        fail("resize", "input of shape \(x.shape) must be a [B, H, W, C] feature map")
    }
    let (h, w) = (x.shape[1], x.shape[2])
    guard size.0 > 0, size.1 > 0, h > 0, w > 0 else {
        fail("resize", "cannot resize input of shape \(x.shape) to size \(size): sizes must be positive")
    }
    if mode == .nearest && alignCorners {
        fail("resize", "alignCorners is only defined for bilinear and bicubic modes, not nearest (input \(x.shape))")
    }
    if mode == .nearest && antialias {
        fail("resize", "antialias is only defined for bilinear and bicubic modes, not nearest (input \(x.shape))")
    }
    // Equal sizes are the identity in every mode.
    let rows = h == size.0 ? nil : ResamplePlan(resizeTable(inSize: h, outSize: size.0, mode: mode, alignCorners: alignCorners, antialias: antialias))
    let cols = w == size.1 ? nil : ResamplePlan(resizeTable(inSize: w, outSize: size.1, mode: mode, alignCorners: alignCorners, antialias: antialias))
    func alongH(_ t: Tensor) -> Tensor {
        rows.map { t.resampled(axis: 1, plan: $0, transposed: false, op: "resize", backwardOp: "resize_backward") } ?? t
    }
    func alongW(_ t: Tensor) -> Tensor {
        cols.map { t.resampled(axis: 2, plan: $0, transposed: false, op: "resize", backwardOp: "resize_backward") } ?? t
    }
    // The cheaper order of the two passes (work ∝ output elements × taps).
    let kh = rows?.forward.averageTaps ?? 0, kw = cols?.forward.averageTaps ?? 0
    let heightFirst = size.0 * w * kh + size.0 * size.1 * kw
    let widthFirst = h * size.1 * kw + size.0 * size.1 * kh
    return heightFirst <= widthFirst ? alongW(alongH(x)) : alongH(alongW(x))
}

/// PyTorch's per-axis source indices and weights (aten/src/ATen/native/UpSample.h
/// and cpu/UpSampleKernel.cpp), in Float as PyTorch computes them for float input.
func resizeTable(inSize n: Int, outSize m: Int, mode: ResizeMode, alignCorners: Bool, antialias: Bool) -> ResampleTable {
    var taps: [[(Int, Float)]] = []
    taps.reserveCapacity(m)
    let scale: Float = alignCorners ? (m > 1 ? Float(n - 1) / Float(m - 1) : 0) : Float(n) / Float(m)
    func cubic1(_ x: Float, _ a: Float) -> Float { ((a + 2) * x - (a + 3)) * x * x + 1 }
    func cubic2(_ x: Float, _ a: Float) -> Float { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }

    switch (mode, antialias) {
    case (.nearest, _):
        for j in 0..<m {
            taps.append([(Swift.min(Int(floorf(scale * Float(j))), n - 1), 1)])
        }
    case (.bilinear, false), (.bicubic, false):
        let cubic = mode == .bicubic
        for j in 0..<m {
            var src = alignCorners ? scale * Float(j) : scale * (Float(j) + 0.5) - 0.5
            if !cubic && src < 0 { src = 0 }
            let i0 = Swift.min(Int(floorf(src)), n - 1)
            let t = Swift.min(Swift.max(src - Float(i0), 0), 1)
            if cubic {
                let a: Float = -0.75
                let c = [cubic2(t + 1, a), cubic1(t, a), cubic1(1 - t, a), cubic2(2 - t, a)]
                taps.append((0..<4).map { k in (Swift.max(Swift.min(i0 + k - 1, n - 1), 0), c[k]) })
            } else {
                taps.append([(i0, 1 - t), (i0 + (i0 < n - 1 ? 1 : 0), t)])
            }
        }
    case (.bilinear, true), (.bicubic, true):
        let interp: Float = mode == .bilinear ? 2 : 4
        let support: Float = scale >= 1 ? interp * 0.5 * scale : interp * 0.5
        let maxTaps = Int(ceilf(support)) * 2 + 1
        let invScale = Float(scale >= 1 ? 1 / Double(scale) : 1)
        func filter(_ x: Float) -> Float {
            let x = Swift.abs(x)
            if mode == .bilinear { return x < 1 ? 1 - x : 0 }
            return x < 1 ? cubic1(x, -0.5) : (x < 2 ? cubic2(x, -0.5) : 0)
        }
        for j in 0..<m {
            let center = Float(Double(scale) * (Double(j) + 0.5))
            let lo = Swift.max(Int(Double(center - support) + 0.5), 0)
            let count = Swift.min(Swift.max(Swift.min(Int(Double(center + support) + 0.5), n) - lo, 0), maxTaps)
            var ws = (0..<count).map { k in filter(Float((Double(Float(k + lo) - center) + 0.5) * Double(invScale))) }
            let total = ws.reduce(0, +)
            if total != 0 { ws = ws.map { $0 / total } }
            taps.append((0..<count).map { k in (lo + k, ws[k]) })
        }
    }
    return ResampleTable(inSize: n, outSize: m, taps: taps)
}
