import ArgumentParser
import Foundation
import PatchworkModels

/// The checks of option values that the commands' `validate()` run before anything is read
/// or built. Each failure is a `ValidationError` naming the option and the value given.
enum OptionCheck {
    /// An integer option of at least `minimum` (and at most `maximum`).
    static func integer(_ value: Int, _ option: String, atLeast minimum: Int, atMost maximum: Int = Int.max) throws {
        guard value >= minimum else { throw ValidationError("\(option) must be at least \(minimum), got \(value)") }
        guard value <= maximum else { throw ValidationError("\(option) must be at most \(maximum), got \(value)") }
    }

    /// A finite number above 0 (a learning rate, a norm, a duration).
    static func positive<F: BinaryFloatingPoint>(_ value: F, _ option: String) throws {
        guard value.isFinite, value > 0 else { throw ValidationError("\(option) must be a finite number above 0, got \(value)") }
    }

    /// A finite number of at least 0 (a weight decay, a mixup alpha, warm-up epochs).
    static func nonNegative<F: BinaryFloatingPoint>(_ value: F, _ option: String) throws {
        guard value.isFinite, value >= 0 else { throw ValidationError("\(option) must be a finite number ≥ 0, got \(value)") }
    }

    /// A finite number from `low` to `high` (each end itself only when it is included).
    static func between<F: BinaryFloatingPoint>(_ value: F, _ option: String, _ low: F, _ high: F, lowIncluded: Bool = true,
                                                highIncluded: Bool) throws {
        guard value.isFinite, lowIncluded ? value >= low : value > low, highIncluded ? value <= high : value < high else {
            throw ValidationError("\(option) must be in \(lowIncluded ? "[" : "(")\(low), \(high)\(highIncluded ? "]" : ")"), got \(value)")
        }
    }

    /// One of `choices`.
    static func oneOf(_ value: String, _ option: String, _ choices: [String]) throws {
        guard choices.contains(value) else {
            throw ValidationError("\(option) must be one of \(choices.joined(separator: ", ")), got \(value)")
        }
    }

    /// A registered model variant.
    static func model(_ name: String, _ option: String = "--model") throws {
        do { _ = try Models.variant(name) } catch { throw ValidationError("\(option): \(error)") }
    }

    /// An image side the commands resize to, for `model`: 1 ... 4096 (a batch of 64 such RGB images
    /// is already 12 GB), and the variant's own side unless its family runs on any side.
    static func imageSize(_ value: Int?, model: String, _ option: String = "--img-size") throws {
        guard let value else { return }
        try integer(value, option, atLeast: 1, atMost: 4096)
        let variant = try Models.variant(model)
        guard value == variant.inputSize || Models.anyInputSizeFamilies.contains(variant.family) else {
            throw ValidationError("\(option) \(value): \(model) is built for \(variant.inputSize)×\(variant.inputSize) inputs "
                                  + "(a \(variant.family) model's position embeddings, attention biases or windows fix the side)")
        }
    }

    /// A folder the command will create (with its parents) or write into: it is a writable
    /// folder, or the nearest existing folder above it is writable. Nothing is created here.
    static func outputFolder(_ path: String, _ option: String = "--out") throws {
        guard !path.isEmpty else { throw ValidationError("\(option) must not be empty") }
        let fm = FileManager.default
        var isFolder: ObjCBool = false
        if fm.fileExists(atPath: path, isDirectory: &isFolder) {
            guard isFolder.boolValue else { throw ValidationError("\(option) \(path) is a file, not a folder") }
            guard fm.isWritableFile(atPath: path) else { throw ValidationError("\(option) \(path): the folder is not writable") }
            return
        }
        try creatable(path, option)
    }

    /// A file the command will write (through a temporary file beside it): not a folder, and its
    /// folder exists and is writable, or can be created.
    static func outputFile(_ path: String, _ option: String) throws {
        guard !path.isEmpty else { throw ValidationError("\(option) must not be empty") }
        let fm = FileManager.default
        var isFolder: ObjCBool = false
        if fm.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue {
            throw ValidationError("\(option) \(path) is a folder, not a file")
        }
        let folder = (absolute(path) as NSString).deletingLastPathComponent
        if fm.fileExists(atPath: folder, isDirectory: &isFolder) {
            guard isFolder.boolValue else { throw ValidationError("\(option) \(path): \(folder) is a file, not a folder") }
            guard fm.isWritableFile(atPath: folder) else { throw ValidationError("\(option) \(path): the folder \(folder) is not writable") }
            return
        }
        try creatable(folder, option, for: path)
    }

    /// `path` does not exist; the nearest existing path above it must be a writable folder.
    private static func creatable(_ path: String, _ option: String, for named: String? = nil) throws {
        let fm = FileManager.default
        var ancestor = absolute(path)
        var isFolder: ObjCBool = false
        repeat {
            ancestor = (ancestor as NSString).deletingLastPathComponent
        } while !fm.fileExists(atPath: ancestor, isDirectory: &isFolder) && ancestor != "/"
        let shown = named ?? path
        guard isFolder.boolValue else {
            throw ValidationError("\(option) \(shown) cannot be created: \(ancestor) is a file, not a folder")
        }
        guard fm.isWritableFile(atPath: ancestor) else {
            throw ValidationError("\(option) \(shown) cannot be created: \(ancestor) is not writable")
        }
    }

    private static func absolute(_ path: String) -> String {
        let full = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return (full as NSString).standardizingPath
    }
}
