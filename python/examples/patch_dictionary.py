"""Learning a dictionary of image patches with Unroll, step by step (run it as a script, or paste the
cells into a notebook).

    python3 python/examples/patch_dictionary.py [--images FOLDER] [--output DIR] [--quick]

It reads every PNG in FOLDER (default: ../shared/data/images/train beside the checkout, else a
synthetic image), learns 64 atoms of 8×8 by unrolled ISTA (PUDLE's g_ae-ls), and writes the atoms as
atoms.png (with matplotlib when it is installed, else as a plain tiled PNG) and the loss per step."""

# %% Setup
import argparse
from pathlib import Path

import numpy as np

import unroll

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--images", type=Path, default=Path(__file__).resolve().parents[2].parent / "shared" / "data" / "images" / "train")
parser.add_argument("--output", type=Path, default=Path("patch-dictionary"))
parser.add_argument("--quick", action="store_true", help="a small run (seconds), for tests")
args = parser.parse_args()
args.output.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)

# %% Images: every PNG of the folder as gray levels in [0, 1] (unroll's own PNG reader)
paths = sorted(args.images.glob("*.png")) if args.images.is_dir() else []
if paths:
    images = [unroll.read_png(p) for p in paths]
    print(f"{len(images)} images from {args.images}")
else:
    y, x = np.mgrid[0:256, 0:256]
    images = [(0.5 + 0.25 * np.sin(x / 7) * np.cos(y / 11) + 0.2 * ((x // 32 + y // 32) % 2)).astype(np.float32)]
    print(f"no PNG images in {args.images}: a synthetic 256×256 image instead")

# %% Patches: random 8×8 crops, each with its mean removed (the atoms model the texture, not the level)
side, count = 8, 2000 if args.quick else 20000
patches = []
for _ in range(count):
    img = images[rng.integers(len(images))]
    i, j = rng.integers(img.shape[0] - side + 1), rng.integers(img.shape[1] - side + 1)
    patches.append(img[i:i + side, j:j + side].ravel())
X = np.array(patches, dtype=np.float32)
X -= X.mean(axis=1, keepdims=True)
X /= np.linalg.norm(X, axis=1).mean()   # one scale for all patches, so λ means the same on any images
print(f"X: {X.shape[0]} patches of {X.shape[1]} pixels")

# %% Learn the dictionary: T unrolled ISTA layers, the dictionary the only weight, Adam on g_ae-ls
model = unroll.UnrolledDictionaryLearning(n_components=64, n_layers=30, lam=0.15, step=0.2, batch_size=100,
                                          max_iter=1 if args.quick else 5, learning_rate=3e-3, random_state=0, n_jobs=-1)
codes = model.fit_transform(X)
curve = np.array(model.loss_curve_)
print(f"{model.n_steps_} steps: loss {curve[:10].mean():.4g} (first 10) → {curve[-10:].mean():.4g} (last 10)")
print(f"codes: {100 * (codes == 0).mean():.1f}% zeros, {np.count_nonzero(codes, axis=1).mean():.1f} atoms per patch")
err = np.linalg.norm(X - model.inverse_transform(codes)) / np.linalg.norm(X)
print(f"relative reconstruction error ‖X − X̂‖/‖X‖ = {err:.3f}")
np.savetxt(args.output / "loss.csv", curve, header="loss per step", comments="")
model.save(args.output / "model.safetensors")   # `unroll info|encode` read it

# %% The atoms, each scaled to its own range, as an 8×8 grid
atoms = model.components_.reshape(-1, side, side)
lo, hi = atoms.min(axis=(1, 2), keepdims=True), atoms.max(axis=(1, 2), keepdims=True)
atoms = (atoms - lo) / np.maximum(hi - lo, 1e-12)
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(8, 8, figsize=(6, 6))
    for a, ax in zip(atoms, axes.ravel()):
        ax.imshow(a, cmap="gray", vmin=0, vmax=1)
        ax.axis("off")
    fig.suptitle("64 atoms learned by unrolled ISTA (g_ae-ls)")
    fig.savefig(args.output / "atoms.png", dpi=100)
except ImportError:
    grid = np.ones((8 * (side + 1) + 1, 8 * (side + 1) + 1), dtype=np.float32)
    for k, a in enumerate(atoms):
        r, c = divmod(k, 8)
        grid[1 + r * (side + 1):1 + r * (side + 1) + side, 1 + c * (side + 1):1 + c * (side + 1) + side] = a
    unroll.write_png(args.output / "atoms.png", np.kron(grid, np.ones((4, 4), dtype=np.float32)))
print(f"wrote {args.output}/atoms.png, loss.csv, model.safetensors")
