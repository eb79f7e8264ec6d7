import Foundation

/// The project's real data sets: `$UNROLL_DATA` when set, else `shared/data` beside the package
/// (`<package>/../shared/data`, where CI and the project's machines keep it).
let sharedData: String = {
    if let env = ProcessInfo.processInfo.environment["UNROLL_DATA"], !env.isEmpty { return env }
    return URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../../shared/data").standardizedFileURL.path
}()
