/// 1-D convolution, the 2-D kernels with height 1 (same memory layout, same PyTorch semantics):
/// input `[B, Cin, N]`, filters `[Cout, Cin, K]`, output `[B, Cout, L]` with `L = (N + 2p − K)/s + 1`.
/// `conv1d` is CRsAE's Hᵀ (correlation, "valid" when p = 0) and `convTranspose1d` its H (full convolution).
extension ConvGeometry {
    static func conv1d(input: [Int], filters: [Int], stride: Int, padding: Int, _ what: String) -> ConvGeometry {
        precondition(input.count == 3 && filters.count == 3,
                     "\(what): input must be [B, Cin, N] and filters [Cout, Cin, K], got \(input) and \(filters)")
        precondition(input[1] == filters[1], "\(what): input has \(input[1]) channels, filters expect \(filters[1])")
        let g = ConvGeometry.oneD(inChannels: input[1], outChannels: filters[0], length: input[2], kernel: filters[2],
                                  stride: stride, padding: padding)
        precondition(g.problem == nil, "\(what): \(g.problem ?? "")")
        return g
    }
}

extension Tensor {
    /// Cross-correlation `[B, Cin, N]` ⋆ `[Cout, Cin, K]` → `[B, Cout, (N + 2p − K)/s + 1]` (PyTorch `conv1d`).
    public func conv1d(_ filters: Tensor, stride: Int = 1, padding: Int = 0) -> Tensor {
        var out = Tensor(zeros: [])
        var ws = ConvWorkspace()
        conv1d(filters, stride: stride, padding: padding, into: &out, workspace: &ws)
        return out
    }

    public func conv1d(_ filters: Tensor, stride: Int = 1, padding: Int = 0, into output: inout Tensor,
                       accumulate: Bool = false, workspace: inout ConvWorkspace) {
        let g = ConvGeometry.conv1d(input: shape, filters: filters.shape, stride: stride, padding: padding, "conv1d")
        Tensor.prepare(&output, shape: [shape[0], g.outChannels, g.outputWidth], accumulate: accumulate, "conv1d")
        guard shape[0] > 0 else { return }
        data.withUnsafeBufferPointer { x in
            filters.data.withUnsafeBufferPointer { w in
                output.data.withUnsafeMutableBufferPointer { y in
                    Convolution.forward(g, batch: shape[0], input: x.baseAddress!, filters: w.baseAddress!,
                                        output: y.baseAddress!, accumulate: accumulate, workspace: &workspace)
                }
            }
        }
    }

    /// The adjoint of `conv1d`: `[B, Cout, L]` → `[B, Cin, outputLength]` (PyTorch `conv_transpose1d` with the
    /// same filter tensor; with stride 1 and no padding, the full convolution of length L + K − 1).
    public func convTranspose1d(_ filters: Tensor, stride: Int = 1, padding: Int = 0, outputLength: Int) -> Tensor {
        var out = Tensor(zeros: [])
        var ws = ConvWorkspace()
        convTranspose1d(filters, stride: stride, padding: padding, outputLength: outputLength, into: &out, workspace: &ws)
        return out
    }

    public func convTranspose1d(_ filters: Tensor, stride: Int = 1, padding: Int = 0, outputLength: Int,
                                into output: inout Tensor, accumulate: Bool = false, workspace: inout ConvWorkspace) {
        precondition(rank == 3 && filters.rank == 3,
                     "convTranspose1d: input must be [B, Cout, L] and filters [Cout, Cin, K], got \(shape) and \(filters.shape)")
        precondition(shape[1] == filters.shape[0], "convTranspose1d: input has \(shape[1]) channels, filters have \(filters.shape[0]) outputs")
        let g = ConvGeometry.oneD(inChannels: filters.shape[1], outChannels: filters.shape[0], length: outputLength,
                                  kernel: filters.shape[2], stride: stride, padding: padding)
        precondition(g.problem == nil, "convTranspose1d: \(g.problem ?? "")")
        precondition(g.outputWidth == shape[2],
                     "convTranspose1d: length \(outputLength) convolves to \(g.outputWidth), not \(shape[2])")
        Tensor.prepare(&output, shape: [shape[0], g.inChannels, outputLength], accumulate: accumulate, "convTranspose1d")
        guard shape[0] > 0 else { return }
        data.withUnsafeBufferPointer { y in
            filters.data.withUnsafeBufferPointer { w in
                output.data.withUnsafeMutableBufferPointer { x in
                    Convolution.transposed(g, batch: shape[0], input: y.baseAddress!, filters: w.baseAddress!,
                                           output: x.baseAddress!, accumulate: accumulate, workspace: &workspace)
                }
            }
        }
    }

    /// ∂⟨outputGradient, conv1d(input, w)⟩/∂w: the correlation of input with the output gradient,
    /// `[Cout, Cin, kernelSize]`, summed over the batch.
    public static func conv1dFilterGradient(input: Tensor, outputGradient: Tensor, kernelSize: Int,
                                            stride: Int = 1, padding: Int = 0) -> Tensor {
        var out = Tensor(zeros: [])
        var ws = ConvWorkspace()
        conv1dFilterGradient(input: input, outputGradient: outputGradient, kernelSize: kernelSize, stride: stride,
                             padding: padding, into: &out, workspace: &ws)
        return out
    }

    public static func conv1dFilterGradient(input: Tensor, outputGradient: Tensor, kernelSize: Int,
                                            stride: Int = 1, padding: Int = 0, into gradient: inout Tensor,
                                            accumulate: Bool = false, workspace: inout ConvWorkspace) {
        precondition(outputGradient.rank == 3, "conv1dFilterGradient: output gradient must be [B, Cout, L], got \(outputGradient.shape)")
        let fshape = [outputGradient.shape[1], input.rank == 3 ? input.shape[1] : 0, kernelSize]
        let g = ConvGeometry.conv1d(input: input.shape, filters: fshape, stride: stride, padding: padding, "conv1dFilterGradient")
        let expected = [input.shape[0], g.outChannels, g.outputWidth]
        precondition(outputGradient.shape == expected,
                     "conv1dFilterGradient: output gradient \(outputGradient.shape) should be \(expected)")
        prepare(&gradient, shape: fshape, accumulate: accumulate, "conv1dFilterGradient")
        if input.shape[0] == 0 {
            if !accumulate { gradient.data.withUnsafeMutableBufferPointer { $0.update(repeating: 0) } }
            return
        }
        input.data.withUnsafeBufferPointer { x in
            outputGradient.data.withUnsafeBufferPointer { gy in
                gradient.data.withUnsafeMutableBufferPointer { gw in
                    Convolution.filterGradient(g, batch: input.shape[0], input: x.baseAddress!, outputGradient: gy.baseAddress!,
                                               filterGradient: gw.baseAddress!, accumulate: accumulate, workspace: &workspace)
                }
            }
        }
    }
}
