/// One-dimensional resampling by a sparse weight table: along one axis,
/// output j = Σ_k weight[j,k] · input[index[j,k]]. Resizes (nearest, bilinear,
/// bicubic, antialiased) are two such passes, one per spatial axis; the
/// gradient of a pass is the same kernel run with the transposed table.
struct ResampleTable: @unchecked Sendable {
    let inSize: Int
    let outSize: Int
    /// Taps of output j are `starts[j]..<starts[j+1]` in `index` and `weight`.
    let starts: [Int]
    let index: [Int]
    let weight: [Float]

    init(inSize: Int, outSize: Int, taps: [[(Int, Float)]]) {
        self.inSize = inSize
        self.outSize = outSize
        var starts = [0], index: [Int] = [], weight: [Float] = []
        for row in taps {
            for (i, w) in row {
                require(i >= 0 && i < inSize, "resample", "tap \(i) outside 0..<\(inSize)")
                index.append(i); weight.append(w)
            }
            starts.append(index.count)
        }
        self.starts = starts; self.index = index; self.weight = weight
    }

    /// The table of the adjoint map (input j gathers from every output that read it).
    var transposed: ResampleTable {
        var taps = [[(Int, Float)]](repeating: [], count: inSize)
        for j in 0..<outSize {
            for t in starts[j]..<starts[j + 1] { taps[index[t]].append((j, weight[t])) }
        }
        return ResampleTable(inSize: outSize, outSize: inSize, taps: taps)
    }

    var averageTaps: Int { Swift.max(1, index.count / Swift.max(outSize, 1)) }
}

/// A table and its transpose, computed once per op.
final class ResamplePlan: @unchecked Sendable {
    let forward: ResampleTable
    let backward: ResampleTable
    init(_ table: ResampleTable) {
        forward = table
        backward = table.transposed
    }
}

extension Kernels {
    /// out[o, j, :] = Σ_t w[t] · x[o, index[t], :] for x contiguous [outer, inSize, inner].
    static func resample(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                         outer: Int, inner: Int, table: ResampleTable) {
        let n = table.inSize, m = table.outSize
        table.starts.withUnsafeBufferPointer { starts in
            table.index.withUnsafeBufferPointer { index in
                table.weight.withUnsafeBufferPointer { weight in
                    Parallel.forEach(outer * m, costPerItem: inner * table.averageTaps) { row in
                        let o = row / m, j = row % m
                        let src = x + o * n * inner, dst = out + row * inner
                        let lo = starts[j], hi = starts[j + 1]
                        var c = 0
                        while c + 16 <= inner {
                            var acc = Vec(repeating: 0)
                            for t in lo..<hi {
                                acc += Vec(repeating: weight[t]) * UnsafeRawPointer(src + index[t] * inner + c).loadUnaligned(as: Vec.self)
                            }
                            UnsafeMutableRawPointer(dst + c).storeBytes(of: acc, as: Vec.self)
                            c += 16
                        }
                        while c < inner {
                            var acc: Float = 0
                            for t in lo..<hi { acc += weight[t] * src[index[t] * inner + c] }
                            dst[c] = acc
                            c += 1
                        }
                    }
                }
            }
        }
    }
}

extension Tensor {
    /// Resampling along `axis` by `plan` (its forward table, or its transpose
    /// when `transposed`). The pullback is the same op with the other table,
    /// so every order of derivative is exact.
    func resampled(axis ax: Int, plan: ResamplePlan, transposed: Bool, op: String, backwardOp: String) -> Tensor {
        let table = transposed ? plan.backward : plan.forward
        require(shape[ax] == table.inSize, op,
                "axis \(ax) has size \(shape[ax]), the resampling plan expects \(table.inSize)")
        var outShape = shape
        outShape[ax] = table.outSize
        let out = Tensor(uninitializedShape: outShape)
        if out.count > 0 {
            let src = contiguous(recordingGrad: false)
            let outer = shape[..<ax].reduce(1, *), inner = shape[(ax + 1)...].reduce(1, *)
            Kernels.resample(src.base, out.base, outer: outer, inner: inner, table: table)
        }
        return Tensor.record(op, out, [self]) { g in
            [g.resampled(axis: ax, plan: plan, transposed: !transposed, op: backwardOp, backwardOp: op)]
        }
    }
}
