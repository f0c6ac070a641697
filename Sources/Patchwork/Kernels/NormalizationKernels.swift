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
        Parallel.forChunks(rows, costPerItem: n * 4) { range in
            for r in range {
                let src = x + r * n, dst = y + r * n
                var i = 0
                var acc = Vec(repeating: 0)
                while i + 16 <= n { acc += loadVec(src + i); i += 16 }
                var s = acc.sum()
                while i < n { s += src[i]; i += 1 }
                let m = s / Float(n)
                let mv = Vec(repeating: m)
                i = 0
                var acc2 = Vec(repeating: 0)
                while i + 16 <= n { let d = loadVec(src + i) - mv; acc2 += d * d; i += 16 }
                var s2 = acc2.sum()
                while i < n { let d = src[i] - m; s2 += d * d; i += 1 }
                let rs = 1 / (s2 / Float(n) + eps).squareRoot()
                mean[r] = m
                rstd[r] = rs
                let rv = Vec(repeating: rs)
                i = 0
                while i + 16 <= n {
                    storeVec((loadVec(src + i) - mv) * rv * loadVec(w + i) + loadVec(b + i), dst + i)
                    i += 16
                }
                while i < n { dst[i] = (src[i] - m) * rs * w[i] + b[i]; i += 1 }
            }
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
    /// `rows`×`channels` contiguous floats.
    static func channelAffine(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batches: Int, rows: Int, channels c: Int,
                              mean: UnsafePointer<Float>, scale: UnsafePointer<Float>, bias: UnsafePointer<Float>) {
        if c == 0 { return }
        Parallel.forChunks(batches * rows, costPerItem: c) { range in
            for row in range {
                let batch = row / rows
                let src = x + row * c, dst = y + row * c
                let m = mean + batch * c, s = scale + batch * c
                var i = 0
                while i + 16 <= c {
                    storeVec((loadVec(src + i) - loadVec(m + i)) * loadVec(s + i) + loadVec(bias + i), dst + i)
                    i += 16
                }
                while i < c { dst[i] = (src[i] - m[i]) * s[i] + bias[i]; i += 1 }
            }
        }
    }
}

@inline(__always) private func loadVec(_ p: UnsafePointer<Float>) -> Vec { UnsafeRawPointer(p).loadUnaligned(as: Vec.self) }
@inline(__always) private func loadVec(_ p: UnsafeMutablePointer<Float>) -> Vec { UnsafeRawPointer(p).loadUnaligned(as: Vec.self) }
@inline(__always) private func storeVec(_ v: Vec, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec.self) }
