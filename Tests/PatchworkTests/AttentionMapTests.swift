import Foundation
import XCTest
import Patchwork
import PatchworkNN
import PatchworkModels

/// Every attention layer of every family hands back its probabilities and where its
/// queries and keys sit (the analyses of attention distance and rollout rely on this).
final class AttentionMapTests: XCTestCase {
    func testGridPositionsAreTokenCentres() {
        let p = AttentionMap.gridPositions(height: 2, width: 4, prefixTokens: 1)
        XCTAssertEqual(p.shape, [9, 2])
        let s = p.scalars
        XCTAssertTrue(s[0].isNaN && s[1].isNaN, "the prefix token has no place")
        XCTAssertEqual(Array(s[2..<6]), [0.25, 0.125, 0.25, 0.375])
        XCTAssertEqual(Array(s[16..<18]), [0.75, 0.875])
    }

    /// Each `_nano` variant with attention (all but resnet_nano and vit_dwconv_nano): every layer records a map, rows sum to 1,
    /// positions (when given) match the query/key counts and lie in [0, 1] or are NaN.
    func testEveryNanoVariantRecordsItsAttention() throws {
        for variant in Models.list() where variant.name.hasSuffix("_nano") {
            let model = try variant.create(numClasses: 10)
            model.eval()
            let layers = model.attentionLayers()
            // ResNets, and the ViT whose attention is a depthwise convolution (the feature-frequency control), have none.
            if variant.family == "resnet" || variant.name == "vit_dwconv_nano" { XCTAssertTrue(layers.isEmpty); continue }
            XCTAssertFalse(layers.isEmpty, "\(variant.name) has no AttentionRecording layer")
            model.recordAttention()
            let x = Tensor.randomNormal([2, variant.inputSize, variant.inputSize, 3], generator: Generator(seed: 5))
            _ = withoutGrad { model.logits(x) }
            for (key, layer) in layers {
                let map = try XCTUnwrap(layer.lastAttentionMap, "\(variant.name) \(key) recorded nothing")
                let a = map.probabilities
                XCTAssertEqual(a.rank, 4, "\(variant.name) \(key): [G, heads, Nq, Nk]")
                for r in a.sum(alongAxes: [3]).scalars { XCTAssertEqual(r, 1, accuracy: 1e-4, "\(variant.name) \(key)") }
                for (name, positions, count) in [("query", map.queryPositions, a.shape[2]), ("key", map.keyPositions, a.shape[3])] {
                    guard let positions else { continue }
                    XCTAssertEqual(positions.shape.last, 2, "\(variant.name) \(key) \(name) positions")
                    XCTAssertEqual(positions.shape[positions.rank - 2], count, "\(variant.name) \(key) \(name) positions")
                    if positions.rank == 3 { XCTAssertEqual(positions.shape[0], a.shape[0], "\(variant.name) \(key) \(name)") }
                    XCTAssertTrue(positions.scalars.allSatisfy { $0.isNaN || (-0.5...1.5).contains($0) },
                                  "\(variant.name) \(key) \(name) positions are image fractions")
                }
            }
            model.recordAttention(false)
        }
    }
}
