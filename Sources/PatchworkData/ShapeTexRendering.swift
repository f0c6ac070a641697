import Foundation
import Patchwork

// How a ShapeTex image is drawn. All geometry is in "32-units": the image
// spans [0, 32) on both axes whatever its size in pixels, so a sample drawn
// at 64×64 or 224×224 is the same picture as at 32×32, only sharper.

extension ShapeTex {
    /// The random choices behind one image, drawn in a fixed order from a
    /// `Generator`, so the picture is a pure function of the generator's seed.
    struct Scene {
        var shape: Int?            // nil: texture over the whole image
        var texture: Int?          // nil: a flat-filled silhouette
        // Shape placement: diameter `scale` × 32 centred at (cx, cy), rotated by `angle`.
        var scale: Float, cx: Float, cy: Float, angle: Float
        // Texture frame: rotated by `textureAngle` about the image centre,
        // stretched by `period` (≈ 1), shifted by (ox, oy); ring centre (rx, ry); hash salt.
        var textureAngle: Float, period: Float, ox: Float, oy: Float, rx: Float, ry: Float
        var salt: UInt32
        // Colours: background, texture ink and texture paper (the fill of a silhouette is `paper`).
        var background: SIMD3<Float>, ink: SIMD3<Float>, paper: SIMD3<Float>

        init(shape: Int?, texture: Int?, generator g: Generator) {
            self.shape = shape
            self.texture = texture
            scale = ShapeTex.scaleRange.lowerBound + (ShapeTex.scaleRange.upperBound - ShapeTex.scaleRange.lowerBound) * g.nextUniform()
            let radius = scale * 16
            cx = radius + (32 - 2 * radius) * g.nextUniform()
            cy = radius + (32 - 2 * radius) * g.nextUniform()
            angle = 2 * Float.pi * g.nextUniform()
            textureAngle = (ShapeTex.textureAngleJitter * (2 * g.nextUniform() - 1)) * Float.pi / 180
            period = 1 + ShapeTex.periodJitter * (2 * g.nextUniform() - 1)
            ox = 64 * g.nextUniform()
            oy = 64 * g.nextUniform()
            rx = 8 + 16 * g.nextUniform()
            ry = 8 + 16 * g.nextUniform()
            salt = UInt32(truncatingIfNeeded: g.next())
            // Colours uniform in the RGB cube, redrawn until the texture's two
            // colours differ clearly from each other and from the background.
            func colour() -> SIMD3<Float> { SIMD3(g.nextUniform(), g.nextUniform(), g.nextUniform()) }
            func distance(_ a: SIMD3<Float>, _ b: SIMD3<Float>) -> Float { ((a - b) * (a - b)).sum().squareRoot() }
            var attempt = 0
            repeat {
                background = colour(); ink = colour(); paper = colour()
                attempt += 1
            } while attempt < 1000 && (distance(ink, paper) < 0.5 || distance(background, ink) < 0.4 || distance(background, paper) < 0.4)
        }
    }

    /// Supersampling factor per axis for antialiasing at `size` pixels.
    static func supersampling(_ size: Int) -> Int { size <= 32 ? 4 : size <= 64 ? 3 : size <= 128 ? 2 : 1 }

    /// Draws `scene` as a [size, size, 3] image, plus Gaussian noise of
    /// standard deviation `noise` from `g` (values clipped to [0, 1]).
    static func draw(_ scene: Scene, size: Int, noise: Float, generator g: Generator) -> Tensor {
        let ss = supersampling(size)
        let unit = 32 / Float(size) / Float(ss)             // 32-units per subsample
        let weight = 1 / Float(ss * ss)
        let radius = scene.scale * 16
        let (cosA, sinA) = (Foundation.cos(scene.angle), Foundation.sin(scene.angle))
        let (cosT, sinT) = (Foundation.cos(scene.textureAngle), Foundation.sin(scene.textureAngle))
        var values = [Float](repeating: 0, count: size * size * 3)
        for py in 0..<size {
            for px in 0..<size {
                var sum = SIMD3<Float>(repeating: 0)
                for sy in 0..<ss {
                    let uy = (Float(py * ss + sy) + 0.5) * unit
                    for sx in 0..<ss {
                        let ux = (Float(px * ss + sx) + 0.5) * unit
                        var inside = true
                        if let shape = scene.shape {
                            let dx = ux - scene.cx, dy = uy - scene.cy
                            inside = ShapeTex.insideShape(shape, (cosA * dx + sinA * dy) / radius, (-sinA * dx + cosA * dy) / radius)
                        }
                        guard inside else { sum += scene.background; continue }
                        guard let texture = scene.texture else { sum += scene.paper; continue }
                        let tx = ux - 16, ty = uy - 16
                        let vx = (cosT * tx - sinT * ty) / scene.period + scene.ox
                        let vy = (sinT * tx + cosT * ty) / scene.period + scene.oy
                        sum += ShapeTex.inkAt(texture, vx, vy, ux, uy, scene) ? scene.ink : scene.paper
                    }
                }
                let o = (py * size + px) * 3
                values[o] = sum.x * weight; values[o + 1] = sum.y * weight; values[o + 2] = sum.z * weight
            }
        }
        if noise > 0 {
            for i in values.indices { values[i] = min(max(values[i] + noise * g.nextNormal(), 0), 1) }
        }
        return Tensor(values, shape: [size, size, 3])
    }

    // MARK: Shapes, in local coordinates where the shape fits the unit disk.

    static func insideShape(_ k: Int, _ x: Float, _ y: Float) -> Bool {
        let r2 = x * x + y * y
        if r2 > 1 { return false }
        switch k {
        case 0: return r2 <= 0.95 * 0.95                                            // circle
        case 1: return abs(x) <= 0.68 && abs(y) <= 0.68                             // square
        case 2: return insidePolygon(triangle, x, y)                                // triangle
        case 3: return insidePolygon(star, x, y)                                    // star
        case 4: return (abs(x) <= 0.3 && abs(y) <= 0.95) || (abs(y) <= 0.3 && abs(x) <= 0.95)  // cross
        case 5: return r2 <= 0.97 * 0.97 && r2 >= 0.52 * 0.52                       // ring
        case 6: return abs(x) / 0.66 + abs(y) <= 1                                  // diamond
        case 7:                                                                     // heart: two lobes and a point
            let ax = abs(x) - 0.42, ay = y + 0.28
            return ax * ax + ay * ay <= 0.46 * 0.46 || insidePolygon(heartPoint, x, y)
        case 8: return insidePolygon(arrow, x, y)                                   // arrow
        case 9: return r2 <= 0.97 * 0.97 && (x - 0.42) * (x - 0.42) + y * y >= 0.78 * 0.78  // crescent
        default: return false
        }
    }

    static let triangle: [SIMD2<Float>] = (0..<3).map { k in
        let a = -Float.pi / 2 + 2 * Float.pi * Float(k) / 3
        return SIMD2(Foundation.cos(a), Foundation.sin(a))
    }
    static let star: [SIMD2<Float>] = (0..<10).map { k in
        let a = -Float.pi / 2 + Float.pi * Float(k) / 5, r: Float = k % 2 == 0 ? 1 : 0.45
        return SIMD2(r * Foundation.cos(a), r * Foundation.sin(a))
    }
    static let heartPoint: [SIMD2<Float>] = [SIMD2(-0.84, -0.16), SIMD2(0.84, -0.16), SIMD2(0, 0.94)]
    static let arrow: [SIMD2<Float>] = [
        SIMD2(-0.95, -0.22), SIMD2(0.12, -0.22), SIMD2(0.12, -0.62), SIMD2(0.95, 0),
        SIMD2(0.12, 0.62), SIMD2(0.12, 0.22), SIMD2(-0.95, 0.22),
    ]

    /// Even–odd rule.
    static func insidePolygon(_ polygon: [SIMD2<Float>], _ x: Float, _ y: Float) -> Bool {
        var inside = false
        var j = polygon.count - 1
        for i in 0..<polygon.count {
            let a = polygon[i], b = polygon[j]
            if (a.y > y) != (b.y > y) && x < (b.x - a.x) * (y - a.y) / (b.y - a.y) + a.x { inside.toggle() }
            j = i
        }
        return inside
    }

    // MARK: Textures: binary patterns (ink or paper) with periods of 4–9 units.

    static func inkAt(_ k: Int, _ vx: Float, _ vy: Float, _ ux: Float, _ uy: Float, _ s: Scene) -> Bool {
        switch k {
        case 0: return frac((vx + vy) * (0.70710678 / 6)) < 0.5                               // stripes, 45°
        case 1: return Int((vx / 3.2).rounded(.down) + (vy / 3.2).rounded(.down)) & 1 == 0  // checkerboard
        case 2:                                                                               // dots
            let fx = frac(vx / 6) - 0.5, fy = frac(vy / 6) - 0.5
            return fx * fx + fy * fy < 0.3 * 0.3
        case 3: return frac((vy + 1.6 * Foundation.sin(2 * Float.pi * vx / 11)) / 6) < 0.5   // waves, horizontal
        case 4: return frac(vx / 7) < 0.3 || frac(vy / 7) < 0.3                             // grid
        case 5: return frac((vx + 2.5 * triangleWave(vy / 9)) / 6) < 0.5                     // zigzag, vertical
        case 6:                                                                               // concentric rings
            let dx = ux - s.rx, dy = uy - s.ry
            return frac((dx * dx + dy * dy).squareRoot() / s.period / 6) < 0.5
        case 7: return valueNoise(vx / 5, vy / 5, s.salt) < 0.5                              // blobs
        case 8:                                                                               // bricks
            let row = (vy / 4.5).rounded(.down)
            let shift: Float = Int(row) & 1 == 0 ? 0 : 4.5
            return frac(vy / 4.5) < 0.28 || frac((vx + shift) / 9) < 0.14
        case 9: return hash((vx / 2.2).rounded(.down), (vy / 2.2).rounded(.down), s.salt) < 0.5  // speckle
        default: return false
        }
    }

    @inline(__always) static func frac(_ t: Float) -> Float { t - t.rounded(.down) }

    /// Triangle wave in [-1, 1] with period 1.
    @inline(__always) static func triangleWave(_ t: Float) -> Float { 4 * abs(frac(t) - 0.5) - 1 }

    /// A value in [0, 1) for an integer lattice point (murmur3's finaliser).
    static func hash(_ x: Float, _ y: Float, _ salt: UInt32) -> Float {
        var h = UInt32(bitPattern: Int32(x)) &* 0x8da6_b343 ^ UInt32(bitPattern: Int32(y)) &* 0xd816_3841 ^ salt
        h ^= h >> 16; h &*= 0x85eb_ca6b; h ^= h >> 13; h &*= 0xc2b2_ae35; h ^= h >> 16
        return Float(h >> 8) * 0x1p-24
    }

    /// Smooth lattice noise in [0, 1) (smoothstep interpolation of `hash`).
    static func valueNoise(_ x: Float, _ y: Float, _ salt: UInt32) -> Float {
        let ix = x.rounded(.down), iy = y.rounded(.down)
        let fx = x - ix, fy = y - iy
        let sx = fx * fx * (3 - 2 * fx), sy = fy * fy * (3 - 2 * fy)
        let a = hash(ix, iy, salt), b = hash(ix + 1, iy, salt), c = hash(ix, iy + 1, salt), d = hash(ix + 1, iy + 1, salt)
        return a + (b - a) * sx + (c - a) * sy + (a - b - c + d) * sx * sy
    }
}
