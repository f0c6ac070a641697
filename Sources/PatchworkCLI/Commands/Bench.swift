import ArgumentParser
import Foundation
import Patchwork
import PatchworkAnalysis
import PatchworkModels
import PatchworkNN

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time the benchmark suite's models (train and infer), side by side with PyTorch's numbers.",
        subcommands: [BenchRun.self, BenchGemm.self, BenchCompare.self, BenchLoad.self],
        defaultSubcommand: BenchRun.self)
}

/// `patchwork bench [NAME...]`: the suite's cases, timed.
struct BenchRun: PrecisionCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Time the suite's cases (the default: `patchwork bench [NAME...]`).",
        discussion: """
        Each case of the suite (bench/cases.json, the same file as ../shared/bench/cases.json) is built from its \
        family and the reference's constructor arguments, with random weights, and timed as ../shared/bench/torch_bench.py \
        times PyTorch: train = forward + mean cross-entropy + backward + SGD(lr 1e-3, momentum 0.9) step in training \
        mode; infer = forward in eval mode without the tape. 3 untimed warm-up steps, then single steps timed until 6 s \
        are spent (at least 10, at most 100; --quick: 2 warm-up, 3 to 20 steps, 1 s). Peak RSS is the process's VmHWM, \
        reset before the model is built. --precision bf16 times the steps with bf16 matrix products (autocast), as \
        torch_bench.py --precision bf16 does, and labels the output so that `bench compare` pairs it with that. \
        scripts/bench-vs-torch.sh runs both sides case by case and prints the ratios.
        """)

    @Argument(help: "Case names (default: every case of the suite).")
    var names: [String] = []

    @Option(help: "The suite file.")
    var cases = "bench/cases.json"

    @Option(help: "Only this group: small (32x32, train + infer) or imagenet (224x224, infer).")
    var group: String?

    @Option(help: "Only this mode: train or infer.")
    var mode: String?

    @Flag(help: "Fewer warm-up and timed steps (2 warm-up, 3 to 20 timed, 1 s).")
    var quick = false

    @Option(help: "Write the results as JSON to this file.")
    var json: String?

    @Flag(help: "List the cases and exit.")
    var list = false

    @OptionGroup var precisionOption: PrecisionOption

    var precision: Precision { precisionOption.value }

    func validate() throws {
        if let group, !["small", "imagenet"].contains(group) { throw ValidationError("--group must be small or imagenet, got \(group)") }
        if let mode, !["train", "infer"].contains(mode) { throw ValidationError("--mode must be train or infer, got \(mode)") }
        if let json { try OptionCheck.outputFile(json, "--json") }
    }

    func execute() throws {
        let suite = try BenchCase.load(cases)
        let unknown = names.filter { n in !suite.contains { $0.name == n } }
        if !unknown.isEmpty {
            throw ValidationError("\(cases): no case named \(unknown.joined(separator: ", ")) (cases: \(suite.map(\.name).joined(separator: ", ")))")
        }
        let selected = suite.filter { (names.isEmpty || names.contains($0.name)) && (group == nil || $0.group == group) }
        if list {
            for c in selected { print("\(c.name.padding(toLength: 30, withPad: " ", startingAt: 0)) \(c.group.padding(toLength: 9, withPad: " ", startingAt: 0)) \(c.family.padding(toLength: 11, withPad: " ", startingAt: 0)) \(c.modes.joined(separator: ","))") }
            return
        }
        let policy = quick ? BenchPolicy.quick : BenchPolicy.full
        print("# Patchwork \(PatchworkVersion.string) | precision \(precision.rawValue) | GEMM: \(Gemm.description)"
              + (precision == .bf16 ? "; bf16: \(Gemm.bf16Description)" : "") + " | threads \(Parallel.threadCount) | \(BenchMachine.cpuModel())")
        var rows: [[String: Any]] = []
        for c in selected {
            for m in c.modes where mode == nil || m == mode {
                let row = try BenchRunner.measure(c, mode: m, policy: policy)
                var json = row.json
                json["precision"] = precision.rawValue
                rows.append(json)
                print(row.line)
                fflush(stdout)
            }
        }
        if let json {
            // precision where torch_bench.py writes it (meta.policy), so `bench compare` reads both sides alike.
            let meta: [String: Any] = ["patchwork": PatchworkVersion.string, "gemm": Gemm.description,
                                       "threads": Parallel.threadCount, "cpu": BenchMachine.cpuModel(),
                                       "date_utc": ISO8601DateFormatter().string(from: Date()),
                                       "policy": ["warmup": policy.warmup, "min_reps": policy.minReps, "max_reps": policy.maxReps,
                                                  "target_s": policy.targetSeconds, "quick": quick,
                                                  "precision": precision.rawValue, "compile": false]]
            let data = try JSONSerialization.data(withJSONObject: ["meta": meta, "results": rows], options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: json), options: .atomic)
            print("wrote \(json)")
        }
    }
}

/// GEMM GFLOP/s through `Tensor` and through the library directly (and in bf16 with
/// --precision bf16), and element-wise bandwidth next to a plain memory copy.
struct BenchGemm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm",
        abstract: "GEMM GFLOP/s (through Tensor and direct; bf16 too with --precision bf16) and element-wise GB/s next to memcpy.")

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(help: "Seconds to spend timing each measurement.")
    var seconds: Double = 1.0

    @Option(name: .customLong("shape"), help: "A product to time, as MxKxN (A is M×K, B is K×N), e.g. 1576x384x1536; repeat the option for several (default: 256, 1024 and 2048 cubed).")
    var shapes: [String] = []

    @Option(help: "bf16 also times each product direct under Precision.bf16 (bf16 inputs, fp32 accumulation) beside fp32; shapes too narrow or small to gain stay fp32 there too (BF16Gemm.pays).")
    var precision: String = "fp32"

    struct Shape { let label: String; let m: Int; let k: Int; let n: Int }

    /// The shapes to time: --shape's, or the default cubes (labelled by their side, as before --shape).
    func parsedShapes() throws -> [Shape] {
        if shapes.isEmpty { return [256, 1024, 2048].map { Shape(label: "\($0)", m: $0, k: $0, n: $0) } }
        return try shapes.map { text in
            let sides = text.lowercased().split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
            guard sides.count == 3, let m = sides[0], let k = sides[1], let n = sides[2],
                  [m, k, n].allSatisfy({ (1...65_536).contains($0) }), m * k <= 1 << 28, k * n <= 1 << 28, m * n <= 1 << 28 else {
                throw ValidationError("--shape \(text): expected MxKxN, three whole numbers from 1 to 65536 with each matrix at most 2^28 elements (e.g. 1576x384x1536)")
            }
            return Shape(label: "\(m)x\(k)x\(n)", m: m, k: k, n: n)
        }
    }

    func validate() throws {
        try OptionCheck.between(seconds, "--seconds", 0.001, 3600, highIncluded: true)
        try OptionCheck.oneOf(precision, "--precision", Precision.allCases.map(\.rawValue))
        _ = try parsedShapes()
    }

    func run() throws {
        let sizes = try parsedShapes()
        let withBF16 = precision == Precision.bf16.rawValue
        var tensorGflops: [String: Double] = [:], directGflops: [String: Double] = [:], bf16Gflops: [String: Double] = [:]
        for s in sizes {
            let flops = 2 * Double(s.m) * Double(s.n) * Double(s.k)
            let a = Tensor.randomNormal([s.m, s.k], generator: Generator(seed: 1))
            let b = Tensor.randomNormal([s.k, s.n], generator: Generator(seed: 2))
            tensorGflops[s.label] = flops / bestTime(seconds) { _ = matmul(a, b) } / 1e9
            let c = UnsafeMutablePointer<Float>.allocate(capacity: s.m * s.n)
            defer { c.deallocate() }
            let pa = UnsafePointer(a.storage.pointer), pb = UnsafePointer(b.storage.pointer)
            let direct = {
                Gemm.sgemm(transA: false, transB: false, m: s.m, n: s.n, k: s.k, a: pa, lda: s.k, b: pb, ldb: s.n, c: c, ldc: s.n)
            }
            directGflops[s.label] = flops / bestTime(seconds, direct) / 1e9
            if withBF16 {
                bf16Gflops[s.label] = Precision.with(.bf16) { flops / bestTime(seconds, direct) / 1e9 }
            }
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
            var object: [String: Any] = [
                "library": Gemm.description,
                "tensor_gflops": tensorGflops, "direct_gflops": directGflops,
                "add_gbps": addGBps, "gelu_gbps": geluGBps, "copy_gbps": copyGBps,
            ]
            if withBF16 { object["bf16_direct_gflops"] = bf16Gflops }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("GEMM: \(Gemm.description)" + (withBF16 ? "; bf16: \(Gemm.bf16Description)" : ""))
        let width = max(7, sizes.map(\.label.count).max() ?? 0)
        print("size".padding(toLength: width, withPad: " ", startingAt: 0) + " Tensor GFLOP/s   direct GFLOP/s   Tensor/direct"
              + (withBF16 ? "   bf16 direct GFLOP/s   bf16/fp32" : ""))
        for s in sizes {
            let t = tensorGflops[s.label]!, d = directGflops[s.label]!
            var line = s.label.padding(toLength: width, withPad: " ", startingAt: 0) + String(format: " %14.1f %16.1f %14.0f%%", t, d, 100 * t / d)
            if let h = bf16Gflops[s.label] { line += String(format: " %21.1f %10.2f×", h, h / d) }
            print(line)
        }
        print("element-wise on 16M floats (bytes read + written per second):")
        print(String(format: "  add  %7.1f GB/s\n  gelu %7.1f GB/s\n  copy %7.1f GB/s (memcpy)", addGBps, geluGBps, copyGBps))
    }
}

/// Time to read a weights file's whole state dict into tensors (the way `--weights` reads it),
/// for comparing a torch checkpoint with the same weights as safetensors
/// (scripts/bench-load.sh makes the pair and runs this).
struct BenchLoad: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Milliseconds to read each weights file's state dict (safetensors or torch checkpoint), best of repeats.")

    @Argument(help: "Weights files.")
    var files: [String]

    @Option(help: "Seconds to spend timing each file.")
    var seconds: Double = 2.0

    func validate() throws {
        try OptionCheck.between(seconds, "--seconds", 0.001, 3600, highIncluded: true)
    }

    func run() throws {
        for path in files {
            // Read once for real, so a bad file is an error rather than a fast time.
            let first = try WeightsFile(contentsOf: path)
            let tensors = try first.tensors()
            let bytes = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
            let best = bestTime(seconds) { _ = try? WeightsFile(contentsOf: path).tensors() }
            print(String(format: "%9.1f ms  %@  (%@, %d tensors, %.1f MB)", 1000 * best, path, first.format.rawValue,
                         tensors.count, Double(bytes) / 1e6))
        }
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

/// The ratio table: Patchwork img/s ÷ PyTorch img/s per case and mode, from
/// `patchwork bench --json` and `torch_bench.py --json` files. Both sides' files say how they were
/// measured (meta.policy: precision, and torch.compile for PyTorch; files without it are fp32
/// eager): a table pairs one precision with the same precision, and its first line names the peer.
struct BenchCompare: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Print Patchwork ÷ PyTorch img/s and peak RSS per case and mode from the two sides' JSON files.")

    @Option(name: .customLong("patchwork"), parsing: .upToNextOption, help: "JSON files written by `patchwork bench --json`.")
    var patchworkFiles: [String]

    @Option(name: .customLong("torch"), parsing: .upToNextOption, help: "JSON files written by torch_bench.py --json.")
    var torchFiles: [String] = []

    @Option(help: "Also write the table as Markdown to this file.")
    var markdown: String?

    func validate() throws {
        if let markdown { try OptionCheck.outputFile(markdown, "--markdown") }
    }

    struct Row { let ips: Double; let min: Double; let max: Double; let rss: Double?; let gflops: Double? }

    /// How a file's numbers were measured.
    struct Setting: Equatable {
        let precision: String, compile: Bool
        /// "fp32", "bf16 autocast", with "torch.compile" or "eager" in front for PyTorch.
        func name(torch: Bool) -> String {
            let p = precision == "bf16" ? "bf16 autocast" : precision
            return torch ? (compile ? "torch.compile, " : "eager, ") + p : p
        }
    }

    static func rows(_ paths: [String], rssKey: String, option: String) throws -> (rows: [String: Row], order: [String], setting: Setting) {
        var rows: [String: Row] = [:], order: [String] = []
        var setting: (Setting, String)?
        for path in paths {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ValidationError("\(option) \(path): no such file, or it cannot be read")
            }
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let results = object["results"] as? [[String: Any]] else { throw ValidationError("\(path): not a benchmark JSON file (no \"results\")") }
            let policy = (object["meta"] as? [String: Any])?["policy"] as? [String: Any]
            let this = Setting(precision: policy?["precision"] as? String ?? "fp32", compile: policy?["compile"] as? Bool ?? false)
            if let (first, firstPath) = setting, first != this {
                throw ValidationError("\(option): \(firstPath) was measured \(first.name(torch: option == "--torch")) but \(path) \(this.name(torch: option == "--torch")); compare runs of one setting")
            }
            if setting == nil { setting = (this, path) }
            for r in results {
                guard let name = r["case"] as? String, let mode = r["mode"] as? String,
                      let stats = r["stats"] as? [String: Any], let ips = stats["img_per_s"] as? [String: Double],
                      let med = ips["median"] else { throw ValidationError("\(path): a result without case, mode or stats.img_per_s") }
                let key = name + " " + mode
                if rows[key] == nil { order.append(key) }
                rows[key] = Row(ips: med, min: ips["min"] ?? med, max: ips["max"] ?? med, rss: r[rssKey] as? Double,
                                gflops: (stats["achieved_gflop_per_s"] as? [String: Double])?["median"])
            }
        }
        return (rows, order, setting?.0 ?? Setting(precision: "fp32", compile: false))
    }

    func run() throws {
        let ours = try Self.rows(patchworkFiles, rssKey: "peak_rss_mb", option: "--patchwork")
        let theirs = try Self.rows(torchFiles, rssKey: "peak_rss_mib", option: "--torch")
        if !torchFiles.isEmpty && theirs.setting.precision != ours.setting.precision {
            throw ValidationError("--torch files were measured in \(theirs.setting.precision) but --patchwork files in \(ours.setting.precision): "
                                  + "pair patchwork bench --precision P with torch_bench.py --precision P")
        }
        let oursName = "Patchwork " + ours.setting.name(torch: false)
        let peerName = "PyTorch " + theirs.setting.name(torch: true)
        var lines = [torchFiles.isEmpty ? "\(oursName), no peer" : "\(oursName) vs \(peerName)", "",
                     "| case | mode | \(oursName) img/s [min–max] | \(peerName) img/s [min–max] | ratio | Patchwork GFLOP/s | peak RSS MiB Patchwork / PyTorch |",
                     "|---|---|---|---|---|---|---|"]
        var ratios: [Double] = []
        for key in ours.order {
            let p = ours.rows[key]!
            let parts = key.split(separator: " ")
            let ratio = theirs.rows[key].map { p.ips / $0.ips }
            if let ratio { ratios.append(ratio) }
            let t = theirs.rows[key]
            lines.append("| \(parts[0]) | \(parts[1]) | " + String(format: "%.1f [%.1f–%.1f]", p.ips, p.min, p.max)
                         + " | " + (t.map { String(format: "%.1f [%.1f–%.1f]", $0.ips, $0.min, $0.max) } ?? "—")
                         + " | " + (ratio.map { String(format: "**%.2f×**", $0) } ?? "—")
                         + " | " + (p.gflops.map { String(format: "%.0f", $0) } ?? "—")
                         + " | " + (p.rss.map { String(format: "%.0f", $0) } ?? "—") + " / " + (t?.rss.map { String(format: "%.0f", $0) } ?? "—") + " |")
        }
        if !ratios.isEmpty {
            let geo = exp(ratios.map { log($0) }.reduce(0, +) / Double(ratios.count))
            lines.append("")
            lines.append(String(format: "%d rows compared: geometric mean %.2f×, min %.2f×, max %.2f×; %d below 1.0×.",
                                ratios.count, geo, ratios.min()!, ratios.max()!, ratios.filter { $0 < 1 }.count))
        } else {
            lines.append("")
            lines.append("No PyTorch numbers to compare with.")
        }
        let text = lines.joined(separator: "\n")
        print(text)
        if let markdown { try Data((text + "\n").utf8).write(to: URL(fileURLWithPath: markdown), options: .atomic) }
    }
}

// Measuring one case in one mode, as torch_bench.py measures PyTorch.

/// How many steps to run: torch_bench.py's FULL_POLICY and QUICK_POLICY.
struct BenchPolicy {
    let warmup: Int, minReps: Int, maxReps: Int, targetSeconds: Double
    static let full = BenchPolicy(warmup: 3, minReps: 10, maxReps: 100, targetSeconds: 6)
    static let quick = BenchPolicy(warmup: 2, minReps: 3, maxReps: 20, targetSeconds: 1)
}

/// One case in one mode, measured.
struct BenchRow {
    let benchCase: BenchCase
    let mode: String
    let params: Int
    /// Seconds per timed step.
    let times: [Double]
    let peakRSSMiB: Double
    /// CPU cores other processes used during the timed steps (from /proc/stat), as torch_bench.py records it.
    let othersCores: Double?
    let finalLoss: Float?

    var imagesPerSecond: (median: Double, min: Double, max: Double) {
        let ips = times.map { Double(benchCase.batch) / $0 }.sorted()
        return (median(ips), ips.first ?? 0, ips.last ?? 0)
    }

    var gflopsPerImage: Double? { benchCase.gflopsPerImage?[mode] }

    var json: [String: Any] {
        let ips = imagesPerSecond
        let ms = times.map { 1000 * $0 }.sorted()
        var stats: [String: Any] = [
            "reps": times.count,
            "img_per_s": ["median": ips.median, "min": ips.min, "max": ips.max],
            "ms_per_batch": ["median": median(ms), "min": ms.first ?? 0, "max": ms.last ?? 0],
        ]
        if let g = gflopsPerImage {
            stats["achieved_gflop_per_s"] = ["median": g * ips.median, "min": g * ips.min, "max": g * ips.max]
        }
        var row: [String: Any] = [
            "case": benchCase.name, "group": benchCase.group, "family": benchCase.family, "mode": mode,
            "batch": benchCase.batch, "input_shape": benchCase.inputShape, "params": params, "stats": stats,
            "peak_rss_mb": peakRSSMiB,
        ]
        if let g = gflopsPerImage { row["gflops_per_image"] = g }
        if let othersCores { row["load"] = ["others_cores": othersCores] }
        if let finalLoss { row["final_loss"] = Double(finalLoss) }
        return row
    }

    var line: String {
        let ips = imagesPerSecond
        let gflops = gflopsPerImage.map { String(format: "%7.1f GFLOP/s", $0 * ips.median) } ?? ""
        return benchCase.name.padding(toLength: max(30, benchCase.name.count + 1), withPad: " ", startingAt: 0)
            + mode.padding(toLength: 6, withPad: " ", startingAt: 0)
            + String(format: "%9.1f img/s [%.1f-%.1f] %9.1f ms/batch %@  reps=%d  others=%.2f  peak RSS %.0f MiB", ips.median, ips.min, ips.max, 1000 * median(times), gflops, times.count,
                      othersCores ?? .nan, peakRSSMiB)
    }
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    guard !s.isEmpty else { return 0 }
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

enum BenchRunner {
    /// Builds the case's model and times `mode` ("train" or "infer").
    static func measure(_ c: BenchCase, mode: String, policy: BenchPolicy) throws -> BenchRow {
        guard c.inputShape.count == 3 else { throw ValidationError("case \(c.name): input_shape must be (C, H, W), got \(c.inputShape)") }
        _ = ProcessMemory.resetPeak()
        let model = try c.model()
        // The same kind of batch as torch_bench.py: standard normal images, uniform labels (channels-last here).
        let (channels, height, width) = (c.inputShape[0], c.inputShape[1], c.inputShape[2])
        let x = Tensor.randomNormal([c.batch, height, width, channels], generator: Generator(seed: 1))
        let labelGenerator = Generator(seed: 2)
        let labels = (0..<c.batch).map { _ in Int(labelGenerator.next() % UInt64(c.numClasses)) }

        let step: () -> Void
        var lastLoss: Float?
        switch mode {
        case "train":
            model.train()
            let optimizer = SGD(learningRate: 1e-3, momentum: 0.9)
            step = {
                let (loss, grads) = valueAndGrad(model) { crossEntropy(logits: model.logits(x), labels: labels) }
                optimizer.step(model, gradients: grads)
                lastLoss = loss.item()
            }
        case "infer":
            model.eval()
            step = { _ = withoutGrad { model.logits(x) } }
        default:
            throw ValidationError("case \(c.name): unknown mode \(mode) (train, infer)")
        }
        for _ in 0..<policy.warmup { step() }
        var times: [Double] = []
        var spent = 0.0
        let load = CPULoad.start()
        while times.count < policy.maxReps && (times.count < policy.minReps || spent < policy.targetSeconds) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            step()
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            times.append(dt)
            spent += dt
        }
        let others = load.othersCores()
        if let lastLoss, !lastLoss.isFinite { FileHandle.standardError.write(Data("warning: non-finite loss in \(c.name)\n".utf8)) }
        return BenchRow(benchCase: c, mode: mode, params: model.parameterCount, times: times,
                        peakRSSMiB: ProcessMemory.peakResidentMB(), othersCores: others, finalLoss: lastLoss)
    }
}

/// CPU time other processes took while we ran (busy jiffies in /proc/stat minus ours):
/// with 2 threads on 2 cores, any of it slows a parallel kernel down.
struct CPULoad {
    let wall: Double, busy: Double, ours: Double

    static func read() -> (wall: Double, busy: Double, ours: Double)? {
        guard let stat = try? String(contentsOfFile: "/proc/stat", encoding: .ascii),
              let first = stat.split(separator: "\n").first else { return nil }
        let v = first.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard v.count >= 7 else { return nil }
        let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let ours = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        return (Double(DispatchTime.now().uptimeNanoseconds) / 1e9, (v[0] + v[1] + v[2] + v[5] + v[6]) / hz, ours)
    }

    static func start() -> CPULoad {
        let r = read() ?? (0, 0, 0)
        return CPULoad(wall: r.wall, busy: r.busy, ours: r.ours)
    }

    func othersCores() -> Double? {
        guard let end = CPULoad.read(), end.wall > wall else { return nil }
        return max(0, (end.busy - busy) - (end.ours - ours)) / (end.wall - wall)
    }
}

enum BenchMachine {
    static func cpuModel() -> String {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown CPU" }
        for line in info.split(separator: "\n") where line.hasPrefix("model name") {
            return line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
        }
        return "unknown CPU"
    }
}
