import Foundation
import Testing
import UnrollCore

/// `Parallel`'s regions: every part runs once, with the caller's worker count and flush-to-zero setting,
/// on more than one thread at a time, also when regions nest or several threads open regions at once
/// (the pool runs one region at a time; the others run their parts on the calling thread).
@Suite struct ParallelTests {
    /// The worker count is scoped: inside `withValue` (and in the workers started there) it is the
    /// scope's, outside it is untouched, so concurrent tests cannot see each other's count.
    @Test func workersAreScopedAndInherited() {
        let outside = Parallel.workers
        let seen = Parallel.$workers.withValue(3) { () -> [Int] in
            let inner = Parallel.workers
            let box = UnsafeMutableBufferPointer<Int>.allocate(capacity: 3)
            defer { box.deallocate() }
            Parallel.forEachPart(3, parts: 3) { p, _ in box[p] = Parallel.workers }
            return [inner] + Array(box)
        }
        #expect(seen == [3, 3, 3, 3])
        #expect(Parallel.workers == outside)
    }

    /// OpenBLAS's threads are off once a product has gone through `BLAS`, with no `withWorkers` needed:
    /// its threaded path, entered by two threads at once, deadlocked in the test process.
    @Test func blasRunsOnOneThreadWithoutBeingAsked() {
        let a: [Float] = [1, 2, 3, 4], b: [Float] = [5, 6, 7, 8]
        var c = [Float](repeating: 0, count: 4)
        BLAS.sgemm(transA: false, transB: false, m: 2, n: 2, k: 2, alpha: 1, a: a, lda: 2, b: b, ldb: 2, beta: 0, c: &c, ldc: 2)
        #expect(c == [19, 22, 43, 50])
        #expect(BLAS.threads == 1)
    }

    @Test func workersIsTheOnlineProcessorCount() {
        #expect(Parallel.workers >= 1)
        #if canImport(Glibc)
        #expect(ProcessInfoShim.activeProcessors == Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        #endif
    }

    @Test func chunksCoverEveryIndexExactlyOnce() {
        for (count, minPerPart) in [(0, 1), (1, 1), (7, 1), (1000, 1), (1000, 600), (10_001, 3)] {
            var hits = [Int](repeating: 0, count: count)
            hits.withUnsafeMutableBufferPointer { h in
                let base = h.baseAddress
                Parallel.forEachChunk(count, minPerPart: minPerPart) { range in
                    for i in range { base![i] += 1 }
                }
            }
            #expect(hits.allSatisfy { $0 == 1 }, "count \(count), minPerPart \(minPerPart)")
        }
    }

    @Test func workersInheritTheCallersFlushSetting() {
        let count = 64
        for flush in [true, false] {
            var seen = [Bool](repeating: !flush, count: count)
            var products = [Float](repeating: -1, count: count)
            seen.withUnsafeMutableBufferPointer { s in
                products.withUnsafeMutableBufferPointer { p in
                    let (sb, pb) = (s.baseAddress!, p.baseAddress!)
                    FlushDenormals.with(flush) {
                        Parallel.forEachChunk(count, minPerPart: 1) { range in
                            for i in range {
                                sb[i] = FlushDenormals.isEnabled
                                pb[i] = opaque(opaque(1e-38) * opaque(1e-3))
                            }
                        }
                    }
                }
            }
            #expect(seen.allSatisfy { $0 == flush })
            #expect(products.allSatisfy { flush ? $0 == 0 : $0 != 0 })
        }
    }

    /// Counts per part, safe across threads.
    final class Tally: @unchecked Sendable {
        private let lock = NSLock()
        private var counts: [Int]
        init(_ n: Int) { counts = Array(repeating: 0, count: n) }
        func add(_ i: Int) { lock.lock(); counts[i] += 1; lock.unlock() }
        var values: [Int] { lock.lock(); defer { lock.unlock() }; return counts }
    }

    @Test func everyPartRunsOnce() {
        for workers in 1...4 {
            for parts in [1, 2, 3, 7, 17] {
                let tally = Tally(parts)
                let seen = Tally(parts)
                Parallel.withWorkers(workers) {
                    Parallel.forEachPart(parts, parts: parts) { part, range in
                        #expect(range == part..<(part + 1))
                        tally.add(part)
                        if Parallel.workers == workers { seen.add(part) }
                    }
                }
                #expect(tally.values == Array(repeating: 1, count: parts), "workers \(workers), parts \(parts)")
                #expect(seen.values == Array(repeating: 1, count: parts), "the parts see the caller's worker count")
            }
        }
    }

    /// Two parts that wait for each other meet only if they run at the same time (which needs two CPUs:
    /// a region uses at most one thread per CPU). Tests of other suites may hold the pool for a moment,
    /// and then a region's parts run one after the other, so a few attempts are allowed.
    @Test(.enabled(if: ProcessInfoShim.activeProcessors >= 2)) func partsRunConcurrently() {
        var met = false
        for _ in 0..<10 where !met {
            let arrived = Tally(1)
            let together = Tally(2)
            Parallel.withWorkers(2) {
                Parallel.forEachPart(2, parts: 2) { part, _ in
                    arrived.add(0)
                    let deadline = Date().addingTimeInterval(1)
                    while arrived.values[0] < 2 && Date() < deadline { usleep(100) }
                    if arrived.values[0] >= 2 { together.add(part) }
                }
            }
            met = together.values == [1, 1]
        }
        #expect(met)
    }

    /// Regions inside parts, and regions opened by many threads at once, each sum 0..<n correctly.
    @Test func nestedAndConcurrentRegions() {
        @Sendable func sum(_ n: Int) -> Int {
            let parts = Tally(4)
            Parallel.forEachPart(n, parts: 4) { part, range in
                for _ in range { parts.add(part) }
            }
            return parts.values.reduce(0, +)
        }
        let results = Tally(8)
        DispatchQueue.concurrentPerform(iterations: 8) { caller in
            Parallel.withWorkers(3) {
                for _ in 0..<50 {
                    let outer = Tally(3)
                    Parallel.forEachPart(3, parts: 3) { part, _ in
                        if sum(100 + part) == 100 + part { outer.add(part) }
                    }
                    if outer.values == [1, 1, 1] { results.add(caller) }
                }
            }
        }
        #expect(results.values == Array(repeating: 50, count: 8))
    }

    /// A lane's tasks run once each, in the order handed, and are done when `withLane` returns, at one
    /// worker (each when handed) and at two.
    @Test func laneRunsEveryTaskInOrder() {
        for workers in [1, 2] {
            Parallel.withWorkers(workers) {
                var order: [Int] = []       // only the tasks touch it until `withLane` returns
                let r = Parallel.withLane { lane in
                    for i in 0..<1000 { lane.run { order.append(i) } }
                    return 7
                }
                #expect(r == 7)
                #expect(order == Array(0..<1000))
            }
        }
    }

    /// With two workers a task runs while the body goes on: the task waits for a mark the body sets
    /// after handing it over, and the body waits for the task. (Inline, or after the body, one of the
    /// two waits would time out.) Other suites may hold the pool for a moment, so a few attempts.
    @Test(.enabled(if: ProcessInfoShim.activeProcessors >= 2)) func laneRunsBesideTheBody() {
        var met = false
        for _ in 0..<10 where !met {
            let marks = Tally(2)
            func wait(for i: Int) -> Bool {
                let deadline = Date().addingTimeInterval(1)
                while marks.values[i] == 0 && Date() < deadline { usleep(100) }
                return marks.values[i] == 1
            }
            Parallel.withWorkers(2) {
                Parallel.withLane { lane in
                    lane.run { if wait(for: 0) { marks.add(1) } }
                    marks.add(0)
                    met = wait(for: 1)
                }
            }
        }
        #expect(met)
    }
}
