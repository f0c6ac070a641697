import ArgumentParser
import Foundation
import Patchwork
import PatchworkAnalysis
import PatchworkData
import PatchworkModels
import PatchworkTrain

struct AnalyzeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analyze",
        abstract: "Dissect a trained model: shape bias, noise by frequency, feature frequencies, corruptions, adversarial attacks, attention distance and maps, CKA, loss landscape, Hessian spectrum, cost.",
        discussion: """
        Each analysis writes OUT/<name>.json (a summary with the headline numbers, the settings that reproduce it, \
        and all the data) and OUT/<name>.svg (the picture). Perturbations happen on [0, 1] pixels, before the \
        model's input standardisation (--normalize: patchwork for weights trained here, imagenet for reference \
        checkpoints; by default chosen from the weights: class names in the file mean patchwork).
        """,
        subcommands: [ShapeBiasCommand.self, FourierHeatmapCommand.self, FrequencyNoiseCommand.self, FeatureFrequencyCommand.self,
                      CorruptionsCommand.self, AdversarialCommand.self, AttentionDistanceCommand.self, AttentionMapsCommand.self,
                      CKACommand.self, LandscapeCommand.self, HessianCommand.self, CostCommand.self])
}

/// The options every analysis shares, and the one way they load a model and data.
struct AnalysisOptions: ParsableArguments {
    @Option(help: "Model variant (see `patchwork models`).") var model: String
    @Option(help: "Weights (weights.safetensors or checkpoint.safetensors of a run, or a reference checkpoint).") var weights: String
    @Option(help: "Dataset spec, as for train (its test split is used); shape-bias also takes a cue-conflict image folder.")
    var data: String = "shapetex"
    @Option(help: "Output folder (created if missing).") var out: String
    @Option(help: "Image side (default: the model's).") var imgSize: Int?
    @Option(help: "Images per forward pass.") var batchSize: Int = 100
    @Option(help: "Random seed (noise draws, attack starts).") var seed: UInt64 = 0
    @Option(help: "Input standardisation: patchwork or imagenet (default: from the weights).") var normalize: String?

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1, got \(batchSize)") }
        if let s = imgSize, s < 1 { throw ValidationError("--img-size must be positive, got \(s)") }
        if let n = normalize, AnalysisModel.Normalization(rawValue: n) == nil {
            throw ValidationError("--normalize must be patchwork or imagenet, not \(n)")
        }
    }

    var imageSize: Int { get throws { try imgSize ?? Models.variant(model).inputSize } }

    /// The model with its weights; `classes` is checked against the weights when given.
    func loadModel(classes: Int?) throws -> (AnalysisModel, RunSource) {
        let m = try AnalysisModel.load(model, weights: weights, classes: classes,
                                       normalization: normalize.flatMap { AnalysisModel.Normalization(rawValue: $0) }, batchSize: batchSize)
        let source = RunSource(model: model, weights: weights, data: data, imageSize: try imageSize,
                               normalization: m.normalization.rawValue, seed: seed)
        return (m, source)
    }

    /// The model and `samples` images of the data's test split (spread evenly over it).
    func load(samples: Int?) throws -> (AnalysisModel, ImageSet, RunSource) {
        let test = try DatasetSpec.open(data, split: .test, imageSize: try imageSize, channels: 3)
        let (m, source) = try loadModel(classes: test.classNames.count)
        let set = try ImageSet(test, count: samples, seed: seed)
        print("\(model) on \(data): \(set.count) test images of \(set.height)×\(set.width), normalization \(m.normalization.rawValue)")
        fflush(stdout)
        return (m, set, source)
    }

    var title: String { "\(model)" }

    func write<R: Encodable>(_ report: R, name: String, svg: String?) throws {
        let paths = try AnalysisOutput.write(report, name: name, svg: svg, to: out)
        print("wrote \(paths.joined(separator: " and "))")
    }
}

/// The command line as typed, for the settings.
var commandLineText: String { (["patchwork"] + CommandLine.arguments.dropFirst()).joined(separator: " ") }

struct ShapeBiasCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shape-bias",
        abstract: "Shape vs texture decisions on cue-conflict images (Geirhos et al. 2019).",
        discussion: """
        With --data shapetex[:…]: ShapeTex's cue-conflict split (shape of class i, texture of class j ≠ i), plus \
        accuracy on its shape-only and texture-only splits. With --data DIR: a folder of Geirhos et al.'s \
        cue-conflict stimuli (DIR/<category>/<shape><n>-<texture><m>.png, 16 categories) and an ImageNet-1k \
        model, whose 1000 probabilities are averaged per category as in their benchmark; images whose shape and \
        texture are the same category are left out.
        """)
    @OptionGroup var options: AnalysisOptions
    @Option(help: "Cue-conflict images on ShapeTex (every 90 cycle through all class pairs).") var samples: Int = 900
    @Option(help: "Shape-only and texture-only images on ShapeTex.") var singleCueSamples: Int = 500

    func run() throws {
        guard samples >= 1, singleCueSamples >= 1 else { throw ValidationError("--samples and --single-cue-samples must be at least 1") }
        let report: ShapeBias.Report
        let size = try options.imageSize
        if try DatasetSpec.shapeTex(options.data, split: .cueConflict, imageSize: size) != nil {
            let (m, source) = try options.loadModel(classes: ShapeTex.classCount)
            report = try ShapeBias.runShapeTex(m, spec: options.data, imageSize: size, conflictCount: samples, singleCueCount: singleCueSamples,
                                               source: source, command: commandLineText, progress: printProgress)
        } else {
            let folder = options.data.hasPrefix("folder:") ? String(options.data.dropFirst(7)) : options.data
            _ = try GeirhosCategories.stimuli(in: (folder as NSString).expandingTildeInPath)   // layout errors before loading the model
            let (m, source) = try options.loadModel(classes: 1000)
            report = try ShapeBias.runGeirhosFolder(m, folder: (folder as NSString).expandingTildeInPath, imageSize: size, source: source,
                                                    command: commandLineText, progress: printProgress)
        }
        print(String(format: "shape bias %.3f (%d shape, %d texture, %d other decisions of %d images)", report.summary.shapeBias,
                     report.data.overall.shapeDecisions, report.data.overall.textureDecisions, report.data.overall.otherDecisions,
                     report.data.overall.images))
        if let s = report.summary.shapeOnlyAccuracy, let t = report.summary.textureOnlyAccuracy {
            print(String(format: "shape-only accuracy %.3f, texture-only accuracy %.3f", s, t))
        }
        try options.write(report, name: "shape-bias", svg: ShapeBias.svg(report, title: options.title))
    }
}

struct FourierHeatmapCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fourier-heatmap",
        abstract: "Error rate under Fourier-basis noise at every frequency (Yin et al. 2019).")
    @OptionGroup var options: AnalysisOptions
    @Option(help: "Test images.") var samples: Int = 100
    @Option(help: "L2 norm of the noise per channel, in [0, 1] pixel units.") var norm: Double = 4

    func run() throws {
        let (m, set, source) = try options.load(samples: samples)
        let report = try FourierHeatmap.run(m, images: set, norm: norm, seed: options.seed, source: source, command: commandLineText,
                                            progress: printProgress)
        print(String(format: "clean error %.3f; mean error %.3f (low frequencies %.3f, high %.3f)", report.summary.cleanError,
                     report.summary.meanError, report.summary.lowFrequencyError, report.summary.highFrequencyError))
        try options.write(report, name: "fourier-heatmap", svg: FourierHeatmap.svg(report, title: options.title))
    }
}

struct FrequencyNoiseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "frequency-noise",
        abstract: "Accuracy under band-limited Gaussian noise, and of low-pass and high-pass filtered inputs.")
    @OptionGroup var options: AnalysisOptions
    @Option(help: "Test images.") var samples: Int = 500
    @Option(help: "Radial frequency bands, lowest to highest.") var bands: Int = 8
    @Option(help: "L2 norm of the noise per channel, in [0, 1] pixel units.") var norm: Double = 4
    @Option(help: "Cut-off radii for the filters, comma-separated (default: 17 from 0 to the corner).") var cutoffs: String?

    func run() throws {
        let radii = try cutoffs.map { text in
            try text.split(separator: ",").map { s -> Double in
                guard let v = Double(s.trimmingCharacters(in: .whitespaces)), v >= 0 else {
                    throw ValidationError("--cutoffs: \"\(s)\" is not a radius ≥ 0")
                }
                return v
            }
        }
        let (m, set, source) = try options.load(samples: samples)
        let report = try FrequencyNoise.run(m, images: set, bands: bands, norm: norm, cutoffs: radii, seed: options.seed, source: source,
                                            command: commandLineText, progress: printProgress)
        print(String(format: "clean %.3f; lowest band %.3f, highest band %.3f", report.summary.cleanAccuracy,
                     report.summary.lowestBandAccuracy, report.summary.highestBandAccuracy))
        try options.write(report, name: "frequency-noise", svg: FrequencyNoise.svg(report, title: options.title))
    }
}

struct FeatureFrequencyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feature-frequency",
        abstract: "Relative log amplitude of high frequencies in each block's feature maps (Park & Kim 2022, Fig. 2).")
    @OptionGroup var options: AnalysisOptions
    @Option(help: "Test images.") var samples: Int = 200

    func run() throws {
        let (m, set, source) = try options.load(samples: samples)
        let report = try FeatureFrequency.run(m, images: set, source: source, command: commandLineText, progress: printProgress)
        for l in report.data.layers {
            print(String(format: "  %-16@ %2d×%-2d  ΔLog amplitude at π %+.3f", l.name, l.grid[0], l.grid[1], l.highFrequency))
        }
        try options.write(report, name: "feature-frequency", svg: FeatureFrequency.svg(report, title: options.title))
    }
}

struct CorruptionsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "corruptions",
        abstract: "Accuracy under ImageNet-C-style corruptions, 5 severities each.",
        discussion: "Corruptions: \(Corruption.allCases.map(\.rawValue).joined(separator: ", ")).")
    @OptionGroup var options: AnalysisOptions
    @Option(help: "Test images.") var samples: Int = 500
    @Option(help: "Comma-separated subset of the corruptions (default: all).") var only: String?

    func run() throws {
        let chosen = try only.map { text in
            try text.split(separator: ",").map { s -> Corruption in
                let name = s.trimmingCharacters(in: .whitespaces)
                guard let c = Corruption(rawValue: name) else {
                    throw ValidationError("--only: unknown corruption \"\(name)\"; known: \(Corruption.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                return c
            }
        } ?? Corruption.allCases
        let (m, set, source) = try options.load(samples: samples)
        let report = try Corruptions.run(m, images: set, corruptions: chosen, seed: options.seed, source: source, command: commandLineText,
                                         progress: printProgress)
        print(String(format: "clean %.3f; mean corruption accuracy %.3f (%.1f%% of clean)", report.summary.cleanAccuracy,
                     report.summary.meanCorruptionAccuracy, 100 * report.summary.relativeMeanCorruptionAccuracy))
        try options.write(report, name: "corruptions", svg: Corruptions.svg(report, title: options.title))
    }
}

struct AdversarialCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adversarial",
        abstract: "Accuracy under L∞ FGSM and PGD attacks against ε (in [0, 1] pixel units, before standardisation).")
    @OptionGroup var options: AnalysisOptions
    @Option(help: "Test images.") var samples: Int = 200
    @Option(help: "Comma-separated ε values in [0, 1] pixel units (default 0, 1, 2, 4, 8 /255).")
    var epsilons: String = "0,0.00392156862745098,0.00784313725490196,0.01568627450980392,0.03137254901960784"
    @Option(help: "PGD steps.") var steps: Int = 10
    @Option(help: "PGD step size as a multiple of ε.") var stepSize: Double = 0.25
    @Option(help: "PGD random start in the ε-ball: true or false.") var randomStart: Bool = true

    func run() throws {
        let eps = try epsilons.split(separator: ",").map { s -> Double in
            let text = s.trimmingCharacters(in: .whitespaces)
            guard let v = Double(text) else { throw ValidationError("--epsilons: \"\(text)\" is not a number") }
            guard v >= 0 else { throw ValidationError("--epsilons: ε must be ≥ 0 (in [0, 1] pixel units), got \(text)") }
            return v
        }
        let (m, set, source) = try options.load(samples: samples)
        let report = try Adversarial.run(m, images: set, epsilons: eps, steps: steps, stepSizeOverEpsilon: stepSize, randomStart: randomStart,
                                         seed: options.seed, source: source, command: commandLineText, progress: printProgress)
        try options.write(report, name: "adversarial", svg: Adversarial.svg(report, title: options.title))
    }
}
