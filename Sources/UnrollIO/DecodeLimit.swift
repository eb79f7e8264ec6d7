import Foundation

/// How many bytes a decoder may produce from one file (gunzip, a PNG's pixels, an `.npz`'s members):
/// 1 GiB unless `UNROLL_MAX_DECODED_BYTES` says otherwise, so a small hostile file cannot make a
/// reader allocate gigabytes. Sizes are checked before anything is allocated.
public enum DecodeLimit {
    public static let environmentVariable = "UNROLL_MAX_DECODED_BYTES"
    public static let defaultBytes = 1 << 30

    /// The limit in force (the environment's value when it is a positive integer).
    public static var bytes: Int {
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
