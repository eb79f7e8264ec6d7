import Foundation
import Testing
import Unroll
import UnrollCore

@Suite struct SyntheticAroraTests {
    /// m 30, p 40, s 3, n 5000, U[1,2] amplitudes, independent signs.
    static func problem() throws -> SyntheticDictionaryData {
        try SyntheticDictionaryData(SyntheticDictionaryConfig(signalSize: 30, atomCount: 40, exampleCount: 5000, sparsity: 3),
                                    seed: 7)
    }

    /// Matched mean sin-distance of k random unit vectors to the true atoms (the "no information" level).
    static func randomLevel(_ k: Int, _ truth: Tensor) -> Double {
        var rng = Random(seed: 99)
        let random = Tensor.normal([k, truth.shape[1]], rng: &rng)
        return DictionaryMetrics.matchAtoms(random, to: truth).meanSinDistance
    }

    @Test func recoversAtomsWellBelowRandom() throws {
        let data = try Self.problem()
        var arora = AroraInitialization(atomCount: 40, sparsity: 3)
        arora.maxPairs = 1200
        var rng = Random(seed: 3)
        let result = try arora.run(on: data.signals, rng: &rng)
        let k = result.atoms.rows
        let match = DictionaryMetrics.matchAtoms(result.atoms, to: data.dictionary)
        let random = Self.randomLevel(k, data.dictionary)
        print("Arora m30 p40 s3 n5000, 1200 pairs: \(k) atoms (\(result.pairsPassed) pairs passed), matched mean sin \(match.meanSinDistance), max \(match.maxSinDistance), within 0.3: \(match.recoveredCount(within: 0.3)); random \(random)")
        #expect(k >= 12)
        #expect(match.meanSinDistance < 0.4 && match.meanSinDistance < 0.5 * random)
        for norm in result.atoms.rowNorms() { #expect(abs(norm - 1) < 1e-4) }

        // The cumulant refinement moves the same atoms closer.
        arora.refinementSteps = 3
        var rng2 = Random(seed: 3)
        let refined = try arora.run(on: data.signals, rng: &rng2)
        let refinedMatch = DictionaryMetrics.matchAtoms(refined.atoms, to: data.dictionary)
        print("  with 3 refinement steps: matched mean sin \(refinedMatch.meanSinDistance), within 0.3: \(refinedMatch.recoveredCount(within: 0.3))")
        #expect(refined.atoms.rows == k && refinedMatch.meanSinDistance < match.meanSinDistance)

        // Filling up to p with normalised samples gives a usable [p, m] dictionary.
        var fillRng = Random(seed: 4)
        let full = result.dictionary(atomCount: 40, fillingFrom: data.signals, rng: &fillRng)
        #expect(full.shape == [40, 30] && full.rows(0..<k) == result.atoms)
        for norm in full.rowNorms() { #expect(abs(norm - 1) < 1e-4) }
    }

    @Test func withoutTheGaussianCorrectionTheAtomsAreMostlyWrong() throws {
        // The paper's M_uv as is: the Σu vᵀΣ terms dominate at this size, so the top vectors that pass
        // are mostly not atoms.
        let data = try Self.problem()
        var arora = AroraInitialization(atomCount: 40, sparsity: 3)
        arora.removeGaussianPart = false
        arora.maxPairs = 1200
        var rng = Random(seed: 3)
        let result = try arora.run(on: data.signals, rng: &rng)
        let match = DictionaryMetrics.matchAtoms(result.atoms, to: data.dictionary)
        print("plain M: tried \(result.pairsTried) passed \(result.pairsPassed) atoms \(result.atoms.rows), matched mean sin \(match.meanSinDistance), within 0.3: \(match.recoveredCount(within: 0.3))")
        #expect(match.meanSinDistance > 0.5)
    }

    @Test func orthonormalDictionaryIsRecoveredAccurately() throws {
        // An easy case: atoms = the standard basis (no coherence); every passing pair gives an atom.
        var rng = Random(seed: 21)
        let (m, n, s) = (16, 4000, 2)
        var z = Tensor(zeros: [n, m])
        for i in 0..<n { for j in rng.sample(s, from: m) { z[i, j] = rng.sign() * Float(rng.uniform(1, 2)) } }
        let x = z   // W* = identity
        var arora = AroraInitialization(atomCount: m, sparsity: s)
        // With q = s/p = 1/8 the Gaussian correction also removes 3q²κ² + q²⟨u,v⟩ from the atom's
        // weight, so σ₁ ≈ 0.65·(s/p)·z̃_u z̃_v here: a lower σ₁ bar admits the good pairs.
        arora.sigma1Scale = 0.4
        arora.maxPairs = 600
        let result = try arora.run(on: x, rng: &rng)
        var eye = Tensor(zeros: [m, m])
        for i in 0..<m { eye[i, i] = 1 }
        let match = DictionaryMetrics.matchAtoms(result.atoms, to: eye)
        print("orthonormal: tried \(result.pairsTried) passed \(result.pairsPassed) atoms \(result.atoms.rows) max sin \(match.maxSinDistance) mean \(match.meanSinDistance)")
        #expect(result.atoms.rows >= 14)
        #expect(match.maxSinDistance < 0.2)
    }

    @Test func invalidInputThrows() {
        var rng = Random(seed: 1)
        #expect(throws: SyntheticDataError.self) { try AroraInitialization(atomCount: 1, sparsity: 1).run(on: Tensor(zeros: [5, 3]), rng: &rng) }
        #expect(throws: SyntheticDataError.self) { try AroraInitialization(atomCount: 4, sparsity: 5).run(on: Tensor(zeros: [5, 3]), rng: &rng) }
        #expect(throws: SyntheticDataError.self) { try AroraInitialization(atomCount: 4, sparsity: 2).run(on: Tensor(zeros: [5, 3]), rng: &rng) }
        var nan = Tensor(repeating: 1, shape: [5, 3])
        nan[1, 1] = .nan
        #expect(throws: SyntheticDataError.self) { try AroraInitialization(atomCount: 4, sparsity: 2).run(on: nan, rng: &rng) }
    }
}
