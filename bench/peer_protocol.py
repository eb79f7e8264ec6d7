"""What every Python peer of `unroll bench` shares: memory readings, timing, and the two ways a case
is timed — `--repeats` units in one go, or interleaved with ours over stdin (`--serve`).

`work(warm)` runs one unit of the case (`warm=True` for the untimed warm-up units).
"""
import resource
import statistics
import sys
import time


def rss_mb(field="VmRSS"):
    """Current (VmRSS) or peak (VmHWM) resident set of this process in MB, from /proc; None elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def peak_rss_mb():
    """getrusage's ru_maxrss: KB on Linux, bytes on macOS."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024.0 * 1024.0) if sys.platform == "darwin" else r / 1024.0


def timed(work):
    t0 = time.perf_counter()
    work(False)
    return time.perf_counter() - t0


def repeats(work, warmup, count):
    """`warmup` untimed units, then the seconds of `count` timed ones."""
    for _ in range(warmup):
        work(True)
    return [timed(work) for _ in range(count)]


def serve(work, warmup):
    """Interleaved timing driven by `unroll bench`: warm up, print "ready"; then one timed unit per "run"
    line on stdin, answered with its seconds, until "quit" (or the end of input). Returns the seconds."""
    for _ in range(warmup):
        work(True)
    print("ready", flush=True)
    times = []
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "run":
            times.append(timed(work))
            print(f"{times[-1]:.9f}", flush=True)
        elif cmd == "quit":
            break
        elif cmd:
            print(f"error: unknown command {cmd!r}", flush=True)
    return times


def encode_arguments(ap, threads_help, samples_help="samples timed"):
    """The options every peer of the `encode` case takes (bench/sklearn_encode.py, bench/spams_encode.py)."""
    ap.add_argument("--threads", type=int, default=2, help=threads_help)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--samples", type=int, default=10_000, help=samples_help)
    ap.add_argument("--warmup-samples", type=int, default=100)
    ap.add_argument("--lam", type=float, default=0.2, help="lambda of 1/2||x - zD||^2 + lambda||z||_1")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    ap.add_argument("--serve", action="store_true",
                    help="interleaved timing: print 'ready', then time one encode per 'run' line on stdin until 'quit'")


def measure(setup, args):
    """`setup(args)` gives (JSON fields, work, finish); times the work — interleaved over stdin with
    --serve, else --warmup then --repeats units — and returns the fields with the timing ones."""
    out, work, finish = setup(args)
    times = serve(work, args.warmup) if args.serve else repeats(work, args.warmup, args.repeats)
    if times:
        finish()
    out.update(timing_summary(times, args.warmup))
    return out


def timing_summary(times, warmup):
    """The fields every peer's JSON object reports about its timed units and memory."""
    return dict(warmup=warmup, repeats=len(times), median_s=statistics.median(times) if times else None,
                times=times, peak_rss_mb=peak_rss_mb(), peak_rss_hwm_mb=rss_mb("VmHWM"))


def step_peer_arguments(ap, selftest_help, check_help=None):
    """The options every PyTorch training-step peer takes (besides its own --inputs and sizes)."""
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--repeats", type=int, default=5, help="timed steps")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps before them")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--omp-wait-policy", choices=("passive", "active", "unset"), default="passive",
                    help="OMP_WAIT_POLICY for torch's OpenMP threads (passive: idle threads sleep; see pudle_torch.py)")
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    ap.add_argument("--selftest", action="store_true", help=selftest_help)
    if check_help:
        ap.add_argument("--check", metavar="NPZ", help=check_help)
    ap.add_argument("--serve", action="store_true",
                    help="interleaved timing: print 'ready', then time one step per 'run' line on stdin until 'quit'")


def prepare_torch(script, ap, args):
    """Checks --threads, --repeats and --warmup, sets the thread counts and OpenMP's wait policy (read by
    the OpenMP runtime when torch loads, so before the import), then imports torch; exits 3 without it."""
    import os
    if args.threads < 1 or args.repeats < 1 or args.warmup < 0:
        ap.error("--threads and --repeats must be >= 1, --warmup >= 0")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))
    if args.omp_wait_policy != "unset":
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()
    try:
        import torch  # noqa: F401
    except ImportError:
        print(f"{script}: PyTorch is not installed (pip install torch, or scripts/bench.sh --install)", file=sys.stderr)
        sys.exit(3)


def step_recorder(out, step, extra=None):
    """(out, work, finish) for a training-step peer: `work()` runs `step()`, which returns (loss, codes);
    `finish()` adds the last loss, every loss, the last codes' density and `extra()` (if given) to `out`."""
    losses, last = [], {}

    def work(warm=False):
        loss, z = step()
        losses.append(float(loss))
        last["z"] = z

    def finish():
        z = last["z"]
        out.update(loss=losses[-1], losses=losses, density=float((z != 0).sum()) / z.numel(), **(extra() if extra else {}))
    return out, work, finish


def run_step_peer(script, ap, args, setup, selftest, check=None):
    """Checks the common options, sets the thread counts and OpenMP's wait policy before torch loads, then
    runs the self-test and/or `check(path)` (its JSON object last), or times the step (`measure`) and
    prints its JSON object. Exits 3 without torch."""
    import json
    prepare_torch(script, ap, args)
    checking = getattr(args, "check", None)
    if args.selftest or checking:   # both in one process: import torch once
        passed = selftest() if args.selftest else True
        if checking:
            json.dump(check(checking), sys.stdout)
            print()
        sys.exit(0 if passed else 1)
    out = measure(setup, args)
    if not args.json and not args.serve:
        print(f"{out['case']}: median {out['median_s']:.4f} s over {args.repeats}, loss {out['loss']:.5g}, "
              f"peak RSS {out['peak_rss_mb']:.0f} MB", file=sys.stderr)
    json.dump(out, sys.stdout)
    print()


class Checks:
    """A self-test's record: `check(condition, what)` prints one "ok"/"FAIL" line; `passed()` prints the
    summary line (the tests look for "all checks passed") and says whether all held."""

    def __init__(self):
        self.failures = []

    def __call__(self, condition, what):
        print(("ok    " if condition else "FAIL  ") + what)
        if not condition:
            self.failures.append(what)

    def passed(self):
        print(f"{len(self.failures)} failure(s)" if self.failures else "all checks passed")
        return not self.failures


def load_npz(path, defaults, torch, dtype, integers=()):
    """An .npz written by `unroll bench`: `tensor(name)` (an array as a torch tensor of `dtype`), the arrays,
    and the 0-d arrays as settings over `defaults` (ints for the keys in `integers`)."""
    import numpy as np
    d = np.load(path)
    settings = dict(defaults)
    for k in d.files:
        if d[k].ndim == 0:
            settings[k] = float(d[k])
    for k in integers:
        settings[k] = int(settings[k])
    return (lambda name: torch.from_numpy(np.ascontiguousarray(d[name])).to(dtype)), d, settings
