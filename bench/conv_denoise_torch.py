#!/usr/bin/env python3
"""PyTorch reference of PUDLE's image-denoising network (Table 1): the peer of `unroll bench conv-denoise`.

Written from the paper's equations (Tolooshams & Ba, TMLR 2022; project notes reference/pudle.md §5),
not from its repository. The C filters h_c (K x K, stride s) are the only weight; D is the transposed
convolution (codes -> image) and D^T the strided correlation (image -> codes):

    encoder   z_0 = 0,  z_t = S_{lambda alpha}( z_{t-1} - alpha D^T (D z_{t-1} - y) ),  t = 1..T
              (y the noisy image, S the two-sided soft threshold)
    loss      g_ae-ls: 1/2 ||x_clean - D z_T||^2 / B, backpropagated through the T layers
    step      Adam on the filters, then every filter scaled to unit Frobenius norm

Table 1 settings (the defaults): 64 filters 9x9, stride 4, T 15, alpha 0.1, lambda 0.16, Adam lr 1e-4
eps 1e-3, one 129x129 crop, batch 1, sigma 25/255.

Where the two sides may differ:
  * Sizes that do not fit the stride. The code grid is Ho = ceil((H - K)/s) + 1 (likewise Wo); the image
    is zero-padded at the bottom/right to Hp = (Ho - 1)s + K for D^T (conv2d on F.pad(y)) and D's output
    (conv_transpose2d, size Hp) is cropped back to H, as in Sources/Unroll/Operators/
    Convolution2DDictionary.swift. 129 = 30*4 + 9 fits exactly, so the benchmark has no padding at all.
  * Input data. Under `unroll bench` the Swift side writes its clean crop, noisy crop and initial filters to
    an .npz (`--inputs`), so both sides start from the same numbers and their per-step losses agree to
    float32 rounding (the bench prints both). Run alone, this script draws its own synthetic image (random
    rectangles and discs on a ramp, in [0, 1]) -- same recipe as the Swift side, a different generator.
  * Every timed step re-uses the same crop and noise (both sides), so the loss falls from step to step; the
    paper draws a new crop and new noise per step, which costs microseconds and is not timed here.
  * Arithmetic. PyTorch runs dense conv2d / conv_transpose2d (oneDNN/im2col) on float32; ours exploits
    sparse codes in D z. The results agree to rounding, not bit for bit.

One step (forward through T layers + backward + Adam + normalise) is timed `--repeats` times after
`--warmup` untimed ones. The last stdout line is one JSON object: median seconds, all times, losses per
step, code density, peak RSS (getrusage ru_maxrss), torch version, settings.

`--selftest` checks, in float64 on tiny instances (fitting and non-fitting sizes, strides 1 and 2):
D against a naive scatter loop, <D z, y> = <z, D^T y>, torch.autograd.gradcheck of the g_ae-ls loss
through T = 1 and 3 layers, that gradcheck rejects the decoder-only gradient (so the check can fail),
unit-norm filters after a step and a falling loss over steps; exits with status 1 on a failure.

`--check FILE.npz` (used by the Swift tests): reads clean, noisy, filters (and the settings as scalars),
runs one g_ae-ls step in float64 and prints one JSON object with the loss, the gradient and the filters
after the step (with `--selftest` too: the self-test first, the JSON still the last line).
"""
import argparse
import math
import os

import peer_protocol

TABLE1 = dict(filters=64, kernel=9, stride=4, layers=15, alpha=0.1, lam=0.16, lr=1e-4, eps=1e-3, sigma=25 / 255, size=129)


# ---------------------------------------------------------------------------------------------------
# Model (imports torch lazily so --help works without it)

def make_model(torch):
    F = torch.nn.functional

    def geometry(H, W, K, s):
        """Code grid (Ho, Wo) and the padded size (Hp, Wp) it spans."""
        Ho, Wo = -(-(H - K) // s) + 1, -(-(W - K) // s) + 1
        return Ho, Wo, (Ho - 1) * s + K, (Wo - 1) * s + K

    def apply(Z, h, s, H, W):
        """D z: [B, C, Ho, Wo] -> [B, H, W] (transposed convolution, cropped to H x W)."""
        return F.conv_transpose2d(Z, h, stride=s)[:, 0, :H, :W]

    def adjoint(Y, h, s):
        """D^T y: [B, H, W] -> [B, C, Ho, Wo] (zero-pad bottom/right to Hp x Wp, strided correlation)."""
        H, W = Y.shape[-2:]
        _, _, Hp, Wp = geometry(H, W, h.shape[-1], s)
        return F.conv2d(F.pad(Y, (0, Wp - W, 0, Hp - H)).unsqueeze(1), h, stride=s)

    def encode(Y, h, s, layers, lam, alpha):
        """z_T for noisy images Y [B, H, W]; differentiable in h unless called under no_grad."""
        H, W = Y.shape[-2:]
        Ho, Wo, _, _ = geometry(H, W, h.shape[-1], s)
        Z = Y.new_zeros(Y.shape[0], h.shape[0], Ho, Wo)
        for _ in range(layers):
            Z = F.softshrink(Z - alpha * adjoint(apply(Z, h, s, H, W) - Y, h, s), lam * alpha)
        return Z

    def loss_ls(clean, noisy, h, cfg, detach_codes=False):
        """g_ae-ls: 1/2 ||clean - D z_T||^2 / B, and the codes."""
        if detach_codes:
            with torch.no_grad():
                Z = encode(noisy, h, cfg["stride"], cfg["layers"], cfg["lam"], cfg["alpha"])
        else:
            Z = encode(noisy, h, cfg["stride"], cfg["layers"], cfg["lam"], cfg["alpha"])
        H, W = noisy.shape[-2:]
        R = apply(Z, h, cfg["stride"], H, W) - clean
        return 0.5 * R.pow(2).sum() / noisy.shape[0], Z

    def train_step(clean, noisy, h, opt, cfg):
        opt.zero_grad(set_to_none=True)
        loss, Z = loss_ls(clean, noisy, h, cfg)
        loss.backward()
        opt.step()
        with torch.no_grad():
            h.div_(h.flatten(1).norm(dim=1).view(-1, 1, 1, 1))
        return loss.detach(), Z.detach()

    return geometry, apply, adjoint, encode, loss_ls, train_step


def synthetic_image(torch, size, generator, dtype):
    """A piecewise-smooth test image in [0, 1]: a ramp, 12 rectangles and 6 discs of random intensity."""
    u = lambda a=0.0, b=1.0: a + (b - a) * float(torch.rand(1, generator=generator, dtype=torch.float64))
    r = torch.arange(size, dtype=dtype).view(-1, 1) / size - 0.5
    c = torch.arange(size, dtype=dtype).view(1, -1) / size - 0.5
    img = 0.5 + u(-0.2, 0.2) * c + u(-0.2, 0.2) * r
    for _ in range(12):
        top, left = int(u() * size), int(u() * size)
        hh, ww = 2 + int(u() * size / 3), 2 + int(u() * size / 3)
        img[top:top + hh, left:left + ww] += u(-0.3, 0.3)
    for _ in range(6):
        ci, cj, rad = u(-0.5, 0.5), u(-0.5, 0.5), u(0.03, 0.2)
        img = img + u(-0.3, 0.3) * (((r - ci) ** 2 + (c - cj) ** 2) < rad ** 2).to(dtype)
    return img.clamp(0, 1)


def random_filters(torch, C, K, generator, dtype):
    h = torch.randn(C, 1, K, K, generator=generator, dtype=dtype)
    return h / h.flatten(1).norm(dim=1).view(-1, 1, 1, 1)


# ---------------------------------------------------------------------------------------------------
# Benchmark

def load_inputs(path, torch, dtype):
    import numpy as np
    d = np.load(path)
    t = lambda name: torch.from_numpy(np.ascontiguousarray(d[name])).to(dtype)
    return t("clean"), t("noisy"), t("filters"), {k: float(d[k]) for k in d.files if d[k].ndim == 0}


def setup(args):
    """Builds the problem; returns (out, work, finish)."""
    import torch
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(not args.no_flush_denormal)
    *_, train_step = make_model(torch)
    cfg = dict(TABLE1)
    out = dict(case="conv-denoise", threads=args.threads, torch=torch.__version__,
               flush_denormal=not args.no_flush_denormal, omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", ""),
               baseline_rss_mb=peer_protocol.rss_mb())
    if args.inputs:
        clean, noisy, h0, _ = load_inputs(args.inputs, torch, torch.float32)
        out["inputs"] = "from " + os.path.basename(args.inputs)
    else:
        g = torch.Generator().manual_seed(args.seed)
        clean = synthetic_image(torch, args.size, g, torch.float32)
        noisy = clean + cfg["sigma"] * torch.randn(clean.shape, generator=g)
        h0 = random_filters(torch, cfg["filters"], cfg["kernel"], g, torch.float32)
        out["inputs"] = f"synthetic, seed {args.seed}"
    clean, noisy = clean.reshape(1, *clean.shape[-2:]), noisy.reshape(1, *noisy.shape[-2:])
    if tuple(h0.shape) != (cfg["filters"], 1, cfg["kernel"], cfg["kernel"]):
        raise SystemExit(f"conv_denoise_torch.py: filters must be {cfg['filters']}x1x{cfg['kernel']}x{cfg['kernel']}, got {tuple(h0.shape)}")
    h = h0.clone().requires_grad_(True)
    opt = torch.optim.Adam([h], lr=cfg["lr"], eps=cfg["eps"])
    out.update(size=list(clean.shape[-2:]), **{k: v for k, v in cfg.items() if k != "size"})
    return peer_protocol.step_recorder(out, lambda: train_step(clean, noisy, h, opt, cfg))


def check(path):
    """One float64 g_ae-ls step on the inputs of `path` (settings as 0-d arrays: stride, layers, lam, alpha,
    lr, eps): the loss, its gradient and the filters after Adam + normalise, as one JSON object."""
    import torch
    *_, loss_ls, train_step = make_model(torch)
    clean, noisy, h0, s = load_inputs(path, torch, torch.float64)
    if clean.dim() == 2:
        clean, noisy = clean.unsqueeze(0), noisy.unsqueeze(0)
    cfg = dict(stride=int(s["stride"]), layers=int(s["layers"]), lam=s["lam"], alpha=s["alpha"])
    h = h0.clone().requires_grad_(True)
    loss, Z = loss_ls(clean, noisy, h, cfg)
    loss.backward()
    grad = h.grad.detach().clone()
    h2 = h0.clone().requires_grad_(True)
    opt = torch.optim.Adam([h2], lr=s["lr"], eps=s["eps"])
    train_step(clean, noisy, h2, opt, cfg)
    return dict(loss=float(loss), gradient=grad.flatten().tolist(), filters_after=h2.detach().flatten().tolist(),
                density=float((Z != 0).sum()) / Z.numel(), torch=torch.__version__)


# ---------------------------------------------------------------------------------------------------
# Self-test

def selftest():
    import torch
    geometry, apply, adjoint, encode, loss_ls, train_step = make_model(torch)
    dt = torch.float64
    ok = peer_protocol.Checks()

    g = torch.Generator().manual_seed(0)
    for (H, W, K, s) in ((9, 9, 3, 2), (10, 11, 3, 2), (7, 6, 3, 1), (13, 13, 5, 4)):
        C, B = 3, 2
        Ho, Wo, Hp, Wp = geometry(H, W, K, s)
        h = torch.randn(C, 1, K, K, generator=g, dtype=dt)
        Z = torch.randn(B, C, Ho, Wo, generator=g, dtype=dt)
        Y = torch.randn(B, H, W, generator=g, dtype=dt)
        naive = torch.zeros(B, Hp, Wp, dtype=dt)        # x[i + s p, j + s q] += z[c, p, q] h[c, i, j]
        for b in range(B):
            for c in range(C):
                for p in range(Ho):
                    for q in range(Wo):
                        naive[b, s * p:s * p + K, s * q:s * q + K] += Z[b, c, p, q] * h[c, 0]
        DZ = apply(Z, h, s, H, W)
        ok(float((DZ - naive[:, :H, :W]).abs().max()) < 1e-12, f"D z = cropped scatter of filters  {H}x{W} K{K} s{s}")
        lhs, rhs = float((DZ * Y).sum()), float((Z * adjoint(Y, h, s)).sum())
        ok(abs(lhs - rhs) < 1e-10 * (1 + abs(lhs)), f"<Dz, y> = <z, D^T y>  {H}x{W} K{K} s{s} (grid {Ho}x{Wo}, padded {Hp}x{Wp})")

        for layers in (1, 3):
            cfg = dict(stride=s, layers=layers, lam=0.1, alpha=0.1)
            # A seed whose layer inputs sit away from the threshold's kink, so finite differences see a smooth loss.
            for seed in range(50):
                gg = torch.Generator().manual_seed(seed)
                clean = torch.rand(B, H, W, generator=gg, dtype=dt)
                noisy = clean + 0.1 * torch.randn(B, H, W, generator=gg, dtype=dt)
                h0 = torch.randn(C, 1, K, K, generator=gg, dtype=dt)
                margin = kink_margin(torch, encode, apply, adjoint, noisy, h0, cfg)
                if margin > 1e-4:
                    break
            f = lambda hh: loss_ls(clean, noisy, hh, cfg)[0]
            good = torch.autograd.gradcheck(f, (h0.clone().requires_grad_(True),), eps=1e-7, atol=1e-6,
                                            raise_exception=False)
            ok(good, f"gradcheck g_ae-ls {H}x{W} K{K} s{s} T={layers} (kink margin {margin:.1e})")
            if layers == 3:
                f = lambda hh: loss_ls(clean, noisy, hh, cfg, detach_codes=True)[0]
                bad = torch.autograd.gradcheck(f, (h0.clone().requires_grad_(True),), eps=1e-7, atol=1e-6,
                                               raise_exception=False)
                ok(not bad, f"gradcheck rejects the codes-detached gradient as the derivative {H}x{W} s{s} (the check can fail)")

    # Steps: unit-norm filters, falling loss on a fixed crop.
    gg = torch.Generator().manual_seed(3)
    clean = synthetic_image(torch, 33, gg, dt).unsqueeze(0)
    noisy = clean + 25 / 255 * torch.randn(clean.shape, generator=gg, dtype=dt)
    h = random_filters(torch, 8, 9, gg, dt).requires_grad_(True)
    cfg = dict(stride=4, layers=5, lam=0.16, alpha=0.1)
    opt = torch.optim.Adam([h], lr=1e-2, eps=1e-3)
    losses = [float(train_step(clean, noisy, h, opt, cfg)[0]) for _ in range(20)]
    norms = h.detach().flatten(1).norm(dim=1)
    ok(float((norms - 1).abs().max()) < 1e-12, "filters have unit norm after a step")
    ok(losses[-1] < 0.9 * losses[0], f"loss falls over 20 steps on a fixed crop ({losses[0]:.4f} -> {losses[-1]:.4f})")
    return ok.passed()


def kink_margin(torch, encode, apply, adjoint, Y, h, cfg):
    """Smallest | |v| - b | over every layer input v: how far the soft threshold's kinks are."""
    F = torch.nn.functional
    H, W = Y.shape[-2:]
    s, b = cfg["stride"], cfg["lam"] * cfg["alpha"]
    Z = adjoint(Y, h, s) * 0
    margin = math.inf
    with torch.no_grad():
        for _ in range(cfg["layers"]):
            V = Z - cfg["alpha"] * adjoint(apply(Z, h, s, H, W) - Y, h, s)
            margin = min(margin, float((V.abs() - b).abs().min()))
            Z = F.softshrink(V, b)
    return margin


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=129, help="crop side when no --inputs are given")
    ap.add_argument("--inputs", help=".npz with clean [H, W], noisy [H, W], filters [64, 1, 9, 9] (from unroll bench)")
    ap.add_argument("--no-flush-denormal", action="store_true", help="leave denormals on")
    peer_protocol.step_peer_arguments(ap, "check the operator and gradients, then exit",
                                      "one float64 step on these inputs; print loss, gradient, filters")
    args = ap.parse_args()
    if args.size < TABLE1["kernel"]:
        ap.error("--size must be >= 9")
    peer_protocol.run_step_peer("conv_denoise_torch.py", ap, args, setup, selftest, check)


if __name__ == "__main__":
    main()
