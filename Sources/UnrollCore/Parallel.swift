import Dispatch

/// Work split across cores, with denormals flushed in every worker.
public enum Parallel {
    /// Number of workers `forEach` uses (defaults to the active processor count).
    nonisolated(unsafe) public static var workers: Int = ProcessInfoShim.activeProcessors

    /// Calls `body(range)` for `parts` contiguous chunks of `0..<count`, in parallel.
    /// Small jobs run inline: thread hand-off costs more than it saves below `minPerPart`.
    public static func forEachChunk(_ count: Int, minPerPart: Int = 1, _ body: (Range<Int>) -> Void) {
        let parts = min(workers, max(1, count / max(1, minPerPart)))
        if parts <= 1 {
            body(0..<count)
            return
        }
        let flush = FlushDenormals.isEnabled
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            let was = FlushDenormals.set(flush)
            defer { FlushDenormals.set(was) }
            let lo = count * p / parts, hi = count * (p + 1) / parts
            if lo < hi { body(lo..<hi) }
        }
    }

    /// Calls `body(part, range)` for exactly `parts` contiguous chunks of `0..<count` (at most `count`;
    /// in parallel when more than one), numbered 0..<parts, so each part can own a scratch buffer or an
    /// accumulator. The chunks are the same as `forEachChunk`'s for the same number of parts.
    public static func forEachPart(_ count: Int, parts: Int, _ body: (Int, Range<Int>) -> Void) {
        let parts = max(1, min(parts, count))
        if parts == 1 {
            body(0, 0..<count)
            return
        }
        let flush = FlushDenormals.isEnabled
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            let was = FlushDenormals.set(flush)
            defer { FlushDenormals.set(was) }
            body(p, (count * p / parts)..<(count * (p + 1) / parts))
        }
    }
}

public enum ProcessInfoShim {
    public static var activeProcessors: Int {
        #if canImport(Glibc)
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        #else
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
        #endif
    }
}

#if canImport(Glibc)
import Glibc
#else
import Foundation
#endif
