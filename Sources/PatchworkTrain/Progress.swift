import Foundation

/// A progress line: a live bar with rate and ETA on a terminal, plain
/// periodic lines otherwise (logs, CI).
public final class ProgressReporter {
    let isTerminal = isatty(STDOUT_FILENO) != 0
    let interval: Double
    var lastPrint = Date.distantPast
    var lastLength = 0

    public init(plainInterval: Double = 10) { interval = plainInterval }

    /// Updates the line for `done` of `total` units with a rate in images/s.
    public func update(label: String, done: Int, total: Int, imagesPerSecond: Double, etaSeconds: Double, detail: String) {
        let now = Date()
        if isTerminal {
            guard now.timeIntervalSince(lastPrint) > 0.1 || done == total else { return }
            let width = 24
            let filled = total > 0 ? min(width, width * done / total) : 0
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            let line = "\(label) \(bar) \(done)/\(total)  \(detail)  \(Int(imagesPerSecond)) img/s  ETA \(ProgressReporter.duration(etaSeconds))"
            let pad = String(repeating: " ", count: max(0, lastLength - line.count))
            FileHandle.standardOutput.write(Data(("\r" + line + pad).utf8))
            lastLength = line.count
        } else {
            guard now.timeIntervalSince(lastPrint) >= interval else { return }
            print("\(label) \(done)/\(total)  \(detail)  \(Int(imagesPerSecond)) img/s  ETA \(ProgressReporter.duration(etaSeconds))")
            fflush(stdout)
        }
        lastPrint = now
    }

    /// Ends the live line so the next print starts on a fresh one.
    public func finishLine() {
        if isTerminal && lastLength > 0 { FileHandle.standardOutput.write(Data("\n".utf8)) }
        lastLength = 0
        lastPrint = .distantPast
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite && seconds >= 0 else { return "--:--" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
