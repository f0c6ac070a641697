import Foundation

/// Small self-contained SVG charts (no scripts, no external fonts or files):
/// line charts with several series and a legend, heat maps with a colour
/// bar, grouped bar charts, and tables. Every function returns the whole
/// `<svg>` document as text.
public enum SVGPlot {
    /// One named curve of a line chart or one group member of a bar chart.
    public struct Series: Sendable {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public init(name: String, points: [(x: Double, y: Double)]) { self.name = name; self.points = points }
        public init(name: String, x: [Double], y: [Double]) { self.init(name: name, points: Array(zip(x, y)).map { ($0, $1) }) }
    }

    /// A colour-blind-safe palette (Okabe–Ito), cycled.
    public static let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func fmt(_ v: Double) -> String { String(format: "%.2f", v) }

    /// A tick label: short, with as many decimals as the step needs.
    static func label(_ v: Double, step: Double) -> String {
        if v == 0 { return "0" }
        if abs(v) >= 1e4 || abs(v) < 1e-3 { return String(format: "%.1e", v) }
        let decimals = max(0, min(4, Int((-log10(step)).rounded(.up))))
        return String(format: "%.\(decimals)f", v)
    }

    /// About `count` round tick values covering lo...hi.
    static func ticks(_ lo: Double, _ hi: Double, count: Int = 5) -> (values: [Double], step: Double) {
        guard hi > lo, lo.isFinite, hi.isFinite else { return ([lo], 1) }
        let raw = (hi - lo) / Double(count)
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        var values: [Double] = []
        var v = (lo / step).rounded(.up) * step
        while v <= hi + step * 1e-9 { values.append(abs(v) < step * 1e-9 ? 0 : v); v += step }
        return (values, step)
    }

    static func header(_ width: Int, _ height: Int, _ title: String) -> String {
        """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" viewBox="0 0 \(width) \(height)" \
        font-family="Helvetica, Arial, sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(width / 2)" y="20" text-anchor="middle" font-size="14" font-weight="bold">\(escape(title))</text>

        """
    }

    /// A line chart of `series` with axes, ticks, axis labels and a legend.
    /// `yRange` fixes the y axis (e.g. 0...1 for accuracies); `xTickLabels`
    /// replaces numeric x ticks by names at x = 0, 1, 2, …
    public static func lineChart(title: String, xLabel: String, yLabel: String, series: [Series],
                                 yRange: ClosedRange<Double>? = nil, xTickLabels: [String]? = nil,
                                 logX: Bool = false, width: Int = 640, height: Int = 420) -> String {
        let left = 70.0, right = 170.0, top = 40.0, bottom = 60.0
        let plotW = Double(width) - left - right, plotH = Double(height) - top - bottom
        let tx: (Double) -> Double = { logX ? log10(max($0, 1e-12)) : $0 }
        let xs = series.flatMap { $0.points.map { tx($0.x) } }.filter(\.isFinite)
        let ys = series.flatMap { $0.points.map(\.y) }.filter(\.isFinite)
        var (x0, x1) = (xs.min() ?? 0, xs.max() ?? 1)
        if x0 == x1 { x0 -= 1; x1 += 1 }
        var (y0, y1) = yRange.map { ($0.lowerBound, $0.upperBound) } ?? (ys.min() ?? 0, ys.max() ?? 1)
        if y0 == y1 { y0 -= 1; y1 += 1 }
        if yRange == nil { let pad = 0.05 * (y1 - y0); y0 -= pad; y1 += pad }
        let px: (Double) -> Double = { left + (tx($0) - x0) / (x1 - x0) * plotW }
        let py: (Double) -> Double = { top + (1 - ($0 - y0) / (y1 - y0)) * plotH }
        var s = header(width, height, title)
        // Grid, ticks and labels.
        let (yt, ystep) = ticks(y0, y1)
        for v in yt {
            let y = py(v)
            s += "<line x1=\"\(fmt(left))\" y1=\"\(fmt(y))\" x2=\"\(fmt(left + plotW))\" y2=\"\(fmt(y))\" stroke=\"#e5e5e5\"/>\n"
            s += "<text x=\"\(fmt(left - 6))\" y=\"\(fmt(y + 4))\" text-anchor=\"end\">\(label(v, step: ystep))</text>\n"
        }
        if let names = xTickLabels {
            for (i, n) in names.enumerated() {
                let x = px(Double(i))
                s += "<text x=\"\(fmt(x))\" y=\"\(fmt(top + plotH + 16))\" text-anchor=\"middle\" font-size=\"10\">\(escape(n))</text>\n"
            }
        } else {
            let (xt, xstep) = ticks(x0, x1)
            for v in xt {
                let x = left + (v - x0) / (x1 - x0) * plotW
                let text = logX ? label(pow(10, v), step: pow(10, v) / 10) : label(v, step: xstep)
                s += "<line x1=\"\(fmt(x))\" y1=\"\(fmt(top + plotH))\" x2=\"\(fmt(x))\" y2=\"\(fmt(top + plotH + 4))\" stroke=\"black\"/>\n"
                s += "<text x=\"\(fmt(x))\" y=\"\(fmt(top + plotH + 16))\" text-anchor=\"middle\">\(text)</text>\n"
            }
        }
        s += "<rect x=\"\(fmt(left))\" y=\"\(fmt(top))\" width=\"\(fmt(plotW))\" height=\"\(fmt(plotH))\" fill=\"none\" stroke=\"black\"/>\n"
        s += "<text x=\"\(fmt(left + plotW / 2))\" y=\"\(fmt(Double(height) - 18))\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        s += "<text transform=\"translate(18 \(fmt(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>\n"
        // Curves and legend.
        for (k, serie) in series.enumerated() {
            let colour = palette[k % palette.count]
            let pts = serie.points.filter { $0.x.isFinite && $0.y.isFinite && (!logX || $0.x > 0) }
            let path = pts.map { "\(fmt(px($0.x))),\(fmt(py($0.y)))" }.joined(separator: " ")
            s += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\"/>\n"
            for p in pts {
                s += "<circle cx=\"\(fmt(px(p.x)))\" cy=\"\(fmt(py(p.y)))\" r=\"2.5\" fill=\"\(colour)\"/>\n"
            }
            let ly = top + 10 + Double(k) * 18
            s += "<line x1=\"\(fmt(left + plotW + 12))\" y1=\"\(fmt(ly))\" x2=\"\(fmt(left + plotW + 32))\" y2=\"\(fmt(ly))\" stroke=\"\(colour)\" stroke-width=\"2\"/>\n"
            s += "<text x=\"\(fmt(left + plotW + 38))\" y=\"\(fmt(ly + 4))\">\(escape(serie.name))</text>\n"
        }
        return s + "</svg>\n"
    }

    /// A colour for t in [0, 1] on a perceptually ordered ramp (viridis, 5 stops).
    static func colour(_ t: Double) -> String {
        let stops: [(Double, Double, Double)] = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]
        let u = min(max(t.isFinite ? t : 0, 0), 1) * Double(stops.count - 1)
        let i = min(Int(u), stops.count - 2), f = u - Double(i)
        let (a, b) = (stops[i], stops[i + 1])
        return String(format: "#%02x%02x%02x", Int(a.0 + (b.0 - a.0) * f), Int(a.1 + (b.1 - a.1) * f), Int(a.2 + (b.2 - a.2) * f))
    }

    /// A heat map of `values` (rows top to bottom) with a colour bar.
    /// `rowLabels`/`columnLabels` name the rows and columns (thinned when
    /// there are many); `range` fixes the colour scale.
    public static func heatMap(title: String, values: [[Double]], rowLabels: [String], columnLabels: [String],
                               xLabel: String, yLabel: String, colourLabel: String,
                               range: ClosedRange<Double>? = nil, cellSize: Double? = nil) -> String {
        let rows = values.count, cols = values.first?.count ?? 0
        let cell = cellSize ?? max(6, min(40, 420 / Double(max(rows, cols, 1))))
        let left = 70.0, top = 40.0
        let plotW = cell * Double(cols), plotH = cell * Double(rows)
        let width = Int(left + plotW + 120), height = Int(top + plotH + 60)
        let finite = values.flatMap { $0 }.filter(\.isFinite)
        var (lo, hi) = range.map { ($0.lowerBound, $0.upperBound) } ?? (finite.min() ?? 0, finite.max() ?? 1)
        if lo == hi { hi = lo + 1 }
        var s = header(width, height, title)
        for r in 0..<rows {
            for c in 0..<cols {
                let v = values[r][c]
                let fill = v.isFinite ? colour((v - lo) / (hi - lo)) : "#cccccc"
                s += "<rect x=\"\(fmt(left + Double(c) * cell))\" y=\"\(fmt(top + Double(r) * cell))\" width=\"\(fmt(cell + 0.3))\" height=\"\(fmt(cell + 0.3))\" fill=\"\(fill)\"><title>\(escape(rowLabels[safe: r] ?? "")), \(escape(columnLabels[safe: c] ?? "")): \(v)</title></rect>\n"
            }
        }
        let every = max(1, Int((14 / cell).rounded(.up)))
        for (c, name) in columnLabels.enumerated() where c % every == 0 || c == cols - 1 {
            s += "<text x=\"\(fmt(left + (Double(c) + 0.5) * cell))\" y=\"\(fmt(top + plotH + 14))\" text-anchor=\"middle\" font-size=\"10\">\(escape(name))</text>\n"
        }
        for (r, name) in rowLabels.enumerated() where r % every == 0 || r == rows - 1 {
            s += "<text x=\"\(fmt(left - 4))\" y=\"\(fmt(top + (Double(r) + 0.5) * cell + 3))\" text-anchor=\"end\" font-size=\"10\">\(escape(name))</text>\n"
        }
        s += "<rect x=\"\(fmt(left))\" y=\"\(fmt(top))\" width=\"\(fmt(plotW))\" height=\"\(fmt(plotH))\" fill=\"none\" stroke=\"black\"/>\n"
        s += "<text x=\"\(fmt(left + plotW / 2))\" y=\"\(fmt(top + plotH + 34))\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        s += "<text transform=\"translate(18 \(fmt(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>\n"
        // Colour bar.
        let bx = left + plotW + 20, steps = 50
        for i in 0..<steps {
            let t = 1 - Double(i) / Double(steps - 1)
            s += "<rect x=\"\(fmt(bx))\" y=\"\(fmt(top + plotH * Double(i) / Double(steps)))\" width=\"14\" height=\"\(fmt(plotH / Double(steps) + 0.5))\" fill=\"\(colour(t))\"/>\n"
        }
        let (ct, cstep) = ticks(lo, hi, count: 4)
        for v in ct {
            let y = top + (1 - (v - lo) / (hi - lo)) * plotH
            s += "<text x=\"\(fmt(bx + 18))\" y=\"\(fmt(y + 4))\" font-size=\"10\">\(label(v, step: cstep))</text>\n"
        }
        s += "<text transform=\"translate(\(fmt(bx + 70)) \(fmt(top + plotH / 2))) rotate(90)\" text-anchor=\"middle\" font-size=\"11\">\(escape(colourLabel))</text>\n"
        return s + "</svg>\n"
    }

    /// A grouped bar chart: one group per category, one bar per series
    /// (series[k].points[i].y is the bar of category i).
    public static func barChart(title: String, categories: [String], series: [Series], yLabel: String,
                                yRange: ClosedRange<Double>? = nil, width: Int? = nil, height: Int = 420) -> String {
        let left = 70.0, right = 170.0, top = 40.0, bottom = 90.0
        let groupW = max(24.0, 12.0 * Double(max(series.count, 1)) + 10)
        let w = width ?? Int(left + right + groupW * Double(max(categories.count, 1)))
        let plotW = Double(w) - left - right, plotH = Double(height) - top - bottom
        let ys = series.flatMap { $0.points.map(\.y) }.filter(\.isFinite)
        var (y0, y1) = yRange.map { ($0.lowerBound, $0.upperBound) } ?? (min(0, ys.min() ?? 0), max(ys.max() ?? 1, 0))
        if y0 == y1 { y1 = y0 + 1 }
        let py: (Double) -> Double = { top + (1 - ($0 - y0) / (y1 - y0)) * plotH }
        var s = header(w, height, title)
        let (yt, ystep) = ticks(y0, y1)
        for v in yt {
            s += "<line x1=\"\(fmt(left))\" y1=\"\(fmt(py(v)))\" x2=\"\(fmt(left + plotW))\" y2=\"\(fmt(py(v)))\" stroke=\"#e5e5e5\"/>\n"
            s += "<text x=\"\(fmt(left - 6))\" y=\"\(fmt(py(v) + 4))\" text-anchor=\"end\">\(label(v, step: ystep))</text>\n"
        }
        let gw = plotW / Double(max(categories.count, 1))
        let bw = (gw - 6) / Double(max(series.count, 1))
        for (i, name) in categories.enumerated() {
            for (k, serie) in series.enumerated() where i < serie.points.count {
                let v = serie.points[i].y
                guard v.isFinite else { continue }
                let x = left + Double(i) * gw + 3 + Double(k) * bw
                let (a, b) = (py(max(v, y0)), py(max(min(0, y1), y0)))
                s += "<rect x=\"\(fmt(x))\" y=\"\(fmt(min(a, b)))\" width=\"\(fmt(bw))\" height=\"\(fmt(abs(a - b)))\" fill=\"\(palette[k % palette.count])\"><title>\(escape(serie.name)), \(escape(name)): \(v)</title></rect>\n"
            }
            let cx = left + (Double(i) + 0.5) * gw
            s += "<text transform=\"translate(\(fmt(cx + 3)) \(fmt(top + plotH + 10))) rotate(45)\" font-size=\"10\">\(escape(name))</text>\n"
        }
        s += "<rect x=\"\(fmt(left))\" y=\"\(fmt(top))\" width=\"\(fmt(plotW))\" height=\"\(fmt(plotH))\" fill=\"none\" stroke=\"black\"/>\n"
        s += "<text transform=\"translate(18 \(fmt(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>\n"
        for (k, serie) in series.enumerated() {
            let ly = top + 10 + Double(k) * 18
            s += "<rect x=\"\(fmt(left + plotW + 12))\" y=\"\(fmt(ly - 6))\" width=\"14\" height=\"12\" fill=\"\(palette[k % palette.count])\"/>\n"
            s += "<text x=\"\(fmt(left + plotW + 32))\" y=\"\(fmt(ly + 4))\">\(escape(serie.name))</text>\n"
        }
        return s + "</svg>\n"
    }

    /// A table of text cells (first row is the header).
    public static func table(title: String, rows: [[String]], columnWidth: Double = 90) -> String {
        let cols = rows.map(\.count).max() ?? 0
        let rowH = 20.0, top = 40.0, left = 10.0
        let width = Int(left * 2 + columnWidth * Double(cols)), height = Int(top + rowH * Double(rows.count) + 10)
        var s = header(width, height, title)
        for (r, row) in rows.enumerated() {
            let y = top + Double(r) * rowH
            if r % 2 == 1 { s += "<rect x=\"\(fmt(left))\" y=\"\(fmt(y))\" width=\"\(fmt(columnWidth * Double(cols)))\" height=\"\(fmt(rowH))\" fill=\"#f3f3f3\"/>\n" }
            for (c, text) in row.enumerated() {
                let weight = r == 0 ? " font-weight=\"bold\"" : ""
                s += "<text x=\"\(fmt(left + Double(c) * columnWidth + 4))\" y=\"\(fmt(y + 14))\"\(weight)>\(escape(text))</text>\n"
            }
        }
        return s + "</svg>\n"
    }

    /// Several SVG documents stacked vertically into one.
    public static func stack(_ documents: [String]) -> String {
        var y = 0.0, width = 0.0, body = ""
        for d in documents {
            guard let (w, h) = size(of: d) else { continue }
            let inner = d.replacingOccurrences(of: "<svg xmlns=\"http://www.w3.org/2000/svg\"", with: "<svg y=\"\(fmt(y))\"")
            body += inner
            y += h; width = max(width, w)
        }
        return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(y))\" viewBox=\"0 0 \(Int(width)) \(Int(y))\">\n" + body + "</svg>\n"
    }

    static func size(of svg: String) -> (Double, Double)? {
        func attribute(_ name: String) -> Double? {
            guard let r = svg.range(of: " \(name)=\"") else { return nil }
            let rest = svg[r.upperBound...]
            return rest.firstIndex(of: "\"").flatMap { Double(rest[..<$0]) }
        }
        guard let w = attribute("width"), let h = attribute("height") else { return nil }
        return (w, h)
    }
}

extension Array {
    subscript(safe i: Int) -> Element? { indices.contains(i) ? self[i] : nil }
}
