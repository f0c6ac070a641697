import Foundation
import Patchwork

/// Exclusive use of a run folder (`--out`) by one training process.
///
/// An advisory `flock` on `<folder>/.lock`, which holds the owner's PID for the
/// message a second run prints. The kernel drops the lock when the descriptor is
/// closed or the process dies in any way (kill -9 included), so a lock is never
/// left stale and the file itself is never removed. `flock` belongs to the open
/// file description, so two `RunLock`s on one folder exclude each other even
/// inside one process.
public final class RunLock {
    public let folder: String
    public var path: String { folder + "/.lock" }
    private var descriptor: Int32

    /// Creates `folder` when missing and locks it, or throws at once when another run holds it.
    public init(folder: String) throws {
        self.folder = folder
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), !isFolder.boolValue {
            throw TrainingError("the run folder \(folder) is a file, not a folder")
        }
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw TrainingError("cannot create the run folder \(folder): \(error.localizedDescription)")
        }
        let lockPath = folder + "/.lock"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw TrainingError("cannot open the run folder's lock \(lockPath): \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno
            close(fd)
            if reason == EWOULDBLOCK {
                let holder = FileManager.default.contents(atPath: lockPath)
                    .map { String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
                let who = Int(holder).map { " (process \($0))" } ?? ""
                throw TrainingError("\(folder) is in use by another training run\(who); wait for it to finish or choose another --out")
            }
            throw TrainingError("cannot lock the run folder \(folder): \(String(cString: strerror(reason)))")
        }
        descriptor = fd
        let pid = Array("\(getpid())\n".utf8)
        if ftruncate(fd, 0) == 0 { _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) } }
    }

    /// Gives the folder up (also done when the lock is deallocated, or by the kernel when the process ends).
    public func release() {
        guard descriptor >= 0 else { return }
        close(descriptor)
        descriptor = -1
    }

    deinit { release() }
}

/// The JSON a training run writes (summary.json, metrics.jsonl): snake_case keys,
/// sorted. A non-finite number is written as `null` with a warning naming the
/// file and the key (JSON has no NaN), and an encoding error names the file.
enum RunJSON {
    /// Placeholders the encoder writes for non-finite numbers, replaced by `null` afterwards.
    static let placeholders = ["nan": "patchwork:non-finite:nan", "inf": "patchwork:non-finite:inf",
                               "-inf": "patchwork:non-finite:-inf"]

    static func encode<T: Encodable>(_ value: T, file: String, pretty: Bool) throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys] : [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: placeholders["inf"]!, negativeInfinity: placeholders["-inf"]!, nan: placeholders["nan"]!)
        let data: Data
        do { data = try encoder.encode(value) } catch {
            throw TrainingError("cannot write \(file): \(error)")
        }
        var text = String(decoding: data, as: UTF8.self)
        guard placeholders.values.contains(where: { text.contains($0) }) else { return data }
        var found: [String] = []
        if let object = try? JSONSerialization.jsonObject(with: data) { nonFinite(in: object, path: "", into: &found) }
        FileHandle.standardError.write(Data("warning: \(file): \(found.joined(separator: ", ")) not finite; written as null\n".utf8))
        for placeholder in placeholders.values { text = text.replacingOccurrences(of: "\"\(placeholder)\"", with: "null") }
        return Data(text.utf8)
    }

    /// Writes `value` to `path` atomically, pretty-printed.
    static func write<T: Encodable>(_ value: T, to path: String) throws {
        try AtomicFile.write(try encode(value, file: path, pretty: true) + Data("\n".utf8), to: path)
    }

    /// "key = nan" for every placeholder in a decoded JSON tree.
    private static func nonFinite(in object: Any, path: String, into found: inout [String]) {
        switch object {
        case let dictionary as [String: Any]:
            for key in dictionary.keys.sorted() {
                nonFinite(in: dictionary[key]!, path: path.isEmpty ? key : "\(path).\(key)", into: &found)
            }
        case let array as [Any]:
            for (i, element) in array.enumerated() { nonFinite(in: element, path: "\(path)[\(i)]", into: &found) }
        case let string as String:
            if let name = placeholders.first(where: { $0.value == string })?.key { found.append("\(path) = \(name)") }
        default: break
        }
    }
}

/// One line of metrics.jsonl: a finished epoch.
struct EpochRecord: Codable {
    var epoch: Int
    var step: Int
    var lr: Double
    var trainLoss: Double
    var trainTop1: Double
    var testLoss: Double
    var testTop1: Double
    var testTop5: Double
    var seconds: Double
    var imagesPerSecond: Double
}

/// metrics.jsonl: one JSON line per finished epoch. The file is small, so every
/// change rewrites it whole and atomically: a kill never leaves a torn line.
struct MetricsLog {
    let path: String

    /// The lines now in the file, with their epoch (lines without one are dropped with a warning).
    func lines() throws -> [(epoch: Int, text: String)] {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw TrainingError("cannot read \(path): \(error.localizedDescription)")
        }
        var result: [(epoch: Int, text: String)] = []
        for (n, line) in String(decoding: data, as: UTF8.self).split(separator: "\n").enumerated() {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let epoch = object["epoch"] as? Int else {
                FileHandle.standardError.write(Data("warning: \(path): line \(n + 1) is not an epoch's metrics; dropped\n".utf8))
                continue
            }
            result.append((epoch, String(line)))
        }
        return result
    }

    /// Starts the log afresh.
    func reset() throws {
        guard FileManager.default.fileExists(atPath: path) else { return }
        do { try FileManager.default.removeItem(atPath: path) } catch {
            throw TrainingError("cannot remove the old \(path): \(error.localizedDescription)")
        }
    }

    /// Keeps the lines of epochs 1...`epochs` (those a checkpoint has done), each once (the last line of each epoch wins).
    func truncate(toEpochs epochs: Int) throws {
        let all = try lines()
        var kept: [Int: String] = [:]
        for line in all where line.epoch >= 1 && line.epoch <= epochs { kept[line.epoch] = line.text }
        let text = kept.keys.sorted().map { kept[$0]! + "\n" }.joined()
        guard text != all.map({ $0.text + "\n" }).joined() else { return }
        try AtomicFile.write(Data(text.utf8), to: path)
    }

    func append(_ record: EpochRecord) throws {
        let line = try RunJSON.encode(record, file: path, pretty: false)
        let old = try lines().map { Data(($0.text + "\n").utf8) }.reduce(Data(), +)
        try AtomicFile.write(old + line + Data("\n".utf8), to: path)
    }
}
