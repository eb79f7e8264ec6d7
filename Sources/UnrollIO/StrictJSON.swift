import Foundation

/// A JSON value read strictly: integers are kept apart from other numbers (so `true` or `2.0` is not
/// a dimension), an object may not repeat a key, and nesting is bounded, as the safetensors
/// reference (serde) reads its header.
enum StrictJSON: Equatable {
    case object([(key: String, value: StrictJSON)])
    case array([StrictJSON])
    case string(String)
    case integer(Int)
    case number(Double)
    case bool(Bool)
    case null

    static func == (a: StrictJSON, b: StrictJSON) -> Bool { String(describing: a) == String(describing: b) }

    struct Failure: Error { var message: String }

    static let maxDepth = 64

    /// Parses one JSON value filling `bytes` (whitespace around it allowed).
    static func parse(_ bytes: [UInt8]) throws -> StrictJSON {
        var p = Parser(bytes: bytes)
        let value = try p.value(depth: 0)
        p.skipSpace()
        guard p.i == bytes.count else { throw Failure(message: "text after the JSON value at byte \(p.i)") }
        return value
    }

    private struct Parser {
        let bytes: [UInt8]
        var i = 0

        mutating func skipSpace() {
            while i < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { i += 1 }
        }

        mutating func expect(_ c: UInt8) throws {
            skipSpace()
            guard i < bytes.count, bytes[i] == c else { throw Failure(message: "expected '\(Character(Unicode.Scalar(c)))' at byte \(i)") }
            i += 1
        }

        mutating func value(depth: Int) throws -> StrictJSON {
            skipSpace()
            guard i < bytes.count else { throw Failure(message: "unexpected end") }
            switch bytes[i] {
            case UInt8(ascii: "{"):
                guard depth < maxDepth else { throw Failure(message: "nesting deeper than \(maxDepth) levels") }
                i += 1
                var entries: [(key: String, value: StrictJSON)] = []
                var seen = Set<String>()
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(entries) }
                while true {
                    skipSpace()
                    guard case let .string(key) = try value(depth: depth + 1) else { throw Failure(message: "an object key must be a string (byte \(i))") }
                    guard seen.insert(key).inserted else { throw Failure(message: "the key '\(key)' appears twice") }
                    try expect(UInt8(ascii: ":"))
                    entries.append((key, try value(depth: depth + 1)))
                    skipSpace()
                    if i < bytes.count, bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    try expect(UInt8(ascii: "}"))
                    return .object(entries)
                }
            case UInt8(ascii: "["):
                guard depth < maxDepth else { throw Failure(message: "nesting deeper than \(maxDepth) levels") }
                i += 1
                var items: [StrictJSON] = []
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                while true {
                    items.append(try value(depth: depth + 1))
                    skipSpace()
                    if i < bytes.count, bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    try expect(UInt8(ascii: "]"))
                    return .array(items)
                }
            case UInt8(ascii: "\""):
                return .string(try string())
            case UInt8(ascii: "t"): try word("true"); return .bool(true)
            case UInt8(ascii: "f"): try word("false"); return .bool(false)
            case UInt8(ascii: "n"): try word("null"); return .null
            default:
                return try number()
            }
        }

        mutating func word(_ w: String) throws {
            let u = Array(w.utf8)
            guard i + u.count <= bytes.count, Array(bytes[i..<(i + u.count)]) == u else { throw Failure(message: "invalid literal at byte \(i)") }
            i += u.count
        }

        mutating func number() throws -> StrictJSON {
            let start = i
            if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
            var integral = true
            while i < bytes.count {
                let c = bytes[i]
                if c >= 0x30 && c <= 0x39 { i += 1; continue }
                if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") || c == UInt8(ascii: "+")
                    || (c == UInt8(ascii: "-") && i > start) { integral = false; i += 1; continue }
                break
            }
            let text = String(decoding: bytes[start..<i], as: UTF8.self)
            guard !text.isEmpty, text != "-" else { throw Failure(message: "invalid value at byte \(start)") }
            if integral, let v = Int(text) { return .integer(v) }
            guard let d = Double(text), d.isFinite else { throw Failure(message: "invalid number '\(text)'") }
            return .number(d)
        }

        mutating func string() throws -> String {
            i += 1
            var out: [UInt8] = []
            while i < bytes.count {
                let c = bytes[i]
                if c == UInt8(ascii: "\"") { i += 1; return String(decoding: out, as: UTF8.self) }
                guard c >= 0x20 else { throw Failure(message: "a control byte inside a string at byte \(i)") }
                if c == UInt8(ascii: "\\") {
                    guard i + 1 < bytes.count else { break }
                    let e = bytes[i + 1]
                    i += 2
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        guard i + 4 <= bytes.count, var code = UInt32(String(decoding: bytes[i..<(i + 4)], as: UTF8.self), radix: 16) else {
                            throw Failure(message: "bad \\u escape at byte \(i)")
                        }
                        i += 4
                        // A surrogate pair.
                        if code >= 0xD800 && code < 0xDC00, i + 6 <= bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u"),
                           let low = UInt32(String(decoding: bytes[(i + 2)..<(i + 6)], as: UTF8.self), radix: 16), low >= 0xDC00, low < 0xE000 {
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                            i += 6
                        }
                        guard let scalar = Unicode.Scalar(code) else { throw Failure(message: "bad \\u escape") }
                        out += Array(String(Character(scalar)).utf8)
                    default: throw Failure(message: "bad escape at byte \(i - 1)")
                    }
                    continue
                }
                out.append(c)
                i += 1
            }
            throw Failure(message: "an unterminated string")
        }
    }
}
