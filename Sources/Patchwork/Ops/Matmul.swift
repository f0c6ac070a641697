/// Matrix products: batched `matmul` with broadcast batch dimensions, and `linear`.
extension Tensor {
    /// How one matrix (the last two dims) can be handed to GEMM without a copy.
    fileprivate struct MatrixOperand {
        let transposed: Bool
        let ld: Int
    }

    /// The GEMM view of the last two dimensions, or nil when they need a copy.
    fileprivate static func matrixOperand(_ t: Tensor) -> MatrixOperand? {
        let rows = t.shape[t.rank - 2], cols = t.shape[t.rank - 1]
        let sr = t.strides[t.rank - 2], sc = t.strides[t.rank - 1]
        if (sc == 1 || cols == 1) && (sr >= Swift.max(cols, 1) || rows == 1) { return MatrixOperand(transposed: false, ld: rows == 1 ? Swift.max(cols, 1) : sr) }
        if (sr == 1 || rows == 1) && (sc >= Swift.max(rows, 1) || cols == 1) { return MatrixOperand(transposed: true, ld: cols == 1 ? Swift.max(rows, 1) : sc) }
        return nil
    }
}

/// Matrix product of the last two dimensions, with the leading (batch)
/// dimensions broadcast as in NumPy; 1-D operands act as a row/column vector.
public func matmul(_ a: Tensor, _ b: Tensor) -> Tensor {
    if a.rank == 1 { return matmul(a.unsqueezed(axis: 0), b).squeezed(axes: [-2]) }
    if b.rank == 1 { return matmul(a, b.unsqueezed(axis: 1)).squeezed(axes: [-1]) }
    guard a.rank >= 2, b.rank >= 2 else { fail("matmul", "operands of shapes \(a.shape) and \(b.shape) must have rank ≥ 1") }
    let m = a.shape[a.rank - 2], k = a.shape[a.rank - 1]
    let k2 = b.shape[b.rank - 2], n = b.shape[b.rank - 1]
    guard k == k2 else {
        fail("matmul", "inner dimensions differ: \(a.shape) × \(b.shape) (\(k) vs \(k2))")
    }
    let batchShape = broadcastShapes(Array(a.shape.dropLast(2)), Array(b.shape.dropLast(2)), op: "matmul")
    let out = Tensor(uninitializedShape: batchShape + [m, n])
    FlopCounter.add(2 * Double(batchShape.reduce(1, *)) * Double(m) * Double(n) * Double(k))
    Kernels.batchedGemm(a, b, out: out, batchShape: batchShape, m: m, n: n, k: k)
    return Tensor.record("matmul", out, [a, b]) { g in
        [a.requiresGrad ? matmul(g, b.transposed()).summed(toShape: a.shape) : nil,
         b.requiresGrad ? matmul(a.transposed(), g).summed(toShape: b.shape) : nil]
    }
}

/// matmul(a, b) for a [G, H, M, K] and b [G, H, K, N], returned as [G, M, H·N]: the H products
/// side by side in each row, as attention merges its heads (probabilities · values). GEMM writes each
/// product straight into its columns, so there is no permuted copy of the result.
public func matmulMergingHeads(_ a: Tensor, _ b: Tensor) -> Tensor {
    guard a.rank == 4, b.rank == 4, a.shape[0] == b.shape[0], a.shape[1] == b.shape[1], a.shape[3] == b.shape[2] else {
        fail("matmul", "merging heads needs [G, H, M, K] × [G, H, K, N], got \(a.shape) × \(b.shape)")
    }
    let g = a.shape[0], h = a.shape[1], m = a.shape[2], k = a.shape[3], n = b.shape[3]
    let out = Tensor(uninitializedShape: [g, m, h * n])
    FlopCounter.add(2 * Double(g * h) * Double(m) * Double(n) * Double(k))
    // The [G, H, M, N] view of the result: head j of row i starts at column j·N.
    let heads = Tensor(storage: out.storage, shape: [g, h, m, n], strides: [m * h * n, n, h * n, 1])
    Kernels.batchedGemm(a, b, out: heads, batchShape: [g, h], m: m, n: n, k: k)
    return Tensor.record("matmul", out, [a, b]) { grad in
        let gHeads = grad.reshaped([g, m, h, n]).permuted([0, 2, 1, 3])
        return [a.requiresGrad ? matmul(gHeads, b.transposed()) : nil,
                b.requiresGrad ? matmul(a.transposed(), gHeads) : nil]
    }
}

/// y = x·Wᵀ + b over the last dimension of x (PyTorch's nn.Linear layout:
/// weight [out, in], bias [out]).
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) -> Tensor {
    guard weight.rank == 2, x.rank >= 1, x.shape[x.rank - 1] == weight.shape[1] else {
        fail("linear", "input \(x.shape) does not match weight \(weight.shape) (expected last input dimension \(weight.rank == 2 ? weight.shape[1] : -1))")
    }
    if let bias, bias.shape != [weight.shape[0]] {
        fail("linear", "bias shape \(bias.shape) does not match weight \(weight.shape) (expected [\(weight.shape[0])])")
    }
    let outShape = Array(x.shape.dropLast()) + [weight.shape[0]]
    let x2 = x.reshaped([-1, weight.shape[1]])
    let rows = x2.shape[0], n = weight.shape[0], k = weight.shape[1]
    let out = Tensor(uninitializedShape: [rows, n])
    FlopCounter.add(2 * Double(rows) * Double(n) * Double(k))
    if rows > 0 && n > 0 {
        let po = out.storage.pointer
        if let bias {
            // The bias fills the output first and GEMM adds the product to it (beta = 1): no second pass.
            let b = bias.contiguous(recordingGrad: false), pb = b.base
            Parallel.forChunks(rows, costPerItem: n) { r in
                for i in r { (po + i * n).update(from: pb, count: n) }
            }
        }
        let (xx, opX) = Tensor.gemmOperand(x2), (ww, opW) = Tensor.gemmOperand(weight)
        // op(B) = Wᵀ: W read transposed as it is stored, or as stored when W itself is a transposed view.
        Gemm.sgemm(transA: opX.transposed, transB: !opW.transposed, m: rows, n: n, k: k,
                   a: xx.storage.pointer + xx.offset, lda: opX.ld, b: ww.storage.pointer + ww.offset, ldb: opW.ld,
                   beta: bias == nil ? 0 : 1, c: po, ldc: n)
    }
    // The weight's gradient gᵀ·x comes out in the weight's own [out, in] layout. (matmul(x, Wᵀ) would hand
    // it back as a transposed view of xᵀ·g, which every optimizer step then gathers into a contiguous copy.)
    let y = Tensor.record("linear", out, [x2, weight] + (bias.map { [$0] } ?? [])) { g in
        [x2.requiresGrad ? matmul(g, weight) : nil,
         weight.requiresGrad ? matmul(g.transposed(), x2) : nil]
            + (bias.map { [$0.requiresGrad ? g.summed(toShape: $0.shape) : nil] } ?? [])
    }
    return y.reshaped(outShape)
}

extension Kernels {
    /// out[batch] = a[batch] · b[batch] with broadcast batch indices. `out` is batchShape + [m, n], rows
    /// unit-stride (contiguous, or a view placing each product's rows with a wider stride).
    static func batchedGemm(_ a: Tensor, _ b: Tensor, out: Tensor, batchShape: [Int], m: Int, n: Int, k: Int) {
        let batch = batchShape.reduce(1, *)
        if batch == 0 || m == 0 || n == 0 { return }
        // Operands whose matrices GEMM cannot read in place are copied once.
        let (aa, opA) = Tensor.gemmOperand(a), (bb, opB) = Tensor.gemmOperand(b)
        let aBatch = broadcastStrides(Tensor(storage: aa.storage, shape: Array(aa.shape.dropLast(2)), strides: Array(aa.strides.dropLast(2))), to: batchShape)
        let bBatch = broadcastStrides(Tensor(storage: bb.storage, shape: Array(bb.shape.dropLast(2)), strides: Array(bb.strides.dropLast(2))), to: batchShape)
        let pa = aa.storage.pointer + aa.offset, pb = bb.storage.pointer + bb.offset, pc = out.storage.pointer + out.offset
        let outBatch = Array(out.strides.dropLast(2)), ldc = m == 1 ? n : out.strides[out.rank - 2]
        precondition(out.strides[out.rank - 1] == 1 || n == 1, "batchedGemm: the output's rows must be unit-stride")

        // A broadcast B under a row-major A stack: one tall GEMM instead of a batch loop.
        if batch > 1 && bBatch.allSatisfy({ $0 == 0 }) && !opA.transposed && aa.isContiguous && out.isContiguous {
            Gemm.sgemm(transA: false, transB: opB.transposed, m: batch * m, n: n, k: k,
                       a: pa, lda: opA.ld, b: pb, ldb: opB.ld, c: pc, ldc: n)
            return
        }
        let batchContiguous = Tensor.contiguousStrides(batchShape)
        func offsets(_ i: Int) -> (Int, Int, Int) {
            var rem = i, oa = 0, ob = 0, oc = 0
            for d in 0..<batchShape.count {
                let idx = rem / batchContiguous[d]; rem %= batchContiguous[d]
                oa += idx * aBatch[d]; ob += idx * bBatch[d]; oc += idx * outBatch[d]
            }
            return (oa, ob, oc)
        }
        let run = { (i: Int) in
            let (oa, ob, oc) = offsets(i)
            Gemm.sgemm(transA: opA.transposed, transB: opB.transposed, m: m, n: n, k: k,
                       a: pa + oa, lda: opA.ld, b: pb + ob, ldb: opB.ld, c: pc + oc, ldc: ldc)
        }
        // Small matrices: one single-threaded GEMM per thread; large ones: GEMM uses all threads.
        if batch > 1 && m * n * k < 128 * 128 * 128 {
            Parallel.forEach(batch, costPerItem: m * n * k / 8, run)
        } else {
            for i in 0..<batch { run(i) }
        }
    }
}

extension Tensor {
    /// The tensor GEMM reads (itself, or a contiguous copy when its last two
    /// dimensions are not a GEMM-readable matrix) and how GEMM reads it.
    fileprivate static func gemmOperand(_ t: Tensor) -> (Tensor, MatrixOperand) {
        if let op = matrixOperand(t) { return (t, op) }
        let copy = t.detached().contiguous(recordingGrad: false)
        return (copy, matrixOperand(copy)!)
    }
}
