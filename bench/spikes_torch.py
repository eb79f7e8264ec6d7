#!/usr/bin/env python3
"""PyTorch reference of CRsAE's spike-sorting training step: the peer of `unroll bench spikes`.

Written from the paper's equations (Tolooshams et al., IEEE TNNLS 2021; project notes reference/crsae.md
sections 2-4, 6.1), not from its repository. C filters h_c over `ch` channels of K taps ([C, ch, K]) are the
dictionary H of windows y [B, ch, N]; codes z [B, C, N - K + 1]:

    H z   = sum_c h_c * z_c            (full convolution: conv_transpose1d)
    H^T r = (sum_ch h_c,ch (x) r_ch)_c  ("valid" correlation: conv1d)
    alpha = 1 / ||H||_2^2,  ||H||_2^2 = max over w of the largest eigenvalue of the C x C matrix
            sum_ch conj(h^_c,ch(w)) h^_d,ch(w), on the grid of max(256, 64K) frequencies (recomputed every step)
    encoder   FISTA, T layers: v_t = y_t + alpha H^T (y - H y_t), z_t = S_{alpha lambda_c sigma^2}(v_t),
              y_{t+1} = z_t + mu_t (z_t - z_{t-1}),  y_1 = 0
    loss      1/2 ||y - H z_T||^2 / B, backpropagated through the T layers (alpha held constant)
    step      Adam on the filters, every filter scaled to unit norm over its channels and taps, then
              lambda_c = (Ne + r - 1) / (mean_b ||z_T,c||_1 + delta)  (Gamma prior, shape r = delta lambda_bar)
              sigma <- s sigma + (1 - s) rms(y - H z_T)

Under `unroll bench` the Swift side writes the windows, the filters, lambda and the settings to an .npz
(`--inputs`), so both sides compute the same steps and their per-step losses agree to float32 rounding.
Run alone, the script draws Gaussian windows and filters (a smoke test of the timing only).

`--selftest` checks, in float64: H against a naive scatter loop, <Hz, r> = <z, H^T r>, ||H||_2^2 against a
power iteration on the operator itself, gradcheck of the loss through T = 1 and 3 layers (and that it
rejects the codes-detached gradient), a falling loss with unit-norm filters. `--check FILE.npz`: one
float64 step on the inputs; prints the loss, alpha, the gradient, the filters, lambda and sigma after it.
"""
import argparse
import math
import os

import peer_protocol

DEFAULTS = dict(layers=50, lr=0.01, eps=1e-3, delta=500.0, sigma_smoothing=0.99, nonnegative=0.0)


def make_model(torch):
    F = torch.nn.functional
    from crsae_denoise_torch import make_model as crsae2d
    momenta = crsae2d(torch)[0]

    def apply(Z, h):
        return F.conv_transpose1d(Z, h)

    def adjoint(R, h):
        return F.conv1d(R, h)

    def lipschitz(h):
        """||H||_2^2 on the frequency grid: the largest eigenvalue of the C x C Gram matrix at any frequency."""
        C, ch, K = h.shape
        grid = max(256, 64 * K)
        Hf = torch.fft.rfft(h.detach().to(torch.float64), n=grid)   # [C, ch, F]
        G = torch.einsum("cif,dif->fcd", Hf.conj(), Hf)             # [F, C, C], Hermitian
        return float(torch.linalg.eigvalsh(G).max())

    def encode(Y, h, thresholds, alpha, layers, nonnegative=False):
        z_prev = Y.new_zeros(Y.shape[0], h.shape[0], Y.shape[-1] - h.shape[-1] + 1)
        y = z_prev
        b = thresholds.view(1, -1, 1)
        for mu in momenta(layers):
            v = y + alpha * adjoint(Y - apply(y, h), h)
            z = F.relu(v - b) if nonnegative else F.relu(v - b) - F.relu(-v - b)
            y = z + mu * (z - z_prev)
            z_prev = z
        return z_prev

    def loss_ls(Y, h, lam, sigma, cfg, detach_codes=False, alpha=None):
        """The loss, the codes, the residual and alpha (1/L of h unless given: a constant of the gradient)."""
        alpha = alpha or 1 / lipschitz(h)
        b = lam * sigma ** 2 * alpha
        if detach_codes:
            with torch.no_grad():
                Z = encode(Y, h, b, alpha, cfg["layers"], cfg["nonnegative"] > 0)
        else:
            Z = encode(Y, h, b, alpha, cfg["layers"], cfg["nonnegative"] > 0)
        R = Y - apply(Z, h)
        return 0.5 * R.pow(2).sum() / Y.shape[0], Z, R, alpha

    def train_step(Y, h, state, opt, cfg):
        opt.zero_grad(set_to_none=True)
        loss, Z, R, alpha = loss_ls(Y, h, state["lambda"], state["sigma"], cfg)
        loss.backward()
        opt.step()
        with torch.no_grad():
            h.div_(h.flatten(1).norm(dim=1).view(-1, 1, 1))
            Z = Z.detach()
            ne = Z.shape[-1]
            r = cfg["delta"] * cfg["lambda_mean"] if cfg["delta"] > 0 else 1.0
            state["lambda"] = (ne + r - 1) / (Z.abs().sum(dim=2).mean(dim=0) + cfg["delta"])
            rms = math.sqrt(float(R.detach().pow(2).sum()) / R.numel())
            if rms > 0:
                s = cfg["sigma_smoothing"]
                state["sigma"] = s * state["sigma"] + (1 - s) * rms
        return loss.detach(), Z, alpha

    return apply, adjoint, lipschitz, encode, loss_ls, train_step


def load_inputs(path, torch, dtype):
    t, _, cfg = peer_protocol.load_npz(path, DEFAULTS, torch, dtype, integers=("layers",))
    return t("windows"), t("filters"), t("lambdas"), cfg


def setup(args):
    import torch
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    *_, train_step = make_model(torch)
    out = dict(case="spikes", threads=args.threads, torch=torch.__version__,
               omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", ""), baseline_rss_mb=peer_protocol.rss_mb())
    if args.inputs:
        Y, h0, lam, cfg = load_inputs(args.inputs, torch, torch.float32)
        out["inputs"] = "from " + os.path.basename(args.inputs)
    else:
        g = torch.Generator().manual_seed(args.seed)
        Y = 0.1 * torch.randn(32, 4, 1000, generator=g)
        h0 = torch.randn(3, 4, 25, generator=g)
        h0 /= h0.flatten(1).norm(dim=1).view(-1, 1, 1)
        cfg = dict(DEFAULTS, sigma=0.1, lambda_mean=40.0)
        lam = torch.full((3,), cfg["lambda_mean"])
        out["inputs"] = f"Gaussian, seed {args.seed}"
    h = h0.clone().requires_grad_(True)
    opt = torch.optim.Adam([h], lr=cfg["lr"], eps=cfg["eps"])
    out.update(windows=list(Y.shape), filters=list(h.shape), **cfg)
    state = {"lambda": lam, "sigma": cfg["sigma"]}   # the EM and σ updates change these in place
    return peer_protocol.step_recorder(out, lambda: train_step(Y, h, state, opt, cfg)[:2],
                                       lambda: dict(sigma_after=state["sigma"], mean_lambda=float(state["lambda"].mean())))


def check(path):
    import torch
    *_, loss_ls, train_step = make_model(torch)
    Y, h0, lam, cfg = load_inputs(path, torch, torch.float64)
    h = h0.clone().requires_grad_(True)
    loss, _, _, alpha = loss_ls(Y, h, lam, cfg["sigma"], cfg)
    loss.backward()
    h2 = h0.clone().requires_grad_(True)
    opt = torch.optim.Adam([h2], lr=cfg["lr"], eps=cfg["eps"])
    state = {"lambda": lam, "sigma": cfg["sigma"]}
    train_step(Y, h2, state, opt, cfg)
    return dict(loss=float(loss), alpha=alpha, gradient=h.grad.flatten().tolist(), filters_after=h2.detach().flatten().tolist(),
                lambdas_after=state["lambda"].tolist(), sigma_after=state["sigma"], torch=torch.__version__)


def selftest():
    import torch
    apply, adjoint, lipschitz, encode, loss_ls, train_step = make_model(torch)
    dt = torch.float64
    ok = peer_protocol.Checks()

    g = torch.Generator().manual_seed(0)
    C, ch, K, N, B = 3, 2, 5, 17, 2
    h = torch.randn(C, ch, K, generator=g, dtype=dt)
    Z = torch.randn(B, C, N - K + 1, generator=g, dtype=dt)
    R = torch.randn(B, ch, N, generator=g, dtype=dt)
    naive = torch.zeros(B, ch, N, dtype=dt)   # y[ch, n + k] += z[c, n] h[c, ch, k]
    for b in range(B):
        for c in range(C):
            for n in range(N - K + 1):
                naive[b, :, n:n + K] += Z[b, c, n] * h[c]
    ok(float((apply(Z, h) - naive).abs().max()) < 1e-12, "H z = scatter of the filters")
    lhs, rhs = float((apply(Z, h) * R).sum()), float((Z * adjoint(R, h)).sum())
    ok(abs(lhs - rhs) < 1e-10 * (1 + abs(lhs)), "<Hz, r> = <z, H^T r>")
    # ||H||_2^2 of a long signal approaches the frequency bound from below.
    v = torch.randn(1, C, 2000, generator=g, dtype=dt)
    for _ in range(300):
        v = adjoint(apply(v, h), h)
        v /= v.norm()
    power = float(adjoint(apply(v, h), h).norm())
    L = lipschitz(h)
    ok(0.99 * L <= power <= L * (1 + 1e-9), f"||H||^2 by frequencies {L:.6f} bounds the operator's power iteration {power:.6f}")

    for layers in (1, 3):
        cfg = dict(DEFAULTS, layers=layers)
        Y = torch.randn(B, ch, N, generator=g, dtype=dt)
        lam = torch.rand(C, generator=g, dtype=dt) + 0.5
        a = 1 / lipschitz(h)
        f = lambda w: loss_ls(Y, w, lam, 0.5, cfg, alpha=a)[0]
        good = torch.autograd.gradcheck(f, (h.clone().requires_grad_(True),), eps=1e-7, atol=1e-6, raise_exception=False)
        ok(good, f"gradcheck of the loss through T={layers} (alpha held constant)")
        if layers == 3:
            f = lambda w: loss_ls(Y, w, lam, 0.5, cfg, detach_codes=True, alpha=a)[0]
            bad = torch.autograd.gradcheck(f, (h.clone().requires_grad_(True),), eps=1e-7, atol=1e-6, raise_exception=False)
            ok(not bad, "gradcheck rejects the codes-detached gradient (the check can fail)")

    # Windows made of two of the filters' spikes: steps lower the loss and keep unit-norm filters.
    truth = torch.randn(C, ch, K, generator=g, dtype=dt)
    truth /= truth.flatten(1).norm(dim=1).view(-1, 1, 1)
    codes = torch.zeros(8, C, 60 - K + 1, dtype=dt)
    for b in range(8):
        for c in range(C):
            codes[b, c, int(torch.randint(0, 56, (1,), generator=g))] = 1 + float(torch.rand(1, generator=g))
    Y = apply(codes, truth) + 0.01 * torch.randn(8, ch, 60, generator=g, dtype=dt)
    w = (truth + 0.5 * torch.randn(C, ch, K, generator=g, dtype=dt)).requires_grad_(True)
    with torch.no_grad():
        w /= w.flatten(1).norm(dim=1).view(-1, 1, 1)
    cfg = dict(DEFAULTS, layers=20, lambda_mean=5.0, delta=1e6)   # a strong prior: lambda stays near 5
    state = {"lambda": torch.full((C,), 5.0, dtype=dt), "sigma": 0.1}
    opt = torch.optim.Adam([w], lr=cfg["lr"], eps=cfg["eps"])
    losses = [float(train_step(Y, w, state, opt, cfg)[0]) for _ in range(30)]
    ok(float((w.detach().flatten(1).norm(dim=1) - 1).abs().max()) < 1e-12, "unit-norm filters after a step")
    ok(losses[-1] < 0.9 * losses[0], f"loss falls over 30 steps ({losses[0]:.4f} -> {losses[-1]:.4f})")
    return ok.passed()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", help=".npz with windows [B, ch, N], filters [C, ch, K], lambdas [C] and the settings (from unroll bench)")
    peer_protocol.step_peer_arguments(ap, "check the operator, L and the gradients, then exit",
                                      "one float64 step on these inputs; print loss, gradient, filters, lambda, sigma")
    peer_protocol.run_step_peer("spikes_torch.py", ap, ap.parse_args(), setup, selftest, check)


if __name__ == "__main__":
    main()
