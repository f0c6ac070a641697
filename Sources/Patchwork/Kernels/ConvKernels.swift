import Foundation

/// Convolution kernels on channels-last data ([B, H, W, C] maps, OHWI weights).
///
/// Where `usesPrimitive` says so (most non-pointwise shapes, measured), a
/// convolution runs on oneDNN's convolution primitive (`DnnlConv`); otherwise,
/// and where oneDNN has no fast implementation, on one of three paths (DESIGN.md §2):
/// - pointwise (1x1, stride 1, no padding): the map is a [B·H·W, C] matrix and
///   the convolution is one GEMM per group, threaded by oneDNN;
/// - depthwise (groups == C == O): direct SIMD loops vectorised over the
///   contiguous channels, split over output rows;
/// - general: im2col into a band of output rows, then one GEMM per group.
///   Images are split over threads (single-threaded GEMMs inside); with one
///   image the band's im2col/col2im loops and the GEMM use all threads.
///
/// The patch matrix of a band has one row per output pixel, laid out
/// [groups, kH, kW, C/groups], so group g's patches are the columns
/// g·K ..< (g+1)·K (K = kH·kW·C/groups) and its weights the rows
/// g·O/groups ..< (g+1)·O/groups of the OHWI weight seen as [O, K].
struct ConvGeometry: Hashable {
    let batch, height, width, inChannels: Int
    let outChannels, kernelH, kernelW: Int
    let strideH, strideW, padH, padW, dilationH, dilationW, groups: Int
    let outH, outW: Int

    /// FLOPs of the convolution (and of each of its gradient ops): 2 per multiply-add.
    var flops: Double {
        2 * Double(batch * outH * outW) * Double(outChannels) * Double(inChannels / groups) * Double(kernelH * kernelW)
    }

    /// Checks the arguments of a convolution and derives the output size,
    /// stopping with a message that names `op`, the shapes and the argument.
    init(op: String, input: [Int], weight: [Int], stride: (Int, Int), padding: (Int, Int),
         dilation: (Int, Int), groups: Int) {
        guard input.count == 4 else {
            fail(op, "input of shape \(input) must be [batch, height, width, channels] (channels-last)")
        }
        guard weight.count == 4 else {
            fail(op, "weight of shape \(weight) must be [outChannels, kernelH, kernelW, inChannels/groups] (OHWI)")
        }
        guard groups >= 1 else { fail(op, "groups \(groups) must be at least 1") }
        guard stride.0 >= 1 && stride.1 >= 1 else { fail(op, "stride \(stride) must be at least 1 in both dimensions") }
        guard dilation.0 >= 1 && dilation.1 >= 1 else { fail(op, "dilation \(dilation) must be at least 1 in both dimensions") }
        guard padding.0 >= 0 && padding.1 >= 0 else { fail(op, "padding \(padding) must not be negative") }
        let c = input[3], o = weight[0]
        guard c % groups == 0 else {
            fail(op, "groups \(groups) does not divide the \(c) input channels of input \(input)")
        }
        guard o % groups == 0 else {
            fail(op, "groups \(groups) does not divide the \(o) output channels of weight \(weight)")
        }
        guard weight[3] == c / groups else {
            fail(op, "channel mismatch: input \(input) has \(c) channels, so with groups \(groups) weight \(weight) needs \(c / groups) input channels per group, not \(weight[3])")
        }
        guard weight[1] >= 1 && weight[2] >= 1 else { fail(op, "weight \(weight) has an empty kernel") }
        let spanH = (weight[1] - 1) * dilation.0 + 1, spanW = (weight[2] - 1) * dilation.1 + 1
        let paddedH = input[1] + 2 * padding.0, paddedW = input[2] + 2 * padding.1
        guard spanH <= paddedH && spanW <= paddedW else {
            fail(op, "kernel \(weight[1])x\(weight[2]) of weight \(weight) with dilation \(dilation) spans \(spanH)x\(spanW), larger than the padded input \(paddedH)x\(paddedW) (input \(input), padding \(padding))")
        }
        batch = input[0]; height = input[1]; width = input[2]; inChannels = c
        outChannels = o; kernelH = weight[1]; kernelW = weight[2]
        strideH = stride.0; strideW = stride.1; padH = padding.0; padW = padding.1
        dilationH = dilation.0; dilationW = dilation.1
        self.groups = groups
        outH = (paddedH - spanH) / stride.0 + 1
        outW = (paddedW - spanW) / stride.1 + 1
    }

    var inputShape: [Int] { [batch, height, width, inChannels] }
    var outputShape: [Int] { [batch, outH, outW, outChannels] }
    var weightShape: [Int] { [outChannels, kernelH, kernelW, inChannels / groups] }
    var stride: (Int, Int) { (strideH, strideW) }
    var padding: (Int, Int) { (padH, padW) }
    var dilation: (Int, Int) { (dilationH, dilationW) }

    /// Input channels per group.
    var groupIn: Int { inChannels / groups }
    /// Output channels per group.
    var groupOut: Int { outChannels / groups }
    /// Length of one group's patch (the GEMM inner dimension).
    var patch: Int { kernelH * kernelW * groupIn }
    /// Length of one patch-matrix row (all groups).
    var patchRow: Int { kernelH * kernelW * inChannels }

    var isPointwise: Bool {
        kernelH == 1 && kernelW == 1 && strideH == 1 && strideW == 1 && padH == 0 && padW == 0
    }
    var isDepthwise: Bool { groups == inChannels && outChannels == inChannels }

    /// Output rows per im2col band: a band's patch matrix stays near 1 MiB.
    var bandRows: Int {
        let perRow = Swift.max(outW * patchRow, 1)
        return Swift.max(1, Swift.min(outH, (1 << 18) / perRow))
    }
}

/// The kernel taps `t` (0..<kernel) whose input position `o·stride − pad + t·dilation`
/// lies inside 0..<size, for output position `o`.
@inline(__always)
func convTapRange(_ o: Int, stride: Int, pad: Int, dilation: Int, kernel: Int, size: Int) -> Range<Int> {
    let start = o * stride - pad
    let lo = start >= 0 ? 0 : (-start + dilation - 1) / dilation
    let last = size - 1 - start
    let hi = last < 0 ? 0 : Swift.min(kernel, last / dilation + 1)
    return lo..<Swift.max(lo, hi)
}

/// For each input position along one axis, the (tap, output position) pairs that read it.
struct TransposedTaps {
    var start: [Int] = [0]
    var tap: [Int] = []
    var output: [Int] = []

    init(size: Int, outSize: Int, stride: Int, pad: Int, dilation: Int, kernel: Int) {
        for y in 0..<size {
            for t in 0..<kernel {
                let u = y + pad - t * dilation
                if u < 0 || u % stride != 0 { continue }
                let o = u / stride
                if o < outSize { tap.append(t); output.append(o) }
            }
            start.append(tap.count)
        }
    }
}

enum ConvKernels {
    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> Vec {
        UnsafeRawPointer(p).loadUnaligned(as: Vec.self)
    }

    @inline(__always) static func store(_ v: Vec, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec.self)
    }

    /// dst[0..<n] += src[0..<n]
    @inline(__always) static func add(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, count n: Int) {
        var i = 0
        while i + 16 <= n { store(load(dst + i) + load(src + i), dst + i); i += 16 }
        while i < n { dst[i] += src[i]; i += 1 }
    }

    /// Copies `bias` into each of `rows` rows of length `bias count` starting at `out`.
    static func fillRows(_ out: UnsafeMutablePointer<Float>, rows: Int, with bias: UnsafePointer<Float>, count n: Int) {
        Parallel.forEach(rows, costPerItem: n) { r in (out + r * n).update(from: bias, count: n) }
    }

    // MARK: Choice of path

    /// Which implementation convolutions run on: `automatic` chooses per shape
    /// (`usesPrimitive`); the other two force one path where it can run, for
    /// the tests that compare the paths and for timing them against each other.
    /// The environment variable PATCHWORK_CONV_PATH (automatic, im2col, onednn)
    /// sets it for a whole run, e.g. to time a model on both paths.
    enum Path: String { case automatic, im2colGemm = "im2col", primitive = "onednn" }
    static let defaultPath = Path.automatic
    nonisolated(unsafe) static var path: Path = {
        guard let value = ProcessInfo.processInfo.environment["PATCHWORK_CONV_PATH"] else { return defaultPath }
        guard let path = Path(rawValue: value) else { fail("conv2d", EngineEnvironment.problem ?? value) }
        return path
    }()

    /// Whether `pass` on `geo` runs on oneDNN's convolution primitive
    /// (`DnnlConv`) rather than on the loops below; the primitive still falls
    /// back to them where oneDNN has no fast implementation.
    ///
    /// Measured (docs/PERFORMANCE.md, "oneDNN convolution primitives"; batch 64,
    /// 32x32 inputs, one thread, fastest of 9 interleaved runs): the primitive
    /// is 1.2-3x faster for every forward pass, every depthwise pass and every
    /// weight gradient of a stem, 1.1-1.5x for the input gradient once the
    /// convolution has 32 or more input channels, and level (0.92-1.2x) for the
    /// weight gradient of the other convolutions. Two exceptions keep the old path:
    /// - pointwise (1x1, stride 1, no padding) convolutions are one GEMM already;
    /// - the input gradient with few input channels (stems on 3 channels: 0.5-0.7x,
    ///   oneDNN's backward-data kernel blocks over input channels); training
    ///   never asks for it, as images need no gradient.
    /// Under `Precision.bf16` the same choice holds, with bf16 primitives where
    /// `DnnlConv.runsInBF16`.
    static func usesPrimitive(_ pass: DnnlConv.Pass, _ geo: ConvGeometry) -> Bool {
        switch path {
        case .im2colGemm: return false
        case .primitive: return true
        case .automatic:
            if geo.isPointwise { return false }
            if pass == .inputGradient && geo.groups == 1 && geo.inChannels < 16 { return false }
            return true
        }
    }

    // MARK: im2col / col2im

    /// Patch matrix of output rows `rows` of image `b`: row (i − rows.lowerBound)·Wo + j
    /// holds [groups, kH, kW, C/groups] input values (zeros in the padding).
    static func im2col(_ x: UnsafePointer<Float>, image b: Int, rows: Range<Int>,
                       into col: UnsafeMutablePointer<Float>, _ geo: ConvGeometry) {
        let c = geo.inChannels, w = geo.width, h = geo.height, wo = geo.outW
        let kh = geo.kernelH, kw = geo.kernelW, groups = geo.groups, cg = geo.groupIn
        let rowLength = geo.patchRow, patch = geo.patch
        let sh = geo.strideH, sw = geo.strideW, ph = geo.padH, pw = geo.padW, dh = geo.dilationH, dw = geo.dilationW
        let image = x + b * h * w * c
        let first = rows.lowerBound
        // Without groups and with undilated columns, a kernel row's taps read
        // kW·C consecutive input floats into kW·C consecutive patch floats.
        let rowCopies = groups == 1 && dw == 1
        Parallel.forEach(rows.count * wo, costPerItem: rowLength) { idx in
            let i = first + idx / wo, j = idx % wo
            let dst = col + idx * rowLength
            let qr = convTapRange(j, stride: sw, pad: pw, dilation: dw, kernel: kw, size: w)
            for p in 0..<kh {
                let ih = i * sh - ph + p * dh
                if ih < 0 || ih >= h {
                    for g in 0..<groups { (dst + g * patch + p * kw * cg).update(repeating: 0, count: kw * cg) }
                    continue
                }
                let src = image + (ih * w + j * sw - pw) * c  // column of tap 0 (may lie in the padding)
                if rowCopies {
                    let d = dst + p * kw * c
                    d.update(repeating: 0, count: qr.lowerBound * c)
                    (d + qr.lowerBound * c).update(from: src + qr.lowerBound * c, count: qr.count * c)
                    (d + qr.upperBound * c).update(repeating: 0, count: (kw - qr.upperBound) * c)
                    continue
                }
                for q in 0..<kw {
                    let tap = p * kw + q
                    if qr.contains(q) {
                        let s = src + q * dw * c
                        if groups == 1 {
                            (dst + tap * c).update(from: s, count: c)
                        } else {
                            for g in 0..<groups { (dst + g * patch + tap * cg).update(from: s + g * cg, count: cg) }
                        }
                    } else if groups == 1 {
                        (dst + tap * c).update(repeating: 0, count: c)
                    } else {
                        for g in 0..<groups { (dst + g * patch + tap * cg).update(repeating: 0, count: cg) }
                    }
                }
            }
        }
    }

    /// Adds the patch-matrix gradient of output rows `rows` into image `b` of dx.
    /// Written as a gather per input row, so rows split over threads never collide.
    static func col2imAdd(_ dcol: UnsafePointer<Float>, rows: Range<Int>, image b: Int,
                          into dx: UnsafeMutablePointer<Float>, _ geo: ConvGeometry) {
        let c = geo.inChannels, w = geo.width, h = geo.height, wo = geo.outW
        let kh = geo.kernelH, kw = geo.kernelW, groups = geo.groups, cg = geo.groupIn
        let rowLength = geo.patchRow, patch = geo.patch
        let sh = geo.strideH, sw = geo.strideW, ph = geo.padH, pw = geo.padW, dh = geo.dilationH, dw = geo.dilationW
        let image = dx + b * h * w * c
        let first = rows.lowerBound
        let yLo = Swift.max(0, rows.lowerBound * sh - ph)
        let yHi = Swift.min(h, (rows.upperBound - 1) * sh - ph + (kh - 1) * dh + 1)
        if yLo >= yHi { return }
        Parallel.forEach(yHi - yLo, costPerItem: w * c * kh * kw / (sh * sw) + 1) { yy in
            let y = yLo + yy
            for p in 0..<kh {
                let u = y + ph - p * dh
                if u < 0 || u % sh != 0 { continue }
                let i = u / sh
                if i < rows.lowerBound || i >= rows.upperBound { continue }
                for q in 0..<kw {
                    let tap = p * kw + q
                    let off = q * dw - pw  // iw = j·sw + off
                    let jr = convTapRange(0, stride: 0, pad: -off, dilation: sw, kernel: wo, size: w)
                    for j in jr {
                        let iw = j * sw + off
                        let dst = image + (y * w + iw) * c
                        let src = dcol + ((i - first) * wo + j) * rowLength
                        if groups == 1 {
                            add(src + tap * c, into: dst, count: c)
                        } else {
                            for g in 0..<groups { add(src + g * patch + tap * cg, into: dst + g * cg, count: cg) }
                        }
                    }
                }
            }
        }
    }

    // MARK: Forward

    /// out = conv(x, w) + bias, any path.
    static func forward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                        _ out: UnsafeMutablePointer<Float>, _ geo: ConvGeometry) {
        if geo.batch == 0 || geo.outChannels == 0 { return }
        if usesPrimitive(.forward, geo), let built = DnnlConv.primitive(.forward, geo, hasBias: bias != nil, bf16: DnnlConv.runsInBF16(geo)) {
            DnnlConv.forward(built, x, w, bias: bias, out, geo)
        } else if geo.isDepthwise {
            forwardDepthwise(x, w, bias: bias, out, geo)
        } else if geo.isPointwise {
            forwardPointwise(x, w, bias: bias, out, geo)
        } else {
            forwardGeneral(x, w, bias: bias, out, geo)
        }
    }

    static func forwardPointwise(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                 _ out: UnsafeMutablePointer<Float>, _ geo: ConvGeometry) {
        let m = geo.batch * geo.height * geo.width, o = geo.outChannels, og = geo.groupOut, cg = geo.groupIn
        if let bias { fillRows(out, rows: m, with: bias, count: o) }
        for g in 0..<geo.groups {
            Gemm.sgemm(transA: false, transB: true, m: m, n: og, k: cg, a: x + g * cg, lda: geo.inChannels,
                       b: w + g * og * cg, ldb: cg, beta: bias == nil ? 0 : 1, c: out + g * og, ldc: o)
        }
    }

    static func forwardGeneral(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                               _ out: UnsafeMutablePointer<Float>, _ geo: ConvGeometry) {
        let band = geo.bandRows, ho = geo.outH, wo = geo.outW, o = geo.outChannels
        let og = geo.groupOut, patch = geo.patch, rowLength = geo.patchRow
        Parallel.forChunks(geo.batch, costPerItem: ho * wo * rowLength * og) { images in
            let scratch = TensorStorage(count: band * wo * rowLength)
            withExtendedLifetime(scratch) {
                let col = scratch.pointer
                for b in images {
                    var i0 = 0
                    while i0 < ho {
                        let i1 = Swift.min(ho, i0 + band)
                        im2col(x, image: b, rows: i0..<i1, into: col, geo)
                        let m = (i1 - i0) * wo
                        let c = out + (b * ho + i0) * wo * o
                        if let bias { fillRows(c, rows: m, with: bias, count: o) }
                        for g in 0..<geo.groups {
                            Gemm.sgemm(transA: false, transB: true, m: m, n: og, k: patch, a: col + g * patch, lda: rowLength,
                                       b: w + g * og * patch, ldb: patch, beta: bias == nil ? 0 : 1, c: c + g * og, ldc: o)
                        }
                        i0 = i1
                    }
                }
            }
        }
    }

    /// Weights [C, kH, kW, 1] as [kH·kW, C], so a tap's weights are contiguous over channels.
    static func depthwiseTapMajor(_ w: UnsafePointer<Float>, _ geo: ConvGeometry) -> TensorStorage {
        let taps = geo.kernelH * geo.kernelW, c = geo.inChannels
        let wt = TensorStorage(count: taps * c)
        for ch in 0..<c { for t in 0..<taps { wt.pointer[t * c + ch] = w[ch * taps + t] } }
        return wt
    }

    static func forwardDepthwise(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                 _ out: UnsafeMutablePointer<Float>, _ geo: ConvGeometry) {
        let wt = depthwiseTapMajor(w, geo)
        withExtendedLifetime(wt) {
            depthwiseCorrelate(x, inH: geo.height, inW: geo.width, wt.pointer, kernel: (geo.kernelH, geo.kernelW), bias: bias,
                               out, outH: geo.outH, outW: geo.outW, batch: geo.batch, channels: geo.inChannels,
                               stride: geo.stride, pad: geo.padding, dilation: geo.dilation)
        }
    }

    /// Depthwise correlation, vectorised over channels:
    /// out[b, i, j, c] = bias[c] + Σ wt[p·kW + q, c] · x[b, i·sh − ph + p·dh, j·sw − pw + q·dw, c]
    /// over the taps inside the input. `pad` may be negative (the stride-1 input gradient uses that).
    static func depthwiseCorrelate(_ x: UnsafePointer<Float>, inH h: Int, inW wd: Int, _ wt: UnsafePointer<Float>,
                                   kernel: (Int, Int), bias: UnsafePointer<Float>?, _ out: UnsafeMutablePointer<Float>,
                                   outH ho: Int, outW wo: Int, batch: Int, channels c: Int,
                                   stride: (Int, Int), pad: (Int, Int), dilation: (Int, Int)) {
        let (kh, kw) = kernel, (sh, sw) = stride, (ph, pw) = pad, (dh, dw) = dilation
        // Output columns whose whole kernel row lies inside the input.
        let lastStart = wd - 1 - (kw - 1) * dw + pw
        let interiorStart = Swift.min(wo, pw <= 0 ? 0 : (pw + sw - 1) / sw)
        let interiorEnd = Swift.max(interiorStart, lastStart < 0 ? 0 : Swift.min(wo, lastStart / sw + 1))
        let vectorEnd = c & ~15
        Parallel.forEach(batch * ho, costPerItem: wo * c * kh * kw) { r in
            let b = r / ho, i = r % ho
            let pr = convTapRange(i, stride: sh, pad: ph, dilation: dh, kernel: kh, size: h)
            let outRow = out + r * wo * c
            let rowBase = x + (b * h + i * sh - ph) * wd * c  // input row of tap 0 (only offsets of taps in pr are read)
            // Scalar channels from `first` on, for output column j (any column).
            @inline(__always) func scalarChannels(_ j: Int, from first: Int) {
                let qr = convTapRange(j, stride: sw, pad: pw, dilation: dw, kernel: kw, size: wd)
                let x0 = rowBase + (j * sw - pw) * c
                for ch in first..<c {
                    var acc: Float = bias.map { $0[ch] } ?? 0
                    for p in pr {
                        for q in qr { acc += x0[(p * dh * wd + q * dw) * c + ch] * wt[(p * kw + q) * c + ch] }
                    }
                    outRow[j * c + ch] = acc
                }
            }
            // One output column, any position.
            func pixel(_ j: Int) {
                let qr = convTapRange(j, stride: sw, pad: pw, dilation: dw, kernel: kw, size: wd)
                let x0 = rowBase + (j * sw - pw) * c
                var ch = 0
                while ch < vectorEnd {
                    var acc = bias.map { load($0 + ch) } ?? Vec(repeating: 0)
                    for p in pr {
                        let xr = x0 + p * dh * wd * c + ch, wr = wt + p * kw * c + ch
                        for q in qr { acc += load(xr + q * dw * c) * load(wr + q * c) }
                    }
                    store(acc, outRow + j * c + ch)
                    ch += 16
                }
                if vectorEnd < c { scalarChannels(j, from: vectorEnd) }
            }
            var j = 0
            while j < interiorStart { pixel(j); j += 1 }
            // Inside the input, four columns at a time share each weight load.
            let step = sw * c
            while j + 4 <= interiorEnd {
                let x0 = rowBase + (j * sw - pw) * c
                let dst = outRow + j * c
                var ch = 0
                while ch < vectorEnd {
                    var a0 = bias.map { load($0 + ch) } ?? Vec(repeating: 0)
                    var a1 = a0, a2 = a0, a3 = a0
                    for p in pr {
                        let xr = x0 + p * dh * wd * c + ch, wr = wt + p * kw * c + ch
                        for q in 0..<kw {
                            let wv = load(wr + q * c)
                            let xq = xr + q * dw * c
                            a0 += load(xq) * wv
                            a1 += load(xq + step) * wv
                            a2 += load(xq + 2 * step) * wv
                            a3 += load(xq + 3 * step) * wv
                        }
                    }
                    store(a0, dst + ch); store(a1, dst + c + ch); store(a2, dst + 2 * c + ch); store(a3, dst + 3 * c + ch)
                    ch += 16
                }
                if vectorEnd < c { for t in 0..<4 { scalarChannels(j + t, from: vectorEnd) } }
                j += 4
            }
            while j < wo { pixel(j); j += 1 }
        }
    }

    // MARK: Input gradient (transposed convolution)

    /// dx = conv2d's input gradient for output gradient g.
    static func inputGradient(_ g: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                              _ dx: UnsafeMutablePointer<Float>, _ geo: ConvGeometry) {
        let count = geo.batch * geo.height * geo.width * geo.inChannels
        if count == 0 { return }
        if geo.outChannels == 0 { dx.update(repeating: 0, count: count); return }
        if usesPrimitive(.inputGradient, geo), let built = DnnlConv.primitive(.inputGradient, geo, bf16: DnnlConv.runsInBF16(geo)) {
            DnnlConv.inputGradient(built, g, w, dx, geo)
        } else if geo.isDepthwise {
            inputGradientDepthwise(g, w, dx, geo)
        } else if geo.isPointwise {
            let m = geo.batch * geo.height * geo.width, og = geo.groupOut, cg = geo.groupIn
            for grp in 0..<geo.groups {
                Gemm.sgemm(transA: false, transB: false, m: m, n: cg, k: og, a: g + grp * og, lda: geo.outChannels,
                           b: w + grp * og * cg, ldb: cg, c: dx + grp * cg, ldc: geo.inChannels)
            }
        } else {
            Kernels.fill(dx, count: count, value: 0)
            inputGradientGeneral(g, w, dx, geo)
        }
    }

    static func inputGradientGeneral(_ g: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                                     _ dx: UnsafeMutablePointer<Float>, _ geo: ConvGeometry) {
        let band = geo.bandRows, ho = geo.outH, wo = geo.outW, o = geo.outChannels
        let og = geo.groupOut, patch = geo.patch, rowLength = geo.patchRow
        Parallel.forChunks(geo.batch, costPerItem: ho * wo * rowLength * og) { images in
            let scratch = TensorStorage(count: band * wo * rowLength)
            withExtendedLifetime(scratch) {
                let dcol = scratch.pointer
                for b in images {
                    var i0 = 0
                    while i0 < ho {
                        let i1 = Swift.min(ho, i0 + band)
                        let m = (i1 - i0) * wo
                        let gb = g + (b * ho + i0) * wo * o
                        for grp in 0..<geo.groups {
                            Gemm.sgemm(transA: false, transB: false, m: m, n: patch, k: og, a: gb + grp * og, lda: o,
                                       b: w + grp * og * patch, ldb: patch, c: dcol + grp * patch, ldc: rowLength)
                        }
                        col2imAdd(dcol, rows: i0..<i1, image: b, into: dx, geo)
                        i0 = i1
                    }
                }
            }
        }
    }

    static func inputGradientDepthwise(_ g: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                                       _ dx: UnsafeMutablePointer<Float>, _ geo: ConvGeometry) {
        if geo.strideH == 1 && geo.strideW == 1 {
            // Stride 1: a depthwise correlation of g with the flipped kernel,
            // padded by span − 1 − padding (negative when the padding is larger).
            let taps = geo.kernelH * geo.kernelW, c = geo.inChannels
            let wt = depthwiseTapMajor(w, geo)
            let flipped = TensorStorage(count: taps * c)
            withExtendedLifetime((wt, flipped)) {
                for t in 0..<taps { (flipped.pointer + (taps - 1 - t) * c).update(from: wt.pointer + t * c, count: c) }
                depthwiseCorrelate(g, inH: geo.outH, inW: geo.outW, flipped.pointer, kernel: (geo.kernelH, geo.kernelW),
                                   bias: nil, dx, outH: geo.height, outW: geo.width, batch: geo.batch, channels: c,
                                   stride: (1, 1),
                                   pad: ((geo.kernelH - 1) * geo.dilationH - geo.padH, (geo.kernelW - 1) * geo.dilationW - geo.padW),
                                   dilation: geo.dilation)
            }
            return
        }
        let c = geo.inChannels, h = geo.height, wd = geo.width, ho = geo.outH, wo = geo.outW
        let kh = geo.kernelH, kw = geo.kernelW
        let rowTaps = TransposedTaps(size: h, outSize: ho, stride: geo.strideH, pad: geo.padH, dilation: geo.dilationH, kernel: kh)
        let colTaps = TransposedTaps(size: wd, outSize: wo, stride: geo.strideW, pad: geo.padW, dilation: geo.dilationW, kernel: kw)
        let wtStorage = depthwiseTapMajor(w, geo)
        withExtendedLifetime(wtStorage) {
            let wt = UnsafePointer(wtStorage.pointer)
            rowTaps.start.withUnsafeBufferPointer { rs in rowTaps.tap.withUnsafeBufferPointer { rt in rowTaps.output.withUnsafeBufferPointer { ro in
            colTaps.start.withUnsafeBufferPointer { cs in colTaps.tap.withUnsafeBufferPointer { ct in colTaps.output.withUnsafeBufferPointer { co in
                let cost = wd * c * Swift.max(1, kh * kw / (geo.strideH * geo.strideW))
                Parallel.forEach(geo.batch * h, costPerItem: cost) { r in
                    let b = r / h, y = r % h
                    let gImage = g + b * ho * wo * c
                    for xx in 0..<wd {
                        let dst = dx + (r * wd + xx) * c
                        var ch = 0
                        while ch + 16 <= c {
                            var acc = Vec(repeating: 0)
                            for a in rs[y]..<rs[y + 1] {
                                let gr = gImage + ro[a] * wo * c + ch, wr = wt + rt[a] * kw * c + ch
                                for e in cs[xx]..<cs[xx + 1] { acc += load(gr + co[e] * c) * load(wr + ct[e] * c) }
                            }
                            store(acc, dst + ch)
                            ch += 16
                        }
                        while ch < c {
                            var acc: Float = 0
                            for a in rs[y]..<rs[y + 1] {
                                for e in cs[xx]..<cs[xx + 1] {
                                    acc += gImage[(ro[a] * wo + co[e]) * c + ch] * wt[(rt[a] * kw + ct[e]) * c + ch]
                                }
                            }
                            dst[ch] = acc
                            ch += 1
                        }
                    }
                }
            }}}}}}
        }
    }

    // MARK: Weight gradient

    /// dw = conv2d's weight gradient for input x and output gradient g.
    static func weightGradient(_ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>,
                               _ dw: UnsafeMutablePointer<Float>, _ geo: ConvGeometry) {
        let count = geo.outChannels * geo.patch
        if count == 0 { return }
        if geo.batch == 0 || geo.outH * geo.outW == 0 { dw.update(repeating: 0, count: count); return }
        if usesPrimitive(.weightGradient, geo), let built = DnnlConv.primitive(.weightGradient, geo, bf16: DnnlConv.runsInBF16(geo)) {
            DnnlConv.weightGradient(built, x, g, dw, geo)
        } else if geo.isDepthwise {
            weightGradientDepthwise(x, g, dw, geo)
        } else if geo.isPointwise {
            let m = geo.batch * geo.height * geo.width, og = geo.groupOut, cg = geo.groupIn
            for grp in 0..<geo.groups {
                Gemm.sgemm(transA: true, transB: false, m: og, n: cg, k: m, a: g + grp * og, lda: geo.outChannels,
                           b: x + grp * cg, ldb: geo.inChannels, c: dw + grp * og * cg, ldc: cg)
            }
        } else {
            weightGradientGeneral(x, g, dw, geo)
        }
    }

    /// Splits `0..<count` into at most `Parallel.threadCount` pieces and runs
    /// `body(piece, range, accumulator)`, each piece summing into its own zeroed
    /// buffer of `size` floats; the buffers are then added into `result`.
    static func reduceOverPieces(_ count: Int, costPerItem: Int, size: Int, into result: UnsafeMutablePointer<Float>,
                                 _ body: (Range<Int>, UnsafeMutablePointer<Float>) -> Void) {
        let pieces = count * costPerItem >= Parallel.minimumWorkPerThread * 2 ? Swift.min(Parallel.threadCount, count) : 1
        if pieces <= 1 {
            result.update(repeating: 0, count: size)
            body(0..<count, result)
            return
        }
        let partials = TensorStorage(count: (pieces - 1) * size)
        withExtendedLifetime(partials) {
            let extra = partials.pointer
            Parallel.forEach(pieces, costPerItem: Parallel.minimumWorkPerThread) { t in
                let acc = t == 0 ? result : extra + (t - 1) * size
                acc.update(repeating: 0, count: size)
                body(count * t / pieces ..< count * (t + 1) / pieces, acc)
            }
            for t in 1..<pieces { add(extra + (t - 1) * size, into: result, count: size) }
        }
    }

    static func weightGradientGeneral(_ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>,
                                      _ dw: UnsafeMutablePointer<Float>, _ geo: ConvGeometry) {
        let band = geo.bandRows, ho = geo.outH, wo = geo.outW, o = geo.outChannels
        let og = geo.groupOut, patch = geo.patch, rowLength = geo.patchRow
        // One image: a single piece whose im2col and GEMMs use all threads.
        let images = geo.batch
        reduceOverPieces(images, costPerItem: images > 1 ? ho * wo * rowLength * og : 0, size: o * patch, into: dw) { range, acc in
            let scratch = TensorStorage(count: band * wo * rowLength)
            withExtendedLifetime(scratch) {
                let col = scratch.pointer
                for b in range {
                    var i0 = 0
                    while i0 < ho {
                        let i1 = Swift.min(ho, i0 + band)
                        im2col(x, image: b, rows: i0..<i1, into: col, geo)
                        let m = (i1 - i0) * wo
                        let gb = g + (b * ho + i0) * wo * o
                        for grp in 0..<geo.groups {
                            Gemm.sgemm(transA: true, transB: false, m: og, n: patch, k: m, a: gb + grp * og, lda: o,
                                       b: col + grp * patch, ldb: rowLength, beta: 1, c: acc + grp * og * patch, ldc: patch)
                        }
                        i0 = i1
                    }
                }
            }
        }
    }

    static func weightGradientDepthwise(_ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>,
                                        _ dw: UnsafeMutablePointer<Float>, _ geo: ConvGeometry) {
        let c = geo.inChannels, h = geo.height, wd = geo.width, ho = geo.outH, wo = geo.outW
        let kh = geo.kernelH, kw = geo.kernelW, taps = kh * kw
        let sh = geo.strideH, sw = geo.strideW, ph = geo.padH, pw = geo.padW, dh = geo.dilationH, dwl = geo.dilationW
        let vectorEnd = c & ~15
        // Accumulate tap-major [kH·kW, C], then transpose to [C, kH, kW, 1].
        let tapMajor = TensorStorage(count: taps * c)
        withExtendedLifetime(tapMajor) {
            reduceOverPieces(geo.batch * ho, costPerItem: wo * c * taps, size: taps * c, into: tapMajor.pointer) { rows, acc in
                for r in rows {
                    let b = r / ho, i = r % ho
                    let gRow = g + r * wo * c
                    for p in convTapRange(i, stride: sh, pad: ph, dilation: dh, kernel: kh, size: h) {
                        let xRow = x + (b * h + i * sh - ph + p * dh) * wd * c
                        for q in 0..<kw {
                            // Output columns j whose tap q reads column j·sw − pw + q·dw inside the input.
                            let off = q * dwl - pw
                            let jr = convTapRange(0, stride: 0, pad: -off, dilation: sw, kernel: wo, size: wd)
                            if jr.isEmpty { continue }
                            let dst = acc + (p * kw + q) * c
                            let xs = xRow + off * c, step = sw * c
                            var ch = 0
                            while ch < vectorEnd {
                                var a0 = Vec(repeating: 0), a1 = a0, a2 = a0, a3 = a0
                                var j = jr.lowerBound
                                while j + 4 <= jr.upperBound {
                                    let gp = gRow + j * c + ch, xp = xs + j * step + ch
                                    a0 += load(gp) * load(xp)
                                    a1 += load(gp + c) * load(xp + step)
                                    a2 += load(gp + 2 * c) * load(xp + 2 * step)
                                    a3 += load(gp + 3 * c) * load(xp + 3 * step)
                                    j += 4
                                }
                                while j < jr.upperBound { a0 += load(gRow + j * c + ch) * load(xs + j * step + ch); j += 1 }
                                store(load(dst + ch) + ((a0 + a1) + (a2 + a3)), dst + ch)
                                ch += 16
                            }
                            while ch < c {
                                var a: Float = 0
                                for j in jr { a += gRow[j * c + ch] * xs[j * step + ch] }
                                dst[ch] += a
                                ch += 1
                            }
                        }
                    }
                }
            }
            for ch in 0..<c { for t in 0..<taps { dw[ch * taps + t] = tapMajor.pointer[t * c + ch] } }
        }
    }
}
