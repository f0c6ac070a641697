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
        model's input standardisation. Weights trained here keep the preprocessing recorded in their files; a \
        published checkpoint (safetensors or torch.save) gets its tag's evaluation transform, and image files (a \
        folder: or imagenet: dataset, cue-conflict stimuli) are resized and cropped as its reference does it. \
        --normalize patchwork or imagenet (timm's defaults) overrides that.
        """,
        subcommands: [ShapeBiasCommand.self, FourierHeatmapCommand.self, FrequencyNoiseCommand.self, FeatureFrequencyCommand.self,
                      CorruptionsCommand.self, AdversarialCommand.self, AttentionDistanceCommand.self, AttentionMapsCommand.self,
                      CKACommand.self, LandscapeCommand.self, HessianCommand.self, CostCommand.self, DataSpectrumCommand.self])
}

/// The options every analysis shares, and the one way they load a model and data.
struct AnalysisOptions: ParsableArguments {
    @Option(help: "Model variant (see `patchwork models`).") var model: String
    @Option(help: "Weights (weights.safetensors or checkpoint.safetensors of a run, or a published checkpoint: .safetensors, .pth, .bin).") var weights: String
    @Option(help: "Dataset spec, as for train (its test split is used); shape-bias also takes a cue-conflict image folder.")
    var data: String = "shapetex"
    @Option(help: "Output folder (created if missing).") var out: String
    @Option(help: "Image side (default: the model's).") var imgSize: Int?
    @Option(help: "Images per forward pass.") var batchSize: Int = 100
    @Option(help: "Random seed (noise draws, attack starts).") var seed: UInt64 = 0
    @Option(help: "Input pipeline: patchwork or imagenet (default: the weights' own, or the checkpoint's pretrained configuration).") var normalize: String?
    @OptionGroup var precisionOption: PrecisionOption

    func validate() throws {
        try OptionCheck.model(model)
        try OptionCheck.integer(batchSize, "--batch-size", atLeast: 1, atMost: 65_536)
        try OptionCheck.imageSize(imgSize, model: model)
        if let n = normalize, !["patchwork", "imagenet"].contains(n) {
            throw ValidationError("--normalize must be patchwork or imagenet, not \(n)")
        }
        try OptionCheck.outputFolder(out)
    }

    /// A subcommand's `--samples` (and similar image counts): 1 ... 1 000 000.
    static func samples(_ value: Int, _ option: String = "--samples") throws {
        try OptionCheck.integer(value, option, atLeast: 1, atMost: 1_000_000)
    }

    var imageSize: Int { get throws { try imgSize ?? Models.variant(model).inputSize } }

    /// The model with its weights; `classes` is checked against the weights when given.
    func loadModel(classes: Int?) throws -> (AnalysisModel, RunSource) {
        let size = try imageSize
        let input: ModelInput? = switch normalize {
        case "patchwork": .patchwork(imageSize: size)
        case "imagenet": .imageNetDefault(imageSize: size)
        default: nil
        }
        let m = try AnalysisModel.load(model, weights: weights, classes: classes, imageSize: imgSize, input: input, batchSize: batchSize)
        let source = RunSource(model: model, weights: weights, data: data, imageSize: m.input.size.height,
                               normalization: m.input.name, seed: seed)
        return (m, source)
    }

    /// The model and `samples` images of the data's test split (a random subset), through the model's input pipeline.
    func load(samples: Int?) throws -> (AnalysisModel, ImageSet, RunSource) {
        let (m, source) = try loadModel(classes: nil)
        let test = try DatasetSpec.open(data, split: .test, imageSize: m.input.size.height, channels: 3,
                                        preprocessing: m.input.preprocessing)
        if let classes = m.classCount, classes != test.classNames.count {
            throw ValidationError("\(data) has \(test.classNames.count) classes but \(weights) predicts \(classes)")
        }
        let set = try ImageSet(test, count: samples, seed: seed)
        print("\(model) on \(data): \(set.count) test images of \(set.height)×\(set.width), input \(m.input.summary)")
        fflush(stdout)
        return (m, set, source)
    }

    var title: String { "\(model)" }

    func write<S, T, D>(_ report: AnalysisReport<S, T, D>, svg: String?) throws {
        let paths = try report.write(svg: svg, to: out)
        print("wrote \(paths.joined(separator: " and "))")
    }
}

/// An analysis: its work runs in the `--precision` of its shared options.
protocol AnalysisCommand: PrecisionCommand {
    var options: AnalysisOptions { get }
}

extension AnalysisCommand {
    var precision: Precision { options.precisionOption.value }
}

/// The command line as typed, for the settings.
var commandLineText: String { (["patchwork"] + CommandLine.arguments.dropFirst()).joined(separator: " ") }

struct ShapeBiasCommand: AnalysisCommand {
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

    func validate() throws {
        try AnalysisOptions.samples(samples)
        try AnalysisOptions.samples(singleCueSamples, "--single-cue-samples")
    }

    func execute() throws {
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
            report = try ShapeBias.runGeirhosFolder(m, folder: (folder as NSString).expandingTildeInPath, source: source,
                                                    command: commandLineText, progress: printProgress)
        }
        print(String(format: "shape bias %.3f (%d shape, %d texture, %d other decisions of %d images)", report.summary.shapeBias,
                     report.data.overall.shapeDecisions, report.data.overall.textureDecisions, report.data.overall.otherDecisions,
                     report.data.overall.images))
        if let s = report.summary.shapeOnlyAccuracy, let t = report.summary.textureOnlyAccuracy {
            print(String(format: "shape-only accuracy %.3f, texture-only accuracy %.3f", s, t))
        }
        try options.write(report, svg: ShapeBias.svg(report, title: options.title))
    }
}

struct FourierHeatmapCommand: AnalysisCommand {
    static let configuration = CommandConfiguration(
        commandName: "fourier-heatmap",
        abstract: "Error rate under Fourier-basis noise at every frequency (Yin et al. 2019).")
    @OptionGroup var options: AnalysisOptions
    @Option(help: "Test images.") var samples: Int = 100
    @Option(help: "L2 norm of the noise per channel, in [0, 1] pixel units.") var norm: Double = 4
    @Option(help: "Independent sign draws per frequency; the map is their mean, and their spread is reported.") var draws: Int = 1
    @Option(help: "Radius splitting the summary's low (0 < r ≤ cut-off) and high (r > cut-off) bands (default: a quarter of the image side, 8 at 32 px; `analyze data-spectrum` derives one from the data).")
    var bandCutoff: Double?

    func validate() throws {
        try AnalysisOptions.samples(samples)
        try OptionCheck.positive(norm, "--norm")
        try OptionCheck.integer(draws, "--draws", atLeast: 1, atMost: 1000)
        if let bandCutoff { try OptionCheck.nonNegative(bandCutoff, "--band-cutoff") }
    }

    func execute() throws {
        let (m, set, source) = try options.load(samples: samples)
        let bands = bandCutoff.map { FrequencyBands(cutoff: $0, origin: "--band-cutoff") }
        let report = try FourierHeatmap.run(m, images: set, norm: norm, draws: draws, bands: bands, seed: options.seed, source: source,
                                            command: commandLineText, progress: printProgress)
        print(String(format: "clean error %.3f; mean error %.3f (low frequencies %.3f, high %.3f)", report.summary.cleanError,
                     report.summary.meanError, report.summary.lowFrequencyError, report.summary.highFrequencyError))
        try options.write(report, svg: FourierHeatmap.svg(report, title: options.title))
    }
}

struct FrequencyNoiseCommand: AnalysisCommand {
    static let configuration = CommandConfiguration(
        commandName: "frequency-noise",
        abstract: "Accuracy under band-limited Gaussian noise, and of low-pass and high-pass filtered inputs.")
    @OptionGroup var options: AnalysisOptions
    @Option(help: "Test images.") var samples: Int = 500
    @Option(help: "Radial frequency bands, lowest to highest.") var bands: Int = 8
    @Option(help: "L2 norm of the noise per channel, in [0, 1] pixel units.") var norm: Double = 4
    @Option(help: "Cut-off radii for the filters, comma-separated (default: 17 from 0 to the corner).") var cutoffs: String?
    @Option(help: "Radius splitting the low-band (0 < r ≤ cut-off) and high-band (r > cut-off) noise of the summary (default: a quarter of the image side, 8 at 32 px).")
    var bandCutoff: Double?

    var radii: [Double]? {
        get throws {
            try cutoffs.map { text in
                try text.split(separator: ",").map { s -> Double in
                    guard let v = Double(s.trimmingCharacters(in: .whitespaces)), v.isFinite, v >= 0 else {
                        throw ValidationError("--cutoffs: \"\(s)\" is not a radius ≥ 0")
                    }
                    return v
                }
            }
        }
    }

    func validate() throws {
        try AnalysisOptions.samples(samples)
        try OptionCheck.integer(bands, "--bands", atLeast: 1, atMost: 1024)
        try OptionCheck.positive(norm, "--norm")
        if let r = try radii, r.isEmpty { throw ValidationError("--cutoffs must list at least one radius") }
        if let bandCutoff { try OptionCheck.nonNegative(bandCutoff, "--band-cutoff") }
    }

    func execute() throws {
        let radii = try self.radii
        let (m, set, source) = try options.load(samples: samples)
        let report = try FrequencyNoise.run(m, images: set, bands: bands, norm: norm, cutoffs: radii,
                                            lowHighBands: bandCutoff.map { FrequencyBands(cutoff: $0, origin: "--band-cutoff") },
                                            seed: options.seed, source: source, command: commandLineText, progress: printProgress)
        print(String(format: "clean %.3f; lowest band %.3f, highest band %.3f", report.summary.cleanAccuracy,
                     report.summary.lowestBandAccuracy, report.summary.highestBandAccuracy))
        try options.write(report, svg: FrequencyNoise.svg(report, title: options.title))
    }
}

struct FeatureFrequencyCommand: AnalysisCommand {
    static let configuration = CommandConfiguration(
        commandName: "feature-frequency",
        abstract: "Relative log amplitude of high frequencies in each block's feature maps, and the change each residual sub-layer makes to it (Park & Kim 2022, Fig. 2 and 8).",
        discussion: "With --resolution N every feature map is average-pooled to N×N first (maps smaller than N×N, or not a multiple of it, are left out), so that a CNN and a ViT are compared on one grid.")
    @OptionGroup var options: AnalysisOptions
    @Option(help: "Test images.") var samples: Int = 200
    @Option(help: "Pool every feature map to N×N before the FFT (default: each map at its own size).") var resolution: Int?

    func validate() throws {
        try AnalysisOptions.samples(samples)
        if let r = resolution { try OptionCheck.integer(r, "--resolution", atLeast: 2, atMost: 4096) }
    }

    func execute() throws {
        let (m, set, source) = try options.load(samples: samples)
        let report = try FeatureFrequency.run(m, images: set, resolution: resolution, source: source, command: commandLineText,
                                              progress: printProgress)
        for l in report.data.layers {
            print(String(format: "  %-16@ %2d×%-2d  ΔLog amplitude at π %+.3f", l.name, l.measuredGrid[0], l.measuredGrid[1], l.highFrequency))
        }
        for b in report.data.branches {
            print(String(format: "  %-20@ %-14@ change at π %+.3f", b.name, b.kind, b.highFrequencyChange))
        }
        for e in report.data.excluded { print("  left out \(e.what) \(e.name): \(e.reason)") }
        try options.write(report, svg: FeatureFrequency.svg(report, title: options.title))
    }
}

struct CorruptionsCommand: AnalysisCommand {
    static let configuration = CommandConfiguration(
        commandName: "corruptions",
        abstract: "Accuracy under ImageNet-C-style corruptions, 5 severities each.",
        discussion: "Corruptions: \(Corruption.allCases.map(\.rawValue).joined(separator: ", ")).")
    @OptionGroup var options: AnalysisOptions
    @Option(help: "Test images.") var samples: Int = 500
    @Option(help: "Comma-separated subset of the corruptions (default: all).") var only: String?

    var chosen: [Corruption] {
        get throws {
            try only.map { text in
                try text.split(separator: ",").map { s -> Corruption in
                    let name = s.trimmingCharacters(in: .whitespaces)
                    guard let c = Corruption(rawValue: name) else {
                        throw ValidationError("--only: unknown corruption \"\(name)\"; known: \(Corruption.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                    return c
                }
            } ?? Corruption.allCases
        }
    }

    func validate() throws {
        try AnalysisOptions.samples(samples)
        if try chosen.isEmpty { throw ValidationError("--only must name at least one corruption") }
    }

    func execute() throws {
        let chosen = try self.chosen
        let (m, set, source) = try options.load(samples: samples)
        let report = try Corruptions.run(m, images: set, corruptions: chosen, seed: options.seed, source: source, command: commandLineText,
                                         progress: printProgress)
        print(String(format: "clean %.3f; mean corruption accuracy %.3f (%.1f%% of clean)", report.summary.cleanAccuracy,
                     report.summary.meanCorruptionAccuracy, 100 * report.summary.relativeMeanCorruptionAccuracy))
        try options.write(report, svg: Corruptions.svg(report, title: options.title))
    }
}

struct AdversarialCommand: AnalysisCommand {
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
    @Option(help: "PGD restarts from independent random starts; an image is broken if any restart breaks it.") var restarts: Int = 1

    var eps: [Double] {
        get throws {
            try epsilons.split(separator: ",").map { s -> Double in
                let text = s.trimmingCharacters(in: .whitespaces)
                guard let v = Double(text) else { throw ValidationError("--epsilons: \"\(text)\" is not a number") }
                guard v.isFinite, v >= 0, v <= 1 else { throw ValidationError("--epsilons: ε must be in [0, 1] (pixel units), got \(text)") }
                return v
            }
        }
    }

    func validate() throws {
        try AnalysisOptions.samples(samples)
        if try eps.isEmpty { throw ValidationError("--epsilons must list at least one ε") }
        try OptionCheck.integer(steps, "--steps", atLeast: 1, atMost: 10_000)
        try OptionCheck.positive(stepSize, "--step-size")
        try OptionCheck.integer(restarts, "--restarts", atLeast: 1, atMost: 1000)
        if restarts > 1 && !randomStart { throw ValidationError("--restarts \(restarts) needs --random-start true (otherwise every restart is the same attack)") }
    }

    func execute() throws {
        let eps = try self.eps
        let (m, set, source) = try options.load(samples: samples)
        let report = try Adversarial.run(m, images: set, epsilons: eps, steps: steps, stepSizeOverEpsilon: stepSize, randomStart: randomStart,
                                         restarts: restarts, seed: options.seed, source: source, command: commandLineText, progress: printProgress)
        try options.write(report, svg: Adversarial.svg(report, title: options.title))
    }
}

struct AttentionDistanceCommand: AnalysisCommand {
    static let configuration = CommandConfiguration(
        commandName: "attention-distance",
        abstract: "Mean attention distance per layer and head, in input pixels (Dosovitskiy et al. 2021, Fig. 7).")
    @OptionGroup var options: AnalysisOptions
    @Option(help: "Test images.") var samples: Int = 200

    func validate() throws { try AnalysisOptions.samples(samples) }

    func execute() throws {
        let (m, set, source) = try options.load(samples: samples)
        let report = try AttentionDistance.run(m, images: set, source: source, command: commandLineText, progress: printProgress)
        for l in report.data.layers {
            print(String(format: "  %-28@ mean %6.2f px  heads %@", l.key, l.mean,
                         l.heads.map { String(format: "%.1f", $0) }.joined(separator: " ")))
        }
        try options.write(report, svg: AttentionDistance.svg(report, title: options.title))
    }
}

struct AttentionMapsCommand: AnalysisCommand {
    static let configuration = CommandConfiguration(
        commandName: "attention-maps",
        abstract: "Attention rollout (Abnar & Zuidema 2020) for a few test images, as PNG overlays.",
        discussion: "For models whose attention layers all mix one token set (ViT, hybrid ViT, ViT with conv stem, ConViT, ...).")
    @OptionGroup var options: AnalysisOptions
    @Option(help: "Test images to overlay.") var samples: Int = 8
    @Option(help: "Upscaling of the written overlays.") var scale: Int = 4

    func validate() throws {
        try OptionCheck.integer(samples, "--samples", atLeast: 1, atMost: 1000)
        try OptionCheck.integer(scale, "--scale", atLeast: 1, atMost: 64)
    }

    func execute() throws {
        let (m, set, source) = try options.load(samples: samples)
        let report = try AttentionRollout.run(m, images: set, source: source, command: commandLineText, directory: options.out, scale: scale)
        print("wrote \(report.data.files.count) overlays (\(report.data.gridHeight)×\(report.data.gridWidth) tokens) into \(options.out)")
        try options.write(report, svg: nil)
    }
}

struct CKACommand: AnalysisCommand {
    static let configuration = CommandConfiguration(
        commandName: "cka",
        abstract: "Linear CKA between every layer of two models (minibatch unbiased estimator, Nguyen et al. 2021).")
    @OptionGroup var options: AnalysisOptions
    @Option(help: "The second model's variant.") var modelB: String
    @Option(help: "The second model's weights.") var weightsB: String
    @Option(help: "Test images.") var samples: Int = 512
    @Option(help: "Images per CKA minibatch (≥ 4).") var ckaBatch: Int = 64

    func validate() throws {
        try OptionCheck.model(modelB, "--model-b")
        try OptionCheck.imageSize(options.imgSize, model: modelB, "--img-size (for --model-b)")
        try OptionCheck.integer(ckaBatch, "--cka-batch", atLeast: 4, atMost: 65_536)
        try OptionCheck.integer(samples, "--samples", atLeast: ckaBatch, atMost: 1_000_000)
    }

    func execute() throws {
        let (a, set, sourceA) = try options.load(samples: samples)
        var optionsB = options
        optionsB.model = modelB
        optionsB.weights = weightsB
        let (b, sourceB) = try optionsB.loadModel(classes: nil)
        guard try Models.variant(modelB).inputSize == set.height || options.imgSize != nil else {
            throw ValidationError("\(modelB) takes \(try Models.variant(modelB).inputSize)px inputs and \(options.model) \(set.height)px: pass --img-size")
        }
        let report = try CKAAccumulator.run(a, b, images: set, sourceA: sourceA, sourceB: sourceB, batchSize: ckaBatch,
                                            command: commandLineText, progress: printProgress)
        print(String(format: "mean CKA %.3f, first layers %.3f, last layers %.3f", report.summary.meanCka,
                     report.summary.firstLayersCka, report.summary.lastLayersCka))
        try options.write(report, svg: CKAAccumulator.svg(report))
    }
}

struct LandscapeCommand: AnalysisCommand {
    static let configuration = CommandConfiguration(
        commandName: "landscape",
        abstract: "Loss and accuracy along filter-normalised random directions (Li et al. 2018).")
    @OptionGroup var options: AnalysisOptions
    @Option(help: "Test images the loss is measured on.") var samples: Int = 256
    @Option(help: "1 (a curve) or 2 (a contour map and a surface).") var dimensions: Int = 2
    @Option(help: "The grid spans −range…range along each direction.") var range: Double = 1
    @Option(help: "Grid points along each direction.") var points: Int = 11

    func validate() throws {
        try AnalysisOptions.samples(samples)
        try OptionCheck.integer(dimensions, "--dimensions", atLeast: 1, atMost: 2)
        try OptionCheck.positive(range, "--range")
        try OptionCheck.integer(points, "--points", atLeast: 2, atMost: 1001)
    }

    func execute() throws {
        let (m, set, source) = try options.load(samples: samples)
        let report = try LossLandscape.run(m, images: set, source: source, dimensions: dimensions, range: range, points: points,
                                           seed: options.seed, command: commandLineText, progress: printProgress)
        print(String(format: "centre loss %.4f (accuracy %.3f), edge loss %.3f, convex along %.0f%% of grid lines",
                     report.summary.centerLoss, report.summary.centerAccuracy, report.summary.edgeLoss, 100 * report.summary.convexFraction))
        try options.write(report, svg: LossLandscape.svg(report, title: options.title))
    }
}

struct HessianCommand: AnalysisCommand {
    static let configuration = CommandConfiguration(
        commandName: "hessian",
        abstract: "Top Hessian eigenvalues, trace and eigenvalue density from exact Hessian-vector products (as PyHessian).")
    @OptionGroup var options: AnalysisOptions
    @Option(help: "Test images the loss is measured on.") var samples: Int = 128
    @Option(help: "Top eigenvalues to find.") var eigenvalues: Int = 3
    @Option(help: "Power iterations per eigenvalue at most.") var iterations: Int = 20
    @Option(help: "Hutchinson samples for the trace.") var traceSamples: Int = 10
    @Option(help: "Lanczos runs for the density.") var lanczosRuns: Int = 2
    @Option(help: "Lanczos steps per density run.") var lanczosSteps: Int = 24
    @Option(help: "Disjoint batches the --samples images are split into; each gets its own spectrum and the summary averages them.")
    var batches: Int = 1
    @Option(help: "Relative tolerance of the Lanczos run for the top and most negative eigenvalues: it stops when both changed by at most this times |top| in the last step and both residuals ‖Hy − θy‖ are that small.")
    var lanczosTolerance: Double = 1e-3
    @Option(help: "Lanczos steps at most for the top and most negative eigenvalues.") var lanczosMaxSteps: Int = 100

    func validate() throws {
        try AnalysisOptions.samples(samples)
        for (value, option) in [(eigenvalues, "--eigenvalues"), (iterations, "--iterations"), (traceSamples, "--trace-samples"),
                                (lanczosRuns, "--lanczos-runs"), (lanczosSteps, "--lanczos-steps")] {
            try OptionCheck.integer(value, option, atLeast: 1, atMost: 10_000)
        }
        try OptionCheck.integer(batches, "--batches", atLeast: 1, atMost: samples)
        try OptionCheck.positive(lanczosTolerance, "--lanczos-tolerance")
        try OptionCheck.between(lanczosTolerance, "--lanczos-tolerance", 0, 1, highIncluded: false)
        try OptionCheck.integer(lanczosMaxSteps, "--lanczos-max-steps", atLeast: 2, atMost: 10_000)
    }

    func execute() throws {
        let (m, set, source) = try options.load(samples: samples)
        let report = try HessianSpectrum.run(m, images: set, source: source, eigenvalues: eigenvalues, iterations: iterations,
                                             traceSamples: traceSamples, lanczosRuns: lanczosRuns, lanczosSteps: lanczosSteps,
                                             batches: batches, lanczosTolerance: lanczosTolerance, lanczosMaxSteps: lanczosMaxSteps,
                                             seed: options.seed, command: commandLineText, progress: printProgress)
        let s = report.summary
        print(String(format: "top eigenvalue %.4g ± %.2g, trace %.4g ± %.2g, most negative %.4g ± %.2g, negative mass %.3f (%d batches)",
                     s.topEigenvalue, s.topEigenvalueStd, s.trace, s.traceStd, s.mostNegativeEigenvalue, s.mostNegativeEigenvalueStd,
                     s.negativeMass, s.batches))
        if !s.lanczosConverged { print("warning: the Lanczos run did not converge in \(lanczosMaxSteps) steps for every batch (see per_batch)") }
        try options.write(report, svg: HessianSpectrum.svg(report, title: options.title))
    }
}

struct DataSpectrumCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data-spectrum",
        abstract: "Where ShapeTex's shape-only and texture-only images keep their energy in frequency, and the cut-off radius between them.",
        discussion: """
        Writes OUT/data-spectrum.json and .svg: both sets' mean radial power spectra and the cut-off radius r maximising \
        C_shape(r) − C_texture(r) (C the cumulative share of energy at radii ≤ r). Pass it to fourier-heatmap and \
        frequency-noise as --band-cutoff. No model needed.
        """)
    @Option(help: "ShapeTex dataset spec (shapetex or shapetex:key=value,…).") var data: String = "shapetex"
    @Option(help: "Output folder (created if missing).") var out: String
    @Option(help: "Image side.") var imgSize: Int = 32
    @Option(help: "Shape-only and texture-only images each.") var samples: Int = 500

    func validate() throws {
        try AnalysisOptions.samples(samples)
        try OptionCheck.integer(imgSize, "--img-size", atLeast: 8, atMost: 4096)
        try OptionCheck.outputFolder(out)
    }

    func run() throws {
        let report = try DataSpectrum.runShapeTex(spec: data, imageSize: imgSize, count: samples, command: commandLineText)
        let s = report.summary
        print(String(format: "cut-off radius %g: %.1f%% of shape-only and %.1f%% of texture-only energy at or below it", s.cutoffRadius,
                     100 * s.shapeEnergyBelowCutoff, 100 * s.textureEnergyBelowCutoff))
        let paths = try report.write(svg: DataSpectrum.svg(report, title: data), to: out)
        print("wrote \(paths.joined(separator: " and "))")
    }
}

struct CostCommand: PrecisionCommand {
    static let configuration = CommandConfiguration(
        commandName: "cost",
        abstract: "Parameters, FLOPs, throughput and peak memory of models; with run folders, accuracy against FLOPs.")
    @Option(help: "Comma-separated model variants.") var models: String?
    @Option(parsing: .upToNextOption, help: "Training run folders (their summary.json gives model and accuracy).") var runs: [String] = []
    @Option(help: "Output folder.") var out: String
    @Option(help: "Images per timed batch.") var batch: Int = 32
    @Option(help: "Seconds per timed mode.") var seconds: Double = 2
    @Option(help: "Classes of the classifier head (when no run gives them).") var classes: Int = 10
    @OptionGroup var precisionOption: PrecisionOption

    var precision: Precision { precisionOption.value }

    func validate() throws {
        for name in (models ?? "").split(separator: ",") { try OptionCheck.model(name.trimmingCharacters(in: .whitespaces), "--models") }
        try OptionCheck.integer(batch, "--batch", atLeast: 1, atMost: 65_536)
        try OptionCheck.between(seconds, "--seconds", 0.001, 3600, highIncluded: true)
        try OptionCheck.integer(classes, "--classes", atLeast: 1, atMost: ConfigLimits.maxClasses)
        try OptionCheck.outputFolder(out)
    }

    func execute() throws {
        var todo: [(name: String, accuracy: Double?, classes: Int)] = []
        for folder in runs {
            let path = (folder as NSString).appendingPathComponent("summary.json")
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ValidationError("\(folder) has no summary.json (is it a finished training run?)")
            }
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            let summary: TrainingSummary
            do { summary = try decoder.decode(TrainingSummary.self, from: data) } catch {
                throw ValidationError("\(path) is not a training summary: \(error)")
            }
            let classCount = try DatasetSpec.open(summary.data, split: .test).classNames.count
            todo.append((summary.model, summary.testAccuracy, classCount))
        }
        for name in (models ?? "").split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !name.isEmpty {
            todo.append((name, nil, classes))
        }
        guard !todo.isEmpty else { throw ValidationError("give --models or --runs") }
        var rows: [CostAnalysis.Row] = []
        for item in todo {
            let variant = try Models.variant(item.name)
            let model = try variant.create(numClasses: item.classes)
            print("measuring \(item.name) (\(variant.inputSize)px, batch \(batch))…")
            fflush(stdout)
            let cost = ModelCost.measure(model, name: item.name, inputSize: variant.inputSize, batch: batch, classes: item.classes,
                                         seconds: seconds)
            print(String(format: "  %.2fM params, %.4f GFLOP/img, infer %.0f img/s, train %.0f img/s, train peak +%.0f MiB",
                         Double(cost.parameters) / 1e6, cost.gflopsPerImage, cost.inferImagesPerSecond, cost.trainImagesPerSecond,
                         cost.trainPeakMemoryMB))
            rows.append(CostAnalysis.Row(cost: cost, accuracy: item.accuracy))
        }
        let report = CostAnalysis.report(rows: rows, batch: batch, seconds: seconds, classes: classes, command: commandLineText)
        let paths = try report.write(svg: CostAnalysis.svg(report), to: out)
        print("wrote \(paths.joined(separator: " and "))")
    }
}
