import Foundation
import UnrollCore

/// Encodes a recording of any length in overlapping chunks (reference crsae §6.3 encodes the whole
/// series in one pass; chunks bound the memory and run in parallel batches).
///
/// Chunk i covers `length` signal samples from s_i and owns the code positions [b_i, b_{i+1}) with
/// b_i = s_i + margin; its first and last `margin` code positions are discarded (the first chunk keeps its
/// start, the last its end). In T layers of (F)ISTA a code depends on codes at most T(K − 1) positions
/// away, so with margin ≥ T(K − 1) the result equals one pass over the whole recording.
public struct ChunkedEncoding: Equatable, Sendable {
    /// Signal samples per chunk, margins included.
    public var length: Int
    /// Code positions discarded at each inner edge.
    public var margin: Int
    /// Chunks per encoder call (a batch; the conv kernels parallelise over it).
    public var batch: Int

    public init(length: Int, margin: Int, batch: Int = 8) {
        self.length = length
        self.margin = margin
        self.batch = batch
    }

    /// The margin that makes T layers of filters of length K exact: T·(K − 1).
    public static func exactMargin(layers: Int, filterLength k: Int) -> Int { layers * (k - 1) }

    /// Chunk starts for `samples` signal samples and filters of length `k` (one chunk if the recording fits).
    public func starts(samples: Int, filterLength k: Int) throws -> [Int] {
        let codeLength = length - k + 1, total = samples - k + 1
        guard total >= 1 else { throw UnrollError.shapeMismatch("recording of \(samples) samples is shorter than the filters (\(k))") }
        if total <= codeLength { return [0] }
        let step = codeLength - 2 * margin
        guard step >= 1 else {
            throw UnrollError.invalidArgument("chunks of \(length) samples leave no code positions inside margins of \(margin) (filters \(k)); use longer chunks")
        }
        var s = [0]
        while s.last! + codeLength < total { s.append(min(s.last! + step, total - codeLength)) }
        return s
    }

    /// The codes `[atoms, samples − K + 1]` of a `[channels, samples]` recording, `encode` mapping a
    /// `[batch, channels, L]` signal batch to its `[batch, atoms, L − K + 1]` codes.
    public func encode(_ signal: Tensor, atoms: Int, filterLength k: Int,
                       _ encode: (Tensor) throws -> Tensor) throws -> Tensor {
        guard signal.rank == 2 else { throw UnrollError.shapeMismatch("a recording must be [channels, samples], got \(signal.shape)") }
        let (ch, n) = (signal.shape[0], signal.shape[1])
        let s = try starts(samples: n, filterLength: k)
        let len = s.count == 1 ? n : length, codeLength = len - k + 1, total = n - k + 1
        // Owned ranges: [b_i, b_{i+1}) with b_0 = 0, b_i = s_i + margin, b_last+1 = total.
        var bounds = s.indices.map { $0 == 0 ? 0 : s[$0] + margin }
        bounds.append(total)
        var codes = Tensor(zeros: [atoms, total])
        for groupStart in stride(from: 0, to: s.count, by: max(1, batch)) {
            let group = Array(groupStart..<min(s.count, groupStart + max(1, batch)))
            var x = Tensor(zeros: [group.count, ch, len])
            signal.data.withUnsafeBufferPointer { src in
                x.data.withUnsafeMutableBufferPointer { dst in
                    for (g, i) in group.enumerated() {
                        for e in 0..<ch {
                            (dst.baseAddress! + (g * ch + e) * len).update(from: src.baseAddress! + e * n + s[i], count: len)
                        }
                    }
                }
            }
            let z = try encode(x)
            guard z.shape == [group.count, atoms, codeLength] else {
                throw UnrollError.shapeMismatch("chunk encoder returned \(z.shape), expected \([group.count, atoms, codeLength])")
            }
            z.data.withUnsafeBufferPointer { src in
                codes.data.withUnsafeMutableBufferPointer { dst in
                    for (g, i) in group.enumerated() {
                        let (from, to) = (bounds[i], bounds[i + 1])
                        guard to > from else { continue }
                        for a in 0..<atoms {
                            (dst.baseAddress! + a * total + from)
                                .update(from: src.baseAddress! + (g * atoms + a) * codeLength + (from - s[i]), count: to - from)
                        }
                    }
                }
            }
        }
        return codes
    }
}
