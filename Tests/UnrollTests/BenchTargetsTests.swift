import Testing
import UnrollBenchmarks

/// The issues' targets on `unroll bench` rows: a row whose ratio misses its target gets a note naming the
/// ratio and the issue; a met target, a row without a ratio (no peer) or a NaN ratio gets none.
@Suite struct BenchTargetsTests {
    @Test func aMissedTargetGetsANote() {
        let speed = BenchTarget.atLeast(8, issue: 16), memory = BenchTarget.atMost(0.125, issue: 16)
        let rows = [
            BenchRow(name: "fast", unit: "s", ours: 1, oursLabel: "Unroll", ratio: 9, ratioLabel: "×", target: speed),
            BenchRow(name: "slow", unit: "s", ours: 1, oursLabel: "Unroll", ratio: 7.5, ratioLabel: "×", target: speed),
            BenchRow(name: "lean", unit: "MB", ours: 10, oursLabel: "Unroll", ratio: 0.125, target: memory),
            BenchRow(name: "heavy", unit: "MB", ours: 200, oursLabel: "Unroll", ratio: 0.25, target: memory),
            BenchRow(name: "no peer", unit: "s", ours: 1, oursLabel: "Unroll", target: speed),
            BenchRow(name: "no measure", unit: "s", ours: 1, oursLabel: "Unroll", ratio: .nan, target: speed),
            BenchRow(name: "no target", unit: "s", ours: 1, oursLabel: "Unroll", ratio: 0.1),
        ]
        let notes = BenchTargets.misses(rows)
        #expect(notes == ["slow: 7.50 ×, outside issue 16's target ≥ 8", "heavy: 0.25, outside issue 16's target ≤ 0.125"], "\(notes)")
        #expect(speed.isMet(by: 8) && !speed.isMet(by: 7.99) && memory.isMet(by: 0.125) && !memory.isMet(by: 0.126))
    }
}
