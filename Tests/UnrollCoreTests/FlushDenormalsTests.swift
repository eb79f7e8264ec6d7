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
