import Foundation

/// Bilinear sampling at arbitrary points with zero padding (grid_sample).
///
/// A point (ix, iy) in pixel coordinates reads the four pixels around it with
/// weights wx(tx)·wy(ty), wx = (1 - fx, fx). The kernels are generalised to
/// derivatives of the weights with respect to the point: order `a` in x and
/// `b` in y (order 1: wx = (-1, 1); order 2 and above: 0). That single family
/// (gather, its transposed scatter, and the fused grid gradient) expresses
/// every derivative of grid_sample of every order.
struct GridGeometry {
    let batch: Int, height: Int, width: Int, channels: Int
    let points: Int  // sample points per batch item (Ho · Wo)
    let alignCorners: Bool

    /// d(pixel x)/d(grid x) and d(pixel y)/d(grid y).
    var scaleX: Float { alignCorners ? Float(width - 1) / 2 : Float(width) / 2 }
    var scaleY: Float { alignCorners ? Float(height - 1) / 2 : Float(height) / 2 }

    /// PyTorch's grid_sampler_unnormalize.
    @inline(__always)
    func unnormalize(_ g: Float, _ size: Int) -> Float {
        alignCorners ? ((g + 1) / 2) * Float(size - 1) : ((g + 1) * Float(size) - 1) / 2
    }

    /// The top-left pixel and fractions of a grid point, or nil when all four
    /// taps are outside the image (or the point is not finite).
    @inline(__always)
    func cell(_ gx: Float, _ gy: Float) -> (x0: Int, y0: Int, fx: Float, fy: Float)? {
        let ix = unnormalize(gx, width), iy = unnormalize(gy, height)
        guard ix > -2 && ix < Float(width) + 1 && iy > -2 && iy < Float(height) + 1 else { return nil }
        let fx0 = ix.rounded(.down), fy0 = iy.rounded(.down)
        return (Int(fx0), Int(fy0), ix - fx0, iy - fy0)
    }
}

/// Weight of tap t (0 or 1) along one axis, differentiated `order` times.
@inline(__always)
func bilinearWeight(order: Int, fraction f: Float, tap t: Int) -> Float {
    switch order {
    case 0: return t == 0 ? 1 - f : f
    case 1: return t == 0 ? -1 : 1
    default: return 0
    }
}

extension Kernels {
    /// The in-bounds taps of one point: pixel offsets (y·W + x) and weights of derivative order (a, b).
    @inline(__always)
    static func gridTaps(_ geo: GridGeometry, _ gx: Float, _ gy: Float, a: Int, b: Int,
                         _ offsets: inout (Int, Int, Int, Int), _ weights: inout (Float, Float, Float, Float)) -> Int {
        guard let c = geo.cell(gx, gy) else { return 0 }
        var n = 0
        for ty in 0..<2 {
            let y = c.y0 + ty
            if y < 0 || y >= geo.height { continue }
            let wy = bilinearWeight(order: b, fraction: c.fy, tap: ty)
            for tx in 0..<2 {
                let x = c.x0 + tx
                if x < 0 || x >= geo.width { continue }
                let w = bilinearWeight(order: a, fraction: c.fx, tap: tx) * wy
                let o = y * geo.width + x
                switch n {
                case 0: offsets.0 = o; weights.0 = w
                case 1: offsets.1 = o; weights.1 = w
                case 2: offsets.2 = o; weights.2 = w
                default: offsets.3 = o; weights.3 = w
                }
                n += 1
            }
        }
        return n
    }

    /// out[b, p, :] = Σ_taps w · x[b, tap, :]. x [B, H·W, C], grid [B, P, 2], out [B, P, C]; all contiguous.
    static func gridGather(_ x: UnsafePointer<Float>, grid: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                           geometry geo: GridGeometry, a: Int, b: Int) {
        let C = geo.channels, P = geo.points, HW = geo.height * geo.width
        Parallel.forEach(geo.batch * P, costPerItem: 4 * C + 8) { q in
            let xb = x + (q / P) * HW * C, dst = out + q * C
            var offs = (0, 0, 0, 0), ws: (Float, Float, Float, Float) = (0, 0, 0, 0)
            let n = gridTaps(geo, grid[2 * q], grid[2 * q + 1], a: a, b: b, &offs, &ws)
            let p0 = xb + offs.0 * C, p1 = xb + offs.1 * C, p2 = xb + offs.2 * C, p3 = xb + offs.3 * C
            var c = 0
            if n == 4 {
                let w0 = Vec(repeating: ws.0), w1 = Vec(repeating: ws.1), w2 = Vec(repeating: ws.2), w3 = Vec(repeating: ws.3)
                while c + 16 <= C {
                    var acc = w0 * UnsafeRawPointer(p0 + c).loadUnaligned(as: Vec.self)
                    acc += w1 * UnsafeRawPointer(p1 + c).loadUnaligned(as: Vec.self)
                    acc += w2 * UnsafeRawPointer(p2 + c).loadUnaligned(as: Vec.self)
                    acc += w3 * UnsafeRawPointer(p3 + c).loadUnaligned(as: Vec.self)
                    UnsafeMutableRawPointer(dst + c).storeBytes(of: acc, as: Vec.self)
                    c += 16
                }
            }
            while c < C {
                var acc: Float = 0
                if n > 0 { acc += ws.0 * p0[c] }
                if n > 1 { acc += ws.1 * p1[c] }
                if n > 2 { acc += ws.2 * p2[c] }
                if n > 3 { acc += ws.3 * p3[c] }
                dst[c] = acc
                c += 1
            }
        }
    }

    /// The transpose of `gridGather`: out[b, tap, :] += w · g[b, p, :]. out [B, H·W, C] must be zeroed.
    /// Split over batch items and channel blocks, so no two threads write the same element.
    static func gridScatter(_ g: UnsafePointer<Float>, grid: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                            geometry geo: GridGeometry, a: Int, b: Int) {
        let C = geo.channels, P = geo.points, HW = geo.height * geo.width
        let blocks = (C + 15) / 16
        let pieces = geo.batch >= Parallel.threadCount ? 1 : Swift.max(1, Swift.min(Parallel.threadCount, blocks))
        Parallel.forEach(geo.batch * pieces, costPerItem: P * (4 * C / pieces + 8)) { unit in
            let bi = unit / pieces, piece = unit % pieces
            let lo = Swift.min(C, blocks * piece / pieces * 16), hi = Swift.min(C, blocks * (piece + 1) / pieces * 16)
            let ob = out + bi * HW * C + lo
            for p in 0..<P {
                let q = bi * P + p
                var offs = (0, 0, 0, 0), ws: (Float, Float, Float, Float) = (0, 0, 0, 0)
                let n = gridTaps(geo, grid[2 * q], grid[2 * q + 1], a: a, b: b, &offs, &ws)
                let src = g + q * C + lo
                if n > 0 { accumulate(ob + offs.0 * C, src, count: hi - lo, scale: ws.0) }
                if n > 1 { accumulate(ob + offs.1 * C, src, count: hi - lo, scale: ws.1) }
                if n > 2 { accumulate(ob + offs.2 * C, src, count: hi - lo, scale: ws.2) }
                if n > 3 { accumulate(ob + offs.3 * C, src, count: hi - lo, scale: ws.3) }
            }
        }
    }

    /// The gradient with respect to the grid of Σ g · gather_{a,b}(x):
    /// out[b, p] = (sx · Σ_taps w_{a+1,b} ⟨x[tap], g[p]⟩, sy · Σ_taps w_{a,b+1} ⟨x[tap], g[p]⟩).
    static func gridGradient(_ x: UnsafePointer<Float>, grid: UnsafePointer<Float>, _ g: UnsafePointer<Float>,
                             _ out: UnsafeMutablePointer<Float>, geometry geo: GridGeometry, a: Int, b: Int) {
        let C = geo.channels, P = geo.points, HW = geo.height * geo.width, W = geo.width, H = geo.height
        let sx = geo.scaleX, sy = geo.scaleY
        Parallel.forEach(geo.batch * P, costPerItem: 4 * C + 8) { q in
            out[2 * q] = 0; out[2 * q + 1] = 0
            guard let cell = geo.cell(grid[2 * q], grid[2 * q + 1]) else { return }
            let xb = x + (q / P) * HW * C, gp = g + q * C
            var gx: Float = 0, gy: Float = 0
            for ty in 0..<2 {
                let yy = cell.y0 + ty
                if yy < 0 || yy >= H { continue }
                for tx in 0..<2 {
                    let xx = cell.x0 + tx
                    if xx < 0 || xx >= W { continue }
                    let px = xb + (yy * W + xx) * C
                    var acc = Vec(repeating: 0)
                    var c = 0
                    while c + 16 <= C {
                        acc += UnsafeRawPointer(px + c).loadUnaligned(as: Vec.self) * UnsafeRawPointer(gp + c).loadUnaligned(as: Vec.self)
                        c += 16
                    }
                    var dot = acc.sum()
                    while c < C { dot += px[c] * gp[c]; c += 1 }
                    gx += bilinearWeight(order: a + 1, fraction: cell.fx, tap: tx) * bilinearWeight(order: b, fraction: cell.fy, tap: ty) * dot
                    gy += bilinearWeight(order: a, fraction: cell.fx, tap: tx) * bilinearWeight(order: b + 1, fraction: cell.fy, tap: ty) * dot
                }
            }
            out[2 * q] = sx * gx
            out[2 * q + 1] = sy * gy
        }
    }
}
