import Foundation

/// The project's one random generator: xoshiro256** seeded through splitmix64.
///
/// Every random draw in Unroll comes from a `Random` made from a user-visible seed, so the same
/// seed and inputs give bit-identical results. Distributions are implemented here (not taken from
/// the standard library) so their output does not change with the platform.
public struct Random: RandomNumberGenerator, Sendable {
    // Internal to the module but visible to the inlinable generator below: other modules' hot loops
    // (a VSC draw takes half a million numbers a step) inline it instead of calling across modules.
    @usableFromInline var s: (UInt64, UInt64, UInt64, UInt64)
    /// A second normal draw from the last Box–Muller pair.
    private var spareNormal: Double?

    public init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    /// The full generator state, for checkpoints: `Random(state:)` continues the exact stream.
    public var state: [UInt64] {
        [s.0, s.1, s.2, s.3, spareNormal.map { $0.bitPattern } ?? 0, spareNormal == nil ? 0 : 1]
    }

    public init?(state: [UInt64]) {
        guard state.count == 6, state[0] | state[1] | state[2] | state[3] != 0 else { return nil }
        s = (state[0], state[1], state[2], state[3])
        spareNormal = state[5] == 1 ? Double(bitPattern: state[4]) : nil
    }

    @inlinable @inline(__always)
    static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    @inlinable
    public mutating func next() -> UInt64 {
        let result = Random.rotl(s.1 &* 5, 7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = Random.rotl(s.3, 45)
        return result
    }

    /// An independent stream derived from this one (for parallel workers or sub-tasks).
    public mutating func split() -> Random { Random(seed: next()) }

    /// An independent generator for `key` (a worker's share of one batch, say), seeded from this
    /// generator's state and the key without advancing this one.
    public func derived(_ key: [UInt64]) -> Random {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for v in state + key { h = (h ^ v) &* 0x0000_0100_0000_01b3; h ^= h >> 29 }
        return Random(seed: h)
    }

    /// Uniform in [0, 1) with 53 random bits.
    @inlinable
    public mutating func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Uniform in [a, b).
    public mutating func uniform(_ a: Double, _ b: Double) -> Double { a + (b - a) * uniform() }

    /// Uniform integer in 0..<n (unbiased, by rejection).
    public mutating func int(below n: Int) -> Int {
        precondition(n > 0, "int(below:) needs n > 0")
        let bound = UInt64(n)
        let limit = UInt64.max - UInt64.max % bound
        while true {
            let v = next()
            if v < limit { return Int(v % bound) }
        }
    }

    /// Standard normal (Box–Muller; the pair's second value is kept for the next call).
    public mutating func normal() -> Double {
        if let z = spareNormal {
            spareNormal = nil
            return z
        }
        var u = uniform()
        while u == 0 { u = uniform() }
        let r = (-2 * log(u)).squareRoot(), theta = 2 * Double.pi * uniform()
        spareNormal = r * sin(theta)
        return r * cos(theta)
    }

    public mutating func normal(mean: Double, std: Double) -> Double { mean + std * normal() }

    /// Laplace(location μ, scale b): density exp(−|x−μ|/b)/(2b).
    public mutating func laplace(location: Double = 0, scale: Double) -> Double {
        let u = uniform() - 0.5
        return location - scale * (u < 0 ? -1 : 1) * log(1 - 2 * abs(u))
    }

    /// Gamma(shape k, scale θ) by Marsaglia–Tsang; shape < 1 boosted by U^(1/k).
    public mutating func gamma(shape k: Double, scale: Double = 1) -> Double {
        precondition(k > 0 && scale > 0, "gamma needs shape > 0 and scale > 0")
        if k < 1 {
            var u = uniform()
            while u == 0 { u = uniform() }
            return gamma(shape: k + 1, scale: scale) * pow(u, 1 / k)
        }
        let d = k - 1.0 / 3.0, c = 1 / (9 * d).squareRoot()
        while true {
            var x: Double, v: Double
            repeat {
                x = normal()
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = uniform()
            if u < 1 - 0.0331 * x * x * x * x { return d * v * scale }
            if log(u) < 0.5 * x * x + d * (1 - v + log(v)) { return d * v * scale }
        }
    }

    /// Fair ±1.
    public mutating func sign() -> Float { next() >> 63 == 0 ? 1 : -1 }

    /// `k` distinct indices from 0..<n, uniformly (Floyd's algorithm), in the order drawn.
    public mutating func sample(_ k: Int, from n: Int) -> [Int] {
        precondition(k >= 0 && k <= n, "cannot sample \(k) distinct values from \(n)")
        var chosen = Set<Int>(minimumCapacity: k)
        var out: [Int] = []
        out.reserveCapacity(k)
        for j in (n - k)..<n {
            let t = int(below: j + 1)
            let pick = chosen.contains(t) ? j : t
            chosen.insert(pick)
            out.append(pick)
        }
        return out
    }

    /// A uniformly random permutation of 0..<n (Fisher–Yates).
    public mutating func permutation(_ n: Int) -> [Int] {
        var a = Array(0..<n)
        if n > 1 {
            for i in stride(from: n - 1, to: 0, by: -1) { a.swapAt(i, int(below: i + 1)) }
        }
        return a
    }
}

extension Tensor {
    /// i.i.d. N(mean, std²) entries.
    public static func normal(_ shape: [Int], mean: Float = 0, std: Float = 1, rng: inout Random) -> Tensor {
        var t = Tensor(zeros: shape)
        for i in 0..<t.count { t.data[i] = Float(rng.normal(mean: Double(mean), std: Double(std))) }
        return t
    }

    /// i.i.d. U[a, b) entries.
    public static func uniform(_ shape: [Int], _ a: Float = 0, _ b: Float = 1, rng: inout Random) -> Tensor {
        var t = Tensor(zeros: shape)
        for i in 0..<t.count { t.data[i] = Float(rng.uniform(Double(a), Double(b))) }
        return t
    }
}
