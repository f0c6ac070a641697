import CSTB
import Foundation
import Patchwork

/// ImageNet-C-style corruptions (Hendrycks & Dietterich 2019) that make sense
/// at any image size, 5 severities each, on [H, W, C] images in [0, 1].
///
/// Severity parameters follow CIFAR-10-C (their 32×32 set, `make_cifar_c.py`);
/// spatial ones (blur radii, σ) scale with the image side / 32, so a 64×64
/// image gets twice the blur radius in pixels (the same blur relative to the
/// image). JPEG is a real baseline JPEG encode/decode round trip through
/// stb_image_write / stb_image.
public enum Corruption: String, CaseIterable, Sendable {
    case gaussianNoise = "gaussian_noise"
    case shotNoise = "shot_noise"
    case impulseNoise = "impulse_noise"
    case defocusBlur = "defocus_blur"
    case gaussianBlur = "gaussian_blur"
    case motionBlur = "motion_blur"
    case contrast
    case brightness
    case saturate
    case jpegCompression = "jpeg_compression"
    case pixelate

    /// The parameters of severity 1…5, as in CIFAR-10-C.
    public var parameters: [[Double]] {
        switch self {
        case .gaussianNoise: return [[0.04], [0.06], [0.08], [0.09], [0.10]]                     // σ
        case .shotNoise: return [[500], [250], [100], [75], [50]]                                  // photons per unit
        case .impulseNoise: return [[0.01], [0.02], [0.03], [0.05], [0.07]]                        // fraction replaced
        case .defocusBlur: return [[0.3, 0.4], [0.4, 0.5], [0.5, 0.6], [1, 0.2], [1.5, 0.1]]      // disk radius, alias σ (px at 32)
        case .gaussianBlur: return [[0.4], [0.6], [0.7], [0.8], [1.0]]                            // σ (px at 32)
        case .motionBlur: return [[10, 1], [10, 1.5], [10, 2], [10, 2.5], [12, 3]]                // radius, σ (px at 32)
        case .contrast: return [[0.75], [0.5], [0.4], [0.3], [0.15]]                               // factor
        case .brightness: return [[0.05], [0.1], [0.15], [0.2], [0.3]]                            // added to V (HSV)
        case .saturate: return [[0.3, 0], [0.1, 0], [1.5, 0], [2, 0.1], [2.5, 0.2]]              // S·a + b (HSV)
        case .jpegCompression: return [[80], [65], [58], [50], [40]]                              // JPEG quality
        case .pixelate: return [[0.95], [0.9], [0.85], [0.75], [0.65]]                            // side factor
        }
    }

    /// Corrupts one [H, W, C] image (row-major, channels last) at severity 1…5.
    public func apply(_ image: [Float], height h: Int, width w: Int, channels c: Int, severity: Int, generator g: Generator) -> [Float] {
        require((1...5).contains(severity), "Corruption.apply", "severity must be 1…5, got \(severity)")
        let p = parameters[severity - 1]
        let scale = Double(min(h, w)) / 32
        var x = image
        switch self {
        case .gaussianNoise:
            for i in x.indices { x[i] += Float(p[0]) * g.nextNormal() }
        case .shotNoise:
            for i in x.indices { x[i] = Float(Self.poisson(Double(max(x[i], 0)) * p[0], g) / p[0]) }
        case .impulseNoise:
            for i in x.indices where Double(g.nextUniform()) < p[0] { x[i] = g.nextUniform() < 0.5 ? 0 : 1 }
        case .defocusBlur:
            let disk = Self.diskKernel(radius: p[0] * scale)
            x = Self.convolve(x, h, w, c, kernel: disk)
            x = Self.convolve(x, h, w, c, kernel: Self.gaussianKernel(sigma: p[1] * scale))
        case .gaussianBlur:
            x = Self.convolve(x, h, w, c, kernel: Self.gaussianKernel(sigma: p[0] * scale))
        case .motionBlur:
            let angle = Double(g.nextUniform()) * 90 - 45
            x = Self.convolve(x, h, w, c, kernel: Self.motionKernel(radius: p[0] * scale, sigma: p[1] * scale, degrees: angle))
        case .contrast:
            for ch in 0..<c {
                var mean = 0.0
                for q in 0..<(h * w) { mean += Double(x[q * c + ch]) }
                mean /= Double(h * w)
                for q in 0..<(h * w) { x[q * c + ch] = Float((Double(x[q * c + ch]) - mean) * p[0] + mean) }
            }
        case .brightness, .saturate:
            guard c == 3 else { break }
            for q in 0..<(h * w) {
                var (hue, s, v) = Self.rgbToHSV(x[3 * q], x[3 * q + 1], x[3 * q + 2])
                if self == .brightness { v = min(max(v + Float(p[0]), 0), 1) } else { s = min(max(s * Float(p[0]) + Float(p[1]), 0), 1) }
                (x[3 * q], x[3 * q + 1], x[3 * q + 2]) = Self.hsvToRGB(hue, s, v)
            }
        case .jpegCompression:
            x = Self.jpegRoundTrip(x, h, w, c, quality: Int(p[0]))
        case .pixelate:
            let side = (max(1, Int((Double(h) * p[0]).rounded(.down))), max(1, Int((Double(w) * p[0]).rounded(.down))))
            let t = Tensor(x, shape: [1, h, w, c])
            let small = withoutGrad { resize(t, size: side, mode: .bilinear, alignCorners: false, antialias: true) }
            x = withoutGrad { resize(small, size: (h, w), mode: .nearest) }.scalars
        }
        for i in x.indices { x[i] = min(max(x[i], 0), 1) }
        return x
    }

    // MARK: Pieces

    /// A Poisson draw with mean λ (Knuth for small λ, the normal approximation above 60).
    static func poisson(_ lambda: Double, _ g: Generator) -> Double {
        if lambda <= 0 { return 0 }
        if lambda > 60 { return max(0, (lambda + lambda.squareRoot() * Double(g.nextNormal())).rounded()) }
        let limit = exp(-lambda)
        var k = 0.0, product = Double(g.nextUniform())
        while product > limit { k += 1; product *= Double(g.nextUniform()) }
        return k
    }

    /// A square kernel (odd side) as rows of weights summing to 1.
    public struct Kernel { public var side: Int; public var weights: [Float] }

    static func gaussianKernel(sigma: Double) -> Kernel {
        let r = max(1, Int((3 * sigma).rounded(.up)))
        let side = 2 * r + 1
        var k = [Float](repeating: 0, count: side * side)
        for i in 0..<side { for j in 0..<side {
            let (dy, dx) = (Double(i - r), Double(j - r))
            k[i * side + j] = Float(exp(-(dx * dx + dy * dy) / (2 * sigma * sigma)))
        } }
        return normalized(Kernel(side: side, weights: k))
    }

    /// A disk of `radius` pixels, antialiased by 8×8 supersampling of each cell.
    static func diskKernel(radius: Double) -> Kernel {
        let r = max(1, Int(radius.rounded(.up)))
        let side = 2 * r + 1
        var k = [Float](repeating: 0, count: side * side)
        for i in 0..<side { for j in 0..<side {
            var inside = 0
            for a in 0..<8 { for b in 0..<8 {
                let y = Double(i - r) + (Double(a) + 0.5) / 8 - 0.5, x = Double(j - r) + (Double(b) + 0.5) / 8 - 0.5
                if x * x + y * y <= radius * radius { inside += 1 }
            } }
            k[i * side + j] = Float(inside)
        } }
        if k.allSatisfy({ $0 == 0 }) { k[r * side + r] = 1 }
        return normalized(Kernel(side: side, weights: k))
    }

    /// One-sided motion blur along `degrees`: weights exp(−t²/2σ²) at t = 0…radius px, bilinearly splatted.
    static func motionKernel(radius: Double, sigma: Double, degrees: Double) -> Kernel {
        let r = max(1, Int(radius.rounded(.up)))
        let side = 2 * r + 1
        var k = [Float](repeating: 0, count: side * side)
        let (dx, dy) = (cos(degrees * .pi / 180), sin(degrees * .pi / 180))
        var t = 0.0
        while t <= radius + 1e-9 {
            let weight = exp(-t * t / (2 * sigma * sigma))
            let x = Double(r) + t * dx, y = Double(r) + t * dy
            let (x0, y0) = (Int(x.rounded(.down)), Int(y.rounded(.down)))
            let (fx, fy) = (x - Double(x0), y - Double(y0))
            for (yy, xx, f) in [(y0, x0, (1 - fx) * (1 - fy)), (y0, x0 + 1, fx * (1 - fy)), (y0 + 1, x0, (1 - fx) * fy), (y0 + 1, x0 + 1, fx * fy)]
            where yy >= 0 && yy < side && xx >= 0 && xx < side {
                k[yy * side + xx] += Float(weight * f)
            }
            t += 0.5
        }
        return normalized(Kernel(side: side, weights: k))
    }

    static func normalized(_ k: Kernel) -> Kernel {
        let s = k.weights.reduce(0, +)
        return Kernel(side: k.side, weights: k.weights.map { $0 / s })
    }

    /// 2-D convolution of each channel with reflect padding (as scipy/OpenCV's default).
    static func convolve(_ x: [Float], _ h: Int, _ w: Int, _ c: Int, kernel: Kernel) -> [Float] {
        let r = kernel.side / 2
        func reflect(_ i: Int, _ n: Int) -> Int {
            if n == 1 { return 0 }
            var i = i
            while i < 0 || i >= n { i = i < 0 ? -i : 2 * (n - 1) - i }
            return i
        }
        var out = [Float](repeating: 0, count: x.count)
        for y in 0..<h {
            for xx in 0..<w {
                for ch in 0..<c {
                    var s: Float = 0
                    for i in 0..<kernel.side {
                        let yy = reflect(y + i - r, h)
                        for j in 0..<kernel.side {
                            let wgt = kernel.weights[i * kernel.side + j]
                            if wgt == 0 { continue }
                            s += wgt * x[(yy * w + reflect(xx + j - r, w)) * c + ch]
                        }
                    }
                    out[(y * w + xx) * c + ch] = s
                }
            }
        }
        return out
    }

    static func rgbToHSV(_ r: Float, _ g: Float, _ b: Float) -> (Float, Float, Float) {
        let mx = max(r, g, b), mn = min(r, g, b), d = mx - mn
        var hue: Float = 0
        if d > 0 {
            if mx == r { hue = (g - b) / d } else if mx == g { hue = 2 + (b - r) / d } else { hue = 4 + (r - g) / d }
            hue /= 6
            if hue < 0 { hue += 1 }
        }
        return (hue, mx > 0 ? d / mx : 0, mx)
    }

    static func hsvToRGB(_ hue: Float, _ s: Float, _ v: Float) -> (Float, Float, Float) {
        let h6 = hue * 6
        let i = Int(h6.rounded(.down)) % 6, f = h6 - h6.rounded(.down)
        let p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f))
        switch i {
        case 0: return (v, t, p)
        case 1: return (q, v, p)
        case 2: return (p, v, t)
        case 3: return (p, q, v)
        case 4: return (t, p, v)
        default: return (v, p, q)
        }
    }

    /// Baseline JPEG at `quality` (stb_image_write), decoded again (stb_image).
    public static func jpegRoundTrip(_ x: [Float], _ h: Int, _ w: Int, _ c: Int, quality: Int) -> [Float] {
        let bytes = x.map { UInt8((min(max($0, 0), 1) * 255).rounded()) }
        final class Sink { var data = [UInt8]() }
        let sink = Sink()
        let ok = bytes.withUnsafeBufferPointer { buffer in
            stbi_write_jpg_to_func({ context, data, size in
                let sink = Unmanaged<Sink>.fromOpaque(context!).takeUnretainedValue()
                let p = data!.assumingMemoryBound(to: UInt8.self)
                sink.data.append(contentsOf: UnsafeBufferPointer(start: p, count: Int(size)))
            }, Unmanaged.passUnretained(sink).toOpaque(), Int32(w), Int32(h), Int32(c), buffer.baseAddress, Int32(quality))
        }
        require(ok != 0 && !sink.data.isEmpty, "jpegRoundTrip", "stb_image_write could not encode a \(w)×\(h)×\(c) image")
        var dw: Int32 = 0, dh: Int32 = 0, dc: Int32 = 0
        let decoded = sink.data.withUnsafeBufferPointer { stbi_load_from_memory($0.baseAddress, Int32($0.count), &dw, &dh, &dc, Int32(c)) }
        guard let decoded, Int(dw) == w, Int(dh) == h else {
            fatalError("jpegRoundTrip: stb_image could not decode its own JPEG (\(stbi_failure_reason().map { String(cString: $0) } ?? "?"))")
        }
        defer { stbi_image_free(decoded) }
        return (0..<(h * w * c)).map { Float(decoded[$0]) / 255 }
    }
}

/// Accuracy under every corruption and severity, and the mean corruption
/// accuracy relative to clean.
public enum Corruptions {
    public struct Row: Encodable {
        public var corruption: String
        /// Accuracy at severities 1…5.
        public var accuracy: [Double]
        public var mean: Double
    }

    public struct Summary: Encodable {
        public var cleanAccuracy: Double
        /// Mean over all corruptions and severities.
        public var meanCorruptionAccuracy: Double
        /// meanCorruptionAccuracy / cleanAccuracy.
        public var relativeMeanCorruptionAccuracy: Double
        public var worstCorruption: String
    }

    public struct Settings: Encodable {
        public var source: RunSource
        public var images: Int
        public var corruptions: [String]
        public var parameters: [String: [[Double]]]
        public var parameterSource = "CIFAR-10-C (Hendrycks & Dietterich 2019, make_cifar_c.py); blur radii and σ scaled by side/32"
        public var command: String
    }

    public struct Data: Encodable { public var rows: [Row] }

    public typealias Report = AnalysisReport<Summary, Settings, Data>

    public static func run(_ model: AnalysisModel, images set: ImageSet, corruptions: [Corruption] = Corruption.allCases, seed: UInt64,
                           source: RunSource, command: String, progress: ProgressHandler? = nil) throws -> Report {
        let (h, w, c, n) = (set.height, set.width, set.channels, set.count)
        let pixels = set.pixels, per = h * w * c
        let clean = model.accuracy(set.images, labels: set.labels)
        var rows: [Row] = []
        for (ci, corruption) in corruptions.enumerated() {
            var accs: [Double] = []
            for severity in 1...5 {
                var out = [Float](repeating: 0, count: pixels.count)
                for img in 0..<n {
                    let g = Generator(seed: Generator.derivedSeed(seed, UInt64(ci), UInt64(severity), UInt64(set.indices[img])))
                    let base = img * per
                    let y = corruption.apply(Array(pixels[base..<(base + per)]), height: h, width: w, channels: c, severity: severity, generator: g)
                    out.replaceSubrange(base..<(base + per), with: y)
                }
                accs.append(model.accuracy(Tensor(out, shape: set.images.shape), labels: set.labels))
            }
            let row = Row(corruption: corruption.rawValue, accuracy: accs, mean: accs.reduce(0, +) / 5)
            rows.append(row)
            progress?(String(format: "corruptions: %@ %@ (mean %.3f)", corruption.rawValue,
                             accs.map { String(format: "%.3f", $0) }.joined(separator: " "), row.mean))
        }
        let mean = rows.map(\.mean).reduce(0, +) / Double(max(rows.count, 1))
        let worst = rows.min { $0.mean < $1.mean }?.corruption ?? ""
        return Report(analysis: "corruptions",
                      summary: Summary(cleanAccuracy: clean, meanCorruptionAccuracy: mean,
                                       relativeMeanCorruptionAccuracy: clean > 0 ? mean / clean : .nan, worstCorruption: worst),
                      settings: Settings(source: source, images: n, corruptions: corruptions.map(\.rawValue),
                                         parameters: Dictionary(uniqueKeysWithValues: corruptions.map { ($0.rawValue, $0.parameters) }),
                                         command: command),
                      data: Data(rows: rows))
    }

    public static func svg(_ report: Report, title: String) -> String {
        let rows = report.data.rows
        let chart = SVGPlot.barChart(
            title: String(format: "%@ — accuracy under corruptions (clean %.3f, mean corrupted %.3f)", title,
                          report.summary.cleanAccuracy, report.summary.meanCorruptionAccuracy),
            categories: rows.map(\.corruption),
            series: (0..<5).map { s in SVGPlot.Series(name: "severity \(s + 1)", x: rows.indices.map(Double.init), y: rows.map { $0.accuracy[s] }) },
            yLabel: "accuracy", yRange: 0...1)
        let table = SVGPlot.table(
            title: "\(title) — accuracy by corruption and severity",
            rows: [["corruption", "1", "2", "3", "4", "5", "mean"]]
                + rows.map { [$0.corruption] + $0.accuracy.map { String(format: "%.3f", $0) } + [String(format: "%.3f", $0.mean)] },
            columnWidth: 110)
        return SVGPlot.stack([chart, table])
    }
}
