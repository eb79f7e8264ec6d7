import CUnrollSupport
import Foundation
import UnrollCore

/// The exact lasso code of every signal, min_z ½‖x − zW‖² + λ‖z‖₁ (W `[p, m]`, atoms as rows), by the
/// homotopy (LARS-lasso) path: from λ_max = max_j |(Wx)_j|, where z = 0, down to λ, the active set changes
/// one event at a time — an atom joins when its residual correlation reaches the current λ, leaves when its
/// coefficient crosses zero — and between events z moves along G_AA⁻¹ s_A (G = WWᵀ, s the active signs).
///
/// Where ISTA needs tens of layers, each a product with G over the codes' non-zeros, a path to a k-sparse
/// code takes about k events of p·|A| multiply-adds each. The path runs in Float; at its end the active
/// coefficients are solved once more in Double from c = Wx and G (z_A = G_AA⁻¹(c_A − λ s_A)) and the
/// optimality conditions are checked (|c_j − G_jA z_A| ≤ λ off the support, signs kept on it); a signal
/// that fails them (degenerate ties, a path cut short by `maxEvents`) is solved by the unrolled encoder
/// run to convergence instead.
public struct LassoHomotopy: Sendable {
    public var lambda: Float
    /// Events per signal before the path is cut short (then the unrolled encoder solves that signal).
    public var maxEvents: Int
    /// Relative slack of the optimality check, ε in |c_j − G_jA z_A| ≤ λ(1 + ε).
    public var slack: Double = 1e-4

    public init(lambda: Float, maxEvents: Int = 500) {
        self.lambda = lambda
        self.maxEvents = maxEvents
    }

    /// What a run did: the signals whose path met the optimality conditions, and those the encoder solved.
    public struct Report: Sendable {
        public var exact: Int
        public var solvedByEncoder: Int
        public var events: Int
    }

    /// Codes `[n, p]` for signals `[n, m]`.
    public func encode(_ signals: Tensor, with dictionary: DenseDictionary) throws -> (codes: Tensor, report: Report) {
        guard lambda.isFinite, lambda >= 0 else { throw UnrollError.invalidArgument("lasso λ must be finite and ≥ 0, got \(lambda)") }
        guard maxEvents >= 1 else { throw UnrollError.invalidArgument("homotopy events must be ≥ 1, got \(maxEvents)") }
        let w = dictionary.weights, (p, m) = (w.rows, w.cols)
        guard signals.rank == 2, signals.cols == m else {
            throw UnrollError.shapeMismatch("signals must be [n, \(m)] for a dictionary of \(p) atoms of \(m), got \(signals.shape)")
        }
        if signals.hasNonFinite { throw UnrollError.nonFinite("signals contain NaN or Inf") }
        let n = signals.rows
        guard n > 0 else { return (Tensor(zeros: [0, p]), Report(exact: 0, solvedByEncoder: 0, events: 0)) }
        let g = Self.gram(w)                                          // [p, p], both triangles
        var outcomes = [UInt8](repeating: 0, count: n), events = [Int](repeating: 0, count: n)
        // Every row of the codes is written by its path, so the array is not zeroed first; c = Wx is made a
        // block of rows at a time, each worker into its own buffer, rather than as one [n, p] array.
        let codeData = [Float](unsafeUninitializedCapacity: n * p) { zp, initialized in
            signals.data.withUnsafeBufferPointer { xp in
                w.data.withUnsafeBufferPointer { wp in
                    g.data.withUnsafeBufferPointer { gp in
                        outcomes.withUnsafeMutableBufferPointer { op in
                            events.withUnsafeMutableBufferPointer { ep in
                                let (xp, wp, gp, zp, op, ep) = (xp.baseAddress!, wp.baseAddress!, gp.baseAddress!, zp.baseAddress!,
                                                                op.baseAddress!, ep.baseAddress!)
                                Parallel.forEachChunk(n, minPerPart: 16) { rows in
                                    var work = Workspace(p: p)
                                    var c = [Float](repeating: 0, count: Swift.min(Self.rowBlock, rows.count) * p)
                                    for lo in Swift.stride(from: rows.lowerBound, to: rows.upperBound, by: Self.rowBlock) {
                                        let hi = Swift.min(lo + Self.rowBlock, rows.upperBound)
                                        c.withUnsafeMutableBufferPointer { cp in
                                            Parallel.serially {
                                                BLAS.sgemm(transA: false, transB: true, m: hi - lo, n: p, k: m, alpha: 1, a: xp + lo * m, lda: m,
                                                           b: wp, ldb: m, beta: 0, c: cp.baseAddress!, ldc: p)
                                            }
                                            for i in lo..<hi {
                                                let r = solve(c: cp.baseAddress! + (i - lo) * p, g: gp, p: p, into: zp + i * p, work: &work)
                                                (op[i], ep[i]) = (r.exact ? 1 : 0, r.events)
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            initialized = n * p
        }
        var codes = Tensor(shape: [n, p], data: codeData)
        // Signals the path did not solve: the unrolled encoder as a solver (FISTA, each sample to a change of 1e-7).
        let inexact = (0..<n).filter { outcomes[$0] == 0 }
        if !inexact.isEmpty {
            var solver = UnrolledEncoder(layers: UnrolledEncoder.maxLayers, algorithm: .fista, lambda: .scalar(lambda),
                                         step: .inverseLipschitz(), tolerance: 1e-7)
            solver.stopsPerSample = true
            let finished = try solver.encode(Tensor(shape: [inexact.count, m], data: inexact.flatMap { signals.data[($0 * m)..<(($0 + 1) * m)] }),
                                             with: dictionary)
            for (row, i) in inexact.enumerated() {
                for j in 0..<p { codes.data[i * p + j] = finished.data[row * p + j] }
            }
        }
        return (codes, Report(exact: n - inexact.count, solvedByEncoder: inexact.count, events: events.reduce(0, +)))
    }

    /// Signals whose c = Wx one product makes: large enough that the product runs at sgemm's rate (each call
    /// packs W anew), small enough that the buffer stays a small part of the codes' memory.
    static let rowBlock = 1024

    /// G = WWᵀ with both triangles filled.
    static func gram(_ w: Tensor) -> Tensor {
        let p = w.rows
        var g = Tensor(zeros: [p, p])
        w.data.withUnsafeBufferPointer { wp in
            g.data.withUnsafeMutableBufferPointer { gp in
                BLAS.ssyrkUpper(n: p, k: w.cols, alpha: 1, a: wp.baseAddress!, lda: w.cols, beta: 0, c: gp.baseAddress!, ldc: p)
                for i in 0..<p { for j in 0..<i { gp[i * p + j] = gp[j * p + i] } }
            }
        }
        return g
    }

    /// Per-thread buffers.
    struct Workspace {
        var r: [Float], a: [Float], t: [Float]
        /// +∞ for the active atoms (they cannot join), 0 elsewhere.
        var blocked: [Float]
        var active: [Int] = [], signs: [Double] = [], z: [Double] = []
        /// G_AA in Double, k × k row-major for the k active atoms, kept in step with `active` (a join
        /// adds a row and a column, a leave removes them) so that an event gathers no entry of G twice.
        var gaa: [Double] = []

        /// Adds atom `j` to the active set, with its row and column of G_AA.
        mutating func join(_ j: Int, sign: Double, g: UnsafePointer<Float>, p: Int) {
            let k = active.count
            var next = [Double](repeating: 0, count: (k + 1) * (k + 1))
            for u in 0..<k {
                for v in 0..<k { next[u * (k + 1) + v] = gaa[u * k + v] }
                next[u * (k + 1) + k] = Double(g[active[u] * p + j])
                next[k * (k + 1) + u] = Double(g[j * p + active[u]])
            }
            next[k * (k + 1) + k] = Double(g[j * p + j])
            gaa = next
            active.append(j)
            signs.append(sign)
            z.append(0)
        }

        /// Removes the active atom at position `u`, with its row and column of G_AA.
        mutating func leave(at u: Int) {
            let k = active.count
            var next = [Double]()
            next.reserveCapacity((k - 1) * (k - 1))
            for a in 0..<k where a != u { for b in 0..<k where b != u { next.append(gaa[a * k + b]) } }
            gaa = next
            active.remove(at: u)
            signs.remove(at: u)
            z.remove(at: u)
        }

        init(p: Int) {
            r = [Float](repeating: 0, count: p)
            (a, t, blocked) = (r, r, r)
        }
    }

    /// One signal's path; writes z (all p entries) and says whether the end point passed the check.
    func solve(c: UnsafePointer<Float>, g: UnsafePointer<Float>, p: Int, into out: UnsafeMutablePointer<Float>,
               work: inout Workspace) -> (exact: Bool, events: Int) {
        out.update(repeating: 0, count: p)
        let target = Double(lambda)
        work.active.removeAll(keepingCapacity: true)
        work.gaa.removeAll(keepingCapacity: true)
        work.signs.removeAll(keepingCapacity: true)
        work.z.removeAll(keepingCapacity: true)
        var best = 0
        for j in 0..<p {
            work.r[j] = c[j]
            if abs(c[j]) > abs(c[best]) { best = j }
        }
        var lam = Double(abs(c[best]))
        if lam <= target { return (true, 0) }
        work.join(best, sign: c[best] > 0 ? 1 : -1, g: g, p: p)
        work.blocked[best] = .infinity
        var count = 0, justLeft = -1
        while count < maxEvents {
            count += 1
            let k = work.active.count
            // d = G_AA⁻¹ s_A
            guard let chol = try? Cholesky(work.gaa, size: k) else { break }
            let d = chol.solve(work.signs)
            // a = G_{:,A} d (rows of G, by symmetry)
            let weights = d.map(Float.init)
            work.a.withUnsafeMutableBufferPointer { a in
                a.update(repeating: 0)
                unroll_homotopy_add_rows(Int32(p), a.baseAddress!, g, work.active, weights, Int32(k))
            }
            // The next event: the target, an atom joining, or an active coefficient reaching zero.
            var gamma = lam - target, join = -1, joinSign = 0.0, leave = -1
            // Atom j joins after t_j = (λ ∓ r_j)/(1 ∓ a_j) > 0, the smaller of the two; t is computed for
            // every atom without branches (active ones and the one that just left blocked by +∞).
            if justLeft >= 0 { work.blocked[justLeft] = .infinity }
            let lamF = Float(lam)
            var tMin: Float = 0
            let jMin = unroll_homotopy_next_join(Int32(p), lamF, work.r, work.a, work.blocked, &work.t, &tMin)
            if justLeft >= 0 { work.blocked[justLeft] = 0 }
            var best = Float(gamma)
            if tMin < best {
                best = tMin
                join = jMin
                let (n1, d1) = (lamF - work.r[jMin], 1 - work.a[jMin])
                joinSign = d1 > 0 && n1 > 0 && n1 / d1 == tMin ? 1 : -1
            }
            if join >= 0 { gamma = Double(best) }
            for u in 0..<k where d[u] != 0 {
                let t = -work.z[u] / d[u]
                if t > 0 && t < gamma { (gamma, join, leave) = (t, -1, u) }
            }
            for u in 0..<k { work.z[u] += gamma * d[u] }
            let step = Float(gamma)
            work.r.withUnsafeMutableBufferPointer { r in
                work.a.withUnsafeBufferPointer { a in for j in 0..<p { r[j] -= step * a[j] } }
            }
            lam -= gamma
            justLeft = -1
            if join >= 0 {
                work.blocked[join] = .infinity
                work.join(join, sign: joinSign, g: g, p: p)
            } else if leave >= 0 {
                justLeft = work.active[leave]
                work.blocked[justLeft] = 0
                work.leave(at: leave)
            } else {
                break   // reached λ
            }
        }
        let exact = polish(c: c, g: g, p: p, into: out, work: work)
        for j in work.active { work.blocked[j] = 0 }   // clean for the next signal
        return (exact, count)
    }

    /// z_A = G_AA⁻¹(c_A − λ s_A) in Double, written to `out`; whether the optimality conditions hold
    /// (`work.blocked` still marks the support).
    func polish(c: UnsafePointer<Float>, g: UnsafePointer<Float>, p: Int, into out: UnsafeMutablePointer<Float>,
                work: Workspace) -> Bool {
        let k = work.active.count, lam = Double(lambda)
        guard k > 0 else { return false }
        guard let chol = try? Cholesky(work.gaa, size: k) else { return false }
        let z = chol.solve((0..<k).map { Double(c[work.active[$0]]) - lam * work.signs[$0] })
        var ok = true
        for u in 0..<k {
            if z[u] * work.signs[u] < 0 { ok = false }
            out[work.active[u]] = Float(z[u])
        }
        guard ok else { return false }
        // Off the support: |c_j − Σ_u G_{j,A_u} z_u| ≤ λ(1 + slack).
        var residual = (0..<p).map { Double(c[$0]) }
        residual.withUnsafeMutableBufferPointer { Self.addRows(g, p: p, rows: work.active, weights: z.map { -$0 }, into: $0.baseAddress!) }
        let bound = lam * (1 + slack)
        for j in 0..<p where work.blocked[j] == 0 && abs(residual[j]) > bound { return false }   // off the support
        return true
    }

    /// out[j] += Σ_u weights[u]·G[rows[u], j] in Double (the polish's residual; the path's Float sum is
    /// `unroll_homotopy_add_rows`).
    static func addRows(_ g: UnsafePointer<Float>, p: Int, rows: [Int], weights: [Double], into out: UnsafeMutablePointer<Double>) {
        for (row, w) in zip(rows, weights) {
            let r = g + row * p
            for j in 0..<p { out[j] += w * Double(r[j]) }
        }
    }
}

extension UnrolledAutoencoder where Op == DenseDictionary {
    /// The codes the encoder converges to as its layers grow, computed exactly: the lasso minimum at the
    /// model's λ (`LassoHomotopy`). Defined for a tied soft-threshold encoder with one λ and no decay,
    /// the models whose layers are ISTA/FISTA steps on that lasso; others are refused, saying why.
    public func exactLassoCodes(_ signals: Tensor) throws -> Tensor {
        var why: [String] = []
        if encoder.threshold != .soft { why.append("its threshold is \(encoder.threshold.rawValue), not soft") }
        if !encoder.lambdaIsPenalty { why.append("its λ is a threshold, not a lasso penalty") }
        if beta != 1 { why.append("its λ decays over the layers (β \(beta))") }
        if analysis != nil || synthesis != nil { why.append("its encoder and decoder are untied") }
        if em != nil { why.append("its λ comes from the EM step") }
        guard case let .scalar(lambda) = encoder.lambda else {
            throw UnrollError.invalidArgument("the exact lasso codes need one λ for every atom; this model has one per atom")
        }
        guard why.isEmpty else {
            throw UnrollError.invalidArgument("the exact lasso codes need a tied soft-threshold encoder with one λ and no decay: " + why.joined(separator: "; "))
        }
        return try LassoHomotopy(lambda: lambda).encode(signals, with: dictionary).codes
    }
}
