import CUnrollSupport

/// Work split across cores, with denormals flushed in every worker.
///
/// The number of workers is a scoped value, not a global: `withWorkers(n) { … }` sets it for the work
/// inside (and for the workers it starts), so two computations in one process can use different counts.
public enum Parallel {
    /// Number of workers the loops inside the current `withWorkers` scope use (outside any: every core).
    @TaskLocal public static var workers: Int = ProcessInfoShim.activeProcessors

    /// Runs `body` with `n` workers (at least 1) for our loops and for BLAS products (`BLAS.sgemm` splits
    /// them over the workers; OpenBLAS's own threads are off, `BLAS.singleThreaded`).
    public static func withWorkers<R>(_ n: Int, _ body: () throws -> R) rethrows -> R {
        try $workers.withValue(max(1, n), operation: body)
    }

    /// Runs `body` with one worker: the work of one part of a region, whose thread is already one of
    /// the region's (a product inside it would otherwise be cut into blocks run one after the other).
    public static func serially<R>(_ body: () throws -> R) rethrows -> R {
        try $workers.withValue(1, operation: body)
    }

    /// Calls `body(range)` for `parts` contiguous chunks of `0..<count`, in parallel.
    /// Small jobs run inline: thread hand-off costs more than it saves below `minPerPart`.
    public static func forEachChunk(_ count: Int, minPerPart: Int = 1, _ body: (Range<Int>) -> Void) {
        let parts = min(workers, max(1, count / max(1, minPerPart)))
        if parts <= 1 {
            body(0..<count)
            return
        }
        forEachWorker(parts) { p in
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
        forEachWorker(parts) { p in body(p, (count * p / parts)..<(count * (p + 1) / parts)) }
    }

    /// `body(0) … body(parts − 1)` on the helper threads of our pool (`WorkerPool.c`) and the caller, which
    /// share the caller's flush-to-zero setting and worker count. While the pool runs another region (a
    /// part opening one of its own, or another thread's), the parts run here one after the other: the
    /// CPUs are busy with that region. The callers hand their workers disjoint ranges of the buffers they
    /// capture, which the compiler cannot see: this is the one place that vouches for it (`nonisolated(unsafe)`).
    static func forEachWorker(_ parts: Int, _ body: (Int) -> Void) {
        let flush = FlushDenormals.isEnabled, workers = self.workers
        withoutActuallyEscaping(body) { body in
            nonisolated(unsafe) let body = body
            var part: (Int) -> Void = { p in
                let was = FlushDenormals.set(flush)
                defer { FlushDenormals.set(was) }
                $workers.withValue(workers) { body(p) }
            }
            let ran = withUnsafeMutablePointer(to: &part) { context in
                unroll_pool_run(parts, workers, { context, p in
                    context!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(p)
                }, context)
            }
            if !ran { for p in 0..<parts { body(p) } }
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
