"""`faas-sdk baseline save|list` and `faas-sdk compare`: regression checks for CI.

compare exits 0 when the run is within tolerance and its SLOs, 1 when a check failed (the
report names the benchmark, the metric and by how much), 2 when an input cannot be read or
nothing could be compared.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .regression import DEFAULT_BASELINE_DIR, DEFAULT_TOLERANCE, SLO, compare, load_run, save_baseline

__all__ = ["register"]

EXIT_OK, EXIT_REGRESSED, EXIT_BAD_INPUT = 0, 1, 2


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 10:
        raise argparse.ArgumentTypeError(f"expected a fraction such as 0.1 (= 10%), got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text}")
    return value


def register(subparsers: Any) -> None:
    """Adds `baseline` (save, list) and `compare` to the faas-sdk command line."""
    baseline = subparsers.add_parser(
        "baseline", help="save or list regression baselines",
        description="Regression baselines: pytest-benchmark JSON files kept in a directory "
                    f"(default ./{DEFAULT_BASELINE_DIR}/) as NAME.json.")
    actions = baseline.add_subparsers(dest="baseline_command", required=True)

    save = actions.add_parser("save", help="save a run as baseline NAME",
                              description="Save RUN.json (pytest-benchmark JSON, a faas_sdk run "
                                          "or a LoadReport JSON) as baseline NAME.")
    save.add_argument("name", metavar="NAME", help="baseline name (letters, digits, _ - .)")
    save.add_argument("--from", dest="source", metavar="RUN.json", required=True,
                      help="the run to save")
    save.add_argument("--dir", dest="directory", default=DEFAULT_BASELINE_DIR,
                      help=f"baseline directory (default: ./{DEFAULT_BASELINE_DIR})")
    save.set_defaults(func=_save)

    listing = actions.add_parser("list", help="list saved baselines")
    listing.add_argument("--dir", dest="directory", default=DEFAULT_BASELINE_DIR,
                         help=f"baseline directory (default: ./{DEFAULT_BASELINE_DIR})")
    listing.set_defaults(func=_list)

    cmp = subparsers.add_parser(
        "compare", help="compare a run to a baseline; exit 1 on regression",
        description="Compare RUN to BASELINE per benchmark: p95, p99, error rate and throughput "
                    "against the baseline (within --tolerance) and against absolute SLOs if "
                    "given. Exit status: 0 ok, 1 regressed or SLO missed, 2 unreadable input or no benchmark in common.")
    cmp.add_argument("baseline", metavar="BASELINE", help="a baseline name or a JSON file")
    cmp.add_argument("run", metavar="RUN", help="the run to check: a JSON file (or baseline name)")
    cmp.add_argument("--tolerance", metavar="FRACTION", type=_fraction, default=DEFAULT_TOLERANCE,
                     help="allowed relative change vs the baseline (default: 0.1 = 10%%)")
    cmp.add_argument("--p95-ms", metavar="MS", type=_non_negative, default=None, help="SLO: p95 at most X ms")
    cmp.add_argument("--p99-ms", metavar="MS", type=_non_negative, default=None, help="SLO: p99 at most X ms")
    cmp.add_argument("--max-error-rate", metavar="FRACTION", type=_non_negative, default=None,
                     help="SLO: error rate at most X (a fraction: 0.01 = 1%%)")
    cmp.add_argument("--min-throughput", metavar="PER_S", type=_non_negative, default=None,
                     help="SLO: at least X successful requests per second")
    cmp.add_argument("--dir", dest="directory", default=DEFAULT_BASELINE_DIR,
                     help=f"where baseline names are looked up (default: ./{DEFAULT_BASELINE_DIR})")
    cmp.add_argument("--json", dest="json_out", metavar="PATH", default=None,
                     help="also write the verdicts as JSON to PATH ('-' for stdout)")
    cmp.add_argument("-v", "--verbose", action="store_true", help="list every check")
    cmp.set_defaults(func=_compare)


def _fail(message: str) -> int:
    print(f"faas-sdk: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _save(args: argparse.Namespace) -> int:
    try:
        path = save_baseline(args.name, args.source, args.directory)
        count = len(load_run(path)["benchmarks"])
    except (OSError, ValueError, TypeError) as exc:
        return _fail(str(exc))
    print(f"saved baseline {args.name!r} ({count} benchmark(s)) to {path}")
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    names = sorted(p.stem for p in directory.glob("*.json")) if directory.is_dir() else []
    if not names:
        print(f"no baselines in {directory}/")
    for name in names:
        print(name)
    return EXIT_OK


def _compare(args: argparse.Namespace) -> int:
    try:
        slo = SLO(p95_ms=args.p95_ms, p99_ms=args.p99_ms, max_error_rate=args.max_error_rate,
                  min_throughput=args.min_throughput)
        result = compare(args.baseline, args.run, slos=slo, tolerance=args.tolerance,
                         directory=args.directory)
    except (OSError, ValueError, TypeError) as exc:
        return _fail(str(exc))
    print(result.report(verbose=args.verbose))
    if not result.compared:
        # A renamed benchmark must not turn a CI gate green without checking anything.
        return _fail(f"nothing was compared: no benchmark of {args.run} is in {args.baseline}")
    if args.json_out:
        text = json.dumps(result.to_dict(), indent=2)
        if args.json_out == "-":
            print(text)
        else:
            Path(args.json_out).write_text(text + "\n", encoding="utf-8")
    return EXIT_REGRESSED if result.regressed else EXIT_OK
