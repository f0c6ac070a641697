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

    /// The variant `name` names: Patchwork's name or the reference's, with or without a pretrained tag
    /// (`vit_tiny_patch16_224.augreg_in21k_ft_in1k`) or as a hub repository (`timm/…`, `microsoft/cvt-13`).
    public static func variant(_ name: String) throws -> ModelVariant { try resolve(name).variant }

    /// The variant `name` names and the pretrained configuration of the weights it names: the tag's, the
    /// variant's default tag when there is none, nil for a variant with no published weights.
    public static func resolve(_ name: String) throws -> (variant: ModelVariant, pretrained: PretrainedConfig?) {
        let (architecture, tag) = try Pretrained.split(name)
        guard let v = list().first(where: { $0.name == architecture }) else {
            let close = list().map(\.name).filter { $0.hasPrefix(String(architecture.prefix(3))) }
            throw ModelError("unknown model \"\(name)\"" + (close.isEmpty ? "" : " (similar: \(close.joined(separator: ", ")))")
                             + "; `patchwork models` lists them all")
        }
        return (v, try Pretrained.config(architecture: architecture, tag: tag))
    }

    public static func create(_ name: String, numClasses: Int = 1000) throws -> ImageClassifier {
        try variant(name).create(numClasses: numClasses)
    }
}
