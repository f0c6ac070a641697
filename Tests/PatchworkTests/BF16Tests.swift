import CDNNL
import CPatchworkKernels
import Foundation
import XCTest
@testable import Patchwork
import PatchworkData
import PatchworkModels
import PatchworkNN
import PatchworkTrain

/// `Precision.bf16`: the fp32 → bf16 rounding, the bf16 GEMM against an exact product of the
/// rounded inputs, gradients, the default staying fp32, and a short training run in both precisions.
final class BF16Tests: XCTestCase {
    override func tearDown() {
        XCTAssertEqual(Precision.current, .fp32, "a test left the precision set")
        Precision.current = .fp32
    }

    // MARK: Rounding

    /// Round to nearest, ties to even, found by comparing the two neighbouring bf16 values in Double
    /// (not by the bit trick the kernel uses).
    func referenceBF16(_ x: Float) -> UInt16 {
        if x.isNaN || x.isInfinite { fatalError("finite inputs only") }
        let down = UInt16(x.bitPattern >> 16)            // truncation: towards zero
        let up = down &+ 1                               // next bf16 away from zero (may be infinity)
        let dDown = abs(Double(widen(down)) - Double(x))
        let upValue = widen(up)
        // Past the largest finite bf16, IEEE rounding goes to infinity when x is at least halfway
        // to the next power of two's step (2^128 for floats).
        let dUp = upValue.isInfinite ? abs(Double(x.sign == .minus ? -1 : 1) * 0x1p128 - Double(x)) : abs(Double(upValue) - Double(x))
        if dDown < dUp { return down }
        if dUp < dDown { return up }
        return down & 1 == 0 ? down : up
    }

    func testConversionRoundsToNearestEvenAndKeepsNaNAndInfinity() {
        let cases: [(UInt32, UInt16, String)] = [
            (0x3F80_0000, 0x3F80, "1 is exact"),
            (0x3F80_8000, 0x3F80, "a tie rounds to the even 0x3F80"),
            (0x3F81_8000, 0x3F82, "a tie rounds to the even 0x3F82"),
            (0x3F80_8001, 0x3F81, "just above half rounds up"),
            (0x3F80_7FFF, 0x3F80, "just below half rounds down"),
            (0xBF80_8001, 0xBF81, "negative, above half: away from zero"),
            (0x8000_0000, 0x8000, "-0 stays -0"),
            (0x0000_0001, 0x0000, "the smallest subnormal rounds to 0"),
            (0x007F_FFFF, 0x0080, "the largest subnormal rounds up to the smallest normal"),
            (0x7F7F_FFFF, 0x7F80, "the largest float rounds to infinity"),
            (0x7F80_0000, 0x7F80, "infinity"),
            (0xFF80_0000, 0xFF80, "-infinity"),
        ]
        let got = toBF16(cases.map { Float(bitPattern: $0.0) })
        for (i, c) in cases.enumerated() {
            XCTAssertEqual(got[i], c.1, "\(c.2): 0x\(String(c.0, radix: 16)) gave 0x\(String(got[i], radix: 16))")
        }
        // NaNs, quiet or signalling, either sign, whatever payload: still NaN, sign kept.
        let nans: [UInt32] = [0x7FC0_0000, 0x7F80_0001, 0xFF80_0001, 0x7FFF_FFFF, 0xFFFF_FFFF, 0x7F80_8000]
        for (bits, h) in zip(nans, toBF16(nans.map { Float(bitPattern: $0) })) {
            XCTAssertTrue(widen(h).isNaN, "NaN 0x\(String(bits, radix: 16)) became 0x\(String(h, radix: 16))")
            XCTAssertEqual(h >> 15, UInt16(bits >> 31), "NaN 0x\(String(bits, radix: 16)) lost its sign")
        }
        // Random finite floats of every magnitude, against the Double reference.
        let g = Generator(seed: 5)
        let randoms = (0..<5000).map { _ -> Float in
            var x: Float
            repeat { x = Float(bitPattern: UInt32(truncatingIfNeeded: g.next())) } while !x.isFinite
            return x
        }
        for (x, h) in zip(randoms, toBF16(randoms)) where h != referenceBF16(x) {
            XCTFail("0x\(String(x.bitPattern, radix: 16)) rounded to 0x\(String(h, radix: 16)), expected 0x\(String(referenceBF16(x), radix: 16))")
            break
        }
    }

    func testConversionReadsRowsThroughTheLeadingDimension() {
        // 3 rows of 37 (a vector's width plus a tail) out of rows 40 apart; the gaps must not be read.
        let rows = 3, cols = 37, ld = 40
        var x = [Float](repeating: .nan, count: rows * ld)
        for r in 0..<rows { for j in 0..<cols { x[r * ld + j] = Float(r * 100 + j) + 0.3 } }
        var y = [UInt16](repeating: 0, count: rows * cols)
        x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { pw_to_bf16_rows(xp.baseAddress!, ld, $0.baseAddress!, rows, cols) } }
        for r in 0..<rows {
            for j in 0..<cols { XCTAssertEqual(y[r * cols + j], referenceBF16(x[r * ld + j]), "row \(r) column \(j)") }
        }
    }

    /// The emulation's operands (`pw_bf16_rounded_rows`, through `Kernels.roundToBF16Values`): the bf16 bits
    /// of `pw_to_bf16_rows` followed by 16 zero bits, NaNs and infinities included, read through the
    /// leading dimension.
    func testRoundedFloatsAreTheBF16Bits() {
        let g = Generator(seed: 8)
        let specials: [Float] = [0, -0.0, 1, .infinity, -.infinity, .nan, Float(bitPattern: 0xFF80_0001),
                                 Float(bitPattern: 0x7F7F_FFFF), Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x0000_0001)]
        let rows = 7, cols = 45, ld = 50
        var x = (0..<rows * ld).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: g.next())) }
        for (i, v) in specials.enumerated() { x[i * 3] = v }
        var y = [Float](repeating: 0, count: rows * cols)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { Kernels.roundToBF16Values(xp.baseAddress!, ld: ld, $0.baseAddress!, rows: rows, cols: cols) }
        }
        for r in 0..<rows {
            let want = toBF16(Array(x[r * ld ..< r * ld + cols]))
            for j in 0..<cols where y[r * cols + j].bitPattern != UInt32(want[j]) << 16 {
                XCTFail("row \(r) column \(j): 0x\(String(x[r * ld + j].bitPattern, radix: 16)) gave 0x\(String(y[r * cols + j].bitPattern, radix: 16))")
                return
            }
        }
    }

    // MARK: GEMM

    /// C = alpha·op(A)·op(B) + beta·C in bf16 through `Gemm.sgemm`, against the product of the
    /// bf16-rounded inputs in Double. Each product of two bf16 values is exact in fp32, so the only
    /// error is fp32 accumulation: at most about k·2⁻²⁴ of Σ|a·b| (k ≤ 300 here: 2e-5).
    func checkBF16Gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, lda extraA: Int, ldb extraB: Int, ldc extraC: Int,
                       alpha: Float, beta: Float, seed: UInt64, inParallelLoop: Bool = false,
                       file: StaticString = #filePath, line: UInt = #line) {
        let g = Generator(seed: seed)
        // Stored A is m×k (k×m transposed) with rows lda apart; stored B k×n (n×k transposed).
        let aRows = transA ? k : m, aCols = transA ? m : k, lda = aCols + extraA
        let bRows = transB ? n : k, bCols = transB ? k : n, ldb = bCols + extraB
        let ldc = n + extraC
        let a = (0..<aRows * lda).map { _ in g.nextNormal() }
        let b = (0..<bRows * ldb).map { _ in g.nextNormal() }
        let c0 = (0..<m * ldc).map { _ in g.nextNormal() }
        // op(A) as m×k and op(B) as n×k (rows contiguous over k), rounded to bf16, in Double.
        let ra = toBF16(a).map { Double(widen($0)) }, rb = toBF16(b).map { Double(widen($0)) }
        var opA = [Double](repeating: 0, count: m * k), opB = [Double](repeating: 0, count: n * k)
        for i in 0..<m { for p in 0..<k { opA[i * k + p] = transA ? ra[p * lda + i] : ra[i * lda + p] } }
        for j in 0..<n { for p in 0..<k { opB[j * k + p] = transB ? rb[j * ldb + p] : rb[p * ldb + j] } }
        var c = c0, exactFP32 = c0
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    Precision.with(.bf16) {
                        if inParallelLoop {
                            // Four copies at once on the OpenMP team, each into its own C; the first is checked.
                            let copies = UnsafeMutablePointer<Float>.allocate(capacity: 3 * m * ldc)
                            defer { copies.deallocate() }
                            for t in 0..<3 { (copies + t * m * ldc).update(from: pc.baseAddress!, count: m * ldc) }
                            var inRegion = [Int32](repeating: 0, count: 4)
                            inRegion.withUnsafeMutableBufferPointer { flags in
                                Parallel.forEach(4, costPerItem: Parallel.minimumWorkPerThread) { t in
                                    flags[t] = omp_in_parallel()
                                    Gemm.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: pa.baseAddress!, lda: lda,
                                               b: pb.baseAddress!, ldb: ldb, beta: beta, c: t == 0 ? pc.baseAddress! : copies + (t - 1) * m * ldc,
                                               ldc: ldc)
                                }
                            }
                            XCTAssertEqual(inRegion, [1, 1, 1, 1], "the GEMMs did not run inside a parallel region", file: file, line: line)
                            for t in 0..<3 {
                                XCTAssertTrue((0..<m * ldc).allSatisfy { copies[t * m * ldc + $0].bitPattern == pc[$0].bitPattern },
                                              "copy \(t + 1) differs from copy 0", file: file, line: line)
                            }
                        } else {
                            Gemm.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: pa.baseAddress!, lda: lda,
                                       b: pb.baseAddress!, ldb: ldb, beta: beta, c: pc.baseAddress!, ldc: ldc)
                        }
                    }
                }
                exactFP32.withUnsafeMutableBufferPointer { pc in
                    Gemm.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: pa.baseAddress!, lda: lda,
                               b: pb.baseAddress!, ldb: ldb, beta: beta, c: pc.baseAddress!, ldc: ldc)
                }
            }
        }
        var worst = 0.0, differsFromFP32 = 0.0
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0, scale = 0.0
                for p in 0..<k { let t = opA[i * k + p] * opB[j * k + p]; sum += t; scale += abs(t) }
                let expected = Double(alpha) * sum + Double(beta) * Double(c0[i * ldc + j])
                let bound = 1e-5 * (abs(Double(alpha)) * scale + abs(Double(beta) * Double(c0[i * ldc + j]))) + 1e-6
                worst = max(worst, abs(Double(c[i * ldc + j]) - expected) / bound)
                differsFromFP32 = max(differsFromFP32, abs(Double(c[i * ldc + j]) - Double(exactFP32[i * ldc + j])))
            }
            // Columns past n in C's rows are not C's: untouched.
            for j in n..<ldc where c[i * ldc + j] != c0[i * ldc + j] {
                XCTFail("C[\(i), \(j)] beyond n = \(n) was written", file: file, line: line)
                return
            }
        }
        let what = "transA \(transA) transB \(transB) m \(m) n \(n) k \(k) lda \(lda) ldb \(ldb) ldc \(ldc) alpha \(alpha) beta \(beta)"
        XCTAssertLessThanOrEqual(worst, 1, "\(what): error \(worst)× the fp32-accumulation bound", file: file, line: line)
        // bf16 inputs keep 8 bits: the result must differ from the fp32 product (the bf16 path ran).
        XCTAssertGreaterThan(differsFromFP32, 1e-3, "\(what): identical to fp32, so the bf16 path did not run", file: file, line: line)
    }

    func testBF16GemmMatchesTheProductOfRoundedInputs() {
        checkBF16GemmShapes()
    }

    /// The fallback for CPUs without bf16 kernels (AVX2: oneDNN 2.6 has none) computes the same
    /// product, checked here on any CPU; on such a CPU the test above checks it too.
    func testEmulatedBF16GemmMatchesTheProductOfRoundedInputs() throws {
        BF16Gemm.emulated = true
        defer { BF16Gemm.emulated = !BF16Gemm.hasKernels }
        checkBF16GemmShapes()
        try XCTSkipIf(Parallel.threadCount < 2, "needs 2 OpenMP threads for a parallel region")
        checkBF16Gemm(transA: true, transB: false, m: 160, n: 130, k: 121, lda: 5, ldb: 3, ldc: 7, alpha: 1, beta: 1, seed: 12,
                      inParallelLoop: true)
    }

    /// Every shape passes BF16Gemm.pays (m·n·k ≥ 2²¹, m·n/(m+n) ≥ 64): both transposes, padded leading
    /// dimensions, alpha and beta.
    func checkBF16GemmShapes() {
        var seed: UInt64 = 1
        for transA in [false, true] {
            for transB in [false, true] {
                checkBF16Gemm(transA: transA, transB: transB, m: 150, n: 140, k: 110, lda: 0, ldb: 0, ldc: 0, alpha: 1, beta: 0, seed: seed)
                checkBF16Gemm(transA: transA, transB: transB, m: 160, n: 130, k: 121, lda: 5, ldb: 3, ldc: 7, alpha: 1, beta: 1, seed: seed + 100)
                checkBF16Gemm(transA: transA, transB: transB, m: 200, n: 150, k: 75, lda: 1, ldb: 17, ldc: 2, alpha: 0.5, beta: 1, seed: seed + 200)
                seed += 1
            }
        }
        // Large enough for oneDNN to split over every thread.
        checkBF16Gemm(transA: false, transB: true, m: 300, n: 256, k: 128, lda: 0, ldb: 0, ldc: 0, alpha: 1, beta: 1, seed: 9)
    }

    func testBF16GemmInsideAParallelLoopComputesAllOfC() throws {
        try XCTSkipIf(Parallel.threadCount < 2, "needs 2 OpenMP threads for a parallel region")
        // Inside a `Parallel` loop each GEMM runs on its own thread (as the convolutions' per-image
        // GEMMs do): a primitive made for all threads would fill only the first thread's share of C.
        checkBF16Gemm(transA: false, transB: true, m: 300, n: 256, k: 128, lda: 0, ldb: 0, ldc: 0, alpha: 1, beta: 1, seed: 11,
                      inParallelLoop: true)
        checkBF16Gemm(transA: true, transB: false, m: 160, n: 130, k: 121, lda: 5, ldb: 3, ldc: 7, alpha: 1, beta: 1, seed: 12,
                      inParallelLoop: true)
    }

    func testSmallAndNarrowProductsStayFP32() {
        // 64³ (too few multiply-adds) and 4096×64·64×32 (32 columns: too few multiply-adds per
        // rounded element), against 4096×256·256×256, which runs in bf16.
        func bitsEqual(_ m: Int, _ k: Int, _ n: Int) -> Bool {
            let a = Tensor.randomNormal([m, k], generator: Generator(seed: 1))
            let b = Tensor.randomNormal([k, n], generator: Generator(seed: 2))
            return Precision.with(.bf16) { matmul(a, b) }.scalars.map(\.bitPattern) == matmul(a, b).scalars.map(\.bitPattern)
        }
        XCTAssertTrue(bitsEqual(64, 64, 64))
        XCTAssertTrue(bitsEqual(4096, 64, 32))
        XCTAssertFalse(bitsEqual(4096, 256, 256))
    }

    func testDefaultPrecisionIsFP32AndWithRestoresIt() {
        XCTAssertEqual(Precision.current, .fp32)
        let a = Tensor.randomNormal([96, 80], generator: Generator(seed: 1))
        let b = Tensor.randomNormal([80, 64], generator: Generator(seed: 2))
        let before = matmul(a, b).scalars.map(\.bitPattern)
        struct Stop: Error {}
        XCTAssertThrowsError(try Precision.with(.bf16) { XCTAssertEqual(Precision.current, .bf16); throw Stop() })
        XCTAssertEqual(Precision.current, .fp32, "with(_:_:) restores the setting when its body throws")
        // Bit for bit the plain dnnl_sgemm product, before and after a bf16 region.
        XCTAssertEqual(matmul(a, b).scalars.map(\.bitPattern), before)
        let expected = a.scalars.withUnsafeBufferPointer { pa in
            b.scalars.withUnsafeBufferPointer { pb -> [UInt32] in
                var c = [Float](repeating: 0, count: 96 * 64)
                let status = dnnl_sgemm(0x4E, 0x4E, 96, 64, 80, 1, pa.baseAddress!, 80, pb.baseAddress!, 64, 0, &c, 64)
                XCTAssertEqual(status, dnnl_success)
                return c.map(\.bitPattern)
            }
        }
        XCTAssertEqual(before, expected)
    }

    // MARK: Gradients and training

    func testLinearGradientsInBF16AreCloseToFP32() {
        // Every product (forward 256×192·192×160, and the two gradients' products) passes BF16Gemm.pays.
        let x = Tensor.randomNormal([256, 192], generator: Generator(seed: 1))
        let w = Tensor.randomNormal([160, 192], generator: Generator(seed: 2)) * 0.1
        let bias = Tensor.randomNormal([160], generator: Generator(seed: 3))
        let upstream = Tensor.randomNormal([256, 160], generator: Generator(seed: 4))
        func grads() -> [Tensor] {
            valueAndGradient(at: [x, w, bias]) { t in (linear(t[0], weight: t[1], bias: t[2]) * upstream).sum() }.gradients
        }
        let fp32 = grads()
        let bf16 = Precision.with(.bf16) { grads() }
        // Each gradient entry sums 160..256 products of inputs rounded to 8 significant bits (relative
        // error ≤ 2⁻⁸ per product): the error is at most 2⁻⁸ of the sum of the terms' sizes, which for
        // random signs is about √k times the typical entry; 2 % of the largest entry bounds it.
        for (name, (f, h)) in zip(["x", "weight", "bias"], zip(fp32, bf16)) {
            let scale = f.scalars.map(abs).max()!
            let diff = zip(f.scalars, h.scalars).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(diff, 0.02 * scale, "d/d\(name): bf16 differs by \(diff) (largest entry \(scale))")
            if name != "bias" { XCTAssertGreaterThan(diff, 0, "d/d\(name): bf16 identical to fp32, so it did not run") }
        }
        // The bias gradient sums the upstream gradient: no matrix product, so it stays fp32 exactly.
        XCTAssertEqual(fp32[2].scalars, bf16[2].scalars)
    }

    /// A whole model's training-step gradients in bf16 against fp32, at the same weights on the same
    /// ShapeTex batch: a ViT (linears, the patch-embedding convolution, attention) and a ResNet
    /// (convolutions' forward and both backward passes, batch norm in training). Each parameter
    /// tensor's bf16 gradient must lie within 5 % of fp32's (relative L2 distance). Rounding the
    /// products' inputs to 8 significant bits moves them by under 1 % here (largest 0.91 % for
    /// vit_nano, 0.34 % for resnet_nano; across training, docs/PERFORMANCE.md, "One step's
    /// gradients"); a product of the chain with a wrong operand, transpose or layout in bf16 moves
    /// its layer's gradients by tens of percent.
    /// The ResNet's blocks start with their last batch norm's scale at zero (timm's zero_init_last),
    /// which zeroes every gradient inside the residual branches; the test sets those scales to one,
    /// so the convolutions there are checked too.
    func testModelGradientsInBF16StayWithinRoundingOfFP32() throws {
        let data = try ShapeTex(split: .train, count: 32, size: 32, seed: 5)
        let batch = try DataLoader(dataset: data, batchSize: 32, shuffle: false, prefetch: 0).batch(epoch: 0, index: 0)
        let input = standardize(batch.images)
        for name in ["vit_nano", "resnet_nano"] {
            Generator.global.reseed(11)
            let model = try Models.create(name, numClasses: ShapeTex.classCount)
            let zeroScales = model.stateDict().filter { $0.key.hasSuffix(".weight") && $0.value.scalars.allSatisfy { $0 == 0 } }
            try model.loadStateDict(zeroScales.mapValues { Tensor.ones($0.shape) }, strict: false)
            func step() -> (loss: Float, gradients: [String: Tensor]) {
                let (loss, gradients) = valueAndGrad(model) { crossEntropy(logits: model.logits(input), labels: batch.labels) }
                return (loss.item(), gradients)
            }
            let fp32 = step()
            let bf16 = Precision.with(.bf16) { step() }
            XCTAssertEqual(bf16.loss, fp32.loss, accuracy: 1e-3 * fp32.loss, "\(name): loss")
            XCTAssertEqual(Set(bf16.gradients.keys), Set(fp32.gradients.keys), "\(name): the same parameters get gradients")
            var largest = (name: "", distance: 0.0)
            var differing = 0
            for (key, f) in fp32.gradients {
                let g = try XCTUnwrap(bf16.gradients[key])
                let (a, b) = (f.contiguous().scalars, g.contiguous().scalars)
                let norm = sqrt(a.reduce(0.0) { $0 + Double($1) * Double($1) })
                let distance = sqrt(zip(a, b).reduce(0.0) { $0 + pow(Double($1.0) - Double($1.1), 2) }) / norm
                XCTAssertLessThan(distance, 0.05, "\(name).\(key): bf16 gradient \(distance * 100) % from fp32's")
                if distance > largest.distance { largest = (key, distance) }
                if a != b { differing += 1 }
            }
            print("\(name): \(fp32.gradients.count) gradients, largest bf16 distance \(largest.distance * 100) % (\(largest.name))")
            // Nearly every gradient reaches a rounded product; identical gradients everywhere would
            // mean bf16 never ran.
            XCTAssertGreaterThan(differing, fp32.gradients.count / 2, "\(name): bf16 changed only \(differing) gradients")
        }
    }

    /// PATCHWORK_BF16_BACKWARD=fp32 (the diagnostic that locates bf16's loss of accuracy): the
    /// forward products stay bf16, and the gradients' products are the fp32 ones bit for bit.
    func testBackwardProductsInFP32KeepTheForwardInBF16() {
        let x = Tensor.randomNormal([256, 192], generator: Generator(seed: 1))
        let w = Tensor.randomNormal([160, 192], generator: Generator(seed: 2)) * 0.1
        let upstream = Tensor.randomNormal([256, 160], generator: Generator(seed: 4))
        func run() -> (value: [Float], gradients: [[Float]]) {
            var value: [Float] = []
            let gradients = valueAndGradient(at: [x, w]) { t -> Tensor in
                let y = linear(t[0], weight: t[1], bias: nil)
                value = y.scalars
                return (y * upstream).sum()
            }.gradients
            return (value, gradients.map(\.scalars))
        }
        let saved = Precision.backwardProductsInBF16   // false when the test runs under PATCHWORK_BF16_BACKWARD=fp32
        defer { Precision.backwardProductsInBF16 = saved }
        let fp32 = run()
        Precision.backwardProductsInBF16 = true
        let bf16 = Precision.with(.bf16) { run() }
        Precision.backwardProductsInBF16 = false
        let mixed = Precision.with(.bf16) { run() }
        XCTAssertEqual(Precision.current, .fp32)
        XCTAssertNotEqual(bf16.value, fp32.value, "the forward product did not run in bf16")
        XCTAssertEqual(mixed.value, bf16.value, "the forward product must stay bf16")
        XCTAssertNotEqual(bf16.gradients, fp32.gradients, "the gradients' products did not run in bf16")
        XCTAssertEqual(mixed.gradients, fp32.gradients, "the gradients' products must run in fp32")
    }

    /// A short ShapeTex run in fp32 and in bf16 from the same seed (same weights, same batches):
    /// resnet_nano on 32×32 images, 1024 training images, 4 epochs of batches of 32 (128 steps).
    /// Its loss curve in bf16 must stay within noise of fp32: each epoch's mean training loss within
    /// 3 % of fp32's. The noise is what the rounding itself brings: inputs of the products keep
    /// 8 significant bits (relative error up to 2⁻⁹ each) and the two runs drift apart step by step;
    /// a broken bf16 path (products missing or wrong) gives losses tens of percent away or no
    /// learning. Accuracy is compared at full size by scripts/bf16-vs-fp32.sh (10 000 training images,
    /// 20 000 test images).
    func testShapeTexLossCurveInBF16StaysWithinNoiseOfFP32() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("patchwork-bf16-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        defer { try? FileManager.default.removeItem(at: dir) }
        let train = try ShapeTex(split: .train, count: 1024, size: 32, seed: 3)
        let test = try ShapeTex(split: .test, count: 64, size: 32, seed: 3)
        func run(_ precision: Precision) throws -> (TrainingSummary, [Double]) {
            Generator.global.reseed(7)
            let model = try Models.create("resnet_nano", numClasses: train.classNames.count)
            var options = TrainingOptions()
            options.epochs = 4
            options.batchSize = 32
            options.seed = 7
            options.augment = "none"
            options.precision = precision
            let trainer = try Trainer(model: model, modelName: "resnet_nano", dataName: "shapetex", train: train, test: test,
                                      options: options, outDirectory: dir.appendingPathComponent(precision.rawValue).path)
            trainer.verbose = false
            let summary = try trainer.run()
            let lines = try String(contentsOfFile: trainer.metricsPath, encoding: .utf8).split(separator: "\n")
            let losses = try lines.map { line -> Double in
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                return try XCTUnwrap(object?["train_loss"] as? Double, "metrics line without train_loss: \(line)")
            }
            return (summary, losses)
        }
        let (fp32, fp32Losses) = try run(.fp32)
        let (bf16, bf16Losses) = try run(.bf16)
        print("ShapeTex resnet_nano 32px, 4 epochs, training loss per epoch: fp32 \(fp32Losses), bf16 \(bf16Losses)")
        XCTAssertEqual(fp32Losses.count, 4)
        XCTAssertEqual(bf16Losses.count, 4)
        // ShapeTex is slow to start for a CNN (train loss 2.38 → 2.34 over the first 32 steps of a
        // 512-image trial): the check is that the weights move the loss down, so both curves are
        // of a run that trains.
        XCTAssertLessThan(fp32Losses.last!, fp32Losses.first!, "the fp32 run must train for the comparison to mean anything")
        for (epoch, (f, h)) in zip(fp32Losses, bf16Losses).enumerated() {
            XCTAssertEqual(h, f, accuracy: 0.03 * f, "epoch \(epoch + 1): bf16 training loss \(h) vs fp32 \(f)")
        }
        XCTAssertNotEqual(bf16.weightsSha256, fp32.weightsSha256, "bf16 trained the same weights bit for bit: it did not run")
        XCTAssertEqual(bf16.options.precision, .bf16, "the summary records the precision")
        XCTAssertEqual(fp32.options.precision, .fp32)
        XCTAssertEqual(Precision.current, .fp32, "Trainer.run restores the precision")
    }
}
