import Foundation
import Unroll
import UnrollCore
import UnrollIO

/// The two image sets of the interpretability experiment, read from the shared data folder
/// (`SharedData.folder`: `$UNROLL_DATA` or `../shared/data`), pixels scaled to [0, 1].
enum ExplainData {
    enum Name: String, CaseIterable {
        case digits, fashion
    }

    static var defaultFolder: String { SharedData.folder }

    static func load(_ name: Name, folder: String) throws -> LabeledImages {
        switch name {
        case .digits: return try digits(folder + "/digits/digits.csv.gz")
        case .fashion: return try fashion(folder + "/fashion-mnist")
        }
    }

    /// scikit-learn's 8×8 digits (0…16 → [0, 1]). There is no test split: every fifth image is a test image.
    static func digits(_ path: String) throws -> LabeledImages {
        let (x, labels) = try CSV.loadDigits(path)
        let scaled = x.map { $0 / 16 }
        let test = labels.indices.filter { $0 % 5 == 4 }, train = labels.indices.filter { $0 % 5 != 4 }
        return try inContext(path) {
            try LabeledImages(name: "digits", train: scaled.gatherRows(train), trainLabels: train.map { labels[$0] },
                              test: scaled.gatherRows(test), testLabels: test.map { labels[$0] }, height: 8, width: 8)
        }
    }

    /// Fashion-MNIST's train and t10k IDX files (0…255 → [0, 1]).
    static func fashion(_ folder: String) throws -> LabeledImages {
        func images(_ file: String) throws -> Tensor {
            let path = folder + "/" + file
            var a = try IDX.read(path)
            guard a.shape.count == 3, a.shape[1] == 28, a.shape[2] == 28 else {
                throw CLIError("\(path): expected images of shape [n, 28, 28], found \(a.shape)")
            }
            var x = a.tensor.reshaped([a.shape[0], 784])
            a.tensor = Tensor(zeros: [])   // the only other holder: the division then runs in place (188 MB)
            x.mapInPlace { $0 / 255 }
            return x
        }
        func labels(_ file: String) throws -> [Int] {
            let path = folder + "/" + file
            return try IDX.readLabels(path)
        }
        return try inContext(folder) {
            try LabeledImages(name: "fashion", train: try images("train-images-idx3-ubyte.gz"),
                              trainLabels: try labels("train-labels-idx1-ubyte.gz"),
                              test: try images("t10k-images-idx3-ubyte.gz"), testLabels: try labels("t10k-labels-idx1-ubyte.gz"),
                              height: 28, width: 28)
        }
    }
}
