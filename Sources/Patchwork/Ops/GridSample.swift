/// Bilinear sampling of a feature map at arbitrary points, as
/// torch.nn.functional.grid_sample(mode="bilinear", padding_mode="zeros").
///
/// - input: `[B, H, W, C]`; grid: `[B, Ho, Wo, 2]` holding (x, y) in [-1, 1]
///   (-1 is the left/top edge: the centre of the first pixel with
///   `alignCorners`, its outer edge without); points outside read zeros.
/// - result: `[B, Ho, Wo, C]`.
///
/// Differentiable in both the input and the grid, to every order: the input
/// gradient is a scatter op (linear in the output gradient, whose pullback is
/// grid_sample again) and the grid gradient a fused op whose pullback uses the
/// derivatives of the bilinear weights (see `GridGeometry`). Like PyTorch, the
/// derivative with respect to the grid is that of the piece of the bilinear
/// surface a point lies on (it jumps where a point crosses a pixel centre).
public func gridSample(_ input: Tensor, grid: Tensor, alignCorners: Bool = false) -> Tensor {
    guard input.rank == 4 else {
        fail("grid_sample", "input of shape \(input.shape) must be a [B, H, W, C] feature map")
    }
    guard grid.rank == 4, grid.shape[0] == input.shape[0], grid.shape[3] == 2 else {
        fail("grid_sample", "grid of shape \(grid.shape) must be [B, Ho, Wo, 2] with B = \(input.shape[0]) "
             + "for input of shape \(input.shape)")
    }
    return GridSampleOps(alignCorners: alignCorners, inputShape: input.shape).sample(input, grid, a: 0, b: 0)
}

/// The three ops of grid_sample's derivative family for one input shape.
/// (a, b): orders of differentiation of the bilinear weights in x and y.
private struct GridSampleOps {
    let alignCorners: Bool
    let inputShape: [Int]  // [B, H, W, C]

    func geometry(points: Int) -> GridGeometry {
        GridGeometry(batch: inputShape[0], height: inputShape[1], width: inputShape[2], channels: inputShape[3],
                     points: points, alignCorners: alignCorners)
    }

    /// Σ_taps w_{a,b} · x[tap]: [B, Ho, Wo, C].
    func sample(_ x: Tensor, _ grid: Tensor, a: Int, b: Int) -> Tensor {
        let (B, Ho, Wo, C) = (inputShape[0], grid.shape[1], grid.shape[2], inputShape[3])
        let out = Tensor(uninitializedShape: [B, Ho, Wo, C])
        if out.count > 0 {
            let xc = x.contiguous(recordingGrad: false), gc = grid.contiguous(recordingGrad: false)
            Kernels.gridGather(xc.base, grid: gc.base, out.base, geometry: geometry(points: Ho * Wo), a: a, b: b)
        }
        return Tensor.record(a + b == 0 ? "grid_sample" : "grid_sample_derivative", out, [x, grid]) { g in
            [x.requiresGrad ? self.scatter(g, grid, a: a, b: b) : nil,
             grid.requiresGrad ? self.gridGradient(x, grid, g, a: a, b: b) : nil]
        }
    }

    /// The input gradient: the transpose of `sample` applied to g [B, Ho, Wo, C]; [B, H, W, C].
    func scatter(_ g: Tensor, _ grid: Tensor, a: Int, b: Int) -> Tensor {
        let out = Tensor.zeros(inputShape)
        if g.count > 0 && out.count > 0 {
            let gc = g.contiguous(recordingGrad: false), grc = grid.contiguous(recordingGrad: false)
            Kernels.gridScatter(gc.base, grid: grc.base, out.base, geometry: geometry(points: grid.shape[1] * grid.shape[2]), a: a, b: b)
        }
        // ⟨scatter(g), gg⟩ = ⟨g, sample(gg)⟩: linear in g, and its grid derivative is gridGradient(gg, grid, g).
        return Tensor.record("grid_sample_input_backward", out, [g, grid]) { gg in
            [g.requiresGrad ? self.sample(gg, grid, a: a, b: b) : nil,
             grid.requiresGrad ? self.gridGradient(gg, grid, g, a: a, b: b) : nil]
        }
    }

    /// The grid gradient of Σ g · sample_{a,b}(x): [B, Ho, Wo, 2].
    func gridGradient(_ x: Tensor, _ grid: Tensor, _ g: Tensor, a: Int, b: Int) -> Tensor {
        let out = Tensor(uninitializedShape: grid.shape)
        if out.count > 0 {
            let xc = x.contiguous(recordingGrad: false), grc = grid.contiguous(recordingGrad: false)
            let gc = g.contiguous(recordingGrad: false)
            Kernels.gridGradient(xc.base, grid: grc.base, gc.base, out.base,
                                 geometry: geometry(points: grid.shape[1] * grid.shape[2]), a: a, b: b)
        }
        let geo = geometry(points: 0)
        return Tensor.record("grid_sample_grid_backward", out, [x, grid, g]) { gg in
            // out = (sx ⟨g, sample_{a+1,b}(x)⟩, sy ⟨g, sample_{a,b+1}(x)⟩) per point; u, v: gg scaled per component.
            let u = gg.sliced(axis: 3, start: 0, end: 1) * geo.scaleX
            let v = gg.sliced(axis: 3, start: 1, end: 2) * geo.scaleY
            // Higher derivatives of the bilinear weights vanish: orders above 1 contribute nothing.
            var terms: [(a: Int, b: Int, weight: Tensor)] = []
            if a + 1 <= 1 { terms.append((a + 1, b, u)) }
            if b + 1 <= 1 { terms.append((a, b + 1, v)) }
            func total(_ parts: [Tensor]) -> Tensor? { parts.isEmpty ? nil : parts.dropFirst().reduce(parts[0], +) }
            return [
                x.requiresGrad ? total(terms.map { self.scatter(g * $0.weight, grid, a: $0.a, b: $0.b) }) : nil,
                grid.requiresGrad ? total(terms.map { self.gridGradient(x, grid, g, a: $0.a, b: $0.b) * $0.weight }) : nil,
                g.requiresGrad ? total(terms.map { self.sample(x, grid, a: $0.a, b: $0.b) * $0.weight }) : nil,
            ]
        }
    }
}
