/// The rows of a data matrix, however they are stored: a `Tensor` in memory, or a file mapped into
/// memory (UnrollIO's `MappedRows`: processes on one machine share one copy, and a rank reads only
/// the rows it touches).
public protocol RowSource: Sendable {
    /// `[rows, …]`.
    var shape: [Int] { get }
    /// The rows at `indices`, in that order, as a tensor.
    func gatherRows(_ indices: [Int]) -> Tensor
    /// Rows `range` as a tensor.
    func rows(_ range: Range<Int>) -> Tensor
    var hasNonFinite: Bool { get }
}

extension RowSource {
    public var rowCount: Int { shape.first ?? 1 }
    public var valuesPerRow: Int { shape.count <= 1 ? 1 : shape.dropFirst().reduce(1, *) }
}

extension Tensor: RowSource {}
