import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How much more memory this process may take, checked before a large allocation, so that a file
/// too large for a memory cap (`ulimit -v`) or for the machine gives a clear error instead of the
/// Swift runtime's abort on a failed allocation.
public enum MemoryBudget {
    /// Bytes this process can still allocate: its address-space limit (RLIMIT_AS) minus what it has
    /// mapped, and at most the machine's available memory and swap; nil when neither is known.
    public static func available() -> (bytes: Int, reason: String)? {
        var best: (bytes: Int, reason: String)?
        #if os(Linux)
        var limit = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max,
           let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
           let pages = statm.split(separator: " ").first.flatMap({ Int($0) }) {
            let mapped = pages * Int(sysconf(Int32(_SC_PAGESIZE)))
            best = (max(0, Int(limit.rlim_cur) - mapped), "the address-space limit (ulimit -v) of \(Int(limit.rlim_cur) / 1024) kB")
        }
        if let meminfo = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) {
            func field(_ name: String) -> Int? {
                meminfo.split(separator: "\n").first { $0.hasPrefix(name + ":") }
                    .flatMap { $0.split(separator: " ").dropFirst().first.flatMap { Int($0) } }
            }
            if let free = field("MemAvailable") {
                let bytes = (free + (field("SwapFree") ?? 0)) * 1024
                if best == nil || bytes < best!.bytes { best = (bytes, "the machine's available memory and swap") }
            }
        }
        #endif
        return best
    }

    /// Throws `UnrollIOError(.unsupported)` naming `what` when `bytes` more do not fit.
    public static func check(_ bytes: Int, for what: String, file: String? = nil) throws {
        guard bytes > 16 << 20, let (free, reason) = available(), bytes > free else { return }
        let message = "\(what) need \(bytes / (1 << 20)) MB, but this process can take only \(free / (1 << 20)) MB more (\(reason))"
        guard let file else { throw UnrollIOError(.unsupported, message) }
        throw UnrollIOError(.unsupported, file: file, message)
    }
}
