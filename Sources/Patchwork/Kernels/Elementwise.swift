import CPatchworkKernels

/// Element-wise kernels: flat SIMD loops for contiguous data, strided row
/// loops for views and broadcasting, split over threads by `Parallel`.
public enum Kernels {
    /// The SIMD path CPatchworkKernels chose for this CPU: "avx512", "avx2" or "baseline".
    public static var simdPath: String { String(cString: pw_kernel_isa()) }

    static func fill(_ p: UnsafeMutablePointer<Float>, count: Int, value: Float) {
        Parallel.forChunks(count) { r in
            (p + r.lowerBound).update(repeating: value, count: r.count)
        }
    }

    /// y[i] = F(x[i]) over `count` contiguous floats.
    ///
    /// Element functions are types, not closures: a closure called through the
    /// thread pool's function pointer is not inlined, and Swift then passes
    /// SIMD16 values in 128-bit pieces (measured: 10–25× slower). A generic
    /// parameter is specialised per function, so the body is inlined into the loop.
    @inline(__always)
    static func mapFlat<F: UnaryFunction>(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int,
                                          _ f: F.Type) {
        if F.cKernel != 0 {
            // A compute-bound function: the C kernel with the SIMD width of the running CPU.
            Parallel.forChunks(count, costPerItem: F.cost) { r in
                pw_unary(F.cKernel, x + r.lowerBound, y + r.lowerBound, r.count)
            }
            return
        }
        Parallel.forChunks(count, costPerItem: F.cost) { r in
            var i = r.lowerBound
            while i + 16 <= r.upperBound {
                let a = UnsafeRawPointer(x + i).loadUnaligned(as: Vec.self)
                UnsafeMutableRawPointer(y + i).storeBytes(of: F.apply(a), as: Vec.self)
                i += 16
            }
            if i < r.upperBound {
                // The tail through the same vector code, so every element computes alike.
                var a = Vec(repeating: 0)
                for j in i..<r.upperBound { a[j - i] = x[j] }
                let b = F.apply(a)
                for j in i..<r.upperBound { y[j] = b[j - i] }
            }
        }
    }

    /// A new contiguous tensor F(x).
    @inline(__always)
    static func map<F: UnaryFunction>(_ x: Tensor, _ f: F.Type) -> Tensor {
        let src = x.contiguous(recordingGrad: false)
        let out = Tensor(uninitializedShape: x.shape)
        mapFlat(src.base, out.base, count: out.count, f)
        return out
    }

    /// A new contiguous tensor F(a, b) with broadcasting.
    @inline(__always)
    static func zip<F: BinaryFunction>(_ a: Tensor, _ b: Tensor, op: String, _ f: F.Type) -> Tensor {
        if a.shape == b.shape && a.isContiguous && b.isContiguous {
            let out = Tensor(uninitializedShape: a.shape)
            let pa = a.base, pb = b.base, po = out.base
            if F.cKernel != 0 {
                Parallel.forChunks(out.count) { r in
                    pw_pullback(F.cKernel, pa + r.lowerBound, pb + r.lowerBound, po + r.lowerBound, r.count)
                }
                return out
            }
            Parallel.forChunks(out.count) { r in
                var i = r.lowerBound
                while i + 16 <= r.upperBound {
                    let x = UnsafeRawPointer(pa + i).loadUnaligned(as: Vec.self)
                    let y = UnsafeRawPointer(pb + i).loadUnaligned(as: Vec.self)
                    UnsafeMutableRawPointer(po + i).storeBytes(of: F.apply(x, y), as: Vec.self)
                    i += 16
                }
                while i < r.upperBound { po[i] = F.scalar(pa[i], pb[i]); i += 1 }
            }
            return out
        }
        if a.isContiguous && b.isContiguous {
            if let out = zipBroadcastFast(a, b, F.self, swapped: false) { return out }
            if let out = zipBroadcastFast(b, a, F.self, swapped: true) { return out }
        }
        let shape = broadcastShapes(a.shape, b.shape, op: op)
        let out = Tensor(uninitializedShape: shape)
        let layout = RowLayout(shape: shape, strides: [
            Tensor.contiguousStrides(shape),
            broadcastStrides(a, to: shape),
            broadcastStrides(b, to: shape),
        ])
        let po = out.storage.pointer, pa = a.storage.pointer + a.offset, pb = b.storage.pointer + b.offset
        layout.forEachRow { o, n, inner in
            let dst = po + o[0], x = pa + o[1], y = pb + o[2]
            let sx = inner[1], sy = inner[2]
            var i = 0
            if sx == 1 && sy == 1 {
                while i + 16 <= n {
                    let u = UnsafeRawPointer(x + i).loadUnaligned(as: Vec.self)
                    let w = UnsafeRawPointer(y + i).loadUnaligned(as: Vec.self)
                    UnsafeMutableRawPointer(dst + i).storeBytes(of: F.apply(u, w), as: Vec.self)
                    i += 16
                }
            } else if sx == 0 && sy == 1 {
                let u = Vec(repeating: x[0])
                while i + 16 <= n {
                    let w = UnsafeRawPointer(y + i).loadUnaligned(as: Vec.self)
                    UnsafeMutableRawPointer(dst + i).storeBytes(of: F.apply(u, w), as: Vec.self)
                    i += 16
                }
            } else if sx == 1 && sy == 0 {
                let w = Vec(repeating: y[0])
                while i + 16 <= n {
                    let u = UnsafeRawPointer(x + i).loadUnaligned(as: Vec.self)
                    UnsafeMutableRawPointer(dst + i).storeBytes(of: F.apply(u, w), as: Vec.self)
                    i += 16
                }
            }
            while i < n { dst[i] = F.scalar(x[i * sx], y[i * sy]); i += 1 }
        }
        return out
    }

    /// The common broadcasts of contiguous tensors without the general row
    /// walker: `small` is a scalar, repeats along the leading dimensions of
    /// `big` (a bias or a per-channel scale: [C] against [B, H, W, C]), or
    /// holds one value per row of `big` (a statistic kept with keepDims:
    /// [R, 1] against [R, C]). Returns nil for any other shape pair.
    /// With `swapped`, computes F(small, big) instead of F(big, small).
    @inline(__always)
    static func zipBroadcastFast<F: BinaryFunction>(_ big: Tensor, _ small: Tensor, _ f: F.Type, swapped: Bool) -> Tensor? {
        let total = big.count, n = small.count
        guard n > 0, total >= n, big.rank >= small.rank else { return nil }
        let lead = big.rank - small.rank
        // small's shape with its leading 1s dropped
        let core = Array(small.shape.drop(while: { $0 == 1 }))
        let perRowScalar: Bool
        if n == 1 || core == Array(big.shape.suffix(core.count)) {
            perRowScalar = false      // small repeats every n elements of big
        } else {
            // small = big's leading dimensions followed by trailing 1s
            let padded = [Int](repeating: 1, count: lead) + small.shape
            guard let firstOne = padded.lastIndex(where: { $0 != 1 }).map({ $0 + 1 }),
                  Array(padded[..<firstOne]) == Array(big.shape[..<firstOne]),
                  padded[firstOne...].allSatisfy({ $0 == 1 }) else { return nil }
            perRowScalar = true       // one small value per row of `total / n` elements
        }
        let out = Tensor(uninitializedShape: big.shape)
        let pb = big.base, ps = small.base, po = out.base
        if n == 1 {
            // A scalar: one flat pass over big.
            let v = Vec(repeating: ps[0]), scalar = ps[0]
            Parallel.forChunks(total) { range in
                var i = range.lowerBound
                while i + 16 <= range.upperBound {
                    let x = UnsafeRawPointer(pb + i).loadUnaligned(as: Vec.self)
                    UnsafeMutableRawPointer(po + i).storeBytes(of: swapped ? F.apply(v, x) : F.apply(x, v), as: Vec.self)
                    i += 16
                }
                while i < range.upperBound { po[i] = swapped ? F.scalar(scalar, pb[i]) : F.scalar(pb[i], scalar); i += 1 }
            }
            return out
        }
        let row = perRowScalar ? total / n : n
        let rows = total / row
        Parallel.forChunks(rows, costPerItem: row) { range in
            for r in range {
                let src = pb + r * row, dst = po + r * row
                var i = 0
                if perRowScalar {
                    let v = Vec(repeating: ps[r])
                    while i + 16 <= row {
                        let x = UnsafeRawPointer(src + i).loadUnaligned(as: Vec.self)
                        UnsafeMutableRawPointer(dst + i).storeBytes(of: swapped ? F.apply(v, x) : F.apply(x, v), as: Vec.self)
                        i += 16
                    }
                    while i < row { dst[i] = swapped ? F.scalar(ps[r], src[i]) : F.scalar(src[i], ps[r]); i += 1 }
                } else {
                    while i + 16 <= row {
                        let x = UnsafeRawPointer(src + i).loadUnaligned(as: Vec.self)
                        let y = UnsafeRawPointer(ps + i).loadUnaligned(as: Vec.self)
                        UnsafeMutableRawPointer(dst + i).storeBytes(of: swapped ? F.apply(y, x) : F.apply(x, y), as: Vec.self)
                        i += 16
                    }
                    while i < row { dst[i] = swapped ? F.scalar(ps[i], src[i]) : F.scalar(src[i], ps[i]); i += 1 }
                }
            }
        }
        return out
    }

    /// Copies any strided tensor into a new contiguous one.
    static func copyToContiguous(_ x: Tensor) -> Tensor {
        let out = Tensor(uninitializedShape: x.shape)
        if x.count > 0 { copy(x, into: out) }
        return out
    }
}

/// An element-wise function of one value, on 16 lanes at a time.
protocol UnaryFunction {
    static func apply(_ x: Vec) -> Vec
    /// Relative cost per element (1 = an add), to decide when threads pay off.
    static var cost: Int { get }
    /// The CPatchworkKernels op (PW_GELU, …) that computes this function on contiguous data with
    /// the running CPU's SIMD width, or 0 for the Swift loop. Set for the compute-bound functions,
    /// which lose 2–2.6× as baseline-x86-64 Swift (docs/PERFORMANCE.md), and for ReLU, whose select
    /// baseline Swift compiles to SSE with its comparison mask widened piece by piece; the other
    /// memory-bound ones stay Swift.
    static var cKernel: Int32 { get }
}

extension UnaryFunction {
    static var cost: Int { 1 }
    static var cKernel: Int32 { 0 }
}

/// An element-wise function of two values, on 16 lanes at a time.
protocol BinaryFunction {
    static func apply(_ x: Vec, _ y: Vec) -> Vec
    /// As UnaryFunction.cKernel, for same-shape contiguous operands (the activation pullbacks).
    static var cKernel: Int32 { get }
}

extension BinaryFunction {
    static var cKernel: Int32 { 0 }

    /// One element through the vector code (for tails and strided rows).
    @inline(__always)
    static func scalar(_ x: Float, _ y: Float) -> Float { apply(Vec(repeating: x), Vec(repeating: y))[0] }
}

/// The shape two shapes broadcast to (NumPy rules), or a clear stop naming the op.
func broadcastShapes(_ a: [Int], _ b: [Int], op: String) -> [Int] {
    let rank = max(a.count, b.count)
    var shape = [Int](repeating: 1, count: rank)
    for i in 0..<rank {
        let da = i < rank - a.count ? 1 : a[i - (rank - a.count)]
        let db = i < rank - b.count ? 1 : b[i - (rank - b.count)]
        if da == db || db == 1 { shape[i] = da } else if da == 1 { shape[i] = db } else {
            fail(op, "shapes \(a) and \(b) cannot be broadcast together (dimension \(i): \(da) vs \(db))")
        }
    }
    return shape
}

/// Strides that read `x` as if expanded to `shape` (0 along broadcast dimensions).
func broadcastStrides(_ x: Tensor, to shape: [Int]) -> [Int] {
    let lead = shape.count - x.rank
    var strides = [Int](repeating: 0, count: shape.count)
    for i in 0..<x.rank where x.shape[i] != 1 || shape[lead + i] == 1 {
        strides[lead + i] = x.shape[i] == 1 ? 0 : x.strides[i]
    }
    return strides
}

/// Iterates an n-d index space as rows of its last (coalesced) dimension,
/// giving each operand's offset at the start of the row. Dimensions of size 1
/// are dropped and adjacent dimensions that are contiguous for every operand
/// are merged, so most layouts run as a few long rows.
struct RowLayout {
    var outer: [Int] = []           // sizes of the outer dimensions
    var outerStrides: [[Int]] = []  // per operand
    var inner = 1
    var innerStrides: [Int] = []
    let operands: Int

    init(shape: [Int], strides: [[Int]]) {
        operands = strides.count
        var dims: [(size: Int, strides: [Int])] = []
        for d in 0..<shape.count where shape[d] != 1 {
            let s = strides.map { $0[d] }
            if let last = dims.last, (0..<operands).allSatisfy({ last.strides[$0] == s[$0] * shape[d] }) {
                dims[dims.count - 1] = (last.size * shape[d], s)
            } else {
                dims.append((shape[d], s))
            }
        }
        if let last = dims.popLast() {
            inner = last.size
            innerStrides = last.strides
        } else {
            inner = shape.contains(0) ? 0 : 1
            innerStrides = [Int](repeating: 1, count: operands)
        }
        outer = dims.map { $0.size }
        outerStrides = (0..<operands).map { k in dims.map { $0.strides[k] } }
    }

    var rowCount: Int { outer.reduce(1, *) }

    /// body(offsets per operand, row length, inner stride per operand), rows split over threads.
    @inline(__always)
    func forEachRow(_ body: (_ offsets: [Int], _ n: Int, _ innerStrides: [Int]) -> Void) {
        let rows = rowCount
        if inner == 0 || rows == 0 { return }
        let n = inner, innerS = innerStrides, outer = outer, outerStrides = outerStrides, k = operands
        Parallel.forChunks(rows, costPerItem: n) { range in
            // Multi-index of the first row of this chunk, then increment like an odometer.
            var index = [Int](repeating: 0, count: outer.count)
            var rem = range.lowerBound
            for d in stride(from: outer.count - 1, through: 0, by: -1) {
                index[d] = rem % outer[d]; rem /= outer[d]
            }
            var offsets = [Int](repeating: 0, count: k)
            for j in 0..<k { for d in 0..<outer.count { offsets[j] += index[d] * outerStrides[j][d] } }
            for _ in range {
                body(offsets, n, innerS)
                var d = outer.count - 1
                while d >= 0 {
                    index[d] += 1
                    for j in 0..<k { offsets[j] += outerStrides[j][d] }
                    if index[d] < outer[d] { break }
                    for j in 0..<k { offsets[j] -= outerStrides[j][d] * outer[d] }
                    index[d] = 0
                    d -= 1
                }
            }
        }
    }
}
