"""ConvolutionalDenoiser against the CLI on the same problem (0 ulp), and load / pretrained / errors."""

import json
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest

import unroll
from unroll import ConvolutionalDenoiser

from conftest import read_png_gray, unroll_binary, write_png
from test_dictionary import read_safetensors, run_cli


def images():
    y, x = np.mgrid[0:40, 0:44]
    a = (127 + 100 * np.sin(x / 5) * np.cos(y / 7)).astype(np.uint8)
    b = (127 + 90 * np.cos((x + 2 * y) / 6)).astype(np.uint8)
    return [a, b]


SETTINGS = dict(n_filters=8, kernel_size=5, stride=2, crop_size=17, n_layers=4, max_iter=20, learning_rate=1e-2, random_state=1)


def test_the_cli_and_python_learn_the_same_denoiser_to_0_ulp(tmp_path):
    (tmp_path / "train").mkdir()
    pixels = images()
    for i, a in enumerate(pixels):
        write_png(tmp_path / "train" / f"{i}.png", a)
    run_cli("train", "--model", "conv2d", "--data", "train", "--atoms", "8", "--kernel", "5", "--stride", "2", "--crop", "17",
            "--layers", "4", "--steps", "20", "--lr", "1e-2", "--seed", "1", "--threads", "1", "--output", "run", cwd=tmp_path)
    cli = read_safetensors(tmp_path / "run" / "model.safetensors")[0]["dictionary"]
    # The CLI reads 8-bit pixels as p / 255 (in double, then float).
    est = ConvolutionalDenoiser(**SETTINGS, n_jobs=1).fit([(a.astype(np.float64) / 255).astype(np.float32) for a in pixels])
    assert est.filters_.shape == (8, 5, 5)
    assert np.array_equal(est.filters_, cli.reshape(8, 5, 5))
    assert est.n_steps_ == 20 and len(est.loss_curve_) == 20
    # Denoising: the CLI's 8-bit output equals Python's estimate rounded the same way.
    rng = np.random.default_rng(0)
    noisy8 = np.clip(pixels[0] + rng.normal(0, 20, pixels[0].shape), 0, 255).round().astype(np.uint8)
    write_png(tmp_path / "noisy.png", noisy8)
    run_cli("denoise", "--model", "run/model.safetensors", "--input", "noisy.png", "--output", "out.png", "--threads", "1", cwd=tmp_path)
    ours = est.denoise((noisy8.astype(np.float64) / 255).astype(np.float32))
    scaled = ours.astype(np.float32) * np.float32(255)
    expected = np.clip(np.floor(scaled.astype(np.float64) + 0.5), 0, 255).astype(np.uint8)
    assert np.array_equal(read_png_gray(tmp_path / "out.png"), expected)
    # load() of the CLI's model denoises identically; the model Python saves is one the CLI reads.
    loaded = unroll.load(tmp_path / "run" / "model.safetensors")
    assert isinstance(loaded, ConvolutionalDenoiser) and np.array_equal(loaded.denoise(noisy8 / 255.0), est.denoise(noisy8 / 255.0))
    est.save(tmp_path / "py.safetensors")
    assert "model: conv2d," in run_cli("info", "py.safetensors", cwd=tmp_path).stdout


def test_the_shipped_model_denoises_at_any_sigma():
    model = ConvolutionalDenoiser.pretrained()
    assert model.filters_.shape == (175, 11, 11)   # CSCNet's size (docs/denoising.md)
    clean = (images()[0].astype(np.float64) / 255).astype(np.float32)
    psnr = lambda x: 10 * np.log10(1 / np.mean((x - clean) ** 2))
    for level in (15, 25, 50):
        rng = np.random.default_rng(level)
        noisy = (clean + rng.normal(0, level / 255, clean.shape)).astype(np.float32)
        # Given σ, and estimated from the image (sigma=None): both remove noise.
        for sigma in (level / 255, None):
            estimate = np.clip(model.denoise(noisy, sigma=sigma), 0, 1)
            assert psnr(estimate) > psnr(noisy) + 3, (level, sigma, psnr(noisy), psnr(estimate))
    assert model.denoise(noisy.astype(np.float64), sigma=0.1).dtype == np.float64
    # Noise-adaptive thresholds scale with σ: the network maps c·y at c·σ to c·f(y) at σ. (Not the
    # collaborative filter mixed in at the end: its matching threshold, BM3D's, is in absolute units.)
    a = model.denoise(noisy, sigma=0.1, collaborative=0)
    b = model.denoise(np.float32(2) * noisy, sigma=0.2, collaborative=0)
    assert np.allclose(b, 2 * a, rtol=1e-4, atol=1e-5)
    for bad in (0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="sigma"):
            model.denoise(noisy, sigma=bad)


def nonlocal_means(u, f, d, h):
    """The denoiser's last stage by its definition (docs/denoising.md), in float64 with NumPy: each pixel the
    mean of its (2d+1)² window, weighted by exp(−mean squared patch difference / h²), reflect-padded."""
    rows, cols = u.shape
    r = d + f
    g = np.pad(u.astype(np.float64), r, mode="reflect")
    num, den = np.zeros(u.shape), np.zeros(u.shape)
    core = g[d:d + rows + 2 * f, d:d + cols + 2 * f]
    k = np.ones(2 * f + 1) / (2 * f + 1)
    for dy in range(-d, d + 1):
        for dx in range(-d, d + 1):
            e = (core - g[d + dy:d + dy + rows + 2 * f, d + dx:d + dx + cols + 2 * f]) ** 2
            e = np.apply_along_axis(lambda v: np.convolve(v, k, "valid"), 0, e)
            e = np.apply_along_axis(lambda v: np.convolve(v, k, "valid"), 1, e)
            w = np.exp(-e / (h * h))
            num += w * g[r + dy:r + dy + rows, r + dx:r + dx + cols]
            den += w
    return num / den


def test_the_shipped_models_end_with_a_non_local_means_numpy_agrees(tmp_path):
    """Each shipped model names its non-local stage in its file; the same file without those keys denoises
    without it, and NumPy's non-local means of that estimate is the shipped model's output (1e-5)."""
    from unroll._denoiser import _shipped
    models = json.loads(_shipped("denoise-models.json").read_text())["models"]
    # Flat regions: many alike patches, whose residual error the stage averages out.
    clean = np.full((40, 44), 0.3, np.float32)
    clean[10:30, 12:34] = 0.7
    rng = np.random.default_rng(3)
    noisy = (clean + rng.normal(0, 25 / 255, clean.shape)).astype(np.float32)
    for entry in models:
        blob = _shipped(entry["file"]).read_bytes()
        n = int.from_bytes(blob[:8], "little")
        header = json.loads(blob[8:8 + n])
        meta = header["__metadata__"]
        strength, patch, window = float(meta["model.non_local"]), int(meta["model.non_local_patch"]), int(meta["model.non_local_window"])
        assert (strength, patch, window) == (0.1, 7, 23), entry
        for key in ("model.non_local", "model.non_local_patch", "model.non_local_window"):
            del meta[key]
        text = json.dumps(header).encode()
        plain_path = tmp_path / ("plain-" + entry["file"])
        plain_path.write_bytes(len(text).to_bytes(8, "little") + text + blob[8 + n:])
        staged, plain = unroll.load(_shipped(entry["file"]), n_jobs=1), unroll.load(plain_path, n_jobs=1)
        sigma = 25 / 255
        # (The collaborative filter, mixed in after the stage, is off here; see the next test.)
        expected = nonlocal_means(plain.denoise(noisy, sigma=sigma, collaborative=0), patch // 2, window // 2, strength * sigma)
        got = staged.denoise(noisy, sigma=sigma, collaborative=0)
        assert np.max(np.abs(got - expected)) < 1e-5, entry
        assert np.max(np.abs(got - plain.denoise(noisy, sigma=sigma, collaborative=0))) > 1e-3   # the stage does something
        # The same through `denoise(non_local=…)`: 0 is the stripped model, h/σ on it the shipped one.
        assert staged.non_local_ == pytest.approx((0.1, 7, 23)) and plain.non_local_ is None
        assert np.array_equal(staged.denoise(noisy, sigma=sigma, non_local=0, collaborative=0), plain.denoise(noisy, sigma=sigma, collaborative=0))
        assert np.array_equal(plain.denoise(noisy, sigma=sigma, non_local=strength, collaborative=0), got)
        assert staged._model.non_local() == pytest.approx((0.1, 7, 23))   # the model's own stage is back
    # A model of one σ has no σ to set h from; bad strengths are refused.
    fitted = ConvolutionalDenoiser(**SETTINGS, n_jobs=1).fit([(a / 255).astype(np.float32) for a in images()])
    assert fitted.non_local_ is None
    with pytest.raises(Exception, match="needs the noise σ"):
        fitted.denoise(noisy, non_local=0.1)
    for bad in (-0.1, float("nan")):
        with pytest.raises(ValueError, match="non_local"):
            staged.denoise(noisy, non_local=bad)


def bm3d_step(y, sigma, lam, pilot=None, k=8, group=16, radius=12, step=3):
    """BM3D's first step (Dabov et al. 2007; Lebrun 2012) in float64, one reference patch at a time: the
    candidates within the window whose squared distance is ≤ τ, sorted (the reference first, ties in scan
    order), a power of two of them; orthonormal 8×8 DCT and Walsh–Hadamard across the group; coefficients
    below λσ zeroed; patches summed with weight 1/(non-zeros) times a Kaiser window (β = 2).
    With a pilot, its second step on the same groups: the orthonormal Haar transform across the group, each
    coefficient of the noisy group scaled by P²/(P² + λ²σ²) of the pilot's, weight 1/Σ factor²."""
    y = np.asarray(y, np.float64)
    pilot = None if pilot is None else np.asarray(pilot, np.float64)
    rows, cols = y.shape
    tau = (2500 if sigma <= 40 / 255 else 5000) / 255 ** 2 * k * k
    c = np.array([[np.cos(np.pi * (2 * x + 1) * u / (2 * k)) for x in range(k)] for u in range(k)]) * np.sqrt(2 / k)
    c[0] /= np.sqrt(2)
    window = np.outer(np.kaiser(k, 2.0), np.kaiser(k, 2.0))

    def grid(n):
        g = list(range(0, n - k + 1, step))
        return g if g[-1] == n - k else g + [n - k]

    def across(n):   # the orthonormal transform across a group of n
        h = np.array([[1.0]])
        while h.shape[0] < n:
            m = h.shape[0]
            h = np.block([[h, h], [h, -h]]) if pilot is None else np.vstack([np.kron(h, [1, 1]), np.kron(np.eye(m), [1, -1])])
            h /= np.sqrt(2)
        return h

    num, den = np.zeros_like(y), np.zeros_like(y)
    for i in grid(rows):
        for j in grid(cols):
            found = []
            for dy in range(-radius, radius + 1):
                for dx in range(-radius, radius + 1):
                    a, b = i + dy, j + dx
                    if 0 <= a <= rows - k and 0 <= b <= cols - k:
                        d = np.sum((y[i:i + k, j:j + k] - y[a:a + k, b:b + k]) ** 2)
                        if d <= tau:
                            found.append((d, -1 if (dy, dx) == (0, 0) else len(found), a, b))
            found.sort(key=lambda t: t[:2])
            n = 1
            while 2 * n <= min(len(found), group):
                n *= 2
            h = across(n)
            members = [(a, b) for _, _, a, b in found[:n]]
            t = np.tensordot(h, np.stack([c @ y[a:a + k, b:b + k] @ c.T for a, b in members]), axes=1)
            if pilot is None:
                t[np.abs(t) < lam * sigma] = 0
                w = 1 / max(np.count_nonzero(t), 1)
            else:
                p2 = np.tensordot(h, np.stack([c @ pilot[a:a + k, b:b + k] @ c.T for a, b in members]), axes=1) ** 2
                d = p2 + (lam * sigma) ** 2
                f = np.divide(p2, d, out=np.zeros_like(p2), where=d > 0)
                t *= f
                w = 1 / np.sum(f ** 2) if np.any(f) else 1
            for (a, b), p in zip(members, np.tensordot(h.T, t, axes=1)):
                num[a:a + k, b:b + k] += w * window * (c.T @ p @ c)
                den[a:a + k, b:b + k] += w * window
    return num / den


def test_the_shipped_models_mix_in_bm3d_two_steps_numpy_agrees():
    """Each shipped model ends with BM3D's two steps of the noisy image: a share a of the first step b, then a
    share c of the second step with that mix as its pilot. With a = 1 and c = 0 its output is b, with a = 1 and
    c = 1 the second step with b as the pilot; both equal a float64 NumPy version written from the definition
    (5e-5), and the model's own a and c mix them into the estimate without them."""
    from unroll._denoiser import _shipped
    models = json.loads(_shipped("denoise-models.json").read_text())["models"]
    yy, xx = np.mgrid[0:34, 0:41]
    clean = (0.5 + 0.3 * np.sin(xx / 1.3) * (yy > 15) + 0.1 * np.cos(yy / 4)).astype(np.float32)
    for entry, sigma in zip(models, (15 / 255, 25 / 255, 50 / 255)):
        noisy = (clean + np.random.default_rng(6).normal(0, sigma, clean.shape)).astype(np.float32)
        model = unroll.load(_shipped(entry["file"]), n_jobs=1)
        a, lam, c, mu = model.collaborative_
        assert lam == 3.0 and 0 < a <= 0.5 and 0 <= c <= 1 and mu > 0, entry
        b = model.denoise(noisy, sigma=sigma, collaborative=1, wiener=0)
        assert np.max(np.abs(b - bm3d_step(noisy, np.float32(sigma), lam))) < 5e-5, entry
        assert np.max(np.abs(b - noisy)) > sigma   # it filtered
        f = model.denoise(noisy, sigma=sigma, collaborative=1, wiener=1)
        assert np.max(np.abs(f - bm3d_step(noisy, np.float32(sigma), np.float32(mu), pilot=b))) < 5e-5, entry
        assert np.max(np.abs(f - b)) > sigma / 10   # the second step is not the first
        without = model.denoise(noisy, sigma=sigma, collaborative=0)
        pilot = (1 - np.float32(a)) * without + np.float32(a) * b
        own_f = model.denoise(noisy, sigma=sigma, wiener=1)   # the second step with the model's own mix as the pilot
        assert np.max(np.abs(own_f - bm3d_step(noisy, np.float32(sigma), np.float32(mu), pilot=pilot))) < 5e-5, entry
        expected = (1 - np.float32(c)) * pilot + np.float32(c) * own_f
        assert np.max(np.abs(model.denoise(noisy, sigma=sigma) - expected)) < 1e-6, entry
        assert model._model.collaborative() == pytest.approx((a, lam, c, mu))   # the model's own shares are back
    for bad in (-0.1, 1.5, float("nan")):
        for name in ("collaborative", "wiener"):
            with pytest.raises(ValueError, match=name):
                model.denoise(noisy, **{name: bad})
    with pytest.raises(ValueError, match="first step"):
        model.denoise(noisy, sigma=sigma, collaborative=0, wiener=0.5)


def test_pretrained_picks_the_model_the_cli_picks_for_sigma(tmp_path):
    """`pretrained(sigma)` is the shipped model `unroll denoise --sigma` uses on either side of each
    switch of `denoise-models.json` (the σ 5–55/255 model first, reference 25/255); their 8-bit
    outputs agree."""
    resources = Path(__file__).resolve().parents[2] / "Sources" / "unroll" / "Resources"
    shipped = json.loads((resources / "denoise-models.json").read_text())["models"]
    assert len(shipped) >= 2 and shipped[0]["from_sigma_255"] == 0
    assert ConvolutionalDenoiser.pretrained().noise_reference_ == pytest.approx(25 / 255)
    noisy8 = np.clip(images()[1] + np.random.default_rng(5).normal(0, 40, (40, 44)), 0, 255).round().astype(np.uint8)
    write_png(tmp_path / "noisy.png", noisy8)
    cases = [(15, 0), (70, len(shipped) - 1)]
    for i, m in enumerate(shipped[1:], start=1):
        cases += [(m["from_sigma_255"] - 0.5, i - 1), (m["from_sigma_255"] + 0.5, i)]
    for level, i in cases:
        model = ConvolutionalDenoiser.pretrained(sigma=level / 255, n_jobs=1)
        assert model.noise_reference_ == unroll.load(resources / shipped[i]["file"]).noise_reference_, level
        run_cli("denoise", "--input", "noisy.png", "--sigma", f"{level}/255", "--output", "out.png", "--threads", "1", cwd=tmp_path)
        ours = model.denoise((noisy8.astype(np.float64) / 255).astype(np.float32), sigma=np.float32(level) / np.float32(255))
        expected = np.clip(np.floor((ours.astype(np.float32) * np.float32(255)).astype(np.float64) + 0.5), 0, 255).astype(np.uint8)
        assert np.array_equal(read_png_gray(tmp_path / "out.png"), expected), level
    with pytest.raises(ValueError, match="sigma"):
        ConvolutionalDenoiser.pretrained(sigma=-1)


def test_pickle_and_bad_input():
    est = ConvolutionalDenoiser(**SETTINGS).fit([a / 255.0 for a in images()])
    again = pickle.loads(pickle.dumps(est))
    image = images()[1] / 255.0
    assert np.array_equal(again.denoise(image), est.denoise(image))
    with pytest.raises(ValueError, match="2-D"):
        ConvolutionalDenoiser(**SETTINGS).fit([np.zeros((3, 20, 20))])
    with pytest.raises(ValueError, match="dtype"):
        ConvolutionalDenoiser(**SETTINGS).fit(images())
    with pytest.raises(ValueError, match="crop_size"):
        ConvolutionalDenoiser(n_filters=2, kernel_size=9, crop_size=5).fit([a / 255.0 for a in images()])
    with pytest.raises(ValueError, match="smaller|filters|kernel"):
        est.denoise(np.zeros((3, 3)))
    with pytest.raises(unroll.UnrollError, match="takes a dense model; the handle holds a conv2d model"):
        est._model.transform(np.zeros((2, 25), np.float32))


def test_an_rgb_image_is_denoised_channel_by_channel():
    est = unroll.ConvolutionalDenoiser.pretrained(n_jobs=1)
    rgb = np.random.default_rng(3).random((30, 34, 3)).astype(np.float32)
    for sigma in (None, 0.1):
        out = est.denoise(rgb, sigma=sigma)
        assert out.shape == (30, 34, 3) and out.dtype == np.float32
        for k in range(3):
            assert np.array_equal(out[:, :, k], est.denoise(np.ascontiguousarray(rgb[:, :, k]), sigma=sigma))
    with pytest.raises(ValueError, match="2-D grayscale"):
        est.denoise(rgb[:, :, :2])



def lattice_shifts(n, s):
    """The model's n shifts on a lattice: (⌊k·s/n⌋, ⌊s·(a·k mod n)/n⌋), a the integer coprime to n nearest 0.382·n."""
    from math import gcd
    a = min((c for c in range(n + 1) if gcd(c, n) == 1), key=lambda c: (abs(c - 0.381966 * n), c))
    return [(k * s // n, (a * k % n) * s // n) for k in range(n)]


def reference_denoise(noisy, tensors, meta, sigma):
    """The shipped network from its file's equations, in float64 NumPy, without the non-local stage:
    each shifted copy reflect-padded (s + i rows above, s + j columns left, the bottom/right to the
    smallest side ≥ n + 3s − 1 that fits the stride), FISTA z ← soft(y − α Eᵀ(D y − x), b·σ/σ₀) for T layers
    (strided correlation with E, transposed convolution with D), decoded by the synthesis bank, and the
    copies' windows averaged."""
    d, e, syn = (tensors[k][:, 0].astype(np.float64) for k in ("dictionary", "analysis", "synthesis"))
    c, k, _ = d.shape
    s, layers, alpha = int(meta["operator.stride"]), int(meta["encoder.layers"]), float(meta["encoder.step"])
    assert meta["encoder.algorithm"] == "fista" and meta["encoder.threshold"] == "soft" and meta["encoder.lambda_role"] == "threshold"
    b = tensors["lambda"].astype(np.float64) * sigma / float(meta["model.adaptive_sigma"])
    h, w = noisy.shape

    def side(n):
        p = n + 3 * s - 1
        return p + (-(p - k)) % s

    def reflect(i, n):
        r = np.mod(i, 2 * (n - 1))
        return np.where(r < n, r, 2 * (n - 1) - r)

    shifts = lattice_shifts(int(meta["model.shift_lattice"]), s)
    ph, pw = side(h), side(w)
    x = np.stack([noisy[reflect(np.arange(ph) - s - i, h)][:, reflect(np.arange(pw) - s - j, w)] for i, j in shifts]).astype(np.float64)
    ho, wo = (ph - k) // s + 1, (pw - k) // s + 1

    def correlate(img, f):   # [B, P, Q] → [B, C, Ho, Wo]
        win = np.lib.stride_tricks.sliding_window_view(img, (k, k), axis=(1, 2))[:, ::s, ::s]
        return np.einsum("bxyuv,cuv->bcxy", win, f)

    def transposed(z, f):    # [B, C, Ho, Wo] → [B, P, Q]
        taps = np.einsum("bcxy,cuv->buvxy", z, f)
        out = np.zeros((z.shape[0], ph, pw))
        for u in range(k):
            for v in range(k):
                out[:, u:u + s * ho:s, v:v + s * wo:s] += taps[:, u, v]
        return out

    mu, t_k = [], 1.0
    for _ in range(layers):
        t_next = (1 + np.sqrt(1 + 4 * t_k * t_k)) / 2
        mu.append((t_k - 1) / t_next)
        t_k = t_next
    z = z_before = np.zeros((len(shifts), c, ho, wo))
    for t in range(1, layers + 1):
        y = z + (mu[t - 2] if t >= 2 else 0) * (z - z_before)
        v = y - alpha * correlate(transposed(y, d) - x, e)
        z_before, z = z, np.sign(v) * np.maximum(np.abs(v) - b[None, :, None, None], 0)
    decoded = transposed(z, syn)
    return np.mean([decoded[n, s + i:s + i + h, s + j:s + j + w] for n, (i, j) in enumerate(shifts)], axis=0)


def test_the_shipped_networks_equal_a_numpy_reference_written_from_their_files():
    """Each shipped model's estimate (the network and its shift average, the non-local stage off) equals a
    float64 NumPy reference of its equations, on an image whose sides do not fit the stride."""
    from unroll._denoiser import _shipped
    models = json.loads(_shipped("denoise-models.json").read_text())["models"]
    yy, xx = np.mgrid[0:37, 0:45]
    clean = (0.5 + 0.3 * np.sin(xx / 3 + yy / 5) * (yy > 12)).astype(np.float32)
    for entry, sigma in zip(models, (15 / 255, 25 / 255, 50 / 255)):
        noisy = (clean + np.random.default_rng(4).normal(0, sigma, clean.shape)).astype(np.float32)
        tensors, meta = read_safetensors(_shipped(entry["file"]))
        expected = reference_denoise(noisy, tensors, meta, sigma)
        got = unroll.load(_shipped(entry["file"]), n_jobs=1).denoise(noisy, sigma=sigma, non_local=0, collaborative=0)
        assert np.max(np.abs(got - expected)) < 2e-5 * np.max(np.abs(expected)), entry
        assert np.max(np.abs(expected - noisy)) > 0.05   # it denoised something
