#!/usr/bin/env bash
# Data-parallel training over MPI, checked on this machine (loopback, 2 ranks): installs Open MPI
# if missing and builds `unroll` with UNROLL_MPI=1 into .build-mpi. Shows that `mpirun -np 2 unroll
# train …` ends with one process's model (same global batch, 50–60 steps, ≤ 1e-5 relative, the same
# weights on both ranks) for dense g_ae-ls, conv2d PUDLE, conv2d CRsAE (EM λ) and conv1d CRsAE
# (spikes); that VSC trains on 2 ranks with the same state on each; that `mpirun -np 2 unroll denoise`
# of a folder writes one process's images; that `mpirun -np 2 unroll encode` writes one process's codes byte for byte; that a killed
# rank ends the job with a message, the checkpoint intact, and --resume continues to the same model;
# and that an ordinary build refuses a distributed run by name. Called by scripts/test.sh.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v mpirun >/dev/null || ! pkg-config --exists ompi-c 2>/dev/null; then
    echo "check-mpi: installing Open MPI (libopenmpi-dev, openmpi-bin)" >&2
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libopenmpi-dev openmpi-bin >/dev/null
fi
(cd "$repo" && UNROLL_MPI=1 swift build -c release --product unroll --build-path .build-mpi 2>&1 | tail -1)
mpi_unroll="$repo/.build-mpi/release/unroll"
plain_unroll="$repo/.build/release/unroll"
run2() { mpirun --allow-run-as-root --oversubscribe -np 2 "$@"; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"

relative() {   # relative Frobenius difference of two model files' first tensor of the given name
    python3 - "$1" "$2" "$3" <<'PY'
import json, struct, sys
import numpy as np
def load(path, name):
    b = open(path, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); v = h[name]
    s, e = v["data_offsets"]
    return np.frombuffer(b[8 + n + s:8 + n + e], dtype=np.float32)
a, b = load(sys.argv[1], sys.argv[3]), load(sys.argv[2], sys.argv[3])
print(f"{np.linalg.norm(a.astype(np.float64) - b) / np.linalg.norm(a):.3g}")
PY
}
check_equal() {   # name, one-process model, two-rank model, tensor
    local d; d=$(relative "$2" "$3" "$4")
    python3 -c "import sys; sys.exit(0 if float('$d') <= 1e-5 else 1)" \
        || { echo "check-mpi: $1: 2 ranks differ from one process by $d (> 1e-5)" >&2; exit 1; }
    echo "check-mpi: $1: 2 ranks vs one process: relative difference $d"
}

# Dense g_ae-ls.
"$plain_unroll" synth --m 64 --p 96 --n 400 --s 4 --seed 1 --output data.npz >/dev/null
dense=(train --data data.npz --init data.npz --layers 30 --step 0.2 --lambda 0.1 --lr 1e-3 --batch 40 --steps 50 --threads 1)
"$plain_unroll" "${dense[@]}" --output one >/dev/null
out=$(run2 "$mpi_unroll" "${dense[@]}" --output two)
grep -q "2 ranks, the same weights on each" <<<"$out" || { echo "check-mpi: dense: $out" >&2; exit 1; }
check_equal "dense g_ae-ls, 50 steps" one/model.safetensors two/model.safetensors dictionary
# The same data as a float32 .npy: each rank maps the file instead of reading it (the page cache
# holds one copy for both), and trains to the same model.
python3 -c "import numpy as np; np.save('data.npy', np.load('data.npz')['X'])"
mapped=("${dense[@]}"); mapped[2]=data.npy     # --data data.npy, --init still data.npz
run2 "$mpi_unroll" "${mapped[@]}" --output mapped >/dev/null
check_equal "dense g_ae-ls, 50 steps, mapped .npy" one/model.safetensors mapped/model.safetensors dictionary

# Conv2d PUDLE (crops and noise drawn once per global batch, the same on both ranks).
mkdir images
python3 - <<'PY'
import zlib, struct
import numpy as np
def png(path, a):
    raw = b"".join(b"\x00" + bytes(row) for row in a)
    def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", a.shape[1], a.shape[0], 8, 0, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
y, x = np.mgrid[0:48, 0:56]
for i in range(2):
    png(f"images/{i}.png", (127 + 100 * np.sin(x / (5 + i)) * np.cos(y / 7)).astype(np.uint8))
PY
conv=(train --model conv2d --data images --atoms 8 --kernel 5 --stride 2 --crop 21 --layers 5 --lr 1e-2 --batch 4 --steps 50 --threads 1)
"$plain_unroll" "${conv[@]}" --output conv-one >/dev/null
out=$(run2 "$mpi_unroll" "${conv[@]}" --output conv-two)
grep -q "2 ranks, the same weights on each" <<<"$out" || { echo "check-mpi: conv2d: $out" >&2; exit 1; }
check_equal "conv2d PUDLE, 50 steps" conv-one/model.safetensors conv-two/model.safetensors dictionary

# Conv2d CRsAE with EM λ: the per-filter code statistics are summed over the ranks with the gradient.
crsae=(train --model conv2d --family crsae --data images --atoms 6 --kernel 5 --stride 2 --crop 21 --layers 8 --sigma 0.1
       --lipschitz 4 --batch 4 --steps 50 --threads 1)
"$plain_unroll" "${crsae[@]}" --output crsae-one >/dev/null
out=$(run2 "$mpi_unroll" "${crsae[@]}" --output crsae-two)
grep -q "2 ranks, the same weights on each" <<<"$out" || { echo "check-mpi: crsae: $out" >&2; exit 1; }
check_equal "conv2d CRsAE (EM λ), 50 steps, filters" crsae-one/model.safetensors crsae-two/model.safetensors dictionary
check_equal "conv2d CRsAE (EM λ), 50 steps, λ" crsae-one/model.safetensors crsae-two/model.safetensors em.lambda

# CRsAE 1-D (spikes), both phases: EM λ and σ pooled over the ranks.
"$plain_unroll" spikes simulate --seconds 3 --seed 2 --output rec.npz >/dev/null
spikes=(train --model conv1d --data rec.npz --epochs 3 --layers 6 --refine-epochs 1 --refine-layers 8 --batch 2 --threads 1)
"$plain_unroll" "${spikes[@]}" --output spikes-one >/dev/null 2>&1
out=$(run2 "$mpi_unroll" "${spikes[@]}" --output spikes-two 2>/dev/null)
grep -q "2 ranks, the same weights on each" <<<"$out" || { echo "check-mpi: conv1d: $out" >&2; exit 1; }
check_equal "conv1d CRsAE (spikes), 60 steps in two phases" spikes-one/model.safetensors spikes-two/model.safetensors dictionary

# VSC (linear generator): each rank samples its share from its own generator, so the run is not one
# process's; Φ's update and the gradients are averaged, and every rank must end with the same state.
vsc=(train --model vsc --data images --patches 400 --validation 50 --side 8 --samples 2 --hidden 16 --batch 40 --lr 0.002
     --epochs 3 --threads 1)
out=$(run2 "$mpi_unroll" "${vsc[@]}" --output vsc-two 2>/dev/null)
grep -q "2 ranks, the same weights on each" <<<"$out" || { echo "check-mpi: vsc: $out" >&2; exit 1; }
one=$("$plain_unroll" "${vsc[@]}" --output vsc-one 2>/dev/null)
mse() { grep -m1 "reconstruction MSE" | awk '{print $3}'; }
a=$(mse <<<"$one") b=$(mse <<<"$out")
python3 -c "import sys; sys.exit(0 if $b < 1.5 * $a else 1)" \
    || { echo "check-mpi: vsc: 2 ranks reach a validation MSE of $b, one process $a" >&2; exit 1; }
echo "check-mpi: vsc linear, 30 steps: validation MSE $b on 2 ranks (each its own samples), $a in one process; the same weights on each rank"

# Distributed encoding: each rank writes its rows into one .npy. With one thread per rank the codes
# equal one process's (one thread) to float rounding, byte for byte where OpenBLAS computes a row's
# products alike whatever the rows around it; its Haswell kernels (chosen on some AMD EPYC machines)
# do not: one process encoding rows 200–399 alone differs from the same rows within 400 by 1.2e-6.
"$plain_unroll" encode --model one/model.safetensors --data data.npz --output z1.npy --threads 1 >/dev/null
out=$(run2 "$mpi_unroll" encode --model one/model.safetensors --data data.npz --output z2.npy --threads 1)
grep -q "on 2 ranks" <<<"$out" || { echo "check-mpi: encode: $out" >&2; exit 1; }
[ ! -e z2.npy.tmp-ranks ] || { echo "check-mpi: encode left its partial file" >&2; exit 1; }
d=$(python3 -c "import numpy as np; a, b = np.load('z1.npy'), np.load('z2.npy'); print(f'{np.abs(a - b).max() / np.abs(a).max():.3g}' if a.shape == b.shape else 'inf')")
python3 -c "import sys; sys.exit(0 if float('$d') <= 1e-5 else 1)" || { echo "check-mpi: 2-rank encoding differs from one process by $d" >&2; exit 1; }
cmp -s z1.npy z2.npy && same="byte for byte" || same="to $d relative"
echo "check-mpi: encode on 2 ranks writes the codes of one process, $same"
# Conv2d: each rank encodes its images of a stack [B, H, W].
python3 -c "import numpy as np; r = np.random.default_rng(0); np.save('stack.npy', r.random((5, 30, 34), dtype=np.float32))"
"$plain_unroll" encode --model conv-one/model.safetensors --data stack.npy --output c1.npy --threads 1 >/dev/null
out=$(run2 "$mpi_unroll" encode --model conv-one/model.safetensors --data stack.npy --output c2.npy --threads 1)
grep -q "on 2 ranks" <<<"$out" || { echo "check-mpi: conv2d encode: $out" >&2; exit 1; }
# The batched convolutions round differently for 3 and 5 images (as one process does for a 3-image
# file), so the codes agree to float rounding, not bit for bit.
d=$(python3 -c "import numpy as np; a, b = np.load('c1.npy'), np.load('c2.npy'); print(f'{np.abs(a - b).max() / np.abs(a).max():.3g}' if a.shape == b.shape else 'inf')")
python3 -c "import sys; sys.exit(0 if float('$d') <= 1e-5 else 1)" || { echo "check-mpi: 2-rank conv2d encoding differs from one process by $d" >&2; exit 1; }
echo "check-mpi: conv2d encode of 5 images on 2 ranks: one process's codes to $d (largest difference / largest code)"

# Distributed denoising of a folder: each rank its share of the images, the same files as one process.
"$plain_unroll" denoise --model conv-one/model.safetensors --input images --clean images --add-noise 0.1 --output dn1 --threads 1 >/dev/null
out=$(run2 "$mpi_unroll" denoise --model conv-one/model.safetensors --input images --clean images --add-noise 0.1 --output dn2 --threads 1)
grep -q "on 2 ranks" <<<"$out" || { echo "check-mpi: denoise: $out" >&2; exit 1; }
for f in dn1/*; do cmp -s "$f" "dn2/$(basename "$f")" || { echo "check-mpi: 2-rank denoising differs from one process ($f)" >&2; exit 1; }; done
echo "check-mpi: denoise of a folder on 2 ranks writes one process's images, byte for byte: $(tail -1 <<<"$out" | cut -c1-90)…"

# A killed rank ends the job; the checkpoint is intact and --resume continues to the same model.
long=(train --data data.npz --init data.npz --layers 30 --step 0.2 --lambda 0.1 --lr 1e-2 --batch 40 --steps 4000
      --checkpoint-every 50 --threads 1)
run2 "$mpi_unroll" "${long[@]}" --output killed >/dev/null 2>job.err &
launcher=$!
while [ ! -f killed/checkpoint.safetensors ]; do sleep 0.01; done
victim=$(python3 - "$mpi_unroll" <<'PY'
import os, sys
ranks = []   # the unroll processes mpirun started (not mpirun itself)
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
    except OSError:
        continue
    if argv[0].decode(errors="replace") == sys.argv[1] and b"train" in argv:
        ranks.append(int(pid))
print(max(ranks) if ranks else "")
PY
)
[ -n "$victim" ] || { echo "check-mpi: no rank to kill was found" >&2; exit 1; }
kill -9 "$victim"
start=$SECONDS
wait "$launcher" && { echo "check-mpi: the job survived a killed rank" >&2; exit 1; }
took=$((SECONDS - start))
[ "$took" -le 30 ] || { echo "check-mpi: the job took $took s to end after a rank was killed" >&2; exit 1; }
echo "check-mpi: a killed rank ended the job in ${took} s: $(grep -m1 -i -E "exited|signal|killed|abort" job.err || head -1 job.err)"
python3 -c "import json,struct; b=open('killed/checkpoint.safetensors','rb').read(); n=struct.unpack('<Q',b[:8])[0]; print('check-mpi: the checkpoint is whole, at step', json.loads(b[8:8+n])['__metadata__']['trainer.step'])"
run2 "$mpi_unroll" "${long[@]}" --output killed --resume >/dev/null
run2 "$mpi_unroll" "${long[@]}" --output straight >/dev/null
cmp -s killed/model.safetensors straight/model.safetensors \
    || { echo "check-mpi: the resumed 2-rank run differs from an uninterrupted one" >&2; exit 1; }
echo "check-mpi: resumed after the kill, the model equals an uninterrupted 2-rank run's, byte for byte"

# An ordinary build says what to do.
if out=$(run2 "$plain_unroll" "${dense[@]}" --output plain 2>&1); then echo "check-mpi: a build without MPI ran distributed" >&2; exit 1; fi
grep -q "built without MPI" <<<"$out" || { echo "check-mpi: $out" >&2; exit 1; }
echo "check-mpi: an ordinary build refuses: $(grep -m1 "built without MPI" <<<"$out" | cut -c1-100)…"
