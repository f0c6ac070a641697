import CPatchworkKernels
import Foundation
import XCTest
import Patchwork
import PatchworkNN
import PatchworkModels  // JSONValue

/// One op case from a committed reference file (Fixtures/ops/<group>.json).
struct OpCase: Decodable {
    struct Values: Decodable {
        let shape: [Int]
        let data: [Float]
        var tensor: Tensor { Tensor(data, shape: shape) }
    }
    let name: String
    let op: String
    let args: [String: JSONValue]
    let inputs: [Values]
    let outputs: [Values]

    func int(_ key: String) -> Int { args[key]!.int! }
    func ints(_ key: String) -> [Int] { args[key]!.array!.map { $0.int! } }
    func float(_ key: String) -> Float { Float(args[key]!.double!) }
    func bool(_ key: String) -> Bool { args[key]!.bool! }
    func string(_ key: String) -> String { args[key]!.string! }
    func has(_ key: String) -> Bool { args[key] != nil && args[key] != .null }
}

/// The cases of Fixtures/ops/<group>.json.
func loadOpCases(_ group: String, file: StaticString = #filePath, line: UInt = #line) -> [OpCase] {
    guard let url = Bundle.module.url(forResource: "Fixtures/ops/\(group)", withExtension: "json"),
          let data = try? Data(contentsOf: url) else {
        XCTFail("missing reference file Fixtures/ops/\(group).json", file: file, line: line)
        return []
    }
    struct File: Decodable { let cases: [OpCase] }
    do { return try JSONDecoder().decode(File.self, from: data).cases } catch {
        XCTFail("cannot decode Fixtures/ops/\(group).json: \(error)", file: file, line: line)
        return []
    }
}

/// Runs every case of a reference file through `ops[case.op]` and compares outputs.
/// A case whose op has no entry fails (a reference without its implementation is an error).
func checkReferenceCases(_ group: String, atol: Float = 1e-5, rtol: Float = 1e-4,
                         ops: [String: (OpCase, [Tensor]) -> [Tensor]],
                         file: StaticString = #filePath, line: UInt = #line) {
    let cases = loadOpCases(group, file: file, line: line)
    XCTAssertFalse(cases.isEmpty, "no cases in \(group).json", file: file, line: line)
    for c in cases {
        guard let run = ops[c.op] else {
            XCTFail("\(group)/\(c.name): no implementation registered for op '\(c.op)'", file: file, line: line)
            continue
        }
        let outputs = run(c, c.inputs.map { $0.tensor })
        XCTAssertEqual(outputs.count, c.outputs.count, "\(group)/\(c.name): output count", file: file, line: line)
        for (i, (got, want)) in zip(outputs, c.outputs).enumerated() {
            assertClose(got, want.tensor, atol: atol, rtol: rtol, "\(group)/\(c.name) output \(i)", file: file, line: line)
        }
    }
}

/// Asserts same shape and |a - b| <= atol + rtol·|b| everywhere.
func assertClose(_ a: Tensor, _ b: Tensor, atol: Float = 1e-5, rtol: Float = 1e-4, _ message: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    guard a.shape == b.shape else {
        XCTFail("\(message): shape \(a.shape) != expected \(b.shape)", file: file, line: line)
        return
    }
    let x = a.scalars, y = b.scalars
    var worst: (Int, Float) = (-1, 0)
    for i in 0..<x.count {
        let err = abs(x[i] - y[i]) - (atol + rtol * abs(y[i]))
        if !(err <= 0) && (worst.0 < 0 || err > worst.1 || err.isNaN) { worst = (i, err) }
    }
    if worst.0 >= 0 {
        let i = worst.0
        XCTFail("\(message): element \(i) is \(x[i]), expected \(y[i]) (atol \(atol), rtol \(rtol), shape \(a.shape))", file: file, line: line)
    }
}

/// Checks the gradients of `f` at `inputs` against central finite differences.
///
/// The objective is Σ f(x)·w with fixed random weights w (so every output
/// element matters), summed in Double. Each input element is perturbed by
/// ±eps; the analytic gradient must agree within atol + rtol·|numeric|.
/// Pick points away from kinks (relu at 0, max ties) for non-smooth ops.
func checkGradients(_ inputs: [Tensor], eps: Float = 1e-2, atol: Float = 2e-3, rtol: Float = 2e-2,
                    _ message: String = "", file: StaticString = #filePath, line: UInt = #line,
                    _ f: @escaping ([Tensor]) -> Tensor) {
    let probe = withoutGrad { f(inputs) }
    let weights = Tensor.randomNormal(probe.shape, generator: Generator(seed: 99))
    let w = weights.scalars
    func objective(_ xs: [Tensor]) -> Double {
        let y = withoutGrad { f(xs) }.scalars
        var s = 0.0
        for i in 0..<y.count { s += Double(y[i]) * Double(w[i]) }
        return s
    }
    let analytic = valueAndGradient(at: inputs) { xs in (f(xs) * weights).sum() }.gradients
    for (k, x) in inputs.enumerated() {
        var values = x.scalars
        let g = analytic[k].scalars
        XCTAssertEqual(analytic[k].shape, x.shape, "\(message): gradient shape of input \(k)", file: file, line: line)
        for i in 0..<values.count {
            let original = values[i]
            values[i] = original + eps
            var plus = inputs; plus[k] = Tensor(values, shape: x.shape)
            values[i] = original - eps
            var minus = inputs; minus[k] = Tensor(values, shape: x.shape)
            values[i] = original
            let numeric = Float((objective(plus) - objective(minus)) / Double(2 * eps))
            if !(abs(g[i] - numeric) <= atol + rtol * abs(numeric)) {
                XCTFail("\(message): d/d input\(k)[\(i)] analytic \(g[i]) vs numeric \(numeric)", file: file, line: line)
                return
            }
        }
    }
}

/// Runs `body` in a forked child and asserts it stops (crashes) with a message
/// on stderr containing every string in `expected`.
func assertStops(containing expected: [String], file: StaticString = #filePath, line: UInt = #line,
                 _ body: () -> Void) {
    var fds: [Int32] = [0, 0]
    XCTAssertEqual(pipe(&fds), 0)
    fflush(stdout); fflush(stderr)
    let pid = fork()
    if pid == 0 {
        close(fds[0])
        dup2(fds[1], 2)
        body()
        _exit(0)  // did not stop
    }
    close(fds[1])
    var output = Data()
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(fds[0], &buffer, buffer.count)
        if n <= 0 { break }
        output.append(buffer, count: n)
    }
    close(fds[0])
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    let text = String(decoding: output, as: UTF8.self)
    let exitedNormally = (status & 0x7f) == 0 && ((status >> 8) & 0xff) == 0
    XCTAssertFalse(exitedNormally, "expected the call to stop, but it returned", file: file, line: line)
    for s in expected where !text.contains(s) {
        XCTFail("stop message does not mention \"\(s)\": \(text)", file: file, line: line)
    }
}

/// The model a parity case builds from its `config`, with the case's weights file
/// (reference keys plus `fixture.*` tensors), for tests of keys, shapes and buffers.
func parityCaseModel(_ caseName: String) throws -> (model: ImageClassifier, weights: Safetensors) {
    let folder = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/parity", withExtension: nil))
    let json = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent(caseName + ".json"))) as! [String: Any]
    let config = try JSONDecoder().decode(JSONValue.self, from: JSONSerialization.data(withJSONObject: json["config"]!))
    let model = try Models.family(json["family"] as! String).build(config: config)
    return (model, try Safetensors(contentsOf: folder.appendingPathComponent(caseName + ".safetensors").path))
}

/// One training-mode step of `model` on `x`: asserts a finite loss, a gradient for exactly
/// the trainable parameters, and every gradient finite; returns the gradients.
@discardableResult
func assertTrainStep(_ model: ImageClassifier, _ x: Tensor, labels: [Int],
                     file: StaticString = #filePath, line: UInt = #line) -> [String: Tensor] {
    model.train()
    let (loss, grads) = valueAndGrad(model) { crossEntropy(logits: model.logits(x), labels: labels) }
    XCTAssertTrue(loss.item().isFinite, "loss \(loss.item())", file: file, line: line)
    XCTAssertEqual(Set(grads.keys), Set(model.trainableParameters().map(\.0)), file: file, line: line)
    for (key, g) in grads { XCTAssertTrue(g.scalars.allSatisfy(\.isFinite), key, file: file, line: line) }
    return grads
}

// MARK: bf16

/// bf16 bits of `values` through the engine's conversion (round to nearest even).
func toBF16(_ values: [Float]) -> [UInt16] {
    var out = [UInt16](repeating: 0xDEAD, count: values.count)
    values.withUnsafeBufferPointer { x in
        out.withUnsafeMutableBufferPointer { y in pw_to_bf16_rows(x.baseAddress!, values.count, y.baseAddress!, 1, values.count) }
    }
    return out
}

/// The float a bf16 stands for.
func widen(_ h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }

/// `t` with every value rounded to the nearest bf16.
func roundedToBF16(_ t: Tensor) -> Tensor { Tensor(toBF16(t.scalars).map(widen), shape: t.shape) }
