import Foundation
import Patchwork
import PatchworkNN

/// Mean attention distance (Dosovitskiy et al. 2021, Fig. 7; Raghu et al. 2021):
/// for each head, the distance in input pixels between a query and the keys it
/// attends to, weighted by the attention probability, averaged over queries and images.
///
/// Only tokens with a place in the image count: class/distillation tokens (NaN
/// positions) are left out as queries, and as keys their probability mass is
/// left out too (each query's weights are renormalised over the spatial keys), so
/// a head that only looks at the class token does not read as "distance 0".
public enum AttentionDistance {
    /// Running per-head sums over batches: `add` each batch's map, read `mean`.
    public struct Tally {
        public fileprivate(set) var sums: [Double]
        /// How many (image, query) pairs each head's sum holds.
        public fileprivate(set) var counts: [Double]
        public init(heads: Int) { sums = Array(repeating: 0, count: heads); counts = sums }
        /// Per-head mean distance in pixels (NaN for a head that had no spatial query).
        public var mean: [Double] { zip(sums, counts).map { $1 > 0 ? $0 / $1 : .nan } }

        public mutating func add(_ other: Tally) {
            for h in sums.indices { sums[h] += other.sums[h]; counts[h] += other.counts[h] }
        }
    }

    /// Per-head mean distance in pixels for one layer's map, or nil when the map
    /// has no positions. `imageHeight`/`imageWidth`: the input size in pixels.
    public static func perHead(_ map: AttentionMap, imageHeight: Int, imageWidth: Int) -> [Double]? {
        tally(map, imageHeight: imageHeight, imageWidth: imageWidth)?.mean
    }

    /// The per-head sums behind `perHead`, to accumulate over batches.
    public static func tally(_ map: AttentionMap, imageHeight: Int, imageWidth: Int) -> Tally? {
        guard let qPos = map.queryPositions, let kPos = map.keyPositions else { return nil }
        let p = map.probabilities.contiguous()
        let (g, heads, nq, nk) = (p.shape[0], p.shape[1], p.shape[2], p.shape[3])
        let probs = p.scalars
        let qs = qPos.contiguous().scalars, ks = kPos.contiguous().scalars
        let qShared = qPos.rank == 2, kShared = kPos.rank == 2
        let sy = Double(imageHeight), sx = Double(imageWidth)
        var tally = Tally(heads: heads)
        var distance = [Double](repeating: 0, count: nk)
        var spatial = [Bool](repeating: false, count: nk)
        for gi in 0..<g {
            let qBase = qShared ? 0 : gi * nq * 2, kBase = kShared ? 0 : gi * nk * 2
            for q in 0..<nq {
                let qy = Double(qs[qBase + 2 * q]), qx = Double(qs[qBase + 2 * q + 1])
                if qy.isNaN || qx.isNaN { continue }
                for k in 0..<nk {
                    let ky = Double(ks[kBase + 2 * k]), kx = Double(ks[kBase + 2 * k + 1])
                    spatial[k] = !(ky.isNaN || kx.isNaN)
                    distance[k] = spatial[k] ? (((qy - ky) * sy) * ((qy - ky) * sy) + ((qx - kx) * sx) * ((qx - kx) * sx)).squareRoot() : 0
                }
                for h in 0..<heads {
                    let row = ((gi * heads + h) * nq + q) * nk
                    var weighted = 0.0, mass = 0.0
                    for k in 0..<nk where spatial[k] {
                        let w = Double(probs[row + k])
                        weighted += w * distance[k]
                        mass += w
                    }
                    guard mass > 1e-12 else { continue }
                    tally.sums[h] += weighted / mass
                    tally.counts[h] += 1
                }
            }
        }
        return tally
    }
}
