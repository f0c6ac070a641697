import ArgumentParser
import Foundation
import Patchwork

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure Patchwork's speed.",
        subcommands: [BenchGemm.self])
}

/// GEMM GFLOP/s through `Tensor` and through the library directly, and
/// element-wise bandwidth next to a plain memory copy.
struct BenchGemm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm",
        abstract: "GEMM GFLOP/s (through Tensor and direct) and element-wise GB/s next to memcpy.")

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(help: "Seconds to spend timing each measurement.")
    var seconds: Double = 1.0

    func run() throws {
        let sizes = [256, 1024, 2048]
        var tensorGflops: [String: Double] = [:], directGflops: [String: Double] = [:]
        for n in sizes {
            let flops = 2 * Double(n) * Double(n) * Double(n)
            let a = Tensor.randomNormal([n, n], generator: Generator(seed: 1))
            let b = Tensor.randomNormal([n, n], generator: Generator(seed: 2))
            tensorGflops["\(n)"] = flops / bestTime(seconds) { _ = matmul(a, b) } / 1e9
            let c = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
            defer { c.deallocate() }
            let pa = UnsafePointer(a.storage.pointer), pb = UnsafePointer(b.storage.pointer)
            directGflops["\(n)"] = flops / bestTime(seconds) {
                Gemm.sgemm(transA: false, transB: false, m: n, n: n, k: n, a: pa, lda: n, b: pb, ldb: n, c: c, ldc: n)
            } / 1e9
        }
        // Element-wise throughput on 16M floats: bytes read + written per second.
        let count = 16 << 20
        let bytes = Double(count * 4)
        let x = Tensor.randomNormal([count], generator: Generator(seed: 3))
        let y = Tensor.randomNormal([count], generator: Generator(seed: 4))
        let addGBps = 3 * bytes / bestTime(seconds) { _ = x + y } / 1e9
        let geluGBps = 2 * bytes / bestTime(seconds) { _ = x.gelu() } / 1e9
        let dst = UnsafeMutablePointer<Float>.allocate(capacity: count)
        defer { dst.deallocate() }
        dst.initialize(repeating: 0, count: count)
        let src = x.storage.pointer
        let copyGBps = 2 * bytes / bestTime(seconds) { memcpy(dst, src, count * 4) } / 1e9

        if json {
            let object: [String: Any] = [
                "library": Gemm.description,
                "tensor_gflops": tensorGflops, "direct_gflops": directGflops,
                "add_gbps": addGBps, "gelu_gbps": geluGBps, "copy_gbps": copyGBps,
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("GEMM: \(Gemm.description)")
        print("size    Tensor GFLOP/s   direct GFLOP/s   Tensor/direct")
        for n in sizes {
            let t = tensorGflops["\(n)"]!, d = directGflops["\(n)"]!
            print(String(format: "%-7d %14.1f %16.1f %14.0f%%", n, t, d, 100 * t / d))
        }
        print("element-wise on 16M floats (bytes read + written per second):")
        print(String(format: "  add  %7.1f GB/s\n  gelu %7.1f GB/s\n  copy %7.1f GB/s (memcpy)", addGBps, geluGBps, copyGBps))
    }
}

/// Best wall time of `body` over repeats filling about `seconds` (after one warm-up).
func bestTime(_ seconds: Double, _ body: () -> Void) -> Double {
    body()
    var best = Double.infinity
    let start = DispatchTime.now().uptimeNanoseconds
    var runs = 0
    while runs < 3 || Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < seconds {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        runs += 1
    }
    return best
}
