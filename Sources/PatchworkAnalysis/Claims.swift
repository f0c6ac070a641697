import Foundation
import PatchworkTrain

/// One claim from the literature, checked over training seeds against a baseline.
/// `patchwork demo` writes a list of them to `claims.json` (read by `HTMLReport`).
///
/// Every claim is reduced to one number per seed, `value`, signed so that a
/// positive value supports the claim (e.g. the ViT's shape bias minus the
/// CNN's). The verdict reads the 95 % confidence interval of its mean over
/// seeds (Student's t): **held** when the interval lies above 0, **not held**
/// when it lies below, **inconclusive** when it spans 0, when there is a single
/// seed, or when a precondition fails (a model at chance, no room above chance).
public struct ClaimResult: Codable, Equatable, Sendable {
    public enum Verdict: String, Codable, Sendable {
        case held
        case notHeld = "not held"
        case inconclusive
    }

    /// One seed's number, and the measurements it was computed from (by name).
    public struct SeedValue: Codable, Equatable, Sendable {
        public var seed: UInt64
        /// nil when a precondition failed for this seed (`reason` says which).
        public var value: Double?
        public var parts: [String: Double]

        public init(seed: UInt64, value: Double?, parts: [String: Double]) { self.seed = seed; self.value = value; self.parts = parts }

        enum CodingKeys: String, CodingKey { case seed, value, parts }
        /// `value` is written as null when there is none.
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(seed, forKey: .seed)
            try c.encode(value, forKey: .value)
            try c.encode(parts, forKey: .parts)
        }
    }

    /// What the comparison is against, and its mean over seeds where it is a measurement.
    public struct Baseline: Codable, Equatable, Sendable {
        public var name: String
        public var value: Double?

        public init(name: String, value: Double?) { self.name = name; self.value = value }
    }

    /// A short stable name (`shape-bias`, `hessian-negative`, …).
    public var id: String
    /// The paper's statement, with its source.
    public var claim: String
    /// How it is measured here: models, data, the quantity and its sign.
    public var setting: String
    public var baseline: Baseline
    public var seeds: [SeedValue]
    /// Mean, sample standard deviation and 95 % interval of `value` over the seeds that have one.
    public var mean: Double?
    public var std: Double?
    public var interval: [Double]?
    public var verdict: Verdict
    /// Why the verdict is what it is, in words.
    public var reason: String
    /// For a claim not held or inconclusive: the experiment that would settle it.
    public var settle: String?

    public init(id: String, claim: String, setting: String, baseline: Baseline, seeds: [SeedValue],
                preconditionFailures: [String] = [], settle: String) {
        self.id = id; self.claim = claim; self.setting = setting; self.baseline = baseline; self.seeds = seeds
        let values = seeds.compactMap(\.value)
        let spread = values.isEmpty ? nil : Spread(values)
        mean = spread?.mean
        std = spread?.std
        interval = spread?.interval
        if !preconditionFailures.isEmpty {
            verdict = .inconclusive
            reason = preconditionFailures.joined(separator: "; ")
        } else if let spread, spread.excludesAbove(0) {
            verdict = .held
            reason = "the 95 % interval over \(values.count) seeds lies above 0"
        } else if let spread, spread.excludesBelow(0) {
            verdict = .notHeld
            reason = "the 95 % interval over \(values.count) seeds lies below 0: the opposite holds"
        } else if values.count < 2 {
            verdict = .inconclusive
            reason = "\(values.count) seed: no interval (run with --seeds 2 or more)"
        } else {
            verdict = .inconclusive
            reason = "the 95 % interval over \(values.count) seeds spans 0"
        }
        self.settle = verdict == .held ? nil : settle
    }

    enum CodingKeys: String, CodingKey { case id, claim, setting, baseline, seeds, mean, std, interval, verdict, reason, settle }

    /// Every key is written, null where there is no value (a claim inconclusive for want of values has no mean).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(claim, forKey: .claim)
        try c.encode(setting, forKey: .setting)
        try c.encode(baseline, forKey: .baseline)
        try c.encode(seeds, forKey: .seeds)
        try c.encode(mean, forKey: .mean)
        try c.encode(std, forKey: .std)
        try c.encode(interval, forKey: .interval)
        try c.encode(verdict, forKey: .verdict)
        try c.encode(reason, forKey: .reason)
        try c.encode(settle, forKey: .settle)
    }

    /// mean ± std [interval], in words.
    public var measured: String {
        guard let mean else { return "no value" }
        let f = { (v: Double) in String(format: "%.3f", v) }
        return "\(f(mean)) ± \(f(std ?? 0))" + (interval.map { " (95 % CI \(f($0[0])) to \(f($0[1])))" } ?? "")
            + " over \(seeds.compactMap(\.value).count) seeds"
    }
}

/// The demo's folders for one training seed: each role's `ModelResults`.
public struct SeedResults: Sendable {
    public let seed: UInt64
    public let cnn: ModelResults
    public let vit: ModelResults
    /// The ViT as initialised, never trained (the baseline for learned attention).
    public let untrainedViT: ModelResults?
    /// The ViT with each attention layer replaced by a depthwise convolution (the control for "attention is a low-pass filter").
    public let control: ModelResults?
    public let hybrids: [ModelResults]

    public init(seed: UInt64, cnn: ModelResults, vit: ModelResults, untrainedViT: ModelResults? = nil,
                control: ModelResults? = nil, hybrids: [ModelResults] = []) {
        self.seed = seed; self.cnn = cnn; self.vit = vit; self.untrainedViT = untrainedViT; self.control = control
        self.hybrids = hybrids
    }
}

/// One model's results as the demo lays them out: its training run's
/// `summary.json` and each analysis' `<analysis>.json` in one folder.
///
/// Every number is decoded into the type that wrote it (`TrainingSummary`,
/// `ShapeBias.Summary`, …): a missing file, a missing or renamed field or a
/// value of the wrong type is an error naming the file and the field.
public struct ModelResults: Sendable {
    public let model: String
    public let folder: String

    public init(model: String, folder: String) { self.model = model; self.folder = folder }

    /// The training run's summary (`summary.json`).
    public func training() throws -> TrainingSummary {
        try Self.decode(TrainingSummary.self, from: (folder as NSString).appendingPathComponent("summary.json"), decoder: {
            let d = JSONDecoder()
            d.keyDecodingStrategy = .convertFromSnakeCase
            return d
        }())
    }

    /// The `summary` of `<folder>/<S.analysis>.json`.
    public func summary<S: AnalysisSummary>(_ type: S.Type) throws -> S {
        let path = (folder as NSString).appendingPathComponent(S.analysis + ".json")
        return try Self.decode(SummaryEnvelope<S>.self, from: path, decoder: AnalysisOutput.decoder()).summary
    }

    static func decode<T: Decodable>(_ type: T.Type, from path: String, decoder: JSONDecoder) throws -> T {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AnalysisError("\(path): cannot read the file (missing or unreadable)")
        }
        do {
            return try decoder.decode(T.self, from: data)
        } catch let error as DecodingError {
            func field(_ path: [CodingKey], _ last: CodingKey? = nil) -> String {
                (path + (last.map { [$0] } ?? [])).map { $0.intValue.map(String.init) ?? snakeCase($0.stringValue) }
                    .joined(separator: ".")
            }
            switch error {
            case .keyNotFound(let key, let context):
                throw AnalysisError("\(path): no field \(field(context.codingPath, key))")
            case .valueNotFound(_, let context):
                throw AnalysisError("\(path): field \(field(context.codingPath)) is null")
            case .typeMismatch(let expected, let context):
                throw AnalysisError("\(path): field \(field(context.codingPath)) is not a \(expected)")
            case .dataCorrupted(let context):
                throw AnalysisError("\(path): not valid JSON" + (context.codingPath.isEmpty ? "" : " at \(field(context.codingPath))"))
            @unknown default:
                throw AnalysisError("\(path): \(error)")
            }
        }
    }

    /// A Swift property name as the file spells it (`shapeBias` → `shape_bias`).
    static func snakeCase(_ name: String) -> String {
        var out = ""
        for c in name {
            if c.isUppercase { out += "_" + c.lowercased() } else { out.append(c) }
        }
        return out
    }
}

/// The part of an analysis file the claims read.
struct SummaryEnvelope<S: Decodable>: Decodable { let summary: S }


/// The CNN-vs-ViT claims the demo checks, each over every seed: each reads the
/// typed summaries it compares, forms one signed number per seed, and returns a
/// `ClaimResult` with the verdict.
public enum Claims {
    /// Every claim the folders allow: the control and untrained-ViT claims need those
    /// folders, the hybrid claim needs hybrids. `classes`: the data's class count (chance = 1/classes).
    public static func evaluate(_ seeds: [SeedResults], classes: Int) throws -> [ClaimResult] {
        precondition(!seeds.isEmpty, "claims over no seeds")
        var claims = [try shapeBias(seeds, classes: classes), try highFrequencyNoise(seeds), try lowFrequencyNoise(seeds),
                      try featuresLowPass(seeds), try attentionLowPass(seeds)]
        if seeds.allSatisfy({ $0.untrainedViT != nil }) {
            claims.append(try globalAttentionInFirstLayer(seeds))
            claims.append(try attentionDistanceGrowsWithDepth(seeds))
        }
        if seeds.allSatisfy({ !$0.hybrids.isEmpty }) { claims.append(try hybridsLearnFromLittleData(seeds)) }
        claims.append(try lessConvexLoss(seeds))
        return claims
    }

    static func f(_ v: Double) -> String { String(format: "%.3f", v) }

    /// A shape bias means something only when the model recognises shapes: its shape-only accuracy's
    /// 95 % Wilson interval must lie above chance.
    public static func shapeBias(_ seeds: [SeedResults], classes: Int) throws -> ClaimResult {
        let chance = 1 / Double(classes)
        var failures: [String] = []
        let values = try seeds.map { s -> ClaimResult.SeedValue in
            let (a, b) = (try s.cnn.summary(ShapeBias.Summary.self), try s.vit.summary(ShapeBias.Summary.self))
            var parts = ["\(s.cnn.model)": a.shapeBias, "\(s.vit.model)": b.shapeBias]
            var ok = true
            for (model, summary) in [(s.cnn.model, a), (s.vit.model, b)] {
                guard let accuracy = summary.shapeOnlyAccuracy, let n = summary.singleCueImages, n > 0 else {
                    throw AnalysisError("\(model) (seed \(s.seed)): shape-bias.json has no shape-only accuracy; the claim needs ShapeTex's silhouettes")
                }
                parts["\(model) shape-only accuracy"] = accuracy
                let low = wilsonInterval(successes: Int((accuracy * Double(n)).rounded()), trials: n)[0]
                if low <= chance {
                    ok = false
                    failures.append("seed \(s.seed): \(model)'s shape-only accuracy \(f(accuracy)) (95 % interval from \(f(low))) is not above chance (\(f(chance))), so its shape bias says nothing")
                }
            }
            return .init(seed: s.seed, value: ok ? b.shapeBias - a.shapeBias : nil, parts: parts)
        }
        return ClaimResult(
            id: "shape-bias",
            claim: "CNNs decide by texture more than ViTs; ViTs by shape (Geirhos et al. 2019; Naseer et al. 2021)",
            setting: "shape bias on ShapeTex cue-conflict images (shape decisions ÷ shape + texture decisions), \(seeds[0].vit.model) minus \(seeds[0].cnn.model); counted only where both models' shape-only accuracy is above chance",
            baseline: .init(name: "\(seeds[0].cnn.model)'s shape bias (a guessing model scores 0.5)", value: mean(values, seeds[0].cnn.model)),
            seeds: values, preconditionFailures: failures,
            settle: "train both models longer (or on more shape-diverse data) until shape-only accuracy is well above chance, then compare shape bias over more seeds")
    }

    /// Fourier-noise error scaled by the room above chance: one band of the heat map.
    static func scaledError(_ m: ModelResults, seed: UInt64, band: String,
                            _ read: (FourierHeatmap.Summary) -> Double?) throws -> (value: Double?, failure: String?) {
        let s = try m.summary(FourierHeatmap.Summary.self)
        guard let v = read(s) else {
            return (nil, "seed \(seed): \(m.model) has no room above chance (clean error \(f(s.cleanError))), so its \(band)-frequency sensitivity is undefined")
        }
        return (v, nil)
    }

    static func noiseClaim(_ seeds: [SeedResults], id: String, claim: String, band: String, moreSensitive: KeyPath<SeedResults, ModelResults>,
                           lessSensitive: KeyPath<SeedResults, ModelResults>, _ read: @escaping (FourierHeatmap.Summary) -> Double?,
                           settle: String) throws -> ClaimResult {
        var failures: [String] = []
        let values = try seeds.map { s -> ClaimResult.SeedValue in
            let a = try scaledError(s[keyPath: moreSensitive], seed: s.seed, band: band, read)
            let b = try scaledError(s[keyPath: lessSensitive], seed: s.seed, band: band, read)
            failures += [a.failure, b.failure].compactMap { $0 }
            var parts: [String: Double] = [:]
            parts[s[keyPath: moreSensitive].model] = a.value
            parts[s[keyPath: lessSensitive].model] = b.value
            return .init(seed: s.seed, value: a.value.flatMap { x in b.value.map { x - $0 } }, parts: parts)
        }
        let (more, less) = (seeds[0][keyPath: moreSensitive].model, seeds[0][keyPath: lessSensitive].model)
        return ClaimResult(
            id: id, claim: claim,
            setting: "Fourier heat map (Yin et al. 2019): error added by \(band)-frequency basis noise, divided by the room the model's clean error leaves above chance, averaged over the \(band) band (bands from ShapeTex's own spectrum); \(more) minus \(less)",
            baseline: .init(name: "\(less)'s scaled \(band)-frequency error", value: mean(values, less)),
            seeds: values, preconditionFailures: failures, settle: settle)
    }

    public static func highFrequencyNoise(_ seeds: [SeedResults]) throws -> ClaimResult {
        try noiseClaim(seeds, id: "high-frequency-noise",
                       claim: "CNNs are more sensitive to high-frequency noise than ViTs (Yin et al. 2019; Park & Kim 2022)",
                       band: "high", moreSensitive: \.cnn, lessSensitive: \.vit, { $0.highFrequencyScaledError },
                       settle: "more Fourier images and sign draws per seed, and more seeds, to narrow the interval")
    }

    public static func lowFrequencyNoise(_ seeds: [SeedResults]) throws -> ClaimResult {
        try noiseClaim(seeds, id: "low-frequency-noise",
                       claim: "ViTs are relatively more sensitive to low-frequency noise than CNNs (Park & Kim 2022)",
                       band: "low", moreSensitive: \.vit, lessSensitive: \.cnn, { $0.lowFrequencyScaledError },
                       settle: "more Fourier images and sign draws per seed, and more seeds, to narrow the interval")
    }

    /// Block outputs compared on the same grid (every map pooled to the ViT's token grid).
    public static func featuresLowPass(_ seeds: [SeedResults]) throws -> ClaimResult {
        let values = try difference(seeds, \.cnn, minus: \.vit) { try $0.summary(FeatureFrequency.Summary.self).meanHighFrequency }
        return ClaimResult(
            id: "features-low-pass",
            claim: "A ViT's features carry less high-frequency content than a CNN's (Park & Kim 2022, Fig. 2)",
            setting: "ΔLog amplitude at π of every block output, all maps pooled to the same grid first, mean over blocks; \(seeds[0].cnn.model) minus \(seeds[0].vit.model)",
            baseline: .init(name: "\(seeds[0].vit.model)'s mean ΔLog amplitude", value: mean(values, seeds[0].vit.model)),
            seeds: values,
            settle: "more seeds, and the same comparison at the models' native resolutions on larger images")
    }

    /// The change the attention sub-layers make to the residual stream's high frequencies, against
    /// a depthwise convolution in the same place (or against no change without the control).
    public static func attentionLowPass(_ seeds: [SeedResults]) throws -> ClaimResult {
        let withControl = seeds.allSatisfy { $0.control != nil }
        var failures: [String] = []
        let values = try seeds.map { s -> ClaimResult.SeedValue in
            guard let attention = try s.vit.summary(FeatureFrequency.Summary.self).meanChangeByKind?["attention"] else {
                throw AnalysisError("\(s.vit.folder)/feature-frequency.json: no sub-layer change for kind attention")
            }
            var parts = ["\(s.vit.model) attention": attention]
            guard withControl, let control = s.control else { return .init(seed: s.seed, value: -attention, parts: parts) }
            guard let conv = try control.summary(FeatureFrequency.Summary.self).meanChangeByKind?["depthwise-conv"] else {
                failures.append("seed \(s.seed): \(control.model) recorded no depthwise-conv sub-layer")
                return .init(seed: s.seed, value: nil, parts: parts)
            }
            parts["\(control.model) depthwise-conv"] = conv
            return .init(seed: s.seed, value: conv - attention, parts: parts)
        }
        let vit = seeds[0].vit.model
        let control = seeds[0].control?.model ?? ""
        return ClaimResult(
            id: "attention-low-pass",
            claim: "Self-attention is a low-pass filter: it reduces the high-frequency amplitude of the features it changes (Park & Kim 2022)",
            setting: withControl
                ? "change in ΔLog amplitude at π across each sub-layer (output minus input of the residual branch's block), mean over layers: \(control)'s depthwise convolutions minus \(vit)'s attention layers (the same ViT with attention swapped for a depthwise convolution)"
                : "change in ΔLog amplitude at π across each attention sub-layer of \(vit), negated (no control model)",
            baseline: withControl ? .init(name: "\(control)'s depthwise-conv sub-layers", value: mean(values, "\(control) depthwise-conv"))
                                  : .init(name: "no change (0)", value: 0),
            seeds: values, preconditionFailures: failures,
            settle: "more seeds; the same measurement on a ViT trained to higher accuracy (--full)")
    }

    /// Attention distance as a fraction of a uniform head's on the same tokens.
    static func distances(_ m: ModelResults) throws -> (first: Double, last: Double, uniform: Double) {
        let s = try m.summary(AttentionDistance.Summary.self)
        let uniform = s.uniformFirstLayerDistance
        guard uniform > 0 else {
            throw AnalysisError("\(m.folder)/attention-distance.json: no uniform-attention baseline (uniform_first_layer_distance)")
        }
        return (s.firstLayerMeanDistance, s.lastLayerMeanDistance, uniform)
    }

    /// "Global" is within 10 % of a uniform head's distance: the value is the trained first layer's
    /// distance over the uniform one, minus 0.9.
    public static func globalAttentionInFirstLayer(_ seeds: [SeedResults]) throws -> ClaimResult {
        let values = try seeds.map { s -> ClaimResult.SeedValue in
            let t = try distances(s.vit)
            var parts = ["\(s.vit.model) first layer (px)": t.first, "uniform attention (px)": t.uniform]
            if let u = s.untrainedViT { parts["untrained first layer (px)"] = try distances(u).first }
            return .init(seed: s.seed, value: t.first / t.uniform - 0.9, parts: parts)
        }
        let untrained = mean(values, "untrained first layer (px)"), uniform = mean(values, "uniform attention (px)")
        return ClaimResult(
            id: "global-attention-first-layer",
            claim: "A ViT trained on little data attends globally even in its first layer (Dosovitskiy et al. 2021; Raghu et al. 2021)",
            setting: "mean attention distance of \(seeds[0].vit.model)'s first layer ÷ a uniform head's on the same tokens, minus 0.9 (global = within 10 % of uniform). An untrained ViT is global by construction, so this says the training did not make the first layer local, not that it learned to look far",
            baseline: .init(name: "uniform attention \(uniform.map(f) ?? "?") px; untrained ViT \(untrained.map(f) ?? "?") px",
                            value: uniform),
            seeds: values,
            settle: "train on more data (the claim is about data scale): at ImageNet-21k scale the first layers learn local heads")
    }

    /// Learned behaviour: how much more the last layer looks further than the first, beyond what the untrained ViT does.
    public static func attentionDistanceGrowsWithDepth(_ seeds: [SeedResults]) throws -> ClaimResult {
        let values = try seeds.map { s -> ClaimResult.SeedValue in
            let t = try distances(s.vit)
            guard let untrainedModel = s.untrainedViT else { throw AnalysisError("seed \(s.seed): no untrained ViT folder") }
            let u = try distances(untrainedModel)
            return .init(seed: s.seed, value: (t.last - t.first) - (u.last - u.first),
                         parts: ["trained last − first (px)": t.last - t.first, "untrained last − first (px)": u.last - u.first])
        }
        return ClaimResult(
            id: "attention-distance-grows-with-depth",
            claim: "Attention distance grows with depth: lower layers attend more locally than higher ones (Dosovitskiy et al. 2021, Fig. 7)",
            setting: "\(seeds[0].vit.model): last layer's minus first layer's mean attention distance (px), minus the same for the untrained ViT of the same seed",
            baseline: .init(name: "the untrained ViT's last − first (px)", value: mean(values, "untrained last − first (px)")),
            seeds: values,
            settle: "more training data or epochs (--full); the paper's effect appears with large-scale pre-training")
    }

    /// With a target accuracy every model stops at about the same accuracy, so hybrids are compared on the
    /// training images they needed to reach it; with fixed budgets, on test accuracy.
    public static func hybridsLearnFromLittleData(_ seeds: [SeedResults]) throws -> ClaimResult {
        var failures: [String] = []
        var byImages = true
        let values = try seeds.map { s -> ClaimResult.SeedValue in
            let vit = try s.vit.training()
            var parts: [String: Double] = [:]
            var worst: Double?
            for h in s.hybrids {
                let hybrid = try h.training()
                if vit.options.targetAccuracy != nil {
                    // Images to the target; a ViT that never reached it is counted at its whole budget (a lower bound).
                    let vitImages = Double(vit.target?.images ?? vit.imagesSeen ?? 0)
                    guard let reached = hybrid.target else {
                        failures.append("seed \(s.seed): \(h.model) did not reach the target accuracy")
                        continue
                    }
                    parts["\(s.vit.model) images"] = vitImages
                    parts["\(h.model) images"] = Double(reached.images)
                    let saved = (vitImages - Double(reached.images)) / vitImages
                    worst = min(worst ?? saved, saved)
                } else {
                    byImages = false
                    parts[s.vit.model] = vit.testAccuracy
                    parts[h.model] = hybrid.testAccuracy
                    let gain = hybrid.testAccuracy - vit.testAccuracy
                    worst = min(worst ?? gain, gain)
                }
            }
            return .init(seed: s.seed, value: worst, parts: parts)
        }
        return ClaimResult(
            id: "hybrids-learn-from-little-data",
            claim: "Hybrids (convolutions + attention) learn better than a plain ViT from little data (Xiao et al. 2021; Dai et al. 2021)",
            setting: byImages
                ? "training images each model needed to reach the target validation accuracy: the fraction of the ViT's images the hybrid saves (the smallest over hybrids)"
                : "test accuracy after the same training budget: the hybrid's minus the ViT's (the smallest over hybrids)",
            baseline: .init(name: seeds[0].vit.model, value: byImages ? mean(values, "\(seeds[0].vit.model) images") : mean(values, seeds[0].vit.model)),
            seeds: values, preconditionFailures: failures,
            settle: "more seeds, and a data-size sweep (the claim is about small data: compare at several training-set sizes)")
    }

    public static func lessConvexLoss(_ seeds: [SeedResults]) throws -> ClaimResult {
        let values = try difference(seeds, \.vit, minus: \.cnn) { try $0.summary(HessianSpectrum.Summary.self).negativeToTopRatio }
        return ClaimResult(
            id: "hessian-negative-eigenvalues",
            claim: "A ViT's loss is less convex than a CNN's: stronger negative Hessian eigenvalues (Park & Kim 2022)",
            setting: "|most negative| ÷ top Hessian eigenvalue (Lanczos to convergence, mean over batches); \(seeds[0].vit.model) minus \(seeds[0].cnn.model)",
            baseline: .init(name: "\(seeds[0].cnn.model)'s ratio", value: mean(values, seeds[0].cnn.model)),
            seeds: values,
            settle: "more batches per seed and more seeds; Park & Kim measure on ImageNet-scale models")
    }

    /// One value per seed: `read` of the `first` model minus `read` of the `second`, both kept as parts.
    static func difference(_ seeds: [SeedResults], _ first: KeyPath<SeedResults, ModelResults>,
                           minus second: KeyPath<SeedResults, ModelResults>,
                           _ read: (ModelResults) throws -> Double) throws -> [ClaimResult.SeedValue] {
        try seeds.map { s in
            let (a, b) = (s[keyPath: first], s[keyPath: second])
            let (x, y) = (try read(a), try read(b))
            return .init(seed: s.seed, value: x - y, parts: [a.model: x, b.model: y])
        }
    }

    /// The mean over seeds of one part (nil when no seed has it).
    static func mean(_ values: [ClaimResult.SeedValue], _ part: String) -> Double? {
        let xs = values.compactMap { $0.parts[part] }
        return xs.isEmpty ? nil : xs.reduce(0, +) / Double(xs.count)
    }
}
