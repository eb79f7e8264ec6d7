#!/usr/bin/env python3
"""Does BM3D's non-local stage add to our estimate? An experiment for docs/denoising.md.

For each test image and σ: the shipped denoiser's estimate (`unroll.ConvolutionalDenoiser.pretrained()`),
full BM3D (hard thresholding, then Wiener filtering), and BM3D's Wiener stage alone with our estimate as
its pilot (`bm3d.bm3d(noisy, σ, stage_arg=ours)`: block matching on the pilot, collaborative Wiener
shrinkage of the noisy groups). Prints PSNR (peak 1, estimates clamped to [0, 1]) and seconds per image,
then the means. The noise is NumPy's `default_rng(--seed)`, one draw per image in name order.

    PYTHONPATH=python UNROLL_LIBRARY=.build/release/libUnrollC.so python3 bench/bm3d_pilot.py --sigma 25
"""
import argparse
import os
import time
from pathlib import Path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/images/test"))
    ap.add_argument("--sigma", type=float, nargs="+", default=[15, 25, 50], help="σ in /255 units")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import bm3d
    import numpy as np
    from PIL import Image
    import unroll

    model = unroll.ConvolutionalDenoiser.pretrained(n_jobs=args.threads)
    files = sorted(Path(args.images).glob("*.png"))

    def psnr(estimate, clean):
        return 10 * np.log10(1 / np.mean((np.clip(estimate, 0, 1) - clean) ** 2))

    for s in args.sigma:
        sigma = s / 255
        rng = np.random.default_rng(args.seed)
        rows = []
        print(f"σ {s:g}/255: image, PSNR ours / BM3D / BM3D Wiener on our pilot, seconds of each")
        for f in files:
            clean = np.asarray(Image.open(f).convert("L"), dtype=np.float64) / 255
            noisy = clean + sigma * rng.standard_normal(clean.shape)
            t = time.perf_counter(); ours = model.denoise(noisy.astype(np.float32), sigma).astype(np.float64)
            t_ours = time.perf_counter() - t
            t = time.perf_counter(); full = bm3d.bm3d(noisy, sigma); t_full = time.perf_counter() - t
            t = time.perf_counter(); wiener = bm3d.bm3d(noisy, sigma, stage_arg=ours); t_wiener = time.perf_counter() - t
            row = [psnr(ours, clean), psnr(full, clean), psnr(wiener, clean), t_ours, t_full, t_wiener]
            rows.append(row)
            print(f"  {f.stem:10s} {row[0]:6.2f} {row[1]:6.2f} {row[2]:6.2f}   {row[3]:5.2f} {row[4]:5.2f} {row[5]:5.2f} s", flush=True)
        m = np.mean(rows, axis=0)
        print(f"  {'mean':10s} {m[0]:6.2f} {m[1]:6.2f} {m[2]:6.2f}   {m[3]:5.2f} {m[4]:5.2f} {m[5]:5.2f} s", flush=True)


if __name__ == "__main__":
    main()
