import ArgumentParser
import Foundation
import Patchwork
import PatchworkAnalysis
import PatchworkData
import PatchworkModels
import PatchworkTrain

/// The main job: train a CNN, a ViT and hybrids on ShapeTex, run every analysis
/// on them, check the CNN-vs-ViT claims against the numbers, write the report.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Train a CNN, a ViT and two hybrids on ShapeTex, analyse them all, and write an HTML report.",
        discussion: """
        Writes OUT/<model>/ (training run + every analysis), OUT/cka-*/, OUT/cost/, OUT/claims.json and \
        OUT/report.html. A finished training run found in OUT/<model>/ with the same settings is reused, so a \
        second call only re-runs the analyses. --quick trains and measures less (about 3 minutes on 2 cores).
        """)
    @Option(help: "Output folder.") var out: String = "runs/demo"
    @Option(help: "Comma-separated models: the first is the CNN, the second the ViT, the rest hybrids.")
    var models: String = "resnet_nano,vit_nano,vitc_nano,coatnet_nano"
    @Flag(help: "A fast pass: fewer training images and epochs, smaller analyses.") var quick = false
    @Option(help: "Random seed.") var seed: UInt64 = 0

    /// Sizes of everything, full and quick.
    struct Plan {
        let trainImages: Int, testImages: Int, epochs: Int
        let analysisImages: Int, fourierImages: Int, conflictImages: Int, singleCueImages: Int
        let corruptionImages: Int, adversarialImages: Int, pgdSteps: Int
        let landscapePoints: Int, landscapeImages: Int, hessianImages: Int, hessianIterations: Int, lanczosSteps: Int
        let costSeconds: Double

        static let full = Plan(trainImages: 6000, testImages: 1000, epochs: 4, analysisImages: 250, fourierImages: 40,
                               conflictImages: 900, singleCueImages: 300, corruptionImages: 150, adversarialImages: 100, pgdSteps: 5,
                               landscapePoints: 9, landscapeImages: 200, hessianImages: 48, hessianIterations: 8, lanczosSteps: 14,
                               costSeconds: 1.5)
        static let quick = Plan(trainImages: 2000, testImages: 300, epochs: 2, analysisImages: 60, fourierImages: 8,
                                conflictImages: 180, singleCueImages: 60, corruptionImages: 40, adversarialImages: 40, pgdSteps: 3,
                                landscapePoints: 5, landscapeImages: 48, hessianImages: 16, hessianIterations: 3, lanczosSteps: 6,
                                costSeconds: 0.3)
    }

    func validate() throws {
        try OptionCheck.outputFolder(out)
        for name in models.split(separator: ",") { try OptionCheck.model(name.trimmingCharacters(in: .whitespaces), "--models") }
    }

    func run() throws {
        let started = Date()
        let plan = quick ? Plan.quick : Plan.full
        let names = models.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard names.count >= 2 else { throw ValidationError("--models needs at least a CNN and a ViT, got \(models)") }
        for name in names {
            let size = try Models.variant(name).inputSize
            guard size == 32 else {
                throw ValidationError("the demo trains on 32×32 ShapeTex; \(name) takes \(size)×\(size) inputs (choose _nano variants)")
            }
        }
        guard !(try Models.create(names[1], numClasses: ShapeTex.classCount).attentionLayers().isEmpty) else {
            throw ValidationError("the second model is the ViT, whose attention the claims measure; \(names[1]) has no attention layers")
        }
        let data = "shapetex:train=\(plan.trainImages),test=\(plan.testImages)"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        func elapsed() -> String { String(format: "%.0f s", Date().timeIntervalSince(started)) }
        printProgress("Patchwork demo\(quick ? " (quick)" : ""): \(names.joined(separator: ", ")) on \(data) → \(out)")

        // 1. Train.
        var summaries: [String: TrainingSummary] = [:]
        var reused = false
        for name in names {
            let (summary, wasReused) = try train(name, data: data, plan: plan)
            summaries[name] = summary
            reused = reused || wasReused
            printProgress(String(format: "[%@] %@: test accuracy %.2f%%", elapsed(), name, 100 * summaries[name]!.testAccuracy))
        }

        // 2. Analyse every model.
        for name in names {
            try analyse(name, data: data, plan: plan)
            printProgress("[\(elapsed())] \(name): analyses written to \(folder(name))")
        }

        // 3. Compare: CKA of the CNN with each other model; cost of all.
        for other in names.dropFirst() {
            let a = try loaded(names[0]), b = try loaded(other)
            let set = try ImageSet(try DatasetSpec.open(data, split: .test, imageSize: 32, channels: 3), count: plan.analysisImages)
            let report = try CKAAccumulator.run(a.model, b.model, images: set, sourceA: a.source(data), sourceB: b.source(data),
                                                batchSize: 50, command: "patchwork demo")
            try report.write(svg: CKAAccumulator.svg(report), to: "\(out)/cka-\(names[0])-vs-\(other)")
        }
        var rows: [CostAnalysis.Row] = []
        for name in names {
            let model = try Models.create(name, numClasses: ShapeTex.classCount)
            rows.append(CostAnalysis.Row(cost: ModelCost.measure(model, name: name, inputSize: 32, batch: 32, classes: ShapeTex.classCount,
                                                                 seconds: plan.costSeconds),
                                         accuracy: summaries[name]?.testAccuracy))
        }
        let cost = CostAnalysis.report(rows: rows, batch: 32, seconds: plan.costSeconds, classes: ShapeTex.classCount, command: "patchwork demo")
        try cost.write(svg: CostAnalysis.svg(cost), to: "\(out)/cost")
        printProgress("[\(elapsed())] CKA and cost written")

        // 4. The claims, checked, and the report.
        let results = names.map { ModelResults(model: $0, folder: folder($0)) }
        let claims = try Claims.evaluate(cnn: results[0], vit: results[1], hybrids: Array(results.dropFirst(2)))
        try AtomicFile.write(try JSONEncoder().encode(claims), to: "\(out)/claims.json")
        let (entries, runs, found) = try HTMLReport.collect([out])
        let note = "ShapeTex, 32×32, \(plan.trainImages) training images, \(plan.epochs) epochs per model; "
            + "analyses on \(plan.analysisImages) test images (fewer for the costly ones; each JSON's settings say exactly). "
            + "Made by `patchwork demo\(quick ? " --quick" : "")` in \(elapsed()) on this machine"
            + (reused ? " (training runs reused from an earlier call; the table gives each run's training time)." : ".")
        let html = HTMLReport.render(title: "Patchwork demo: CNN vs ViT vs hybrids on ShapeTex", entries: entries, runs: runs,
                                     claims: found, note: note)
        try AtomicFile.write(Data(html.utf8), to: "\(out)/report.html")
        for c in claims { printProgress("  [\(c.held ? "held" : "did not hold")] \(c.claim): \(c.measured)") }
        printProgress("[\(elapsed())] wrote \(out)/report.html")
    }

    func folder(_ name: String) -> String { "\(out)/\(name)" }

    /// Trains `name`, or reuses a finished run with the same settings.
    func train(_ name: String, data: String, plan: Plan) throws -> (summary: TrainingSummary, reused: Bool) {
        var options = TrainingOptions()
        options.epochs = plan.epochs
        options.augment = "none"
        options.seed = seed
        let isCNN = Models.list().first { $0.name == name }?.family == "resnet"
        if !isCNN { options.optimizer = "adamw" }   // transformers and hybrids train with AdamW, as in their papers
        let summaryPath = folder(name) + "/summary.json"
        if let previous = FileManager.default.contents(atPath: summaryPath) {
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            if let s = try? decoder.decode(TrainingSummary.self, from: previous), s.data == data, s.epochs == options.epochs,
               s.seed == seed, s.options.optimizer == options.optimizer {
                printProgress("\(name): reusing the finished run in \(folder(name))")
                return (s, true)
            }
        }
        let (trainSet, testSet) = try DatasetSpec.openSplits(data, imageSize: 32, channels: 3)
        Generator.global.reseed(seed)
        let net = try Models.create(name, numClasses: trainSet.classNames.count)
        printProgress("\(name): \(net.parameterCount.formatted()) parameters, \(options.optimizer), \(options.epochs) epochs")
        fflush(stdout)
        // A previous run's checkpoint with other settings would be resumed by mistake: start clean.
        try? FileManager.default.removeItem(atPath: folder(name) + "/checkpoint.safetensors")
        let trainer = try Trainer(model: net, modelName: name, dataName: data, train: trainSet, test: testSet,
                                  options: options, outDirectory: folder(name))
        return (try trainer.run(), false)
    }

    struct Loaded {
        let name: String
        let model: AnalysisModel
        let seed: UInt64
        func source(_ data: String) -> RunSource {
            RunSource(model: name, weights: "weights.safetensors", data: data, imageSize: 32, normalization: "patchwork", seed: seed)
        }
    }

    func loaded(_ name: String) throws -> Loaded {
        Loaded(name: name, model: try AnalysisModel.load(name, weights: folder(name) + "/weights.safetensors",
                                                         classes: ShapeTex.classCount, input: .patchwork(imageSize: 32), batchSize: 100),
               seed: seed)
    }

    /// Every single-model analysis of `name`, written into its folder.
    func analyse(_ name: String, data: String, plan: Plan) throws {
        let m = try loaded(name)
        let source = RunSource(model: name, weights: folder(name) + "/weights.safetensors", data: data, imageSize: 32,
                               normalization: "patchwork", seed: seed)
        let test = try DatasetSpec.open(data, split: .test, imageSize: 32, channels: 3)
        let set = try ImageSet(test, count: plan.analysisImages)
        let dir = folder(name)
        let command = "patchwork demo\(quick ? " --quick" : "")"
        let title = name
        let shape = try ShapeBias.runShapeTex(m.model, spec: data, imageSize: 32, conflictCount: plan.conflictImages,
                                              singleCueCount: plan.singleCueImages, source: source, command: command)
        try shape.write(svg: ShapeBias.svg(shape, title: title), to: dir)
        let fourier = try FourierHeatmap.run(m.model, images: try ImageSet(test, count: plan.fourierImages), norm: 4, seed: seed,
                                             source: source, command: command)
        try fourier.write(svg: FourierHeatmap.svg(fourier, title: title), to: dir)
        let bands = try FrequencyNoise.run(m.model, images: set, bands: 8, norm: 4, cutoffs: nil, seed: seed, source: source, command: command)
        try bands.write(svg: FrequencyNoise.svg(bands, title: title), to: dir)
        let features = try FeatureFrequency.run(m.model, images: try ImageSet(test, count: min(plan.analysisImages, 200)),
                                                source: source, command: command)
        try features.write(svg: FeatureFrequency.svg(features, title: title), to: dir)
        let corrupt = try Corruptions.run(m.model, images: try ImageSet(test, count: plan.corruptionImages), seed: seed,
                                          source: source, command: command)
        try corrupt.write(svg: Corruptions.svg(corrupt, title: title), to: dir)
        let attack = try Adversarial.run(m.model, images: try ImageSet(test, count: plan.adversarialImages),
                                         epsilons: [0, 1.0 / 255, 2.0 / 255, 4.0 / 255, 8.0 / 255], steps: plan.pgdSteps,
                                         stepSizeOverEpsilon: 2.5 / Double(plan.pgdSteps), randomStart: true, seed: seed,
                                         source: source, command: command)
        try attack.write(svg: Adversarial.svg(attack, title: title), to: dir)
        if !m.model.model.attentionLayers().isEmpty {
            let distance = try AttentionDistance.run(m.model, images: try ImageSet(test, count: min(plan.analysisImages, 200)),
                                                     source: source, command: command)
            try distance.write(svg: AttentionDistance.svg(distance, title: title), to: dir)
            do {
                let maps = try AttentionRollout.run(m.model, images: try ImageSet(test, count: 6), source: source, command: command,
                                                    directory: dir)
                try maps.write(svg: nil, to: dir)
            } catch let error as AnalysisError {
                printProgress("  \(name): attention maps skipped (\(error))")
            }
        }
        let landscape = try LossLandscape.run(m.model, images: try ImageSet(test, count: plan.landscapeImages), source: source,
                                              dimensions: 2, range: 1, points: plan.landscapePoints, seed: seed, command: command)
        try landscape.write(svg: LossLandscape.svg(landscape, title: title), to: dir)
        let hessian = try HessianSpectrum.run(m.model, images: try ImageSet(test, count: plan.hessianImages), source: source,
                                              eigenvalues: 1, iterations: plan.hessianIterations, traceSamples: quick ? 2 : 4,
                                              lanczosRuns: 1, lanczosSteps: plan.lanczosSteps, seed: seed, command: command)
        try hessian.write(svg: HessianSpectrum.svg(hessian, title: title), to: dir)
    }
}
