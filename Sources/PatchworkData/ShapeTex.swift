import Foundation
import Patchwork

/// ShapeTex: a built-in, deterministic image set in which shape and texture
/// are two separable cues (DESIGN.md §5).
///
/// Class k is shape k filled with texture k:
///
/// | k | shape    | texture                         |
/// |---|----------|---------------------------------|
/// | 0 | circle   | stripes at 45°                  |
/// | 1 | square   | checkerboard                    |
/// | 2 | triangle | dots                            |
/// | 3 | star     | horizontal waves                |
/// | 4 | cross    | grid of thin lines              |
/// | 5 | ring     | vertical zigzag                 |
/// | 6 | diamond  | concentric rings                |
/// | 7 | heart    | blobs (smooth noise, thresholded) |
/// | 8 | arrow    | bricks                          |
/// | 9 | crescent | speckle (fine random squares)   |
///
/// Each image is a shape on a flat background, its inside painted with the
/// texture in two colours. Position, scale (the shape's diameter is 0.55–0.9
/// of the side), rotation (any angle), the texture's phase, a little of its
/// angle (±10°) and period (±10%), and all three colours are random per
/// sample and independent of the class, so neither colour nor position says
/// anything about it. Texture periods are 4–9 px at 32×32; a larger `size`
/// draws the same picture at a higher resolution. Edges are antialiased by
/// supersampling, and a little Gaussian pixel noise (`noise`) is added.
///
/// Splits:
/// - `train`, `test`: shape and texture agree (label k = i mod 10); the two
///   use different random streams, so they share no image.
/// - `cueConflict`: the shape of class s with the texture of class t ≠ s;
///   sample i shows ordered pair i mod 90, so every 90 consecutive samples
///   hold every pair once. `label` is the shape; `shapeLabel(i)` and
///   `textureLabel(i)` give both.
/// - `shapeOnly`: flat-filled silhouettes (no texture label).
/// - `textureOnly`: the texture over the whole image (no shape label).
///
/// Sample i is a pure function of (seed, split, i): any sample can be made on
/// its own, on any thread, identically on every run and machine.
public struct ShapeTex: Dataset {
    public enum Split: String, Sendable, CaseIterable {
        case train, test
        case cueConflict = "cue-conflict"
        case shapeOnly = "shape-only"
        case textureOnly = "texture-only"

        /// Sample count when none is given.
        public var defaultCount: Int {
            switch self {
            case .train: return 10_000
            case .test: return 2_000
            case .cueConflict: return 10 * ShapeTex.conflictPairs     // 10 per ordered pair
            case .shapeOnly, .textureOnly: return 2_000
            }
        }

        /// Distinguishes the splits' random streams.
        var stream: UInt64 {
            switch self {
            case .train: return 1
            case .test: return 2
            case .cueConflict: return 3
            case .shapeOnly: return 4
            case .textureOnly: return 5
            }
        }
    }

    public static let shapeNames = ["circle", "square", "triangle", "star", "cross",
                                    "ring", "diamond", "heart", "arrow", "crescent"]
    public static let textureNames = ["stripes", "checkerboard", "dots", "waves", "grid",
                                      "zigzag", "rings", "blobs", "bricks", "speckle"]
    public static var classCount: Int { shapeNames.count }
    /// Ordered (shape, texture) pairs with shape ≠ texture.
    public static var conflictPairs: Int { classCount * (classCount - 1) }
    /// Class k's name, "shape-texture" (e.g. "circle-stripes").
    public static var combinedNames: [String] { zip(shapeNames, textureNames).map { "\($0)-\($1)" } }

    static let scaleRange: ClosedRange<Float> = 0.55...0.9
    static let textureAngleJitter: Float = 10    // degrees
    static let periodJitter: Float = 0.1

    public let split: Split
    public let count: Int
    public let size: Int
    public let seed: UInt64
    /// Standard deviation of the Gaussian pixel noise.
    public let noise: Float

    /// Class names: "shape-texture" for every split (class k of a
    /// cue-conflict, shape-only or texture-only sample is its shape's or
    /// texture's class in the training set).
    public var classNames: [String] { ShapeTex.combinedNames }
    public var imageShape: [Int] { [size, size, 3] }

    public init(split: Split = .train, count: Int? = nil, size: Int = 32, seed: UInt64 = 0, noise: Float = 0.02) throws {
        guard size >= 8 else { throw DataError("ShapeTex: image size must be at least 8, got \(size)") }
        guard size <= 4096 else { throw DataError("ShapeTex: image size \(size) is unreasonably large (at most 4096)") }
        if let n = count, n < 0 { throw DataError("ShapeTex: count must not be negative, got \(n)") }
        guard noise >= 0 && noise.isFinite else { throw DataError("ShapeTex: noise must be ≥ 0, got \(noise)") }
        self.split = split
        self.count = count ?? split.defaultCount
        self.size = size
        self.seed = seed
        self.noise = noise
    }

    public func sample(_ index: Int) throws -> (image: Tensor, label: Int) {
        guard index >= 0 && index < count else { throw DataError("ShapeTex \(split.rawValue): sample \(index) is outside 0..<\(count)") }
        return (image(index), label(index))
    }

    /// The image of sample `index` (any index ≥ 0 works, even past `count`).
    public func image(_ index: Int) -> Tensor {
        let (shape, texture) = cues(index)
        let g = Generator(seed: ShapeTex.sampleSeed(seed, split, index))
        let scene = Scene(shape: shape, texture: texture, generator: g)
        return ShapeTex.draw(scene, size: size, noise: noise, generator: g)
    }

    /// The label: the shape's class, or the texture's for `textureOnly`.
    public func label(_ index: Int) -> Int {
        let (shape, texture) = cues(index)
        return shape ?? texture!
    }

    /// The class whose shape sample `index` shows; nil for `textureOnly`.
    public func shapeLabel(_ index: Int) -> Int? { cues(index).shape }

    /// The class whose texture sample `index` shows; nil for `shapeOnly`.
    public func textureLabel(_ index: Int) -> Int? { cues(index).texture }

    /// "circle-stripes", "circle" or "stripes": the cues sample `index` shows.
    public func name(_ index: Int) -> String {
        let (shape, texture) = cues(index)
        return [shape.map { ShapeTex.shapeNames[$0] }, texture.map { ShapeTex.textureNames[$0] }]
            .compactMap { $0 }.joined(separator: "-")
    }

    /// The shape and texture classes of sample `index`.
    public func cues(_ index: Int) -> (shape: Int?, texture: Int?) {
        let k = ShapeTex.classCount
        switch split {
        case .train, .test: return (index % k, index % k)
        case .shapeOnly: return (index % k, nil)
        case .textureOnly: return (nil, index % k)
        case .cueConflict:
            let pair = index % ShapeTex.conflictPairs
            let shape = pair / (k - 1), other = pair % (k - 1)
            return (shape, other < shape ? other : other + 1)
        }
    }

    /// An image of any shape/texture combination (nil for none), drawn with
    /// fresh random placement and colours from `generator`: for stimuli
    /// beyond the fixed splits.
    public static func render(shape: Int?, texture: Int?, size: Int = 32, noise: Float = 0.02, generator: Generator) -> Tensor {
        require(shape.map { (0..<classCount).contains($0) } ?? true, "ShapeTex.render", "shape \(shape!) is not a class")
        require(texture.map { (0..<classCount).contains($0) } ?? true, "ShapeTex.render",
                "texture \(texture!) is not a class")
        return draw(Scene(shape: shape, texture: texture, generator: generator), size: size, noise: noise, generator: generator)
    }

    /// The generator seed of sample `index` of `split`: SplitMix64's
    /// finaliser over the seed, the split's stream number and the index.
    static func sampleSeed(_ seed: UInt64, _ split: Split, _ index: Int) -> UInt64 {
        func mix(_ v: UInt64) -> UInt64 {
            var z = v &+ 0x9E37_79B9_7F4A_7C15
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        return mix(mix(mix(seed) ^ split.stream) ^ UInt64(index))
    }
}
