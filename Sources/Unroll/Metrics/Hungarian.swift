/// Minimum-cost assignment (Kuhn–Munkres, the O(r²·c) potentials form of the Hungarian algorithm).
public enum Hungarian {
    /// For a `rows × cols` cost matrix (row-major in `cost`), the column assigned to each row such
    /// that no column is used twice and the total cost is minimal.
    ///
    /// Rectangular matrices are fine: with rows ≤ cols every row gets a column; with rows > cols
    /// every column gets a row and the rows left over get -1. Costs must be finite.
    public static func assignment(cost: [Double], rows: Int, cols: Int) -> [Int] {
        precondition(cost.count == rows * cols, "cost needs \(rows)×\(cols) entries, got \(cost.count)")
        precondition(cost.allSatisfy { $0.isFinite }, "Hungarian assignment needs finite costs")
        if rows == 0 { return [] }
        if cols == 0 { return [Int](repeating: -1, count: rows) }
        if rows > cols {
            // Solve the transpose (each column picks a row), then invert the assignment.
            var t = [Double](repeating: 0, count: rows * cols)
            for i in 0..<rows { for j in 0..<cols { t[j * rows + i] = cost[i * cols + j] } }
            let colToRow = solve(t, n: cols, m: rows)
            var out = [Int](repeating: -1, count: rows)
            for (j, i) in colToRow.enumerated() { out[i] = j }
            return out
        }
        return solve(cost, n: rows, m: cols)
    }

    /// Total cost of an assignment returned by `assignment` (unassigned rows add nothing).
    public static func totalCost(_ assignment: [Int], cost: [Double], cols: Int) -> Double {
        var total = 0.0
        for (i, j) in assignment.enumerated() where j >= 0 { total += cost[i * cols + j] }
        return total
    }

    /// n ≤ m. Row potentials u, column potentials v; `owner[j]` is the row holding column j
    /// (1-based, 0 = free; column 0 is a virtual start). Each row is added by a Dijkstra-like search
    /// for the shortest augmenting path in reduced costs.
    private static func solve(_ a: [Double], n: Int, m: Int) -> [Int] {
        var u = [Double](repeating: 0, count: n + 1)
        var v = [Double](repeating: 0, count: m + 1)
        var owner = [Int](repeating: 0, count: m + 1)
        var way = [Int](repeating: 0, count: m + 1)
        var minv = [Double](repeating: 0, count: m + 1)
        var used = [Bool](repeating: false, count: m + 1)
        for i in 1...n {
            owner[0] = i
            var j0 = 0
            for j in 0...m { minv[j] = .infinity; used[j] = false }
            repeat {
                used[j0] = true
                let i0 = owner[j0]
                var delta = Double.infinity, j1 = 0
                for j in 1...m where !used[j] {
                    let reduced = a[(i0 - 1) * m + (j - 1)] - u[i0] - v[j]
                    if reduced < minv[j] { minv[j] = reduced; way[j] = j0 }
                    if minv[j] < delta { delta = minv[j]; j1 = j }
                }
                for j in 0...m {
                    if used[j] {
                        u[owner[j]] += delta
                        v[j] -= delta
                    } else {
                        minv[j] -= delta
                    }
                }
                j0 = j1
            } while owner[j0] != 0
            // Flip the augmenting path back to the start.
            repeat {
                let j1 = way[j0]
                owner[j0] = owner[j1]
                j0 = j1
            } while j0 != 0
        }
        var out = [Int](repeating: -1, count: n)
        for j in 1...m where owner[j] != 0 { out[owner[j] - 1] = j - 1 }
        return out
    }
}
