/// Bad analysis input (settings, data layout, weights): says what was wrong.
/// (Temporary: the analyses branch defines this in AnalysisOutput.swift.)
public struct AnalysisError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
