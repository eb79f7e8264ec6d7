import Foundation
import UnrollCore

/// The layers' forward and backward computations on whole batches (BLAS for the products).
enum NetworkKernels {
    /// y = x·Wᵀ + b: `[B, inputs]` (any trailing shape with inputs elements per sample) → `[B, outputs]`.
    static func linearForward(_ x: Tensor, weight: Tensor, bias: Tensor) -> Tensor {
        let (batch, inputs, outputs) = (x.rows, weight.shape[1], weight.shape[0])
        var y = Tensor(zeros: [batch, outputs])
        guard batch > 0 else { return y }
        x.data.withUnsafeBufferPointer { xp in
            weight.data.withUnsafeBufferPointer { wp in
                bias.data.withUnsafeBufferPointer { bp in
                    y.data.withUnsafeMutableBufferPointer { yp in
                        for r in 0..<batch { (yp.baseAddress! + r * outputs).update(from: bp.baseAddress!, count: outputs) }
                        BLAS.sgemm(transA: false, transB: true, m: batch, n: outputs, k: inputs,
                                   alpha: 1, a: xp.baseAddress!, lda: inputs, b: wp.baseAddress!, ldb: inputs,
                                   beta: 1, c: yp.baseAddress!, ldc: outputs)
                    }
                }
            }
        }
        return y
    }

    /// Adds ∂/∂W = gyᵀ·x and ∂/∂b = Σ_rows gy; returns ∂/∂x = gy·W shaped like `x` (an empty tensor
    /// without `inputGradient`).
    static func linearBackward(_ x: Tensor, weight: Tensor, outputGradient gy: Tensor, weightGradient: inout Tensor,
                               biasGradient: inout Tensor, inputGradient: Bool = true) -> Tensor {
        let (batch, inputs, outputs) = (x.rows, weight.shape[1], weight.shape[0])
        precondition(gy.shape == [batch, outputs], "linear backward: output gradient \(gy.shape), expected \([batch, outputs])")
        var gx = Tensor(zeros: inputGradient ? x.shape : [0])
        guard batch > 0 else { return gx }
        gy.data.withUnsafeBufferPointer { gp in
            let g = gp.baseAddress!
            x.data.withUnsafeBufferPointer { xp in
                weightGradient.data.withUnsafeMutableBufferPointer { gw in
                    BLAS.sgemm(transA: true, transB: false, m: outputs, n: inputs, k: batch,
                               alpha: 1, a: g, lda: outputs, b: xp.baseAddress!, ldb: inputs,
                               beta: 1, c: gw.baseAddress!, ldc: inputs)
                }
            }
            if inputGradient {
                weight.data.withUnsafeBufferPointer { wp in
                    gx.data.withUnsafeMutableBufferPointer { gxp in
                        BLAS.sgemm(transA: false, transB: false, m: batch, n: inputs, k: outputs,
                                   alpha: 1, a: g, lda: outputs, b: wp.baseAddress!, ldb: inputs,
                                   beta: 0, c: gxp.baseAddress!, ldc: inputs)
                    }
                }
            }
            biasGradient.data.withUnsafeMutableBufferPointer { gb in
                for r in 0..<batch {
                    let row = g + r * outputs
                    for j in 0..<outputs { gb[j] += row[j] }
                }
            }
        }
        return gx
    }

    /// x ← 1 / (1 + e^(−x)), evaluated without overflow for large |x|.
    static func sigmoid(_ x: inout Tensor) {
        x.mapInPlace { v in
            if v >= 0 { return 1 / (1 + Foundation.exp(-v)) }
            let e = Foundation.exp(v)
            return e / (1 + e)
        }
    }
}
