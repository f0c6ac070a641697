import Foundation
import PatchworkTrain

/// One claim from the literature, checked against this project's measurements.
/// `patchwork demo` writes a list of them to `claims.json` (read by `HTMLReport`).
public struct ClaimResult: Codable, Equatable, Sendable {
    /// What the literature says.
    public let claim: String
    /// The numbers compared, in words.
    public let measured: String
    public let held: Bool

    public init(claim: String, measured: String, held: Bool) { self.claim = claim; self.measured = measured; self.held = held }
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

/// The CNN-vs-ViT claims the demo checks: each reads the typed summaries it
/// compares and evaluates to a `ClaimResult`.
public enum Claims {
    /// Every claim: the first model is the CNN, the second the ViT, the rest hybrids
    /// (the hybrid claim only when there are hybrids).
    public static func evaluate(cnn: ModelResults, vit: ModelResults, hybrids: [ModelResults]) throws -> [ClaimResult] {
        var claims = [try textureVersusShape(cnn: cnn, vit: vit), try highFrequencyNoise(cnn: cnn, vit: vit),
                      try lowFrequencyNoise(cnn: cnn, vit: vit), try lowPassFeatures(cnn: cnn, vit: vit),
                      try globalAttentionInFirstLayer(vit: vit)]
        if !hybrids.isEmpty { claims.append(try hybridsLearnFromLittleData(vit: vit, hybrids: hybrids)) }
        claims.append(try lessConvexLoss(cnn: cnn, vit: vit))
        return claims
    }

    static func f(_ v: Double) -> String { String(format: "%.3f", v) }

    public static func textureVersusShape(cnn: ModelResults, vit: ModelResults) throws -> ClaimResult {
        let (a, b) = (try cnn.summary(ShapeBias.Summary.self).shapeBias, try vit.summary(ShapeBias.Summary.self).shapeBias)
        return ClaimResult(claim: "CNNs decide by texture more than ViTs; ViTs by shape (Geirhos et al. 2019; Naseer et al. 2021)",
                           measured: "shape bias \(cnn.model) \(f(a)), \(vit.model) \(f(b))", held: b > a)
    }

    /// Fourier noise: the error it adds over the model's clean error (the models differ in clean accuracy).
    static func addedError(_ m: ModelResults, _ error: (FourierHeatmap.Summary) -> Double) throws -> Double {
        let s = try m.summary(FourierHeatmap.Summary.self)
        return error(s) - s.cleanError
    }

    public static func highFrequencyNoise(cnn: ModelResults, vit: ModelResults) throws -> ClaimResult {
        let (a, b) = (try addedError(cnn, \.highFrequencyError), try addedError(vit, \.highFrequencyError))
        return ClaimResult(claim: "CNNs are more sensitive to high-frequency noise than ViTs (Yin et al. 2019; Park & Kim 2022)",
                           measured: "error added by high-frequency Fourier noise \(cnn.model) \(f(a)), \(vit.model) \(f(b))", held: a > b)
    }

    public static func lowFrequencyNoise(cnn: ModelResults, vit: ModelResults) throws -> ClaimResult {
        let (a, b) = (try addedError(cnn, \.lowFrequencyError), try addedError(vit, \.lowFrequencyError))
        return ClaimResult(claim: "ViTs are relatively more sensitive to low-frequency noise than CNNs (Park & Kim 2022)",
                           measured: "error added by low-frequency Fourier noise \(cnn.model) \(f(a)), \(vit.model) \(f(b))", held: b > a)
    }

    public static func lowPassFeatures(cnn: ModelResults, vit: ModelResults) throws -> ClaimResult {
        let a = try cnn.summary(FeatureFrequency.Summary.self).meanHighFrequency
        let b = try vit.summary(FeatureFrequency.Summary.self).meanHighFrequency
        return ClaimResult(claim: "Self-attention passes less high-frequency content through its features than convolution (Park & Kim 2022, Fig. 2)",
                           measured: "mean relative high-frequency log amplitude \(cnn.model) \(f(a)), \(vit.model) \(f(b))", held: b < a)
    }

    public static func globalAttentionInFirstLayer(vit: ModelResults) throws -> ClaimResult {
        let s = try vit.summary(AttentionDistance.Summary.self)
        let size = Double(s.imageSize)
        return ClaimResult(claim: "A ViT trained on little data attends globally even in its first layer (Dosovitskiy et al. 2021; Raghu et al. 2021)",
                           measured: "\(vit.model) mean attention distance: first layer \(f(s.firstLayerMeanDistance)) px, last \(f(s.lastLayerMeanDistance)) px (a uniform head on a \(s.imageSize)px image: about \(f(size * 0.52)) px)",
                           held: s.firstLayerMeanDistance > 0.3 * size)
    }

    public static func hybridsLearnFromLittleData(vit: ModelResults, hybrids: [ModelResults]) throws -> ClaimResult {
        let v = try vit.training().testAccuracy
        let accuracies = try hybrids.map { try $0.training().testAccuracy }
        return ClaimResult(claim: "Hybrids (convolutions + attention) learn better than a plain ViT from little data (Xiao et al. 2021; Dai et al. 2021)",
                           measured: "test accuracy \(vit.model) \(f(v)); " + zip(hybrids, accuracies).map { "\($0.model) \(f($1))" }.joined(separator: ", "),
                           held: !accuracies.isEmpty && accuracies.allSatisfy { $0 > v })
    }

    public static func lessConvexLoss(cnn: ModelResults, vit: ModelResults) throws -> ClaimResult {
        let a = try cnn.summary(HessianSpectrum.Summary.self).negativeToTopRatio
        let b = try vit.summary(HessianSpectrum.Summary.self).negativeToTopRatio
        return ClaimResult(claim: "A ViT's loss is less convex than a CNN's: stronger negative Hessian eigenvalues (Park & Kim 2022)",
                           measured: "|most negative| / top eigenvalue \(cnn.model) \(f(a)), \(vit.model) \(f(b))", held: b > a)
    }
}
