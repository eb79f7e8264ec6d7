#!/usr/bin/env bash
# Builds a larger training set for the denoisers: the 14 images of ../shared/data/images/train plus 28
# photographs that Debian's and PyPI's packages carry (wallpapers of MATE and Plasma, sample images of
# scikit-learn, scikit-image, Matplotlib, PyWavelets and SPORCO), converted to 8-bit gray as the shared
# images were (luma 0.2125 R + 0.7154 G + 0.0721 B) and the large ones shrunk to a short side of 512
# pixels (Lanczos, in floating point), which also averages away their JPEG artefacts.
#
#   scripts/fetch-training-images.sh [OUTPUT_DIR]     # default training-images; writes OUTPUT_DIR/train
#   (scripts/train-denoiser.sh runs it into .build/training-images itself)
#
# No test image, and no other picture of a test image's scene, is among them (the test images are
# camera, barbara, monarch and cell; PyWavelets' camera and SPORCO's barbara and monarch are left out).
# The packages' versions are pinned and every PNG is checked against scripts/training-images.sha256 (made with
# Pillow 13.0.0 and NumPy 2.4: the checksums depend on their resampling and rounding), so
# a model trained on the folder is reproducible; downloads are cached in OUTPUT_DIR/packages.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=$(realpath "${UNROLL_SHARED_IMAGES:-$root/../shared/data/images}")
out=$(realpath -m "${1:-training-images}")
[ -d "$shared/train" ] || { echo "no shared training images in $shared/train (set UNROLL_SHARED_IMAGES)" >&2; exit 1; }
mkdir -p "$out/packages" "$out/train"
rm -f "$out/train"/*.png   # the folder is rebuilt: a PNG left from another set would be trained on unchecked
cd "$out/packages"

debs=(mate-backgrounds=1.26.0-1 plasma-workspace-wallpapers=4:5.27.5-2)
wheels=(scikit-learn==1.9.1 scikit-image==0.26.0 matplotlib==3.11.2 pywavelets==1.9.0 sporco==0.2.2.post1)
for d in "${debs[@]}"; do
    ls "${d%%=*}"_*.deb >/dev/null 2>&1 || apt-get download "$d" \
        || { echo "could not download the Debian package $d (apt-get update first?)" >&2; exit 1; }
done
for w in "${wheels[@]}"; do
    name=${w%%==*}; file=$(echo "$name" | tr - _)
    ls "$file"-*.whl >/dev/null 2>&1 || python3 -m pip download -q --no-deps --only-binary :all: "$w" \
        || { echo "could not download $w from PyPI" >&2; exit 1; }
done

# The checksums below were made with this Pillow; install it where Pillow is missing.
python3 -c 'import PIL, numpy' 2>/dev/null || python3 -m pip install --quiet pillow==13.0.0 numpy 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages pillow==13.0.0 numpy
python3 - "$out/packages" "$out/train" <<'EOF'
import glob, io, sys, zipfile, subprocess, tempfile, os
import numpy as np
from PIL import Image
packages, train = sys.argv[1:]
scratch, unpacked = tempfile.TemporaryDirectory(), {}
def deb(pattern, member):   # each package unpacked once
    if pattern not in unpacked:
        unpacked[pattern] = os.path.join(scratch.name, str(len(unpacked)))
        subprocess.run(["dpkg-deb", "-x", glob.glob(f"{packages}/{pattern}")[0], unpacked[pattern]], check=True)
    return open(os.path.join(unpacked[pattern], member), "rb").read()
def wheel(pattern, member):
    with zipfile.ZipFile(glob.glob(f"{packages}/{pattern}")[0]) as z: return z.read(member)
def gray(data, member):
    if member.endswith(".npz"):  # PyWavelets' gray images, uint8
        z = np.load(io.BytesIO(data)); return z[z.files[0]].astype(np.float64) / 255
    im = Image.open(io.BytesIO(data)); im.load()
    a = np.asarray(im.convert("RGB"), dtype=np.float64) / 255
    return a @ np.array([0.2125, 0.7154, 0.0721])
mate = "usr/share/backgrounds/mate/nature/"
plasma = "usr/share/wallpapers/{}/contents/images/2560x1600.jpg"
sources = {n.lower(): ("mate-backgrounds_*.deb", mate + n + ".jpg") for n in
           ("Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops",
            "Storm", "TwoWings", "Wood", "YellowFlower")}
sources |= {n.lower(): ("plasma-workspace-wallpapers_*.deb", plasma.format(n)) for n in
            ("BytheWater", "ColdRipple", "ColorfulCups", "EveningGlow", "FallenLeaf", "Grey", "OneStandsOut", "Path")}
sources |= {"china": ("scikit_learn-*.whl", "sklearn/datasets/images/china.jpg"),
            "flower": ("scikit_learn-*.whl", "sklearn/datasets/images/flower.jpg"),
            "ihc": ("scikit_image-*.whl", "skimage/data/ihc.png"),
            "motorcycle_right": ("scikit_image-*.whl", "skimage/data/motorcycle_right.png"),
            "grace_hopper": ("matplotlib-*.whl", "matplotlib/mpl-data/sample_data/grace_hopper.jpg"),
            "aero": ("pywavelets-*.whl", "pywt/data/aero.npz"),
            "ascent": ("pywavelets-*.whl", "pywt/data/ascent.npz"),
            "kodim23": ("sporco-*.whl", "sporco/data/kodim23.png")}
for name, (package, member) in sorted(sources.items()):
    data = (deb if package.endswith(".deb") else wheel)(package, member)
    a = gray(data, member)
    h, w = a.shape
    if min(h, w) > 512:
        s = 512 / min(h, w)
        im = Image.fromarray(a.astype(np.float32), mode="F").resize((round(w * s), round(h * s)), Image.Resampling.LANCZOS)
        a = np.asarray(im, dtype=np.float64)
    Image.fromarray(np.clip(np.rint(a * 255), 0, 255).astype(np.uint8)).save(f"{train}/{name}.png", optimize=False)
print(f"{len(sources)} photographs from the packages")
EOF
cp "$shared"/train/*.png "$out/train/"
cd "$out/train"
if ! sha256sum --quiet -c "$root/scripts/training-images.sha256"; then
    echo "the images differ from scripts/training-images.sha256 (other package or Pillow versions?)" >&2; exit 1
fi
echo "$(ls | wc -l) training images in $out/train"
