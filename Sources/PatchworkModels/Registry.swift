import Foundation
import Patchwork
import PatchworkNN

/// Every model family and named variant (`Models.create("resnet50", numClasses: 10)`).
public enum Models {
    /// The implemented families, in DESIGN.md's order. A new family adds its line here.
    public static let families: [ModelFamily] = [
        ResNet.family,
        VisionTransformer.family,
        HybridVisionTransformer.family,
        ViTC.family,
        ConViT.family,
        LeViT.family,
        SwinTransformer.family,
        CoAtNet.family,
        PVT.family,
        PvtV2.family,
        P2T.family,
        CeiT.family,
        DAT.family,
        MaxViT.family,
        CvT.family,
        CMT.family,
    ]

    public static func family(_ name: String) throws -> ModelFamily {
        guard let f = families.first(where: { $0.name == name }) else {
            throw ModelError("unknown model family \"\(name)\" (implemented: \(families.map(\.name).joined(separator: ", ")))")
        }
        return f
    }

    public static func list() -> [ModelVariant] { families.flatMap(\.variants) }

    public static func variant(_ name: String) throws -> ModelVariant {
        guard let v = list().first(where: { $0.name == name }) else {
            let close = list().map(\.name).filter { $0.hasPrefix(String(name.prefix(3))) }
            throw ModelError("unknown model \"\(name)\"" + (close.isEmpty ? "" : " (similar: \(close.joined(separator: ", ")))")
                             + "; `patchwork models` lists them all")
        }
        return v
    }

    public static func create(_ name: String, numClasses: Int = 1000) throws -> ImageClassifier {
        try variant(name).create(numClasses: numClasses)
    }
}
