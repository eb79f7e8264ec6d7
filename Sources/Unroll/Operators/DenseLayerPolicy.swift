/// How an unrolled encoder runs a dense dictionary. The default lets the fast path's cost model choose
/// everything; the other settings exist to test the branches against each other and to benchmark.
public struct DenseLayerPolicy: Equatable, Sendable {
    /// How a layer's DᵀD y is formed.
    public enum Form: String, CaseIterable, Sendable {
        /// Gram form when forming G = W·Wᵀ pays for itself (`LayerCostModel.prefersGram`), else direct.
        case automatic
        /// y·G with G = W·Wᵀ formed once per forward pass.
        case gram
        /// (y·W − x)·Wᵀ in every layer.
        case direct
    }

    /// How the products with the codes are computed in each layer.
    public enum Products: String, CaseIterable, Sendable {
        /// Per layer, by the number of non-zeros (`LayerCostModel`): dense sgemm in the first,
        /// dense-ish layers, row scatters/gathers over the non-zeros afterwards.
        case automatic
        /// Always on the non-zeros.
        case sparse
        /// Always dense sgemm (where the fast path has a dense variant).
        case dense
    }

    /// Where the backward pass of the Gram form sends a layer's weight term
    /// −α[gᵀ(yW − X) + yᵀ(gW)].
    public enum WeightTerms: String, CaseIterable, Sendable {
        /// Per layer by the cost model (`DenseUnrolledEngine`'s backward plan).
        case automatic
        /// Into A = Σ α gᵀy (and S = Σ α g), multiplied out once at the end: ∂W = −(A + Aᵀ)W + SᵀX.
        case gram
        /// Straight into ∂W with products by W (what the direct form always does).
        case direct
    }

    /// false: the straightforward path instead — the generic layer loop with the dense Gram kernel
    /// (`GramLayerKernel`), dense products in every layer.
    public var fastPath: Bool
    public var form: Form
    public var products: Products
    public var weightTerms: WeightTerms
    /// Samples per chunk when encoding without a trace (samples are independent there); nil: chosen
    /// from p so that one chunk's workspaces stay in the last-level cache.
    public var inferenceChunk: Int?
    /// Whether sparse layers of the Gram form may run in runs, forward and backward: each part of the
    /// samples taken through several layers in one parallel region instead of a fork-join per layer
    /// (same results bit for bit).
    public var sampleRuns: Bool
    /// Whether the backward's Gram route may add a block of samples' terms to A atom by atom when A's rows
    /// are large (`GramRowBlocks`; same results bit for bit).
    public var rowBlocks: Bool

    public init(fastPath: Bool = true, form: Form = .automatic, products: Products = .automatic,
                weightTerms: WeightTerms = .automatic, inferenceChunk: Int? = nil, sampleRuns: Bool = true,
                rowBlocks: Bool = true) {
        self.fastPath = fastPath
        self.form = form
        self.products = products
        self.weightTerms = weightTerms
        self.inferenceChunk = inferenceChunk
        self.sampleRuns = sampleRuns
        self.rowBlocks = rowBlocks
    }

    /// Everything chosen by the cost model.
    public static let automatic = DenseLayerPolicy()
    /// The straightforward dense path (for comparisons).
    public static let straightforward = DenseLayerPolicy(fastPath: false)
}

/// What the fast path did in one forward (and its latest backward) pass, for tests and benchmarks.
public struct FastPathReport: Equatable, Sendable {
    /// "gram" or "direct".
    public var form: String
    /// Per layer t = 1 … T: whether the forward used dense sgemm for the layer's product.
    public var forwardDense: [Bool]
    /// Layers of the forward that ran in runs: each part of the samples taken through several sparse
    /// layers in one parallel region (0 when the work was too small to split).
    public var forwardLayersInRuns: Int
    /// Per layer t = 1 … T: whether the latest backward pass used dense sgemm for the layer's products
    /// (either of them; empty before a backward ran).
    public var backwardDense: [Bool]
    /// Per layer t = 1 … T: where the latest backward sent the weight term, "gram" or "direct".
    public var backwardWeightTerms: [String]
    /// Layers of the latest backward that ran in runs: sparse layers through A, each part of the samples
    /// taken through all of them in one parallel region.
    public var backwardLayersInRuns: Int
    /// Samples' layers whose terms of A went through `GramRowBlocks` in the latest backward.
    public var backwardTermsInRowBlocks: Int
}
