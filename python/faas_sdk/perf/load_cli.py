"""`faas-sdk load`: drive a real ExecutionPlatform with an arrival pattern (open loop) or a fixed
number of callers (closed loop) and print what it sustained."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Optional

__all__ = ["register", "build_pattern", "run"]

DESCRIPTION = """\
Open loop (default): requests are sent at the pattern's times from a pool of threads, and
latency runs from each request's scheduled send time to its completion, so queueing counts.
Closed loop (--concurrency N): N callers, each sending its next request when the previous
returns. Patterns: constant --rate for --duration; ramp from --start-rate to --rate; spike at
--spike-rate from --spike-start for --spike-duration, else --rate; step through --rates.
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "load", help="load-test the platform (open or closed loop)", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("load")
    g.add_argument("--pattern", choices=["constant", "ramp", "spike", "step"], default="constant",
                   help="arrival pattern of the open loop (default: constant)")
    g.add_argument("--rate", type=float, default=50.0,
                   help="requests/s: the constant rate, the ramp's end rate, the spike's base "
                        "rate (default: 50)")
    g.add_argument("--duration", type=float, default=10.0, help="seconds (default: 10)")
    g.add_argument("--start-rate", type=float, default=None,
                   help="ramp: starting requests/s (default: rate/10)")
    g.add_argument("--spike-rate", type=float, default=None,
                   help="spike: requests/s during the spike (default: 4 x rate)")
    g.add_argument("--spike-start", type=float, default=None,
                   help="spike: seconds from the start (default: duration/3)")
    g.add_argument("--spike-duration", type=float, default=None,
                   help="spike: seconds (default: duration/6)")
    g.add_argument("--rates", type=str, default=None,
                   help="step: comma-separated requests/s, each for duration/len(rates) seconds "
                        "(default: rate/4, rate/2, 3rate/4, rate)")
    g.add_argument("--poisson", action="store_true",
                   help="exponential gaps between sends instead of even spacing")
    g.add_argument("--seed", type=int, default=None, help="seed for --poisson")
    g.add_argument("--concurrency", type=int, default=None,
                   help="closed loop with this many concurrent callers instead of a pattern")
    g.add_argument("--max-workers", type=int, default=512,
                   help="open loop: bound on sender threads (default: 512)")

    w = p.add_argument_group("workload")
    w.add_argument("--code", default="pass", help="code each request runs (default: pass)")
    w.add_argument("--target", choices=["execute", "sandbox"], default="execute",
                   help="execute: platform.execute(code), a fresh sandbox per request (default); "
                        "sandbox: sandbox.run(code) on a pool of warm sandboxes")
    w.add_argument("--sandboxes", type=int, default=None,
                   help="sandbox target: pool size (default: --concurrency, else 4)")
    w.add_argument("--setup", default=None, help="sandbox target: code run once in each sandbox")
    w.add_argument("--timeout", type=float, default=None, help="seconds per execution")
    w.add_argument("--warm-pool", type=int, default=2, help="the platform's warm_pool_size")
    w.add_argument("--warmup", type=int, default=5,
                   help="requests before the clock starts, not recorded (default: 5)")

    o = p.add_argument_group("output")
    o.add_argument("--interval", type=float, default=1.0,
                   help="seconds per timeline row (default: 1)")
    o.add_argument("--json", metavar="PATH", help="write the full report as JSON")
    o.add_argument("--csv", metavar="PATH", help="write the timeline as CSV")
    o.add_argument("--plot", metavar="PATH", help="write a PNG (needs matplotlib)")
    o.add_argument("--no-timeline", action="store_true", help="do not print the timeline")
    o.add_argument("--no-monitor", action="store_true", help="do not sample CPU and memory")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def build_pattern(args: argparse.Namespace) -> Any:
    from .load import LoadPattern

    rate, duration = args.rate, args.duration
    if args.pattern == "constant":
        return LoadPattern.constant(rate, duration)
    if args.pattern == "ramp":
        start = args.start_rate if args.start_rate is not None else rate / 10.0
        return LoadPattern.ramp_up(start, rate, duration)
    if args.pattern == "spike":
        spike_rate = args.spike_rate if args.spike_rate is not None else 4.0 * rate
        start = args.spike_start if args.spike_start is not None else duration / 3.0
        length = args.spike_duration if args.spike_duration is not None else duration / 6.0
        return LoadPattern.spike(rate, spike_rate, start, length, duration)
    if args.rates:
        rates = [float(r) for r in args.rates.split(",") if r.strip()]
    else:
        rates = [rate / 4.0, rate / 2.0, 3.0 * rate / 4.0, rate]
    return LoadPattern.step(rates, duration / len(rates))


def run(args: argparse.Namespace) -> int:
    from faas_sdk import ExecutionPlatform

    from .load import ExecuteExecutor, LoadTester, SandboxExecutor

    try:
        pattern = build_pattern(args) if args.concurrency is None else None
    except ValueError as exc:
        print(f"faas-sdk load: {exc}", file=sys.stderr)
        return 2
    if args.plot:
        import importlib.util
        if importlib.util.find_spec("matplotlib") is None:
            print("faas-sdk load: --plot needs matplotlib: pip install 'faas_sdk[plot]' "
                  "(or: pip install matplotlib)", file=sys.stderr)
            return 2
    if args.duration <= 0 or args.interval <= 0:
        print("faas-sdk load: --duration and --interval must be > 0", file=sys.stderr)
        return 2
    with ExecutionPlatform(warm_pool_size=args.warm_pool) as platform:
        executor: Any
        if args.target == "execute":
            executor = ExecuteExecutor(platform, args.code, timeout=args.timeout)
        else:
            size = args.sandboxes or args.concurrency or 4
            executor = SandboxExecutor(platform, args.code, pool_size=size, setup=args.setup,
                                       timeout=args.timeout)
        progress: Optional[bool] = False if args.no_progress else None
        tester = LoadTester(
            executor, pattern, concurrency=args.concurrency,
            duration=args.duration if args.concurrency is not None else None,
            max_workers=args.max_workers, warmup=args.warmup, timeline_interval=args.interval,
            monitor=not args.no_monitor, progress=progress, poisson=args.poisson, seed=args.seed)
        report = tester.run()
    print(report.summary_text())
    if not args.no_timeline:
        print(report.timeline_text())
    if args.json:
        report.to_json(args.json)
        print(f"wrote {args.json}")
    if args.csv:
        report.to_csv(args.csv)
        print(f"wrote {args.csv}")
    if args.plot:
        report.plot(args.plot)
        print(f"wrote {args.plot}")
    return 0
