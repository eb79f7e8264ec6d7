import UnrollCore

/// An array read from a file: its values as a Float32 `Tensor` (row-major) and the name of the
/// element type the file stored them in (NumPy's names: "float32", "float64", "int64", "uint8", …).
///
/// Integers beyond ±2^24 and float64 values are rounded to the nearest Float32.
public struct NDArray: Equatable, Sendable {
    public var dtype: String
    public var tensor: Tensor

    public init(dtype: String, tensor: Tensor) {
        self.dtype = dtype
        self.tensor = tensor
    }

    public var shape: [Int] { tensor.shape }
}
