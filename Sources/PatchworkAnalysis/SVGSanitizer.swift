import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// Makes an SVG document from a run folder safe to place inline in the report.
///
/// The report is opened in a browser, and a run folder may hold a file anyone
/// wrote. So the SVG is parsed (Foundation's XMLParser) and re-emitted with an
/// allow-list: only drawing elements (the ones `SVGPlot` and the analyses
/// write, plus gradients and clips) and presentation attributes survive.
/// Dropped: every other element with all it contains (`<script>`, `<style>`,
/// `<foreignObject>`, `<iframe>`, `<image>`, …), event attributes (`on…`),
/// references to anything but a fragment of the same document (`href="#id"`,
/// `url(#id)`), CSS escapes and `javascript:`/`expression(` values, comments
/// and processing instructions. A document with a DTD (where entities are
/// declared) or that does not parse is refused. Every id is prefixed, so that
/// several figures on one page may use the same ids.
public enum SVGSanitizer {
    /// The safe document and what was dropped from it (element names, attribute names).
    public struct Result {
        public let svg: String
        public let removed: [String]
    }

    /// An SVG that is not placed in the report at all, and why.
    public struct Refused: Error, CustomStringConvertible {
        public let reason: String
        public var description: String { reason }
    }

    /// Larger files are refused before they are read (the analyses' own are well under 1 MB).
    public static let maxBytes = 32 << 20

    static let elements: Set<String> = [
        "svg", "g", "defs", "title", "desc", "rect", "circle", "ellipse", "line", "polyline", "polygon", "path",
        "text", "tspan", "linearGradient", "radialGradient", "stop", "clipPath", "use",
    ]

    /// Presentation properties: allowed as attributes and inside `style`.
    static let presentation: Set<String> = [
        "fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-opacity", "stroke-dasharray",
        "stroke-dashoffset", "stroke-linecap", "stroke-linejoin", "stroke-miterlimit", "opacity", "font-family",
        "font-size", "font-weight", "font-style", "text-anchor", "dominant-baseline", "alignment-baseline",
        "letter-spacing", "visibility", "display", "clip-path", "clip-rule", "stop-color", "stop-opacity",
        "shape-rendering", "text-rendering", "vector-effect", "transform",
    ]

    static let geometry: Set<String> = [
        "width", "height", "viewBox", "preserveAspectRatio", "x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r",
        "rx", "ry", "fx", "fy", "points", "d", "dx", "dy", "rotate", "textLength", "lengthAdjust", "offset",
        "gradientUnits", "gradientTransform", "spreadMethod", "clipPathUnits", "class",
    ]

    /// A local fragment: an id of this document.
    static func isIdentifier<S: StringProtocol>(_ s: S) -> Bool {
        !s.isEmpty && s.unicodeScalars.allSatisfy {
            $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "_-.:".unicodeScalars.contains($0))
        }
    }

    /// The value with its `url(#id)` references prefixed, or nil when it could fetch or run anything.
    static func safeValue(_ value: String, idPrefix: String) -> String? {
        let squeezed = value.lowercased().filter { !$0.isWhitespace }
        for bad in ["javascript:", "vbscript:", "data:", "expression(", "@import", "\\", "<", "&"] where squeezed.contains(bad) {
            return nil
        }
        var out = "", rest = Substring(value)
        while let open = rest.range(of: "url(", options: .caseInsensitive) {
            out += String(rest[..<open.lowerBound])
            let after = rest[open.upperBound...]
            guard let close = after.firstIndex(of: ")") else { return nil }
            var target = after[..<close].trimmingCharacters(in: .whitespaces)
            if target.count >= 2, let q = target.first, q == "'" || q == "\"", target.last == q {
                target = String(target.dropFirst().dropLast())
            }
            guard target.hasPrefix("#"), isIdentifier(target.dropFirst()) else { return nil }
            out += "url(#\(idPrefix)\(target.dropFirst()))"
            rest = after[after.index(after: close)...]
        }
        return out + String(rest)
    }

    /// The attribute as it may be emitted, or nil to drop it.
    static func clean(attribute name: String, value: String, idPrefix: String) -> String? {
        switch name {
        case "id":
            return isIdentifier(value) ? idPrefix + value : nil
        case "href", "xlink:href":
            return value.hasPrefix("#") && isIdentifier(value.dropFirst()) ? "#" + idPrefix + String(value.dropFirst()) : nil
        case "style":
            var kept: [String] = []
            for declaration in value.split(separator: ";") {
                let parts = declaration.split(separator: ":", maxSplits: 1)
                guard parts.count == 2 else { continue }
                let property = parts[0].trimmingCharacters(in: .whitespaces).lowercased()
                guard presentation.contains(property),
                      let v = safeValue(parts[1].trimmingCharacters(in: .whitespaces), idPrefix: idPrefix) else { return nil }
                kept.append("\(property):\(v)")
            }
            return kept.joined(separator: ";")
        default:
            guard presentation.contains(name) || geometry.contains(name) else { return nil }
            return safeValue(value, idPrefix: idPrefix)
        }
    }

    /// The safe copy of `svg`, or `Refused` when it has a DTD, does not parse, or its root is not `<svg>`.
    public static func sanitize(_ svg: String, idPrefix: String = "") throws -> Result {
        guard svg.utf8.count <= maxBytes else { throw Refused(reason: "larger than \(maxBytes >> 20) MB") }
        // Entities live in the DTD; refusing it leaves no entity to expand, internal or external.
        if svg.range(of: "<!DOCTYPE", options: .caseInsensitive) != nil || svg.range(of: "<!ENTITY", options: .caseInsensitive) != nil {
            throw Refused(reason: "it has a DTD (<!DOCTYPE or <!ENTITY), which an SVG picture does not need")
        }
        let parser = XMLParser(data: Data(svg.utf8))
        parser.shouldResolveExternalEntities = false
        parser.shouldProcessNamespaces = false
        let builder = Builder(idPrefix: idPrefix)
        parser.delegate = builder
        let parsed = parser.parse()
        if let refusal = builder.refusal { throw Refused(reason: refusal) }
        guard parsed, builder.depth == 0, builder.sawRoot else {
            throw Refused(reason: "not well-formed XML (stopped at line \(parser.lineNumber), column \(parser.columnNumber))")
        }
        var removed: [String] = []
        for r in builder.removed where !removed.contains(r) { removed.append(r) }
        return Result(svg: builder.out, removed: removed)
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// Re-emits what the allow-list keeps while the parser walks the document.
    final class Builder: NSObject, XMLParserDelegate {
        let idPrefix: String
        var out = ""
        var removed: [String] = []
        var depth = 0                 // open elements being emitted
        var skipping = 0              // open elements inside a dropped one
        var openTagPending = false    // "<name attrs" written, ">" or "/>" not yet
        var sawRoot = false
        var refusal: String?

        init(idPrefix: String) { self.idPrefix = idPrefix }

        func closePendingTag() {
            if openTagPending { out += ">"; openTagPending = false }
        }

        func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
                    qualifiedName qName: String?, attributes attributeDict: [String: String] = [:]) {
            if skipping > 0 { skipping += 1; return }
            if depth == 0 {
                guard !sawRoot, elementName == "svg" else {
                    refusal = "its root element is <\(elementName)>, not <svg>"
                    parser.abortParsing()
                    return
                }
                sawRoot = true
            }
            guard SVGSanitizer.elements.contains(elementName) else {
                removed.append("<\(elementName)>")
                skipping = 1
                return
            }
            closePendingTag()
            out += "<\(elementName)"
            if depth == 0 { out += " xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\"" }
            for name in attributeDict.keys.sorted() where !name.hasPrefix("xmlns") {
                if let value = SVGSanitizer.clean(attribute: name, value: attributeDict[name]!, idPrefix: idPrefix) {
                    out += " \(name)=\"\(SVGSanitizer.escape(value))\""
                } else {
                    removed.append("\(name)=")
                }
            }
            openTagPending = true
            depth += 1
        }

        func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName qName: String?) {
            if skipping > 0 { skipping -= 1; return }
            depth -= 1
            if openTagPending { out += "/>"; openTagPending = false } else { out += "</\(elementName)>" }
            if depth == 0 { out += "\n" }
        }

        func text(_ string: String) {
            guard skipping == 0, depth > 0 else { return }
            closePendingTag()
            out += SVGSanitizer.escape(string)
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) { text(string) }
        func parser(_ parser: XMLParser, foundIgnorableWhitespace whitespaceString: String) { text(whitespaceString) }
        func parser(_ parser: XMLParser, foundCDATA CDATABlock: Data) { text(String(decoding: CDATABlock, as: UTF8.self)) }
    }
}
