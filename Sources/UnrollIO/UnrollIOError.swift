import Foundation
import UnrollCore

/// Every failure of reading or writing a file in `UnrollIO`.
///
/// `description` is one line that names the file and says what was wrong, so the CLI can print
/// it as is. Decoders that work on bytes in memory throw with an empty `file`; the functions that
/// take a path fill it in (see `UnrollIOError.inFile`).
public struct UnrollIOError: Error, CustomStringConvertible, LocalizedError, Equatable, Sendable {
    public enum Kind: String, Sendable {
        case notFound          // no such file
        case unreadable        // exists but cannot be read (directory, permissions, I/O error)
        case unwritable        // cannot create or replace the output file
        case truncated         // the file ends before the data its header announces
        case badMagic          // not the format the extension or caller expected
        case unsupported       // a valid file using a feature this reader does not handle
        case malformed         // the header or structure contradicts itself or the format
        case corrupt           // bad checksum or compressed stream
    }

    public var kind: Kind
    public var file: String
    public var detail: String

    public init(_ kind: Kind, file: String = "", _ detail: String) {
        self.kind = kind
        self.file = file
        self.detail = detail
    }

    /// One line; control bytes from a file (in a name, a header, a field) are shown as `\x1b`.
    public var description: String {
        let oneLine = detail.replacingOccurrences(of: "\n", with: " ")
        return (file.isEmpty ? oneLine : "\(file): \(oneLine)").escapingControlCharacters
    }

    public var errorDescription: String? { description }

    /// The same error, naming `path` unless it already names a file.
    public func inFile(_ path: String) -> UnrollIOError {
        var e = self
        if e.file.isEmpty { e.file = path }
        return e
    }
}

/// Runs `body`, tagging any `UnrollIOError` it throws with `path`.
@inline(__always)
func naming<T>(_ path: String, _ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as UnrollIOError { throw e.inFile(path) }
}
