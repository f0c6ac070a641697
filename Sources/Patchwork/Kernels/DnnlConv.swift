import CDNNL
import CPatchworkKernels
import Foundation

/// oneDNN's convolution primitives (forward, backward data, backward weights)
/// on the layouts `ConvKernels` uses: activations NHWC, weights OHWI.
///
/// `ConvKernels` decides per shape whether a convolution runs here or on its
/// own im2col + GEMM / depthwise loops (see `ConvKernels.usesPrimitive`).
/// Activations are passed to oneDNN as they are (format `nhwc`); the weights'
/// layout is left to the primitive (`any`, usually a blocked layout such as
/// 16i16o), and the weights (or their gradient) are reordered from (to) OHWI
/// once per call — a few KiB to a few MiB, small next to the convolution.
///
/// Creating a primitive costs milliseconds, so each one is built once per
/// full key (pass, geometry, bias) and kept for the life of the process.
/// The scratchpad is per call (`scratchpad_mode_user`), so one primitive may
/// run on several threads at once.
///
/// A bf16 primitive (`Precision.bf16`, where `BF16Gemm.pays` for the
/// convolution's GEMM shape) multiplies bf16 copies of its two inputs
/// (rounded to nearest even, as `BF16Gemm` rounds) and accumulates and writes
/// fp32: the forward pass reads bf16 x and w and writes fp32 y; the input
/// gradient reads bf16 dy and w and writes fp32 dx; the weight gradient reads
/// bf16 x and dy and writes fp32 dw. Bias and everything stored stay fp32.
enum DnnlConv {
    enum Pass: Hashable { case forward, inputGradient, weightGradient }

    private struct Key: Hashable {
        let pass: Pass
        let geometry: ConvGeometry
        let hasBias: Bool
        let bf16: Bool
    }

    /// A built primitive and what a call needs around it.
    final class Built: @unchecked Sendable {
        let primitive: dnnl_primitive_t
        /// Whether the primitive multiplies bf16 copies of its inputs.
        let bf16: Bool
        /// The activations' layouts, NHWC: the convolution's input (x, or dx
        /// for the input gradient) and its output (y, or dy for both gradients).
        let input: dnnl_memory_desc_t
        let output: dnnl_memory_desc_t
        /// OHWI weights → the primitive's layout (forward, input gradient) or
        /// the primitive's layout → OHWI (weight gradient); nil when they agree.
        let weightReorder: dnnl_primitive_t?
        let userWeights: dnnl_memory_desc_t
        let primitiveWeights: dnnl_memory_desc_t
        let scratchpad: dnnl_memory_desc_t
        /// oneDNN's name for the implementation it chose (e.g. "brg:avx512_core").
        let implementation: String

        init(primitive: dnnl_primitive_t, bf16: Bool, input: dnnl_memory_desc_t, output: dnnl_memory_desc_t,
             weightReorder: dnnl_primitive_t?, userWeights: dnnl_memory_desc_t,
             primitiveWeights: dnnl_memory_desc_t, scratchpad: dnnl_memory_desc_t, implementation: String) {
            self.primitive = primitive; self.bf16 = bf16; self.input = input; self.output = output
            self.weightReorder = weightReorder; self.userWeights = userWeights
            self.primitiveWeights = primitiveWeights; self.scratchpad = scratchpad; self.implementation = implementation
        }
    }

    nonisolated(unsafe) private static let engine: dnnl_engine_t = {
        var e: dnnl_engine_t?
        let status = dnnl_engine_create(&e, dnnl_cpu, 0)
        require(status == dnnl_success && e != nil, "conv2d", "oneDNN CPU engine creation failed with status \(status)")
        return e!
    }()

    private static let lock = NSLock()
    /// nil entries record shapes oneDNN has no fast implementation for.
    nonisolated(unsafe) private static var cache: [Key: Built?] = [:]

    /// Whether a convolution on `geo` runs in bf16 under the current precision:
    /// under `Precision.bf16`, where its GEMM (N·Ho·Wo × C_out/groups, reduced
    /// over the patch) is large enough for bf16 to pay (`BF16Gemm.pays`), the
    /// same rule the im2col path's GEMMs follow. Depthwise convolutions never do.
    static func runsInBF16(_ geo: ConvGeometry) -> Bool {
        Precision.current == .bf16
            && BF16Gemm.pays(m: geo.batch * geo.outH * geo.outW, n: geo.groupOut, k: geo.patch)
    }

    /// The primitive for `pass` on `geo` (in bf16 when `bf16`), built on first
    /// use; nil when oneDNN offers only its reference implementation (or none)
    /// for the shape.
    static func primitive(_ pass: Pass, _ geo: ConvGeometry, hasBias: Bool = false, bf16: Bool = false) -> Built? {
        let key = Key(pass: pass, geometry: geo, hasBias: hasBias, bf16: bf16)
        lock.lock()
        defer { lock.unlock() }
        if let found = cache[key] { return found }
        let built = build(pass, geo, hasBias: hasBias, bf16: bf16)
        cache[key] = built
        return built
    }

    // MARK: Building

    private static func memoryDesc(_ dims: [Int], _ tag: dnnl_format_tag_t, _ type: dnnl_data_type_t) -> dnnl_memory_desc_t {
        var md = dnnl_memory_desc_t()
        let d = dims.map { Int64($0) }
        let status = dnnl_memory_desc_init_by_tag(&md, Int32(d.count), d, type, tag)
        require(status == dnnl_success, "conv2d", "oneDNN memory descriptor \(dims) failed with status \(status)")
        return md
    }

    private static func build(_ pass: Pass, _ geo: ConvGeometry, hasBias: Bool, bf16: Bool) -> Built? {
        // What the primitive reads is bf16 in a bf16 primitive; what it writes is always fp32.
        let read = bf16 ? dnnl_bf16 : dnnl_f32
        // oneDNN's logical dims: activations NCHW, weights OIHW or GOIHW,
        // with the physical layouts NHWC and OHWI / GOHWI.
        let src = memoryDesc([geo.batch, geo.inChannels, geo.height, geo.width], dnnl_nhwc,
                             pass == .inputGradient ? dnnl_f32 : read)
        let dst = memoryDesc([geo.batch, geo.outChannels, geo.outH, geo.outW], dnnl_nhwc,
                             pass == .forward ? dnnl_f32 : read)
        let weightType = pass == .weightGradient ? dnnl_f32 : read
        let weightDims = geo.groups == 1
            ? [geo.outChannels, geo.groupIn, geo.kernelH, geo.kernelW]
            : [geo.groups, geo.groupOut, geo.groupIn, geo.kernelH, geo.kernelW]
        let userWeights = memoryDesc(weightDims, geo.groups == 1 ? dnnl_ohwi : dnnl_gohwi, weightType)
        let anyWeights = memoryDesc(weightDims, dnnl_format_tag_any, weightType)
        let bias = memoryDesc([geo.outChannels], dnnl_x, dnnl_f32)
        // oneDNN's dilation counts the gaps (0 = none); the right/bottom
        // padding is what the output size actually reaches (PyTorch's floor).
        let strides: [Int64] = [Int64(geo.strideH), Int64(geo.strideW)]
        let dilates: [Int64] = [Int64(geo.dilationH - 1), Int64(geo.dilationW - 1)]
        let padL: [Int64] = [Int64(geo.padH), Int64(geo.padW)]
        let spanH = (geo.kernelH - 1) * geo.dilationH + 1, spanW = (geo.kernelW - 1) * geo.dilationW + 1
        let padR: [Int64] = [Int64(max(0, (geo.outH - 1) * geo.strideH + spanH - geo.height - geo.padH)),
                             Int64(max(0, (geo.outW - 1) * geo.strideW + spanW - geo.width - geo.padW))]

        var attr: dnnl_primitive_attr_t?
        guard dnnl_primitive_attr_create(&attr) == dnnl_success, let attr else { return nil }
        defer { dnnl_primitive_attr_destroy(attr) }
        guard dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success else { return nil }

        // The forward descriptor (also the hint the backward passes need, so
        // it reads the same types they do).
        let hintSrc = memoryDesc([geo.batch, geo.inChannels, geo.height, geo.width], dnnl_nhwc, read)
        let hintWeights = memoryDesc(weightDims, dnnl_format_tag_any, read)
        let hintDst = memoryDesc([geo.batch, geo.outChannels, geo.outH, geo.outW], dnnl_nhwc, dnnl_f32)
        var forwardDesc = dnnl_convolution_desc_t()
        var status = withUnsafePointer(to: bias) { b in
            [hintSrc, hintWeights, hintDst].withUnsafeBufferPointer { m in
                dnnl_dilated_convolution_forward_desc_init(&forwardDesc, dnnl_forward_training, dnnl_convolution_direct,
                                                           m.baseAddress!, m.baseAddress! + 1,
                                                           pass == .forward && hasBias ? b : nil, m.baseAddress! + 2,
                                                           strides, dilates, padL, padR)
            }
        }
        guard status == dnnl_success else { return nil }
        var forwardPD: dnnl_primitive_desc_t?
        status = dnnl_primitive_desc_create(&forwardPD, &forwardDesc, attr, engine, nil)
        guard status == dnnl_success, let forwardPD else { return nil }
        defer { dnnl_primitive_desc_destroy(forwardPD) }

        var pd: dnnl_primitive_desc_t
        switch pass {
        case .forward:
            var clone: dnnl_primitive_desc_t?
            guard dnnl_primitive_desc_clone(&clone, forwardPD) == dnnl_success, let clone else { return nil }
            pd = clone
        case .inputGradient:
            var desc = dnnl_convolution_desc_t()
            var anyW = anyWeights
            var s = src, d = dst
            guard dnnl_dilated_convolution_backward_data_desc_init(&desc, dnnl_convolution_direct, &s, &anyW, &d,
                                                                   strides, dilates, padL, padR) == dnnl_success
            else { return nil }
            var made: dnnl_primitive_desc_t?
            guard dnnl_primitive_desc_create(&made, &desc, attr, engine, forwardPD) == dnnl_success, let made else { return nil }
            pd = made
        case .weightGradient:
            var desc = dnnl_convolution_desc_t()
            var anyW = anyWeights
            var s = src, d = dst
            guard dnnl_dilated_convolution_backward_weights_desc_init(&desc, dnnl_convolution_direct, &s, &anyW, nil, &d,
                                                                      strides, dilates, padL, padR) == dnnl_success
            else { return nil }
            var made: dnnl_primitive_desc_t?
            guard dnnl_primitive_desc_create(&made, &desc, attr, engine, forwardPD) == dnnl_success, let made else { return nil }
            pd = made
        }
        defer { dnnl_primitive_desc_destroy(pd) }

        var name: UnsafePointer<CChar>?
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name)
        let implementation = name.map { String(cString: $0) } ?? "?"
        // Two implementations are left to our own loops: the reference ones
        // (plain loops, far slower than im2col + GEMM), and oneDNN's own
        // im2col + GEMM ("gemm:jit"), which it picks where it has no JIT kernel
        // for the shape. That one runs a GEMM per group and per image: on AVX2
        // (oneDNN 2.6) a depthwise weight gradient on PVTv2's 2x2 and 1x1 maps
        // took 8-11 ms a call, and on our loops pvtv2-s's whole training step
        // fell from 90 to 55 ms.
        if implementation.hasPrefix("ref") || implementation.contains("gemm:") { return nil }

        let weightsQuery = pass == .weightGradient ? dnnl_query_diff_weights_md : dnnl_query_weights_md
        guard let primitiveWeights = dnnl_primitive_desc_query_md(pd, weightsQuery, 0)?.pointee,
              let scratchpad = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0)?.pointee
        else { return nil }

        var weightReorder: dnnl_primitive_t?
        if !withUnsafePointer(to: userWeights, { u in withUnsafePointer(to: primitiveWeights) { p in
            dnnl_memory_desc_equal(u, p) != 0 } }) {
            var from = pass == .weightGradient ? primitiveWeights : userWeights
            var to = pass == .weightGradient ? userWeights : primitiveWeights
            var reorderPD: dnnl_primitive_desc_t?
            guard dnnl_reorder_primitive_desc_create(&reorderPD, &from, engine, &to, engine, nil) == dnnl_success,
                  let reorderPD else { return nil }
            defer { dnnl_primitive_desc_destroy(reorderPD) }
            guard dnnl_primitive_create(&weightReorder, reorderPD) == dnnl_success else { return nil }
        }
        var primitive: dnnl_primitive_t?
        guard dnnl_primitive_create(&primitive, pd) == dnnl_success, let primitive else { return nil }
        return Built(primitive: primitive, bf16: bf16, input: src, output: dst, weightReorder: weightReorder,
                     userWeights: userWeights, primitiveWeights: primitiveWeights, scratchpad: scratchpad,
                     implementation: implementation)
    }

    // MARK: Running

    /// A oneDNN memory object over `pointer` (not owned) with layout `md`.
    private static func memory(_ md: dnnl_memory_desc_t, _ pointer: UnsafeMutableRawPointer?) -> dnnl_memory_t {
        var m: dnnl_memory_t?
        var desc = md
        let status = dnnl_memory_create(&m, &desc, engine, pointer)
        require(status == dnnl_success && m != nil, "conv2d", "oneDNN memory creation failed with status \(status)")
        return m!
    }

    /// Runs `primitive` with `args` ((argument id, layout, pointer)) on a
    /// fresh stream (cheap on the CPU) and waits for it.
    private static func execute(_ primitive: dnnl_primitive_t, _ args: [(Int32, dnnl_memory_desc_t, UnsafeMutableRawPointer?)]) {
        var stream: dnnl_stream_t?
        var status = dnnl_stream_create(&stream, engine, UInt32(dnnl_stream_default_flags.rawValue))
        require(status == dnnl_success, "conv2d", "oneDNN stream creation failed with status \(status)")
        let memories = args.map { memory($0.1, $0.2) }
        defer {
            for m in memories { dnnl_memory_destroy(m) }
            dnnl_stream_destroy(stream)
        }
        let execArgs = zip(args, memories).map { dnnl_exec_arg_t(arg: $0.0.0, memory: $0.1) }
        status = dnnl_primitive_execute(primitive, stream, Int32(execArgs.count), execArgs)
        require(status == dnnl_success, "conv2d", "oneDNN convolution failed with status \(status)")
        status = dnnl_stream_wait(stream)
        require(status == dnnl_success, "conv2d", "oneDNN stream wait failed with status \(status)")
    }

    /// Scratch memory for `md` (nil pointer when it is empty), alive during `body`.
    private static func withScratch(_ md: dnnl_memory_desc_t, _ body: (UnsafeMutableRawPointer?) -> Void) {
        var desc = md
        let bytes = dnnl_memory_desc_get_size(&desc)
        if bytes == 0 { body(nil); return }
        let storage = TensorStorage(count: (bytes + 3) / 4)
        withExtendedLifetime(storage) { body(UnsafeMutableRawPointer(storage.pointer)) }
    }

    /// `values` as the primitive reads them during `body`: the fp32 values
    /// themselves, or a bf16 copy (in a pooled buffer) for a bf16 primitive.
    private static func withInput(_ built: Built, _ values: UnsafePointer<Float>, count: Int,
                                  _ body: (UnsafeMutableRawPointer) -> Void) {
        guard built.bf16 else { body(UnsafeMutableRawPointer(mutating: values)); return }
        let copy = TensorStorage(count: (count + 1) / 2)
        withExtendedLifetime(copy) {
            let halves = UnsafeMutableRawPointer(copy.pointer).assumingMemoryBound(to: UInt16.self)
            Kernels.roundToBF16(values, ld: count, halves, rows: 1, cols: count)
            body(UnsafeMutableRawPointer(halves))
        }
    }

    /// The weights as the primitive reads them (its type and layout) during `body`.
    private static func withPrimitiveWeights(_ built: Built, _ geo: ConvGeometry, _ w: UnsafePointer<Float>,
                                             _ body: (UnsafeMutableRawPointer) -> Void) {
        withInput(built, w, count: geo.outChannels * geo.patch) { user in
            guard let reorder = built.weightReorder else { body(user); return }
            withScratch(built.primitiveWeights) { reordered in
                execute(reorder, [(DNNL_ARG_FROM, built.userWeights, user), (DNNL_ARG_TO, built.primitiveWeights, reordered)])
                body(reordered!)
            }
        }
    }

    static func forward(_ built: Built, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                        _ out: UnsafeMutablePointer<Float>, _ geo: ConvGeometry) {
        withInput(built, x, count: geo.batch * geo.height * geo.width * geo.inChannels) { source in
            withPrimitiveWeights(built, geo, w) { weights in
                withScratch(built.scratchpad) { scratch in
                    var args: [(Int32, dnnl_memory_desc_t, UnsafeMutableRawPointer?)] = [
                        (DNNL_ARG_SRC, built.input, source),
                        (DNNL_ARG_WEIGHTS, built.primitiveWeights, weights),
                        (DNNL_ARG_DST, built.output, UnsafeMutableRawPointer(out)),
                        (DNNL_ARG_SCRATCHPAD, built.scratchpad, scratch),
                    ]
                    if let bias {
                        args.append((DNNL_ARG_BIAS, memoryDesc([geo.outChannels], dnnl_x, dnnl_f32),
                                     UnsafeMutableRawPointer(mutating: bias)))
                    }
                    execute(built.primitive, args)
                }
            }
        }
    }

    static func inputGradient(_ built: Built, _ g: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                              _ dx: UnsafeMutablePointer<Float>, _ geo: ConvGeometry) {
        withInput(built, g, count: geo.batch * geo.outH * geo.outW * geo.outChannels) { diffDst in
            withPrimitiveWeights(built, geo, w) { weights in
                withScratch(built.scratchpad) { scratch in
                    execute(built.primitive, [
                        (DNNL_ARG_DIFF_DST, built.output, diffDst),
                        (DNNL_ARG_WEIGHTS, built.primitiveWeights, weights),
                        (DNNL_ARG_DIFF_SRC, built.input, UnsafeMutableRawPointer(dx)),
                        (DNNL_ARG_SCRATCHPAD, built.scratchpad, scratch),
                    ])
                }
            }
        }
    }

    static func weightGradient(_ built: Built, _ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>,
                               _ dw: UnsafeMutablePointer<Float>, _ geo: ConvGeometry) {
        let run = { (weights: UnsafeMutableRawPointer) in
            withInput(built, x, count: geo.batch * geo.height * geo.width * geo.inChannels) { source in
                withInput(built, g, count: geo.batch * geo.outH * geo.outW * geo.outChannels) { diffDst in
                    withScratch(built.scratchpad) { scratch in
                        execute(built.primitive, [
                            (DNNL_ARG_SRC, built.input, source),
                            (DNNL_ARG_DIFF_DST, built.output, diffDst),
                            (DNNL_ARG_DIFF_WEIGHTS, built.primitiveWeights, weights),
                            (DNNL_ARG_SCRATCHPAD, built.scratchpad, scratch),
                        ])
                    }
                }
            }
        }
        guard let reorder = built.weightReorder else { run(UnsafeMutableRawPointer(dw)); return }
        withScratch(built.primitiveWeights) { blocked in
            run(blocked!)
            execute(reorder, [(DNNL_ARG_FROM, built.primitiveWeights, blocked), (DNNL_ARG_TO, built.userWeights, UnsafeMutableRawPointer(dw))])
        }
    }
}
