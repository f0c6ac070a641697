import CPatchworkKernels

/// Kernels for layer, batch and group normalisation over channels-last data.
///
/// Statistics are computed in two passes (the mean, then the sum of squared
/// deviations from it), never as E[x²] − E[x]², which loses most digits when
/// a row or channel has a large mean or one outlying value (the massive
/// activations of large vision transformers). For layer norm the row is in
/// L1 cache after the first pass, so the second costs little; for batch and
/// group norm, partial sums are kept per block of 256 rows in Float and added
/// into Double, so long reductions (B·H·W rows) stay accurate.
extension Kernels {
    /// Layer norm of each of `rows` rows of `n` contiguous floats:
    /// y = (x − mean)·rstd·w + b, writing each row's mean and rstd = 1/√(var + eps).
    static func layerNormRows(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, length n: Int,
                              weight w: UnsafePointer<Float>, bias b: UnsafePointer<Float>, eps: Float,
                              mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>) {
        if n == 0 { return }
        // The C kernel (CPatchworkKernels, with FMA and the running CPU's SIMD width).
        Parallel.forChunks(rows, costPerItem: n * 4) { range in
            let offset = range.lowerBound * n
            pw_layer_norm_rows(x + offset, y + offset, range.count, n, w, b, eps, mean + range.lowerBound, rstd + range.lowerBound)
        }
    }

    /// Per-channel sums over the rows of `batches` slabs of `rows`×`channels`
    /// contiguous floats: Σ x when `center` is nil, else Σ (x − center)² with
    /// `center` holding one value per (batch, channel). Returns batches·channels sums.
    static func channelSums(_ x: UnsafePointer<Float>, batches: Int, rows: Int, channels c: Int,
                            center: UnsafePointer<Float>?) -> [Double] {
        let threads = Parallel.threadCount
        // Split each slab's rows into blocks so that small batches still use every core.
        let blocks = batches >= threads ? 1 : Swift.max(1, Swift.min(rows, (threads + batches - 1) / batches))
        let items = batches * blocks
        var partial = [Double](repeating: 0, count: items * c)
        var scratch = [Float](repeating: 0, count: items * c)
        partial.withUnsafeMutableBufferPointer { pp in
            scratch.withUnsafeMutableBufferPointer { sp in
                let pbase = pp.baseAddress!, sbase = sp.baseAddress!
                Parallel.forEach(items, costPerItem: Swift.max(1, rows * c / blocks)) { item in
                    let batch = item / blocks, block = item % blocks
                    let lo = rows * block / blocks, hi = rows * (block + 1) / blocks
                    let total = pbase + item * c, acc = sbase + item * c
                    let slab = x + batch * rows * c
                    let ctr = center.map { $0 + batch * c }
                    var r = lo
                    while r < hi {
                        let end = Swift.min(r + 256, hi)
                        acc.update(repeating: 0, count: c)
                        if let ctr {
                            for row in r..<end {
                                let src = slab + row * c
                                var i = 0
                                while i + 16 <= c {
                                    let d = loadVec(src + i) - loadVec(ctr + i)
                                    storeVec(loadVec(acc + i) + d * d, acc + i)
                                    i += 16
                                }
                                while i < c { let d = src[i] - ctr[i]; acc[i] += d * d; i += 1 }
                            }
                        } else {
                            for row in r..<end {
                                let src = slab + row * c
                                var i = 0
                                while i + 16 <= c { storeVec(loadVec(acc + i) + loadVec(src + i), acc + i); i += 16 }
                                while i < c { acc[i] += src[i]; i += 1 }
                            }
                        }
                        for i in 0..<c { total[i] += Double(acc[i]) }
                        r = end
                    }
                }
            }
        }
        var sums = [Double](repeating: 0, count: batches * c)
        for item in 0..<items {
            let batch = item / blocks
            for i in 0..<c { sums[batch * c + i] += partial[item * c + i] }
        }
        return sums
    }

    /// y = (x − mean)·scale + bias per channel, with `mean` and `scale` given
    /// per (batch, channel) and `bias` per channel, over `batches` slabs of
    /// `rows`×`channels` contiguous floats; then + residual (same layout as x) where given, then
    /// ReLU where asked (as `relu()`: NaN stays NaN), in the same pass (C, the CPU's SIMD width).
    static func channelAffine(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batches: Int, rows: Int, channels c: Int,
                              mean: UnsafePointer<Float>, scale: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                              residual: UnsafePointer<Float>? = nil, relu: Bool = false) {
        if c == 0 { return }
        Parallel.forChunks(batches * rows, costPerItem: c) { range in
            // Runs of rows within one batch, which share its mean and scale.
            var row = range.lowerBound
            while row < range.upperBound {
                let batch = row / rows, end = Swift.min(range.upperBound, (batch + 1) * rows)
                pw_channel_affine_rows(x + row * c, y + row * c, end - row, c, mean + batch * c, scale + batch * c, bias,
                                       residual.map { $0 + row * c }, relu ? 1 : 0)
                row = end
            }
        }
    }
}

@inline(__always) private func loadVec(_ p: UnsafePointer<Float>) -> Vec { UnsafeRawPointer(p).loadUnaligned(as: Vec.self) }
@inline(__always) private func loadVec(_ p: UnsafeMutablePointer<Float>) -> Vec { UnsafeRawPointer(p).loadUnaligned(as: Vec.self) }
@inline(__always) private func storeVec(_ v: Vec, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec.self) }

// MARK: - Backward

extension Kernels {
    /// The backward pass of layer norm over rows of `n` floats, in one sweep per row:
    /// with x̂ = (x − mean)·rstd and ĝ = g·w,
    /// gx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)); dw += Σ_rows g·x̂, db += Σ_rows g.
    /// `dw`/`db` (n floats each) are overwritten; nil skips them.
    static func layerNormBackward(x: UnsafePointer<Float>, g: UnsafePointer<Float>, mean: UnsafePointer<Float>,
                                  rstd: UnsafePointer<Float>, weight w: UnsafePointer<Float>, rows: Int, length n: Int,
                                  gx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>?, db: UnsafeMutablePointer<Float>?) {
        if n == 0 || rows == 0 { return }
        let pieces = Swift.max(1, Swift.min(Parallel.threadCount, rows))
        // Per-piece column sums for dw and db, added at the end.
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 2 * pieces * n)
        defer { scratch.deallocate() }
        scratch.initialize(repeating: 0, count: 2 * pieces * n)
        let wantColumns = dw != nil || db != nil
        Parallel.forEach(pieces, costPerItem: rows * n * 8 / pieces) { piece in
            let lo = rows * piece / pieces, hi = rows * (piece + 1) / pieces
            let accW = scratch + piece * 2 * n, accB = accW + n
            pw_layer_norm_backward_rows(x + lo * n, g + lo * n, mean + lo, rstd + lo, w, hi - lo, n,
                                        gx.map { $0 + lo * n }, wantColumns ? accW : nil, wantColumns ? accB : nil)
        }
        for (target, offset) in [(dw, 0), (db, n)] {
            guard let target else { continue }
            target.update(from: scratch + offset, count: n)
            for piece in 1..<pieces { let p = scratch + piece * 2 * n + offset; for i in 0..<n { target[i] += p[i] } }
        }
    }

    /// The backward pass of batch norm in training (statistics over all rows, per channel):
    /// with x̂ = (x − mean_c)·rstd_c, sums S_g = Σ g and S_gx = Σ g·x̂ per channel (in Double),
    /// gx = rstd·w·(g − S_g/M − x̂·S_gx/M) over the M rows; dw = S_gx, db = S_g.
    static func batchNormBackward(x: UnsafePointer<Float>, g: UnsafePointer<Float>, mean: UnsafePointer<Float>,
                                  rstd: UnsafePointer<Float>, weight w: UnsafePointer<Float>, rows: Int, channels c: Int,
                                  gx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>?, db: UnsafeMutablePointer<Float>?) {
        if c == 0 || rows == 0 { return }
        let pieces = Swift.max(1, Swift.min(Parallel.threadCount, rows))
        let partial = UnsafeMutablePointer<Double>.allocate(capacity: 2 * pieces * c)
        defer { partial.deallocate() }
        partial.initialize(repeating: 0, count: 2 * pieces * c)
        Parallel.forEach(pieces, costPerItem: rows * c * 4 / pieces) { piece in
            let lo = rows * piece / pieces, hi = rows * (piece + 1) / pieces
            let totalG = partial + piece * 2 * c, totalGX = totalG + c
            // Float partial sums over blocks of 256 rows, added into Double (as channelSums).
            let accG = UnsafeMutablePointer<Float>.allocate(capacity: 2 * c)
            defer { accG.deallocate() }
            let accGX = accG + c
            var r = lo
            while r < hi {
                let end = Swift.min(r + 256, hi)
                accG.initialize(repeating: 0, count: 2 * c)
                for row in r..<end {
                    let xr = x + row * c, gr = g + row * c
                    var i = 0
                    while i + 16 <= c {
                        let gv = loadVec(gr + i), xh = (loadVec(xr + i) - loadVec(mean + i)) * loadVec(rstd + i)
                        storeVec(loadVec(accG + i) + gv, accG + i)
                        storeVec(loadVec(accGX + i) + gv * xh, accGX + i)
                        i += 16
                    }
                    while i < c { let xh = (xr[i] - mean[i]) * rstd[i]; accG[i] += gr[i]; accGX[i] += gr[i] * xh; i += 1 }
                }
                for i in 0..<c { totalG[i] += Double(accG[i]); totalGX[i] += Double(accGX[i]) }
                r = end
            }
        }
        var sumG = [Double](repeating: 0, count: c), sumGX = [Double](repeating: 0, count: c)
        for piece in 0..<pieces {
            let p = partial + piece * 2 * c
            for i in 0..<c { sumG[i] += p[i]; sumGX[i] += p[c + i] }
        }
        if let dw { for i in 0..<c { dw[i] = Float(sumGX[i]) } }
        if let db { for i in 0..<c { db[i] = Float(sumG[i]) } }
        guard let gx else { return }
        // gx = k·g − k·S_g/M − k·x̂·S_gx/M with k = rstd·w: per channel, a·g + b + x̂·e.
        let k = (0..<c).map { rstd[$0] * w[$0] }
        let shift = (0..<c).map { -k[$0] * Float(sumG[$0] / Double(rows)) }
        let slope = (0..<c).map { -k[$0] * Float(sumGX[$0] / Double(rows)) }
        k.withUnsafeBufferPointer { kp in shift.withUnsafeBufferPointer { sp in slope.withUnsafeBufferPointer { ep in
            let kb = kp.baseAddress!, sb = sp.baseAddress!, eb = ep.baseAddress!
            Parallel.forChunks(rows, costPerItem: c * 2) { range in
                for row in range {
                    let xr = x + row * c, gr = g + row * c, out = gx + row * c
                    var i = 0
                    while i + 16 <= c {
                        let xh = (loadVec(xr + i) - loadVec(mean + i)) * loadVec(rstd + i)
                        storeVec(loadVec(kb + i) * loadVec(gr + i) + loadVec(sb + i) + xh * loadVec(eb + i), out + i)
                        i += 16
                    }
                    while i < c {
                        let xh = (xr[i] - mean[i]) * rstd[i]
                        out[i] = kb[i] * gr[i] + sb[i] + xh * eb[i]
                        i += 1
                    }
                }
            }
        }}}
    }
}
