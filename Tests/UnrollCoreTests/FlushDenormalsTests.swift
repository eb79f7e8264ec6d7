import Testing
import UnrollCore
#if canImport(Glibc)
import Glibc
#endif

/// Hides a value from the optimiser so products are computed at run time, not folded.
@_optimize(none)
func opaque(_ x: Float) -> Float { x }

@Suite struct FlushDenormalsTests {
    @Test func denormalProductIsZeroOnlyWithFlushing() {
        let a = opaque(1e-38), b = opaque(1e-3)
        let off = FlushDenormals.with(false) { opaque(a * b) }
        #expect(off != 0 && off.isSubnormal, "1e-38·1e-3 without flushing: \(off)")
        let on = FlushDenormals.with(true) { opaque(a * b) }
        #expect(on == 0)
        // Denormals-are-zero: a denormal input also reads as zero.
        let tiny = opaque(off)
        #expect(FlushDenormals.with(true) { opaque(tiny * opaque(1)) } == 0)
    }

    @Test func withRestoresThePreviousState() {
        let before = FlushDenormals.isEnabled
        let inside = FlushDenormals.with(!before) { FlushDenormals.isEnabled }
        #expect(inside == !before)
        #expect(FlushDenormals.isEnabled == before)
        let was = FlushDenormals.set(true)
        #expect(FlushDenormals.isEnabled)
        FlushDenormals.set(was)
        #expect(FlushDenormals.isEnabled == was)
    }
}

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
}
