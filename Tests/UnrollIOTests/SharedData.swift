import Foundation
import Testing

/// The project's real data sets: `$UNROLL_DATA` when set, else `shared/data` beside the package
/// (`<package>/../shared/data`, where CI and the project's machines keep it).
let sharedData: String = {
    if let env = ProcessInfo.processInfo.environment["UNROLL_DATA"], !env.isEmpty { return env }
    return URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../../shared/data").standardizedFileURL.path
}()

extension Trait where Self == ConditionTrait {
    /// Tests that read the project's real data: reported as skipped when `sharedData` is missing.
    static var needsSharedData: Self {
        .enabled(if: FileManager.default.fileExists(atPath: sharedData), "needs ../shared/data beside the package or $UNROLL_DATA")
    }
}
