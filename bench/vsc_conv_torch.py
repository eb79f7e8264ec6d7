#!/usr/bin/env python3
"""PyTorch reference of one training step of variational sparse coding with a DNN generator on 28x28
images (Fashion-MNIST's networks) and thresholded Laplacian samples: the peer of `unroll bench vsc-conv`.

Written from the paper's equations (project notes reference/vsc.md sections 2, 3, 5), not from its
repository. With channel widths (a, b):

    encoder  Conv(1->a, k4 s2 p1), Conv(a->a, k4 s2 p1), Conv(a->b, k4 s1 p0), Conv(b->b, k4 s2 p0), each + BatchNorm
             + ReLU, flattened to b features; linear heads mu and l = log b for the latents
    sample   J thresholded Laplacian draws per image, as bench/vsc_linear_torch.py (warm-up 1, lambda 0.23),
             gradients straight through the threshold
    decoder  Linear(z->b) + ReLU as b x 1 x 1, ConvT(b->b, k4 s2 p0), ConvT(b->a, k4 s1 p0), ConvT(a->a, k4 s2 p1),
             each + BatchNorm + ReLU, then ConvT(a->1, k4 s2 p1) + Sigmoid, on all B*J draws (batch statistics)
    loss     L_bj = mean_px (x_b - x_hat_bj)^2 + kl_w KL_b, the best draw per image, mean over the batch
    step     Adam (betas 0.5, 0.999, L2 weight decay 1e-5) on every weight, at the learning rate of our one-cycle
             schedule's first step, held (ours rises along the schedule, so later losses differ for that reason too)

Under `unroll bench` the Swift side writes the batch, every weight (PyTorch names and layouts) and the
settings to an .npz (`--inputs`); the layers here carry the same indices, so the state dict loads as is.
Each side draws its own samples, so only the first step's losses are compared.

`--selftest` checks the networks' shapes (28x28 -> b features -> 28x28), that loading a state dict written
under our names changes the output (so names and layouts are used), and a falling loss over steps.
"""
import argparse
import os

import peer_protocol

DEFAULTS = dict(channels=(64, 128), latents=64, samples=4, batch=64, lam=0.23, prior=0.1, kl_weight=0.01,
                spread_warmup=1.0, lr=1.2e-5, beta1=0.5, beta2=0.999, weight_decay=1e-5)


def make_model(torch):
    nn = torch.nn
    from vsc_linear_torch import make_model as linear_model
    _, draw, kl_laplace, _, _ = linear_model(torch)

    def networks(a, b, latents):
        encoder = nn.Sequential(
            nn.Conv2d(1, a, 4, 2, 1), nn.BatchNorm2d(a), nn.ReLU(),
            nn.Conv2d(a, a, 4, 2, 1), nn.BatchNorm2d(a), nn.ReLU(),
            nn.Conv2d(a, b, 4, 1, 0), nn.BatchNorm2d(b), nn.ReLU(),
            nn.Conv2d(b, b, 4, 2, 0), nn.BatchNorm2d(b), nn.ReLU(),
            nn.Flatten())
        heads = nn.ModuleList([nn.Sequential(nn.Linear(b, latents)) for _ in range(2)])
        decoder = nn.Sequential(
            nn.Linear(latents, b), nn.Unflatten(1, (b, 1, 1)), nn.ReLU(),
            nn.ConvTranspose2d(b, b, 4, 2, 0), nn.BatchNorm2d(b), nn.ReLU(),
            nn.ConvTranspose2d(b, a, 4, 1, 0), nn.BatchNorm2d(a), nn.ReLU(),
            nn.ConvTranspose2d(a, a, 4, 2, 1), nn.BatchNorm2d(a), nn.ReLU(),
            nn.ConvTranspose2d(a, 1, 4, 2, 1), nn.Sigmoid())
        # BatchNorm's ε and momentum as ours (PyTorch's defaults).
        return nn.ModuleDict(dict(encoder=encoder, heads=heads, decoder=decoder))

    def train_step(x, net, opt, cfg, generator):
        opt.zero_grad(set_to_none=True)
        B = x.shape[0]
        h = net["encoder"](x.view(B, 1, 28, 28))
        mu, l = net["heads"][0](h), net["heads"][1](h)
        u = torch.rand(B, cfg["samples"], mu.shape[1], generator=generator, dtype=x.dtype) - 0.5
        z = draw(mu, l, u, cfg)
        decoded = net["decoder"](z.reshape(B * cfg["samples"], -1)).view(B, cfg["samples"], -1)
        L = (decoded - x[:, None, :]).pow(2).mean(dim=2) + cfg["kl_weight"] * kl_laplace(mu, l, cfg["prior"])[:, None]
        best = L.argmin(dim=1)
        loss = L[torch.arange(B), best].mean()
        loss.backward()
        opt.step()
        return loss.detach(), z.detach()

    return networks, train_step


def load_inputs(path, torch, dtype, networks):
    t, d, cfg = peer_protocol.load_npz(path, DEFAULTS, torch, dtype, integers=("samples",))
    a, b = int(d["encoder.trunk.0.weight"].shape[0]), int(d["encoder.trunk.9.weight"].shape[0])
    latents = int(d["encoder.head0.0.weight"].shape[0])
    net = networks(a, b, latents).to(dtype)
    state = {}
    for k in d.files:
        if d[k].ndim == 0 or k == "x":
            continue
        if k.startswith("encoder.trunk."):
            state["encoder." + k[len("encoder.trunk."):]] = t(k)
        elif k.startswith("encoder.head"):
            i, rest = k[len("encoder.head"):].split(".", 1)
            state[f"heads.{i}.{rest}"] = t(k)
        else:
            state[k] = t(k)
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or any(not m.endswith(("running_mean", "running_var", "num_batches_tracked")) for m in missing):
        raise SystemExit(f"vsc_conv_torch.py: weights do not match the networks (missing {missing}, unexpected {unexpected})")
    return t("x"), net, cfg


def setup(args):
    import torch
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    networks, train_step = make_model(torch)
    out = dict(case="vsc-conv", threads=args.threads, torch=torch.__version__,
               omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", ""), baseline_rss_mb=peer_protocol.rss_mb())
    if args.inputs:
        x, net, cfg = load_inputs(args.inputs, torch, torch.float32, networks)
        out["inputs"] = "from " + os.path.basename(args.inputs)
    else:
        cfg = dict(DEFAULTS)
        torch.manual_seed(args.seed)
        x = torch.rand(cfg["batch"], 784)
        net = networks(*cfg["channels"], cfg["latents"])
        out["inputs"] = f"uniform, seed {args.seed}"
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]), weight_decay=cfg["weight_decay"])
    generator = torch.Generator().manual_seed(args.seed)
    out.update(images=list(x.shape), **{k: v for k, v in cfg.items() if k not in ("channels", "batch")})
    return peer_protocol.step_recorder(out, lambda: train_step(x, net, opt, cfg, generator))


def selftest():
    import torch
    networks, train_step = make_model(torch)
    ok = peer_protocol.Checks()

    torch.manual_seed(0)
    net = networks(8, 16, 6)
    x = torch.rand(10, 784)
    h = net["encoder"](x.view(10, 1, 28, 28))
    y = net["decoder"](torch.randn(10, 6))
    ok(tuple(h.shape) == (10, 16) and tuple(y.shape) == (10, 1, 28, 28), f"28x28 -> {tuple(h.shape)} -> {tuple(y.shape)}")
    # Weights under our names (encoder.trunk.i, encoder.headk.0, decoder.i) land in these layers.
    import tempfile, numpy as np
    other = networks(8, 16, 6)
    names = {}
    for k, v in other.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        if k.startswith("encoder."):
            names["encoder.trunk." + k[len("encoder."):]] = v.numpy()
        elif k.startswith("heads."):
            i, rest = k[len("heads."):].split(".", 1)
            names[f"encoder.head{i}.{rest}"] = v.numpy()
        else:
            names[k] = v.numpy()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "w.npz")
        np.savez(path, x=x.numpy(), samples=np.float32(2), **names)
        _, loaded, _ = load_inputs(path, torch, torch.float32, networks)
    loaded.eval(), other.eval()
    z = torch.randn(3, 6)
    ok(torch.equal(loaded["decoder"](z), other["decoder"](z)), "weights written under our names load into the same layers")
    cfg = dict(DEFAULTS, samples=2, lr=3e-3)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]), weight_decay=cfg["weight_decay"])
    g = torch.Generator().manual_seed(1)
    ls = [float(train_step(x, net, opt, cfg, g)[0]) for _ in range(30)]
    ok(sum(ls[-5:]) < 0.9 * sum(ls[:5]), f"loss falls over 30 steps ({sum(ls[:5]) / 5:.4f} -> {sum(ls[-5:]) / 5:.4f})")
    return ok.passed()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", help=".npz with x [B, 784], every weight under our names and the settings (from unroll bench)")
    peer_protocol.step_peer_arguments(ap, "check the networks and the weight names, then exit")
    peer_protocol.run_step_peer("vsc_conv_torch.py", ap, ap.parse_args(), setup, selftest)


if __name__ == "__main__":
    main()
