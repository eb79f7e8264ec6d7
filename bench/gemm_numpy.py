#!/usr/bin/env python3
"""NumPy's float32 matmul on n×n matrices: the peer of `unroll bench gemm`.

Standalone: times --repeats products after --warmup and prints one JSON object
  {"gflops": median GFLOP/s, "times": [...], "numpy": version, "blas": config, "core": kernel set}.
With --serve: sets up, warms up, prints "ready", then times one product per "run" line on stdin
(printing its seconds) until "quit" or end of input, then prints the same JSON object. `unroll bench`
uses this to interleave our products with NumPy's, so load changes on a shared machine hit both alike.

The thread count must be set before NumPy is imported, so it is done here from --threads.
"""
import argparse
import glob
import json
import os
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--serve", action="store_true", help="time one product per 'run' line on stdin")
    args = ap.parse_args()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np  # after the environment is set

    n = args.size
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), dtype=np.float32)

    def product():
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        return time.perf_counter() - t0

    for _ in range(args.warmup):
        product()
    times = []
    if args.serve:
        print("ready", flush=True)
        for line in sys.stdin:
            if line.strip() != "run":
                break
            times.append(product())
            print(f"{times[-1]:.9f}", flush=True)
    else:
        times = [product() for _ in range(args.repeats)]
    median = statistics.median(times) if times else float("nan")
    json.dump({"gflops": 2.0 * n ** 3 / median / 1e9, "median_s": median, "times": times,
               "size": n, "threads": args.threads, "numpy": np.__version__, "blas": blas_config(np),
               "core": openblas_core(np)}, sys.stdout)
    print(flush=True)


def blas_config(np):
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return blas.get("openblas configuration", blas.get("name", ""))
    except Exception:  # older NumPy: no dict mode
        return ""


def openblas_core(np):
    """The kernel set NumPy's bundled OpenBLAS picked at run time (best effort, via its exported getter)."""
    import ctypes
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "*openblas*"))
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename64_",
                     "openblas_get_corename"):
            f = getattr(lib, name, None)
            if f is not None:
                f.restype = ctypes.c_char_p
                return f().decode()
    return ""


if __name__ == "__main__":
    main()
