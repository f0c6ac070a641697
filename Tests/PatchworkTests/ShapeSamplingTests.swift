import XCTest
import Patchwork

final class ShapeSamplingTests: XCTestCase {
    func testSamplingOpsMatchPyTorch() {
        var ops: [String: (OpCase, [Tensor]) -> [Tensor]] = [:]
        ops["concat"] = { c, x in [concat(x, axis: c.int("axis"))] }
        ops["stack"] = { c, x in [stack(x, axis: c.int("axis"))] }
        ops["split"] = { c, x in x[0].split(sizes: c.ints("sizes"), axis: c.int("axis")) }
        ops["split_count"] = { c, x in x[0].split(count: c.int("count"), axis: c.int("axis")) }
        ops["pad"] = { c, x in
            let widths = c.args["widths"]!.array!.map { (before: $0.array![0].int!, after: $0.array![1].int!) }
            return [x[0].padded(widths, value: c.float("value"))]
        }
        ops["roll"] = { c, x in [x[0].rolled(shifts: c.ints("shifts"), axes: c.ints("axes"))] }
        ops["flip"] = { c, x in [x[0].flipped(axes: c.ints("axes"))] }
        ops["index_select"] = { c, x in [x[0].indexSelect(axis: c.int("axis"), indices: c.ints("indices"))] }
        ops["gather"] = { c, x in [x[0].gather(axis: c.int("axis"), indices: x[1])] }
        ops["resize"] = { c, x in
            let size = c.ints("size")
            let f = { (t: Tensor) in
                resize(t, size: (size[0], size[1]), mode: ResizeMode(rawValue: c.string("mode"))!,
                       alignCorners: c.bool("alignCorners"), antialias: c.bool("antialias"))
            }
            let grad = valueAndGradient(at: [x[0]]) { (f($0[0]) * x[1]).sum() }.gradients[0]
            return [f(x[0]), grad]
        }
        ops["grid_sample"] = { c, x in
            let align = c.bool("alignCorners")
            let grads = valueAndGradient(at: [x[0], x[1]]) { (gridSample($0[0], grid: $0[1], alignCorners: align) * x[2]).sum() }
            return [gridSample(x[0], grid: x[1], alignCorners: align), grads.gradients[0], grads.gradients[1]]
        }
        checkReferenceCases("sampling", atol: 2e-5, rtol: 1e-4, ops: ops)
    }

    func testJoinSplitPadRollFlipGradients() {
        let g = Generator(seed: 40)
        let a = Tensor.randomNormal([2, 3, 4], generator: g), b = Tensor.randomNormal([2, 2, 4], generator: g)
        checkGradients([a, b], "concat") { concat([$0[0], $0[1], $0[0]], axis: 1) }
        checkGradients([a, a * 2], "stack") { stack([$0[0], $0[1]], axis: -1) }
        checkGradients([a], "split") { x in
            let p = x[0].split(sizes: [1, 2], axis: 1), q = x[0].split(count: 2, axis: -1)
            return concat([p[1], p[0] * 3], axis: 1) + concat([q[1], q[0]], axis: 2)
        }
        checkGradients([a], "pad with negative widths") { $0[0].padded([(1, -1), (-1, 2), (2, 0)], value: 0.5) }
        checkGradients([a], "roll") { $0[0].rolled(shifts: [-1, 5], axes: [1, 2]) }
        checkGradients([a], "flip") { $0[0].flipped(axes: [0, 2]) }
        // Second order: each pullback is again an op (slice, pad, roll, flip) with its own pullback.
        let w = Tensor.randomNormal([2, 4, 5], generator: g)
        checkGradients([w], "pad backward") { gs in
            valueAndGradient(at: [a], createGraph: true) { ($0[0].padded([(0, 0), (2, -1), (-1, 2)]) * gs[0]).sum() }.gradients[0]
        }
        let v = Tensor.randomNormal([2, 3, 4], generator: g)
        checkGradients([v], "roll/flip/concat backward") { gs in
            valueAndGradient(at: [a], createGraph: true) { x in
                (concat([x[0].rolled(shifts: [2], axes: [1]), x[0].flipped(axes: [1])], axis: 0) * concat([gs[0], gs[0] * 2], axis: 0)).sum()
            }.gradients[0]
        }
        let s = a.split(count: 3, axis: 1)
        XCTAssertTrue(s[1].storage === a.storage, "split returns views")
        XCTAssertEqual(s[1].scalars, a.sliced(axis: 1, start: 1, end: 2).scalars)
    }

    /// `split`/`unbound` pieces share one gradient node that writes the source's gradient once:
    /// the same values as slicing each piece on its own, for pieces used twice, unused, or alone.
    func testSplitPiecesShareOneGradient() {
        let g = Generator(seed: 42)
        // A qkv product [B, N, 3, heads, d] viewed as [3, B, heads, N, d], as attention does.
        let x = Tensor.randomNormal([2, 5, 3, 2, 4], generator: g)
        let w = Tensor.randomNormal([2, 2, 5, 4], generator: g)
        func objective(_ q: Tensor, _ k: Tensor, _ v: Tensor) -> Tensor {
            (q * w).sum() + (k * v).sum() + (q * q).sum()
        }
        let viaSplit = valueAndGradient(at: [x]) { x in
            let p = x[0].permuted([2, 0, 3, 1, 4]).unbound(axis: 0)
            return objective(p[0], p[1], p[2])
        }
        let viaSlices = valueAndGradient(at: [x]) { x in
            let t = x[0].permuted([2, 0, 3, 1, 4])
            return objective(t.selecting(axis: 0, index: 0), t.selecting(axis: 0, index: 1), t.selecting(axis: 0, index: 2))
        }
        assertClose(viaSplit.value, viaSlices.value, atol: 0, rtol: 0, "value")
        assertClose(viaSplit.gradients[0], viaSlices.gradients[0], atol: 0, rtol: 0, "gradient")
        // Laid out like the permuted source, so un-permuting the gradient needs no copy.
        XCTAssertTrue(viaSplit.gradients[0].isContiguous, "the assembled gradient follows the source's memory order")

        // Pieces no gradient reaches get zeros; a piece as the root of backward works alone.
        let onlyMiddle = valueAndGradient(at: [x]) { x in (x[0].unbound(axis: 2)[1] * 2).sum() }.gradients[0]
        let expected = stack([Tensor.zeros([2, 5, 2, 4]), Tensor.full([2, 5, 2, 4], 2), Tensor.zeros([2, 5, 2, 4])], axis: 2)
        assertClose(onlyMiddle, expected, atol: 0, rtol: 0, "unused pieces")
        let leaf = x.requiringGrad()
        leaf.split(sizes: [2, 3], axis: 1)[1].backward(seed: Tensor.ones([2, 3, 3, 2, 4]))
        XCTAssertEqual(leaf.grad!.sum().item(), Float(2 * 3 * 3 * 2 * 4))
        XCTAssertEqual(leaf.grad!.sliced(axis: 1, start: 0, end: 2).abs().sum().item(), 0)

        // Finite differences: a strided (non-dense) source, and the second derivative through a split.
        let a = Tensor.randomNormal([3, 8, 5], generator: g)
        checkGradients([a], "split of a strided view") { x in
            let p = x[0].sliced(axis: 1, start: 1, step: 2).split(sizes: [1, 3], axis: 1)
            return concat([p[1] * p[1], p[0]], axis: 1)
        }
        let v = Tensor.randomNormal([3, 8, 5], generator: g)
        checkGradients([v], "split backward") { gs in
            valueAndGradient(at: [a], createGraph: true) { x in
                let p = x[0].split(sizes: [3, 5], axis: 1)
                return (concat([p[1] * p[1], p[0]], axis: 1) * gs[0]).sum()
            }.gradients[0]
        }
    }

    func testIndexSelectAndGatherGradients() {
        let g = Generator(seed: 41)
        let table = Tensor.randomNormal([5, 3], generator: g)
        let indices = [4, 0, 0, 2, 4, 4]
        checkGradients([table], "index_select axis 0") { $0[0].indexSelect(axis: 0, indices: indices) }
        let x = Tensor.randomNormal([2, 5, 20], generator: g)
        checkGradients([x], "index_select axis 1 (wide rows)") { $0[0].indexSelect(axis: 1, indices: [1, 1, 3]) }
        checkGradients([x], "index_select last axis (single floats, repeated)") { $0[0].indexSelect(axis: 2, indices: [19, 0, 0, 7, 0]) }
        let w = Tensor.randomNormal([6, 3], generator: g)
        checkGradients([w], "index_select backward (scatter-add)") { gs in
            valueAndGradient(at: [table], createGraph: true) { ($0[0].indexSelect(axis: 0, indices: indices) * gs[0]).sum() }.gradients[0]
        }
        let src = Tensor.randomNormal([3, 4, 5], generator: g)
        for (axis, ishape) in [(0, [2, 4, 5]), (1, [3, 6, 2]), (2, [2, 3, 7])] {
            let n = src.shape[axis]
            let index = Tensor((0..<ishape.reduce(1, *)).map { Float(($0 * 7 + 3) % n) }, shape: ishape)
            checkGradients([src], "gather axis \(axis)") { $0[0].gather(axis: axis, indices: index) }
            let gw = Tensor.randomNormal(ishape, generator: g)
            checkGradients([gw], "gather backward (scatter-add) axis \(axis)") { gs in
                valueAndGradient(at: [src], createGraph: true) { ($0[0].gather(axis: axis, indices: index) * gs[0]).sum() }.gradients[0]
            }
        }
    }

    func testResizeGradients() {
        let g = Generator(seed: 42)
        let x = Tensor.randomNormal([1, 4, 5, 2], generator: g)
        let configs: [(ResizeMode, Bool, Bool, (Int, Int))] = [
            (.nearest, false, false, (7, 3)), (.bilinear, false, false, (7, 3)), (.bilinear, true, false, (3, 8)),
            (.bicubic, false, false, (6, 7)), (.bicubic, true, false, (3, 2)),
            (.bilinear, false, true, (2, 3)), (.bicubic, false, true, (3, 2)), (.bicubic, true, true, (6, 4)),
        ]
        for (mode, align, aa, size) in configs {
            let name = "resize \(mode) align \(align) antialias \(aa) \(size)"
            checkGradients([x], name) { resize($0[0], size: size, mode: mode, alignCorners: align, antialias: aa) }
            // The backward (transposed resize) differentiated again: its pullback is the resize.
            let w = Tensor.randomNormal([1, size.0, size.1, 2], generator: g)
            checkGradients([w], name + " backward") { gs in
                valueAndGradient(at: [x], createGraph: true) {
                    (resize($0[0], size: size, mode: mode, alignCorners: align, antialias: aa) * gs[0]).sum()
                }.gradients[0]
            }
        }
        XCTAssertEqual(resize(x, size: (4, 5), mode: .bicubic).scalars, x.scalars, "same size is the identity")
    }

    /// Grid points whose pixel coordinates have fractions in [0.2, 0.8], so ±eps
    /// never crosses a pixel centre (a kink of bilinear sampling); some lie
    /// partly or wholly outside the map.
    private func smoothGrid(_ shape: [Int], height: Int, width: Int, alignCorners: Bool, seed: UInt64) -> Tensor {
        let g = Generator(seed: seed)
        var values: [Float] = []
        for i in 0..<(shape.reduce(1, *) / 2) {
            for size in [width, height] {
                let cell = Float(i % 3 == 0 ? -1 + Int(g.nextInt(below: 2)) * (size + 1) : Int(g.nextInt(below: size + 1)) - 1)
                let pixel = cell + 0.2 + 0.6 * g.nextUniform()
                values.append(alignCorners ? pixel * 2 / Float(size - 1) - 1 : (2 * pixel + 1) / Float(size) - 1)
            }
        }
        return Tensor(values, shape: shape)
    }

    func testGridSampleGradients() {
        let g = Generator(seed: 43)
        for align in [false, true] {
            let x = Tensor.randomNormal([2, 4, 5, 3], generator: g)
            let grid = smoothGrid([2, 3, 2, 2], height: 4, width: 5, alignCorners: align, seed: align ? 44 : 45)
            checkGradients([x, grid], "grid_sample align \(align)", { gridSample($0[0], grid: $0[1], alignCorners: align) })
            let w = Tensor.randomNormal([2, 3, 2, 3], generator: g)
            // Input-gradient op (scatter), as a function of the output gradient and the grid.
            checkGradients([w, grid], "grid_sample input backward align \(align)") { gs in
                valueAndGradient(at: [x], createGraph: true) {
                    (gridSample($0[0], grid: gs[1], alignCorners: align) * gs[0]).sum()
                }.gradients[0]
            }
            // Grid-gradient op, as a function of input, grid and output gradient (second derivative in the grid).
            checkGradients([x, grid, w], "grid_sample grid backward align \(align)") { vs in
                valueAndGradient(at: [vs[1]], createGraph: true) {
                    (gridSample(vs[0], grid: $0[0], alignCorners: align) * vs[2]).sum()
                }.gradients[0]
            }
        }
        // Wide channels (SIMD path), one batch.
        let x = Tensor.randomNormal([1, 3, 4, 19], generator: g)
        let grid = smoothGrid([1, 2, 2, 2], height: 3, width: 4, alignCorners: false, seed: 46)
        checkGradients([x, grid], "grid_sample wide") { gridSample($0[0], grid: $0[1]) }
    }

    func testArgumentMistakesStopWithAClearMessage() {
        assertStops(containing: ["concat", "[2, 3]", "[3, 4]", "axis 1"]) {
            _ = concat([Tensor.zeros([2, 3]), Tensor.zeros([3, 4])], axis: 1)
        }
        assertStops(containing: ["split", "[2, 2]", "3", "[4, 3]"]) { _ = Tensor.zeros([4, 3]).split(sizes: [2, 2], axis: 1) }
        assertStops(containing: ["split", "[4, -1]", "[4, 3]"]) { _ = Tensor.zeros([4, 3]).split(sizes: [4, -1], axis: 1) }
        assertStops(containing: ["unbind", "axis", "[4, 3]"]) { _ = Tensor.zeros([4, 3]).unbound(axis: 5) }
        assertStops(containing: ["index_select", "index 5", "[3, 2]"]) {
            _ = Tensor.zeros([3, 2]).indexSelect(axis: 0, indices: [0, 5])
        }
        assertStops(containing: ["gather", "index 4", "[2, 4]"]) {
            _ = Tensor.zeros([2, 4]).gather(axis: 1, indices: Tensor([0, 4], shape: [1, 2]))
        }
        assertStops(containing: ["grid_sample", "[1, 3, 3, 3]", "[1, 4, 4, 2]"]) {
            _ = gridSample(Tensor.zeros([1, 4, 4, 2]), grid: Tensor.zeros([1, 3, 3, 3]))
        }
    }
}
