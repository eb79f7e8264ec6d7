#!/usr/bin/env python3
"""scikit-learn's `sparse_encode(algorithm='lasso_cd')` on the `encode` case's data: the second peer of
`unroll bench encode`.

Data as in bench/pudle_torch.py (reference §2, fig5 sizes: m 1000, p 1500, s 10, delta 0.005), encoded
with the initial dictionary D0 at lambda = 0.2. Our network runs T = 100 ISTA layers; lasso_cd runs
coordinate descent to scikit-learn's own tolerance (1e-8, max_iter 1000), i.e. it solves the lasso
rather than approximating it with a fixed number of layers. Both objectives are printed so the reader
can see what each bought.

Scaling of alpha. scikit-learn's `Lasso` minimises (1/(2 n_samples))||y - X w||^2 + a||w||_1; for
sparse coding `y` is one signal (n_samples = m = n_features) and `X` the dictionary, so Lasso alone would
need a = lambda/m. But `sparse_encode` already divides its `alpha` by n_features before building the
Lasso (sklearn/decomposition/_dict_learning.py: `alpha = float(regularization) / n_features  # account
for scaling`), so `sparse_encode(alpha=lambda)` minimises (1/m)(1/2||x - zD||^2 + lambda||z||_1), the
same minimiser as ours. `--check-scaling` verifies this against a direct solution (float64 FISTA to
convergence plus the lasso optimality conditions) for alpha = lambda and alpha = lambda/m.

All 10 000 samples are encoded by default (about 10 s in float64 on 2 cores); with `--samples k` only k
are, and the median is scaled linearly to 10 000 (samples are independent problems); the JSON says so
(`median_s` is always for 10 000, `median_s_timed` for the k timed).

Precision: float64 by default. scikit-learn's tolerance is fixed at 1e-8 (duality gap); in float32 the gap
often cannot get that small, so most samples run all 1000 iterations and the encode is ~3-6x slower for the
same codes. Timing that pathology would flatter us, so the default is the precision in which lasso_cd
works as designed (`--dtype float32` to see the other).

Threads: n_jobs = --threads (joblib processes, each sample slice solved in its own worker); BLAS
threads in each worker are limited to 1 so that the two levels do not oversubscribe the cores.
"""
import argparse
import json
import os
import sys
import warnings

import peer_protocol


def synthetic(np, m, p, n, s, delta, seed):
    """Reference §2, as bench/pudle_torch.py (NumPy's generator, so not the same numbers)."""
    rng = np.random.default_rng(seed)
    Dstar = rng.standard_normal((m, p)) / np.sqrt(m)
    Dstar /= np.linalg.norm(Dstar, axis=0, keepdims=True)
    Z = np.zeros((n, p))
    for i in range(n):
        support = rng.choice(p, s, replace=False)
        Z[i, support] = rng.uniform(1, 2, s) * (1 if rng.random() > 0.5 else -1)
    X = Z @ Dstar.T
    D0 = Dstar + delta * rng.standard_normal((m, p))
    D0 /= np.linalg.norm(D0, axis=0, keepdims=True)
    return X, Z, Dstar, D0


def objective(np, X, Z, W, lam):
    """mean_i 1/2||x_i - z_i W||^2 + lam ||z_i||_1 (W atoms as rows, p x m)."""
    R = Z @ W - X
    return float(0.5 * (R * R).sum(axis=1).mean() + lam * np.abs(Z).sum(axis=1).mean())


def fista(np, X, W, lam, iters=20000):
    """Lasso codes of the rows of X for atoms W (p x m) by float64 FISTA with step 1/L."""
    L = np.linalg.norm(W, 2) ** 2
    G, C = W @ W.T, X @ W.T
    z = y = np.zeros((X.shape[0], W.shape[0]))
    t = 1.0
    for _ in range(iters):
        v = y - (y @ G - C) / L
        zn = np.sign(v) * np.maximum(np.abs(v) - lam / L, 0)
        tn = (1 + np.sqrt(1 + 4 * t * t)) / 2
        y = zn + (t - 1) / tn * (zn - z)
        z, t = zn, tn
    return z


def kkt_violation(np, X, Z, W, lam):
    """Largest violation of the lasso optimality conditions: g = W (x - zW)^T per code must be lam sign(z)
    on the support and |g| <= lam off it."""
    g = (X - Z @ W) @ W.T
    on = Z != 0
    v_on = np.abs(g[on] - lam * np.sign(Z[on])).max(initial=0)
    v_off = np.maximum(np.abs(g[~on]) - lam, 0).max(initial=0)
    return float(max(v_on, v_off))


def check_scaling(args):
    import numpy as np
    from sklearn.decomposition import sparse_encode
    m, p, n, lam = 40, 60, 20, args.lam
    X, _, _, D0 = synthetic(np, m, p, n, 4, 0.1, args.seed)
    W = D0.T.copy()                                    # p x m, atoms as rows
    ref = fista(np, X, W, lam)
    out = {"lambda": lam, "m": m, "p": p, "samples": n,
           "reference": {"objective": objective(np, X, ref, W, lam), "kkt_violation": kkt_violation(np, X, ref, W, lam)}}
    for name, alpha in (("alpha=lambda", lam), ("alpha=lambda/m", lam / m)):
        Z = sparse_encode(X, W, algorithm="lasso_cd", alpha=alpha, max_iter=10000)
        out[name] = {"alpha": alpha, "objective": objective(np, X, Z, W, lam),
                     "max_abs_diff_to_reference": float(np.abs(Z - ref).max()),
                     "kkt_violation": kkt_violation(np, X, Z, W, lam)}
    ok = out["alpha=lambda"]["max_abs_diff_to_reference"] < 1e-4 and out["reference"]["kkt_violation"] < 1e-6
    out["verdict"] = ("sparse_encode(alpha=lambda) solves 1/2||x - zD||^2 + lambda||z||_1" if ok
                      else "MISMATCH: sparse_encode(alpha=lambda) does not match the direct solution")
    return out, ok


def setup(args):
    """Builds the data; returns (out, work, finish) like bench/pudle_torch.py."""
    # Coordinate descent warns for every sample that stops at max_iter (common in float32); the
    # workers inherit this through the environment.
    os.environ["PYTHONWARNINGS"] = "ignore"
    warnings.filterwarnings("ignore")
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1" if args.threads > 1 else str(args.threads)   # inside each joblib worker
    import numpy as np
    import sklearn
    from sklearn.decomposition import sparse_encode
    full = 10_000
    n = args.samples
    X, _, _, D0 = synthetic(np, 1000, 1500, n, 10, 0.005, args.seed)
    dtype = np.float32 if args.dtype == "float32" else np.float64
    X = X.astype(dtype)
    W = np.ascontiguousarray(D0.T, dtype=dtype)           # sklearn's dictionary: atoms as rows
    state = {}
    out = {"case": "encode", "peer": "scikit-learn sparse_encode lasso_cd", "sklearn": sklearn.__version__,
           "numpy": np.__version__, "dtype": args.dtype, "threads": args.threads, "n_jobs": args.threads,
           "alpha": args.lam, "lambda": args.lam, "samples_timed": n, "samples_case": full, "scaled": n != full,
           "note": (f"timed {n} samples, scaled linearly to {full}" if n != full else "all samples timed"),
           "seed": args.seed}

    def work(warm=False):
        xs = X[: min(n, args.warmup_samples)] if warm else X
        state["Z"] = sparse_encode(xs, W, algorithm="lasso_cd", alpha=args.lam, n_jobs=args.threads)

    def finish():
        Z = state["Z"]
        out.update(objective=objective(np, X.astype(np.float64), Z.astype(np.float64), W.astype(np.float64), args.lam),
                   nonzeros_per_code=float((Z != 0).sum()) / Z.shape[0])

    return out, work, finish


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    peer_protocol.encode_arguments(ap, threads_help="n_jobs of sparse_encode",
                                   samples_help="samples timed (fewer: scaled linearly to 10000)")
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                    help="float64 (default): scikit-learn's fixed tol 1e-8 is reachable; in float32 most samples "
                         "run to max_iter without converging and take several times longer")
    ap.add_argument("--check-scaling", action="store_true", help="verify the alpha scaling, then exit")
    args = ap.parse_args()
    if args.threads < 1 or args.repeats < 1 or args.samples < 1:
        ap.error("--threads, --repeats and --samples must be >= 1")
    try:
        import sklearn  # noqa: F401
    except ImportError:
        print("sklearn_encode.py: scikit-learn is not installed (pip install scikit-learn, or scripts/bench.sh --install)",
              file=sys.stderr)
        sys.exit(3)
    if args.check_scaling:
        out, ok = check_scaling(args)
        print(json.dumps(out, indent=1))
        sys.exit(0 if ok else 1)
    out = peer_protocol.measure(setup, args)
    # The timed units encode --samples signals; median_s is scaled to the whole case.
    out.update(median_s_timed=out["median_s"],
               median_s=out["median_s"] * out["samples_case"] / args.samples if out["times"] else None)
    if not args.json and not args.serve:
        print(f"encode (sparse_encode lasso_cd): {out['median_s']:.2f} s for 10000 samples ({out['note']})",
              file=sys.stderr)
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
