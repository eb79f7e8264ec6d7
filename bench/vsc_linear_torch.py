#!/usr/bin/env python3
"""PyTorch reference of one training step of variational sparse coding with a linear generator and
thresholded Laplacian samples: the peer of `unroll bench vsc-linear`.

Written from the paper's equations (project notes reference/vsc.md sections 2-4), not from its
repository. Signals x [B, m] (whitened 16x16 patches: m = 256), D = 256 latents, J = 20 samples:

    encoder   h = MLP(x) (Linear + ReLU: m -> 512 -> 1024 -> 512 -> 256), mu = Linear(h), l = Linear(h) (l = log b)
    sample    u ~ U(-1/2, 1/2),  eps = -w e^l sign(u) log max(1 - 2|u|, 1e-6)   (Laplace(0, b), warm-up w)
              z = S_lambda(mu + eps) shifted: 0 where |eps| <= lambda, else mu + eps - lambda sign(eps)
              gradients pass straight through the threshold: dz/dmu = 1, dz/dl = eps
    loss      L_bj = mean_px (x_b - z_bj Phi)^2 + kl_w KL_b,  KL_b = sum_k KL(Laplace(mu, b) || Laplace(0, b_p))
              = sum_k |mu|/b_p + log b_p - l - 1 + (b/b_p) e^{-|mu|/b};  the best of the J samples per datum
              (max-ELBO aggregation): loss = mean_b min_j L_bj
    step      SGD with Nesterov momentum on the encoder (the learning rate of our schedule's first step, held);
              Phi <- Phi + eta ((1/B) sum_b z_b*^T (x_b - z_b* Phi) - 2 rho Phi), z_b* the selected samples

Defaults (vsc section 4, the Swift side's `LinearGeneratorConfig`): lambda 0.25, b_p 0.1, kl_w 0.01, w 0.1,
momentum 0.9, eta 0.5, rho 1e-4, batch 100.

Under `unroll bench` the Swift side writes the batch, the encoder's weights (PyTorch names and layouts),
Phi and the settings to an .npz (`--inputs`), so both sides start from the same model; the samples are
each side's own draws, so the losses agree in distribution (the KL part exactly), not to rounding.

`--selftest` checks in float64: the Laplace sampler's mean absolute deviation, the closed-form KL against
a Monte Carlo estimate, the straight-through gradient of the loss in mu and l against finite differences
of the loss with the threshold's pattern held (so the check can fail), and a falling loss over steps.
"""
import argparse
import math
import os

import peer_protocol

DEFAULTS = dict(pixels=256, latents=256, hidden=(512, 1024, 512, 256), samples=20, batch=100, lam=0.25, prior=0.1,
                kl_weight=0.01, spread_warmup=0.1, lr=0.0004, momentum=0.9, eta=0.5, rho=1e-4)


def make_model(torch):
    nn = torch.nn

    class Encoder(nn.Module):
        def __init__(self, pixels, hidden, latents):
            super().__init__()
            sizes = [pixels] + list(hidden)
            layers = []
            for i in range(len(sizes) - 1):
                layers += [nn.Linear(sizes[i], sizes[i + 1]), nn.ReLU()]
            self.trunk = nn.Sequential(*layers)
            self.mean = nn.Linear(sizes[-1], latents)
            self.log_scale = nn.Linear(sizes[-1], latents)

        def forward(self, x):
            h = self.trunk(x)
            return self.mean(h), self.log_scale(h)

    def draw(mu, l, u, cfg):
        """Codes [B, J, D] from uniform draws u in [-1/2, 1/2), straight through the threshold."""
        sign_u = torch.where(u < 0, -1.0, 1.0).to(u.dtype)
        eps = -cfg["spread_warmup"] * torch.exp(l)[:, None, :] * sign_u * torch.log(torch.clamp(1 - 2 * u.abs(), min=1e-6))
        base = mu[:, None, :] + eps
        sign_e = torch.where(eps > 0, 1.0, -1.0).to(u.dtype)
        hard = torch.where(eps.abs() > cfg["lam"], base - cfg["lam"] * sign_e, torch.zeros_like(base))
        return base + (hard - base).detach()

    def kl_laplace(mu, l, prior):
        b, a = torch.exp(l), mu.abs()
        return (a / prior + math.log(prior) - l - 1 + (b / prior) * torch.exp(-a / b)).sum(dim=1)

    def losses(x, mu, l, phi, u, cfg):
        """L [B, J] and the codes."""
        z = draw(mu, l, u, cfg)
        decoded = z @ phi
        rec = (decoded - x[:, None, :]).pow(2).mean(dim=2)
        return rec + cfg["kl_weight"] * kl_laplace(mu, l, cfg["prior"])[:, None], z

    def train_step(x, enc, phi, opt, cfg, generator):
        opt.zero_grad(set_to_none=True)
        mu, l = enc(x)
        u = torch.rand(x.shape[0], cfg["samples"], mu.shape[1], generator=generator, dtype=x.dtype) - 0.5
        L, z = losses(x, mu, l, phi, u, cfg)
        best = L.argmin(dim=1)
        rows = torch.arange(x.shape[0])
        loss = L[rows, best].mean()
        loss.backward()
        opt.step()
        with torch.no_grad():
            zb = z[rows, best].detach()
            direction = zb.t() @ (x - zb @ phi) / x.shape[0]
            phi.add_(cfg["eta"] * (direction - 2 * cfg["rho"] * phi))
        return loss.detach(), z.detach()

    return Encoder, draw, kl_laplace, losses, train_step


def load_inputs(path, torch, dtype, Encoder):
    t, d, cfg = peer_protocol.load_npz(path, DEFAULTS, torch, dtype, integers=("samples",))
    x, phi = t("x"), t("dictionary")
    hidden = [int(d[f"encoder.trunk.{2 * i}.weight"].shape[0]) for i in range(len([k for k in d.files if k.startswith("encoder.trunk.") and k.endswith(".weight")]))]
    enc = Encoder(x.shape[1], hidden, phi.shape[0]).to(dtype)
    state = {}
    for i in range(len(hidden)):
        state[f"trunk.{2 * i}.weight"] = t(f"encoder.trunk.{2 * i}.weight")
        state[f"trunk.{2 * i}.bias"] = t(f"encoder.trunk.{2 * i}.bias")
    for name, head in (("mean", 0), ("log_scale", 1)):
        state[f"{name}.weight"] = t(f"encoder.head{head}.0.weight")
        state[f"{name}.bias"] = t(f"encoder.head{head}.0.bias")
    enc.load_state_dict(state)
    return x, enc, phi, cfg


def setup(args):
    import torch
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    Encoder, *_, train_step = make_model(torch)
    out = dict(case="vsc-linear", threads=args.threads, torch=torch.__version__,
               omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", ""), baseline_rss_mb=peer_protocol.rss_mb())
    if args.inputs:
        x, enc, phi, cfg = load_inputs(args.inputs, torch, torch.float32, Encoder)
        out["inputs"] = "from " + os.path.basename(args.inputs)
    else:
        cfg = dict(DEFAULTS)
        torch.manual_seed(args.seed)
        x = torch.randn(cfg["batch"], cfg["pixels"])
        enc = Encoder(cfg["pixels"], cfg["hidden"], cfg["latents"])
        phi = torch.randn(cfg["latents"], cfg["pixels"])
        phi /= phi.norm(dim=1, keepdim=True)
        out["inputs"] = f"Gaussian, seed {args.seed}"
    opt = torch.optim.SGD(enc.parameters(), lr=cfg["lr"], momentum=cfg["momentum"], nesterov=True)
    generator = torch.Generator().manual_seed(args.seed)
    out.update(signals=list(x.shape), **{k: v for k, v in cfg.items() if k not in ("hidden", "latents", "pixels", "batch")}, latents=phi.shape[0])
    return peer_protocol.step_recorder(out, lambda: train_step(x, enc, phi, opt, cfg, generator))


def selftest():
    import torch
    Encoder, draw, kl_laplace, losses, train_step = make_model(torch)
    dt = torch.float64
    ok = peer_protocol.Checks()

    g = torch.Generator().manual_seed(0)
    cfg = dict(DEFAULTS, spread_warmup=1.0, lam=0.0)
    mu, l = torch.tensor([[0.3]], dtype=dt), torch.tensor([[math.log(0.2)]], dtype=dt)
    u = torch.rand(1, 400_000, 1, generator=g, dtype=dt) - 0.5
    z = draw(mu, l, u, cfg)[0, :, 0]
    ok(abs(float(z.mean()) - 0.3) < 3e-3 and abs(float((z - 0.3).abs().mean()) - 0.2) < 3e-3,
       f"Laplace(0.3, 0.2) draws: mean {float(z.mean()):.4f}, mean |z - mu| {float((z - 0.3).abs().mean()):.4f}")
    # KL(q || p) = E_q[log q - log p] by Monte Carlo on the same draws.
    logq = -math.log(2 * 0.2) - (z - 0.3).abs() / 0.2
    logp = -math.log(2 * 0.1) - z.abs() / 0.1
    mc, closed = float((logq - logp).mean()), float(kl_laplace(mu, l, 0.1))
    ok(abs(mc - closed) < 0.01 * closed, f"closed-form KL {closed:.5f} = Monte Carlo {mc:.5f}")

    # Straight-through gradient: with the threshold's pattern and the chosen samples held, the loss is
    # smooth in (mu, l) once the zeroed codes are treated as mu + eps - (mu + eps) (their value, 0, held):
    # the autograd gradient must equal finite differences of that surrogate.
    cfg = dict(DEFAULTS, samples=4)
    B, D, m = 3, 5, 6
    x = torch.randn(B, m, generator=g, dtype=dt)
    phi = torch.randn(D, m, generator=g, dtype=dt)
    mu0 = torch.randn(B, D, generator=g, dtype=dt) * 0.5
    l0 = torch.randn(B, D, generator=g, dtype=dt) * 0.3 - 1
    u = torch.rand(B, 4, D, generator=g, dtype=dt) - 0.5
    def loss_of(mu, l):
        L, _ = losses(x, mu, l, phi, u, cfg)
        return L[torch.arange(B), best].mean()
    with torch.no_grad():
        L, _ = losses(x, mu0, l0, phi, u, cfg)
        best = L.argmin(dim=1)
    mu, l = mu0.clone().requires_grad_(True), l0.clone().requires_grad_(True)
    loss_of(mu, l).backward()
    def surrogate(mu, l):
        sign_u = torch.where(u < 0, -1.0, 1.0).to(dt)
        eps = -cfg["spread_warmup"] * torch.exp(l)[:, None, :] * sign_u * torch.log(torch.clamp(1 - 2 * u.abs(), min=1e-6))
        eps0 = -cfg["spread_warmup"] * torch.exp(l0)[:, None, :] * sign_u * torch.log(torch.clamp(1 - 2 * u.abs(), min=1e-6))
        keep = eps0.abs() > cfg["lam"]
        base, base0 = mu[:, None, :] + eps, mu0[:, None, :] + eps0
        shift = torch.where(keep, cfg["lam"] * torch.where(eps0 > 0, 1.0, -1.0).to(dt), base0)
        z = base - shift
        rec = ((z @ phi) - x[:, None, :]).pow(2).mean(dim=2)
        Ls = rec + cfg["kl_weight"] * kl_laplace(mu, l, cfg["prior"])[:, None]
        return Ls[torch.arange(B), best].mean()
    h, worst = 1e-6, 0.0
    for which, base in (("mu", mu0), ("l", l0)):
        grad = mu.grad if which == "mu" else l.grad
        for idx in [(0, 0), (1, 3), (2, 4)]:
            p, q = base.clone(), base.clone()
            p[idx] += h
            q[idx] -= h
            fd = (surrogate(p, l0) - surrogate(q, l0)) / (2 * h) if which == "mu" else (surrogate(mu0, p) - surrogate(mu0, q)) / (2 * h)
            worst = max(worst, abs(float(fd) - float(grad[idx])))
    ok(worst < 1e-6, f"straight-through gradient = finite differences of the held-pattern loss (worst {worst:.1e})")
    # ... and differs from finite differences of the true loss where a code is zeroed (the check can fail).
    true_fd = (loss_of(mu0 + h * torch.ones_like(mu0), l0) - loss_of(mu0 - h * torch.ones_like(mu0), l0)) / (2 * h)
    ok(abs(float(true_fd) - float(mu.grad.sum())) > 1e-6, "the true loss's derivative differs (zeroed codes pass no gradient)")

    torch.manual_seed(1)
    cfg = dict(DEFAULTS, batch=50, lr=0.003)
    x = torch.randn(50, 64, generator=g, dtype=dt)
    enc = Encoder(64, (64, 64), 32).to(dt)
    phi = torch.randn(32, 64, generator=g, dtype=dt)
    phi /= phi.norm(dim=1, keepdim=True)
    opt = torch.optim.SGD(enc.parameters(), lr=cfg["lr"], momentum=cfg["momentum"], nesterov=True)
    gen = torch.Generator().manual_seed(2)
    ls = [float(train_step(x, enc, phi, opt, cfg, gen)[0]) for _ in range(60)]
    ok(sum(ls[-10:]) < 0.9 * sum(ls[:10]), f"loss falls over 60 steps ({sum(ls[:10]) / 10:.4f} -> {sum(ls[-10:]) / 10:.4f})")
    return ok.passed()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", help=".npz with x [B, m], the encoder's weights, dictionary [D, m] and the settings (from unroll bench)")
    peer_protocol.step_peer_arguments(ap, "check the sampler, the KL and the gradients, then exit")
    peer_protocol.run_step_peer("vsc_linear_torch.py", ap, ap.parse_args(), setup, selftest)


if __name__ == "__main__":
    main()
