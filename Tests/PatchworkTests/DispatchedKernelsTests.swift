import XCTest
import Foundation
import Patchwork

/// The compute-bound activations run in CPatchworkKernels (C, with the SIMD width chosen at run
/// time, multiply-adds fused). They are checked against the functions computed in Double, over
/// the whole float range they accept, with the tails of a length that is not a multiple of 16 and
/// NaN, ±inf, ±0 and the ends of exp's range; and the single-vector entry (VectorMath, used by
/// broadcasting pullbacks and scalars) must give exactly what the tensor kernels give.
final class DispatchedKernelsTests: XCTestCase {
    private let finite: [Float] = {
        var g = SystemRandomNumberGenerator()
        var v: [Float] = [0, -0.0, 1e-30, -1e-30, 1e-4, -1e-4, 0.625, -0.625, 0.6249999, 9, -9, 20, -20, 44, -44]
        for _ in 0..<2000 { v.append(Float.random(in: -30...30, using: &g)) }
        for _ in 0..<1000 { v.append(Float.random(in: -3...3, using: &g)) }
        for _ in 0..<200 { v.append(Float.random(in: -0.01...0.01, using: &g)) }
        return v   // 3215 values: 200 vectors and a tail of 15
    }()

    /// Fails at the element whose error against `f` (computed in Double) exceeds `bound(x, f(x))` most.
    private func assertAccurate(_ name: String, _ x: [Float], _ got: [Float], _ f: (Double) -> Double,
                                bound: (Double, Double) -> Double, file: StaticString = #filePath, line: UInt = #line) {
        var worst = (ratio: 0.0, index: 0)
        for i in got.indices {
            let want = f(Double(x[i]))
            let ratio = Swift.abs(Double(got[i]) - want) / bound(Double(x[i]), want)
            if !(ratio <= worst.ratio) { worst = (ratio.isNaN ? .infinity : ratio, i) }
        }
        XCTAssertLessThanOrEqual(worst.ratio, 1, "\(name) [\(Kernels.simdPath)] at x = \(x[worst.index]): \(got[worst.index]), "
                                 + "want \(f(Double(x[worst.index])))", file: file, line: line)
    }

    private let ulp = Double(Float.ulpOfOne)   // 1.19e-7

    /// Within `n` ulps of the true value, relative.
    private func relative(_ n: Double) -> (Double, Double) -> Double { { _, want in n * self.ulp * Swift.abs(want) + 1e-37 } }

    func testActivationsAreAccurate() {
        let expRange = finite.filter { $0 > -87 && $0 < 88 }
        assertAccurate("exp", expRange, Tensor(expRange, shape: [expRange.count]).exp().scalars, Foundation.exp, bound: relative(2))
        let x = Tensor(finite, shape: [finite.count])
        let sigmoid: (Double) -> Double = { 1 / (1 + Foundation.exp(-$0)) }
        let phi: (Double) -> Double = { 0.5 * (1 + Foundation.erf($0 / 2.0.squareRoot())) }
        assertAccurate("sigmoid", finite, x.sigmoid().scalars, sigmoid, bound: relative(3))
        assertAccurate("silu", finite, x.silu().scalars, { $0 * sigmoid($0) }, bound: relative(3))
        // Away from 0, tanh and erf are 1 − (a small correction): their error is absolute there, and
        // erf's is the fit's (erfc to 1.2e-7, about 1 ulp of 1) plus the roundings of 1 − erfc.
        assertAccurate("tanh", finite, x.tanh().scalars, Foundation.tanh) { _, want in self.ulp + 2 * self.ulp * Swift.abs(want) }
        assertAccurate("erf", finite, x.erf().scalars, Foundation.erf) { _, want in 3 * self.ulp + self.ulp * Swift.abs(want) }
        // x·(1 + erf(x/√2))/2 with GELU's own rational erf (kernels_body.h's gelu, 1.6e-8 of 1 before
        // rounding): the error is about an ulp of 1 times |x|, and for x < 0, where 1 + erf cancels (to 0
        // below about -5.5, as PyTorch's), it is that absolute error, not a relative one.
        let cancelling: (Double, Double) -> Double = { x, want in 2 * self.ulp * (Swift.abs(want) + Swift.abs(x)) + 1e-37 }
        assertAccurate("gelu", finite, x.gelu().scalars, { $0 * phi($0) }, bound: cancelling)
        let geluTanh: (Double) -> Double = { 0.5 * $0 * (1 + Foundation.tanh(0.7978845608028654 * ($0 + 0.044715 * $0 * $0 * $0))) }
        assertAccurate("geluTanh", finite, x.geluTanh().scalars, geluTanh, bound: cancelling)
    }

    func testActivationPullbacksAreAccurate() {
        // d/dx of sum(f(x)·1) = f′(x) through the fused pullback kernels (the product with a
        // tensor of ones makes the incoming gradient a contiguous tensor, the kernels' case).
        let x = Tensor(finite, shape: [finite.count]), ones = Tensor.ones([finite.count])
        func grad(_ f: (Tensor) -> Tensor) -> [Float] {
            valueAndGradient(at: [x]) { (f($0[0]) * ones).sum() }.gradients[0].scalars
        }
        let sigmoid: (Double) -> Double = { 1 / (1 + Foundation.exp(-$0)) }
        // Each derivative sums terms that cancel (1 + erf or 1 + tanh near x → -∞, 1 − σ near +∞)
        // and scales one by x: the error is a few ulps of 1 times (1 + |x|).
        let cancelling: (Double, Double) -> Double = { x, want in 2 * self.ulp * (1 + Swift.abs(x)) }
        assertAccurate("gelu′", finite, grad { $0.gelu() }, { x in
            0.5 * (1 + Foundation.erf(x / 2.0.squareRoot())) + x * Foundation.exp(-0.5 * x * x) / (2 * Double.pi).squareRoot()
        }, bound: cancelling)
        assertAccurate("silu′", finite, grad { $0.silu() }, { x in
            let s = sigmoid(x)
            return s * (1 + x * (1 - s))
        }, bound: cancelling)
        assertAccurate("geluTanh′", finite, grad { $0.geluTanh() }, { x in
            let c = 0.7978845608028654, t = Foundation.tanh(c * (x + 0.044715 * x * x * x))
            return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 0.134145 * x * x)
        }, bound: cancelling)
    }

    /// ReLU and its pullback run in C too: x < 0 ? 0 : x (NaN and −0 pass through) and g where x > 0.
    func testReluAndItsPullbackKeepTheirDefinition() {
        let values = finite + [.nan, -.infinity, .infinity, -0.0]
        let x = Tensor(values, shape: [values.count])
        let y = x.relu().scalars
        for (i, v) in values.enumerated() {
            let want: Float = v < 0 ? 0 : v
            XCTAssertTrue(y[i].bitPattern == want.bitPattern, "relu(\(v)) = \(y[i]), want \(want)")
        }
        let upstream = Tensor.randomNormal([values.count], generator: Generator(seed: 8))
        let g = valueAndGradient(at: [x]) { ($0[0].relu() * upstream).sum() }.gradients[0].scalars
        for (i, v) in values.enumerated() {
            XCTAssertEqual(g[i], v > 0 ? upstream.scalars[i] : 0, "relu′ at \(v)")
        }
    }

    func testSpecialValues() {
        let x = Tensor([.nan, .infinity, -.infinity, 88.7, 88.8, -87.3, -87.4], shape: [7])
        let e = x.exp().scalars
        XCTAssertTrue(e[0].isNaN)
        XCTAssertEqual(e[2], 0)
        XCTAssertEqual(e[6], 0, "exp underflows to 0 below -87.3")
        // 2^n overflows once x·log2(e) rounds to 128, from about 88.38 (true overflow: 88.72).
        XCTAssertEqual(e[1], .infinity)
        XCTAssertEqual(e[4], .infinity)
        let nearTop = Tensor([88, 88.3], shape: [2]).exp().scalars
        XCTAssertTrue(nearTop.allSatisfy { $0.isFinite && $0 > 1.6e38 }, "\(nearTop)")
        XCTAssertEqual(Array(x.erf().scalars[1...2]), [1, -1])
        XCTAssertEqual(Array(x.tanh().scalars[1...2]), [1, -1])
        XCTAssertEqual(Array(x.sigmoid().scalars[1...2]), [1, 0])
        for (name, y) in [("erf", x.erf()), ("tanh", x.tanh()), ("sigmoid", x.sigmoid()), ("gelu", x.gelu())] {
            XCTAssertTrue(y.scalars[0].isNaN, "\(name)(NaN)")
        }
        XCTAssertEqual(Tensor([-0.0], shape: [1]).erf().scalars[0].sign, .minus, "erf keeps the sign of zero")
        // GELU saturates as PyTorch's: 0 far below zero, x far above, NaN at −inf (−inf·0). Its erf is
        // clamped to [−1, 1], so where 1 + erf cancels a rounding past −1 cannot flip the sign.
        let gelu = Tensor([-10, -6, 6, 10, .infinity, -.infinity], shape: [6]).gelu().scalars
        XCTAssertEqual(Array(gelu[0...4]), [0, 0, 6, 10, .infinity])
        XCTAssertTrue(gelu[5].isNaN, "gelu(−inf) = \(gelu[5])")
        let negative = Tensor((0..<8000).map { -8 + Float($0) * 0.001 }, shape: [8000])
        let positive = zip(negative.scalars, negative.gelu().scalars).filter { $0.1 > 0 }
        XCTAssertTrue(positive.isEmpty, "gelu(x) > 0 for x < 0 at \(positive.prefix(3))")
    }

    /// The single-vector entry (broadcasting pullbacks, scalars) is the same kernel: bit for bit,
    /// whichever lane a value lands in.
    func testSingleVectorsMatchTheTensorKernels() {
        let x = Tensor(finite, shape: [finite.count])
        func perVector(_ f: (Vec) -> Vec) -> [Float] {
            var out = [Float](repeating: 0, count: finite.count)
            var i = 0
            while i < finite.count {
                var a = Vec(repeating: 0)
                for k in 0..<min(16, finite.count - i) { a[k] = finite[i + k] }
                let b = f(a)
                for k in 0..<min(16, finite.count - i) { out[i + k] = b[k] }
                i += 16
            }
            return out
        }
        for (name, tensor, vector) in [("exp", x.exp(), perVector(VectorMath.exp)), ("erf", x.erf(), perVector(VectorMath.erf)),
                                       ("tanh", x.tanh(), perVector(VectorMath.tanh)),
                                       ("sigmoid", x.sigmoid(), perVector(VectorMath.sigmoid))] {
            let t = tensor.scalars
            for i in t.indices where t[i].bitPattern != vector[i].bitPattern {
                XCTFail("\(name) at x = \(finite[i]): tensor \(t[i]), vector \(vector[i])"); break
            }
        }
    }

    func testThePathIsOneOfTheThree() {
        XCTAssertTrue(["avx512", "avx2", "baseline"].contains(Kernels.simdPath), Kernels.simdPath)
    }
}
