#!/usr/bin/env python3
"""BM3D (`pip install bm3d`, Mäkinen, Azzari & Foi's reference implementation) on the noisy images
`unroll bench denoise` wrote: the peer of the denoising case.

`--input DIR` holds `manifest.json` ([{"file": "camera-s25.npy", "sigma": 0.098…}, …]) and the noisy
float32 images [H, W] it names; each is denoised with `bm3d.bm3d(noisy, sigma_psd=sigma)` (the
profile's defaults: hard thresholding, then Wiener filtering) and saved under the same name in
`--output DIR`. Prints one JSON line: the seconds of each image (one call each, after one untimed
warm-up call on a 64×64 crop) and, when scikit-image is installed and the manifest names the clean
image, scikit-image's SSIM of the BM3D estimate, which `unroll bench` compares with its own SSIM.

Threads: BM3D's library is told --threads through OMP_NUM_THREADS (set before it loads).
"""
import argparse
import json
import os
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true", help="print only the JSON line (always the case)")
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    try:
        import bm3d
    except ImportError:
        print("bm3d_denoise.py: bm3d is not installed (pip install bm3d, or scripts/bench.sh --install)", file=sys.stderr)
        sys.exit(3)
    import numpy as np
    try:
        from skimage.metrics import structural_similarity
    except ImportError:
        structural_similarity = None
    with open(os.path.join(args.input, "manifest.json")) as f:
        manifest = json.load(f)
    os.makedirs(args.output, exist_ok=True)
    first = np.load(os.path.join(args.input, manifest[0]["file"]))
    bm3d.bm3d(first[:64, :64], sigma_psd=manifest[0]["sigma"])          # warm-up
    results = []
    for item in manifest:
        noisy = np.load(os.path.join(args.input, item["file"])).astype(np.float64)
        t0 = time.perf_counter()
        estimate = bm3d.bm3d(noisy, sigma_psd=item["sigma"])
        seconds = time.perf_counter() - t0
        estimate = np.asarray(estimate, dtype=np.float32).reshape(noisy.shape)
        np.save(os.path.join(args.output, item["file"]), estimate)
        row = {"file": item["file"], "seconds": seconds}
        if structural_similarity is not None and item.get("clean"):
            clean = np.load(os.path.join(args.input, item["clean"])).astype(np.float64)
            row["skimage_ssim"] = float(structural_similarity(np.clip(estimate.astype(np.float64), 0, 1), clean, data_range=1.0,
                                                              gaussian_weights=True, sigma=1.5, use_sample_covariance=False))
        results.append(row)
    try:
        from importlib.metadata import version
        v = version("bm3d")
    except Exception:
        v = "?"
    print(json.dumps({"peer": "BM3D", "bm3d": v, "numpy": np.__version__, "threads": args.threads,
                      "skimage": structural_similarity is not None, "results": results}))


if __name__ == "__main__":
    main()
