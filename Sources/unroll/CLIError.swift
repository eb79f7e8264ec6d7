import Foundation
import UnrollCore

/// A user-facing failure of a CLI command. ArgumentParser prints it as `Error: <message>` and exits
/// non-zero; unlike `ValidationError` it adds no usage text, so every error stays one line.
struct CLIError: Error, CustomStringConvertible, LocalizedError {
    let message: String

    init(_ message: String) { self.message = message }

    /// One line with control bytes shown as `\x1b` (a file's bytes must not drive the terminal).
    var description: String { message.replacingOccurrences(of: "\n", with: " ").escapingControlCharacters }
    var errorDescription: String? { description }
}

/// Runs `body`, turning any error into a one-line `CLIError` prefixed with `context`
/// (e.g. "--data x.npy: …"), so the user sees which input was at fault.
func inContext<T>(_ context: String, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let e as CLIError {
        throw e
    } catch {
        throw CLIError("\(context): \(oneLine(error))")
    }
}

/// An error's text on one line, in plain words: a file-system error says what failed on which path
/// (not Foundation's error-domain dump), others their description.
func oneLine(_ error: Error) -> String {
    let ns = error as NSError
    if ns.domain == NSCocoaErrorDomain {
        let path = (ns.userInfo[NSFilePathErrorKey] as? String) ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path
        var reason = ns.localizedFailureReason ?? ns.localizedDescription
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            reason = String(cString: strerror(Int32(underlying.code)))
        }
        return (path.map { "\($0): " } ?? "") + reason
    }
    let text: String
    if let e = error as? LocalizedError, let d = e.errorDescription {
        text = d
    } else {
        text = String(describing: error)
    }
    return text.replacingOccurrences(of: "\n", with: " ")
}
