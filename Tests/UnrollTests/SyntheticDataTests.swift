import Foundation
import Testing
import Unroll
import UnrollCore

@Suite struct SyntheticDataTests {
    static let small = SyntheticDictionaryConfig(signalSize: 20, atomCount: 30, exampleCount: 700, sparsity: 4)

    @Test func sameSeedGivesIdenticalDataAndAnotherSeedDoesNot() throws {
        var config = Self.small
        config.snrDB = 20
        let a = try SyntheticDictionaryData(config, seed: 11), b = try SyntheticDictionaryData(config, seed: 11)
        #expect(a.dictionary == b.dictionary && a.codes == b.codes && a.signals == b.signals
            && a.initialDictionary == b.initialDictionary)
        let c = try SyntheticDictionaryData(config, seed: 12)
        #expect(c.dictionary != a.dictionary && c.codes != a.codes && c.signals != a.signals)
    }

    @Test func resultDoesNotDependOnWorkerCount() throws {
        var config = Self.small
        config.exampleCount = 3000   // several row blocks
        config.snrDB = 10
        let one = try Parallel.$workers.withValue(1) { try SyntheticDictionaryData(config, seed: 5) }
        let three = try Parallel.$workers.withValue(3) { try SyntheticDictionaryData(config, seed: 5) }
        #expect(one.codes == three.codes && one.signals == three.signals)
    }

    @Test func atomsAreUnitNormAndCodesHaveSDistinctEntriesInRange() throws {
        let d = try SyntheticDictionaryData(Self.small, seed: 1)
        #expect(d.dictionary.shape == [30, 20] && d.initialDictionary.shape == [30, 20])
        for norm in d.dictionary.rowNorms() + d.initialDictionary.rowNorms() { #expect(abs(norm - 1) < 1e-5) }
        #expect(d.codes.rows == 700 && d.codes.cols == 30 && d.codes.perRow == 4)
        for i in 0..<700 {
            let support = Array(d.codes.support(ofRow: i))
            #expect(Set(support).count == 4 && support == support.sorted())
        }
        #expect(d.codes.values.allSatisfy { abs($0) >= 1 && abs($0) <= 2 })
        let dense = d.codes.dense()
        #expect(dense.data.filter { $0 != 0 }.count == 700 * 4)
    }

    @Test func signalsEqualCodesTimesDictionaryByGEMM() throws {
        let d = try SyntheticDictionaryData(Self.small, seed: 2)
        let reference = d.codes.dense().matmul(d.dictionary)
        #expect(d.signals.shape == [700, 20])
        let worst = zip(d.signals.data, reference.data).map { abs($0 - $1) }.max()!
        #expect(worst < 1e-5)
        #expect(d.noiseStd == 0)
        // Row gathering agrees with the full dense codes.
        #expect(d.codes.dense(gathering: [5, 0, 699]) == d.codes.dense().gatherRows([5, 0, 699]))
        #expect(d.codes.dense(rows: 10..<20) == d.codes.dense().rows(10..<20))
    }

    @Test func supportIsUniformOverAtoms() throws {
        let config = SyntheticDictionaryConfig(signalSize: 5, atomCount: 20, exampleCount: 20_000, sparsity: 3)
        let d = try SyntheticDictionaryData(config, seed: 3)
        var counts = [Int](repeating: 0, count: 20)
        for j in d.codes.indices { counts[j] += 1 }
        // Expected 3000 per atom, binomial sd ≈ 53: ±250 is > 4.5 sd.
        for c in counts { #expect(abs(c - 3000) < 250) }
    }

    @Test func signRules() throws {
        var config = Self.small
        config.exampleCount = 2000
        let independent = try SyntheticDictionaryData(config, seed: 4)
        config.signs = .sharedPerExample
        let shared = try SyntheticDictionaryData(config, seed: 4)
        func mixedRows(_ c: SyntheticCodes) -> Int {
            (0..<c.rows).filter { i in
                let v = c.values[(i * c.perRow)..<((i + 1) * c.perRow)]
                return v.contains { $0 > 0 } && v.contains { $0 < 0 }
            }.count
        }
        #expect(mixedRows(shared.codes) == 0)
        // With 4 independent signs, P(all equal) = 1/8: ≈ 1750 of 2000 rows mixed.
        #expect(abs(mixedRows(independent.codes) - 1750) < 100)
        for c in [shared.codes, independent.codes] {
            let positive = Double(c.values.filter { $0 > 0 }.count) / Double(c.values.count)
            #expect(abs(positive - 0.5) < 0.05)
        }
    }

    @Test func gaussianAmplitudes() throws {
        var config = Self.small
        config.amplitude = .gaussian(mean: 3, std: 0.1)
        config.signs = .sharedPerExample
        let d = try SyntheticDictionaryData(config, seed: 6)
        let magnitudes = d.codes.values.map { abs($0) }
        #expect(magnitudes.allSatisfy { $0 > 2.4 && $0 < 3.6 })
        let mean = magnitudes.reduce(0, +) / Float(magnitudes.count)
        #expect(abs(mean - 3) < 0.01)
    }

    @Test func noiseHasTheRequestedSNR() throws {
        var config = Self.small
        config.exampleCount = 4000
        config.snrDB = 10
        let noisy = try SyntheticDictionaryData(config, seed: 8)
        let clean = noisy.codes.times(noisy.dictionary)
        let noise = noisy.signals - clean
        let signalPower = clean.squaredNorm() / Double(clean.count)
        let noisePower = noise.squaredNorm() / Double(noise.count)
        #expect(abs(10 * log10(signalPower / noisePower) - 10) < 0.1)
        #expect(abs(Double(noisy.noiseStd) * Double(noisy.noiseStd) / noisePower - 1) < 0.02)
        // The noise stream is separate: W* and Z* are those of the noiseless problem.
        config.snrDB = nil
        let quiet = try SyntheticDictionaryData(config, seed: 8)
        #expect(quiet.dictionary == noisy.dictionary && quiet.codes == noisy.codes)
    }

    @Test func closeInitialisationHasRelativeErrorAboutDeltaSqrtM() throws {
        // Reference §2: δ = 0.1, m = 50 → ≈ 0.61 (PUDLE's plot starts at 0.6104). Closed form for
        // large p: the angle θ between w* and w* + δg has tan θ ≈ δ√m, and ‖w − w*‖ = 2 sin(θ/2).
        let config = SyntheticDictionaryConfig(signalSize: 50, atomCount: 400, exampleCount: 0, sparsity: 5, initNoise: 0.1)
        let d = try SyntheticDictionaryData(config, seed: 9)
        let error = DictionaryMetrics.relativeFrobeniusError(d.initialDictionary, d.dictionary)
        let closedForm = 2 * sin(atan(0.1 * 50.0.squareRoot()) / 2)
        #expect(abs(error - 0.61) < 0.015)
        #expect(abs(error - closedForm) < 0.015)
        // The paper's baseline setting: δ = 0.005, m = 1000 → 0.156.
        let big = SyntheticDictionaryConfig(signalSize: 1000, atomCount: 100, exampleCount: 0, sparsity: 5, initNoise: 0.005)
        let e2 = DictionaryMetrics.relativeFrobeniusError(try SyntheticDictionaryData(big, seed: 9).initialDictionary,
                                                          try SyntheticDictionaryData(big, seed: 9).dictionary)
        #expect(abs(e2 - 0.156) < 0.003)
    }

    @Test func invalidConfigurationsThrowNamingTheField() {
        var bad = Self.small
        bad.sparsity = 31
        #expect { try SyntheticDictionaryData(bad, seed: 1) } throws: { error in
            "\(error)".contains("sparsity") && "\(error)".contains("31")
        }
        bad = Self.small
        bad.amplitude = .uniform(low: 2, high: 1)
        #expect { try SyntheticDictionaryData(bad, seed: 1) } throws: { "\($0)".contains("uniform amplitude") }
        bad = Self.small
        bad.snrDB = .infinity
        #expect { try SyntheticDictionaryData(bad, seed: 1) } throws: { "\($0)".contains("SNR") }
        bad = Self.small
        bad.initNoise = -1
        #expect { try SyntheticDictionaryData(bad, seed: 1) } throws: { "\($0)".contains("init noise") }
    }

    @Test func pudleTheoryPresetMatchesTheReference() {
        let c = SyntheticDictionaryConfig.pudleTheory
        #expect(c.signalSize == 50 && c.atomCount == 100 && c.exampleCount == 10_000 && c.sparsity == 5)
        #expect(c.signs == .sharedPerExample && c.amplitude == .uniform(low: 1, high: 2) && c.snrDB == nil)
    }
}
