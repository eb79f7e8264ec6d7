import Foundation

/// A user-facing failure of a CLI command. ArgumentParser prints it as `Error: <message>` and exits
/// non-zero; unlike `ValidationError` it adds no usage text, so every error stays one line.
struct CLIError: Error, CustomStringConvertible, LocalizedError {
    let message: String

    init(_ message: String) { self.message = message }

    var description: String { message.replacingOccurrences(of: "\n", with: " ") }
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

/// An error's text on one line (LocalizedError's description first, then `description`).
func oneLine(_ error: Error) -> String {
    let text: String
    if let e = error as? LocalizedError, let d = e.errorDescription {
        text = d
    } else {
        text = String(describing: error)
    }
    return text.replacingOccurrences(of: "\n", with: " ")
}
