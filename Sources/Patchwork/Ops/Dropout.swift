/// Inverted dropout: during training each element is kept with probability
/// 1 − p and scaled by 1/(1 − p), so the expected output equals the input and
/// evaluation needs no rescaling.
///
/// The mask is reproducible from the generator: one `nextUniform()` is drawn
/// per element of `x` in row-major order of its shape (whatever its strides),
/// and the element is kept when u ≥ p. When not training, or when p = 0, `x`
/// is returned unchanged and no numbers are drawn. The gradient flows through
/// the same mask: dx = g ⊙ mask / (1 − p).
public func dropout(_ x: Tensor, probability p: Float, generator: Generator, training: Bool) -> Tensor {
    guard p >= 0 && p < 1 else {
        fail("dropout", "probability \(p) must be in [0, 1) (input of shape \(x.shape))")
    }
    if !training || p == 0 { return x }
    let scale = 1 / (1 - p)
    let mask = Tensor(uninitializedShape: x.shape)
    let m = mask.base
    for i in 0..<mask.count { m[i] = generator.nextUniform() >= p ? scale : 0 }
    let y = Kernels.zip(x, mask, op: "dropout", MulFunction.self)
    return Tensor.record("dropout", y, [x]) { g in [g * mask] }
}
