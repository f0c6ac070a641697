import ArgumentParser
import Foundation
import Patchwork
import PatchworkAnalysis
import PatchworkData
import PatchworkModels
import PatchworkTrain

/// The seed's CNN-vs-ViT study on published ImageNet checkpoints: every checkpoint in a folder, through its
/// reference's evaluation transform, analysed and compared with the CNN, in one HTML report.
struct StudyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "study",
        abstract: "Analyse published ImageNet checkpoints side by side (shape bias on Geirhos et al.'s stimuli, attention distance, feature frequencies, CKA with the CNN, noise by frequency, Hessian, cost) and write an HTML report.",
        discussion: """
        Every weights file in --weights-dir (.safetensors, .pth, .pyth, .bin) is named by its model, as Patchwork or the \
        reference names it with its tag (resnet50.a1_in1k.safetensors, vit_base_patch16_224.augreg_in21k_ft_in1k.safetensors, \
        pvt_v2_b2.pth), or is a hub download's model.safetensors / pytorch_model.bin in a folder so named. Each goes through \
        its tag's evaluation transform. --stimuli is Geirhos et al.'s cue-conflict folder (16 categories). The analyses \
        that need labels (Fourier heat map, band-limited noise, Hessian) run with --images imagenet:PATH (ImageNet's \
        validation layout) and are skipped without it; the others run on the stimuli. The CNN, which every model is \
        compared with by CKA, is --cnn or the first ResNet found. Writes OUT/<model>/ per checkpoint, OUT/cka-*/, \
        OUT/cost/ and OUT/report.html.
        """)

    @Option(help: "Folder of published checkpoints, each named by its model (and tag).") var weightsDir: String
    @Option(help: "Geirhos et al.'s cue-conflict stimuli: DIR/<category>/<shape><n>-<texture><m>.png.") var stimuli: String
    @Option(help: "Labelled images for the analyses that need labels: imagenet:PATH.") var images: String?
    @Option(help: "Output folder.") var out: String = "runs/study"
    @Option(help: "The CNN the others are compared with (a model name found in --weights-dir).") var cnn: String?
    @Option(help: "Images per analysis (attention distance, feature frequency, CKA, noise).") var samples: Int = 100
    @Option(help: "Images for the Fourier heat map and the Hessian.") var smallSamples: Int = 16
    @Option(help: "Images per forward pass.") var batchSize: Int = 16
    @Option(help: "Random seed.") var seed: UInt64 = 0

    func validate() throws {
        try OptionCheck.outputFolder(out)
        try AnalysisOptions.samples(samples)
        try AnalysisOptions.samples(smallSamples, "--small-samples")
        try OptionCheck.integer(batchSize, "--batch-size", atLeast: 1, atMost: 4096)
        if let cnn { try OptionCheck.model(cnn, "--cnn") }
    }

    /// A checkpoint found in the weights folder.
    struct Checkpoint { let model: String; let path: String }

    static let weightExtensions: Set<String> = ["safetensors", "pth", "pyth", "bin", "pt"]
    static let hubFileNames = ["model.safetensors", "pytorch_model.bin"]

    /// The checkpoints in `folder`, by name; a file whose name is no model is reported and skipped.
    static func checkpoints(in folder: String) throws -> [Checkpoint] {
        let fm = FileManager.default
        guard let entries = try? fm.contentsOfDirectory(atPath: folder) else {
            throw ValidationError("--weights-dir \(folder): not a readable folder")
        }
        var found: [Checkpoint] = []
        for entry in entries.sorted() where !entry.hasPrefix(".") {
            let path = (folder as NSString).appendingPathComponent(entry)
            var isDirectory: ObjCBool = false
            fm.fileExists(atPath: path, isDirectory: &isDirectory)
            let (model, file): (String, String?)
            if isDirectory.boolValue {
                model = entry.replacingOccurrences(of: "timm--", with: "")
                file = hubFileNames.map { (path as NSString).appendingPathComponent($0) }.first { fm.fileExists(atPath: $0) }
            } else {
                let ext = (entry as NSString).pathExtension.lowercased()
                guard weightExtensions.contains(ext) else { continue }
                (model, file) = ((entry as NSString).deletingPathExtension, path)
            }
            guard let file else { continue }
            guard (try? Models.variant(model)) != nil else {
                print("skipping \(path): \"\(model)\" names no model (`patchwork models` lists them)")
                continue
            }
            found.append(Checkpoint(model: model, path: file))
        }
        return found
    }

    func run() throws {
        let started = Date()
        func elapsed() -> String { String(format: "%.0f s", Date().timeIntervalSince(started)) }
        let found = try Self.checkpoints(in: (weightsDir as NSString).expandingTildeInPath)
        guard !found.isEmpty else {
            throw ValidationError("--weights-dir \(weightsDir): no checkpoints named by a model (e.g. resnet50.a1_in1k.safetensors)")
        }
        let stimuliFolder = (stimuli as NSString).expandingTildeInPath
        let (conflict, _) = try GeirhosCategories.stimuli(in: stimuliFolder)   // layout errors before any model loads
        let labelled: String? = images
        if let labelled, !labelled.hasPrefix("imagenet:") {
            throw ValidationError("--images takes imagenet:PATH (ImageNet's validation layout), not \(labelled)")
        }
        let cnnName = try cnn ?? found.first { try Models.variant($0.model).family == "resnet" }?.model
            ?? { throw ValidationError("no ResNet among the checkpoints; name the CNN to compare with --cnn") }()
        guard let cnnCheckpoint = found.first(where: { $0.model == cnnName }) else {
            throw ValidationError("--cnn \(cnnName) is not among the checkpoints in \(weightsDir): \(found.map(\.model).joined(separator: ", "))")
        }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        printProgress("Patchwork study: \(found.count) checkpoints (\(found.map(\.model).joined(separator: ", "))), CNN \(cnnName), "
                      + "\(conflict.count) cue-conflict stimuli\(labelled.map { ", labelled images \($0)" } ?? "") → \(out)")
        let command = commandLineText
        // The unlabelled images (attention distance, feature frequency, CKA): the stimuli, evenly spread.
        let stride = max(1, conflict.count / samples)
        let unlabelledPaths = Swift.stride(from: 0, to: conflict.count, by: stride).prefix(samples).map { conflict[$0].path }

        var costRows: [CostAnalysis.Row] = []
        let cnnModel = try AnalysisModel.load(cnnName, weights: cnnCheckpoint.path, classes: nil, batchSize: batchSize)
        let cnnSet = try pixelSet(unlabelledPaths, cnnModel.input)
        for checkpoint in found {
            let name = checkpoint.model
            let m = try AnalysisModel.load(name, weights: checkpoint.path, classes: nil, batchSize: batchSize)
            let dir = (out as NSString).appendingPathComponent(name)
            let source = RunSource(model: name, weights: checkpoint.path, data: stimuliFolder, imageSize: m.input.size.height,
                                   normalization: m.input.name, seed: seed)
            printProgress("[\(elapsed())] \(name): input \(m.input.summary)")
            let shape = try ShapeBias.runGeirhosFolder(m, folder: stimuliFolder, source: source, command: command)
            try shape.write(svg: ShapeBias.svg(shape, title: name), to: dir)
            printProgress(String(format: "[%@] %@: shape bias %.3f", elapsed(), name, shape.summary.shapeBias))
            let unlabelled = try pixelSet(unlabelledPaths, m.input)
            if !m.model.attentionLayers().isEmpty {
                let distance = try AttentionDistance.run(m, images: unlabelled, source: source, command: command)
                try distance.write(svg: AttentionDistance.svg(distance, title: name), to: dir)
            }
            let features = try FeatureFrequency.run(m, images: unlabelled, source: source, command: command)
            try features.write(svg: FeatureFrequency.svg(features, title: name), to: dir)
            if name != cnnName {
                if (unlabelled.height, unlabelled.width) == (cnnSet.height, cnnSet.width) {
                    var b = source
                    b.data = "the stimuli"
                    var a = b
                    (a.model, a.weights, a.normalization) = (cnnName, cnnCheckpoint.path, cnnModel.input.name)
                    let report = try CKAAccumulator.run(cnnModel, m, images: cnnSet, sourceA: a, sourceB: b, batchSize: batchSize,
                                                        command: command)
                    try report.write(svg: CKAAccumulator.svg(report), to: "\(out)/cka-\(cnnName)-vs-\(name)")
                } else {
                    printProgress("  \(name): CKA with \(cnnName) skipped (inputs \(unlabelled.width)×\(unlabelled.height) and \(cnnSet.width)×\(cnnSet.height) differ)")
                }
            }
            if let labelled {
                let test = try DatasetSpec.open(labelled, split: .test, imageSize: m.input.size.height, channels: 3,
                                                preprocessing: m.input.preprocessing)
                let set = try ImageSet(test, count: samples, seed: seed)
                let small = try ImageSet(test, count: smallSamples, seed: seed)
                let bands = try FrequencyNoise.run(m, images: set, bands: 8, norm: 4, cutoffs: nil, seed: seed, source: source, command: command)
                try bands.write(svg: FrequencyNoise.svg(bands, title: name), to: dir)
                let fourier = try FourierHeatmap.run(m, images: small, norm: 4, seed: seed, source: source, command: command)
                try fourier.write(svg: FourierHeatmap.svg(fourier, title: name), to: dir)
                let hessian = try HessianSpectrum.run(m, images: small, source: source, eigenvalues: 1, iterations: 6, traceSamples: 2,
                                                      lanczosRuns: 1, lanczosSteps: 10, seed: seed, command: command)
                try hessian.write(svg: HessianSpectrum.svg(hessian, title: name), to: dir)
            }
            costRows.append(CostAnalysis.Row(cost: ModelCost.measure(m.model, name: name, inputSize: m.input.size.height, batch: 8,
                                                                     classes: 1000, seconds: 1),
                                             accuracy: nil))
            printProgress("[\(elapsed())] \(name): analyses written to \(dir)")
        }
        let cost = CostAnalysis.report(rows: costRows, batch: 8, seconds: 1, classes: 1000, command: command)
        try cost.write(svg: CostAnalysis.svg(cost), to: "\(out)/cost")
        let (entries, runs, claims) = try HTMLReport.collect([out])
        let note = "Published checkpoints (\(found.map(\.model).joined(separator: ", "))), each through its reference's evaluation "
            + "transform; shape bias on \(conflict.count) cue-conflict stimuli; attention distance, feature frequency and CKA on "
            + "\(unlabelledPaths.count) of them" + (labelled.map { "; noise, Fourier heat map and Hessian on \($0)" } ?? "")
            + ". Made by `patchwork study` in \(elapsed()) on this machine."
        let html = HTMLReport.render(title: "Patchwork study: published ImageNet checkpoints", entries: entries, runs: runs,
                                     claims: claims, note: note)
        try AtomicFile.write(Data(html.utf8), to: "\(out)/report.html")
        printProgress("[\(elapsed())] wrote \(out)/report.html")
    }

    /// The image files through `input` to [0, 1] pixels, as an unlabelled set.
    func pixelSet(_ paths: [String], _ input: ModelInput) throws -> ImageSet {
        let pixels = try paths.map { try input.pixels(contentsOf: $0) }
        return ImageSet(images: stack(pixels, axis: 0), labels: Array(repeating: 0, count: paths.count), indices: Array(paths.indices))
    }
}
