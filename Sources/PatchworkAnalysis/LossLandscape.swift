import Foundation
import Patchwork
import PatchworkNN

/// Loss landscapes along filter-normalised random directions (Li et al. 2018,
/// "Visualizing the loss landscape of neural nets").
public enum LossLandscape {
    /// A random direction shaped like the model's trainable parameters, each filter
    /// scaled to the norm of the matching filter of the weights ("filter
    /// normalisation"): a filter is one output unit, the first axis of a Linear
    /// [out, in] or conv [out, kh, kw, in] weight. One-dimensional parameters
    /// (biases, norm scales and shifts) get a zero direction, as Li et al.'s
    /// `ignore='biasbn'`, so the picture is about the weights.
    public static func filterNormalizedDirection(for point: ParameterVector, generator: Generator) -> ParameterVector {
        ParameterVector(point.tensors.map { w in
            guard w.rank >= 2, w.shape[0] > 0 else { return Tensor.zeros(w.shape) }
            let filters = w.shape[0], size = w.count / filters
            let weights = w.contiguous().scalars
            var d = Tensor.randomNormal(w.shape, generator: generator).scalars
            for f in 0..<filters {
                let range = (f * size)..<((f + 1) * size)
                var wn = 0.0, dn = 0.0
                for i in range { wn += Double(weights[i]) * Double(weights[i]); dn += Double(d[i]) * Double(d[i]) }
                let scale = Float(wn.squareRoot() / max(dn.squareRoot(), 1e-30))
                for i in range { d[i] *= scale }
            }
            return Tensor(d, shape: w.shape)
        })
    }

    /// What one point of the landscape measured.
    public struct Sample {
        public let alpha: Double
        public let beta: Double
        public let loss: Double
        public let accuracy: Double
    }

    /// Evaluates `measure` (loss, accuracy) at θ + α·d1 (+ β·d2) for every α in
    /// `alphas` and β in `betas` (β only when `d2` is given), restoring θ afterwards.
    /// `progress` is called after each point with (done, total).
    public static func evaluate(model: Module, center: ParameterVector, d1: ParameterVector, d2: ParameterVector?,
                                alphas: [Double], betas: [Double], measure: () throws -> (loss: Double, accuracy: Double),
                                progress: (Int, Int) -> Void = { _, _ in }) throws -> [Sample] {
        defer { try? center.assign(to: model) }
        let betaValues = d2 == nil ? [0.0] : betas
        var samples: [Sample] = []
        let total = alphas.count * betaValues.count
        for beta in betaValues {
            for alpha in alphas {
                var point = center + d1 * alpha
                if let d2 { point = point + d2 * beta }
                try point.assign(to: model)
                let (loss, accuracy) = try measure()
                samples.append(Sample(alpha: alpha, beta: beta, loss: loss, accuracy: accuracy))
                progress(samples.count, total)
            }
        }
        return samples
    }

    /// `count` evenly spaced values from `low` to `high` inclusive.
    public static func grid(from low: Double, to high: Double, count: Int) -> [Double] {
        count <= 1 ? [low] : (0..<count).map { low + (high - low) * Double($0) / Double(count - 1) }
    }
}
