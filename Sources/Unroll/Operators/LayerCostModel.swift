import UnrollCore

/// The fast path's choices, made by estimated time. Costs are counted in multiply-adds of our own
/// contiguous row loop (one term of v += c·G[k, :]); the two rates below convert the other kinds of
/// work into that unit. They were measured on the 2-core EPYC with OpenBLAS this project runs on
/// (single-thread CPU time, docs/performance-design.md); being off by 2× only moves the crossovers a little.
enum LayerCostModel {
    /// A multiply-add inside sgemm costs 1/`gemmSpeedup` of one in our row loops (measured: sgemm
    /// ≈ 29 G multiply-adds/s per core; our register-blocked scatter on rows of 100 ≈ 9 G/s, streaming
    /// saxpy on rows of 1500 ≈ 6 G/s).
    static let gemmSpeedup = 4.0
    /// A multiply-add that goes through an index (Σ_q c_q·G[j, k_q], or A[k, l] += c·y_l) into a p×p
    /// matrix that fits in L2 (p ≤ 512) costs this many units (measured ≈ 1 cycle each, against ~4
    /// multiply-adds per cycle for the row loop) ...
    static let gatherCost = 4.0
    /// ... and this many when it does not (p = 1500: each access fetches most of a cache line from L3,
    /// 16 floats' worth of streaming).
    static let gatherCostOutOfCache = 16.0

    /// The cost of one indexed multiply-add into a square matrix with rows of `width`.
    @inline(__always)
    static func gatherCost(width: Int) -> Double { width <= 512 ? gatherCost : gatherCostOutOfCache }
    /// Code density assumed when choosing the form before any layer has run: after the first layers
    /// a few per cent of the codes are non-zero (0.7 % in PUDLE's fig5 setting, ~30 % in its theory one).
    static let typicalDensity = 0.05
    /// Below this much work per part a parallel region costs more than it saves. A helper joins a region
    /// ~40 µs after it starts (`WorkerPool.c`; libdispatch took ~45 µs at best), and the layers' row loops
    /// share the L3 bandwidth: a fig5 training layer (~1.4 M units) split in two made the step slower
    /// (g_ae-lasso 0.074 → 0.061 s at 2 threads when it runs whole, 2026-12-06), while pudle-theory's
    /// threshold loops (4 M units over 10 000 samples) need their split (g_dec 0.23 s split, 0.28 s whole).
    /// With the pool, 2¹⁹ was no faster on fig5 than 2²⁰ (three alternating rounds).
    static let minWorkPerPart = 1 << 20

    /// Whether the Gram form pays for a network of `layers` layers on `batch` samples: forming G = W·Wᵀ
    /// costs p²m/2 (syrk) once, after which every layer works on rows of G (nnz·p); the direct form
    /// instead multiplies the dense residual by Wᵀ in every layer (B·m·p, twice per layer when
    /// training: forward and backward) and works on rows of W (nnz·m).
    static func prefersGram(atoms p: Int, signalSize m: Int, batch: Int, layers: Int, training: Bool) -> Bool {
        let (p, m, b, t) = (Double(p), Double(m), Double(batch), Double(layers))
        let passes = training ? 2.0 : 1.0
        let gram = p * p * m / 2 / gemmSpeedup + t * passes * typicalDensity * b * p * p
        let direct = t * passes * (b * m * p / gemmSpeedup + typicalDensity * b * p * m)
        return gram <= direct
    }

    /// Whether a layer product with a `rows × inner` left operand holding `nonZeros` non-zeros should
    /// be one dense sgemm (rows·inner·cols / speedup) rather than a row scatter over the non-zeros
    /// (nonZeros·cols). The common factor cols cancels: dense above a density of 1/speedup.
    static func prefersDense(nonZeros: Int, rows: Int, inner: Int) -> Bool {
        Double(nonZeros) * gemmSpeedup > Double(rows) * Double(inner)
    }

    /// Per sample: `terms` non-zeros contracted against `needed` output entries of a length-`width`
    /// row — gather just those entries (terms·needed indexed loads) or scatter whole rows (terms·width)?
    @inline(__always)
    static func prefersGather(terms: Int, needed: Int, width: Int) -> Bool {
        Double(needed) * gatherCost(width: width) < Double(width)
    }

    /// Cost of the cheaper of gathering and scattering (see `prefersGather`), in units.
    @inline(__always)
    static func sparseCost(terms: Int, needed: Int, width: Int) -> Double {
        Double(terms) * min(Double(needed) * gatherCost(width: width), Double(width + 1))
    }

    /// Parallel parts for `work` units, at most `limit` (the number of per-part scratch buffers).
    static func parts(work: Double, limit: Int = Parallel.workers) -> Int {
        max(1, min(limit, Parallel.workers, Int(work / Double(minWorkPerPart))))
    }
}
