import Foundation
import UnrollCore

/// Which of a stride-s model's s² shifts the shift average takes, trading quality for time.
/// - `grid(n)`: n evenly spaced phases per axis (⌊k·s/n⌋, k < n), every pair of them: n² shifts.
/// - `lattice(n)`: n shifts (⌊k·s/n⌋, ⌊s·(a·k mod n)/n⌋), k < n, with a the integer coprime to n
///   nearest 0.382·n (n/φ², so the points spread over the s × s square like a Fibonacci lattice).
///   For n ≤ s, every copy has its own phase on each axis: 8 shifts at stride 8 cover all 8 phases
///   of both axes, where the grid's 9 cover 3 of each. (Between s and s² two copies may share a shift.)
/// n ≥ s (grid) or n ≥ s² (lattice) is every shift.
public enum ShiftSet: Equatable, Sendable {
    case all
    case grid(Int)
    case lattice(Int)

    /// The shifts (row phase, column phase), in the order they are averaged.
    public func shifts(stride s: Int) -> [(Int, Int)] {
        switch self {
        case .all:
            return ShiftSet.grid(s).shifts(stride: s)
        case .grid(let n):
            let n = Swift.max(1, Swift.min(n, s))
            let axis = (0..<n).map { $0 * s / n }
            return axis.flatMap { i in axis.map { j in (i, j) } }
        case .lattice(let n):
            if n >= s * s { return ShiftSet.all.shifts(stride: s) }
            let n = Swift.max(1, n), a = ShiftSet.latticeMultiplier(n)
            return (0..<n).map { k in (k * s / n, (a * k % n) * s / n) }
        }
    }

    /// Throws unless n ≥ 1.
    public func validate() throws {
        switch self {
        case .all: break
        case .grid(let n): if n < 1 { throw UnrollError.invalidArgument("shift phases per axis must be ≥ 1, got \(n)") }
        case .lattice(let n): if n < 1 { throw UnrollError.invalidArgument("lattice shifts must be ≥ 1, got \(n)") }
        }
    }

    /// How many shifts `shifts(stride:)` gives.
    public func count(stride s: Int) -> Int { shifts(stride: s).count }

    /// "all 64 shifts", "9 of the 64 shifts (3 phases per axis)" or "8 of the 64 shifts (a lattice,
    /// 8 phases per axis)", for `unroll info` and the reports.
    public func describe(stride s: Int) -> String {
        let n = count(stride: s)
        if n == s * s { return "all \(n) shifts" }
        let phases = Set(shifts(stride: s).map(\.0)).count
        if case .lattice = self { return "\(n) of the \(s * s) shifts (a lattice, \(phases) phases per axis)" }
        return "\(n) of the \(s * s) shifts (\(phases) phases per axis)"
    }

    /// The lattice's step: the integer coprime to n nearest 0.382·n (the smaller one on a tie).
    static func latticeMultiplier(_ n: Int) -> Int {
        func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
        let target = 0.381_966 * Double(n)
        return (0...n).filter { gcd($0, n) == 1 }.min { abs(Double($0) - target) < abs(Double($1) - target) } ?? 0
    }
}

/// CRsAE's s² shift averaging for strided 2-D models (reference crsae §2, the peer's `split_image`),
/// used by `Denoiser.denoise(_:model:shiftAverage:)`: a strided encoder sees only one phase of the
/// image against its code grid, so the image is reflect-padded s² times, shifted by (i, j) ∈ [0, s)²,
/// each copy is encoded and decoded, cropped back to the image, and the s² reconstructions are averaged.
///
/// Copy (i, j) has s + i rows reflected above the image and s + j columns on the left (every phase
/// of the grid once, with at least s pixels of context on each side), and is padded at the
/// bottom/right (reflected) to the common size P = the smallest P ≥ H + 3s − 1 with (P − K) % s = 0,
/// so every copy fits the stride exactly and all copies share one batch.
extension Denoiser {
    /// The padded side for an image side `n` (see the type comment).
    public static func shiftPaddedSide(_ n: Int, stride s: Int, kernel k: Int) -> Int {
        var p = max(n + 3 * s - 1, k)
        while (p - k) % s != 0 { p += 1 }
        return p
    }

    /// Index `i` reflected into 0..<n without repeating the edge (numpy's "reflect"; any i).
    static func reflect(_ i: Int, _ n: Int) -> Int {
        if n == 1 { return 0 }
        let period = 2 * (n - 1)
        var r = i % period
        if r < 0 { r += period }
        return r < n ? r : period - r
    }

    /// The shifted, reflect-padded copies of `image` [H, W] for shifts `shifts` (row-major pairs).
    static func shiftedCopies(_ image: Tensor, shifts: [(Int, Int)], stride s: Int, kernel k: Int) -> Tensor {
        let (h, w) = (image.shape[0], image.shape[1])
        let (ph, pw) = (shiftPaddedSide(h, stride: s, kernel: k), shiftPaddedSide(w, stride: s, kernel: k))
        var out = Tensor(zeros: [shifts.count, ph, pw])
        let cols = (0..<pw).map { $0 }
        image.data.withUnsafeBufferPointer { src in
            out.data.withUnsafeMutableBufferPointer { dst in
                for (b, (i, j)) in shifts.enumerated() {
                    let (r0, c0) = windowOrigin((i, j), stride: s)
                    let colIndex = cols.map { reflect($0 - c0, w) }
                    for r in 0..<ph {
                        let row = reflect(r - r0, h) * w, o = (b * ph + r) * pw
                        for c in 0..<pw { dst[o + c] = src[row + colIndex[c]] }
                    }
                }
            }
        }
        return out
    }

    /// Where copy (i, j)'s image starts inside its padded copy.
    @inline(__always) static func windowOrigin(_ shift: (Int, Int), stride s: Int) -> (row: Int, col: Int) { (s + shift.0, s + shift.1) }

    /// The shifted copies of every image of a batch `[n, H, W]`: image b at `shifts[b]`, its copies
    /// consecutive (`[Σ_b shifts[b].count, P, P]`).
    public static func shiftedCopies(of images: Tensor, shifts: [[(Int, Int)]], stride s: Int, kernel k: Int) -> Tensor {
        let (h, w) = (images.shape[1], images.shape[2])
        let parts = shifts.indices.map { b in shiftedCopies(images.rows(b..<(b + 1)).reshaped([h, w]), shifts: shifts[b], stride: s, kernel: k) }
        let (ph, pw) = (parts[0].shape[1], parts[0].shape[2])
        return Tensor(shape: [parts.reduce(0) { $0 + $1.shape[0] }, ph, pw], data: parts.flatMap(\.data))
    }

    /// The mean over each image's copies (laid out as `shiftedCopies(of:)` makes them) of their
    /// windows: `[Σ_b k_b, P, P]` → `[n, H, W]`; the shift average a model trained through it sees.
    public static func meanOfWindows(_ copies: Tensor, shifts: [[(Int, Int)]], height h: Int, width w: Int, stride s: Int) -> Tensor {
        var out = Tensor(zeros: [shifts.count, h, w])
        copies.data.withUnsafeBufferPointer { src in
            out.data.withUnsafeMutableBufferPointer { dst in
                forEachWindowRow(shifts, height: h, width: w, paddedHeight: copies.shape[1], paddedWidth: copies.shape[2], stride: s) { copy, image, weight in
                    for c in 0..<w { dst[image + c] += weight * src[copy + c] }
                }
            }
        }
        return out
    }

    /// The adjoint of `meanOfWindows`: image b's `g` `[n, H, W]` divided by its number of copies and
    /// placed in each copy's window, zero elsewhere (`[Σ_b k_b, P, P]`).
    public static func spreadToWindows(_ g: Tensor, shifts: [[(Int, Int)]], paddedHeight ph: Int, paddedWidth pw: Int, stride s: Int) -> Tensor {
        let (h, w) = (g.shape[1], g.shape[2])
        var out = Tensor(zeros: [shifts.reduce(0) { $0 + $1.count }, ph, pw])
        g.data.withUnsafeBufferPointer { src in
            out.data.withUnsafeMutableBufferPointer { dst in
                forEachWindowRow(shifts, height: h, width: w, paddedHeight: ph, paddedWidth: pw, stride: s) { copy, image, weight in
                    for c in 0..<w { dst[copy + c] = weight * src[image + c] }
                }
            }
        }
        return out
    }

    /// For every row of every copy's window (image b's copies consecutive, as `shiftedCopies(of:)`
    /// lays them out): the row's start in the copies `[Σ_b k_b, P, P]`, in the images `[n, H, W]`,
    /// and 1/(b's number of copies).
    private static func forEachWindowRow(_ shifts: [[(Int, Int)]], height h: Int, width w: Int, paddedHeight ph: Int, paddedWidth pw: Int,
                                         stride s: Int, _ body: (_ copy: Int, _ image: Int, _ weight: Float) -> Void) {
        var copy = 0
        for (b, list) in shifts.enumerated() {
            let weight = 1 / Float(list.count)
            for shift in list {
                let (r0, c0) = windowOrigin(shift, stride: s)
                for r in 0..<h { body((copy * ph + r0 + r) * pw + c0, (b * h + r) * w, weight) }
                copy += 1
            }
        }
    }

    /// The mean of the s² reconstructions of the shifted copies of `noisy` `[H, W]`, `chunk` copies
    /// per call of `reconstruct` (`[B, P, P]` → `[B, P, P]`).
    ///
    /// The copies are shared out among the workers (`shiftGroups`): whole rounds of one copy per worker,
    /// each worker reconstructing its run of copies on one thread, so that the im2col/col2im passes and
    /// the FISTA updates run on every core, not only the products; then the copies left over, side by
    /// side, each with its share of the workers. The windows are summed in shift order, so the mean
    /// depends on the number of workers only through the split products of the leftover copies (none
    /// when the workers divide the copies).
    public static func averageOverShifts(_ noisy: Tensor, stride: Int, kernel: Int, chunk: Int, shifts set: ShiftSet = .all,
                                         reconstruct: (Tensor) throws -> Tensor) throws -> Tensor {
        let (h, w) = (noisy.shape[0], noisy.shape[1])
        let s = stride
        let pw = shiftPaddedSide(w, stride: s, kernel: kernel), ph = shiftPaddedSide(h, stride: s, kernel: kernel)
        let shifts = set.shifts(stride: s)
        // The reconstructions of the copies `range`, `chunk` at a time, each cropped to the image.
        func windows(_ range: Range<Int>) throws -> [[Float]] {
            var out: [[Float]] = []
            for start in Swift.stride(from: range.lowerBound, to: range.upperBound, by: max(1, chunk)) {
                let batch = Array(shifts[start..<min(range.upperBound, start + max(1, chunk))])
                let rec = try reconstruct(shiftedCopies(noisy, shifts: batch, stride: s, kernel: kernel))
                for (b, shift) in batch.enumerated() {
                    let (r0, c0) = windowOrigin(shift, stride: s)
                    out.append((0..<h).flatMap { r in rec.data[((b * ph + r + r0) * pw + c0)...].prefix(w) })
                }
            }
            return out
        }
        var windowsByShift: [[Float]] = []
        for round in shiftGroups(shifts.count, workers: Parallel.workers) {
            var results = [Result<[[Float]], Error>?](repeating: nil, count: round.count)
            results.withUnsafeMutableBufferPointer { results in
                Parallel.forEachPart(round.count, parts: round.count) { g, _ in
                    results[g] = Parallel.$workers.withValue(round[g].workers) { Result { try windows(round[g].shifts) } }
                }
            }
            for result in results { windowsByShift += try result!.get() }
        }
        var sum = [Double](repeating: 0, count: h * w)
        for window in windowsByShift {
            for i in 0..<(h * w) { sum[i] += Double(window[i]) }
        }
        let inv = 1 / Double(shifts.count)
        return Tensor(shape: [h, w], data: sum.map { Float($0 * inv) })
    }

    /// How `averageOverShifts` shares `count` copies among `workers`: rounds run one after the other,
    /// the groups of a round side by side, each group its consecutive copies with its number of workers.
    /// First ⌊count/workers⌋ copies for each worker alone (one round), then the rest, one copy per group,
    /// the workers spread over them (9 copies, 2 workers: 4 + 4 on one worker each, then 1 on both).
    public static func shiftGroups(_ count: Int, workers: Int) -> [[(shifts: Range<Int>, workers: Int)]] {
        let workers = Swift.max(1, workers), each = count / workers, left = count - each * workers
        var rounds: [[(shifts: Range<Int>, workers: Int)]] = []
        if each > 0 { rounds.append((0..<workers).map { ((each * $0)..<(each * ($0 + 1)), 1) }) }
        if left > 0 {
            let start = each * workers
            rounds.append((0..<left).map { (start + $0)..<(start + $0 + 1) }.enumerated().map { i, r in
                (r, workers / left + (i < workers % left ? 1 : 0))
            })
        }
        return rounds
    }
}
