import CUnrollSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Resident memory of this process, for the peak-RSS lines of the benchmarks (Linux /proc; getrusage elsewhere).
enum ResidentMemory {
    /// Current resident set (VmRSS) in MB.
    static func current() -> Double? { status("VmRSS") }

    /// Peak resident set (VmHWM) in MB since the process started or since the last `resetPeak()`;
    /// without /proc, getrusage's lifetime peak.
    static func peak() -> Double? { status("VmHWM") ?? lifetimePeak() }

    /// getrusage(RUSAGE_SELF).ru_maxrss in MB: the peak over the whole process lifetime (not resettable).
    #if os(Linux)
    private static let RUSAGE_SELF_WHO = __rusage_who_t(RUSAGE_SELF.rawValue)
    #else
    private static let RUSAGE_SELF_WHO = RUSAGE_SELF
    #endif

    static func lifetimePeak() -> Double? {
        var u = rusage()
        guard getrusage(RUSAGE_SELF_WHO, &u) == 0 else { return nil }
        #if os(macOS)
        return Double(u.ru_maxrss) / 1_048_576   // bytes
        #else
        return Double(u.ru_maxrss) / 1024        // KB
        #endif
    }

    /// Resets VmHWM to the current RSS (Linux ≥ 4.0: write 5 to /proc/self/clear_refs), so that the next
    /// `peak()` covers only what follows. Returns false where that is not possible (then `peak()` is the lifetime peak).
    /// First hands malloc's free blocks back: the CLI keeps freed blocks for reuse
    /// (`unroll_keep_freed_memory`), and what an earlier case or mode freed is not this one's memory.
    @discardableResult
    static func resetPeak() -> Bool {
        unroll_release_free_memory()
        guard let h = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return false }
        defer { try? h.close() }
        do { try h.write(contentsOf: Data("5".utf8)) } catch { return false }
        return true
    }

    private static func status(_ field: String) -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count >= 2, let kb = Double(parts[1]) { return kb / 1024 }
        }
        return nil
    }
}
