import ArgumentParser
import Foundation
import Patchwork
import PatchworkAnalysis
import PatchworkData
import PatchworkModels
import PatchworkTrain

// The analyses of how a model works inside (issue 9): attention distance and
// rollout, CKA between two models, loss landscape, Hessian spectrum, cost.

struct AttentionDistanceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attention-distance",
        abstract: "Mean attention distance per layer and head, in input pixels (Dosovitskiy et al. 2021, Fig. 7).")
    @OptionGroup var options: AnalysisOptions
    @Option(help: "Test images.") var samples: Int = 200

    func run() throws {
        let (m, set, source) = try options.load(samples: samples)
        let report = try AttentionDistance.run(m, images: set, source: source, command: commandLineText, progress: printProgress)
        for l in report.data.layers {
            print(String(format: "  %-28@ mean %6.2f px  heads %@", l.key, l.mean,
                         l.heads.map { String(format: "%.1f", $0) }.joined(separator: " ")))
        }
        try options.write(report, name: "attention-distance", svg: AttentionDistance.svg(report, title: options.title))
    }
}

struct AttentionMapsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attention-maps",
        abstract: "Attention rollout (Abnar & Zuidema 2020) for a few test images, as PNG overlays.",
        discussion: "For models whose attention layers all mix one token set (ViT, hybrid ViT, ViT with conv stem, ConViT, ...).")
    @OptionGroup var options: AnalysisOptions
    @Option(help: "Test images to overlay.") var samples: Int = 8
    @Option(help: "Upscaling of the written overlays.") var scale: Int = 4

    func run() throws {
        guard scale >= 1 else { throw ValidationError("--scale must be at least 1, got \(scale)") }
        let (m, set, source) = try options.load(samples: samples)
        let report = try AttentionRollout.run(m, images: set, source: source, command: commandLineText, directory: options.out, scale: scale)
        print("wrote \(report.data.files.count) overlays (\(report.data.gridHeight)×\(report.data.gridWidth) tokens) into \(options.out)")
        try options.write(report, name: "attention-maps", svg: nil)
    }
}

struct CKACommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cka",
        abstract: "Linear CKA between every layer of two models (minibatch unbiased estimator, Nguyen et al. 2021).")
    @OptionGroup var options: AnalysisOptions
    @Option(help: "The second model's variant.") var modelB: String
    @Option(help: "The second model's weights.") var weightsB: String
    @Option(help: "Test images.") var samples: Int = 512
    @Option(help: "Images per CKA minibatch (≥ 4).") var ckaBatch: Int = 64

    func run() throws {
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
        try options.write(report, name: "cka", svg: CKAAccumulator.svg(report))
    }
}

struct LandscapeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "landscape",
        abstract: "Loss and accuracy along filter-normalised random directions (Li et al. 2018).")
    @OptionGroup var options: AnalysisOptions
    @Option(help: "Test images the loss is measured on.") var samples: Int = 256
    @Option(help: "1 (a curve) or 2 (a contour map and a surface).") var dimensions: Int = 2
    @Option(help: "The grid spans −range…range along each direction.") var range: Double = 1
    @Option(help: "Grid points along each direction.") var points: Int = 11

    func run() throws {
        let (m, set, source) = try options.load(samples: samples)
        let report = try LossLandscape.run(m, images: set, source: source, dimensions: dimensions, range: range, points: points,
                                           seed: options.seed, command: commandLineText, progress: printProgress)
        print(String(format: "centre loss %.4f (accuracy %.3f), edge loss %.3f, convex along %.0f%% of grid lines",
                     report.summary.centerLoss, report.summary.centerAccuracy, report.summary.edgeLoss, 100 * report.summary.convexFraction))
        try options.write(report, name: "landscape", svg: LossLandscape.svg(report, title: options.title))
    }
}

struct HessianCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hessian",
        abstract: "Top Hessian eigenvalues, trace and eigenvalue density from exact Hessian-vector products (as PyHessian).")
    @OptionGroup var options: AnalysisOptions
    @Option(help: "Test images the loss is measured on.") var samples: Int = 128
    @Option(help: "Top eigenvalues to find.") var eigenvalues: Int = 3
    @Option(help: "Power iterations per eigenvalue at most.") var iterations: Int = 20
    @Option(help: "Hutchinson samples for the trace.") var traceSamples: Int = 10
    @Option(help: "Lanczos runs for the density.") var lanczosRuns: Int = 2
    @Option(help: "Lanczos steps per run.") var lanczosSteps: Int = 24

    func run() throws {
        let (m, set, source) = try options.load(samples: samples)
        let report = try HessianSpectrum.run(m, images: set, source: source, eigenvalues: eigenvalues, iterations: iterations,
                                             traceSamples: traceSamples, lanczosRuns: lanczosRuns, lanczosSteps: lanczosSteps,
                                             seed: options.seed, command: commandLineText, progress: printProgress)
        let s = report.summary
        print(String(format: "top eigenvalue %.4g, trace %.4g ± %.2g, most negative %.4g, negative mass %.3f",
                     s.topEigenvalue, s.trace, s.traceStandardError, s.mostNegativeEigenvalue, s.negativeMass))
        try options.write(report, name: "hessian", svg: HessianSpectrum.svg(report, title: options.title))
    }
}

struct CostCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cost",
        abstract: "Parameters, FLOPs, throughput and peak memory of models; with run folders, accuracy against FLOPs.")
    @Option(help: "Comma-separated model variants.") var models: String?
    @Option(parsing: .upToNextOption, help: "Training run folders (their summary.json gives model and accuracy).") var runs: [String] = []
    @Option(help: "Output folder.") var out: String
    @Option(help: "Images per timed batch.") var batch: Int = 32
    @Option(help: "Seconds per timed mode.") var seconds: Double = 2
    @Option(help: "Classes of the classifier head (when no run gives them).") var classes: Int = 10

    func run() throws {
        guard batch >= 1, seconds > 0 else { throw ValidationError("--batch must be ≥ 1 and --seconds > 0") }
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
        let paths = try AnalysisOutput.write(report, name: "cost", svg: CostAnalysis.svg(report), to: out)
        print("wrote \(paths.joined(separator: " and "))")
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Gather the analyses in run folders into one self-contained HTML page.")
    @Argument(help: "Folders holding analysis results (and their subfolders).") var folders: [String]
    @Option(help: "The HTML file to write.") var out: String = "report.html"
    @Option(help: "The page title.") var title: String = "Patchwork: CNN vs ViT vs hybrids"

    func run() throws {
        let (entries, runs, claims) = try HTMLReport.collect(folders)
        let html = HTMLReport.render(title: title, entries: entries, runs: runs, claims: claims)
        try AnalysisOutput.writeAtomically(Data(html.utf8), to: out)
        print("wrote \(out): \(entries.count) analysis results, \(runs.count) runs, \(claims.count) claims")
    }
}
