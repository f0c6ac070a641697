import CDNNL
import CPatchworkKernels
import Foundation

/// `Gemm.sgemm` under `Precision.bf16`: C = alpha·op(A)·op(B) + beta·C with op(A) and op(B)
/// rounded to bfloat16 (round to nearest even), products accumulated in fp32, C fp32.
///
/// oneDNN 2.6's BLAS-like API has no bf16 GEMM, so this runs its matmul primitive: the operands
/// are packed into bf16 copies in their stored orientation (a transpose is a stride in the memory
/// descriptor, never a copy), the product is written straight into C through its leading
/// dimension, alpha is the primitive's output scale and beta a `sum` post-op. Creating a primitive
/// JIT-compiles its kernels (milliseconds), so primitives are cached by everything they were
/// created for; a training step repeats the same shapes, so after its first step only cached
/// primitives run.
enum BF16Gemm {
    /// Whether a product runs in bf16 under `Precision.bf16`; the others stay fp32, which is only
    /// more exact. Two costs come on top of the bf16 kernel and must be paid back:
    /// - rounding the operands, m·k + k·n elements, against m·n·k multiply-adds: m·n·k/(m·k + k·n)
    ///   = m·n/(m + n) multiply-adds per rounded element, which must be at least
    ///   `minimumMultiplyAddsPerElement` (both m and n above about 128);
    /// - a fixed few microseconds per call (memory objects, the cache lookup, argument checks):
    ///   at least `minimumMultiplyAdds` (128³, about 10 µs of fp32 GEMM here).
    /// Measured with `patchwork bench gemm --precision bf16` on this 2-core Zen 4
    /// (docs/PERFORMANCE.md, "bf16"): 4096×64×64 and 8192×27×16 ran at 0.5–0.75× of fp32 in bf16,
    /// 96³ and 64³ at 0.4–0.7×, 4096×128×128 and 197×64×197 at 1.0×, 256³ and larger at 1.4–3×.
    /// What stays fp32: convolutions and linear layers with fewer than ~128 output channels or
    /// features, and attention's per-head products on small inputs.
    static func pays(m: Int, n: Int, k: Int) -> Bool {
        m &* n &* k >= minimumMultiplyAdds && m &* n >= minimumMultiplyAddsPerElement &* (m &+ n)
    }

    static let minimumMultiplyAdds = 1 << 21
    static let minimumMultiplyAddsPerElement = 64

    /// What a primitive was created for: the shape and layout of the product, the constants it
    /// bakes in, and the threads it splits the work over (1 inside a `Parallel` loop).
    struct Key: Hashable {
        let transA: Bool, transB: Bool
        let m: Int, n: Int, k: Int, ldc: Int
        let alpha: Float, beta: Float
        let threads: Int
    }

    /// A created primitive and the memory descriptors of its arguments. Entries live as long as
    /// the process (the cache never drops one), and threads only read them.
    final class Entry: @unchecked Sendable {
        let primitive: dnnl_primitive_t
        /// src, weights, dst and scratchpad descriptors, in that order.
        let descriptors: UnsafeMutablePointer<dnnl_memory_desc_t>
        let scratchpadBytes: Int
        /// The implementation oneDNN chose (e.g. "brg:avx512_core_bf16"), for tests and bench output.
        let implementation: String

        init(_ key: Key, engine: dnnl_engine_t) {
            let (m, n, k) = (Int64(key.m), Int64(key.n), Int64(key.k))
            let md = UnsafeMutablePointer<dnnl_memory_desc_t>.allocate(capacity: 4)
            md.initialize(repeating: dnnl_memory_desc_t(), count: 4)
            // Logical src [m, k] and weights [k, n]; the packed copies keep the stored orientation.
            check(dnnl_memory_desc_init_by_strides(md, 2, [m, k], dnnl_bf16, key.transA ? [1, m] : [k, 1]), "src descriptor", key)
            check(dnnl_memory_desc_init_by_strides(md + 1, 2, [k, n], dnnl_bf16, key.transB ? [1, k] : [n, 1]), "weights descriptor", key)
            check(dnnl_memory_desc_init_by_strides(md + 2, 2, [m, n], dnnl_f32, [Int64(key.ldc), 1]), "dst descriptor", key)
            var desc = dnnl_matmul_desc_t()
            check(dnnl_matmul_desc_init(&desc, md, md + 1, nil, md + 2), "matmul descriptor", key)

            var attr: dnnl_primitive_attr_t?
            check(dnnl_primitive_attr_create(&attr), "attributes", key)
            defer { dnnl_primitive_attr_destroy(attr) }
            // The caller's scratch memory, not the library's: no state shared between threads.
            check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad mode", key)
            if key.alpha != 1 {
                var alpha = key.alpha
                check(dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha), "output scale", key)
            }
            if key.beta != 0 {
                var ops: dnnl_post_ops_t?
                check(dnnl_post_ops_create(&ops), "post-ops", key)
                defer { dnnl_post_ops_destroy(ops) }
                check(dnnl_post_ops_append_sum(ops, key.beta), "sum post-op", key)
                check(dnnl_primitive_attr_set_post_ops(attr, ops), "post-ops", key)
            }

            // oneDNN splits a primitive's work over the threads it sees when it is created and
            // runs nested parallel regions on one thread: inside a `Parallel` loop, create it for
            // that one thread, or it would compute only the first thread's share of C.
            let saved = omp_get_max_threads()
            if key.threads != Int(saved) { omp_set_num_threads(Int32(key.threads)) }
            defer { if key.threads != Int(saved) { omp_set_num_threads(saved) } }
            var pd: dnnl_primitive_desc_t?
            check(dnnl_primitive_desc_create(&pd, &desc, attr, engine, nil), "primitive descriptor", key)
            defer { dnnl_primitive_desc_destroy(pd) }
            var info: UnsafePointer<CChar>?
            implementation = dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &info) == dnnl_success && info != nil
                ? String(cString: info!) : "unknown"
            if let scratchpad = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0) { md[3] = scratchpad.pointee }
            scratchpadBytes = dnnl_memory_desc_get_size(md + 3)
            var primitive: dnnl_primitive_t?
            check(dnnl_primitive_create(&primitive, pd), "primitive", key)
            self.primitive = primitive!
            descriptors = md
        }
    }

    /// oneDNN's CPU engine and a stream on it. A CPU stream on the OpenMP runtime only hands a
    /// primitive to its `execute`, so threads share it.
    private static let engine: dnnl_engine_t = {
        var engine: dnnl_engine_t?
        let status = dnnl_engine_create(&engine, dnnl_cpu, 0)
        require(status == dnnl_success, "bf16 GEMM", "cannot create oneDNN's CPU engine (status \(status))")
        return engine!
    }()
    private static let stream: dnnl_stream_t = {
        var stream: dnnl_stream_t?
        let status = dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue)
        require(status == dnnl_success, "bf16 GEMM", "cannot create a oneDNN stream (status \(status))")
        return stream!
    }()

    private static var cache: [Key: Entry] = [:]
    private static var lock: pthread_mutex_t = {
        var lock = pthread_mutex_t()
        pthread_mutex_init(&lock, nil)
        return lock
    }()

    /// The primitive for `key`, created on first use. Creation happens under the lock: it is
    /// rare, and two threads asking for the same new shape then create it once.
    static func entry(_ key: Key) -> Entry {
        let engine = self.engine
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        if let entry = cache[key] { return entry }
        let entry = Entry(key, engine: engine)
        cache[key] = entry
        return entry
    }

    /// The implementation oneDNN picks for a 1024³ product on all threads (e.g. "brg:avx512_core_bf16"),
    /// for the benchmarks' headers.
    static var implementation: String {
        entry(Key(transA: false, transB: false, m: 1024, n: 1024, k: 1024, ldc: 1024, alpha: 1, beta: 0,
                  threads: Parallel.threadCount)).implementation
    }

    /// Whether oneDNN has bf16 matmul kernels on this CPU. oneDNN 2.6 has them from AVX-512 on
    /// (avx512_core: bf16 converted in registers; avx512_core_bf16 and AMX: native); on AVX2 it
    /// has none, and creating the primitive fails. Without them `gemm` computes the same
    /// arithmetic on fp32 kernels (`gemmOnRoundedOperands`).
    static let hasKernels: Bool = {
        var md = [dnnl_memory_desc_t](repeating: dnnl_memory_desc_t(), count: 3)
        let n: Int64 = 256
        guard dnnl_memory_desc_init_by_strides(&md[0], 2, [n, n], dnnl_bf16, [n, 1]) == dnnl_success,
              dnnl_memory_desc_init_by_strides(&md[1], 2, [n, n], dnnl_bf16, [n, 1]) == dnnl_success,
              dnnl_memory_desc_init_by_strides(&md[2], 2, [n, n], dnnl_f32, [n, 1]) == dnnl_success else { return false }
        var desc = dnnl_matmul_desc_t()
        guard dnnl_matmul_desc_init(&desc, &md[0], &md[1], nil, &md[2]) == dnnl_success else { return false }
        var pd: dnnl_primitive_desc_t?
        guard dnnl_primitive_desc_create(&pd, &desc, nil, engine, nil) == dnnl_success, pd != nil else { return false }
        defer { dnnl_primitive_desc_destroy(pd) }
        var info: UnsafePointer<CChar>?
        let name = dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &info) == dnnl_success && info != nil
            ? String(cString: info!) : ""
        // A reference implementation computes one element at a time: far slower than emulating.
        return !name.isEmpty && !name.contains("ref")
    }()

    /// Whether `gemm` runs `gemmOnRoundedOperands` instead of the bf16 kernels: where there are
    /// none; tests set it to check the emulation on any CPU.
    nonisolated(unsafe) static var emulated = !hasKernels

    static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                     a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                     beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard !emulated else {
            gemmOnRoundedOperands(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                                  b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        let threads = omp_in_parallel() != 0 ? 1 : Parallel.threadCount
        let entry = self.entry(Key(transA: transA, transB: transB, m: m, n: n, k: k, ldc: ldc,
                                   alpha: alpha, beta: beta, threads: threads))
        // bf16 copies in pooled fp32 buffers (two bf16 per float). Stored A is m×k, or k×m when
        // transposed; stored B k×n, or n×k.
        let aRows = transA ? k : m, aCols = transA ? m : k
        let bRows = transB ? n : k, bCols = transB ? k : n
        let aCopy = TensorStorage(count: (aRows * aCols + 1) / 2)
        let bCopy = TensorStorage(count: (bRows * bCols + 1) / 2)
        let scratch = TensorStorage(count: (entry.scratchpadBytes + 3) / 4)
        withExtendedLifetime((aCopy, bCopy, scratch)) {
            let pa = UnsafeMutableRawPointer(aCopy.pointer).assumingMemoryBound(to: UInt16.self)
            let pb = UnsafeMutableRawPointer(bCopy.pointer).assumingMemoryBound(to: UInt16.self)
            Kernels.roundToBF16(a, ld: lda, pa, rows: aRows, cols: aCols)
            Kernels.roundToBF16(b, ld: ldb, pb, rows: bRows, cols: bCols)
            var memories: [dnnl_memory_t?] = [nil, nil, nil, nil]
            defer { for memory in memories where memory != nil { dnnl_memory_destroy(memory) } }
            let md = entry.descriptors
            execCheck(dnnl_memory_create(&memories[0], md, engine, pa), "src memory", m, n, k)
            execCheck(dnnl_memory_create(&memories[1], md + 1, engine, pb), "weights memory", m, n, k)
            execCheck(dnnl_memory_create(&memories[2], md + 2, engine, c), "dst memory", m, n, k)
            var args = [dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: memories[0]),
                        dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: memories[1]),
                        dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: memories[2])]
            if entry.scratchpadBytes > 0 {
                execCheck(dnnl_memory_create(&memories[3], md + 3, engine, scratch.pointer), "scratchpad memory", m, n, k)
                args.append(dnnl_exec_arg_t(arg: DNNL_ARG_SCRATCHPAD, memory: memories[3]))
            }
            execCheck(dnnl_primitive_execute(entry.primitive, stream, Int32(args.count), args), "execute", m, n, k)
        }
    }

    /// The product of the operands rounded to bf16, on dnnl_sgemm over fp32 copies of the rounded
    /// values: where the CPU has no bf16 kernels (`hasKernels`). A product of two bf16 values is
    /// exact in fp32 and the sums accumulate in fp32, so this is the bf16 kernels' arithmetic (up
    /// to the order of the sums), without their speed: a bf16 run trains the same way on any CPU.
    private static func gemmOnRoundedOperands(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                                              a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                                              beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let aRows = transA ? k : m, aCols = transA ? m : k
        let bRows = transB ? n : k, bCols = transB ? k : n
        let aCopy = TensorStorage(count: aRows * aCols), bCopy = TensorStorage(count: bRows * bCols)
        withExtendedLifetime((aCopy, bCopy)) {
            Kernels.roundToBF16Values(a, ld: lda, aCopy.pointer, rows: aRows, cols: aCols)
            Kernels.roundToBF16Values(b, ld: ldb, bCopy.pointer, rows: bRows, cols: bCols)
            let status = dnnl_sgemm(transA ? 0x54 : 0x4E, transB ? 0x54 : 0x4E, Int64(m), Int64(n), Int64(k), alpha,
                                    aCopy.pointer, Int64(aCols), bCopy.pointer, Int64(bCols), beta, c, Int64(ldc))
            require(status == dnnl_success, "bf16 GEMM", "dnnl_sgemm failed with status \(status) for m=\(m) n=\(n) k=\(k)")
        }
    }

    private static func check(_ status: dnnl_status_t, _ what: String, _ key: Key) {
        require(status == dnnl_success, "bf16 GEMM",
                "oneDNN matmul \(what) failed with status \(status.rawValue) for m=\(key.m) n=\(key.n) k=\(key.k) "
                + "transA=\(key.transA) transB=\(key.transB) ldc=\(key.ldc) alpha=\(key.alpha) beta=\(key.beta) threads=\(key.threads)")
    }

    private static func execCheck(_ status: dnnl_status_t, _ what: String, _ m: Int, _ n: Int, _ k: Int) {
        require(status == dnnl_success, "bf16 GEMM", "oneDNN matmul \(what) failed with status \(status.rawValue) for m=\(m) n=\(n) k=\(k)")
    }
}

extension Kernels {
    /// bf16 copies (round to nearest even, as `pw_to_bf16_rows`) of `rows` rows of `cols` floats,
    /// row r starting at x + r·ld, written packed into y. Split over threads when large; the bf16
    /// GEMM and the bf16 convolution primitives round their operands through here.
    static func roundToBF16(_ x: UnsafePointer<Float>, ld: Int, _ y: UnsafeMutablePointer<UInt16>, rows: Int, cols: Int) {
        forRowBlocks(ld: ld, rows: rows, cols: cols) { from, ld, to, rows, cols in
            pw_to_bf16_rows(x + from, ld, y + to, rows, cols)
        }
    }

    /// The values of `roundToBF16` as floats, packed into y (rows × cols): the operands of
    /// `BF16Gemm`'s emulation on CPUs without bf16 kernels.
    static func roundToBF16Values(_ x: UnsafePointer<Float>, ld: Int, _ y: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        forRowBlocks(ld: ld, rows: rows, cols: cols) { from, ld, to, rows, cols in
            pw_bf16_rounded_rows(x + from, ld, y + to, rows, cols)
        }
    }

    /// Splits a row kernel over threads: `kernel(from, ld, to, rows, cols)` reads `rows` rows of `cols`
    /// elements from offset `from` (rows ld apart) and writes them packed from offset `to`. A
    /// contiguous matrix is split as one flat row, whatever its row count.
    private static func forRowBlocks(ld: Int, rows: Int, cols: Int, _ kernel: (Int, Int, Int, Int, Int) -> Void) {
        if rows == 1 || ld == cols {
            Parallel.forChunks(rows * cols) { r in kernel(r.lowerBound, r.count, r.lowerBound, 1, r.count) }
        } else {
            Parallel.forChunks(rows, costPerItem: cols) { r in kernel(r.lowerBound * ld, ld, r.lowerBound * cols, r.count, cols) }
        }
    }
}
