import Foundation
import Patchwork

/// Linear centred kernel alignment between layers of two models, with the
/// minibatch unbiased estimator of Nguyen, Raghu & Kornblith (2021):
///
///     CKA(K, L) = Σ_i HSIC₁(K_i, L_i) / √(Σ_i HSIC₁(K_i, K_i) · Σ_i HSIC₁(L_i, L_i))
///
/// over minibatches i, where K_i = X_i X_iᵀ is the Gram matrix of one layer's
/// features for the n examples of minibatch i (flattened per example) and HSIC₁
/// is the unbiased estimator of Song et al. (2012):
///
///     HSIC₁(K, L) = [tr(K̃L̃) + 1ᵀK̃1·1ᵀL̃1 / ((n−1)(n−2)) − 2/(n−2)·1ᵀK̃L̃1] / (n(n−3))
///
/// with K̃, L̃ the Gram matrices with their diagonals set to zero. Unlike CKA on one
/// big batch, the estimate does not depend on the minibatch size.
public struct CKAAccumulator {
    public let layersA: Int
    public let layersB: Int
    private var cross: [[Double]]
    private var selfA: [Double]
    private var selfB: [Double]
    public private(set) var batches = 0

    public init(layersA: Int, layersB: Int) {
        self.layersA = layersA; self.layersB = layersB
        cross = Array(repeating: Array(repeating: 0, count: layersB), count: layersA)
        selfA = Array(repeating: 0, count: layersA)
        selfB = Array(repeating: 0, count: layersB)
    }

    /// Adds one minibatch: each layer's features for the same n ≥ 4 examples
    /// (any shape whose first axis is the example).
    public mutating func add(featuresA: [Tensor], featuresB: [Tensor]) {
        require(featuresA.count == layersA && featuresB.count == layersB, "CKA", "expected \(layersA) and \(layersB) layers")
        let gramsA = featuresA.map(CKAAccumulator.gram), gramsB = featuresB.map(CKAAccumulator.gram)
        let n = gramsA.first?.n ?? gramsB.first?.n ?? 0
        require(n >= 4, "CKA", "the unbiased estimator needs minibatches of at least 4 examples, got \(n)")
        require((gramsA + gramsB).allSatisfy { $0.n == n }, "CKA", "every layer must see the same examples")
        for i in 0..<layersA { selfA[i] += CKAAccumulator.hsic(gramsA[i], gramsA[i]) }
        for j in 0..<layersB { selfB[j] += CKAAccumulator.hsic(gramsB[j], gramsB[j]) }
        for i in 0..<layersA { for j in 0..<layersB { cross[i][j] += CKAAccumulator.hsic(gramsA[i], gramsB[j]) } }
        batches += 1
    }

    /// CKA of every layer of A (rows) with every layer of B (columns).
    public var matrix: [[Double]] {
        (0..<layersA).map { i in
            (0..<layersB).map { j in
                let d = (selfA[i] * selfB[j]).squareRoot()
                return d > 0 ? cross[i][j] / d : .nan
            }
        }
    }

    /// A Gram matrix with its diagonal zeroed, in double precision, plus its row sums.
    struct Gram {
        let n: Int
        let values: [Double]     // n×n, zero diagonal
        let rowSums: [Double]
        let total: Double
    }

    static func gram(_ features: Tensor) -> Gram {
        let n = features.shape[0]
        let x = features.contiguous().reshaped([n, features.count / max(n, 1)])
        let k = withoutGrad { matmul(x, x.transposed()) }.scalars
        var values = k.map(Double.init)
        for i in 0..<n { values[i * n + i] = 0 }
        let rowSums = (0..<n).map { i in values[(i * n)..<(i * n + n)].reduce(0, +) }
        return Gram(n: n, values: values, rowSums: rowSums, total: rowSums.reduce(0, +))
    }

    static func hsic(_ k: Gram, _ l: Gram) -> Double {
        let n = Double(k.n)
        // tr(K̃L̃) = Σ_ij K̃_ij L̃_ji = Σ_ij K̃_ij L̃_ij (symmetric); 1ᵀK̃L̃1 = Σ_j (K̃1)_j (L̃1)_j.
        var trace = 0.0
        for i in 0..<k.values.count { trace += k.values[i] * l.values[i] }
        var middle = 0.0
        for j in 0..<k.n { middle += k.rowSums[j] * l.rowSums[j] }
        return (trace + k.total * l.total / ((n - 1) * (n - 2)) - 2 / (n - 2) * middle) / (n * (n - 3))
    }
}
