import Patchwork

/// softmax(q·kᵀ·scale + bias + mask): the attention probabilities of every family.
///
/// - q [G, heads, Nq, d], k [G, heads, Nk, d] (G is the batch, or batch × windows).
/// - `bias` is added to the scaled scores and broadcasts against [G, heads, Nq, Nk]:
///   relative-position tables, LeViT's attention biases, DAT's sampled offsets.
/// - `mask` is an additive per-window mask [nW, Nq, Nk] (Swin's shifted windows: 0 or −100)
///   for G = B·nW windows, each image's nW windows consecutive; it repeats over the batch.
///
/// Layers whose probabilities are not plain softmax scores (ConViT's gated mix) call this
/// for the shared part and finish the rest themselves.
public func attentionProbabilities(q: Tensor, k: Tensor, scale: Float, bias: Tensor? = nil, mask: Tensor? = nil) -> Tensor {
    guard bias != nil || mask != nil else {
        // Nothing to add before the softmax: the scale goes into the fused softmax kernel,
        // one pass with no scaled copy of the [G, heads, Nq, Nk] scores (a measured speed-up).
        return matmul(q, k.transposed()).softmax(scale: scale)
    }
    // The bias and mask are added inside the softmax kernel (`softmax(scale:adding:)`), without a
    // summed copy of the [G, heads, Nq, Nk] scores.
    let scores = matmul(q, k.transposed())
    guard let mask else { return scores.softmax(scale: scale, adding: bias!) }
    let g = scores.shape[0], heads = scores.shape[1], nq = scores.shape[2], nk = scores.shape[3], nW = mask.shape[0]
    guard g % nW == 0, mask.shape == [nW, nq, nk] else {
        fail("attention", "mask \(mask.shape) does not fit scores \(scores.shape) ([nW, Nq, Nk] with G a multiple of nW)")
    }
    // The windows of one image are consecutive: the scores are [B, nW, heads, Nq, Nk], and the mask, with a
    // bias that is the same for every window ([heads, Nq, Nk] or smaller), is one [nW, heads, Nq, Nk]
    // addend repeated over the images.
    let windowMask = mask.reshaped([nW, 1, nq, nk])
    let images = scores.reshaped([g / nW, nW, heads, nq, nk])
    guard let bias else { return images.softmax(scale: scale, adding: windowMask).reshaped([g, heads, nq, nk]) }
    if bias.shape.drop(while: { $0 == 1 }).count <= 3 {
        return images.softmax(scale: scale, adding: bias + windowMask).reshaped([g, heads, nq, nk])
    }
    let biased = (scores * scale + bias).reshaped([g / nW, nW, heads, nq, nk])
    return biased.softmax(scale: 1, adding: windowMask).reshaped([g, heads, nq, nk])
}

/// The shared core of every attention layer: softmax(q·kᵀ·scale + bias + mask) · v.
///
/// Takes q [G, heads, Nq, d], k [G, heads, Nk, d], v [G, heads, Nk, dv] (see
/// `attentionProbabilities` for `bias` and `mask`) and returns the heads merged,
/// [G, Nq, heads·dv], with the probabilities [G, heads, Nq, Nk] (before dropout) for
/// callers that hand them back.
///
/// `dropout` is the layer's attention dropout, applied to the probabilities before ·v.
/// When `recorder` is on it keeps the probabilities with the query and key positions
/// (`AttentionMap`); the position and extras closures run only then.
public func scaledDotProductAttention(
    q: Tensor, k: Tensor, v: Tensor, scale: Float, bias: Tensor? = nil, mask: Tensor? = nil, dropout: Dropout? = nil,
    recorder: AttentionRecorder? = nil, queryPositions: @autoclosure () -> Tensor? = nil,
    keyPositions: @autoclosure () -> Tensor? = nil, extras: @autoclosure () -> [String: Tensor] = [:]
) -> (output: Tensor, probabilities: Tensor) {
    let probabilities = attentionProbabilities(q: q, k: k, scale: scale, bias: bias, mask: mask)
    recorder?.record(probabilities, queryPositions: queryPositions(), keyPositions: keyPositions(), extras: extras())
    // [G, heads, Nq, dv] written as [G, Nq, heads·dv]
    return (matmulMergingHeads(dropout.map { $0(probabilities) } ?? probabilities, v), probabilities)
}
