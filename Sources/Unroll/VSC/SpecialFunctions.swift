import Foundation

/// Special functions in Double for the variational families: the Gamma-distributed thresholds,
/// their KL divergence and their implicit reparameterisation gradient.
public enum SpecialFunctions {
    /// log Γ(x) for x > 0 (the C library's `lgamma`).
    public static func logGamma(_ x: Double) -> Double { Foundation.lgamma(x) }

    /// Digamma ψ(x) = d/dx log Γ(x) for x > 0: the recurrence ψ(x) = ψ(x+1) − 1/x up to x ≥ 10,
    /// then the asymptotic series (error < 1e-15 there).
    public static func digamma(_ x: Double) -> Double {
        precondition(x > 0, "digamma needs x > 0, got \(x)")
        var x = x, shift = 0.0
        while x < 10 {
            shift -= 1 / x
            x += 1
        }
        let r = 1 / (x * x)
        // ln x − 1/(2x) − Σ B_2k / (2k x^2k)
        let series = r * (1.0 / 12 - r * (1.0 / 120 - r * (1.0 / 252 - r * (1.0 / 240 - r * (1.0 / 132)))))
        return shift + log(x) - 0.5 / x - series
    }

    /// Trigamma ψ′(x) for x > 0: recurrence ψ′(x) = ψ′(x+1) + 1/x² up to x ≥ 10, then the asymptotic series.
    public static func trigamma(_ x: Double) -> Double {
        precondition(x > 0, "trigamma needs x > 0, got \(x)")
        var x = x, shift = 0.0
        while x < 10 {
            shift += 1 / (x * x)
            x += 1
        }
        let r = 1 / (x * x)
        // 1/x + 1/(2x²) + Σ B_2k / x^(2k+1)
        let series = (1 + r * (1.0 / 6 - r * (1.0 / 30 - r * (1.0 / 42 - r * (1.0 / 30 - r * (5.0 / 66)))))) / x
        return shift + series + 0.5 * r
    }

    /// log of the standard Gamma(a) density at x > 0: (a−1) log x − x − log Γ(a).
    public static func logGammaDensity(_ x: Double, shape a: Double) -> Double {
        (a - 1) * log(x) - x - logGamma(a)
    }

    /// Regularised lower incomplete gamma P(a, x) = γ(a, x)/Γ(a), the standard Gamma(a) CDF.
    /// Series for x < a + 1, Lentz's continued fraction for Q = 1 − P otherwise.
    public static func regularizedLowerGamma(_ a: Double, _ x: Double) -> Double {
        precondition(a > 0, "incomplete gamma needs a > 0, got \(a)")
        if x <= 0 { return 0 }
        if x < a + 1 { return lowerSeries(a, x) }
        return 1 - upperFractionScaled(a, x) * exp(-x + a * log(x) - logGamma(a))
    }

    /// P(a, x) by its power series, e^{−x} x^a / Γ(a+1) · Σ_n x^n / ((a+1)…(a+n)).
    static func lowerSeries(_ a: Double, _ x: Double) -> Double {
        var term = 1.0, sum = 1.0, n = 0.0
        while n < 100_000 {
            n += 1
            term *= x / (a + n)
            sum += term
            if term < sum * 1e-17 { break }
        }
        return sum * exp(-x + a * log(x) - logGamma(a + 1))
    }

    /// The continued fraction h(a, x) with Q(a, x) = e^{−x} x^a / Γ(a) · h (modified Lentz).
    static func upperFractionScaled(_ a: Double, _ x: Double) -> Double {
        let tiny = 1e-300
        var b = x + 1 - a, c = 1 / tiny, d = 1 / b, h = d
        var i = 1.0
        while i < 100_000 {
            let an = -i * (i - a)
            b += 2
            d = an * d + b
            if abs(d) < tiny { d = tiny }
            c = b + an / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            h *= delta
            if abs(delta - 1) < 1e-16 { break }
            i += 1
        }
        return h
    }

    /// The continued fraction h(a, x) of `upperFractionScaled` and ∂ log h/∂a, by carrying the
    /// derivative of every quantity of Lentz's recursion along with it (forward-mode differentiation).
    static func upperFractionScaledWithShapeDerivative(_ a: Double, _ x: Double) -> (h: Double, dLogH: Double) {
        let tiny = 1e-300
        var b = x + 1 - a, db = -1.0
        var c = 1 / tiny, dc = 0.0
        var d = 1 / b, dd = -db / (b * b)
        var h = d, dh = dd
        var i = 1.0
        while i < 100_000 {
            let an = -i * (i - a), dan = i
            b += 2
            var dNext = an * d + b, ddNext = dan * d + an * dd + db
            if abs(dNext) < tiny { (dNext, ddNext) = (tiny, 0) }
            var cNext = b + an / c, dcNext = db + (dan * c - an * dc) / (c * c)
            if abs(cNext) < tiny { (cNext, dcNext) = (tiny, 0) }
            (c, dc) = (cNext, dcNext)
            (d, dd) = (1 / dNext, -ddNext / (dNext * dNext))
            let delta = d * c, dDelta = dd * c + d * dc
            (h, dh) = (h * delta, dh * delta + h * dDelta)
            if abs(delta - 1) < 1e-15 && abs(dDelta) < 1e-15 * max(1, abs(dh / h)) { break }
            i += 1
        }
        return (h, dh / h)
    }

    /// ∂x/∂a of the standard Gamma(a) quantile at fixed CDF value: −(∂P/∂a)(x; a) / f(x; a),
    /// the implicit reparameterisation gradient of a Gamma(a, 1) sample x.
    ///
    /// In the series region (x < a + 1) the ratio is summed term by term in closed form,
    /// −Σ_n c_n (log x − ψ(a+n+1)) with c_n = x^{n+1}/(a(a+1)…(a+n)), which never forms the tiny
    /// density. Beyond, ∂Q/∂a / f = x·h·(log x − ψ(a) + ∂_a log h) with the continued fraction h
    /// differentiated alongside its evaluation (forward mode). For a ≥ 2000 the
    /// Wilson–Hilferty cube-root normal approximation is differentiated at fixed normal score.
    public static func gammaQuantileShapeDerivative(_ x: Double, shape a: Double) -> Double {
        precondition(a > 0, "gamma shape must be > 0, got \(a)")
        if !(x > 0) { return 0 }  // x^{n+1} log x → 0
        if x.isInfinite { return 0 }
        if a >= 2000 {
            let t = cbrt(x / a), rootA = a.squareRoot()
            let z = (t - 1 + 1 / (9 * a)) * 3 * rootA
            let dt = 1 / (9 * a * a) - z / (6 * a * rootA)
            return t * t * t + 3 * a * t * t * dt
        }
        let logX = log(x)
        if x < a + 1 {
            // Relative precision ~1e-14 is far beyond the Float gradients this feeds.
            var c = x / a, psi = digamma(a + 1), sum = 0.0, sumC = 0.0, n = 0.0
            while n < 100_000 {
                sum += c * (logX - psi)
                sumC += c
                n += 1
                let inverse = 1 / (a + n)  // c_n = c_{n−1}·x/(a+n), ψ(a+n+1) = ψ(a+n) + 1/(a+n)
                psi += inverse
                c *= x * inverse
                if c < sumC * 1e-15 { break }
            }
            return -sum
        }
        let (h, dLogH) = upperFractionScaledWithShapeDerivative(a, x)
        return x * h * (logX - digamma(a) + dLogH)
    }
}
