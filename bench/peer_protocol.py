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
