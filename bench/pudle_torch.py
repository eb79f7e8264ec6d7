#!/usr/bin/env python3
"""PyTorch reference of PUDLE's unrolled dictionary learning: the peer of `unroll bench pudle-*` and `encode`.

Written from the paper's equations (Tolooshams & Ba, TMLR 2022; notes in the project's
reference/pudle.md §0-§4), not from its repository. D (m x p, atoms as columns) is the only weight:

    encoder   z_0 = 0,  z_t = theta_t( z_{t-1} - alpha D^T (D z_{t-1} - x) ),  t = 1..T
              theta_t = two-sided soft threshold at lambda*beta^(t-1)*alpha, or hard threshold at
              tau*beta^(t-1) (tau not multiplied by alpha); beta = 1 is a constant lambda
    decoder   xhat = D z_T
    losses    rec = 1/2 sum_i ||x_i - xhat_i||^2 / B,  lasso = rec + lambda sum_i ||z_i||_1 / B
    modes     decoder        z_T detached, lasso loss:   g = (1/B) (D z - x) z^T
              lasso          lasso loss backpropagated through the T layers
              least-squares  rec loss backpropagated through the T layers
    step      Adam on D, then every column of D scaled to unit l2 norm

Batches are rows (X is B x m, Z is B x p), so a layer is two GEMMs: V = Z - alpha (Z D^T - X) D.

Cases (issue 4):
    pudle-fig5    m 1000, p 1500, batch 50, s 10, T 100, delta 0.005, lambda = alpha = 0.2, Adam eps 1e-3
    pudle-theory  m 50, p 100, n 10000 full batch, s 5, T 100, delta 0.1, lambda = alpha = 0.2, Adam eps 1e-8
    encode        inference only: 10000 fig5-sized samples through T = 100 layers (no autograd)

One training step (forward + backward + Adam + normalise) or one encode is timed `--repeats` times after
`--warmup` untimed ones. The last stdout line is one JSON object: median seconds, all times, peak RSS
(getrusage ru_maxrss) and the RSS before the problem was built, torch version, settings.

`--selftest` checks the gradients with torch.autograd.gradcheck on tiny float64 instances (every mode,
soft/hard threshold, lambda decay), the decoder-mode gradient against its closed form, and the data
generator against reference §2, then exits (status 1 on a failure).
"""
import argparse
import json
import os
import sys

import peer_protocol

MODES = ("decoder", "lasso", "least-squares")

# Problem settings per case: m, p, examples per step (None = n, full batch), n, s, T, delta, lambda, alpha, Adam eps.
CASES = {
    "pudle-fig5": dict(m=1000, p=1500, batch=50, n=None, s=10, layers=100, delta=0.005, lam=0.2, alpha=0.2, eps=1e-3),
    "pudle-theory": dict(m=50, p=100, batch=None, n=10_000, s=5, layers=100, delta=0.1, lam=0.2, alpha=0.2, eps=1e-8),
    "encode": dict(m=1000, p=1500, batch=None, n=10_000, s=10, layers=100, delta=0.005, lam=0.2, alpha=0.2, eps=1e-3),
}


# ---------------------------------------------------------------------------------------------------
# Model (imports torch lazily so --help works without it)

def make_model(torch):
    F = torch.nn.functional

    def threshold(v, b, kind):
        if kind == "soft":
            return F.softshrink(v, b)          # sign(v) max(|v| - b, 0); autograd slope 1 on the support
        return F.hardshrink(v, b)              # v 1{|v| > b}; slope 1 on the support, jump ignored

    def encode(X, D, layers, lam, alpha, kind="soft", beta=1.0, form="direct"):
        """z_T for the rows of X (B x m) and dictionary D (m x p); differentiable unless called under no_grad."""
        Z = X.new_zeros(X.shape[0], D.shape[1])
        if form == "gram":                     # V = Z - alpha (Z G - C), G = D^T D, C = X D
            G = D.t() @ D
            C = X @ D
        for t in range(layers):
            if form == "gram":
                V = Z - alpha * (Z @ G - C)
            else:
                V = Z - alpha * ((Z @ D.t() - X) @ D)
            scale = alpha if kind == "soft" else 1.0
            Z = threshold(V, lam * beta ** t * scale, kind)
        return Z

    def losses(X, D, Z, lam):
        """(rec, lasso) batch means; xhat = Z D^T."""
        B = X.shape[0]
        R = Z @ D.t() - X
        rec = 0.5 * R.pow(2).sum() / B
        return rec, rec + lam * Z.abs().sum() / B

    def mode_loss(X, D, mode, cfg):
        """The loss whose gradient with respect to D is the mode's direction, and the codes."""
        enc = dict(layers=cfg["layers"], lam=cfg["lam"], alpha=cfg["alpha"], kind=cfg.get("kind", "soft"),
                   beta=cfg.get("beta", 1.0), form=cfg.get("form", "direct"))
        if mode == "decoder":
            with torch.no_grad():
                Z = encode(X, D, **enc)
        else:
            Z = encode(X, D, **enc)
        rec, lasso = losses(X, D, Z, cfg["lam"])
        return (rec if mode == "least-squares" else lasso), Z

    def train_step(X, D, opt, mode, cfg):
        opt.zero_grad(set_to_none=True)
        loss, Z = mode_loss(X, D, mode, cfg)
        loss.backward()
        opt.step()
        with torch.no_grad():
            D.div_(D.norm(dim=0, keepdim=True))
        return loss.detach(), Z.detach()

    return encode, losses, mode_loss, train_step


def synthetic(torch, m, p, n, s, delta, generator, dtype):
    """Reference §2: D* Gaussian with unit columns, s-sparse codes with U[1,2] amplitudes and one random
    sign per example, X = Z* D*^T (rows), D0 = normalise(D* + delta N(0,1)). Returns X, Z*, D*, D0."""
    Dstar = torch.randn(m, p, generator=generator, dtype=dtype) / m ** 0.5
    Dstar /= Dstar.norm(dim=0, keepdim=True)
    support = torch.rand(n, p, generator=generator).argsort(dim=1)[:, :s]   # s distinct atoms per example
    amp = 1 + torch.rand(n, s, generator=generator, dtype=dtype)
    sign = (torch.rand(n, 1, generator=generator) > 0.5).to(dtype) * 2 - 1
    Z = torch.zeros(n, p, dtype=dtype)
    Z.scatter_(1, support, amp * sign)
    X = Z @ Dstar.t()
    D0 = Dstar + delta * torch.randn(m, p, generator=generator, dtype=dtype)
    D0 /= D0.norm(dim=0, keepdim=True)
    return X, Z, Dstar, D0


# ---------------------------------------------------------------------------------------------------
# Benchmarks

def setup_case(args):
    """Builds the case's problem; returns (out, work, finish): `out` the settings dict, `work()` runs one
    timed unit (a training step or an encode), `finish()` adds the results to `out`."""
    import torch
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(not args.no_flush_denormal)
    encode, losses, mode_loss, train_step = make_model(torch)
    c = dict(CASES[args.case])
    if args.layers is not None:
        c["layers"] = args.layers
    cfg = dict(layers=c["layers"], lam=c["lam"], alpha=c["alpha"], kind=args.threshold, beta=args.beta, form=args.form)
    g = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    out = dict(case=args.case, threads=args.threads, torch=torch.__version__,
               flush_denormal=not args.no_flush_denormal, omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", ""),
               form=args.form, threshold=args.threshold,
               beta=args.beta, layers=c["layers"], m=c["m"], p=c["p"], s=c["s"], seed=args.seed,
               baseline_rss_mb=peer_protocol.rss_mb())

    if args.case == "encode":
        n = args.samples or c["n"]
        X, _, _, D0 = synthetic(torch, c["m"], c["p"], n, c["s"], c["delta"], g, torch.float32)
        out.update(samples=n)
        state = {}

        def work(warm=False):
            with torch.no_grad():
                state["Z"] = encode(X[: min(n, args.warmup_samples)] if warm else X, D0, **cfg)

        def finish():
            with torch.no_grad():
                Z = state["Z"]
                rec, lasso = losses(X, D0, Z, c["lam"])
            out.update(objective=float(lasso), reconstruction=float(rec),
                       nonzeros_per_code=float((Z != 0).sum()) / n)
        return out, work, finish

    mode = args.mode
    batch = c["batch"] or c["n"]
    steps = args.warmup + args.repeats
    n = c["n"] or batch * max(steps, 1)        # fig5: only the batches the steps use (then they cycle)
    X, _, Dstar, D0 = synthetic(torch, c["m"], c["p"], n, c["s"], c["delta"], g, torch.float32)
    D = D0.clone().requires_grad_(True)
    opt = torch.optim.Adam([D], lr=1e-3, eps=c["eps"])
    out.update(mode=mode, batch=batch, examples=n, adam_eps=c["eps"])
    state = {"k": 0}

    def work(warm=False):
        lo = (state["k"] * batch) % n
        state["k"] += 1
        state["loss"], state["Z"] = train_step(X[lo:lo + batch], D, opt, mode, cfg)

    def finish():
        with torch.no_grad():
            err = float((D - Dstar).norm() / Dstar.norm())
        Z = state["Z"]
        out.update(loss=float(state["loss"]), nonzeros_per_code=float((Z != 0).sum()) / Z.shape[0],
                   dictionary_error=err, steps=state["k"])
    return out, work, finish


# ---------------------------------------------------------------------------------------------------
# Self-test

def selftest():
    import torch
    torch.set_flush_denormal(True)
    encode, losses, mode_loss, train_step = make_model(torch)
    failures = []

    def check(ok, what):
        print(("ok    " if ok else "FAIL  ") + what)
        if not ok:
            failures.append(what)

    dt = torch.float64
    m, p, B = 6, 9, 4
    for kind, lam, beta in (("soft", 0.2, 1.0), ("soft", 0.2, 0.9), ("hard", 0.1, 1.0)):
        for layers in (1, 5):
            # Pick a seed whose layer inputs all sit well away from the threshold's kink, so finite
            # differences see a smooth function (a kink within eps would make any gradient look wrong).
            for seed in range(50):
                g = torch.Generator().manual_seed(seed)
                X, _, _, D0 = synthetic(torch, m, p, B, 2, 0.3, g, dt)
                margin = kink_margin(torch, X, D0, layers, lam, 0.2, kind, beta)
                if margin > 1e-4:
                    break
            cfg = dict(layers=layers, lam=lam, alpha=0.2, kind=kind, beta=beta)
            for mode in ("lasso", "least-squares"):
                f = lambda D: mode_loss(X, D, mode, cfg)[0]
                ok = torch.autograd.gradcheck(f, (D0.clone().requires_grad_(True),), eps=1e-7, atol=1e-6,
                                              raise_exception=False)
                check(ok, f"gradcheck {mode:13s} {kind} beta={beta} T={layers} (kink margin {margin:.1e})")
            # decoder: codes held fixed, so finite differences must hold them fixed too
            with torch.no_grad():
                Zfix = encode(X, D0, **cfg)
            f = lambda D: losses(X, D, Zfix, lam)[1]
            ok = torch.autograd.gradcheck(f, (D0.clone().requires_grad_(True),), eps=1e-7, atol=1e-6,
                                          raise_exception=False)
            check(ok, f"gradcheck decoder       {kind} beta={beta} T={layers} (codes fixed)")
            D = D0.clone().requires_grad_(True)
            loss, Z = mode_loss(X, D, "decoder", cfg)
            loss.backward()
            closed = (Z @ D0.t() - X).t() @ Z / B     # (1/B) sum_i (D z_i - x_i) z_i^T
            err = float((D.grad - closed).abs().max())
            check(err < 1e-12, f"decoder gradient = (1/B)(Dz - x)z^T  {kind} beta={beta} T={layers} (max diff {err:.1e})")

    # The lasso and least-squares gradients differ by exactly the backpropagated l1 term, which is zero at T
    # layers only if no code is non-zero: on a real problem they must differ.
    g = torch.Generator().manual_seed(0)
    X, _, _, D0 = synthetic(torch, 20, 30, 8, 3, 0.1, g, dt)
    cfg = dict(layers=10, lam=0.2, alpha=0.2)
    grads = {}
    for mode in MODES:
        D = D0.clone().requires_grad_(True)
        mode_loss(X, D, mode, cfg)[0].backward()
        grads[mode] = D.grad
    check(float((grads["lasso"] - grads["least-squares"]).norm()) > 1e-6, "lasso and least-squares gradients differ")
    check(float((grads["lasso"] - grads["decoder"]).norm()) > 1e-6, "lasso and decoder gradients differ")
    # gradcheck can fail: the decoder direction is not the derivative of the loss once the codes follow D.
    f = lambda D: mode_loss(X, D, "decoder", cfg)[0]
    ok = torch.autograd.gradcheck(f, (D0.clone().requires_grad_(True),), eps=1e-7, atol=1e-6, raise_exception=False)
    check(not ok, "gradcheck rejects the decoder direction as the full derivative (the check can fail)")

    # One Adam step leaves unit columns and moves D.
    D = D0.clone().requires_grad_(True)
    opt = torch.optim.Adam([D], lr=1e-3)
    train_step(X, D, opt, "least-squares", cfg)
    norms = D.detach().norm(dim=0)
    check(float((norms - 1).abs().max()) < 1e-12, "columns have unit norm after a step")
    check(float((D.detach() - D0).abs().max()) > 1e-5, "a step moves D")

    # Data generator (reference §2).
    g = torch.Generator().manual_seed(1)
    X, Z, Dstar, D0 = synthetic(torch, 50, 100, 2000, 5, 0.1, g, dt)
    nz = (Z != 0).sum(dim=1)
    check(bool((nz == 5).all()), "every code has exactly s non-zeros")
    a = Z[Z != 0].abs()
    check(float(a.min()) >= 1 and float(a.max()) <= 2, "amplitudes in [1, 2]")
    signs = torch.sign(Z)
    same = ((signs == 1) | (Z == 0)).all(dim=1) | ((signs == -1) | (Z == 0)).all(dim=1)
    check(bool(same.all()), "one sign per example")
    frac = float((signs.sum(dim=1) > 0).to(dt).mean())
    check(0.45 < frac < 0.55, f"positive examples about half ({frac:.3f})")
    check(float((Dstar.norm(dim=0) - 1).abs().max()) < 1e-12, "D* has unit columns")
    check(float((X - Z @ Dstar.t()).abs().max()) < 1e-12, "X = Z D*^T")
    rel = float((D0 - Dstar).norm() / Dstar.norm())
    check(0.5 < rel < 0.7, f"initial relative error about delta*sqrt(m) = 0.61 ({rel:.3f})")
    print("selftest: " + ("all passed" if not failures else f"{len(failures)} FAILED"))
    return not failures


def kink_margin(torch, X, D, layers, lam, alpha, kind, beta):
    """min over layers and entries of | |v| - b |: how far the forward pass is from the threshold's kink."""
    F = torch.nn.functional
    Z = X.new_zeros(X.shape[0], D.shape[1])
    margin = float("inf")
    for t in range(layers):
        V = Z - alpha * ((Z @ D.t() - X) @ D)
        b = lam * beta ** t * (alpha if kind == "soft" else 1.0)
        margin = min(margin, float((V.abs() - b).abs().min()))
        Z = F.softshrink(V, b) if kind == "soft" else F.hardshrink(V, b)
    return margin


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=sorted(CASES), default="pudle-fig5")
    ap.add_argument("--mode", choices=MODES, default="least-squares", help="gradient mode (training cases)")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs before them")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threshold", choices=("soft", "hard"), default="soft",
                    help="soft: S_{lambda alpha}; hard: v 1{|v| > tau} with tau = lambda (not times alpha)")
    ap.add_argument("--beta", type=float, default=1.0, help="lambda decay across layers: lambda_t = lambda beta^(t-1)")
    ap.add_argument("--form", choices=("direct", "gram"), default="direct",
                    help="layer as z - alpha D^T(Dz - x) (the paper's) or with a precomputed G = D^T D")
    ap.add_argument("--layers", type=int, default=None, help="override T")
    ap.add_argument("--samples", type=int, default=None, help="encode: samples (default 10000)")
    ap.add_argument("--warmup-samples", type=int, default=500, help="encode: samples in the warm-up run")
    ap.add_argument("--no-flush-denormal", action="store_true",
                    help="leave denormals on (for the record: much slower on x86 CPUs)")
    ap.add_argument("--omp-wait-policy", choices=("passive", "active", "unset"), default="passive",
                    help="OMP_WAIT_POLICY for torch's OpenMP/MKL threads. passive (default): idle threads sleep; with "
                         "the libgomp default they spin, and on a shared, oversubscribed machine every parallel region "
                         "then waits for a descheduled thread, making steps up to ~10x slower. unset: leave the environment")
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    ap.add_argument("--selftest", action="store_true", help="check gradients and data, then exit")
    ap.add_argument("--serve", action="store_true",
                    help="interleaved timing: print 'ready', then time one unit per 'run' line on stdin until 'quit'")
    args = ap.parse_args()
    if args.selftest:
        sys.exit(0 if selftest() else 1)
    peer_protocol.prepare_torch("pudle_torch.py", ap, args)
    out = peer_protocol.measure(setup_case, args)
    if not args.json and not args.serve:
        what = args.case if args.case == "encode" else f"{args.case} {args.mode}"
        print(f"{what}: median {out['median_s']:.4f} s over {args.repeats}, peak RSS {out['peak_rss_mb']:.0f} MB",
              file=sys.stderr)
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
