import Foundation

/// How many bytes a decoder may produce from one file (gunzip, a PNG's pixels, an `.npz`'s members):
/// 1 GiB unless `UNROLL_MAX_DECODED_BYTES` says otherwise, so a small hostile file cannot make a
/// reader allocate gigabytes. Sizes are checked before anything is allocated.
public enum DecodeLimit {
    public static let environmentVariable = "UNROLL_MAX_DECODED_BYTES"
    public static let defaultBytes = 1 << 30

    /// A limit for the work inside `DecodeLimit.$override.withValue(n) { … }`, over the environment's. It is
    /// scoped, not process-wide, so one computation (a test, say) can lower it while others run beside it.
    @TaskLocal public static var override: Int?

    /// The limit in force: the scoped override, else the environment's value when it is a positive integer.
    public static var bytes: Int {
        if let override { return override }
        if let text = ProcessInfo.processInfo.environment[environmentVariable], let v = Int(text), v > 0 { return v }
        return defaultBytes
    }

    /// Throws when `count` bytes of `what` exceed `limit`, naming the way to raise it.
    static func check(_ count: Int, _ what: String, limit: Int = bytes) throws {
        guard count <= limit else {
            throw UnrollIOError(.unsupported, "\(what) would decode to \(count) bytes, more than the limit of \(limit) (raise it with \(environmentVariable))")
        }
    }
}
