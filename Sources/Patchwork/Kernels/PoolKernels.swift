import CPatchworkKernels

/// Pooling kernels on channels-last maps [B, H, W, C], vectorised over C.
///
/// Every pooling here reads, for output (i, j), the input rectangle
/// rows rowLo[i]..<rowHi[i] × columns colLo[j]..<colHi[j] (already clipped
/// to the input). Window starts and ends never decrease with i, so the
/// outputs that read input row y form a contiguous range
/// invRowLo[y]..<invRowHi[y]: backward passes gather over it (race-free
/// when rows are split across threads).
struct PoolWindows {
    let inH, inW, outH, outW: Int
    let rowLo, rowHi, colLo, colHi: [Int]
    /// 1 / divisor per output position [Ho·Wo] (averages only).
    let scale: [Float]
    let invRowLo, invRowHi, invColLo, invColHi: [Int]

    init(inH: Int, inW: Int, rowLo: [Int], rowHi: [Int], colLo: [Int], colHi: [Int], scale: [Float]) {
        self.inH = inH; self.inW = inW
        outH = rowLo.count; outW = colLo.count
        self.rowLo = rowLo; self.rowHi = rowHi; self.colLo = colLo; self.colHi = colHi
        self.scale = scale
        (invRowLo, invRowHi) = PoolWindows.inverse(lo: rowLo, hi: rowHi, size: inH)
        (invColLo, invColHi) = PoolWindows.inverse(lo: colLo, hi: colHi, size: inW)
    }

    /// For each input position y, the outputs i with lo[i] <= y < hi[i] (a range).
    private static func inverse(lo: [Int], hi: [Int], size: Int) -> ([Int], [Int]) {
        var first = [Int](repeating: 0, count: size), end = [Int](repeating: 0, count: size)
        var a = 0, b = 0
        for y in 0..<size {
            while a < hi.count && hi[a] <= y { a += 1 }
            while b < lo.count && lo[b] <= y { b += 1 }
            first[y] = a; end[y] = Swift.max(a, b)
        }
        return (first, end)
    }

    /// PyTorch's pooling_output_shape (dilation 1).
    static func pooledSize(_ n: Int, kernel k: Int, stride s: Int, pad p: Int, ceilMode: Bool) -> Int {
        let numerator = n + 2 * p - k + (ceilMode ? s - 1 : 0)
        var out = (numerator >= 0 ? numerator / s : -((-numerator + s - 1) / s)) + 1
        if ceilMode && (out - 1) * s >= n + p { out -= 1 }
        return out
    }

    /// Sliding windows of max/avg pooling with PyTorch's checks, output sizes and
    /// (for averages) divisors.
    static func sliding(op: String, input: [Int], kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int),
                        ceilMode: Bool, countIncludePad: Bool) -> PoolWindows {
        guard input.count == 4 else { fail(op, "input of shape \(input) must be [batch, height, width, channels] (channels-last)") }
        guard kernel.0 >= 1 && kernel.1 >= 1 else { fail(op, "kernel \(kernel) must be at least 1 in both dimensions (input \(input))") }
        guard stride.0 >= 1 && stride.1 >= 1 else { fail(op, "stride \(stride) must be at least 1 in both dimensions (input \(input))") }
        guard padding.0 >= 0 && padding.1 >= 0 && padding.0 <= kernel.0 / 2 && padding.1 <= kernel.1 / 2 else {
            fail(op, "padding \(padding) must be between 0 and half the kernel \(kernel) (input \(input))")
        }
        let h = input[1], w = input[2]
        let ho = pooledSize(h, kernel: kernel.0, stride: stride.0, pad: padding.0, ceilMode: ceilMode)
        let wo = pooledSize(w, kernel: kernel.1, stride: stride.1, pad: padding.1, ceilMode: ceilMode)
        guard ho >= 1 && wo >= 1 else {
            fail(op, "kernel \(kernel) with padding \(padding) is larger than the padded input \(h + 2 * padding.0)x\(w + 2 * padding.1) (input \(input)): output size \(ho)x\(wo) is too small")
        }
        // Window start/end along one axis: unclipped (for the divisor) and clipped.
        func axis(_ n: Int, _ count: Int, _ k: Int, _ s: Int, _ p: Int) -> (lo: [Int], hi: [Int], padded: [Int]) {
            var lo = [Int](), hi = [Int](), padded = [Int]()
            for i in 0..<count {
                let start = i * s - p
                let end = Swift.min(start + k, n + p)
                padded.append(end - start)
                lo.append(Swift.max(start, 0)); hi.append(Swift.min(end, n))
            }
            return (lo, hi, padded)
        }
        let rows = axis(h, ho, kernel.0, stride.0, padding.0)
        let cols = axis(w, wo, kernel.1, stride.1, padding.1)
        var scale = [Float](repeating: 0, count: ho * wo)
        for i in 0..<ho {
            for j in 0..<wo {
                let divisor = countIncludePad ? rows.padded[i] * cols.padded[j]
                                              : (rows.hi[i] - rows.lo[i]) * (cols.hi[j] - cols.lo[j])
                scale[i * wo + j] = 1 / Float(divisor)
            }
        }
        return PoolWindows(inH: h, inW: w, rowLo: rows.lo, rowHi: rows.hi, colLo: cols.lo, colHi: cols.hi, scale: scale)
    }

    /// Adaptive average pooling bins: start = ⌊i·n/o⌋, end = ⌈(i+1)·n/o⌉.
    static func adaptive(op: String, input: [Int], outputSize: (Int, Int)) -> PoolWindows {
        guard input.count == 4 else { fail(op, "input of shape \(input) must be [batch, height, width, channels] (channels-last)") }
        guard outputSize.0 >= 1 && outputSize.1 >= 1 else { fail(op, "output size \(outputSize) must be at least 1 in both dimensions (input \(input))") }
        let h = input[1], w = input[2]
        guard h >= 1 && w >= 1 else { fail(op, "input \(input) has an empty spatial dimension") }
        func bins(_ n: Int, _ o: Int) -> ([Int], [Int]) {
            ((0..<o).map { $0 * n / o }, (0..<o).map { (($0 + 1) * n + o - 1) / o })
        }
        let (rl, rh) = bins(h, outputSize.0), (cl, ch) = bins(w, outputSize.1)
        var scale = [Float](repeating: 0, count: outputSize.0 * outputSize.1)
        for i in 0..<outputSize.0 {
            for j in 0..<outputSize.1 { scale[i * outputSize.1 + j] = 1 / Float((rh[i] - rl[i]) * (ch[j] - cl[j])) }
        }
        return PoolWindows(inH: h, inW: w, rowLo: rl, rowHi: rh, colLo: cl, colHi: ch, scale: scale)
    }
}

/// Argmax positions of a max pooling (ih·W + iw per output element).
final class PoolIndices: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Int32>
    let count: Int
    init(count: Int) {
        self.count = count
        pointer = .allocate(capacity: Swift.max(count, 1))
    }
    deinit { pointer.deallocate() }
}

enum PoolKernels {
    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> Vec { UnsafeRawPointer(p).loadUnaligned(as: Vec.self) }
    @inline(__always) static func store(_ v: Vec, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec.self)
    }

    /// out[b, i, j, :] = scale[i, j] · Σ over the window of x.
    static func average(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, batch: Int, channels c: Int, _ win: PoolWindows) {
        let h = win.inH, w = win.inW, ho = win.outH, wo = win.outW
        let area = Swift.max(1, h * w / Swift.max(ho * wo, 1))
        win.rowLo.withUnsafeBufferPointer { rl in win.rowHi.withUnsafeBufferPointer { rh in
        win.colLo.withUnsafeBufferPointer { cl in win.colHi.withUnsafeBufferPointer { ch in
        win.scale.withUnsafeBufferPointer { sc in
            Parallel.forEach(batch * ho, costPerItem: wo * c * area) { r in
                let b = r / ho, i = r % ho
                let image = x + b * h * w * c
                for j in 0..<wo {
                    let dst = out + (r * wo + j) * c
                    let s = sc[i * wo + j]
                    var k = 0
                    while k + 16 <= c {
                        var acc = Vec(repeating: 0)
                        for y in rl[i]..<rh[i] { for xx in cl[j]..<ch[j] { acc += load(image + (y * w + xx) * c + k) } }
                        store(acc * s, dst + k)
                        k += 16
                    }
                    while k < c {
                        var acc: Float = 0
                        for y in rl[i]..<rh[i] { for xx in cl[j]..<ch[j] { acc += image[(y * w + xx) * c + k] } }
                        dst[k] = acc * s
                        k += 1
                    }
                }
            }
        }}}}}
    }

    /// dx[b, y, x, :] = Σ over the outputs whose window holds (y, x) of scale · g (the adjoint of `average`).
    static func averageBackward(_ g: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, batch: Int, channels c: Int, _ win: PoolWindows) {
        let h = win.inH, w = win.inW, ho = win.outH, wo = win.outW
        let cover = Swift.max(1, ho * wo / Swift.max(h * w, 1))
        win.invRowLo.withUnsafeBufferPointer { rl in win.invRowHi.withUnsafeBufferPointer { rh in
        win.invColLo.withUnsafeBufferPointer { cl in win.invColHi.withUnsafeBufferPointer { ch in
        win.scale.withUnsafeBufferPointer { sc in
            Parallel.forEach(batch * h, costPerItem: w * c * cover) { r in
                let b = r / h, y = r % h
                let gi = g + b * ho * wo * c
                for xx in 0..<w {
                    let dst = dx + (r * w + xx) * c
                    var k = 0
                    while k + 16 <= c {
                        var acc = Vec(repeating: 0)
                        for i in rl[y]..<rh[y] {
                            for j in cl[xx]..<ch[xx] { acc += load(gi + (i * wo + j) * c + k) * sc[i * wo + j] }
                        }
                        store(acc, dst + k)
                        k += 16
                    }
                    while k < c {
                        var acc: Float = 0
                        for i in rl[y]..<rh[y] { for j in cl[xx]..<ch[xx] { acc += gi[(i * wo + j) * c + k] * sc[i * wo + j] } }
                        dst[k] = acc
                        k += 1
                    }
                }
            }
        }}}}}
    }

    /// Max over each window, recording the first position of the maximum (NaN wins, as PyTorch).
    /// The loop is C (CPatchworkKernels), compiled for the running CPU's SIMD width.
    static func max(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, indices: UnsafeMutablePointer<Int32>,
                    batch: Int, channels c: Int, _ win: PoolWindows) {
        let h = win.inH, w = win.inW, ho = win.outH, wo = win.outW
        let area = Swift.max(1, h * w / Swift.max(ho * wo, 1))
        win.rowLo.withUnsafeBufferPointer { rl in win.rowHi.withUnsafeBufferPointer { rh in
        win.colLo.withUnsafeBufferPointer { cl in win.colHi.withUnsafeBufferPointer { ch in
            Parallel.forEach(batch * ho, costPerItem: wo * c * area) { r in
                let b = r / ho, i = r % ho
                pw_max_pool_row(x + b * h * w * c, out + r * wo * c, indices + r * wo * c, w, c, rl[i], rh[i],
                                cl.baseAddress, ch.baseAddress, wo)
            }
        }}}}
    }

    /// dx (zeroed here) += g at the saved argmax positions. Split over
    /// (image, block of 16 channels), so threads never write the same element.
    static func maxScatter(_ g: UnsafePointer<Float>, indices: UnsafePointer<Int32>, _ dx: UnsafeMutablePointer<Float>,
                           batch: Int, channels c: Int, _ win: PoolWindows) {
        let plane = win.inH * win.inW, outPlane = win.outH * win.outW
        Kernels.fill(dx, count: batch * plane * c, value: 0)
        let blocks = (c + 15) / 16
        Parallel.forEach(batch * blocks, costPerItem: outPlane * 16) { u in
            let b = u / blocks, k0 = (u % blocks) * 16, k1 = Swift.min(c, k0 + 16)
            let image = dx + b * plane * c
            for o in 0..<outPlane {
                let base = (b * outPlane + o) * c
                for k in k0..<k1 { image[Int(indices[base + k]) * c + k] += g[base + k] }
            }
        }
    }

    /// out = gg read at the saved argmax positions (the adjoint of `maxScatter`).
    static func maxGather(_ gg: UnsafePointer<Float>, indices: UnsafePointer<Int32>, _ out: UnsafeMutablePointer<Float>,
                          batch: Int, channels c: Int, _ win: PoolWindows) {
        let plane = win.inH * win.inW, outPlane = win.outH * win.outW
        Parallel.forEach(batch * outPlane, costPerItem: c) { r in
            let b = r / outPlane
            let image = gg + b * plane * c
            for k in 0..<c { out[r * c + k] = image[Int(indices[r * c + k]) * c + k] }
        }
    }
}
