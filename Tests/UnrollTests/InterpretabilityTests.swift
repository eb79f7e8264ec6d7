import Foundation
import Testing
import Unroll
import UnrollCore

/// PUDLE's Theorem 5.1 (the dictionary as a combination of training examples): the Cholesky solve,
/// the two forms of W̃, the β identity, the converged alternating-minimisation point, bad input.
@Suite struct InterpretabilityTests {
    /// Non-negative sparse codes `[n, p]` (about `density` non-zero) and signals `[n, m]`.
    static func problem(n: Int, m: Int, p: Int, density: Double = 0.3, seed: UInt64 = 1) -> (x: Tensor, z: Tensor) {
        var rng = Random(seed: seed)
        let x = Tensor.normal([n, m], rng: &rng)
        var z = [Float](repeating: 0, count: n * p)
        for i in 0..<(n * p) where rng.uniform() < density { z[i] = Float(rng.uniform(0.1, 2)) }
        return (x, Tensor(shape: [n, p], data: z))
    }

    /// Naive (ZᵀZ + ωI)W = ZᵀX residual: ‖Zᵀ(ZW − X) + ωW‖/‖ZᵀX‖, in Double loops.
    static func ridgeResidual(x: Tensor, z: Tensor, w: [Double], omega: Double) -> Double {
        let n = x.rows, m = x.cols, p = z.cols
        var num = 0.0, den = 0.0
        for u in 0..<p {
            for q in 0..<m {
                var g = omega * w[u * m + q], ztx = 0.0
                for k in 0..<n {
                    var zw = 0.0
                    for v in 0..<p { zw += Double(z[k, v]) * w[v * m + q] }
                    g += Double(z[k, u]) * (zw - Double(x[k, q]))
                    ztx += Double(z[k, u]) * Double(x[k, q])
                }
                num += g * g
                den += ztx * ztx
            }
        }
        return (num / den).squareRoot()
    }

    @Test func choleskyMatchesClosedForm() throws {
        // A = [[4, 2], [2, 3]]: L = [[2, 0], [1, √2]], A⁻¹ = [[3, −2], [−2, 4]]/8.
        let c = try Cholesky([4, 2, 2, 3], size: 2)
        #expect(abs(c.lower[0] - 2) < 1e-15 && abs(c.lower[2] - 1) < 1e-15 && abs(c.lower[3] - 2.0.squareRoot()) < 1e-15)
        #expect(c.lower[1] == 0)
        let inv = c.solve([1, 0, 0, 1], columns: 2)
        for (a, b) in zip(inv, [3.0 / 8, -2.0 / 8, -2.0 / 8, 4.0 / 8]) { #expect(abs(a - b) < 1e-14) }

        // A random SPD 7×7 (BᵀB + I): A·solve(b) = b.
        var rng = Random(seed: 5)
        let n = 7
        let b = (0..<(n * n)).map { _ in rng.normal() }
        var a = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { for k in 0..<n { a[i * n + j] += b[k * n + i] * b[k * n + j] } }; a[i * n + i] += 1 }
        let rhs = (0..<(n * 3)).map { _ in rng.normal() }
        let x = try Cholesky(a, size: n).solve(rhs, columns: 3)
        for i in 0..<n {
            for c in 0..<3 {
                var s = 0.0
                for j in 0..<n { s += a[i * n + j] * x[j * 3 + c] }
                #expect(abs(s - rhs[i * 3 + c]) < 1e-10)
            }
        }
        // Not positive definite, not square.
        #expect(throws: UnrollError.self) { try Cholesky([1, 2, 2, 1], size: 2) }
        #expect(throws: UnrollError.self) { try Cholesky([1, 2, 3], size: 2) }
    }

    @Test func twoFormsOfTheImpliedDictionaryAgree() throws {
        let (x, z) = Self.problem(n: 40, m: 10, p: 15)
        let omega = 0.05
        let comb = try ExampleCombination(signals: x, codes: z, omega: omega)
        let small = comb.impliedWeights()                   // (ZᵀZ + ωI_p)⁻¹ZᵀX
        let large = try comb.impliedWeightsByExamples()      // Zᵀ(ZZᵀ + ωI_n)⁻¹X
        #expect(ExampleCombination.relativeDifference(large, small) < 1e-10)
        // Independent check: W̃ solves the ridge normal equations.
        #expect(Self.ridgeResidual(x: x, z: z, w: small, omega: omega) < 1e-10)
        // Each atom is Σ_k c_jk x_k.
        for j in [0, 7, 14] {
            let c = try comb.atomContributions(j)
            let atom = Array(small[(j * 10)..<((j + 1) * 10)])
            #expect(ExampleCombination.relativeDifference(comb.combine(c), atom) < 1e-10)
        }
    }

    @Test func newExampleIsACombinationOfTrainingExamples() throws {
        let (x, z) = Self.problem(n: 50, m: 12, p: 20, seed: 2)
        let comb = try ExampleCombination(signals: x, codes: z, omega: 1e-3)
        let w = comb.impliedWeights()
        var rng = Random(seed: 9)
        for _ in 0..<3 {
            let code = (0..<20).map { _ in rng.uniform() < 0.3 ? Float(rng.uniform(0, 1)) : 0 }
            let beta = try comb.coefficients(code: code)
            let viaExamples = comb.combine(beta)
            let viaDictionary = ExampleCombination.decode(code, weights: w, signalSize: 12)
            #expect(ExampleCombination.relativeDifference(viaExamples, viaDictionary) < 1e-9)
        }
        // Cosine similarity against a naive loop.
        let code = comb.code(3)
        let sim = try comb.codeSimilarity(code: code)
        #expect(abs(sim[3] - 1) < 1e-12)
        let a = comb.code(4)
        let dot = zip(a, code).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let na = a.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot(), nb = code.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        #expect(abs(sim[4] - dot / (na * nb)) < 1e-12)
    }

    @Test func convergedAlternatingMinimisationSatisfiesTheTheorem() throws {
        // Non-negative data from a non-negative dictionary: n 80, m 12, p 8.
        var rng = Random(seed: 3)
        let truth = Tensor.uniform([8, 12], rng: &rng)
        var codes = [Float](repeating: 0, count: 80 * 8)
        for i in 0..<80 { for _ in 0..<2 { codes[i * 8 + rng.int(below: 8)] = Float(rng.uniform(0.5, 1.5)) } }
        let x = Tensor(shape: [80, 8], data: codes).matmul(truth)
        var s = RegularizedDictionaryLearning.Settings(atoms: 8, lambda: 0.05, omega: 0.05)
        s.tolerance = 1e-6
        s.maxRounds = 3000
        let r = try RegularizedDictionaryLearning.train(signals: x, settings: s)
        #expect(r.converged, "rounds \(r.rounds), ΔW \(r.dictionaryChange), ΔZ \(r.codeChange)")
        // The objective never increases (exact block minimisation).
        for (a, b) in zip(r.objective, r.objective.dropFirst()) { #expect(b <= a * (1 + 1e-12)) }
        // The codes are the non-negative lasso minimiser for W: KKT conditions by a naive loop.
        let w = r.weightsDouble
        var worst = 0.0
        for i in 0..<80 {
            for u in 0..<8 {
                var g = 0.0     // (W(Wᵀz − x))_u
                for q in 0..<12 {
                    var rec = -Double(x[i, q])
                    for v in 0..<8 { rec += r.codes[i * 8 + v] * w[v * 12 + q] }
                    g += w[u * 12 + q] * rec
                }
                worst = max(worst, r.codes[i * 8 + u] > 0 ? abs(g + 0.05) : max(0, -(g + 0.05)))
            }
        }
        #expect(worst < 1e-6)
        // Theorem 5.1 at the stationary point, from Float tensors as a user would hold them.
        let comb = try ExampleCombination(signals: x, codes: Tensor(shape: [80, 8], data: r.codes.map(Float.init)), omega: 0.05)
        let gap = ExampleCombination.relativeDifference(comb.impliedWeights(), w)
        #expect(gap <= 1e-3)
        #expect(gap < 1e-4)
    }

    @Test func badInputThrows() throws {
        let (x, z) = Self.problem(n: 10, m: 4, p: 5)
        #expect(throws: UnrollError.self) { try ExampleCombination(signals: x, codes: z, omega: 0) }
        #expect(throws: UnrollError.self) { try ExampleCombination(signals: x, codes: z, omega: -1) }
        #expect(throws: UnrollError.self) { try ExampleCombination(signals: x, codes: z, omega: .nan) }
        #expect(throws: UnrollError.self) { try ExampleCombination(signals: x.rows(0..<9), codes: z, omega: 1) }
        var bad = z
        bad.data[0] = .infinity
        #expect(throws: UnrollError.self) { try ExampleCombination(signals: x, codes: bad, omega: 1) }
        let comb = try ExampleCombination(signals: x, codes: z, omega: 1)
        #expect(throws: UnrollError.self) { try comb.coefficients(code: [1, 2, 3]) }
        #expect(throws: UnrollError.self) { try comb.atomContributions(5) }
        #expect(throws: UnrollError.self) { try comb.codeSimilarity(code: []) }
        var s = RegularizedDictionaryLearning.Settings(atoms: 3, lambda: 0.1, omega: 0)
        #expect(throws: UnrollError.self) { try RegularizedDictionaryLearning.train(signals: x, settings: s) }
        s.omega = 0.1
        s.lambda = -1
        #expect(throws: UnrollError.self) { try RegularizedDictionaryLearning.train(signals: x, settings: s) }
        #expect(throws: UnrollError.self) { try NonNegativeLasso(lambda: 0.1).solve(signals: x, weights: [1, 2], atoms: 3) }
    }

    static let digits = sharedData + "/digits/digits.csv.gz"

    /// `unroll explain example` on a small digits model: converges, the identity holds, the figure is written.
    @Test(.needsCLI, .enabled(if: FileManager.default.fileExists(atPath: digits)))
    func explainExampleCommand() throws {
        let dir = try CLITests.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLITests.ok(["explain", "example", "--dataset", "digits", "--scale", "tiny", "--per-class", "20",
                                 "--p", "20", "--output", "out", "--quiet"], in: dir)
        #expect(r.stdout.contains("converged true"), "\(r.stdout)")
        // "‖ẑW̃ − Σβx‖/‖ẑW̃‖ = <value>," on each test image's line
        let values = r.stdout.components(separatedBy: "‖ẑW̃ − Σβx‖/‖ẑW̃‖ = ").dropFirst().compactMap { Double($0.prefix { $0 != "," }) }
        #expect(values.count == 3)
        for v in values { #expect(v < 1e-9) }
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("out/interpret-digits-examples.png").path))
        let bad = try CLITests.run(["explain", "atoms", "--omega", "0"], in: dir)
        #expect(bad.status != 0 && bad.stderr.contains("--omega"))
    }
}
