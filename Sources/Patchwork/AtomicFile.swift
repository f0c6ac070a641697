import Foundation

/// A file that could not be written or moved into place.
public struct AtomicFileError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "\(path): \(reason)" }
}

/// Writes files atomically: to a temporary file beside the target, then renamed
/// over it, so that a crash or a full disk never leaves a half-written
/// checkpoint, report or image where a complete one was.
public enum AtomicFile {
    /// Writes `data` to `path` atomically.
    public static func write(_ data: Data, to path: String) throws {
        try write(to: path) { temporary in
            // Written in place, not with FileManager.createFile or `.atomic`: those write to a
            // temporary of their own (`.dat.nosync…`), which a kill would leave behind unnamed.
            do { try data.write(to: URL(fileURLWithPath: temporary)) } catch {
                throw AtomicFileError(path: path, reason: "cannot write (is the folder writable, is there space?): \(error.localizedDescription)")
            }
        }
    }

    /// Lets `produce` write the file at a temporary path, then renames it to `path`.
    /// The temporary file is removed if either step fails.
    public static func write(to path: String, _ produce: (_ temporaryPath: String) throws -> Void) throws {
        let url = URL(fileURLWithPath: path)
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent)\(temporaryMarker)\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        do {
            try produce(temporary)
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: temporary)
            throw AtomicFileError(path: path, reason: "cannot move the written file into place: \(reason)")
        }
    }

    /// What a temporary file's name carries: `.<name>.tmp-<pid>-<random>`.
    static let temporaryMarker = ".tmp-"

    /// Whether `name` is one of this helper's temporary files (`.<name>.tmp-<pid>-<random>`), or one
    /// that Foundation's own atomic writes leave (`.dat.nosync<hex>.<random>`).
    public static func isTemporaryName(_ name: String) -> Bool {
        if name.hasPrefix(".dat.nosync") { return true }
        guard name.hasPrefix("."), let marker = name.range(of: temporaryMarker, options: .backwards) else { return false }
        let parts = name[marker.upperBound...].split(separator: "-", omittingEmptySubsequences: false)
        return parts.count == 2 && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }
    }

    /// Removes the temporary files a killed writer left in `folder` and returns their names.
    /// Only safe while no other process writes there (the training run holds the folder's lock).
    @discardableResult
    public static func removeStaleTemporaries(in folder: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return names.filter(isTemporaryName).sorted().filter { name in
            (try? FileManager.default.removeItem(atPath: (folder as NSString).appendingPathComponent(name))) != nil
        }
    }
}
