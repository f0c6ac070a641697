import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest
import PatchworkAnalysis

final class SVGSanitizerTests: XCTestCase {
    /// A run folder's hostile picture: every way an SVG can run code or fetch something.
    static let hostile = """
    <?xml version="1.0"?>
    <?xml-stylesheet href="https://evil.example/s.css"?>
    <svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" onload="alert(1)" width="100" height="50">
    <script>alert('script')</script>
    <script xlink:href="https://evil.example/a.js"/>
    <style>@import url(https://evil.example/x.css); rect { fill: url(https://evil.example/p.svg#p) }</style>
    <rect width="10" height="10" onclick="alert(2)" ONMOUSEOVER="alert(3)" fill="url(https://evil.example/f.svg#g)"/>
    <rect width="10" height="10" style="fill:red;background-image:url(http://evil.example/b.png)"/>
    <rect width="10" height="10" style="fill: url( 'https://evil.example/q' )"/>
    <rect width="10" height="10" style="fill:\\75rl(https://evil.example/esc)"/>
    <circle r="4" fill="blue" style="stroke: black"/>
    <image href="https://evil.example/track.png" width="1" height="1"/>
    <image xlink:href="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+" width="1" height="1"/>
    <a href="javascript:alert(4)"><text x="1" y="1">click</text></a>
    <use href="https://evil.example/sprite.svg#icon"/>
    <use xlink:href="#ok"/>
    <foreignObject width="10" height="10"><iframe xmlns="http://www.w3.org/1999/xhtml" src="https://evil.example"/></foreignObject>
    <iframe src="https://evil.example"/><object data="https://evil.example"/><embed src="https://evil.example"/>
    <animate attributeName="href" to="javascript:alert(5)"/>
    <set attributeName="onload" to="alert(6)"/>
    <text x="5" y="5" id="ok">&lt;script&gt;not markup&lt;/script&gt; <![CDATA[<img src=x>]]></text>
    <!-- <script>alert(8)</script> -->
    <g transform="translate(1 2)" filter="url(#f)" mask="url(https://evil.example/m)"><line x1="0" y1="0" x2="1" y2="1" stroke="black"/></g>
    </svg>
    """

    func testHostileSVGLosesEveryActiveOrExternalPart() throws {
        let result = try SVGSanitizer.sanitize(Self.hostile, idPrefix: "f1-")
        let out = result.svg.lowercased()
        for banned in ["<script", "<style", "<image", "<a ", "<a>", "<foreignobject", "<iframe", "<object", "<embed", "<animate",
                       "<set", "onload", "onclick", "onmouseover", "javascript:", "http://evil", "https://evil",
                       "evil.example", "data:", "@import", "\\75", "<img", "<!--", "<?xml"] {
            XCTAssertFalse(out.contains(banned), "\(banned) survived:\n\(result.svg)")
        }
        // What is safe stays: the drawing, its text (escaped), and local references, prefixed.
        XCTAssertTrue(result.svg.contains("<circle fill=\"blue\" r=\"4\" style=\"stroke:black\"/>"), result.svg)
        XCTAssertTrue(result.svg.contains("&lt;script&gt;not markup&lt;/script&gt;"), result.svg)
        XCTAssertTrue(result.svg.contains("&lt;img src=x&gt;"), "CDATA is kept as escaped text:\n\(result.svg)")
        XCTAssertTrue(result.svg.contains("id=\"f1-ok\"") && result.svg.contains("xlink:href=\"#f1-ok\""), result.svg)
        XCTAssertTrue(result.svg.contains("<line"), result.svg)
        for dropped in ["<script>", "<style>", "<image>", "<foreignObject>", "<iframe>", "onload=", "onclick=", "mask="] {
            XCTAssertTrue(result.removed.contains(dropped), "\(dropped) not reported as removed: \(result.removed)")
        }
        // The output is well-formed XML again.
        XCTAssertTrue(XMLParser(data: Data(result.svg.utf8)).parse(), result.svg)
    }

    func testDocumentsWithADTDOrThatDoNotParseAreRefused() {
        let refused = [
            // Entity tricks: an internal entity smuggling markup, an external one, billion laughs.
            "<!DOCTYPE svg [<!ENTITY x \"&#60;script&#62;alert(1)&#60;/script&#62;\">]><svg xmlns=\"http://www.w3.org/2000/svg\">&x;</svg>",
            "<!DOCTYPE svg [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><svg><text>&x;</text></svg>",
            "<!doctype svg [<!entity a \"aaaaaaaaaa\"><!entity b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">]><svg>&b;</svg>",
            "<svg><text>&undefined;</text></svg>",
            "<svg><rect></svg>",
            "<svg onload=alert(1)>",
            "not xml at all",
            "",
            "<html><body><script>alert(1)</script></body></html>",
        ]
        for svg in refused {
            XCTAssertThrowsError(try SVGSanitizer.sanitize(svg), svg) { error in
                XCTAssertTrue(error is SVGSanitizer.Refused, "\(error)")
            }
        }
    }

    /// (element, attributes) in document order, and the text, of a parsed SVG.
    final class Outline: NSObject, XMLParserDelegate {
        var elements: [String] = []
        var text = ""
        func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
                    qualifiedName qName: String?, attributes attributeDict: [String: String] = [:]) {
            let attributes = attributeDict.filter { !$0.key.hasPrefix("xmlns") }.sorted { $0.key < $1.key }
            elements.append(elementName + attributes.map { " \($0.key)=\($0.value)" }.joined())
        }
        func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }

        static func of(_ svg: String) -> Outline {
            let outline = Outline()
            let parser = XMLParser(data: Data(svg.utf8))
            parser.delegate = outline
            XCTAssertTrue(parser.parse())
            return outline
        }
    }

    func testOurOwnPicturesSurviveUnchanged() throws {
        let line = SVGPlot.lineChart(title: "Accuracy <clean> & noisy", xLabel: "ε", yLabel: "accuracy",
                                     series: [.init(name: "resnet", x: [0, 1, 2], y: [0.9, 0.5, 0.1]),
                                              .init(name: "vit", x: [0, 1, 2], y: [0.8, 0.6, 0.3])])
        let heat = SVGPlot.heatMap(title: "CKA", values: [[1, 0.5], [0.5, 1]], rowLabels: ["a", "b"], columnLabels: ["c", "d"],
                                   xLabel: "B", yLabel: "A", colourLabel: "CKA")
        let bars = SVGPlot.barChart(title: "Bars", categories: ["x", "y"], series: [.init(name: "s", x: [0, 1], y: [1, 2])], yLabel: "v")
        let table = SVGPlot.table(title: "Table", rows: [["model", "acc"], ["resnet", "0.9"]])
        for svg in [line, heat, bars, table, SVGPlot.stack([line, heat])] {
            let result = try SVGSanitizer.sanitize(svg)
            XCTAssertTrue(result.removed.isEmpty, "nothing of ours is removed: \(result.removed)")
            let before = Outline.of(svg), after = Outline.of(result.svg)
            XCTAssertGreaterThan(before.elements.count, 3)
            XCTAssertEqual(after.elements, before.elements)
            XCTAssertEqual(after.text, before.text)
        }
    }

    func testTheReportEmbedsOnlyTheSanitisedCopyAndSkipsWhatItCannotRead() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("report-hostile-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/run", withIntermediateDirectories: true)
        for name in ["corruptions", "broken", "fifo"] {
            try "{\"analysis\": \"\(name)\", \"summary\": {\"x\": 1}, \"settings\": {\"model\": \"m\"}}"
                .write(toFile: root + "/run/\(name).json", atomically: true, encoding: .utf8)
        }
        try Self.hostile.write(toFile: root + "/run/corruptions.svg", atomically: true, encoding: .utf8)
        try "<svg><rect></svg>".write(toFile: root + "/run/broken.svg", atomically: true, encoding: .utf8)
        XCTAssertEqual(mkfifo(root + "/run/fifo.svg", 0o644), 0)   // reading it would block for ever

        let (entries, runs, claims) = try HTMLReport.collect([root])
        XCTAssertEqual(entries.count, 3)
        XCTAssertNil(entries.first { $0.analysis == "fifo" }?.svg, "a FIFO is not read")
        let html = HTMLReport.render(title: "T", entries: entries, runs: runs, claims: claims).lowercased()
        for banned in ["<script", "onload", "onclick", "evil.example", "javascript:", "<foreignobject", "<iframe", "<image"] {
            XCTAssertFalse(html.contains(banned), "\(banned) reached the report")
        }
        XCTAssertTrue(html.contains("picture left out"), "the broken picture is replaced by a note")
        XCTAssertTrue(html.contains("<circle"), "the hostile picture's safe part is kept")
    }
}
