import Foundation

/// Where the real data sets (digits, Fashion-MNIST, natural images) live: `$UNROLL_DATA` when set,
/// otherwise the `shared/data` folder beside the package — looked up from the working directory
/// (`../shared/data`, when run from the package folder), then beside the package the executable was
/// built in (the first folder above it holding `Package.swift`).
enum SharedData {
    static var folder: String {
        if let env = ProcessInfo.processInfo.environment["UNROLL_DATA"], !env.isEmpty { return env }
        var candidates = [URL(fileURLWithPath: "../shared/data").standardizedFileURL.path]
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        while dir.path != "/" {
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) {
                candidates.append(dir.appendingPathComponent("../shared/data").standardizedFileURL.path)
                break
            }
            dir = dir.deletingLastPathComponent()
        }
        return candidates.first { FileManager.default.fileExists(atPath: $0) } ?? candidates[0]
    }
}
