"""Benchmark fixtures, p50/p99 from raw samples, and the run summary (terminal and summary.md)."""

from __future__ import annotations

import math
import os
import platform as host
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import pytest

from faas_sdk import ExecutionPlatform

RESULTS_DIR = Path(__file__).parent / "results"
ROUND_TRIP_TARGET_S = 100e-6
EXECUTE_TARGET_S = 3e-3
# Snapshot and branch targets: key -> (p50 target, p99 target or None), in seconds.
# A branch is "ready" at READY: branch_cold and branch_first_run are reported against the same
# targets and execute p50 so that no clock hides a cost (branch_first_run has no target).
SNAPSHOT_TARGETS_S = {"snapshot": (1e-3, None), "branch": (1e-3, 3e-3), "branch_cold": (1e-3, 3e-3),
                      "branch_first_run": (None, None), "explore3": (10e-3, None),
                      "branch_1000": (1.0, None)}
IDLE_BRANCH_USS_TARGET = 1 << 20
MIB = 1 << 20

_RESULTS = pytest.StashKey[dict]()
_MEMORY = pytest.StashKey[dict]()
_ENGINE = pytest.StashKey[dict]()
_NOTES = pytest.StashKey[list]()

# key -> label, in the order of the table.
LABELS = {
    "round_trip": 'sandbox.run("pass"), warm sandbox',
    "execute_warm": "execute(print), warm pool refilled",
    "execute_back_to_back": "execute(print), back to back",
    "create_env": "create_sandbox(env=...) until ready",
    "subprocess": 'subprocess python -c "print"',
    "subprocess_SI": 'subprocess python -S -I -c "print"',
    "snapshot": "sandbox.snapshot(), 30 MiB touched",
    "branch": "snapshot.branch() until ready",
    "branch_cold": "snapshot.branch() until ready, first of its snapshot (no spare)",
    "branch_first_run": "snapshot.branch() + its first run(), until the result",
    "explore3": "explore_parallel, 3 branches",
    "branch_1000": "snapshot.branch(count=1000), total",
    "secure_create_warm": "create_sandbox(SECURE), warm pool refilled",
    "secure_create_fork": "create_sandbox(SECURE, env=...) until ready",
    "secure_execute_warm": "execute(print, SECURE), warm pool refilled",
    "container_create_warm": "create_sandbox(CONTAINER), warm pool refilled",
    "container_create_fork": "create_sandbox(CONTAINER, env=...) until ready",
    "container_execute_warm": "execute(print, CONTAINER), warm pool refilled",
    "round_trip_local_with_secure": 'sandbox.run("pass"), LOCAL, in the rounds of SECURE\'s',
    "round_trip_secure_paired": 'sandbox.run("pass"), SECURE (same rounds as LOCAL, one CPU)',
    "round_trip_local_with_container": 'sandbox.run("pass"), LOCAL, in the rounds of CONTAINER\'s',
    "round_trip_container_paired": 'sandbox.run("pass"), CONTAINER (same rounds as LOCAL, one CPU)',
    "branch_local_with_secure": "snapshot.branch(), LOCAL, in the rounds of SECURE's",
    "branch_secure": "snapshot.branch(), SECURE (same rounds as LOCAL)",
    "branch_local_with_container": "snapshot.branch(), LOCAL, in the rounds of CONTAINER's",
    "branch_container": "snapshot.branch(), CONTAINER (same rounds as LOCAL)",
    "bwrap": 'bwrap --unshare-all python -c "print"',
}
# Isolation targets: key -> p50 target in seconds.
ISOLATION_TARGETS_S = {"secure_create_warm": 3e-3, "container_create_warm": 5e-3}
ROUND_TRIP_ISOLATION_TOLERANCE = 1.10  # each isolated mode within 10% of LOCAL
BRANCH_ISOLATION_TOLERANCE = 2.0  # each isolated mode's branch within 2x of LOCAL's


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
    """record(benchmark, key, engine=durations, **info): p50/p99 (and info) into extra_info and
    the run summary."""
    def _record(benchmark, key: str, engine: Optional[Sequence[float]] = None, **info: Any) -> None:
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
        benchmark.extra_info.update(info)
        row["info"] = info
        pytestconfig.stash.setdefault(_RESULTS, {})[key] = row
    return _record


@pytest.fixture
def record_samples(pytestconfig) -> Callable[..., None]:
    """record_samples(benchmark, key, samples): a row from samples the test timed itself (when
    one timed round holds several measurements, e.g. one per mode)."""
    def _record(benchmark, key: str, samples: Sequence[float]) -> None:
        row = {"rounds": len(samples), "p50": percentile(samples, 0.50), "p99": percentile(samples, 0.99),
               "info": {}}
        benchmark.extra_info[f"{key}_p50_us"] = round(row["p50"] * 1e6, 2)
        benchmark.extra_info[f"{key}_p99_us"] = round(row["p99"] * 1e6, 2)
        pytestconfig.stash.setdefault(_RESULTS, {})[key] = row
    return _record


@pytest.fixture
def record_note(pytestconfig) -> Callable[[str], None]:
    """record_note(line): a measured figure that fits no table row (toolkit overhead, ...)."""
    return lambda line: pytestconfig.stash.setdefault(_NOTES, []).append(line)


@pytest.fixture
def record_memory(pytestconfig) -> Callable[..., None]:
    """record_memory(benchmark, key, sizes, **info): median and max of byte sizes (one per
    process) in MiB into extra_info and the run summary; info values are bytes too."""
    def _record(benchmark, key: str, sizes: Sequence[int], **info: int) -> None:
        row = {"n": len(sizes), "median": statistics.median(sizes), "max": max(sizes), **info}
        for name, value in row.items():
            benchmark.extra_info[name if name == "n" else f"{name}_mib"] = (
                value if name == "n" else round(value / MIB, 3))
        pytestconfig.stash.setdefault(_MEMORY, {})[key] = row
    return _record


def _fmt(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1e6:.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def _verdict(value: float, target: float) -> str:
    return f"{value / target:.2f} ({'under' if value <= target else 'OVER'})"


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
    return lines + _snapshot_ratio_lines(r) + _isolation_ratio_lines(r)


def _isolation_ratio_lines(r: dict) -> list[str]:
    lines = []
    for key, target in ISOLATION_TARGETS_S.items():
        if key in r:
            lines.append(f"- {LABELS[key]}: p50 {_fmt(r[key]['p50'])} vs target {_fmt(target)} = "
                         f"{_verdict(r[key]['p50'], target)}")
    # (what, LOCAL key, isolated key, tolerance) per isolated mode, each pair from the same rounds.
    pairs = [("warm round trip", "round_trip_local_with_{}", "round_trip_{}_paired", ROUND_TRIP_ISOLATION_TOLERANCE),
             ("branch creation", "branch_local_with_{}", "branch_{}", BRANCH_ISOLATION_TOLERANCE)]
    for what, local_key, isolated_key, tolerance in pairs:
        for mode in ("secure", "container"):
            local, isolated = r.get(local_key.format(mode)), r.get(isolated_key.format(mode))
            if local and isolated:
                ratio = isolated["p50"] / local["p50"]
                verdict = "within" if ratio <= tolerance else "OVER"
                lines.append(f"- {mode.upper()} / LOCAL {what} p50 (same rounds): {_fmt(isolated['p50'])} / "
                             f"{_fmt(local['p50'])} = **{ratio:.2f}x** ({verdict} the {tolerance:.2f}x target); "
                             f"p99 {_fmt(isolated['p99'])} / {_fmt(local['p99'])}")
    if "bwrap" in r:
        for key in ("secure_execute_warm", "secure_create_fork", "container_execute_warm", "container_create_fork"):
            if key in r:
                lines.append(f"- bwrap + python -c vs {LABELS[key]}: {_fmt(r['bwrap']['p50'])} / "
                             f"{_fmt(r[key]['p50'])} = **{r['bwrap']['p50'] / r[key]['p50']:.1f}x** faster")
    return lines


def _snapshot_ratio_lines(r: dict) -> list[str]:
    """Snapshot rows against a fresh sandbox's execute(print) p50 (the warm-pool figure of this
    run) and against their targets."""
    execute = r.get("execute_warm", {}).get("p50")
    lines = []
    for key, (p50_target, p99_target) in SNAPSHOT_TARGETS_S.items():
        if key not in r:
            continue
        row = r[key]
        if key == "branch_1000":
            n, failed = row["info"]["branches"], row["info"]["failures"]
            per = row["p50"] / n
            text = (f"- {LABELS[key]}: p50 {_fmt(row['p50'])} vs target {_fmt(p50_target)} = "
                    f"{_verdict(row['p50'], p50_target)}; {_fmt(per)} per branch")
            if execute:
                text += f" = **{per / execute:.2f}x** execute p50"
            lines.append(text + f"; {failed} of {n * row['rounds']} branches failed")
            continue
        text = f"- {LABELS[key]}: p50 {_fmt(row['p50'])}"
        if "kernel_rss_mib" in row["info"]:
            text = f"- {LABELS[key]} (kernel RSS {row['info']['kernel_rss_mib']} MiB): p50 {_fmt(row['p50'])}"
        if execute:
            text += f" = **{row['p50'] / execute:.2f}x** execute p50 ({_fmt(execute)})"
        if p50_target is not None:
            text += f"; vs target p50 {_fmt(p50_target)} = {_verdict(row['p50'], p50_target)}"
        if p99_target is not None:
            text += f", p99 {_fmt(row['p99'])} vs {_fmt(p99_target)} = {_verdict(row['p99'], p99_target)}"
        lines.append(text)
    return lines


def _memory_lines(memory: dict) -> list[str]:
    if "branch_uss" not in memory:
        return []
    m = memory["branch_uss"]
    mib = lambda b: f"{b / MIB:.2f} MiB"  # noqa: E731
    lines = [f"- idle branch USS ({m['n']} branches of the 30 MiB snapshot, after "
             f"0.2 s idle): median {mib(m['median'])}, max {mib(m['max'])}; vs target "
             f"{mib(IDLE_BRANCH_USS_TARGET)} = median {_verdict(m['median'], IDLE_BRANCH_USS_TARGET)}"
             f", max {_verdict(m['max'], IDLE_BRANCH_USS_TARGET)}"]
    if "fresh_sandbox_uss" in m:
        lines.append(f"- for comparison: a fresh idle sandbox from the warm pool "
                     f"{mib(m['fresh_sandbox_uss'])}, the snapshot's template "
                     f"{mib(m['template_uss'])}")
    return lines


def render_summary(results: dict, engine: Optional[dict], memory: Optional[dict] = None,
                   notes: Optional[list] = None) -> str:
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
    if memory:
        lines += ["", "Memory (this run; USS = unique set size from /proc/<pid>/smaps):"]
        lines += _memory_lines(memory)
    if notes:
        lines += ["", "Toolkit overhead (this run):"] + [f"- {note}" for note in notes]
    if engine:
        lines += ["", "Engine histograms over the whole session "
                      "(platform.metrics(), ~6% bucket error):"]
        for name in ("execute", "sandbox_start", "snapshot", "branch_start"):
            h = engine.get(name)
            if not h or not h["count"]:
                continue
            lines.append(f"- {name}: count {h['count']}, "
                         f"p50 {_fmt(h['p50'])}, p99 {_fmt(h['p99'])}")
    return "\n".join(lines) + "\n"


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    results, memory = config.stash.get(_RESULTS, None), config.stash.get(_MEMORY, None)
    if not results and not memory and not config.stash.get(_NOTES, None):
        return
    text = render_summary(results or {}, config.stash.get(_ENGINE, None), memory,
                          config.stash.get(_NOTES, None))
    terminalreporter.write_sep("=", "faas_sdk latency summary")
    for line in text.splitlines():
        terminalreporter.write_line(line)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "summary.md").write_text(text, encoding="utf-8")
    terminalreporter.write_line(f"written to {RESULTS_DIR / 'summary.md'}")
