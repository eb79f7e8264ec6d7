import UnrollCore

/// The layer outputs z_1 … z_T of one forward pass, stored compactly for the backward pass.
///
/// Per layer: a bitmask of the non-zeros (one bit per code entry, each sample's row padded to whole
/// 64-bit words) and the non-zero values in row order, with each row's offset into the values. With
/// code density ρ this takes p/8 + 4ρp bytes per sample and layer instead of 4p (the theory run:
/// ρ ≈ 0.3 on average, so ~3× less than dense; the fig5 run: ρ < 1 %, so ~20× less). The backward
/// only needs the masks (the thresholds' derivatives) and the values (the layer inputs y_t).
final class CodeHistory {
    /// Samples per layer.
    let rows: Int
    /// Code entries per sample.
    let width: Int
    /// 64-bit mask words per sample.
    let words: Int
    private(set) var layers: [LayerCodes] = []

    init(rows: Int, width: Int) {
        self.rows = rows
        self.width = width
        self.words = (width + 63) / 64
    }

    var count: Int { layers.count }

    /// Bytes held (masks, offsets and values of every layer).
    var bytes: Int { layers.reduce(0) { $0 + $1.bytes } }

    /// Appends a layer given in dense storage (`rows × width`, zeros outside the support). Without
    /// branches on the values (codes near 50 % dense mispredict every other entry): the mask words
    /// are built from comparisons, the counts are their popcounts, and the values are gathered by
    /// walking the set bits.
    func append(dense z: UnsafePointer<Float>) {
        let (w, words) = (width, self.words)
        let counts = UnsafeMutablePointer<Int32>.allocate(capacity: max(1, rows))
        let bits = UnsafeMutablePointer<UInt64>.allocate(capacity: max(1, rows * words))
        defer { counts.deallocate(); bits.deallocate() }
        let minPerPart = max(1, (1 << 16) / max(1, w))
        Parallel.forEachChunk(rows, minPerPart: minPerPart) { range in
            for i in range {
                let row = z + i * w
                var c = 0
                for k in 0..<words {
                    let lo = k * 64, n = min(64, w - lo)
                    var word: UInt64 = 0
                    for b in 0..<n { word |= UInt64(row[lo + b] != 0 ? 1 : 0) &<< UInt64(b) }
                    bits[i * words + k] = word
                    c += word.nonzeroBitCount
                }
                counts[i] = Int32(c)
            }
        }
        let layer = LayerCodes(rows: rows, words: words, counts: counts)
        layer.mask.update(from: bits, count: rows * words)
        Parallel.forEachChunk(rows, minPerPart: minPerPart) { range in
            for i in range {
                let row = z + i * w
                var q = layer.rowStart[i]
                for k in 0..<words {
                    var word = bits[i * words + k]
                    while word != 0 {
                        layer.values[q] = row[k * 64 + word.trailingZeroBitCount]
                        q += 1
                        word &= word - 1
                    }
                }
            }
        }
        layers.append(layer)
    }

    /// Appends a layer given as dense storage plus each row's support list (row i's sorted indices at
    /// `support[i·width ..< i·width + counts[i]]`).
    func append(dense z: UnsafePointer<Float>, support: UnsafePointer<Int32>, counts: UnsafePointer<Int32>) {
        let layer = LayerCodes(rows: rows, words: words, counts: counts)
        let w = width
        let total = layer.rowStart[rows]
        Parallel.forEachChunk(rows, minPerPart: max(1, rows * 4096 / max(1, total + rows * words))) { range in
            for i in range {
                let start = layer.rowStart[i], s = support + i * w, row = z + i * w
                let mask = layer.mask + i * self.words
                for q in 0..<Int(counts[i]) {
                    let j = Int(s[q])
                    mask[j >> 6] |= 1 << UInt64(j & 63)
                    layer.values[start + q] = row[j]
                }
            }
        }
        layers.append(layer)
    }

    /// Appends a layer given as consecutive blocks of its rows (the parts of a forward that split the
    /// samples), each a layer of a history of the same width.
    func append(concatenating blocks: [LayerCodes]) {
        precondition(blocks.reduce(0) { $0 + $1.rows } == rows && blocks.allSatisfy { $0.words == words })
        let counts = UnsafeMutablePointer<Int32>.allocate(capacity: max(1, rows))
        defer { counts.deallocate() }
        var i = 0
        for block in blocks {
            for r in 0..<block.rows { counts[i + r] = Int32(block.count(row: r)) }
            i += block.rows
        }
        let layer = LayerCodes(rows: rows, words: words, counts: counts)
        var (row, value) = (0, 0)
        for block in blocks {
            (layer.mask + row * words).update(from: block.mask, count: block.rows * words)
            (layer.values + value).update(from: block.values, count: block.nonZeros)
            row += block.rows
            value += block.nonZeros
        }
        layers.append(layer)
    }

    /// Layer t (1-based) as a dense `rows × width` tensor.
    func dense(layer t: Int) -> Tensor {
        var out = Tensor(zeros: [rows, width])
        out.data.withUnsafeMutableBufferPointer { decode(layer: t, into: $0.baseAddress!) }
        return out
    }

    /// Writes layer t (1-based) densely into `out` (`rows × width`, fully overwritten).
    func decode(layer t: Int, into out: UnsafeMutablePointer<Float>) {
        let layer = layers[t - 1], w = width
        out.update(repeating: 0, count: rows * w)
        let support = UnsafeMutablePointer<Int32>.allocate(capacity: max(1, w))
        defer { support.deallocate() }
        for i in 0..<rows {
            let n = layer.support(row: i, words: words, into: support)
            let v = layer.values + layer.rowStart[i]
            for q in 0..<n { out[i * w + Int(support[q])] = v[q] }
        }
    }
}

/// One layer of a `CodeHistory`. Memory is owned here and addressed by pointers in the hot loops.
final class LayerCodes {
    /// rows × words bits, bit j of row i set when z[i, j] ≠ 0.
    let mask: UnsafeMutablePointer<UInt64>
    /// rows + 1 offsets into `values`.
    let rowStart: UnsafeMutablePointer<Int>
    /// The non-zeros, row by row, in increasing column order.
    let values: UnsafeMutablePointer<Float>
    let rows: Int, words: Int

    /// Allocates the storage for rows with `counts[i]` non-zeros (mask zeroed, offsets filled).
    init(rows: Int, words: Int, counts: UnsafePointer<Int32>) {
        self.rows = rows
        self.words = words
        rowStart = .allocate(capacity: rows + 1)
        rowStart[0] = 0
        for i in 0..<rows { rowStart[i + 1] = rowStart[i] + Int(counts[i]) }
        values = .allocate(capacity: max(1, rowStart[rows]))
        mask = .allocate(capacity: max(1, rows * words))
        mask.initialize(repeating: 0, count: max(1, rows * words))
    }

    deinit {
        mask.deallocate()
        rowStart.deallocate()
        values.deallocate()
    }

    var nonZeros: Int { rowStart[rows] }
    var bytes: Int { rows * words * 8 + (rows + 1) * 8 + nonZeros * 4 }

    /// Number of non-zeros of row i.
    @inline(__always)
    func count(row i: Int) -> Int { rowStart[i + 1] - rowStart[i] }

    /// The sorted column indices of row i's non-zeros, written to `out`; returns how many.
    @inline(__always)
    func support(row i: Int, words: Int, into out: UnsafeMutablePointer<Int32>) -> Int {
        var n = 0
        let m = mask + i * words
        for k in 0..<words {
            var bits = m[k]
            while bits != 0 {
                out[n] = Int32(k << 6 | bits.trailingZeroBitCount)
                n += 1
                bits &= bits &- 1
            }
        }
        return n
    }
}
