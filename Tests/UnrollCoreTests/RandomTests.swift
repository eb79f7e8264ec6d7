import Foundation
import Testing
import UnrollCore

@Suite struct RandomTests {
    static let n = 100_000

    /// Mean and (unbiased) variance in Double.
    func moments(_ xs: [Double]) -> (mean: Double, variance: Double) {
        let mean = xs.reduce(0, +) / Double(xs.count)
        let v = xs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(xs.count - 1)
        return (mean, v)
    }

    /// Kolmogorov–Smirnov statistic sup |F_n(x) − F(x)|.
    func ksStatistic(_ xs: [Double], cdf: (Double) -> Double) -> Double {
        let s = xs.sorted(), n = Double(xs.count)
        var d = 0.0
        for (i, x) in s.enumerated() {
            let f = cdf(x)
            d = max(d, abs(Double(i + 1) / n - f), abs(f - Double(i) / n))
        }
        return d
    }

    /// Critical value of the one-sample KS test at α = 0.001 (1.95/√n).
    var ksCritical: Double { 1.95 / Double(Self.n).squareRoot() }

    /// Checks mean and variance within `sd` standard errors; `kurtosis` sets the variance's standard error.
    func expectMoments(_ xs: [Double], mean: Double, variance: Double, kurtosis: Double, _ what: String) {
        let m = moments(xs), n = Double(xs.count)
        let meanTol = 6 * (variance / n).squareRoot()
        let varTol = 6 * variance * ((kurtosis - 1) / n).squareRoot()
        #expect(abs(m.mean - mean) < meanTol, "\(what): mean \(m.mean), expected \(mean) ± \(meanTol)")
        #expect(abs(m.variance - variance) < varTol, "\(what): variance \(m.variance), expected \(variance) ± \(varTol)")
    }

    @Test func sameSeedSameSequenceDifferentSeedsDiffer() {
        var a = Random(seed: 42), b = Random(seed: 42), c = Random(seed: 43)
        let sa = (0..<1000).map { _ in a.next() }, sb = (0..<1000).map { _ in b.next() }
        let sc = (0..<1000).map { _ in c.next() }
        #expect(sa == sb)
        #expect(zip(sa, sc).filter { $0 == $1 }.isEmpty)
        // Distributions are deterministic too (including the cached Box–Muller value).
        var d = Random(seed: 7), e = Random(seed: 7)
        #expect((0..<101).map { _ in d.normal() } == (0..<101).map { _ in e.normal() })
        #expect(Tensor.normal([5, 5], rng: &d) == Tensor.normal([5, 5], rng: &e))
        // A split stream differs from its parent.
        var f = Random(seed: 9)
        var g = f.split()
        #expect((0..<100).map { _ in f.next() } != (0..<100).map { _ in g.next() })
    }

    @Test func stateRoundTripContinuesTheStream() {
        var a = Random(seed: 10)
        _ = a.normal()   // leaves a cached Box–Muller value in the state
        var b = Random(state: a.state)!
        #expect((0..<50).map { _ in a.normal() } == (0..<50).map { _ in b.normal() })
        #expect((0..<50).map { _ in a.next() } == (0..<50).map { _ in b.next() })
        #expect(Random(state: [0, 0, 0, 0, 0, 0]) == nil && Random(state: [1, 2]) == nil)
    }

    @Test func uniformMomentsAndRange() {
        var rng = Random(seed: 1)
        let xs = (0..<Self.n).map { _ in rng.uniform() }
        #expect(xs.allSatisfy { $0 >= 0 && $0 < 1 })
        expectMoments(xs, mean: 0.5, variance: 1.0 / 12, kurtosis: 1.8, "U[0,1)")
        #expect(ksStatistic(xs, cdf: { min(max($0, 0), 1) }) < ksCritical)
        let ys = (0..<Self.n).map { _ in rng.uniform(-3, 5) }
        #expect(ys.allSatisfy { $0 >= -3 && $0 < 5 })
        expectMoments(ys, mean: 1, variance: 64.0 / 12, kurtosis: 1.8, "U[-3,5)")
        let ks = (0..<Self.n).map { _ in Double(rng.int(below: 7)) }
        #expect(ks.allSatisfy { $0 >= 0 && $0 < 7 })
        expectMoments(ks, mean: 3, variance: 4, kurtosis: 1.75, "int(below: 7)")
    }

    @Test func normalMomentsAndKolmogorovSmirnov() {
        var rng = Random(seed: 2)
        let xs = (0..<Self.n).map { _ in rng.normal(mean: 1.5, std: 2) }
        expectMoments(xs, mean: 1.5, variance: 4, kurtosis: 3, "N(1.5, 4)")
        let d = ksStatistic(xs) { 0.5 * erfc(-($0 - 1.5) / (2 * 2.0.squareRoot())) }
        #expect(d < ksCritical, "KS \(d) vs \(ksCritical)")
        // The test can fail: the same draws against a slightly wrong CDF are rejected.
        let wrong = ksStatistic(xs) { 0.5 * erfc(-($0 - 1.55) / (2.1 * 2.0.squareRoot())) }
        #expect(wrong > ksCritical)
    }

    @Test func laplaceMomentsAndKolmogorovSmirnov() {
        var rng = Random(seed: 3)
        let (mu, b) = (-0.5, 0.7)
        let xs = (0..<Self.n).map { _ in rng.laplace(location: mu, scale: b) }
        expectMoments(xs, mean: mu, variance: 2 * b * b, kurtosis: 6, "Laplace")
        let d = ksStatistic(xs) { x in x < mu ? 0.5 * exp((x - mu) / b) : 1 - 0.5 * exp(-(x - mu) / b) }
        #expect(d < ksCritical, "KS \(d) vs \(ksCritical)")
    }

    @Test(arguments: [0.5, 1.0, 3.7])
    func gammaMoments(shape k: Double) {
        var rng = Random(seed: UInt64(k * 10))
        let theta = 2.0
        let xs = (0..<Self.n).map { _ in rng.gamma(shape: k, scale: theta) }
        #expect(xs.allSatisfy { $0 > 0 })
        expectMoments(xs, mean: k * theta, variance: k * theta * theta, kurtosis: 3 + 6 / k, "Gamma(\(k), \(theta))")
        if k == 1 {
            // Gamma(1, θ) is exponential: a KS check against 1 − e^(−x/θ).
            #expect(ksStatistic(xs, cdf: { 1 - exp(-$0 / theta) }) < ksCritical)
        }
    }

    @Test func sampleGivesDistinctIndicesWithUniformFrequencies() {
        var rng = Random(seed: 4)
        let (n, k, trials) = (20, 5, 20_000)
        var counts = [Int](repeating: 0, count: n)
        for _ in 0..<trials {
            let s = rng.sample(k, from: n)
            #expect(s.count == k && Set(s).count == k && s.allSatisfy { $0 >= 0 && $0 < n })
            for i in s { counts[i] += 1 }
        }
        // Chi-square over the n inclusion counts (expected trials·k/n each); df = n − 1 = 19, and
        // sampling without replacement only lowers the variance, so 60 (p ≈ 1e-5 for χ²₁₉) is generous.
        let e = Double(trials * k) / Double(n)
        let chi2 = counts.reduce(0.0) { $0 + (Double($1) - e) * (Double($1) - e) / e }
        #expect(chi2 < 60, "χ² = \(chi2), counts \(counts)")
        #expect(rng.sample(0, from: 3).isEmpty && Set(rng.sample(3, from: 3)) == [0, 1, 2])
    }

    @Test func permutationIsAUniformPermutation() {
        var rng = Random(seed: 5)
        for n in [0, 1, 2, 17, 1000] { #expect(rng.permutation(n).sorted() == Array(0..<n)) }
        // All 24 orders of 4 elements, each about 1000 times in 24 000 draws (χ²₂₃ < 60).
        var counts: [[Int]: Int] = [:]
        for _ in 0..<24_000 { counts[rng.permutation(4), default: 0] += 1 }
        #expect(counts.count == 24)
        let chi2 = counts.values.reduce(0.0) { $0 + (Double($1) - 1000) * (Double($1) - 1000) / 1000 }
        #expect(chi2 < 60, "χ² = \(chi2)")
    }

    @Test func signIsFair() {
        var rng = Random(seed: 6)
        let s = (0..<Self.n).map { _ in rng.sign() }
        #expect(s.allSatisfy { $0 == 1 || $0 == -1 })
        let plus = s.filter { $0 > 0 }.count
        #expect(abs(Double(plus) - Double(Self.n) / 2) < 6 * (Double(Self.n) / 4).squareRoot())
    }

    @Test func tensorFactoriesHaveTheRequestedMoments() {
        var rng = Random(seed: 8)
        let t = Tensor.normal([200, 500], mean: 2, std: 0.5, rng: &rng)
        expectMoments(t.data.map(Double.init), mean: 2, variance: 0.25, kurtosis: 3, "Tensor.normal")
        let u = Tensor.uniform([200, 500], -1, 3, rng: &rng)
        #expect(u.min() >= -1 && u.max() < 3)
        expectMoments(u.data.map(Double.init), mean: 1, variance: 16.0 / 12, kurtosis: 1.8, "Tensor.uniform")
    }
}
