import Foundation
import Testing
import Unroll
import UnrollCore
import UnrollExperiments

/// `reproduce` experiments at `tiny` scale: the JSON shape every experiment shares, and the paper's
/// qualitative claims that already hold at this size.
@Suite struct ReproduceTests {
    /// Parses `table.json()` and checks the shared shape; returns the rows.
    func parsedRows(_ table: ReproductionTable, experiment: String, settingKeys: [String]) throws -> [[String: Any]] {
        let text = table.json()
        #expect(!text.contains("\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["experiment"] as? String == experiment)
        #expect(object["scale"] as? String == "tiny")
        let rows = try #require(object["rows"] as? [[String: Any]])
        #expect(!rows.isEmpty)
        for row in rows {
            for key in settingKeys + ["measured", "paper"] { #expect(row[key] != nil, "row lacks \(key): \(row)") }
            #expect(row["measured"] is NSNumber, "measured should be a number: \(row)")
            #expect(row["paper"] is NSNumber || row["paper"] is NSNull)
        }
        return rows
    }

    @Test func tableJSONAndText() throws {
        var table = ReproductionTable(experiment: "demo", scale: "tiny")
        table.rows = [
            ReproductionRow(setting: [.init("T", .int(100)), .init("gradient", .string("ae-\"ls\""))],
                            measured: 0.0125, paper: 0.0144),
            ReproductionRow(setting: [.init("T", .int(25)), .init("lr", .double(1e-3))], measured: .nan, paper: nil),
        ]
        table.notes = ["one sign per example"]
        table.info = [.init("seed", .int(7))]
        let object = try #require(try JSONSerialization.jsonObject(with: Data(table.json().utf8)) as? [String: Any])
        let rows = try #require(object["rows"] as? [[String: Any]])
        #expect(rows.count == 2)
        #expect(rows[0]["T"] as? Int == 100)
        #expect(rows[0]["gradient"] as? String == "ae-\"ls\"")
        #expect((rows[0]["measured"] as? Double).map { abs($0 - 0.0125) < 1e-12 } == true)
        #expect((rows[0]["paper"] as? Double).map { abs($0 - 0.0144) < 1e-12 } == true)
        #expect(rows[1]["measured"] is NSNull)     // NaN → null
        #expect(rows[1]["paper"] is NSNull)
        #expect((rows[1]["lr"] as? Double).map { abs($0 - 1e-3) < 1e-15 } == true)
        #expect((object["info"] as? [String: Any])?["seed"] as? Int == 7)
        #expect(table.measured(["T": .int(100)]) == 0.0125)
        let text = table.text()
        #expect(text.contains("measured"))
        #expect(text.contains("0.0125"))
        #expect(text.contains("0.87"))             // ratio 0.0125 / 0.0144
        #expect(text.contains("note: one sign per example"))
    }

    @Test func theoryTiny() throws {
        let settings = TheoryExperiment.settings(.tiny)
        let result = try TheoryExperiment.run(settings, scale: "tiny")
        let rows = try parsedRows(result.table, experiment: "theory", settingKeys: ["T", "gradient", "metric"])
        #expect(rows.count == settings.layers.count * 3 * 3)
        #expect(result.curves.count == settings.layers.count)
        for curve in result.curves {
            #expect(curve.x.count == settings.epochs + 1)
            #expect(curve.series.map(\.name) == ["dec", "ae-lasso", "ae-ls"])
        }
        func final(_ t: Int, _ g: String) throws -> Double {
            try #require(result.table.measured(["T": .int(t), "gradient": .string(g), "metric": .string("final")]))
        }
        let initial = result.curves[0].series[0].y[0]
        // The paper's claim: g_ae-ls ends closest to D*, by a wide margin at the largest T. (Seeds 0–3 give
        // ae-ls/dec 0.25–0.50 and ae-ls/ae-lasso 0.29–0.62 here; seed 0: 0.25 and 0.29.)
        let big = settings.layers.max()!
        let ls = try final(big, "ae-ls"), dec = try final(big, "dec"), lasso = try final(big, "ae-lasso")
        print("theory tiny T=\(big): dec \(dec) ae-lasso \(lasso) ae-ls \(ls) (initial \(initial))")
        for g in ["dec", "ae-lasso", "ae-ls"] { #expect(try final(big, g) < initial, "T \(big) \(g) did not learn") }
        #expect(ls < 0.5 * dec)
        #expect(ls < 0.5 * lasso)
        // The minimum over epochs is never above the final value, and the curve starts at D₀'s error.
        for row in result.table.rows(where: ["metric": .string("min")]) {
            let t = row["T"]!, g = row["gradient"]!
            #expect(row.measured! <= result.table.measured(["T": t, "gradient": g, "metric": .string("final")])!)
        }
    }

    /// The theory ordering holds beyond seed 0: on seeds 1 and 2 at the largest T, g_ae-ls ends
    /// closest to D*, then g_ae-lasso, then g_dec, on the final and the minimum error. (Measured:
    /// ae-ls / the better other 0.45 and 0.40; ae-lasso / dec 0.82 and 0.84.)
    @Test(arguments: [UInt64(1), 2])
    func theoryOrderingOnOtherSeeds(seed: UInt64) throws {
        var settings = TheoryExperiment.settings(.tiny)
        settings.seed = seed
        let table = try TheoryExperiment.run(settings, scale: "tiny").table
        let big = settings.layers.max()!
        for metric in ["final", "min"] {
            func error(_ g: String) throws -> Double {
                try #require(table.measured(["T": .int(big), "gradient": .string(g), "metric": .string(metric)]))
            }
            let ls = try error("ae-ls"), lasso = try error("ae-lasso"), dec = try error("dec")
            #expect(ls < 0.6 * lasso && lasso < dec, "seed \(seed) \(metric): ae-ls \(ls), ae-lasso \(lasso), dec \(dec)")
        }
    }

    @Test func gradientsTiny() throws {
        let settings = GradientsExperiment.settings(.tiny)
        let result = try GradientsExperiment.run(settings, scale: "tiny")
        _ = try parsedRows(result.table, experiment: "gradients", settingKeys: ["t", "gradient", "reference", "metric"])
        let last = settings.maxLayers
        func d(_ g: String, _ ref: String, _ t: Int = last) throws -> Double {
            try #require(result.table.measured(["t": .int(t), "gradient": .string(g), "reference": .string(ref)]))
        }
        let decHat = try d("dec", "g_hat"), lassoHat = try d("ae-lasso", "g_hat"), lsHat = try d("ae-ls", "g_hat")
        let decStar = try d("dec", "g*"), lsStar = try d("ae-ls", "g*"), hatStar = try d("g_hat", "g*")
        print("gradients tiny t=\(last): vs ĝ dec \(decHat) lasso \(lassoHat) ls \(lsHat); vs g* dec \(decStar) ls \(lsStar) ĝ \(hatStar)")
        // g_ae-lasso is the closest to the converged-lasso gradient ĝ …
        #expect(lassoHat < decHat)
        #expect(lassoHat < lsHat)
        // … while g_ae-ls is closer to the true-code gradient g* than g_dec (which inherits ĝ's lasso bias).
        #expect(lsStar < decStar)
        #expect(abs(decStar - hatStar) < 0.1 * hatStar)
        // The codes converge to ẑ.
        let z1 = try #require(result.table.measured(["t": .int(1), "metric": .string("code_error")]))
        let zT = try #require(result.table.measured(["t": .int(last), "metric": .string("code_error")]))
        #expect(zT < 0.1 * z1)
        #expect(result.curves.allSatisfy { $0.x.count == last })
    }

    @Test func fig5Tiny() throws {
        let settings = Fig5Experiment.settings(.tiny)
        let result = try Fig5Experiment.run(settings, scale: "tiny")
        let rows = try parsedRows(result.table, experiment: "fig5", settingKeys: ["s", "method", "iteration"])
        #expect(rows.count == settings.sparsities.count * 4 * 2)
        let s = settings.sparsities[0], n = settings.iterations
        func err(_ m: Fig5Experiment.Method) throws -> Double {
            try #require(result.table.measured(["s": .int(s), "method": .string(m.rawValue), "iteration": .int(n)]))
        }
        let initial = result.curves[0].series[0].y[0]
        let plain = try err(.leastSquares), decay = try err(.leastSquaresDecay)
        let hard = try err(.leastSquaresHard), noodl = try err(.noodl)
        print("fig5 tiny s=\(s): initial \(initial) ae-ls \(plain) decay \(decay) ht \(hard) noodl \(noodl)")
        // Plain soft-threshold g_ae-ls stalls at the lasso bias; λ decay and the hard threshold go far below it.
        #expect(decay < 0.1 * plain)
        #expect(hard < 0.1 * plain)
        #expect(noodl < 0.5 * initial)
    }
}
