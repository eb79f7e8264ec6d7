#!/usr/bin/env bash
# Runs every `unroll bench` case (ours beside NumPy / PyTorch / scikit-learn in the same invocation)
# and regenerates the generated section of docs/performance.md. Slow (the encode case alone takes
# tens of minutes at 5 repeats); not part of the test command.
#
#   scripts/bench.sh [--install] [--repeats N] [--threads N] [--cases "gemm ftz pudle-fig5 pudle-theory encode"]
#                    [--scratch-path DIR] [--no-doc] [--note TEXT] [--wait-idle MINUTES]
#
#   --install       install torch (CPU wheels, else PyPI's default wheel), scikit-learn, SPAMS (spams-bin), bm3d and
#                   scikit-image with pip if missing
#   --repeats N     timed runs per measurement (default 5; the doc reports medians)
#   --threads N     threads for us and every peer (default 2)
#   --cases LIST    which cases (default: every case `unroll bench --help` lists)
#   --scratch-path  SwiftPM scratch directory for the release build (default .build)
#   --no-doc        leave docs/performance.md alone (results stay in out/bench/)
#   --note TEXT     a "preliminary" remark printed at the top of the generated section
#   --wait-idle M   first wait up to M minutes for the 1-minute load average to fall below threads + 0.5
set -euo pipefail
cd "$(dirname "$0")/.."

install=0 repeats=5 threads=2 scratch=.build doc=1 note="" wait_idle=0
cases=""
while (($#)); do
    case "$1" in
        --install) install=1 ;;
        --repeats) repeats="$2"; shift ;;
        --threads) threads="$2"; shift ;;
        --cases) cases="$2"; shift ;;
        --scratch-path) scratch="$2"; shift ;;
        --no-doc) doc=0 ;;
        --note) note="$2"; shift ;;
        --wait-idle) wait_idle="$2"; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "bench.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

UNROLL_NEED_NUMPY=1 scripts/bootstrap.sh
pip_install() {
    python3 -m pip install --quiet "$@" 2>/dev/null || python3 -m pip install --quiet --break-system-packages "$@"
}
if ((install)); then
    python3 -c 'import torch' 2>/dev/null || { echo "bench.sh: installing torch (CPU)" >&2;
        pip_install torch --index-url https://download.pytorch.org/whl/cpu || pip_install torch; }
    python3 -c 'import sklearn' 2>/dev/null || { echo "bench.sh: installing scikit-learn" >&2; pip_install scikit-learn; }
    python3 -c 'import spams' 2>/dev/null || { echo "bench.sh: installing SPAMS" >&2; pip_install spams-bin; }
    python3 -c 'import bm3d' 2>/dev/null || { echo "bench.sh: installing bm3d" >&2; pip_install bm3d; }
    python3 -c 'import skimage' 2>/dev/null || { echo "bench.sh: installing scikit-image (SSIM cross-check)" >&2; pip_install scikit-image; }
fi
python3 -c 'import torch' 2>/dev/null || echo "bench.sh: PyTorch missing: the pudle/encode cases print our numbers only (use --install)" >&2
python3 -c 'import sklearn' 2>/dev/null || echo "bench.sh: scikit-learn missing: encode prints no scikit-learn row (use --install)" >&2
python3 -c 'import spams' 2>/dev/null || echo "bench.sh: SPAMS missing: encode prints no SPAMS row (use --install)" >&2

swift build -c release --scratch-path "$scratch" --product unroll
bin="$(swift build -c release --scratch-path "$scratch" --show-bin-path)/unroll"
if [ -z "$cases" ]; then
    cases="$("$bin" bench --help | sed -n 's/^  \([a-z0-9-]*\): .*/\1/p' | grep -vx all | tr '\n' ' ')"
    [ -n "$cases" ] || cases="gemm ftz pudle-fig5 pudle-theory encode"
fi
out=out/bench
mkdir -p "$out"

# The peers check themselves first: gradients (gradcheck) and the scikit-learn alpha scaling.
checks=()
if python3 -c 'import torch' 2>/dev/null; then
    for peer in pudle_torch conv_denoise_torch crsae_denoise_torch spikes_torch vsc_linear_torch vsc_conv_torch; do
        if python3 bench/$peer.py --selftest >"$out/selftest-$peer.log" 2>&1; then
            checks+=("bench/$peer.py --selftest: $(tail -1 "$out/selftest-$peer.log") ($(grep -c '^ok' "$out/selftest-$peer.log") checks)")
        else
            checks+=("bench/$peer.py --selftest FAILED (see $out/selftest-$peer.log)")
        fi
    done
fi
if python3 -c 'import sklearn' 2>/dev/null; then
    if python3 bench/sklearn_encode.py --check-scaling >"$out/sklearn-scaling.json" 2>/dev/null; then
        checks+=("bench/sklearn_encode.py --check-scaling: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["verdict"] + "; max |z - z_ref| = %.1e with alpha = lambda, %.2f with alpha = lambda/m" % (d["alpha=lambda"]["max_abs_diff_to_reference"], d["alpha=lambda/m"]["max_abs_diff_to_reference"]))' "$out/sklearn-scaling.json")")
    else
        checks+=("bench/sklearn_encode.py --check-scaling FAILED (see $out/sklearn-scaling.json)")
    fi
fi

if ((wait_idle > 0)); then
    deadline=$((SECONDS + 60 * wait_idle))
    while ((SECONDS < deadline)) && ! awk -v t="$threads" '{ exit !($1 < t + 0.5) }' /proc/loadavg; do sleep 15; done
fi
# What was measured: the commit, marked when the sources differ from it (UNROLL_BENCH_SOURCE overrides,
# e.g. for a snapshot outside git).
measured="${UNROLL_BENCH_SOURCE:-}"
if [ -z "$measured" ] && git rev-parse --short HEAD >/dev/null 2>&1; then
    measured="$(git rev-parse --short HEAD)"
    git diff --quiet HEAD -- Sources Package.swift 2>/dev/null || measured="$measured + uncommitted changes"
fi
load_before="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || true)"
results=()
for c in $cases; do
    echo "bench.sh: $c (repeats $repeats, threads $threads)" >&2
    if "$bin" bench "$c" --json --repeats "$repeats" --threads "$threads" >"$out/$c.json" 2>"$out/$c.json.log"; then
        :
    else
        echo "bench.sh: $c failed (see $out/$c.json.log)" >&2
    fi
    results+=("$out/$c.json")
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || true)"

versions() {
    python3 - "$@" <<'EOF'
import json, platform, subprocess, sys
swift = subprocess.run(["swift", "--version"], capture_output=True, text=True)
v = {"Swift": (swift.stdout or swift.stderr).strip().splitlines()[0], "Python": platform.python_version()}
for mod in ("numpy", "torch", "sklearn", "scipy"):
    try:
        v[mod] = __import__(mod).__version__
    except Exception:
        v[mod] = "not installed"
print(json.dumps(v))
EOF
}

python3 - "$out/run.json" "$repeats" "$threads" "$load_before" "$load_after" "$note" "$measured" \
    "$(versions)" "${checks[@]+"${checks[@]}"}" <<'EOF'
import datetime, json, sys
path, repeats, threads, lb, la, note, commit, versions, *checks = sys.argv[1:]
json.dump({"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "repeats": int(repeats),
           "threads": int(threads), "load_before": lb, "load_after": la, "preliminary": note, "commit": commit,
           "versions": json.loads(versions), "checks": checks}, open(path, "w"), indent=1)
EOF

if ((doc)); then
    python3 bench/performance_report.py --doc docs/performance.md --run-info "$out/run.json" "${results[@]}"
fi
echo "bench.sh: results in $out/" >&2
