"""Benchmark fixtures, p50/p99 from raw samples, and the run summary (terminal and summary.md)."""

from __future__ import annotations

import math
import os
import platform as host
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import pytest

from faas_sdk import ExecutionPlatform

RESULTS_DIR = Path(__file__).parent / "results"
ROUND_TRIP_TARGET_S = 100e-6
EXECUTE_TARGET_S = 3e-3

_RESULTS = pytest.StashKey[dict]()
_ENGINE = pytest.StashKey[dict]()

# key -> label, in the order of the table.
LABELS = {
    "round_trip": 'sandbox.run("pass"), warm sandbox',
    "execute_warm": "execute(print), warm pool refilled",
    "execute_back_to_back": "execute(print), back to back",
    "create_env": "create_sandbox(env=...) until ready",
    "subprocess": 'subprocess python -c "print"',
    "subprocess_SI": 'subprocess python -S -I -c "print"',
}


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: the smallest sample with a fraction q of samples at or below it."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@pytest.fixture(scope="session")
def platform(pytestconfig):
    """One platform for the whole run; its engine histograms are kept for the summary."""
    with ExecutionPlatform(warm_pool_size=2) as p:
        yield p
        pytestconfig.stash[_ENGINE] = p.metrics()


@pytest.fixture
def sandbox(platform):
    with platform.create_sandbox() as sb:
        yield sb


@pytest.fixture
def record(pytestconfig) -> Callable[..., None]:
    """record(benchmark, key, engine=durations): p50/p99 into extra_info and the run summary."""
    def _record(benchmark, key: str, engine: Optional[Sequence[float]] = None) -> None:
        if benchmark.stats is None:  # --benchmark-disable: nothing was timed
            return
        data = benchmark.stats.stats.data
        row = {"rounds": len(data), "p50": percentile(data, 0.50), "p99": percentile(data, 0.99)}
        if engine:
            row["engine_p50"] = percentile(engine, 0.50)
            row["engine_p99"] = percentile(engine, 0.99)
        for name in ("p50", "p99", "engine_p50", "engine_p99"):
            if name in row:
                benchmark.extra_info[f"{name}_us"] = round(row[name] * 1e6, 2)
        pytestconfig.stash.setdefault(_RESULTS, {})[key] = row
    return _record


def _fmt(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e6:.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def _ratio_lines(r: dict) -> list[str]:
    p50 = {k: v["p50"] for k, v in r.items()}
    variants = (("execute_warm", "warm pool"), ("execute_back_to_back", "back to back"))
    execs = [(k, how) for k, how in variants if k in p50]
    lines = []
    for base, name in (("subprocess", "python -c"), ("subprocess_SI", "python -S -I -c")):
        if base in p50 and execs:
            parts = ", ".join(f"**{p50[base] / p50[k]:.1f}x** ({how})" for k, how in execs)
            lines.append(f"- speed-up over {name} per execution (its p50 / execute p50): {parts}")
    for key, target in (("round_trip", ROUND_TRIP_TARGET_S), ("execute_warm", EXECUTE_TARGET_S),
                        ("execute_back_to_back", EXECUTE_TARGET_S)):
        if key in p50:
            verdict = "under" if p50[key] < target else "OVER"
            lines.append(f"- {LABELS[key]}: p50 {_fmt(p50[key])} vs target {_fmt(target)} = "
                         f"{p50[key] / target:.2f} ({verdict})")
    return lines


def render_summary(results: dict, engine: Optional[dict]) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M %Z")
    lines = [f"# faas_sdk benchmark summary ({stamp})", "",
             f"{host.system()} {host.release()} {host.machine()}, {os.cpu_count()} CPUs, "
             f"Python {host.python_version()}. Percentiles are nearest-rank over every timed "
             "round; engine = ExecutionResult.duration. All figures and ratios come from this one "
             "run.", "",
             "| benchmark | rounds | p50 | p99 | engine p50 | engine p99 |",
             "|---|--:|--:|--:|--:|--:|"]
    for key, label in LABELS.items():
        if key in results:
            r = results[key]
            lines.append(f"| {label} | {r['rounds']} | {_fmt(r['p50'])} | {_fmt(r['p99'])} | "
                         f"{_fmt(r.get('engine_p50'))} | {_fmt(r.get('engine_p99'))} |")
    lines += ["", "Ratios (this run):"] + _ratio_lines(results)
    if engine:
        lines += ["", "Engine histograms over the whole session "
                      "(platform.metrics(), ~6% bucket error):"]
        for name in ("execute", "sandbox_start"):
            h = engine[name]
            lines.append(f"- {name}: count {h['count']}, "
                         f"p50 {_fmt(h['p50'])}, p99 {_fmt(h['p99'])}")
    return "\n".join(lines) + "\n"


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    results = config.stash.get(_RESULTS, None)
    if not results:
        return
    text = render_summary(results, config.stash.get(_ENGINE, None))
    terminalreporter.write_sep("=", "faas_sdk latency summary")
    for line in text.splitlines():
        terminalreporter.write_line(line)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "summary.md").write_text(text, encoding="utf-8")
    terminalreporter.write_line(f"written to {RESULTS_DIR / 'summary.md'}")
