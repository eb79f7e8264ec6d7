#!/usr/bin/env python3
"""PyTorch reference of CRsAE's 2-D denoiser, untied, with the EM lambda step: the peer of
`unroll bench crsae-denoise`.

Written from the paper's equations (Tolooshams et al., IEEE TNNLS 2021; project notes reference/crsae.md
sections 2, 4, 6.2), not from its repository. Three banks of C filters K x K at stride s: H (inside the
residual), We (the encoder's correlation), Wd (the decoder); D and D^T are the transposed and the strided
convolution of bench/conv_denoise_torch.py (same code-grid geometry):

    encoder   y_1 = 0, z_0 = 0
              v_t = y_t + (1/L) We^T (x - H y_t)
              z_t = S_b(v_t)                      (two-sided soft threshold, b_c = lambda_c sigma^2 / L per filter)
              y_{t+1} = z_t + mu_t (z_t - z_{t-1}),  mu_t = (s_t - 1)/s_{t+1},  s_1 = 1,  s_{t+1} = (1 + sqrt(1 + 4 s_t^2))/2
    decoder   x_hat = Wd z_T
    loss      1/2 ||x_clean - x_hat||^2 / B, backpropagated through the T layers to H, We and Wd
    step      Adam on the three banks, every filter of every bank scaled to unit norm, then the EM M-step
              lambda_c = (Ne + r - 1) / (mean_b ||z_T,c||_1 + delta)   (Gamma prior: mean lambda_bar, rate delta,
              shape r = delta lambda_bar; Ne = code positions per filter), and b_c = lambda_c sigma^2 / L.

Defaults (crsae section 6.2, the Swift side's `CRsAE2DConfig`): 64 filters 7x7, stride 5, T 30, L 10,
sigma 20/255, lambda_bar 20, delta 100, Adam lr 0.003 eps 1e-3, one 127x127 crop, batch 1.

Under `unroll bench` the Swift side writes the crop, its noisy copy, the three banks, lambda and the
settings to an .npz (`--inputs`), so both sides compute the same steps and their per-step losses agree to
float32 rounding. Run alone, this script draws its own synthetic crop and filters (a different generator).

`--selftest` checks, in float64 on tiny instances: gradcheck of the loss in (H, We, Wd) through T = 1 and
3 layers (and that gradcheck rejects the codes-detached gradient, so the check can fail), the momentum
sequence against its closed form's first values, and that the EM update minimises the negative
log-posterior of lambda. `--check FILE.npz` runs one float64 step on the inputs and prints the loss, the
gradients, the banks and lambda after the step as one JSON object (the Swift tests use it).
"""
import argparse
import math
import os

import peer_protocol

DEFAULTS = dict(filters=64, kernel=7, stride=5, layers=30, lipschitz=10.0, sigma=20 / 255, lambda_mean=20.0, delta=100.0,
                lr=0.003, eps=1e-3, size=127)


def make_model(torch):
    import conv_denoise_torch
    F = torch.nn.functional
    geometry, apply, adjoint, *_ = conv_denoise_torch.make_model(torch)

    def momenta(layers):
        mu, s = [], 1.0
        for _ in range(layers):
            s_next = (1 + math.sqrt(1 + 4 * s * s)) / 2
            mu.append((s - 1) / s_next)
            s = s_next
        return mu

    def encode(X, banks, b, cfg):
        """z_T for noisy images X [B, H, W]; differentiable in the banks (b is a constant [C])."""
        H_, We, _ = banks
        s, L = cfg["stride"], cfg["lipschitz"]
        Hh, Ww = X.shape[-2:]
        Ho, Wo, _, _ = geometry(Hh, Ww, H_.shape[-1], s)
        z_prev = X.new_zeros(X.shape[0], H_.shape[0], Ho, Wo)
        y = z_prev
        bb = b.view(1, -1, 1, 1)
        for mu in momenta(cfg["layers"]):
            v = y + (1 / L) * adjoint(X - apply(y, H_, s, Hh, Ww), We, s)
            z = F.relu(v - bb) - F.relu(-v - bb)
            y = z + mu * (z - z_prev)
            z_prev = z
        return z_prev

    def loss_ls(clean, noisy, banks, b, cfg, detach_codes=False):
        if detach_codes:
            with torch.no_grad():
                Z = encode(noisy, banks, b, cfg)
        else:
            Z = encode(noisy, banks, b, cfg)
        Hh, Ww = noisy.shape[-2:]
        R = apply(Z, banks[2], cfg["stride"], Hh, Ww) - clean
        return 0.5 * R.pow(2).sum() / noisy.shape[0], Z

    def em_lambda(Z, cfg):
        """The closed-form M-step for codes Z [B, C, Ho, Wo] (batch-mean pooling)."""
        ne = Z.shape[-1] * Z.shape[-2]
        r = cfg["delta"] * cfg["lambda_mean"] if cfg["delta"] > 0 else 1.0
        l1 = Z.abs().sum(dim=(2, 3)).mean(dim=0)
        return (ne + r - 1) / (l1 + cfg["delta"])

    def thresholds(lam, cfg):
        return lam * cfg["sigma"] ** 2 / cfg["lipschitz"]

    def train_step(clean, noisy, banks, state, opt, cfg):
        """One step; `state["lambda"]` is updated in place of the dict. Returns the loss and the codes."""
        opt.zero_grad(set_to_none=True)
        loss, Z = loss_ls(clean, noisy, banks, thresholds(state["lambda"], cfg), cfg)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for w in banks:
                w.div_(w.flatten(1).norm(dim=1).view(-1, 1, 1, 1))
            state["lambda"] = em_lambda(Z.detach(), cfg)
        return loss.detach(), Z.detach()

    return momenta, encode, loss_ls, em_lambda, thresholds, train_step


def load_inputs(path, torch, dtype):
    t, _, cfg = peer_protocol.load_npz(path, DEFAULTS, torch, dtype, integers=("stride", "layers"))
    clean, noisy = t("clean"), t("noisy")
    if clean.dim() == 2:
        clean, noisy = clean.unsqueeze(0), noisy.unsqueeze(0)
    return clean, noisy, [t("H"), t("We"), t("Wd")], t("lambdas"), cfg


def setup(args):
    """Builds the problem; returns (out, work, finish)."""
    import torch
    import conv_denoise_torch
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    *_, train_step = make_model(torch)
    out = dict(case="crsae-denoise", threads=args.threads, torch=torch.__version__,
               omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", ""), baseline_rss_mb=peer_protocol.rss_mb())
    if args.inputs:
        clean, noisy, banks, lam, cfg = load_inputs(args.inputs, torch, torch.float32)
        out["inputs"] = "from " + os.path.basename(args.inputs)
    else:
        cfg = dict(DEFAULTS)
        g = torch.Generator().manual_seed(args.seed)
        clean = conv_denoise_torch.synthetic_image(torch, args.size, g, torch.float32).unsqueeze(0)
        noisy = clean + cfg["sigma"] * torch.randn(clean.shape, generator=g)
        h = conv_denoise_torch.random_filters(torch, cfg["filters"], cfg["kernel"], g, torch.float32)
        banks, lam = [h, h.clone(), h.clone()], torch.full((cfg["filters"],), cfg["lambda_mean"])
        out["inputs"] = f"synthetic, seed {args.seed}"
    banks = [w.clone().requires_grad_(True) for w in banks]
    opt = torch.optim.Adam(banks, lr=cfg["lr"], eps=cfg["eps"])
    out.update(size=list(clean.shape[-2:]), **{k: v for k, v in cfg.items() if k != "size"})
    state = {"lambda": lam}   # the EM step updates λ in place
    return peer_protocol.step_recorder(out, lambda: train_step(clean, noisy, banks, state, opt, cfg),
                                       lambda: dict(mean_lambda=float(state["lambda"].mean())))


def check(path):
    """One float64 step on the inputs of `path`: loss, gradients, banks and lambda after, as one JSON object."""
    import torch
    *_, loss_ls, em_lambda, thresholds, train_step = make_model(torch)
    clean, noisy, banks0, lam, cfg = load_inputs(path, torch, torch.float64)
    banks = [w.clone().requires_grad_(True) for w in banks0]
    loss, _ = loss_ls(clean, noisy, banks, thresholds(lam, cfg), cfg)
    loss.backward()
    grads = [w.grad.detach().flatten().tolist() for w in banks]
    banks2 = [w.clone().requires_grad_(True) for w in banks0]
    opt = torch.optim.Adam(banks2, lr=cfg["lr"], eps=cfg["eps"])
    state = {"lambda": lam}
    _, Z = train_step(clean, noisy, banks2, state, opt, cfg)
    return dict(loss=float(loss), gradients=grads, banks_after=[w.detach().flatten().tolist() for w in banks2],
                lambdas_after=state["lambda"].tolist(), density=float((Z != 0).sum()) / Z.numel(), torch=torch.__version__)


def selftest():
    import torch
    import conv_denoise_torch
    momenta, encode, loss_ls, em_lambda, thresholds, train_step = make_model(torch)
    dt = torch.float64
    ok = peer_protocol.Checks()

    mu = momenta(4)
    ok(abs(mu[0]) < 1e-15 and abs(mu[1] - (1.618033988749895 - 1) / 2.193527085331054) < 1e-12,
       f"FISTA momenta start 0, (s_2 - 1)/s_3 ({mu[:2]})")

    for (Hh, Ww, K, s) in ((11, 11, 3, 2), (12, 10, 3, 2)):
        C, B = 3, 2
        for layers in (1, 3):
            cfg = dict(DEFAULTS, stride=s, layers=layers, lipschitz=6.0, sigma=0.3, lambda_mean=1.0)
            for seed in range(50):   # a seed whose layer inputs stay away from the kinks
                g = torch.Generator().manual_seed(seed)
                clean = torch.rand(B, Hh, Ww, generator=g, dtype=dt)
                noisy = clean + 0.1 * torch.randn(B, Hh, Ww, generator=g, dtype=dt)
                banks = [torch.randn(C, 1, K, K, generator=g, dtype=dt) for _ in range(3)]
                b = thresholds(torch.rand(C, generator=g, dtype=dt) + 0.5, cfg)
                if kink_margin(torch, banks, b, noisy, cfg) > 1e-4:
                    break
            f = lambda *w: loss_ls(clean, noisy, list(w), b, cfg)[0]
            good = torch.autograd.gradcheck(f, tuple(w.clone().requires_grad_(True) for w in banks), eps=1e-7, atol=1e-6,
                                            raise_exception=False)
            ok(good, f"gradcheck in (H, We, Wd) {Hh}x{Ww} K{K} s{s} T={layers}")
            if layers == 3:
                f = lambda *w: loss_ls(clean, noisy, list(w), b, cfg, detach_codes=True)[0]
                bad = torch.autograd.gradcheck(f, tuple(w.clone().requires_grad_(True) for w in banks), eps=1e-7,
                                               atol=1e-6, raise_exception=False)
                ok(not bad, "gradcheck rejects the codes-detached gradient (the check can fail)")

    # The EM update minimises sum_c [lambda_c (l1_c + delta) - (Ne + r - 1) log lambda_c].
    g = torch.Generator().manual_seed(5)
    Z = torch.randn(2, 3, 4, 5, generator=g, dtype=dt) * (torch.rand(2, 3, 4, 5, generator=g, dtype=dt) > 0.6)
    cfg = dict(DEFAULTS, lambda_mean=2.0, delta=3.0)
    lam = em_lambda(Z, cfg)
    nlp = lambda l: float((l * (Z.abs().sum(dim=(2, 3)).mean(0) + cfg["delta"]) - (20 + 6 - 1) * torch.log(l)).sum())
    ok(all(nlp(lam) < nlp(lam * f) for f in (0.99, 1.01)), "the EM lambda minimises the negative log-posterior")

    # Steps on a fixed crop: unit-norm banks, falling loss.
    g = torch.Generator().manual_seed(3)
    clean = conv_denoise_torch.synthetic_image(torch, 32, g, dt).unsqueeze(0)
    noisy = clean + 20 / 255 * torch.randn(clean.shape, generator=g, dtype=dt)
    h = conv_denoise_torch.random_filters(torch, 8, 7, g, dt)
    banks = [h.clone().requires_grad_(True) for _ in range(3)]
    cfg = dict(DEFAULTS, layers=10)
    state = {"lambda": torch.full((8,), cfg["lambda_mean"], dtype=dt)}
    opt = torch.optim.Adam(banks, lr=cfg["lr"], eps=cfg["eps"])
    losses = [float(train_step(clean, noisy, banks, state, opt, cfg)[0]) for _ in range(20)]
    ok(all(float((w.detach().flatten(1).norm(dim=1) - 1).abs().max()) < 1e-12 for w in banks), "unit-norm banks after a step")
    ok(losses[-1] < 0.9 * losses[0], f"loss falls over 20 steps on a fixed crop ({losses[0]:.4f} -> {losses[-1]:.4f})")
    return ok.passed()


def kink_margin(torch, banks, b, X, cfg):
    """Smallest | |v| - b_c | over every layer input v."""
    import conv_denoise_torch
    F = torch.nn.functional
    geometry, apply, adjoint, *_ = conv_denoise_torch.make_model(torch)
    momenta = make_model(torch)[0]
    H_, We, _ = banks
    s, L = cfg["stride"], cfg["lipschitz"]
    Hh, Ww = X.shape[-2:]
    bb = b.view(1, -1, 1, 1)
    margin = math.inf
    with torch.no_grad():
        z_prev = adjoint(X, H_, s) * 0
        y = z_prev
        for mu in momenta(cfg["layers"]):
            v = y + (1 / L) * adjoint(X - apply(y, H_, s, Hh, Ww), We, s)
            margin = min(margin, float((v.abs() - bb).abs().min()))
            z = F.relu(v - bb) - F.relu(-v - bb)
            y, z_prev = z + mu * (z - z_prev), z
    return margin


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=DEFAULTS["size"], help="crop side when no --inputs are given")
    ap.add_argument("--inputs", help=".npz with clean, noisy [H, W], H, We, Wd [C, 1, K, K], lambdas [C] and the settings (from unroll bench)")
    peer_protocol.step_peer_arguments(ap, "check the gradients and the EM step, then exit",
                                      "one float64 step on these inputs; print loss, gradients, banks, lambda")
    args = ap.parse_args()
    if args.size < DEFAULTS["kernel"]:
        ap.error("--size must be >= 7")
    peer_protocol.run_step_peer("crsae_denoise_torch.py", ap, args, setup, selftest, check)


if __name__ == "__main__":
    main()
