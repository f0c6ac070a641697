import Foundation
import Patchwork

/// Bad analysis input (settings, data layout, weights): says what was wrong.
public struct AnalysisError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// What every analysis writes: `<name>.json` holding `{summary, settings, …data}`
/// and `<name>.svg`, both written atomically (temporary file + rename) into an
/// output folder, which is created when missing.
///
/// JSON keys are snake_case (Swift camelCase properties are converted), keys
/// are sorted and non-finite numbers are written as the strings "nan",
/// "inf", "-inf".
public enum AnalysisOutput {
    public static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        e.keyEncodingStrategy = .convertToSnakeCase
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }

    /// The decoder for what `encoder()` writes.
    public static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }

    /// Writes `<directory>/<name>.json` and, when given, `<directory>/<name>.svg`;
    /// returns their paths.
    @discardableResult
    public static func write<R: Encodable>(_ result: R, name: String, svg: String?, to directory: String) throws -> [String] {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw AnalysisError("cannot create the output folder \(directory): \(error.localizedDescription)")
        }
        let json = try encoder().encode(result)
        let jsonPath = (directory as NSString).appendingPathComponent(name + ".json")
        try AtomicFile.write(json + Data("\n".utf8), to: jsonPath)
        var paths = [jsonPath]
        if let svg {
            let svgPath = (directory as NSString).appendingPathComponent(name + ".svg")
            try AtomicFile.write(Data(svg.utf8), to: svgPath)
            paths.append(svgPath)
        }
        return paths
    }
}

/// The envelope of every analysis file: the headline numbers, the settings
/// that reproduce them, and the analysis' own data.
public struct AnalysisReport<Summary: Encodable, Settings: Encodable, Data: Encodable>: Encodable {
    public var analysis: String
    public var summary: Summary
    public var settings: Settings
    public var data: Data

    public init(analysis: String, summary: Summary, settings: Settings, data: Data) {
        self.analysis = analysis; self.summary = summary; self.settings = settings; self.data = data
    }
}

extension AnalysisReport {
    /// Writes `<directory>/<analysis>.json` and, when given, `<directory>/<analysis>.svg`
    /// (the file name is the analysis' name, which the claims read it back by); returns their paths.
    @discardableResult
    public func write(svg: String?, to directory: String) throws -> [String] {
        try AnalysisOutput.write(self, name: analysis, svg: svg, to: directory)
    }
}

/// The headline numbers of an analysis: `summary` in `<analysis>.json`, written
/// and read back (by the claims) as this one type.
public protocol AnalysisSummary: Codable {
    /// The analysis' name: its `analysis` key and its file's name.
    static var analysis: String { get }
}

/// Where the model, weights and data of a run came from (part of every `settings`).
public struct RunSource: Codable, Sendable {
    public var model: String
    public var weights: String
    public var data: String
    public var imageSize: Int
    public var normalization: String
    public var seed: UInt64

    public init(model: String, weights: String, data: String, imageSize: Int, normalization: String, seed: UInt64) {
        self.model = model; self.weights = weights; self.data = data; self.imageSize = imageSize
        self.normalization = normalization; self.seed = seed
    }
}
