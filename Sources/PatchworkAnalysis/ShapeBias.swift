import Foundation
import Patchwork
import PatchworkData

/// Shape-vs-texture bias (Geirhos et al. 2019): on cue-conflict images (the
/// shape of one class, the texture of another), the fraction of shape
/// decisions among the decisions that match either cue.
public enum ShapeBias {
    public struct Counts: Codable, Sendable {
        public var images = 0
        public var shapeDecisions = 0
        public var textureDecisions = 0
        /// Decisions matching neither cue.
        public var otherDecisions = 0
        /// shape / (shape + texture); NaN when no decision matched a cue.
        public var shapeBias: Double {
            shapeDecisions + textureDecisions == 0 ? .nan : Double(shapeDecisions) / Double(shapeDecisions + textureDecisions)
        }
        /// (shape + texture) / images: how often the model chose either cue at all.
        public var cueMatchRate: Double { images == 0 ? .nan : Double(shapeDecisions + textureDecisions) / Double(images) }

        public init() {}

        public mutating func add(decision: Int, shape: Int, texture: Int) {
            images += 1
            if decision == shape { shapeDecisions += 1 } else if decision == texture { textureDecisions += 1 } else { otherDecisions += 1 }
        }

        enum CodingKeys: String, CodingKey { case images, shapeDecisions, textureDecisions, otherDecisions, shapeBias, cueMatchRate }
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(images, forKey: .images)
            try c.encode(shapeDecisions, forKey: .shapeDecisions)
            try c.encode(textureDecisions, forKey: .textureDecisions)
            try c.encode(otherDecisions, forKey: .otherDecisions)
            try c.encode(shapeBias, forKey: .shapeBias)
            try c.encode(cueMatchRate, forKey: .cueMatchRate)
        }
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            images = try c.decode(Int.self, forKey: .images)
            shapeDecisions = try c.decode(Int.self, forKey: .shapeDecisions)
            textureDecisions = try c.decode(Int.self, forKey: .textureDecisions)
            otherDecisions = try c.decode(Int.self, forKey: .otherDecisions)
        }
    }

    /// Overall and per-class tallies; a class row holds the images whose
    /// *shape* is that class (as in Geirhos et al.'s per-category plots).
    public static func tally(decisions: [Int], shapes: [Int], textures: [Int], classCount: Int) -> (overall: Counts, perClass: [Counts]) {
        var overall = Counts(), perClass = [Counts](repeating: Counts(), count: classCount)
        for i in decisions.indices {
            overall.add(decision: decisions[i], shape: shapes[i], texture: textures[i])
            perClass[shapes[i]].add(decision: decisions[i], shape: shapes[i], texture: textures[i])
        }
        return (overall, perClass)
    }

    public struct Summary: AnalysisSummary {
        public static let analysis = "shape-bias"

        public var shapeBias: Double
        public var cueMatchRate: Double
        public var cueConflictImages: Int
        /// Accuracy on ShapeTex's shape-only / texture-only splits (nil for a Geirhos folder).
        public var shapeOnlyAccuracy: Double?
        public var textureOnlyAccuracy: Double?
        /// How many shape-only and texture-only images each accuracy is over (nil for a Geirhos folder).
        public var singleCueImages: Int?
        /// Images left out because shape and texture are the same category (Geirhos folders).
        public var excludedSameCategory: Int?
    }

    public struct ClassRow: Encodable {
        public var className: String
        public var counts: Counts
    }

    public struct Settings: Encodable {
        public var source: RunSource
        public var mode: String
        public var cueConflictImages: Int
        public var singleCueImages: Int?
        public var classMapping: String?
        public var command: String
    }

    public struct Data: Encodable {
        public var overall: Counts
        public var perClass: [ClassRow]
        public var classNames: [String]
    }

    public typealias Report = AnalysisReport<Summary, Settings, Data>

    /// On ShapeTex: `conflictCount` cue-conflict images (cycling through all
    /// 90 ordered class pairs) and `singleCueCount` shape-only and
    /// texture-only images, from the ShapeTex spec `spec` at `imageSize`.
    public static func runShapeTex(_ model: AnalysisModel, spec: String, imageSize: Int, conflictCount: Int, singleCueCount: Int,
                                   source: RunSource, command: String, progress: ProgressHandler? = nil) throws -> Report {
        guard let conflict = try DatasetSpec.shapeTex(spec, split: .cueConflict, imageSize: imageSize),
              let shapeOnly = try DatasetSpec.shapeTex(spec, split: .shapeOnly, imageSize: imageSize),
              let textureOnly = try DatasetSpec.shapeTex(spec, split: .textureOnly, imageSize: imageSize) else {
            throw AnalysisError("shape-bias needs ShapeTex (--data shapetex[:…]) or a cue-conflict image folder; got \(spec)")
        }
        let conflictSet = try ImageSet(try ShapeTex(split: .cueConflict, count: conflictCount, size: conflict.size, seed: conflict.seed, noise: conflict.noise), count: nil)
        progress?("shape-bias: \(conflictSet.count) cue-conflict images")
        let decisions = model.predictions(conflictSet.images)
        let shapes = conflictSet.indices.map { conflict.shapeLabel($0)! }
        let textures = conflictSet.indices.map { conflict.textureLabel($0)! }
        let (overall, perClass) = tally(decisions: decisions, shapes: shapes, textures: textures, classCount: ShapeTex.classCount)
        progress?("shape-bias: \(singleCueCount) shape-only and \(singleCueCount) texture-only images")
        let so = try ImageSet(try ShapeTex(split: .shapeOnly, count: singleCueCount, size: shapeOnly.size, seed: shapeOnly.seed, noise: shapeOnly.noise), count: nil)
        let to = try ImageSet(try ShapeTex(split: .textureOnly, count: singleCueCount, size: textureOnly.size, seed: textureOnly.seed, noise: textureOnly.noise), count: nil)
        let summary = Summary(shapeBias: overall.shapeBias, cueMatchRate: overall.cueMatchRate, cueConflictImages: overall.images,
                              shapeOnlyAccuracy: model.accuracy(so.images, labels: so.labels),
                              textureOnlyAccuracy: model.accuracy(to.images, labels: to.labels), singleCueImages: so.count,
                              excludedSameCategory: nil)
        let names = ShapeTex.combinedNames
        return Report(analysis: Summary.analysis, summary: summary,
                      settings: Settings(source: source, mode: "shapetex", cueConflictImages: conflictSet.count,
                                         singleCueImages: singleCueCount, classMapping: nil, command: command),
                      data: Data(overall: overall, perClass: zip(names, perClass).map { ClassRow(className: $0, counts: $1) },
                                 classNames: names))
    }

    /// On a folder of Geirhos et al.'s cue-conflict stimuli with an
    /// ImageNet-1k model: 1000 probabilities → 16 categories by
    /// `GeirhosCategories`. The stimuli go through the model's own input
    /// pipeline (a published checkpoint's evaluation transform).
    public static func runGeirhosFolder(_ model: AnalysisModel, folder: String, source: RunSource, command: String,
                                        progress: ProgressHandler? = nil) throws -> Report {
        let (stimuli, excluded) = try GeirhosCategories.stimuli(in: folder)
        progress?("shape-bias: \(stimuli.count) cue-conflict images in \(folder) (\(excluded) with shape = texture left out)")
        var decisions: [Int] = []
        var start = 0
        while start < stimuli.count {
            let end = min(stimuli.count, start + model.batchSize)
            var images: [Tensor] = []
            for s in stimuli[start..<end] {
                do { images.append(try model.input.pixels(contentsOf: s.path)) } catch { throw AnalysisError("\(error)") }
            }
            let logits = model.logits(stack(images, axis: 0))
            guard logits.shape[1] == 1000 else {
                throw AnalysisError("a cue-conflict folder needs an ImageNet-1k model (1000 classes) for the 16-category mapping; "
                    + "this model has \(logits.shape[1]) classes")
            }
            let p = withoutGrad { logits.softmax(axis: -1) }.scalars
            for b in 0..<(end - start) { decisions.append(GeirhosCategories.decision(probabilities: Array(p[(b * 1000)..<(b * 1000 + 1000)]))) }
            progress?("shape-bias: \(end)/\(stimuli.count)")
            start = end
        }
        let (overall, perClass) = tally(decisions: decisions, shapes: stimuli.map(\.shape), textures: stimuli.map(\.texture),
                                        classCount: GeirhosCategories.names.count)
        let summary = Summary(shapeBias: overall.shapeBias, cueMatchRate: overall.cueMatchRate, cueConflictImages: overall.images,
                              shapeOnlyAccuracy: nil, textureOnlyAccuracy: nil, singleCueImages: nil,
                              excludedSameCategory: excluded)
        return Report(analysis: Summary.analysis, summary: summary,
                      settings: Settings(source: source, mode: "geirhos-folder", cueConflictImages: stimuli.count, singleCueImages: nil,
                                         classMapping: "16-class-ImageNet, mean probability per category (rgeirhos/texture-vs-shape helper/human_categories.py)",
                                         command: command),
                      data: Data(overall: overall, perClass: zip(GeirhosCategories.names, perClass).map { ClassRow(className: $0, counts: $1) },
                                 classNames: GeirhosCategories.names))
    }

    /// Per-class shape bias as bars, with the overall value in the title.
    public static func svg(_ report: Report, title: String) -> String {
        let rows = report.data.perClass
        return SVGPlot.barChart(
            title: String(format: "%@ — shape bias %.3f (%d cue-conflict images)", title, report.summary.shapeBias, report.summary.cueConflictImages),
            categories: rows.map(\.className),
            series: [SVGPlot.Series(name: "shape bias", x: rows.indices.map(Double.init), y: rows.map { $0.counts.shapeBias }),
                     SVGPlot.Series(name: "cue match rate", x: rows.indices.map(Double.init), y: rows.map { $0.counts.cueMatchRate })],
            yLabel: "fraction (per shape class)", yRange: 0...1)
    }
}
