import Foundation
import Patchwork  // require

/// The 16 entry-level categories of Geirhos et al. (2019) "ImageNet-trained
/// CNNs are biased towards texture" and the ImageNet-1k class indices that
/// make up each one.
///
/// Source: github.com/rgeirhos/texture-vs-shape, code/helper/human_categories.py
/// (`HumanCategories.<category>_indices`, commit 6468a0e4). A model's 1000
/// softmax probabilities become 16 category scores by averaging the
/// probabilities of each category's indices (their
/// `ImageNetProbabilitiesTo16ClassesMapping`, aggregation `np.mean`); the
/// decision is the arg-max of the 16.
public enum GeirhosCategories {
    /// The categories in the benchmark's (alphabetical) order.
    public static let names = ["airplane", "bear", "bicycle", "bird", "boat", "bottle", "car", "cat",
                               "chair", "clock", "dog", "elephant", "keyboard", "knife", "oven", "truck"]

    /// ImageNet-1k indices of each category, as in human_categories.py.
    public static let imageNetIndices: [String: [Int]] = [
        "airplane": [404],
        "bear": [294, 295, 296, 297],
        "bicycle": [444, 671],
        "bird": [8, 10, 11, 12, 13, 14, 15, 16, 18, 19, 20, 22, 23, 24, 80, 81, 82, 83, 87, 88, 89, 90, 91, 92, 93,
                 94, 95, 96, 98, 99, 100, 127, 128, 129, 130, 131, 132, 133, 135, 136, 137, 138, 139, 140, 141, 142,
                 143, 144, 145],
        "boat": [472, 554, 625, 814, 914],
        "bottle": [440, 720, 737, 898, 899, 901, 907],
        "car": [436, 511, 817],
        "cat": [281, 282, 283, 284, 285, 286],
        "chair": [423, 559, 765, 857],
        "clock": [409, 530, 892],
        "dog": [152, 153, 154, 155, 156, 157, 158, 159, 160, 161, 162, 163, 164, 165, 166, 167, 168, 169, 170, 171,
                172, 173, 174, 175, 176, 177, 178, 179, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 190, 191,
                193, 194, 195, 196, 197, 198, 199, 200, 201, 202, 203, 205, 206, 207, 208, 209, 210, 211, 212, 213,
                214, 215, 216, 217, 218, 219, 220, 221, 222, 223, 224, 225, 226, 228, 229, 230, 231, 232, 233, 234,
                235, 236, 237, 238, 239, 240, 241, 243, 244, 245, 246, 247, 248, 249, 250, 252, 253, 254, 255, 256,
                257, 259, 261, 262, 263, 265, 266, 267, 268],
        "elephant": [385, 386],
        "keyboard": [508, 878],
        "knife": [499],
        "oven": [766],
        "truck": [555, 569, 656, 675, 717, 734, 864, 867],
    ]

    /// The 16 category scores (mean probability of each category's indices)
    /// of one image's 1000 ImageNet probabilities.
    public static func scores(probabilities p: [Float]) -> [Double] {
        require(p.count == 1000, "GeirhosCategories.scores", "expected 1000 ImageNet probabilities, got \(p.count)")
        return names.map { name in
            let idx = imageNetIndices[name]!
            return idx.reduce(0.0) { $0 + Double(p[$1]) } / Double(idx.count)
        }
    }

    /// The decided category (index into `names`).
    public static func decision(probabilities p: [Float]) -> Int {
        let s = scores(probabilities: p)
        return s.indices.max { s[$0] < s[$1] }!
    }

    /// One stimulus of a cue-conflict folder.
    public struct Stimulus: Sendable, Equatable {
        public var path: String
        public var shape: Int
        public var texture: Int
    }

    /// Parses `<shape><n>-<texture><m>.png` (e.g. "cat4-elephant1.png") into
    /// category indices; nil when the name has another form.
    public static func parse(fileName: String) -> (shape: Int, texture: Int)? {
        let ns = fileName as NSString
        guard ns.pathExtension.lowercased() == "png" else { return nil }
        let parts = ns.deletingPathExtension.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        func category(_ s: Substring) -> Int? {
            let letters = s.prefix { $0.isLetter }
            let digits = s.dropFirst(letters.count)
            guard !letters.isEmpty, !digits.isEmpty, digits.allSatisfy(\.isNumber) else { return nil }
            return names.firstIndex(of: String(letters))
        }
        guard let s = category(parts[0]), let t = category(parts[1]) else { return nil }
        return (s, t)
    }

    /// The stimuli of a folder in the layout of Geirhos et al.'s
    /// `stimuli/style-transfer-preprocessed-512`: one subfolder per category
    /// (named as in `names`), holding `<shape><n>-<texture><m>.png` files
    /// whose shape is the subfolder's category. Images whose shape and
    /// texture are the same category are left out, as in the benchmark.
    /// Throws an `AnalysisError` naming the first thing that does not fit.
    public static func stimuli(in folder: String) throws -> (stimuli: [Stimulus], excludedSameCategory: Int) {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw AnalysisError("\(folder) is not a folder")
        }
        let layout = "expected Geirhos et al.'s cue-conflict layout: per-category subfolders (\(names.joined(separator: ", "))) "
            + "holding <shape><n>-<texture><m>.png files, e.g. cat/cat4-elephant1.png"
        let entries = (try? fm.contentsOfDirectory(atPath: folder))?.filter { !$0.hasPrefix(".") }.sorted() ?? []
        let subfolders = entries.filter { e in
            var d: ObjCBool = false
            return fm.fileExists(atPath: (folder as NSString).appendingPathComponent(e), isDirectory: &d) && d.boolValue
        }
        guard !subfolders.isEmpty else {
            throw AnalysisError("\(folder) is not a cue-conflict image folder: it has no subfolders; \(layout)")
        }
        if let stray = subfolders.first(where: { !names.contains($0) }) {
            throw AnalysisError("\(folder) is not a cue-conflict image folder: subfolder \"\(stray)\" is not one of the 16 categories; \(layout)")
        }
        var stimuli: [Stimulus] = [], excluded = 0
        for sub in subfolders {
            let dir = (folder as NSString).appendingPathComponent(sub)
            let files = ((try? fm.contentsOfDirectory(atPath: dir)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
            for f in files {
                let path = (dir as NSString).appendingPathComponent(f)
                guard let (s, t) = parse(fileName: f) else {
                    throw AnalysisError("\(path): the name is not <shape><n>-<texture><m>.png with categories among the 16; \(layout)")
                }
                guard names[s] == sub else {
                    throw AnalysisError("\(path): its shape category \"\(names[s])\" differs from its subfolder \"\(sub)\"; \(layout)")
                }
                if s == t { excluded += 1; continue }
                stimuli.append(Stimulus(path: path, shape: s, texture: t))
            }
        }
        guard !stimuli.isEmpty else {
            throw AnalysisError("\(folder) holds no cue-conflict image (shape ≠ texture category); \(layout)")
        }
        return (stimuli, excluded)
    }
}
