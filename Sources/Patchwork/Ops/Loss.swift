/// Cross-entropy losses from logits, as torch.nn.functional.cross_entropy
/// with reduction "mean". Both forms are −Σ q⊙log_softmax(logits) / N for a
/// target distribution q per row, so they share the fused log-softmax kernel
/// and differentiate (twice) through it.

/// Mean cross-entropy of `logits` [N, K] against class indices `labels`
/// (N values in 0..<K).
///
/// With label smoothing ε the target of row i is (1 − ε)·onehot(labelᵢ) + ε/K,
/// which is torch's formula: (1 − ε)·(−log p_label) + ε·mean_k(−log p_k).
public func crossEntropy(logits: Tensor, labels: [Int], labelSmoothing: Float = 0) -> Tensor {
    let op = "crossEntropy"
    let (n, k) = checkLogits(logits, op: op)
    guard labels.count == n else {
        fail(op, "\(labels.count) labels for logits of shape \(logits.shape) (expected \(n), one per row)")
    }
    if let i = labels.firstIndex(where: { $0 < 0 || $0 >= k }) {
        fail(op, "label \(labels[i]) at position \(i) is out of range 0..<\(k) for logits of shape \(logits.shape)")
    }
    checkSmoothing(labelSmoothing, op: op)
    let off = labelSmoothing / Float(k)
    var q = [Float](repeating: off, count: n * k)
    for (i, label) in labels.enumerated() { q[i * k + label] += 1 - labelSmoothing }
    return -(logits.logSoftmax(axis: -1) * Tensor(q, shape: [n, k])).sum() * (1 / Float(n))
}

/// Mean cross-entropy of `logits` [N, K] against per-row target
/// distributions `softTargets` [N, K] (torch's class-probability targets,
/// e.g. from mixup or distillation); differentiable in both. With label
/// smoothing ε the targets become (1 − ε)·targets + ε/K, as in torch.
public func crossEntropy(logits: Tensor, softTargets: Tensor, labelSmoothing: Float = 0) -> Tensor {
    let op = "crossEntropy"
    let (n, k) = checkLogits(logits, op: op)
    guard softTargets.shape == logits.shape else {
        fail(op, "soft targets of shape \(softTargets.shape) do not match logits of shape \(logits.shape)")
    }
    checkSmoothing(labelSmoothing, op: op)
    let q = labelSmoothing == 0 ? softTargets : softTargets * (1 - labelSmoothing) + labelSmoothing / Float(k)
    return -(logits.logSoftmax(axis: -1) * q).sum() * (1 / Float(n))
}

private func checkLogits(_ logits: Tensor, op: String) -> (Int, Int) {
    guard logits.rank == 2, logits.shape[0] > 0, logits.shape[1] > 0 else {
        fail(op, "logits must be [N, K] with N, K > 0, got shape \(logits.shape)")
    }
    return (logits.shape[0], logits.shape[1])
}

private func checkSmoothing(_ epsilon: Float, op: String) {
    guard epsilon >= 0 && epsilon <= 1 else {
        fail(op, "label smoothing \(epsilon) must be in [0, 1]")
    }
}
