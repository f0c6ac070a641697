import Foundation

/// ImageNet-1k's 1000 classes, in the index order every ImageNet-1k checkpoint predicts them
/// (WordNet ids sorted), with their names (timm's `ImageNetInfo("imagenet-1k")`, generated into
/// ImageNetClassTable.swift by scripts/reference/pretrained_configs.py).
public enum ImageNet {
    /// (WordNet id, names) per class index: ("n01440764", "tench, Tinca tinca").
    public static let classes: [(wordNetID: String, names: String)] = imageNet1kClassTable.split(separator: "\n").map { line in
        let fields = line.split(separator: "\t", maxSplits: 1)
        return (String(fields[0]), String(fields[1]))
    }

    /// The WordNet ids, by class index: the folder names of the validation layout.
    public static var wordNetIDs: [String] { classes.map(\.wordNetID) }

    /// The class names, by class index ("tench, Tinca tinca").
    public static var classNames: [String] { classes.map(\.names) }

    /// The names of a label set's classes where Patchwork has them built in (imagenet-1k), else nil.
    public static func classNames(labelSet: String) -> [String]? { labelSet == "imagenet-1k" ? classNames : nil }
}
