import XCTest
import Patchwork

/// The compute-bound activations run in CPatchworkKernels (C, with the SIMD width chosen at run
/// time). They must give exactly what the Swift polynomials in VectorMath give, lane for lane,
/// including the tails of a length that is not a multiple of 16 and NaN, ±inf, ±0 and the ends
/// of exp's range.
final class DispatchedKernelsTests: XCTestCase {
    private let inputs: [Float] = {
        var g = SystemRandomNumberGenerator()
        var v: [Float] = [.nan, .infinity, -.infinity, 0, -0.0, 1e-30, -1e-30, 88.7, 88.8, -87.3, -87.4, 44, -44,
                          0.625, -0.625, 9, -9, 20, -20]
        for _ in 0..<1000 { v.append(Float.random(in: -30...30, using: &g)) }
        for _ in 0..<200 { v.append(Float.random(in: -3...3, using: &g)) }
        return v   // 1219 values: 76 vectors and a tail of 3
    }()

    /// f applied 16 lanes at a time by the Swift code, the tail zero-padded as the kernels do.
    private func swiftMap(_ x: [Float], _ f: (Vec) -> Vec) -> [Float] {
        var out = [Float](repeating: 0, count: x.count)
        var i = 0
        while i < x.count {
            var a = Vec(repeating: 0)
            for k in 0..<min(16, x.count - i) { a[k] = x[i + k] }
            let b = f(a)
            for k in 0..<min(16, x.count - i) { out[i + k] = b[k] }
            i += 16
        }
        return out
    }

    private func assertSame(_ got: [Float], _ want: [Float], _ name: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, want.count, file: file, line: line)
        for (i, (a, b)) in zip(got, want).enumerated() where !(a.isNaN && b.isNaN) && a.bitPattern != b.bitPattern {
            XCTFail("\(name) [\(Kernels.simdPath)]: element \(i) (x = \(inputs[i])): kernel \(a), Swift \(b)", file: file, line: line)
            return
        }
    }

    func testActivationsMatchTheSwiftPolynomials() {
        let x = Tensor(inputs, shape: [inputs.count])
        let c: Float = 0.7071067811865476, t: Float = 0.7978845608028654
        assertSame(x.exp().scalars, swiftMap(inputs) { VectorMath.exp($0) }, "exp")
        assertSame(x.sigmoid().scalars, swiftMap(inputs) { VectorMath.sigmoid($0) }, "sigmoid")
        assertSame(x.silu().scalars, swiftMap(inputs) { $0 * VectorMath.sigmoid($0) }, "silu")
        assertSame(x.tanh().scalars, swiftMap(inputs) { VectorMath.tanh($0) }, "tanh")
        assertSame(x.erf().scalars, swiftMap(inputs) { VectorMath.erf($0) }, "erf")
        assertSame(x.gelu().scalars, swiftMap(inputs) { 0.5 * $0 * (1 + VectorMath.erf($0 * c)) }, "gelu")
        assertSame(x.geluTanh().scalars, swiftMap(inputs) { 0.5 * $0 * (1 + VectorMath.tanh(t * ($0 + 0.044715 * $0 * $0 * $0))) },
                   "geluTanh")
    }

    func testActivationPullbacksMatchTheSwiftPolynomials() {
        // d/dx of sum(f(x)·1) = f′(x) through the fused pullback kernels (the product with a
        // tensor of ones makes the incoming gradient a contiguous tensor, the kernels' case).
        let finite = inputs.filter { $0.isFinite }
        let x = Tensor(finite, shape: [finite.count]), ones = Tensor.ones([finite.count])
        func grad(_ f: (Tensor) -> Tensor) -> [Float] {
            valueAndGradient(at: [x]) { (f($0[0]) * ones).sum() }.gradients[0].scalars
        }
        func swiftGrad(_ f: (Vec) -> Vec) -> [Float] {
            var out = [Float](repeating: 0, count: finite.count)
            for i in 0..<finite.count { out[i] = f(Vec(repeating: finite[i]))[0] }
            return out
        }
        let c: Float = 0.7071067811865476, t: Float = 0.7978845608028654
        let gelu = grad { $0.gelu() }, want = swiftGrad { x in
            1 * (0.5 * (1 + VectorMath.erf(x * c)) + x * 0.3989422804014327 * VectorMath.exp(-0.5 * x * x))
        }
        XCTAssertEqual(gelu.count, want.count)
        for i in 0..<gelu.count where gelu[i].bitPattern != want[i].bitPattern {
            XCTFail("gelu′ [\(Kernels.simdPath)] at x = \(finite[i]): kernel \(gelu[i]), Swift \(want[i])"); break
        }
        let silu = grad { $0.silu() }, wantSilu = swiftGrad { x in
            let s = VectorMath.sigmoid(x)
            return 1 * s * (1 + x * (1 - s))
        }
        for i in 0..<silu.count where silu[i].bitPattern != wantSilu[i].bitPattern {
            XCTFail("silu′ [\(Kernels.simdPath)] at x = \(finite[i]): kernel \(silu[i]), Swift \(wantSilu[i])"); break
        }
        let geluT = grad { $0.geluTanh() }, wantT = swiftGrad { x in
            let x2 = x * x
            let th = VectorMath.tanh(t * (x + 0.044715 * x2 * x))
            let du = t * (1 + 0.134145 * x2)
            return 1 * (0.5 * (1 + th) + 0.5 * x * (1 - th * th) * du)
        }
        for i in 0..<geluT.count where geluT[i].bitPattern != wantT[i].bitPattern {
            XCTFail("geluTanh′ [\(Kernels.simdPath)] at x = \(finite[i]): kernel \(geluT[i]), Swift \(wantT[i])"); break
        }
    }

    func testThePathIsOneOfTheThree() {
        XCTAssertTrue(["avx512", "avx2", "baseline"].contains(Kernels.simdPath), Kernels.simdPath)
    }
}
