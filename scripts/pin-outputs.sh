#!/usr/bin/env bash
# The redesign's safety net: runs every paper experiment at tiny scale and trains a few steps of every
# model kind, and writes what came out (JSON tables, SHA-256 of the model files) into DIR. Run it on
# the commit before a change and after it, then compare:
#
#   scripts/pin-outputs.sh DIR [--unroll PATH] [--only "theory fig5 …"]
#   scripts/pin-outputs.sh --compare OLD NEW     # byte-identical, or the largest relative difference
#
# Needs ../shared/data (or $UNROLL_DATA) for table1, crsae-denoise, vsc-*, interpret, and the conv2d models.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = --compare ]; then
    old="$2" new="$3"
    exec python3 - "$old" "$new" <<'EOF'
import json, math, os, sys
old, new = sys.argv[1:3]
worst = 0.0; bad = 0
def numbers(x):
    if isinstance(x, dict):   # wall-clock figures (keys or rows about time) are not outputs
        if any(isinstance(v, str) and any(w in v for w in ("second", "speedup")) for v in x.values()): return
        for k in sorted(x):
            if not any(w in k.lower() for w in ("second", "time", "wall")): yield from numbers(x[k])
    elif isinstance(x, list):
        for v in x: yield from numbers(v)
    elif isinstance(x, (int, float)) and not isinstance(x, bool): yield float(x)
for name in sorted(set(os.listdir(old)) | set(os.listdir(new))):
    a, b = os.path.join(old, name), os.path.join(new, name)
    if not (os.path.exists(a) and os.path.exists(b)):
        print(f"{name}: only in {'old' if os.path.exists(a) else 'new'}"); bad += 1; continue
    ta, tb = open(a).read(), open(b).read()
    if ta == tb: print(f"{name}: identical"); continue
    if name == "models.txt":   # tensor values per model kind, whatever their names
        def kinds(text):
            d = {}
            for line in text.split("\n"):
                if line.strip(): h, k, _ = line.split(" ", 2); d.setdefault(k, []).append(h)
            return {k: sorted(v) for k, v in d.items()}
        ka, kb = kinds(ta), kinds(tb)
        for k in sorted(set(ka) | set(kb)):
            a_, b_ = ka.get(k, []), kb.get(k, [])
            if a_ == b_: print(f"models {k}: same tensors"); continue
            gone, added = [h for h in a_ if h not in b_], [h for h in b_ if h not in a_]
            print(f"models {k}: {len(gone)} tensors changed or gone, {len(added)} new or changed"); bad += 1
        continue
    if name.endswith(".json") and list(numbers(json.loads(ta))) == list(numbers(json.loads(tb))):
        print(f"{name}: identical but for timings"); continue
    if name.endswith(".json"):
        na, nb = list(numbers(json.loads(ta))), list(numbers(json.loads(tb)))
        if len(na) != len(nb): print(f"{name}: different shape"); bad += 1; continue
        rel = max((abs(x - y) / max(abs(x), abs(y), 1e-30) for x, y in zip(na, nb)
                   if not (math.isnan(x) and math.isnan(y)) and x != y), default=0.0)
        worst = max(worst, rel)
        print(f"{name}: differs, largest relative difference {rel:.3g}")
    else:
        print(f"{name}: differs"); bad += 1
print(f"worst relative difference in the tables: {worst:.3g}; {bad} files differ outright")
sys.exit(1 if bad else 0)
EOF
fi

out="${1:?usage: scripts/pin-outputs.sh DIR [--unroll PATH] [--only LIST]}"; shift
unroll=.build/release/unroll
only="theory gradients fig5 table1 interpret spikes crsae-denoise vsc-linear vsc-fmnist models"
while (($#)); do
    case "$1" in
        --unroll) unroll="$2"; shift ;;
        --only) only="$2"; shift ;;
        *) echo "pin-outputs: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
data="${UNROLL_DATA:-../shared/data}"
mkdir -p "$out"; out=$(cd "$out" && pwd)
unroll=$(cd "$(dirname "$unroll")" && pwd)/$(basename "$unroll")
data=$(cd "$data" && pwd)
# Models record their data path: train in a scratch folder under relative names so runs compare.
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

for e in $only; do
    [ "$e" = models ] && continue
    echo "pin: reproduce $e --scale tiny" >&2
    "$unroll" reproduce "$e" --scale tiny --json --threads 1 --quiet --output "$work/reproduce-$e" >"$out/$e.json"
done

if [[ " $only " == *" models "* ]]; then
    models="$out/models.txt"; : >"$models"
    # One line per tensor of ≥ 2 values: the SHA-256 of its float32 bytes, the model kind, the tensor's
    # name. Names and containers may change in a redesign; --compare matches the values per kind.
    pin() {
        python3 - "$1" "$2" >>"$models" <<'PY'
import hashlib, json, struct, sys
import numpy as np
path, kind = sys.argv[1:3]
if path.endswith(".npz"):
    arrays = dict(np.load(path))
else:
    raw = open(path, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n]); header.pop("__metadata__", None)
    arrays = {k: np.frombuffer(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], dtype=np.float32)
              for k, v in header.items()}
for name in sorted(arrays):
    a = np.ascontiguousarray(arrays[name], dtype=np.float32)
    if a.size >= 2: print(hashlib.sha256(a.tobytes()).hexdigest(), kind, name)
PY
    }
    echo "pin: models" >&2
    cd "$work"
    "$unroll" synth --m 20 --p 30 --n 400 --s 3 --seed 1 --output "synth.npz" >/dev/null
    "$unroll" train --data "synth.npz" --init "synth.npz" --layers 20 --step 0.2 --lambda 0.2 \
        --batch 50 --steps 12 --output "dense" >/dev/null
    pin "dense/model.safetensors" dense
    "$unroll" train --model conv2d --data "$data/images/train" --atoms 8 --kernel 5 --stride 2 --crop 33 \
        --layers 5 --step 0.1 --lambda 0.1 --steps 6 --output "conv2d" >/dev/null
    pin "conv2d/model.safetensors" conv2d-pudle
    for tying in tied untied; do
        flag=""; [ "$tying" = untied ] && flag=--untied
        "$unroll" train --model conv2d --family crsae $flag --data "$data/images/train" --atoms 8 --kernel 5 \
            --stride 2 --crop 33 --layers 5 --steps 6 --output "crsae-$tying" >/dev/null
        pin "crsae-$tying/model.safetensors" "conv2d-crsae-$tying"
    done
    "$unroll" spikes simulate --seconds 4 --seed 2 --output "rec.npz" >/dev/null
    "$unroll" spikes train --data "rec.npz" --epochs 2 --refine-epochs 1 --layers 10 --refine-layers 12 \
        --threads 1 --output "spikes.safetensors" >/dev/null 2>&1
    pin "spikes.safetensors" conv1d-crsae
    "$unroll" vsc train --images "$data/images/train" --patches 400 --validation 100 --side 8 --epochs 1 \
        --samples 2 --hidden 32 --threads 1 --quiet --output "vsc-linear.safetensors" >/dev/null
    pin "vsc-linear.safetensors" vsc-linear
    "$unroll" vsc train --generator conv --data "$data/fashion-mnist" --train-size 256 --test-size 64 --latents 8 \
        --batch 64 --epochs 1 --samples 1 --hidden 32 --threads 1 --quiet --output "vsc-conv.safetensors" >/dev/null
    pin "vsc-conv.safetensors" vsc-conv
    cat "$models"
fi
