import ArgumentParser
import Foundation
import Patchwork
import PatchworkAnalysis

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Gather the analyses in run folders into one self-contained HTML page.")
    @Argument(help: "Folders holding analysis results (and their subfolders).") var folders: [String]
    @Option(help: "The HTML file to write.") var out: String = "report.html"
    @Option(help: "The page title.") var title: String = "Patchwork: CNN vs ViT vs hybrids"

    func validate() throws {
        try OptionCheck.outputFile(out, "--out")
    }

    func run() throws {
        let (entries, runs, claims) = try HTMLReport.collect(folders)
        let html = HTMLReport.render(title: title, entries: entries, runs: runs, claims: claims)
        try AtomicFile.write(Data(html.utf8), to: out)
        print("wrote \(out): \(entries.count) analysis results, \(runs.count) runs, \(claims.count) claims")
    }
}
