"""`faas-sdk bench`: runs the executor matrix, prints its table and writes JSON/CSV; exits 0
only when every timed execution succeeded."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Optional

from .matrix import DEFAULT_TIMEOUT_S, STANDARD_CASES, default_modes, resolve_cases, resolve_modes, run_matrix

__all__ = ["register"]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
    return value


def _comma_list(text: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def register(subparsers: Any) -> None:
    """Adds the `bench` subcommand to the `faas-sdk` parser."""
    modes = ",".join(m.name.lower() for m in default_modes())
    cases = ",".join(c.key for c in STANDARD_CASES)
    parser = subparsers.add_parser(
        "bench", help="run the executor matrix (modes x cases)",
        description="Runs every mode x case N times after warm-up at bounded concurrency, with "
                    "snapshot and branch rows, and prints the latency table (ms). Exit status 0 "
                    "when every timed execution succeeded, 1 otherwise. What each column "
                    "measures: docs/benchmarks.md, 'Executor matrix'.")
    parser.add_argument("--executions", type=_positive_int, default=10, metavar="N",
                        help="timed executions per row (default 10)")
    parser.add_argument("--warmup", type=_non_negative_int, default=2, metavar="N",
                        help="untimed warm-up executions per row (default 2)")
    parser.add_argument("--concurrency", type=_positive_int, default=4, metavar="N",
                        help="executions in flight at once per row (default 4)")
    parser.add_argument("--modes", type=_comma_list, default=None, metavar="LIST",
                        help=f"comma-separated modes (default: every available one: {modes})")
    parser.add_argument("--cases", type=_comma_list, default=None, metavar="LIST",
                        help=f"comma-separated cases (default: all: {cases})")
    parser.add_argument("--baseline-subprocess", action="store_true",
                        help="also run each case as a new `python -c` process per execution and "
                             "show the speed-up over it")
    parser.add_argument("--no-operations", dest="operations", action="store_false",
                        help="leave out the sandbox.snapshot() and snapshot.branch() rows")
    parser.add_argument("--timeout", type=_positive_float, default=DEFAULT_TIMEOUT_S, metavar="S",
                        help=f"seconds per execution; longer is a failure (default {DEFAULT_TIMEOUT_S:g})")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the report as JSON")
    parser.add_argument("--csv", type=Path, default=None, metavar="PATH", help="write the rows as CSV")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.set_defaults(func=_bench, _parser=parser)


def _bench(args: argparse.Namespace) -> int:
    from .. import ExecutionPlatform, FaasError, ModeNotAvailable

    try:  # before any platform exists: a typo should not start the engine
        modes = resolve_modes(args.modes)
        cases = resolve_cases(args.cases)
    except (ValueError, ModeNotAvailable) as exc:
        args._parser.error(str(exc))
    progress: Optional[Callable[[str], None]] = None
    if not args.quiet:
        progress = lambda line: print(f"bench: {line}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        # One warm sandbox per concurrent execution, so one-shot executions measure the fork
        # pool at the requested concurrency rather than a pool sized for one caller.
        with ExecutionPlatform(warm_pool_size=max(2, args.concurrency)) as platform:
            report = run_matrix(platform, modes=modes, cases=cases, executions=args.executions,
                                warmup=args.warmup, concurrency=args.concurrency,
                                baseline_subprocess=args.baseline_subprocess,
                                operations=args.operations, timeout=args.timeout, progress=progress)
    except FaasError as exc:  # the platform itself failed (interpreter, broker); not a row
        print(f"faas-sdk bench: {exc}", file=sys.stderr)
        return 2
    print(report.to_table())
    for path, text in ((args.json, report.to_json), (args.csv, report.to_csv)):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text(), encoding="utf-8")
            print(f"wrote {path}")
    return 0 if report.all_succeeded else 1
