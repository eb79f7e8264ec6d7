#!/usr/bin/env bash
# Python's overhead over the CLI: `transform` of 10 000 fig5 signals (m 1000, p 1500 = the true
# dictionary of `unroll synth`, ISTA T 100, λ = α = 0.2, 2 threads) from Python against the encoding
# time `unroll encode` reports for the same model and data (neither counts reading the file).
# Interleaved rounds; prints each time, the medians and their ratio, and whether the codes agree.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
unroll="$repo/.build/release/unroll"
rounds=${1:-3}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
"$unroll" synth --m 1000 --p 1500 --n 10000 --s 10 --seed 1 --output fig5.npz >/dev/null
"$unroll" train --data fig5.npz --init fig5.npz:D_true --steps 0 --layers 100 --step 0.2 --lambda 0.2 --output m >/dev/null
PYTHONPATH="$repo/python" python3 - "$unroll" "$rounds" <<'PY'
import re, statistics, subprocess, sys, time
import numpy as np
import unroll
cli_bin, rounds = sys.argv[1], int(sys.argv[2])
X = np.load("fig5.npz")["X"]
est = unroll.load("m/model.safetensors", n_jobs=2)
cli, py = [], []
for _ in range(rounds):
    out = subprocess.run([cli_bin, "encode", "--model", "m/model.safetensors", "--data", "fig5.npz", "--output", "z.npy",
                          "--threads", "2"], capture_output=True, text=True, check=True).stdout
    cli.append(float(re.search(r" in ([0-9.]+) s", out).group(1)))
    t = time.perf_counter(); z = est.transform(X); py.append(time.perf_counter() - t)
print("unroll encode (s):", " ".join(f"{v:.2f}" for v in cli))
print("python transform (s):", " ".join(f"{v:.2f}" for v in py))
print(f"medians: CLI {statistics.median(cli):.2f} s, Python {statistics.median(py):.2f} s, Python/CLI {statistics.median(py) / statistics.median(cli):.3f}")
print("codes identical:", np.array_equal(z, np.load("z.npy")))
PY
