import Foundation
import Patchwork
import PatchworkNN

/// Checks a model family against a reference run (../shared/fixtures/README.md):
/// builds the family from the case's `config`, loads the weights from the
/// `.safetensors` beside it, and compares eval logits, train logits, the
/// loss and every parameter gradient within the case's tolerances.
public enum Parity {
    public struct Tolerance: Decodable, Sendable {
        public let logitsRtol: Float
        public let logitsAtol: Float
        public let lossAtol: Float
        public let gradRelL2: Float
    }

    struct StructurallyZero: Decodable { let params: [String] }

    struct Case: Decodable {
        let `case`: String
        let family: String
        let config: JSONValue
        let inputShape: [Int]
        let numClasses: Int
        let numParams: Int?
        let tolerance: Tolerance
        let gradStructurallyZero: StructurallyZero?
    }

    public struct Result: Sendable {
        public let name: String
        public var passed: Bool { failures.isEmpty }
        public var failures: [String] = []
        /// Largest |Δ| between eval and train logits and the reference.
        public var logitsError: Float = 0
        public var lossError: Float = 0
        /// Largest per-tensor ||g − g_ref|| / ||g_ref|| and the parameter where it happens.
        public var worstGradError: Float = 0
        public var worstParameter = "-"

        /// One line: PASS/FAIL, the case, the numbers, and what failed.
        public var line: String {
            let head = String(format: "%@ %@  logits %.2e  loss %.2e  grad %.2e (%@)", passed ? "PASS" : "FAIL",
                              name, logitsError, lossError, worstGradError, worstParameter)
            return passed ? head : head + "\n    " + failures.prefix(8).joined(separator: "\n    ")
                + (failures.count > 8 ? "\n    ... and \(failures.count - 8) more" : "")
        }
    }

    /// Runs one case given the path of its `.json` file.
    public static func run(casePath: String) throws -> Result {
        let url = URL(fileURLWithPath: casePath)
        let data = Data(try BoundedFile.read(casePath, limit: BoundedFile.jsonLimit, what: "parity case file"))
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let spec: Case
        do { spec = try decoder.decode(Case.self, from: data) } catch {
            throw ModelError("\(casePath): not a parity case (\(error))")
        }
        // The config and the case's shapes are checked before anything is read or built.
        let config: any ModelConfig
        do { config = try Models.validatedConfig(family: spec.family, config: spec.config) } catch {
            throw ModelError("\(casePath): config: \(error)")
        }
        guard spec.numClasses >= 1 else {
            throw ModelError("\(casePath): num_classes \(spec.numClasses): a parity case compares logits and a loss, so it needs at least 1 class")
        }
        guard config.classCount == spec.numClasses else {
            throw ModelError("\(casePath): the config builds \(config.classCount) classes, num_classes is \(spec.numClasses)")
        }
        do { try config.expectedInput.check(nchw: spec.inputShape) } catch { throw ModelError("\(casePath): \(error)") }
        let weightsPath = url.deletingPathExtension().appendingPathExtension("safetensors").path
        let file = try Safetensors(contentsOf: weightsPath)
        let model: ImageClassifier
        do { model = try Models.family(spec.family).build(config: spec.config) } catch {
            throw ModelError("\(casePath): cannot build family \"\(spec.family)\": \(error)")
        }
        var result = Result(name: spec.case)
        if let expected = spec.numParams, model.parameterCount != expected {
            result.failures.append("parameter count \(model.parameterCount), reference \(expected)")
        }
        try model.load(from: weightsPath, ignoringPrefixes: ["fixture."])

        // Input NCHW → NHWC once, at the boundary.
        let inputNCHW = try file.tensor("fixture.input")
        guard inputNCHW.shape == spec.inputShape else {
            throw ModelError("\(casePath): fixture.input has shape \(inputNCHW.shape), input_shape is \(spec.inputShape)")
        }
        let input = inputNCHW.permuted([0, 2, 3, 1]).contiguous()
        let labels = try file.integers("fixture.labels")
        guard labels.count == spec.inputShape[0], labels.allSatisfy({ (0..<spec.numClasses).contains($0) }) else {
            throw ModelError("\(casePath): fixture.labels \(labels.prefix(8)) must be \(spec.inputShape[0]) labels in 0..<num_classes \(spec.numClasses)")
        }
        let tol = spec.tolerance

        // Eval first: training mode updates batch-norm running statistics.
        model.eval()
        let evalLogits = withoutGrad { model.logits(input) }
        compareLogits(evalLogits, try file.tensor("fixture.logits_eval"), "eval", tol, &result)

        model.train()
        var trainLogits = Tensor(0)
        let (loss, grads) = valueAndGrad(model) {
            trainLogits = model.logits(input)
            return crossEntropy(logits: trainLogits, labels: labels)
        }
        compareLogits(trainLogits.detached(), try file.tensor("fixture.logits_train"), "train", tol, &result)
        let refLoss = try file.tensor("fixture.loss_train").item()
        result.lossError = abs(loss.item() - refLoss)
        if !(result.lossError <= tol.lossAtol) {
            result.failures.append("loss \(loss.item()) vs reference \(refLoss) (atol \(tol.lossAtol))")
        }
        compareGradients(model: model, grads: grads, file: file,
                         structurallyZero: Set(spec.gradStructurallyZero?.params ?? []), tol, &result)
        return result
    }

    static func compareLogits(_ got: Tensor, _ want: Tensor, _ mode: String, _ tol: Tolerance, _ result: inout Result) {
        guard got.shape == want.shape else {
            result.failures.append("\(mode) logits shape \(got.shape), reference \(want.shape)")
            return
        }
        let g = got.scalars, w = want.scalars
        var worst = 0
        for i in 0..<g.count {
            let err = abs(g[i] - w[i])
            result.logitsError = max(result.logitsError, err.isNaN ? .infinity : err)
            if !(err <= tol.logitsAtol + tol.logitsRtol * abs(w[i])) { worst += 1 }
        }
        if worst > 0 { result.failures.append("\(mode) logits: \(worst) of \(g.count) values outside atol \(tol.logitsAtol) + rtol \(tol.logitsRtol)") }
    }

    static func compareGradients(model: Module, grads: [String: Tensor], file: Safetensors, structurallyZero: Set<String>,
                                 _ tol: Tolerance, _ result: inout Result) {
        let layouts = Dictionary(uniqueKeysWithValues: model.namedSlots().map { ($0.0, $0.1.layout) })
        let references = file.names.filter { $0.hasPrefix("fixture.grad.") }
        var maxReferenceNorm: Float = 0
        var refs: [String: Tensor] = [:]
        for name in references {
            let key = String(name.dropFirst("fixture.grad.".count))
            let t = (try? file.tensor(name)) ?? Tensor(0)
            refs[key] = t
            maxReferenceNorm = max(maxReferenceNorm, norm(t))
        }
        for key in refs.keys.sorted() where grads[key] == nil {
            result.failures.append("the reference has a gradient for \(key), the model has no such trainable parameter")
        }
        for key in grads.keys.sorted() {
            guard let ref = refs[key] else {
                result.failures.append("no reference gradient for parameter \(key)")
                continue
            }
            let g = TensorSlot.toCheckpoint(grads[key]!, layouts[key] ?? .same)
            guard g.shape == ref.shape else {
                result.failures.append("gradient of \(key) has shape \(g.shape), reference \(ref.shape)")
                continue
            }
            if structurallyZero.contains(key) {
                let bound = 1e-5 * maxReferenceNorm
                if !(norm(g) <= bound) {
                    result.failures.append("gradient of \(key) should be 0 (structurally): ||g|| = \(norm(g)) > \(bound)")
                }
                continue
            }
            let rel = norm(g - ref) / max(norm(ref), 1e-12)
            if rel > result.worstGradError || rel.isNaN {
                result.worstGradError = rel.isNaN ? .infinity : rel
                result.worstParameter = key
            }
            if !(rel <= tol.gradRelL2) {
                result.failures.append(String(format: "gradient of %@: relative L2 error %.3e > %.0e", key, rel, tol.gradRelL2))
            }
        }
    }

    static func norm(_ t: Tensor) -> Float {
        var s = 0.0
        for v in t.scalars { s += Double(v) * Double(v) }
        return Float(s.squareRoot())
    }
}
