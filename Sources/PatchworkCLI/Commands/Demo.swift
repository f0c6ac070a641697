import ArgumentParser
import Foundation
import Patchwork
import PatchworkAnalysis
import PatchworkData
import PatchworkModels
import PatchworkTrain

/// The main job: train a CNN, a ViT, a control ViT and hybrids on ShapeTex over
/// several seeds, each to the same validation accuracy; run every analysis on
/// them; check the CNN-vs-ViT claims over the seeds against their baselines;
/// write the report.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Train a CNN, a ViT, a control ViT and a hybrid on ShapeTex over seeds, analyse them, check the claims, and write an HTML report.",
        discussion: """
        Every model trains until its accuracy on held-out training images reaches the plan's target (default: \
        0.65; --full: 0.85), so that the models are compared at equal accuracy. Writes OUT/seed-<s>/<model>/ (training \
        run + analyses), OUT/seed-<s>/<vit>-untrained/ (the baseline for learned attention), OUT/data-spectrum/ (the \
        frequency bands), OUT/training.json (every run's accuracy and the bar), OUT/claims.json and OUT/report.html. \
        A finished training run with the same settings is reused. The default took 20 minutes on 2 cores; \
        --full (3 seeds, 85 %, 500-image noise analyses) is estimated at 1.5 hours; --quick is a smoke test.
        """)
    @Option(help: "Output folder.") var out: String = "runs/demo"
    @Option(help: "Comma-separated models: the first is the CNN, the second the ViT, the rest hybrids.")
    var models: String = "resnet_nano,vit_nano,coatnet_nano"
    @Option(help: "The ViT with its attention swapped for a depthwise convolution (the control for \"attention is a low-pass filter\"), or none.")
    var control: String = "vit_dwconv_nano"
    @Flag(help: "A smoke test: small data, a low target, small analyses.") var quick = false
    @Flag(help: "The publishable version: 3 seeds, an 85 % target, 500-image noise analyses (estimated at 1.5 hours).") var full = false
    @Option(help: "Training seeds (default: 2; 3 with --full).") var seeds: Int?
    @Option(help: "The first seed; seeds are consecutive from it.") var seed: UInt64 = 0
    @Option(help: "Validation accuracy every model trains to (default: the plan's).") var targetAccuracy: Double?

    /// Sizes of everything.
    struct Plan {
        var seeds: Int, trainImages: Int, validationImages: Int, testImages: Int, maxEpochs: Int, target: Double
        var analysisImages: Int, fourierImages: Int, fourierDraws: Int, noiseImages: Int, conflictImages: Int, singleCueImages: Int
        var corruptionImages: Int, adversarialImages: Int, pgdSteps: Int, pgdRestarts: Int
        var landscapePoints: Int, landscapeImages: Int, hessianImages: Int, hessianBatches: Int, lanczosMaxSteps: Int
        var spectrumImages: Int, costSeconds: Double

        static let standard = Plan(seeds: 2, trainImages: 20_000, validationImages: 2000, testImages: 3000, maxEpochs: 4, target: 0.65,
                                   analysisImages: 200, fourierImages: 24, fourierDraws: 2, noiseImages: 200, conflictImages: 900,
                                   singleCueImages: 300, corruptionImages: 150, adversarialImages: 100, pgdSteps: 5, pgdRestarts: 2,
                                   landscapePoints: 9, landscapeImages: 200, hessianImages: 24, hessianBatches: 3, lanczosMaxSteps: 30,
                                   spectrumImages: 300, costSeconds: 1.5)
        static let full = Plan(seeds: 3, trainImages: 50_000, validationImages: 2000, testImages: 5000, maxEpochs: 6, target: 0.85,
                               analysisImages: 500, fourierImages: 500, fourierDraws: 2, noiseImages: 500, conflictImages: 1800,
                               singleCueImages: 1000, corruptionImages: 500, adversarialImages: 200, pgdSteps: 10, pgdRestarts: 3,
                               landscapePoints: 11, landscapeImages: 500, hessianImages: 64, hessianBatches: 4, lanczosMaxSteps: 80,
                               spectrumImages: 1000, costSeconds: 3)
        static let quick = Plan(seeds: 2, trainImages: 1000, validationImages: 200, testImages: 300, maxEpochs: 2, target: 0.25,
                                analysisImages: 40, fourierImages: 6, fourierDraws: 2, noiseImages: 40, conflictImages: 90,
                                singleCueImages: 60, corruptionImages: 20, adversarialImages: 20, pgdSteps: 2, pgdRestarts: 2,
                                landscapePoints: 3, landscapeImages: 32, hessianImages: 8, hessianBatches: 3, lanczosMaxSteps: 12,
                                spectrumImages: 60, costSeconds: 0.2)
    }

    /// The models by role.
    struct Roles {
        let cnn: String, vit: String, control: String?, hybrids: [String]
        var trained: [String] { [cnn, vit] + (control.map { [$0] } ?? []) + hybrids }
        var untrainedViT: String { vit + "-untrained" }
    }

    func validate() throws {
        try OptionCheck.outputFolder(out)
        for name in models.split(separator: ",") { try OptionCheck.model(name.trimmingCharacters(in: .whitespaces), "--models") }
        if control != "none" {
            try OptionCheck.model(control, "--control")
            let kinds = Set(try Models.create(control, numClasses: ShapeTex.classCount).residualBranchLayers().map(\.recorder.kind))
            guard kinds.contains("depthwise-conv") else {
                throw ValidationError("--control \(control) has no depthwise-convolution token mixer (its residual branches: "
                                      + "\(kinds.sorted().joined(separator: ", "))); the control is a ViT with attention swapped "
                                      + "for a depthwise convolution, such as vit_dwconv_nano, or none")
            }
        }
        if let seeds { try OptionCheck.integer(seeds, "--seeds", atLeast: 1, atMost: 100) }
        if let targetAccuracy { try OptionCheck.between(targetAccuracy, "--target-accuracy", 0, 1, lowIncluded: false, highIncluded: true) }
        guard !(quick && full) else { throw ValidationError("--quick and --full exclude each other") }
    }

    func run() throws {
        let started = Date()
        var plan = quick ? Plan.quick : full ? Plan.full : Plan.standard
        if let seeds { plan.seeds = seeds }
        if let targetAccuracy { plan.target = targetAccuracy }
        let names = models.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard names.count >= 2 else { throw ValidationError("--models needs at least a CNN and a ViT, got \(models)") }
        let roles = Roles(cnn: names[0], vit: names[1], control: control == "none" ? nil : control, hybrids: Array(names.dropFirst(2)))
        for name in roles.trained {
            let size = try Models.variant(name).inputSize
            guard size == 32 else {
                throw ValidationError("the demo trains on 32×32 ShapeTex; \(name) takes \(size)×\(size) inputs (choose _nano variants)")
            }
        }
        guard !(try Models.create(roles.vit, numClasses: ShapeTex.classCount).attentionLayers().isEmpty) else {
            throw ValidationError("the second model is the ViT, whose attention the claims measure; \(roles.vit) has no attention layers")
        }
        let seedList = (0..<plan.seeds).map { seed + UInt64($0) }
        let data = "shapetex:train=\(plan.trainImages + plan.validationImages),test=\(plan.testImages)"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        func elapsed() -> String { String(format: "%.0f s", Date().timeIntervalSince(started)) }
        printProgress("Patchwork demo\(quick ? " (quick)" : full ? " (full)" : ""): \(roles.trained.joined(separator: ", ")) on \(data), "
                      + "\(plan.seeds) seeds, each model to \(Int(plan.target * 100)) % validation accuracy → \(out)")

        // 1. The frequency bands, from ShapeTex's own spectrum.
        let spectrum = try DataSpectrum.runShapeTex(spec: data, imageSize: 32, count: plan.spectrumImages, command: command)
        try spectrum.write(svg: DataSpectrum.svg(spectrum, title: "ShapeTex"), to: "\(out)/data-spectrum")
        let bands = DataSpectrum.bands(spectrum)
        printProgress("[\(elapsed())] frequency bands from ShapeTex's spectrum: low < \(String(format: "%.1f", bands.cutoff)) ≤ high (cycles per image)")

        // 2. Train every model on every seed, to the target.
        var runs: [(seed: UInt64, model: String, summary: TrainingSummary)] = []
        var reused = false
        for s in seedList {
            for name in roles.trained {
                let (summary, wasReused) = try train(name, seed: s, data: data, plan: plan)
                runs.append((s, name, summary))
                reused = reused || wasReused
                let reached = summary.target.map { "target reached after \($0.images) images" } ?? "target NOT reached"
                printProgress(String(format: "[%@] seed %llu %@: test accuracy %.2f%% (%@)", elapsed(), s, name,
                                     100 * summary.testAccuracy, reached))
            }
        }
        let bar = try writeBar(runs, plan: plan)
        printProgress("[\(elapsed())] \(bar)")

        // 3. Analyse: the claims' analyses on every seed; the rest, for the report, on the first.
        for s in seedList {
            try analyse(roles, seed: s, data: data, plan: plan, bands: bands, everything: s == seedList[0])
            printProgress("[\(elapsed())] seed \(s): analyses written to \(seedFolder(s))")
        }

        // 4. Compare on the first seed: CKA of the CNN with each other model; cost of all.
        let first = seedList[0]
        let ckaImages = try ImageSet(try DatasetSpec.open(data, split: .test, imageSize: 32, channels: 3), count: plan.analysisImages)
        for other in roles.trained.dropFirst() {
            let a = try loaded(roles.cnn, seed: first), b = try loaded(other, seed: first)
            let report = try CKAAccumulator.run(a, b, images: ckaImages, sourceA: source(roles.cnn, seed: first, data: data),
                                                sourceB: source(other, seed: first, data: data), batchSize: 50, command: command)
            try report.write(svg: CKAAccumulator.svg(report), to: "\(seedFolder(first))/cka-\(roles.cnn)-vs-\(other)")
        }
        var rows: [CostAnalysis.Row] = []
        for name in roles.trained {
            let model = try Models.create(name, numClasses: ShapeTex.classCount)
            let accuracy = runs.filter { $0.model == name }.map(\.summary.testAccuracy)
            rows.append(CostAnalysis.Row(cost: ModelCost.measure(model, name: name, inputSize: 32, batch: 32, classes: ShapeTex.classCount,
                                                                 seconds: plan.costSeconds),
                                         accuracy: accuracy.reduce(0, +) / Double(max(accuracy.count, 1))))
        }
        let cost = CostAnalysis.report(rows: rows, batch: 32, seconds: plan.costSeconds, classes: ShapeTex.classCount, command: command)
        try cost.write(svg: CostAnalysis.svg(cost), to: "\(out)/cost")
        printProgress("[\(elapsed())] CKA and cost written")

        // 5. The claims over the seeds, and the report.
        let seedResults = seedList.map { s in
            SeedResults(seed: s, cnn: results(roles.cnn, s), vit: results(roles.vit, s),
                        untrainedViT: ModelResults(model: roles.untrainedViT, folder: "\(seedFolder(s))/\(roles.untrainedViT)"),
                        control: roles.control.map { results($0, s) }, hybrids: roles.hybrids.map { results($0, s) })
        }
        let claims = try Claims.evaluate(seedResults, classes: ShapeTex.classCount)
        try AtomicFile.write(try Self.jsonEncoder().encode(claims), to: "\(out)/claims.json")
        let (entries, runRows, found) = try HTMLReport.collect([out, seedFolder(first)])
        let note = "ShapeTex, 32×32, \(plan.trainImages) training images; every model trained until its accuracy on "
            + "\(plan.validationImages) held-out training images reached \(Int(plan.target * 100)) % (at most \(plan.maxEpochs) epochs). "
            + "\(bar) Claims over \(plan.seeds) seeds (\(seedList.map(String.init).joined(separator: ", "))); "
            + "the figures are seed \(first)'s. Each JSON's settings give its exact sizes. "
            + "Made by `\(command)` in \(elapsed()) on this machine"
            + (reused ? " (training runs reused from an earlier call; the table gives each run's training time)." : ".")
        let html = HTMLReport.render(title: "Patchwork demo: CNN vs ViT vs hybrids on ShapeTex", entries: entries, runs: runRows,
                                     claims: found, note: note)
        try AtomicFile.write(Data(html.utf8), to: "\(out)/report.html")
        for c in claims { printProgress("  [\(c.verdict.rawValue)] \(c.claim): \(c.measured)") }
        printProgress("[\(elapsed())] wrote \(out)/report.html")
    }

    /// Readable, stable JSON (keys sorted).
    static func jsonEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return encoder
    }

    var command: String { "patchwork demo" + (quick ? " --quick" : full ? " --full" : "") }
    func seedFolder(_ seed: UInt64) -> String { "\(out)/seed-\(seed)" }
    func folder(_ name: String, seed: UInt64) -> String { "\(seedFolder(seed))/\(name)" }
    func results(_ name: String, _ seed: UInt64) -> ModelResults { ModelResults(model: name, folder: folder(name, seed: seed)) }

    /// Trains `name` with `seed` to the plan's target, or reuses a finished run with the same settings.
    func train(_ name: String, seed: UInt64, data: String, plan: Plan) throws -> (summary: TrainingSummary, reused: Bool) {
        var options = TrainingOptions()
        options.epochs = plan.maxEpochs
        options.augment = "none"
        options.seed = seed
        options.targetAccuracy = plan.target
        options.targetCheckSteps = 20
        let isCNN = Models.list().first { $0.name == name }?.family == "resnet"
        if !isCNN { options.optimizer = "adamw" }   // transformers and hybrids train with AdamW, as in their papers
        let dir = folder(name, seed: seed)
        if let previous = FileManager.default.contents(atPath: dir + "/summary.json") {
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            if let s = try? decoder.decode(TrainingSummary.self, from: previous), s.data == data, s.epochs == options.epochs,
               s.seed == seed, s.options.optimizer == options.optimizer, s.options.targetAccuracy == options.targetAccuracy {
                printProgress("seed \(seed) \(name): reusing the finished run in \(dir)")
                return (s, true)
            }
        }
        let (allTrain, testSet) = try DatasetSpec.openSplits(data, imageSize: 32, channels: 3)
        let (trainSet, validation) = try SubsetDataset.holdingOut(plan.validationImages, of: allTrain, seed: 0)
        Generator.global.reseed(seed)
        let net = try Models.create(name, numClasses: trainSet.classNames.count)
        printProgress("seed \(seed) \(name): \(net.parameterCount.formatted()) parameters, \(options.optimizer), to \(Int(plan.target * 100)) % (≤ \(options.epochs) epochs)")
        fflush(stdout)
        // A previous run's checkpoint with other settings would be resumed by mistake: start clean.
        try? FileManager.default.removeItem(atPath: dir + "/checkpoint.safetensors")
        let trainer = try Trainer(model: net, modelName: name, dataName: data, train: trainSet, test: testSet,
                                  options: options, outDirectory: dir)
        trainer.validation = validation
        return (try trainer.run(), false)
    }

    /// OUT/training.json: every run's accuracy and whether the models reached the bar, in words too.
    func writeBar(_ runs: [(seed: UInt64, model: String, summary: TrainingSummary)], plan: Plan) throws -> String {
        struct Row: Encodable { let seed: UInt64, model: String, testAccuracy: Double, validationAccuracy: Double?, imagesToTarget: Int? }
        struct Bar: Encodable {
            let target: Double, allReachedTarget: Bool, testAccuracySpread: Double, withinFivePoints: Bool, atLeastEightyPercent: Bool
            let statement: String, runs: [Row]
        }
        let accuracies = runs.map(\.summary.testAccuracy)
        let spread = (accuracies.max() ?? 0) - (accuracies.min() ?? 0)
        let reachedAll = runs.allSatisfy { $0.summary.target != nil }
        let atLeast80 = accuracies.allSatisfy { $0 >= 0.8 }
        let statement: String
        if atLeast80 {
            statement = "Bar: every model ≥ 80 % clean test accuracy (lowest \(String(format: "%.1f", 100 * (accuracies.min() ?? 0))) %)."
        } else if spread <= 0.05 {
            statement = "Bar: clean test accuracies within 5 points of each other (\(String(format: "%.1f–%.1f", 100 * (accuracies.min() ?? 0), 100 * (accuracies.max() ?? 0))) %); below 80 %, which --full aims at."
        } else {
            statement = "Bar NOT met: test accuracies span \(String(format: "%.1f–%.1f", 100 * (accuracies.min() ?? 0), 100 * (accuracies.max() ?? 0))) %"
                + (reachedAll ? "." : "; some runs did not reach the target within \(plan.maxEpochs) epochs.")
        }
        let bar = Bar(target: plan.target, allReachedTarget: reachedAll, testAccuracySpread: spread, withinFivePoints: spread <= 0.05,
                      atLeastEightyPercent: atLeast80, statement: statement,
                      runs: runs.map { Row(seed: $0.seed, model: $0.model, testAccuracy: $0.summary.testAccuracy,
                                           validationAccuracy: $0.summary.validationAccuracy, imagesToTarget: $0.summary.target?.images) })
        let encoder = Self.jsonEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        try AtomicFile.write(try encoder.encode(bar), to: "\(out)/training.json")
        return statement
    }

    func source(_ name: String, seed: UInt64, data: String) -> RunSource {
        RunSource(model: name, weights: folder(name, seed: seed) + "/weights.safetensors", data: data, imageSize: 32,
                  normalization: "patchwork", seed: seed)
    }

    func loaded(_ name: String, seed: UInt64) throws -> AnalysisModel {
        try AnalysisModel.load(name, weights: folder(name, seed: seed) + "/weights.safetensors", classes: ShapeTex.classCount,
                               input: .patchwork(imageSize: 32), batchSize: 100)
    }

    /// The analyses of one seed. The claims need, on every seed: shape bias, the Fourier heat map and
    /// feature frequency of the CNN and the ViT, the ViT's attention distance and that of an untrained
    /// ViT, the Hessian of both, the control's feature frequency. `everything` adds the rest for the report.
    func analyse(_ roles: Roles, seed: UInt64, data: String, plan: Plan, bands: FrequencyBands, everything: Bool) throws {
        let test = try DatasetSpec.open(data, split: .test, imageSize: 32, channels: 3)
        func images(_ count: Int) throws -> ImageSet { try ImageSet(test, count: count, seed: seed) }
        for name in [roles.cnn, roles.vit] {
            let m = try loaded(name, seed: seed)
            let src = source(name, seed: seed, data: data), dir = folder(name, seed: seed)
            let shape = try ShapeBias.runShapeTex(m, spec: data, imageSize: 32, conflictCount: plan.conflictImages,
                                                  singleCueCount: plan.singleCueImages, source: src, command: command)
            try shape.write(svg: ShapeBias.svg(shape, title: name), to: dir)
            let fourier = try FourierHeatmap.run(m, images: try images(plan.fourierImages), norm: 4, draws: plan.fourierDraws, bands: bands,
                                                 seed: seed, source: src, command: command)
            try fourier.write(svg: FourierHeatmap.svg(fourier, title: name), to: dir)
            try featureFrequency(m, name: name, seed: seed, data: data, test: test, plan: plan)
            if name == roles.vit { try attentionDistance(m, source: src, images: try images(plan.analysisImages), to: dir) }
            // The claim reads the extreme eigenvalues (Lanczos to convergence, per batch); the power iteration,
            // trace and density are kept short.
            let hessian = try HessianSpectrum.run(m, images: try images(plan.hessianImages * plan.hessianBatches), source: src,
                                                  eigenvalues: 1, iterations: 2, traceSamples: 2, lanczosRuns: 1, lanczosSteps: 8,
                                                  batches: plan.hessianBatches, lanczosMaxSteps: plan.lanczosMaxSteps,
                                                  seed: seed, command: command)
            try hessian.write(svg: HessianSpectrum.svg(hessian, title: name), to: dir)
            if everything { try reportOnly(m, name: name, source: src, test: test, plan: plan, bands: bands, seed: seed) }
        }
        if let control = roles.control { try featureFrequency(try loaded(control, seed: seed), name: control, seed: seed, data: data, test: test, plan: plan) }
        // The untrained ViT: the same architecture and seed as initialised.
        let untrainedDir = "\(seedFolder(seed))/\(roles.untrainedViT)"
        try FileManager.default.createDirectory(atPath: untrainedDir, withIntermediateDirectories: true)
        Generator.global.reseed(seed)
        let untrained = try Models.create(roles.vit, numClasses: ShapeTex.classCount)
        let weights = untrainedDir + "/weights.safetensors"
        try untrained.save(to: weights, metadata: ["model": roles.vit, "class_names": String(decoding: try JSONEncoder().encode(ShapeTex.combinedNames), as: UTF8.self),
                                                   ModelInput.metadataKey: try ModelInput.patchwork(imageSize: 32).metadataValue()])
        let untrainedSource = RunSource(model: roles.vit, weights: weights, data: data, imageSize: 32, normalization: "patchwork", seed: seed)
        try attentionDistance(AnalysisModel(untrained, input: .patchwork(imageSize: 32), classCount: ShapeTex.classCount),
                              source: untrainedSource, images: try images(plan.analysisImages), to: untrainedDir)
        if everything {
            for hybrid in roles.hybrids {
                let m = try loaded(hybrid, seed: seed)
                let src = source(hybrid, seed: seed, data: data), dir = folder(hybrid, seed: seed)
                let shape = try ShapeBias.runShapeTex(m, spec: data, imageSize: 32, conflictCount: plan.conflictImages,
                                                      singleCueCount: plan.singleCueImages, source: src, command: command)
                try shape.write(svg: ShapeBias.svg(shape, title: hybrid), to: dir)
                try featureFrequency(m, name: hybrid, seed: seed, data: data, test: test, plan: plan)
                if !m.model.attentionLayers().isEmpty { try attentionDistance(m, source: src, images: try images(plan.analysisImages), to: dir) }
            }
        }
    }

    /// Feature frequency with every map pooled to the ViT's 8×8 token grid, and per sub-layer.
    func featureFrequency(_ m: AnalysisModel, name: String, seed: UInt64, data: String, test: any Dataset, plan: Plan) throws {
        let report = try FeatureFrequency.run(m, images: try ImageSet(test, count: plan.analysisImages, seed: seed), resolution: 8,
                                              source: source(name, seed: seed, data: data), command: command)
        try report.write(svg: FeatureFrequency.svg(report, title: name), to: folder(name, seed: seed))
    }

    func attentionDistance(_ m: AnalysisModel, source: RunSource, images: ImageSet, to dir: String) throws {
        let distance = try AttentionDistance.run(m, images: images, source: source, command: command)
        try distance.write(svg: AttentionDistance.svg(distance, title: source.model), to: dir)
    }

    /// The analyses the claims do not read, for the report's pictures (first seed only).
    func reportOnly(_ m: AnalysisModel, name: String, source src: RunSource, test: any Dataset, plan: Plan, bands: FrequencyBands,
                    seed: UInt64) throws {
        let dir = (src.weights as NSString).deletingLastPathComponent
        func images(_ count: Int) throws -> ImageSet { try ImageSet(test, count: count, seed: seed) }
        let noise = try FrequencyNoise.run(m, images: try images(plan.noiseImages), bands: 8, norm: 4, cutoffs: nil, lowHighBands: bands,
                                           seed: seed, source: src, command: command)
        try noise.write(svg: FrequencyNoise.svg(noise, title: name), to: dir)
        let corrupt = try Corruptions.run(m, images: try images(plan.corruptionImages), seed: seed, source: src, command: command)
        try corrupt.write(svg: Corruptions.svg(corrupt, title: name), to: dir)
        let attack = try Adversarial.run(m, images: try images(plan.adversarialImages),
                                         epsilons: [0, 1.0 / 255, 2.0 / 255, 4.0 / 255, 8.0 / 255], steps: plan.pgdSteps,
                                         stepSizeOverEpsilon: 2.5 / Double(plan.pgdSteps), randomStart: true, restarts: plan.pgdRestarts,
                                         seed: seed, source: src, command: command)
        try attack.write(svg: Adversarial.svg(attack, title: name), to: dir)
        if !m.model.attentionLayers().isEmpty {
            do {
                let maps = try AttentionRollout.run(m, images: try images(6), source: src, command: command, directory: dir)
                try maps.write(svg: nil, to: dir)
            } catch let error as AnalysisError {
                printProgress("  \(name): attention maps skipped (\(error))")
            }
        }
        let landscape = try LossLandscape.run(m, images: try images(plan.landscapeImages), source: src,
                                              dimensions: 2, range: 1, points: plan.landscapePoints, seed: seed, command: command)
        try landscape.write(svg: LossLandscape.svg(landscape, title: name), to: dir)
    }
}
