import UnrollCore

/// Conv2d and ConvTranspose2d layers on NCHW batches, on top of UnrollCore's im2col convolutions.
extension NetworkKernels {
    /// y[b, c, ·] += bias[c] for `[B, C, H, W]`.
    static func addChannelBias(_ y: inout Tensor, _ bias: Tensor) {
        let (batch, channels) = (y.shape[0], y.shape[1])
        let plane = y.count / Swift.max(1, batch * channels)
        bias.data.withUnsafeBufferPointer { bp in
            y.data.withUnsafeMutableBufferPointer { yp in
                for b in 0..<batch {
                    for c in 0..<channels {
                        let row = yp.baseAddress! + (b * channels + c) * plane, v = bp[c]
                        for s in 0..<plane { row[s] += v }
                    }
                }
            }
        }
    }

    /// gradient[c] += Σ_{b, h, w} gy[b, c, h, w].
    static func addChannelSums(_ gy: Tensor, into gradient: inout Tensor) {
        let (batch, channels) = (gy.shape[0], gy.shape[1])
        let plane = gy.count / Swift.max(1, batch * channels)
        gy.data.withUnsafeBufferPointer { gp in
            gradient.data.withUnsafeMutableBufferPointer { gb in
                for b in 0..<batch {
                    for c in 0..<channels {
                        let row = gp.baseAddress! + (b * channels + c) * plane
                        var s: Float = 0
                        for i in 0..<plane { s += row[i] }
                        gb[c] += s
                    }
                }
            }
        }
    }

    static func conv2dForward(_ x: Tensor, weight: Tensor, bias: Tensor, stride: Int, padding: Int,
                              workspace: inout ConvWorkspace) -> Tensor {
        precondition(x.rank == 4 && x.shape[1] == weight.shape[1],
                     "conv2d layer: input \(x.shape) does not fit filters \(weight.shape)")
        var y = Tensor(zeros: [])
        x.conv2d(weight, stride: stride, padding: padding, into: &y, workspace: &workspace)
        addChannelBias(&y, bias)
        return y
    }

    static func conv2dBackward(_ x: Tensor, weight: Tensor, outputGradient gy: Tensor, kernel: Int, stride: Int, padding: Int,
                               weightGradient: inout Tensor, biasGradient: inout Tensor,
                               workspace: inout ConvWorkspace) -> Tensor {
        Tensor.conv2dFilterGradient(input: x, outputGradient: gy, kernelSize: (kernel, kernel), stride: stride,
                                    padding: padding, into: &weightGradient, accumulate: true, workspace: &workspace)
        addChannelSums(gy, into: &biasGradient)
        var gx = Tensor(zeros: [])
        gy.convTranspose2d(weight, stride: stride, padding: padding, outputSize: (x.shape[2], x.shape[3]),
                           into: &gx, workspace: &workspace)
        return gx
    }

    /// The output size of a transposed convolution along one axis.
    static func transposedSize(_ n: Int, kernel: Int, stride: Int, padding: Int, outputPadding: Int) -> Int {
        (n - 1) * stride - 2 * padding + kernel + outputPadding
    }

    /// y = convᵀ(x, W) + b; W is `[in, out, k, k]`, the filter bank of the convolution it is the adjoint of.
    static func convTranspose2dForward(_ x: Tensor, weight: Tensor, bias: Tensor, stride: Int, padding: Int,
                                       outputPadding: Int, workspace: inout ConvWorkspace) -> Tensor {
        precondition(x.rank == 4 && x.shape[1] == weight.shape[0],
                     "convTranspose2d layer: input \(x.shape) does not fit weight \(weight.shape)")
        let k = weight.shape[2]
        let h = transposedSize(x.shape[2], kernel: k, stride: stride, padding: padding, outputPadding: outputPadding)
        let w = transposedSize(x.shape[3], kernel: k, stride: stride, padding: padding, outputPadding: outputPadding)
        precondition(h >= 1 && w >= 1, "convTranspose2d layer: input \(x.shape) gives an empty \(h)×\(w) output")
        var y = Tensor(zeros: [])
        x.convTranspose2d(weight, stride: stride, padding: padding, outputSize: (h, w), into: &y, workspace: &workspace)
        addChannelBias(&y, bias)
        return y
    }

    /// ⟨gy, convᵀ(x, W)⟩ = ⟨conv(gy, W), x⟩, so ∂/∂x = conv(gy, W) and ∂/∂W = filterGradient(input gy, output x),
    /// both from one im2col of gy.
    static func convTranspose2dBackward(_ x: Tensor, weight: Tensor, outputGradient gy: Tensor, stride: Int,
                                        padding: Int, weightGradient: inout Tensor, biasGradient: inout Tensor,
                                        workspace: inout ConvWorkspace) -> Tensor {
        addChannelSums(gy, into: &biasGradient)
        return gy.conv2d(weight, stride: stride, padding: padding, addingFilterGradientOf: x, into: &weightGradient,
                         workspace: &workspace)
    }
}
