#!/usr/bin/env bash
# Trains the denoisers the package ships (Sources/unroll/Resources/denoise-model*.safetensors): an
# untied CRsAE-class model of CSCNet's size (175 filters 11×11, stride 8, 30 FISTA layers) with learned
# per-filter thresholds that scale with σ, trained through the shift average (4 random shifts per crop)
# over σ 5–55/255 on the 42 images of scripts/fetch-training-images.sh (the 14 shared training images and
# 28 photographs from Debian's and PyPI's packages), with moon.png and kodim23.png held out for
# validation; it denoises by averaging 8 of its 64 shifts on a lattice (--shift-lattice 8: every phase of
# each axis once), the speed/quality point chosen on the held-out images (docs/denoising.md), and ends with
# a non-local means of its estimate (--non-local 0.1: h = 0.1σ, 7×7 patches, 23×23 window), also chosen
# there. The shipped files were trained before that stage existed and got its three keys added after, and
# later (docs/denoising.md, sessions 24 and 25) BM3D's two steps and 6 lattice shifts instead of 8, set
# after training in the same way (no tensor changed). `unroll denoise --model OUT/best.safetensors
# --shift-lattice 6 --collaborative a --collaborative-threshold 3 --wiener 0.5` denoises as the shipped
# file does, with a = 0.5, 0.35 and 0.25 for the σ 5–55, σ 35 and σ 50 models.
#
#   scripts/train-denoiser.sh [OUTPUT_DIR] [more train options]   # default denoiser-run; 100 min when both models train at once on two cores
#
# The other two shipped models, denoise-model-sigma35.safetensors and denoise-model-sigma50.safetensors, are
# the same recipe at σ 35/255 and σ 50/255 alone (a range of one σ, so the file still records its reference
# σ and scales for any input):
#
#   scripts/train-denoiser.sh denoiser-run-35 --sigma 35/255 --sigma-range 35/255:35/255
#   scripts/train-denoiser.sh denoiser-run-50 --sigma 50/255 --sigma-range 50/255:50/255
#
# The model to ship is OUTPUT_DIR/best.safetensors, the step of best validation PSNR (test images
# are never looked at). The images are fetched once into .build/training-images (about 160 MB of
# packages, cached there); the command runs from beside that folder so the model records
# `training-images/train`, not a machine path. UNROLL_IMAGES=DIR trains on DIR/train instead, holding
# out moon.png alone (the models shipped before session 17 were trained on the shared images so).
# --resume continues a killed run bit for bit (at the same --threads: another count changes the last bits).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-denoiser-run}")
if [ -n "${UNROLL_IMAGES:-}" ]; then
    images=$(realpath "$UNROLL_IMAGES") hold_out=(--hold-out moon.png)
else
    images=$root/.build/training-images hold_out=(--hold-out moon.png --hold-out kodim23.png)
    "$root/scripts/fetch-training-images.sh" "$images" >/dev/null
fi
[ -d "$images/train" ] || { echo "no training images in $images/train" >&2; exit 1; }
(cd "$root" && swift build -c release --product unroll >/dev/null)
cd "$(dirname "$images")"
"$root/.build/release/unroll" train --model conv2d --family crsae --untied --bias free-bias \
  --sigma 25/255 --sigma-range 5/255:55/255 --rotations --shifts 4 \
  --lr 1e-3 --lr-step 10000 --lr-gamma 0.5 --steps 40000 --seed 0 \
  --data "$(basename "$images")/train" "${hold_out[@]}" --eval-every 2000 \
  --atoms 175 --kernel 11 --stride 8 --crop 131 --shift-lattice 8 --non-local 0.1 \
  --checkpoint-every 500 --threads 2 --output "$out" "${@:2}"
echo "the model to ship: $out/best.safetensors"
