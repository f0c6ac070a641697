import Foundation

/// Any JSON value: model configs as the fixtures and benchmark cases give
/// them, before they are decoded into a family's typed config.
public enum JSONValue: Codable, Equatable, Sendable {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .number(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var double: Double? { if case .number(let d) = self { return d }; return nil }
    public var int: Int? { if case .number(let d) = self, d == d.rounded() { return Int(d) }; return nil }
    public var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var array: [JSONValue]? { if case .array(let a) = self { return a }; return nil }
    public var object: [String: JSONValue]? { if case .object(let o) = self { return o }; return nil }

    /// A typed config as reference arguments: its properties under the snake_case of their Swift
    /// names (the inverse of `decode`), for variants written with a config type's helpers.
    public init<T: Encodable>(encoding config: T) {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        do { self = try JSONDecoder().decode(JSONValue.self, from: encoder.encode(config)) } catch {
            // Only non-finite numbers fail to encode, and no config has them.
            fatalError("JSONValue(encoding: \(T.self)): \(error)")
        }
    }

    /// Decodes this value into a typed config whose Swift property names are
    /// the camelCase of the reference's snake_case argument names.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let data = try JSONEncoder().encode(self)
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        do { return try decoder.decode(T.self, from: data) } catch let error as DecodingError {
            throw ModelError(JSONValue.describe(error))
        }
    }

    /// A decoding error as one line naming the field (under the reference's snake_case name) and what was wrong.
    static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [CodingKey]) -> String {
            let names = keys.map { key -> String in
                if let i = key.intValue { return "[\(i)]" }
                // camelCase back to the reference's snake_case.
                return "." + key.stringValue.reduce(into: "") { s, c in s += c.isUppercase ? "_" + c.lowercased() : String(c) }
            }
            let text = names.joined()
            return text.hasPrefix(".") ? String(text.dropFirst()) : text
        }
        switch error {
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            return "config field \(path(context.codingPath)): expected \(type) (\(context.debugDescription))"
        case .keyNotFound(let key, let context):
            return "config field \(path(context.codingPath + [key])) is required"
        case .dataCorrupted(let context):
            return "config field \(path(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            return "config: \(error)"
        }
    }
}

/// A constructor argument that is not plain data in the reference (a block
/// class, a layer type, a partial function), tagged by the fixtures as
/// `{"$type": "callable" | "instance" | "partial", "name": "dotted.name", "kwargs": {...}}`.
public struct ReferenceCallable: Codable, Equatable, Sendable {
    public let type: String
    public let name: String
    public let kwargs: [String: JSONValue]?

    enum CodingKeys: String, CodingKey { case type = "$type", name, kwargs }

    /// The last component of the dotted name ("BasicBlock", "GELU").
    public var shortName: String { String(name.split(separator: ".").last ?? "") }
}

/// Literals, so configs can be written in Swift: `["layers": [2, 2, 2, 2], "block": .callable("…")]`.
extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }

    /// A reference class or function passed uncalled: `{"$type": "callable", "name": …}`.
    public static func callable(_ name: String) -> JSONValue { ["$type": "callable", "name": .string(name)] }
    /// A reference object built with `kwargs`: `{"$type": "instance", "name": …, "kwargs": …}`.
    public static func instance(_ name: String, _ kwargs: [String: JSONValue]) -> JSONValue {
        ["$type": "instance", "name": .string(name), "kwargs": .object(kwargs)]
    }
    /// `functools.partial(name, **kwargs)`: `{"$type": "partial", "name": …, "kwargs": …}`.
    public static func partial(_ name: String, _ kwargs: [String: JSONValue]) -> JSONValue {
        ["$type": "partial", "name": .string(name), "kwargs": .object(kwargs)]
    }
}
