import Foundation

/// `patchwork report`: one self-contained HTML page (inline SVG and images, inline
/// CSS, nothing fetched) gathering every analysis found in run folders, models
/// side by side, each section with a caption saying what its pictures show.
///
/// It reads files, not types: any `<name>.json` with `analysis` and `summary`
/// keys is an analysis result, its picture is `<name>.svg` (or `<name>*.png`
/// beside it for attention maps), a run's `summary.json` gives its training
/// numbers, and an optional `claims.json` (from `patchwork demo`) the claims
/// checked against the measurements.
public enum HTMLReport {
    /// One analysis result found on disk.
    public struct Entry {
        public let analysis: String
        public let model: String
        public let folder: String
        public let summary: [String: Any]
        /// The picture's text as read; the report places only its sanitised copy (`SVGSanitizer`).
        public let svg: String?
        public let svgPath: String?
        public let pngs: [String]
    }

    /// What each analysis shows, in the report's order.
    public static let sections: [(name: String, title: String, caption: String)] = [
        ("shape-bias", "Shape or texture?",
         "Cue-conflict images carry the shape of one class and the texture of another. Shape bias = shape decisions ÷ (shape + texture decisions) (Geirhos et al. 2019): 1 means the model follows shape, 0 texture. CNNs trained on ImageNet lean on texture; ViTs are reported to lean more on shape."),
        ("data-spectrum", "Where the data puts its energy",
         "Radial power spectra of ShapeTex's shape-only and texture-only images, and the cut-off radius between the band where shapes put their energy and the band where textures do: the low and high bands of the noise claims."),
        ("fourier-heatmap", "Sensitivity to noise by frequency",
         "Error rate when a single Fourier basis image of fixed L2 norm is added, at every frequency (u, v); the centre is the lowest frequency (Yin et al. 2019). CNNs are reported to be fragile at high frequencies, ViTs less so."),
        ("frequency-noise", "Band-limited noise and filtered inputs",
         "Accuracy under Gaussian noise restricted to one radial frequency band at a time (same L2 norm in every band), and accuracy of low-pass and high-pass filtered images by cut-off radius."),
        ("feature-frequency", "High frequencies in the features",
         "Relative log amplitude of the high-frequency part of each block's feature maps, over depth (Park & Kim 2022, Fig. 2): convolutions amplify high frequencies, self-attention (a low-pass filter) reduces them."),
        ("corruptions", "Common corruptions",
         "Accuracy under ImageNet-C-style corruptions at five severities, and mean corruption accuracy relative to clean accuracy."),
        ("adversarial", "Adversarial attacks",
         "Accuracy under FGSM and PGD (L∞) attacks as the budget ε grows (pixels in [0, 1])."),
        ("attention-distance", "How far attention looks",
         "Mean attention distance in input pixels per head (dots) and layer (Dosovitskiy et al. 2021, Fig. 7): shallow layers of a ViT trained on little data already attend far; convolutions and local attention stay near."),
        ("attention-maps", "Attention rollout",
         "Attention rolled out through all layers (Abnar & Zuidema 2020), from the class token to the image, as overlays."),
        ("cka", "Do the layers compute the same thing?",
         "Linear CKA (minibatch unbiased estimator, Nguyen et al. 2021) between every pair of layers of two models: 1 = the same representation up to rotation and scale."),
        ("landscape", "Loss landscape",
         "Loss along filter-normalised random directions around the trained weights (Li et al. 2018): a flatter, more convex basin is easier to optimise."),
        ("hessian", "Hessian spectrum",
         "Top eigenvalues, trace and eigenvalue density of the loss Hessian (PyHessian-style, exact Hessian-vector products). Negative eigenvalues mean non-convex directions; Park & Kim 2022 report many more of them for ViTs trained on little data."),
        ("cost", "What it costs",
         "Parameters, FLOPs per image, throughput and peak memory on this machine; with accuracy, the accuracy-versus-FLOPs picture."),
    ]

    /// Every analysis result in `folders` (and their direct subfolders).
    public static func collect(_ folders: [String]) throws -> (entries: [Entry], runs: [[String: Any]], claims: [ClaimResult]) {
        var entries: [Entry] = [], runs: [[String: Any]] = [], claims: [ClaimResult] = []
        let fm = FileManager.default
        var queue: [String] = []
        for folder in folders {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: folder, isDirectory: &isDir), isDir.boolValue else {
                throw AnalysisError("report: \(folder) is not a folder")
            }
            queue.append(folder)
            for sub in (try? fm.contentsOfDirectory(atPath: folder))?.sorted() ?? [] {
                let path = (folder as NSString).appendingPathComponent(sub)
                if fm.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue { queue.append(path) }
            }
        }
        for folder in queue {
            let files = ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).sorted()
            for file in files where file.hasSuffix(".json") {
                let path = (folder as NSString).appendingPathComponent(file)
                guard let data = fm.contents(atPath: path) else { continue }
                if file == "claims.json" {
                    do { claims += try JSONDecoder().decode([ClaimResult].self, from: data) } catch {
                        throw AnalysisError("report: \(path) is not a list of claims: \(error)")
                    }
                    continue
                }
                guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { continue }
                if file == "summary.json", object["test_accuracy"] != nil || object["testAccuracy"] != nil {
                    var run = object
                    run["folder"] = folder
                    runs.append(run)
                    continue
                }
                guard let analysis = object["analysis"] as? String, let summary = object["summary"] as? [String: Any] else { continue }
                let stem = String(file.dropLast(5))
                let svgPath = (folder as NSString).appendingPathComponent(stem + ".svg")
                let svg = readSVG(svgPath)
                let pngs = files.filter { $0.hasPrefix(stem) && $0.hasSuffix(".png") }.map { (folder as NSString).appendingPathComponent($0) }
                entries.append(Entry(analysis: analysis, model: modelName(object) ?? (folder as NSString).lastPathComponent,
                                     folder: folder, summary: summary, svg: svg, svgPath: svg == nil ? nil : svgPath, pngs: pngs))
            }
        }
        return (entries, runs, claims)
    }

    /// The model an analysis ran on: `settings.source.model`, `settings.model`, or `settings.models` joined.
    static func modelName(_ object: [String: Any]) -> String? {
        guard let settings = object["settings"] as? [String: Any] else { return nil }
        if let source = settings["source"] as? [String: Any], let m = source["model"] as? String { return m }
        if let m = settings["model"] as? String { return m }
        if let ms = settings["models"] as? [String] { return ms.joined(separator: " vs ") }
        return nil
    }

    /// The whole page.
    public static func render(title: String, entries: [Entry], runs: [[String: Any]], claims: [ClaimResult], note: String? = nil) -> String {
        var html = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>\(escape(title))</title>
        <style>
        body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:2800px;color:#222;padding:0 16px}
        p.caption,table{max-width:1300px}
        h1{font-size:26px} h2{margin-top:40px;border-bottom:2px solid #ddd;padding-bottom:4px}
        p.caption{color:#444;max-width:1000px} table{border-collapse:collapse;margin:8px 0 16px}
        td,th{border:1px solid #ccc;padding:4px 10px;text-align:right;font-variant-numeric:tabular-nums} th{background:#f3f3f3}
        td:first-child,th:first-child{text-align:left} .figures{display:flex;flex-wrap:wrap;gap:16px}
        figure{margin:0;border:1px solid #e3e3e3;padding:8px;background:#fff} figcaption{font-weight:600;margin-bottom:4px}
        figure svg{max-width:640px;height:auto} figure img{image-rendering:pixelated;width:128px;margin:2px}
        .held{color:#0a7d32;font-weight:600} .notheld{color:#b3261e;font-weight:600} .unknown{color:#777}
        </style></head><body>
        <h1>\(escape(title))</h1>

        """
        if let note { html += "<p class=\"caption\">\(escape(note))</p>\n" }
        if !claims.isEmpty {
            html += "<h2 id=\"claims\">The claims, checked</h2>\n"
            html += "<p class=\"caption\">Each claim is one signed number per training seed (positive supports it), against the baseline named. "
                + "Held: the 95 % confidence interval of its mean over seeds lies above 0; not held: below 0; inconclusive: it spans 0, "
                + "there is one seed, or a precondition failed (a model at chance). docs/ANALYSES.md gives each claim's definition.</p>\n"
            html += "<table><tr><th>claim</th><th>measured here, against</th><th>per seed</th><th>mean ± std (95 % CI)</th><th>verdict</th></tr>\n"
            for c in claims {
                let verdict: String
                switch c.verdict {
                case .held: verdict = "<span class=\"held\">held</span>"
                case .notHeld: verdict = "<span class=\"notheld\">not held</span>"
                case .inconclusive: verdict = "<span class=\"unknown\">inconclusive</span>"
                }
                let perSeed = c.seeds.map { "seed \($0.seed): \($0.value.map { String(format: "%.3f", $0) } ?? "–")" }.joined(separator: "<br>")
                let why = escape(c.reason) + (c.settle.map { "<br><i>to settle: \(escape($0))</i>" } ?? "")
                html += "<tr><td style=\"text-align:left\">\(escape(c.claim))</td>"
                    + "<td style=\"text-align:left\">\(escape(c.setting))<br>baseline: \(escape(c.baseline.name))"
                    + (c.baseline.value.map { String(format: " = %.3f", $0) } ?? "") + "</td>"
                    + "<td>\(perSeed)</td><td>\(escape(c.measured))</td><td>\(verdict)<br><small>\(why)</small></td></tr>\n"
            }
            html += "</table>\n"
        }
        if !runs.isEmpty {
            html += "<h2 id=\"runs\">Training runs</h2>\n<table><tr><th>model</th><th>data</th><th>seed</th><th>epochs</th><th>target reached after (images)</th><th>test accuracy</th><th>train time (s)</th><th>images/s</th><th>parameters</th></tr>\n"
            for r in runs {
                let options = r["options"] as? [String: Any]
                let target = (r["target"] as? [String: Any]).map { format($0["images"]) }
                    ?? (options?["target_accuracy"] != nil ? "not reached" : "–")
                html += "<tr><td>\(escape(r["model"] as? String ?? "?"))</td><td>\(escape(r["data"] as? String ?? ""))</td>"
                    + "<td>\(format(r["seed"]))</td><td>\(format(r["epochs"]))</td><td>\(target)</td><td>\(format(r["test_accuracy"] ?? r["testAccuracy"]))</td>"
                    + "<td>\(format(r["train_seconds"] ?? r["trainSeconds"]))</td><td>\(format(r["images_per_second"] ?? r["imagesPerSecond"]))</td>"
                    + "<td>\(format(r["parameters"]))</td></tr>\n"
            }
            html += "</table>\n"
        }
        let known = Set(sections.map(\.name))
        let others = Array(Set(entries.map(\.analysis)).subtracting(known)).sorted()
        let order = sections + others.map { ($0, $0, "") }
        var figure = 0
        for (name, heading, caption) in order {
            let group = entries.filter { $0.analysis == name }
            guard !group.isEmpty else { continue }
            html += "<h2 id=\"\(escape(name))\">\(escape(heading))</h2>\n"
            if !caption.isEmpty { html += "<p class=\"caption\">\(escape(caption))</p>\n" }
            html += summaryTable(group)
            html += "<div class=\"figures\">\n"
            for e in group {
                html += "<figure><figcaption>\(escape(e.model))</figcaption>\n"
                if let svg = e.svg {
                    figure += 1
                    html += inlineSVG(svg, prefix: "f\(figure)-", path: e.svgPath ?? e.folder) + "\n"
                }
                for png in e.pngs {
                    if let data = FileManager.default.contents(atPath: png) {
                        html += "<img alt=\"\(escape((png as NSString).lastPathComponent))\" src=\"data:image/png;base64,\(data.base64EncodedString())\">"
                    }
                }
                html += "</figure>\n"
            }
            html += "</div>\n"
        }
        if entries.isEmpty && runs.isEmpty { html += "<p>No analysis results were found in the given folders.</p>\n" }
        html += "<p class=\"caption\">Made by patchwork report.</p>\n</body></html>\n"
        return html
    }

    /// Models (rows) × the summary's numbers (columns).
    static func summaryTable(_ group: [Entry]) -> String {
        var keys: [String] = []
        for e in group { for k in e.summary.keys.sorted() where !keys.contains(k) && isScalar(e.summary[k]) { keys.append(k) } }
        guard !keys.isEmpty else { return "" }
        var html = "<table><tr><th>model</th>" + keys.map { "<th>\(escape($0.replacingOccurrences(of: "_", with: " ")))</th>" }.joined() + "</tr>\n"
        for e in group {
            html += "<tr><td>\(escape(e.model))</td>" + keys.map { "<td>\(format(e.summary[$0]))</td>" }.joined() + "</tr>\n"
        }
        return html + "</table>\n"
    }

    static func isScalar(_ v: Any?) -> Bool { v is NSNumber || v is String }

    static func format(_ v: Any?) -> String {
        switch v {
        case let n as NSNumber:
            if String(cString: n.objCType) == "c" { return n.boolValue ? "yes" : "no" }  // JSON true/false
            let d = n.doubleValue
            if d == d.rounded(), abs(d) < 1e15 { return String(Int(d)) }
            return abs(d) >= 100 ? String(format: "%.1f", d) : String(format: "%.4g", d)
        case let s as String: return escape(s)
        default: return ""
        }
    }

    /// A picture's text: a regular file of at most `SVGSanitizer.maxBytes` in UTF-8, else nil (with a
    /// warning naming the file when it exists but is not read).
    static func readSVG(_ path: String) -> String? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else { return nil }
        let why: String
        if attributes[.type] as? FileAttributeType != .typeRegular {
            why = "not a regular file"
        } else if let size = (attributes[.size] as? NSNumber)?.intValue, size > SVGSanitizer.maxBytes {
            why = "larger than \(SVGSanitizer.maxBytes >> 20) MB"
        } else if let text = FileManager.default.contents(atPath: path).flatMap({ String(data: $0, encoding: .utf8) }) {
            return text
        } else {
            why = "not readable as UTF-8 text"
        }
        warn("\(path): left out of the report: \(why)")
        return nil
    }

    /// An SVG document placed inline: its sanitised copy (no script, event attribute or external
    /// reference; see `SVGSanitizer`) with every id made unique to this figure (several figures may
    /// use the same ids for gradients or clips). One that is refused is left out, with a warning.
    static func inlineSVG(_ svg: String, prefix: String, path: String) -> String {
        do {
            let safe = try SVGSanitizer.sanitize(svg, idPrefix: prefix)
            if !safe.removed.isEmpty {
                warn("\(path): removed from the report's copy: \(safe.removed.joined(separator: ", "))")
            }
            return safe.svg
        } catch {
            warn("\(path): left out of the report: \(error)")
            return "<p class=\"caption\">(picture left out: \(escape("\(error)")))</p>"
        }
    }

    static func warn(_ message: String) {
        FileHandle.standardError.write(Data("warning: \(message)\n".utf8))
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
