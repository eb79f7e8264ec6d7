#!/usr/bin/env python3
"""SPAMS `lasso` (LARS, `spams-bin` from PyPI) on the `encode` case's data: the third peer of
`unroll bench encode`.

Data and objective as bench/sklearn_encode.py (fig5 sizes: m 1000, p 1500, s 10, delta 0.005, encoded
with the initial dictionary D0 at lambda = 0.2). `spams.lasso(X, D, lambda1=lambda, mode=2)` minimises
1/2||x - D a||^2 + lambda||a||_1 per column: the same problem as ours, solved exactly by LARS (the
homotopy path to lambda), so its objective is the lasso minimum to rounding. The printed objective is
recomputed here in float64 from the returned codes.

Threads: SPAMS's own `numThreads` = --threads (OpenMP over the columns); BLAS inside is limited to
one thread so that the two levels do not oversubscribe the cores. float32 by default (ours is float32;
`--dtype float64` for the other).
"""
import argparse
import json
import os
import sys

import peer_protocol


def setup(args):
    """Builds the data; returns (out, work, finish) like bench/sklearn_encode.py."""
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    import numpy as np
    import spams
    from sklearn_encode import objective, synthetic
    n = args.samples
    X, _, _, D0 = synthetic(np, 1000, 1500, n, 10, 0.005, args.seed)
    dtype = np.float32 if args.dtype == "float32" else np.float64
    Xf = np.asfortranarray(X.T, dtype=dtype)             # m x n, one signal per column
    Df = np.asfortranarray(D0, dtype=dtype)              # m x p, atoms as columns
    state = {}
    version = getattr(spams, "__version__", None)
    if version is None:
        try:
            from importlib.metadata import version as dist_version
            version = dist_version("spams-bin")
        except Exception:
            version = "?"
    out = {"case": "encode", "peer": "SPAMS lasso (LARS, mode 2)", "spams": version, "numpy": np.__version__,
           "dtype": args.dtype, "threads": args.threads, "lambda": args.lam, "samples_timed": n, "seed": args.seed}

    def work(warm=False):
        xs = Xf[:, : min(n, args.warmup_samples)] if warm else Xf
        state["A"] = spams.lasso(np.asfortranarray(xs), D=Df, lambda1=args.lam, mode=2, numThreads=args.threads)

    def finish():
        Z = state["A"].toarray().T.astype(np.float64)    # n x p
        W = D0.T.astype(np.float64)                      # p x m
        out.update(objective=objective(np, X.astype(np.float64), Z, W, args.lam),
                   nonzeros_per_code=float((Z != 0).sum()) / Z.shape[0])

    return out, work, finish


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    peer_protocol.encode_arguments(ap, threads_help="SPAMS numThreads")
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    args = ap.parse_args()
    if args.threads < 1 or args.repeats < 1 or args.samples < 1:
        ap.error("--threads, --repeats and --samples must be >= 1")
    try:
        import spams  # noqa: F401
    except ImportError:
        print("spams_encode.py: SPAMS is not installed (pip install spams-bin, or scripts/bench.sh --install)", file=sys.stderr)
        sys.exit(3)
    out = peer_protocol.measure(setup, args)
    if not args.json and not args.serve:
        print(f"encode (SPAMS lasso): {out['median_s']:.2f} s for {args.samples} samples", file=sys.stderr)
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
