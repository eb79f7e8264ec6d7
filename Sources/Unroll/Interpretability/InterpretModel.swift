import Foundation
import UnrollCore

/// A labelled image data set split into training and test examples (pixels scaled to [0, 1]).
public struct LabeledImages: Sendable {
    public var name: String
    /// `[n, h·w]`.
    public var train: Tensor
    public var trainLabels: [Int]
    public var test: Tensor
    public var testLabels: [Int]
    public var height: Int
    public var width: Int

    public init(name: String, train: Tensor, trainLabels: [Int], test: Tensor, testLabels: [Int], height: Int, width: Int) throws {
        guard train.rank == 2, test.rank == 2, train.cols == height * width, test.cols == height * width else {
            throw UnrollError.shapeMismatch("\(name): images must be [n, \(height)×\(width)], got train \(train.shape), test \(test.shape)")
        }
        guard train.rows == trainLabels.count, test.rows == testLabels.count else {
            throw UnrollError.shapeMismatch("\(name): \(train.rows) training images but \(trainLabels.count) labels, \(test.rows) test images but \(testLabels.count) labels")
        }
        self.name = name
        self.train = train
        self.trainLabels = trainLabels
        self.test = test
        self.testLabels = testLabels
        self.height = height
        self.width = width
    }

    /// `perClass` examples of each class in `classes`, drawn at random (fewer if a class has fewer),
    /// in class order. Returns the rows' indices.
    public static func balanced(labels: [Int], classes: [Int], perClass: Int, rng: inout Random) -> [Int] {
        var out: [Int] = []
        for c in classes {
            let members = labels.indices.filter { labels[$0] == c }
            let take = min(perClass, members.count)
            out += rng.sample(take, from: members.count).sorted().map { members[$0] }
        }
        return out
    }

    /// The subset with `trainPerClass` training and `testPerClass` test images of each class in `classes`.
    public func subset(classes: [Int], trainPerClass: Int, testPerClass: Int, rng: inout Random) throws -> LabeledImages {
        let tr = Self.balanced(labels: trainLabels, classes: classes, perClass: trainPerClass, rng: &rng)
        let te = Self.balanced(labels: testLabels, classes: classes, perClass: testPerClass, rng: &rng)
        guard !tr.isEmpty, !te.isEmpty else {
            throw UnrollError.invalidArgument("\(name): no training or test images of classes \(classes)")
        }
        return try LabeledImages(name: name, train: train.gatherRows(tr), trainLabels: tr.map { trainLabels[$0] },
                                 test: test.gatherRows(te), testLabels: te.map { testLabels[$0] },
                                 height: height, width: width)
    }
}

/// One image with its weight in a combination (a training example's contribution).
public struct WeightedImage: Sendable {
    public var index: Int
    public var label: Int
    /// The contribution, normalised by the weight vector's ℓ2 norm (as in the paper's figures).
    public var weight: Double
    public var image: [Float]
}

/// Atom j: the learned atom, its estimate X c_j from the training set, and the training images with the
/// largest and smallest |c_jk|.
public struct AtomExplanation: Sendable {
    public var atom: Int
    public var learned: [Float]
    public var estimate: [Float]
    /// ‖W_j − W̃_j‖/‖W_j‖.
    public var gap: Double
    public var most: [WeightedImage]
    public var least: [WeightedImage]
}

/// A test image: the image, its reconstruction ẑᵀW, the estimate Σ_{k ∈ top} β_k x_k over the largest
/// |β|, the most and least contributing training images, and the code similarity to every training example.
public struct ExampleExplanation: Sendable {
    public var testIndex: Int
    public var label: Int
    public var image: [Float]
    public var reconstruction: [Float]
    public var estimate: [Float]
    /// How many of the largest |β| went into `estimate`.
    public var estimateTerms: Int
    public var most: [WeightedImage]
    public var least: [WeightedImage]
    /// β over the training set (ẑᵀW̃ = Σ_k β_k x_k).
    public var beta: [Double]
    /// cos(z_k, ẑ) for every training example, and the training labels.
    public var similarity: [Double]
    public var trainLabels: [Int]
    /// ‖ẑᵀW̃ − Σ_k β_k x_k‖/‖ẑᵀW̃‖ (the identity, ≈ 0) and ‖ẑᵀW − ẑᵀW̃‖/‖ẑᵀW‖.
    public var identityError: Double
    public var modelGap: Double
}

/// A trained dense model with its training set, ready to explain (Theorem 5.1): W, the training codes Z,
/// ω, and the factorisation behind W̃ = (ZᵀZ + ωI)⁻¹ZᵀX.
public struct InterpretModel: Sendable {
    public var data: LabeledImages
    /// W `[p, m]` (Double, row-major).
    public var weights: [Double]
    public var atoms: Int
    public var lambda: Double
    public var combination: ExampleCombination
    /// W̃ (Double, row-major).
    public var implied: [Double]

    /// Builds the combination from the training codes `codes` (`[n, p]` Double) of `data.train`.
    public init(data: LabeledImages, weights: [Double], atoms p: Int, codes: [Double], lambda: Double, omega: Double) throws {
        guard weights.count == p * data.train.cols else {
            throw UnrollError.shapeMismatch("weights need \(p)×\(data.train.cols) values, got \(weights.count)")
        }
        self.data = data
        self.weights = weights
        self.atoms = p
        self.lambda = lambda
        combination = try ExampleCombination(signals: data.train, codes: codes, atoms: p, omega: omega)
        implied = combination.impliedWeights()
    }

    /// ‖W − W̃‖_F/‖W‖_F.
    public var gap: Double { ExampleCombination.relativeDifference(implied, weights) }

    var signalSize: Int { data.train.cols }

    /// The exact non-negative lasso codes of `signals` for W (Float, `[n, p]`).
    public func encode(_ signals: Tensor) throws -> Tensor {
        let r = try NonNegativeLasso(lambda: lambda).solve(signals: signals, weights: weights, atoms: atoms)
        return Tensor(shape: [signals.rows, atoms], data: r.codes.map(Float.init))
    }

    /// Atom indices by decreasing code energy mean_k z_kj² (the paper's choice of atoms to show).
    public func atomsByEnergy() -> [Int] {
        let n = combination.examples, p = atoms
        var energy = [Double](repeating: 0, count: p)
        for k in 0..<n { for u in combination.support[k] { energy[u] += combination.codes[k * p + u] * combination.codes[k * p + u] } }
        return (0..<p).sorted { energy[$0] != energy[$1] ? energy[$0] > energy[$1] : $0 < $1 }
    }

    func weighted(_ indices: [Int], _ weights: [Double], norm: Double) -> [WeightedImage] {
        let m = signalSize
        return indices.map { k in
            WeightedImage(index: k, label: data.trainLabels[k], weight: norm > 0 ? weights[k] / norm : 0,
                          image: Array(data.train.data[(k * m)..<((k + 1) * m)]))
        }
    }

    /// Atom j explained by its `top` most and least contributing training images.
    public func explainAtom(_ j: Int, top: Int) throws -> AtomExplanation {
        let c = try combination.atomContributions(j)
        let norm = c.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let (most, least) = ExampleCombination.extremes(c.map(abs), k: top)
        let m = signalSize
        let learned = Array(weights[(j * m)..<((j + 1) * m)])
        let estimate = combination.combine(c)
        return AtomExplanation(atom: j, learned: learned.map(Float.init), estimate: estimate.map(Float.init),
                               gap: ExampleCombination.relativeDifference(estimate, learned),
                               most: weighted(most, c, norm: norm), least: weighted(least, c, norm: norm))
    }

    /// Test image `index` explained: β over the training set from its exact code.
    public func explainExample(_ index: Int, top: Int, estimateTerms: Int) throws -> ExampleExplanation {
        guard (0..<data.test.rows).contains(index) else {
            throw UnrollError.invalidArgument("test image index must be in 0..<\(data.test.rows), got \(index)")
        }
        let x = data.test.gatherRows([index])
        let code = try encode(x).data
        return try explain(code: code, image: x.data, testIndex: index, label: data.testLabels[index],
                           top: top, estimateTerms: estimateTerms)
    }

    public func explain(code: [Float], image: [Float], testIndex: Int, label: Int, top: Int, estimateTerms: Int) throws -> ExampleExplanation {
        let beta = try combination.coefficients(code: code)
        let norm = beta.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let byMagnitude = ExampleCombination.extremes(beta.map(abs), k: max(top, estimateTerms))
        let (most, least) = ExampleCombination.extremes(beta.map(abs), k: top)
        let viaImplied = ExampleCombination.decode(code, weights: implied, signalSize: signalSize)
        let viaExamples = combination.combine(beta)
        let viaModel = ExampleCombination.decode(code, weights: weights, signalSize: signalSize)
        return ExampleExplanation(
            testIndex: testIndex, label: label, image: image, reconstruction: viaModel.map(Float.init),
            estimate: combination.combine(beta, only: Array(byMagnitude.largest.prefix(estimateTerms))).map(Float.init),
            estimateTerms: min(estimateTerms, beta.count),
            most: weighted(most, beta, norm: norm), least: weighted(least, beta, norm: norm), beta: beta,
            similarity: try combination.codeSimilarity(code: code), trainLabels: data.trainLabels,
            identityError: ExampleCombination.relativeDifference(viaExamples, viaImplied),
            modelGap: ExampleCombination.relativeDifference(viaImplied, viaModel))
    }
}
