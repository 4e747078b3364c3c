"""The executor matrix: every available mode x the standard cases, N verified executions each
after warm-up, at bounded concurrency; plus snapshot/branch rows and, optionally, a new-process
baseline from the same run. Reported as a console table, JSON and CSV.

JSON schema (``schema_version`` 1; every time in seconds, ``null`` where no sample exists)::

    {
      "schema_version": 1,
      "generator": "faas_sdk.perf.matrix",
      "created_at": "2026-11-22T10:00:00+00:00",        # UTC, when the run started
      "duration_s": 3.2,                                # the whole run, set-up included
      "machine": {"hostname": str, "system": str, "release": str, "machine": str,
                  "cpu_count": int | null, "loadavg_1m": float | null,
                  "python_version": str, "python_implementation": str,
                  "python_executable": str, "faas_sdk_version": str},
      "config": {"executions": int, "warmup": int, "concurrency": int,
                 "baseline_subprocess": bool, "operations": bool, "timeout_s": float | null,
                 "modes": [str], "cases": [str]},
      "rows": [ROW, ...],
      "modes": [MODE, ...]
    }

    ROW  = {"kind": "execution" | "baseline" | "operation", "mode": str, "case": str,
            "executions": int, "successful": int, "failed": int, "success_rate": float,
            "total_s": float, "mean_s": float | null, "min_s": float | null,
            "max_s": float | null, "p50_s": float | null, "p95_s": float | null,
            "p99_s": float | null, "wall_s": float,
            "speedup_vs_subprocess": float | null, "errors": [str], "samples_s": [float]}
    MODE = {"mode": str, "executions": int, "successful": int, "failed": int,
            "success_rate": float, "total_s": float, "mean_s" ... "p99_s": float | null,
            "wall_s": float}

``kind`` "execution" rows are a mode running a case, "baseline" rows the same case in a new
``sys.executable -c`` process (mode "subprocess"), "operation" rows ``sandbox.snapshot()`` and
``snapshot.branch()``. Latency figures cover successful executions only (see
``LatencySummary``); ``samples_s`` lists them in completion order; ``errors`` holds up to three
distinct failure messages. ``speedup_vs_subprocess`` is the baseline row's p50 divided by this
row's p50, for execution rows of a case that has a baseline row. ``MODE`` aggregates the
execution rows of one mode. The CSV has one line per row with the same columns (``errors``
joined by "; ", no ``samples_s``), then one line per mode with kind "mode" and an empty case.
See docs/benchmarks.md, "Executor matrix".
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import json
import os
import platform as _host
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Sequence, Union

import faas_sdk
from ..errors import FaasError, ModeNotAvailable
from ..modes import Mode
from .stats import LatencySummary

if TYPE_CHECKING:
    from ..platform import ExecutionPlatform
    from ..results import ExecutionResult

__all__ = [
    "BASELINE_MODE",
    "CSV_FIELDS",
    "Case",
    "MatrixReport",
    "MatrixRow",
    "ModeSummary",
    "SCHEMA_VERSION",
    "STANDARD_CASES",
    "default_modes",
    "machine_info",
    "resolve_cases",
    "resolve_modes",
    "run_matrix",
]

SCHEMA_VERSION = 1
BASELINE_MODE = "subprocess"
SNAPSHOT_CASE = "sandbox.snapshot()"
BRANCH_CASE = "snapshot.branch()"
DEFAULT_TIMEOUT_S = 60.0
MAX_ERRORS_PER_ROW = 3

CSV_FIELDS = ("kind", "mode", "case", "executions", "successful", "failed", "success_rate",
              "total_s", "mean_s", "min_s", "max_s", "p50_s", "p95_s", "p99_s", "wall_s",
              "speedup_vs_subprocess", "errors")


@dataclasses.dataclass(frozen=True)
class Case:
    """A piece of code the matrix runs, and the exact stdout that proves it ran correctly.

    ``expected_stdout=None`` accepts any output: success then only means nothing raised.
    """

    name: str
    code: str
    expected_stdout: Optional[str]

    @property
    def key(self) -> str:
        """How the CLI selects it: the name in lower case, punctuation dropped, words joined
        by "_" ("File I/O" -> "file_io")."""
        return _key(self.name)


def _key(name: str) -> str:
    kept = "".join(ch for ch in name.strip().lower() if ch.isalnum() or ch in " -_")
    return "_".join(kept.replace("-", " ").replace("_", " ").split())


_IO_LINE, _IO_REPEAT = "faas_sdk matrix file I/O\n", 1000
STANDARD_CASES: tuple[Case, ...] = (
    Case("Simple Print", "print('hello')", "hello\n"),
    Case("Loop Calculation", "print(sum(i * i for i in range(100_000)))",
         f"{sum(i * i for i in range(100_000))}\n"),
    Case("Function Definition",
         "def fib(n):\n"
         "    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
         "print(fib(18))",
         "2584\n"),
    # Relative path: the sandbox's own workdir, or the baseline process's temporary directory.
    Case("File I/O",
         f"text = {_IO_LINE!r} * {_IO_REPEAT}\n"
         "with open('matrix_io.txt', 'w') as f:\n"
         "    f.write(text)\n"
         "with open('matrix_io.txt') as f:\n"
         "    back = f.read()\n"
         "print('verified' if back == text else 'MISMATCH', len(back))",
         f"verified {len(_IO_LINE) * _IO_REPEAT}\n"),
)


@dataclasses.dataclass(frozen=True)
class MatrixRow:
    """One row: `kind` "execution" (a mode runs a case), "baseline" (the case in a new
    process) or "operation" (snapshot, branch).

    latency    the timed executions (successful ones' latencies; failures counted)
    wall_time  seconds from the first timed start to the last timed end of this row
    speedup    baseline p50 / this p50 for an execution row whose case has a baseline row
    errors     up to three distinct failure messages
    samples    the successful latencies (seconds) in completion order
    """

    kind: str
    mode: str
    case: str
    latency: LatencySummary
    wall_time: float
    speedup: Optional[float] = None
    errors: tuple[str, ...] = ()
    samples: tuple[float, ...] = dataclasses.field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the row (schema in the module docstring)."""
        lat = self.latency
        return {
            "kind": self.kind, "mode": self.mode, "case": self.case,
            **_latency_fields(lat),
            "wall_s": self.wall_time,
            "speedup_vs_subprocess": self.speedup,
            "errors": list(self.errors),
            "samples_s": list(self.samples),
        }


@dataclasses.dataclass(frozen=True)
class ModeSummary:
    """Every execution row of one mode together: overall success rate, total and percentiles."""

    mode: str
    latency: LatencySummary
    wall_time: float

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, **_latency_fields(self.latency), "wall_s": self.wall_time}


def _latency_fields(lat: LatencySummary) -> dict[str, Any]:
    return {
        "executions": lat.count, "successful": lat.successful, "failed": lat.failed,
        "success_rate": lat.success_rate, "total_s": lat.total, "mean_s": lat.mean,
        "min_s": lat.min, "max_s": lat.max, "p50_s": lat.p50, "p95_s": lat.p95, "p99_s": lat.p99,
    }


@dataclasses.dataclass(frozen=True)
class MatrixReport:
    """The result of `run_matrix`: rows, per-mode summaries, the configuration and the machine."""

    rows: tuple[MatrixRow, ...]
    modes: tuple[ModeSummary, ...]
    config: dict[str, Any]
    machine: dict[str, Any]
    created_at: str
    duration: float

    @property
    def all_succeeded(self) -> bool:
        """Every timed execution of every row (baseline and operations included) succeeded."""
        return all(row.latency.failed == 0 for row in self.rows)

    @property
    def has_baseline(self) -> bool:
        return any(row.kind == "baseline" for row in self.rows)

    def row(self, mode: Union[Mode, str], case: str) -> MatrixRow:
        """The row of `mode` (a Mode, its name, or "subprocess") and `case` (name or key)."""
        wanted = mode.name if isinstance(mode, Mode) else mode
        for r in self.rows:
            if r.mode == wanted and _key(r.case) == _key(case):
                return r
        raise KeyError(f"no row for mode {wanted!r} and case {case!r}")

    # ---- exports -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (schema in the module docstring)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "generator": "faas_sdk.perf.matrix",
            "created_at": self.created_at,
            "duration_s": self.duration,
            "machine": dict(self.machine),
            "config": dict(self.config),
            "rows": [r.to_dict() for r in self.rows],
            "modes": [m.to_dict() for m in self.modes],
        }

    def to_json(self, indent: Optional[int] = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_csv(self) -> str:
        """One line per row, then one per mode (kind "mode"); columns `CSV_FIELDS`, seconds,
        empty cells where a value is None."""
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            d = r.to_dict()
            d["errors"] = "; ".join(r.errors)
            writer.writerow({k: _csv_cell(d[k]) for k in CSV_FIELDS})
        for m in self.modes:
            d = {"kind": "mode", "case": "", "speedup_vs_subprocess": None, "errors": "", **m.to_dict()}
            writer.writerow({k: _csv_cell(d[k]) for k in CSV_FIELDS})
        return out.getvalue()

    def to_table(self) -> str:
        """A console table; times in milliseconds."""
        cfg = self.config
        m = self.machine
        lines = [
            f"Executor matrix: {cfg['executions']} timed executions per row after {cfg['warmup']} "
            f"warm-up, concurrency {cfg['concurrency']} (operations one at a time); times in ms",
            f"Python {m['python_version']} on {m['system']} {m['release']} {m['machine']}, "
            f"{m['cpu_count']} CPUs, load {m['loadavg_1m']}",
            "",
        ]
        baseline = self.has_baseline
        header = ["mode", "case", "executions", "successful", "failed", "success rate",
                  "total", "mean", "min", "max", "p50", "p95", "p99"]
        if baseline:
            header.append("speed-up")
        ordered = ([r for r in self.rows if r.kind == "execution"]
                   + [r for r in self.rows if r.kind == "baseline"]
                   + [r for r in self.rows if r.kind == "operation"])
        body: list[Optional[list[str]]] = []
        previous_kind = None
        for r in ordered:
            if previous_kind is not None and r.kind != previous_kind:
                body.append(None)  # a rule between sections
            previous_kind = r.kind
            cells = [r.mode, r.case, *_summary_cells(r.latency)]
            if baseline:
                cells.append(f"{r.speedup:.1f}x" if r.speedup is not None else "-")
            body.append(cells)
        body.append(None)
        for s in self.modes:
            cells = [s.mode, "all cases", *_summary_cells(s.latency)]
            if baseline:
                cells.append("")
            body.append(cells)
        widths = [max(len(header[i]), *(len(row[i]) for row in body if row is not None))
                  for i in range(len(header))]

        def fmt(cells: Sequence[str]) -> str:
            left = [c.ljust(widths[i]) for i, c in enumerate(cells[:2])]
            right = [c.rjust(widths[i + 2]) for i, c in enumerate(cells[2:])]
            return "  ".join(left + right).rstrip()

        rule = "  ".join("-" * w for w in widths)
        lines += [fmt(header), rule]
        lines += [rule if row is None else fmt(row) for row in body]
        if baseline:
            lines += ["", f"speed-up: p50 of the {BASELINE_MODE} row for the same case / p50 of "
                          "the row (same run)"]
        failures = [r for r in self.rows if r.errors]
        if failures:
            lines += ["", "Failures:"]
            for r in failures:
                for e in r.errors:
                    lines.append(f"  {r.mode} / {r.case}: {e}")
        return "\n".join(lines)


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return value


def _ms(seconds: Optional[float]) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3f}"


def _summary_cells(lat: LatencySummary) -> list[str]:
    return [str(lat.count), str(lat.successful), str(lat.failed), f"{lat.success_rate * 100:.1f}%",
            _ms(lat.total), _ms(lat.mean), _ms(lat.min), _ms(lat.max), _ms(lat.p50), _ms(lat.p95),
            _ms(lat.p99)]


# ---- measuring --------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Trial:
    """One kind of timed call: `setup()` (untimed) -> `call(context)` (timed) ->
    `check(value)` (untimed; returns an error message or None) -> `teardown(context, value)`
    (untimed; `value` is None when the call raised)."""

    call: Callable[[Any], Any]
    check: Callable[[Any], Optional[str]] = lambda value: None
    setup: Callable[[], Any] = lambda: None
    teardown: Callable[[Any, Any], None] = lambda context, value: None


@dataclasses.dataclass(frozen=True)
class _Sample:
    ok: bool
    start: float
    end: float
    error: str = ""

    @property
    def latency(self) -> float:
        return self.end - self.start


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _attempt(trial: _Trial) -> _Sample:
    context = trial.setup()
    value = None
    start = time.perf_counter()
    try:
        value = trial.call(context)
    except Exception as exc:  # a failed execution is data; KeyboardInterrupt still stops the run
        end = time.perf_counter()
        error: Optional[str] = _describe(exc)
    else:
        end = time.perf_counter()
        try:
            error = trial.check(value)
        except Exception as exc:
            error = f"check raised {_describe(exc)}"
    try:
        trial.teardown(context, value)
    except Exception as exc:
        error = error or f"clean-up raised {_describe(exc)}"
    return _Sample(ok=error is None, start=start, end=end, error=error or "")


def _run_timed(trial: _Trial, count: int, concurrency: int) -> list[_Sample]:
    """`count` attempts of `trial`, at most `concurrency` in flight. The semaphore is taken
    before each submission, so no attempt waits in the executor's queue: each clock starts
    when a worker is free to run it."""
    if count <= 0:
        return []
    slots = threading.Semaphore(concurrency)

    def attempt() -> _Sample:
        try:
            return _attempt(trial)
        finally:
            slots.release()

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="faas-matrix") as pool:
        futures = []
        for _ in range(count):
            slots.acquire()
            futures.append(pool.submit(attempt))
        return [f.result() for f in futures]


def _make_row(kind: str, mode: str, case: str, samples: Sequence[_Sample]) -> MatrixRow:
    good = sorted((s for s in samples if s.ok), key=lambda s: s.end)
    errors: list[str] = []
    for s in samples:
        if not s.ok and s.error not in errors and len(errors) < MAX_ERRORS_PER_ROW:
            errors.append(s.error)
    wall = (max(s.end for s in samples) - min(s.start for s in samples)) if samples else 0.0
    latencies = tuple(s.latency for s in good)
    return MatrixRow(kind=kind, mode=mode, case=case,
                     latency=LatencySummary.from_samples(latencies, failures=len(samples) - len(good)),
                     wall_time=wall, errors=tuple(errors), samples=latencies)


def _failed_row(kind: str, mode: str, case: str, count: int, error: str) -> MatrixRow:
    return MatrixRow(kind=kind, mode=mode, case=case,
                     latency=LatencySummary.from_samples((), failures=count), wall_time=0.0,
                     errors=(error,))


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _check_output(case: Case, success: bool, stdout: str, failure: str) -> Optional[str]:
    if not success:
        return failure
    if case.expected_stdout is not None and stdout != case.expected_stdout:
        return f"wrong output: expected {_shorten(case.expected_stdout)!r}, got {_shorten(stdout)!r}"
    return None


# ---- modes ------------------------------------------------------------------------------------

def default_modes() -> list[Mode]:
    """Every mode in ``faas_sdk.AVAILABLE_MODES`` (read at call time), in declaration order."""
    available = faas_sdk.AVAILABLE_MODES
    return [m for m in Mode if m in available]


class _ModeRunner:
    """How one mode runs a plain one-shot execution: ``platform.execute(code, mode=...)``, with
    the set-up a mode needs (BRANCHED: one base snapshot per run) made before any clock, and any
    snapshot a result carries (CHECKPOINTED) released after the clock stops."""

    def __init__(self, platform: "ExecutionPlatform", mode: Mode, timeout: Optional[float]) -> None:
        self.platform = platform
        self.mode = mode
        self.timeout = timeout
        self._base_sandbox = None
        self._base_snapshot = None

    def prepare(self) -> None:
        if self.mode is Mode.BRANCHED:
            # Made from a fresh sandbox, so every branch starts from an empty namespace like the
            # other modes.
            self._base_sandbox = self.platform.create_sandbox()
            self._base_snapshot = self._base_sandbox.snapshot()
            self._base_sandbox.close()  # the snapshot outlives it; one process fewer during the run

    def execute(self, code: str) -> "ExecutionResult":
        if self._base_snapshot is not None:
            return self.platform.execute(code, mode=self.mode, timeout=self.timeout,
                                         base_snapshot=self._base_snapshot)
        return self.platform.execute(code, mode=self.mode, timeout=self.timeout)

    def trial(self, case: Case) -> _Trial:
        def check(result: "ExecutionResult") -> Optional[str]:
            failure = str(result.error) if result.error is not None else f"outcome {result.outcome}"
            return _check_output(case, result.success, result.stdout, failure)

        def teardown(_context: Any, result: Optional["ExecutionResult"]) -> None:
            snapshot = getattr(result, "snapshot", None)
            if snapshot is not None:
                snapshot.release()

        return _Trial(call=lambda _context: self.execute(case.code), check=check, teardown=teardown)

    def close(self) -> None:
        if self._base_snapshot is not None:
            self._base_snapshot.release()
        if self._base_sandbox is not None:
            self._base_sandbox.close()


def _baseline_trial(case: Case, timeout: Optional[float]) -> _Trial:
    """The case in a new interpreter process, in a temporary directory of its own (made and
    removed off the clock)."""

    def call(workdir: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", case.code], cwd=workdir, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def check(proc: subprocess.CompletedProcess) -> Optional[str]:
        last = proc.stderr.strip().splitlines()[-1:] or [""]
        return _check_output(case, proc.returncode == 0, proc.stdout,
                             f"exit status {proc.returncode}: {_shorten(last[0])}")

    return _Trial(call=call, check=check,
                  setup=lambda: tempfile.mkdtemp(prefix="faas_sdk_matrix-"),
                  teardown=lambda workdir, _value: shutil.rmtree(workdir, ignore_errors=True))


_SMALL_STATE = "x = 1"


def _snapshot_trial(sandbox) -> _Trial:
    return _Trial(call=lambda _context: sandbox.snapshot(),
                  check=lambda snap: None if snap.alive else "the snapshot is not alive",
                  teardown=lambda _context, snap: snap.release() if snap is not None else None)


def _branch_trial(snapshot) -> _Trial:
    def sees_state(branch) -> Optional[str]:
        if not branch.alive:
            return f"the branch is dead: {branch.death_reason}"
        value = branch.run("x").value
        return None if value == "1" else f"the branch does not see the snapshot's x = 1: {value!r}"

    return _Trial(call=lambda _context: snapshot.branch(), check=sees_state,
                  teardown=lambda _context, branch: branch.close() if branch is not None else None)


# ---- the run ----------------------------------------------------------------------------------

def machine_info() -> dict[str, Any]:
    """Where a run happened: host, kernel, CPUs, load, the interpreter and faas_sdk version."""
    try:
        load: Optional[float] = round(os.getloadavg()[0], 2)
    except OSError:
        load = None
    return {
        "hostname": _host.node(),
        "system": _host.system(),
        "release": _host.release(),
        "machine": _host.machine(),
        "cpu_count": os.cpu_count(),
        "loadavg_1m": load,
        "python_version": _host.python_version(),
        "python_implementation": _host.python_implementation(),
        "python_executable": sys.executable,
        "faas_sdk_version": faas_sdk.__version__,
    }


def resolve_modes(modes: Optional[Iterable[Union[Mode, str]]]) -> list[Mode]:
    """Modes (or their names, any case) as a list without repeats; None: `default_modes()`.
    Raises ValueError for an unknown name, ModeNotAvailable for a mode this build lacks."""
    if modes is None:
        return default_modes()
    out: list[Mode] = []
    for m in modes:
        if isinstance(m, str):
            try:
                m = Mode[m.strip().upper()]
            except KeyError:
                raise ValueError(f"unknown mode {m!r}; modes: "
                                 f"{', '.join(x.name for x in Mode)}") from None
        if not isinstance(m, Mode):
            raise TypeError(f"modes must be faas_sdk.Mode or names, not {type(m).__name__}")
        if m not in faas_sdk.AVAILABLE_MODES:
            available = ", ".join(x.name for x in default_modes())
            raise ModeNotAvailable(f"mode {m.name} is not available in this build (available: {available})")
        if m not in out:
            out.append(m)
    if not out:
        raise ValueError("no modes to run")
    return out


def resolve_cases(cases: Optional[Iterable[Union[Case, str]]]) -> list[Case]:
    """Cases, or names/keys of standard cases ("simple print", "file_io", "File I/O"); None:
    `STANDARD_CASES`. Raises ValueError for an unknown name or a case given twice."""
    if cases is None:
        return list(STANDARD_CASES)
    by_key = {c.key: c for c in STANDARD_CASES}
    out: list[Case] = []
    for c in cases:
        if isinstance(c, str):
            try:
                c = by_key[_key(c)]
            except KeyError:
                raise ValueError(f"unknown case {c!r}; cases: "
                                 f"{', '.join(x.key for x in STANDARD_CASES)}") from None
        if not isinstance(c, Case):
            raise TypeError(f"cases must be Case or names, not {type(c).__name__}")
        if any(_key(c.name) == _key(seen.name) for seen in out):
            raise ValueError(f"case {c.name!r} given twice")
        out.append(c)
    if not out:
        raise ValueError("no cases to run")
    return out


def run_matrix(platform: "ExecutionPlatform", modes: Optional[Iterable[Union[Mode, str]]] = None,
               cases: Optional[Iterable[Union[Case, str]]] = None, executions: int = 10,
               warmup: int = 2, concurrency: int = 4, baseline_subprocess: bool = False, *,
               operations: bool = True, timeout: Optional[float] = DEFAULT_TIMEOUT_S,
               progress: Optional[Callable[[str], None]] = None) -> MatrixReport:
    """Runs the executor matrix on `platform` and returns its report.

    modes                Modes or names; default every mode of ``faas_sdk.AVAILABLE_MODES``
    cases                Cases or standard case names/keys; default `STANDARD_CASES`
    executions           timed executions per row (>= 1), after `warmup` untimed ones (>= 0)
    concurrency          executions in flight at once per row (>= 1)
    baseline_subprocess  also run each case as a new ``sys.executable -c`` process per
                         execution, and fill the speed-up column from that baseline
    operations           add rows for ``sandbox.snapshot()`` and ``snapshot.branch()`` (one at
                         a time, on a small sandbox)
    timeout              seconds per execution (None: no limit); one that expires is a failure
    progress             called with a line of text before each row

    Rows run case by case (every mode, then the baseline), so the figures a speed-up compares
    are measured close together; the operations come last. Failures are counted, never raised,
    except for invalid arguments and a closed platform.
    """
    if executions < 1:
        raise ValueError("executions must be >= 1")
    if warmup < 0:
        raise ValueError("warmup must be >= 0")
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    if platform.closed:
        raise FaasError("this ExecutionPlatform is closed; create a new one")
    mode_list = resolve_modes(modes)
    case_list = resolve_cases(cases)
    say = progress or (lambda line: None)
    created_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    run_start = time.perf_counter()

    def measure(kind: str, mode: str, case: str, trial: _Trial, parallel: int) -> MatrixRow:
        say(f"{mode} / {case}: {warmup} warm-up, {executions} timed")
        _run_timed(trial, warmup, parallel)
        return _make_row(kind, mode, case, _run_timed(trial, executions, parallel))

    runners: dict[Mode, _ModeRunner] = {}
    broken: dict[Mode, str] = {}
    rows: list[MatrixRow] = []
    try:
        for mode in mode_list:
            runner = runners[mode] = _ModeRunner(platform, mode, timeout)
            try:
                runner.prepare()
            except Exception as exc:
                broken[mode] = f"set-up of mode {mode.name} failed: {_describe(exc)}"
        for case in case_list:
            for mode in mode_list:
                if mode in broken:
                    rows.append(_failed_row("execution", mode.name, case.name, executions,
                                            broken[mode]))
                    continue
                rows.append(measure("execution", mode.name, case.name, runners[mode].trial(case),
                                    concurrency))
            if baseline_subprocess:
                rows.append(measure("baseline", BASELINE_MODE, case.name,
                                    _baseline_trial(case, timeout), concurrency))
    finally:
        for runner in runners.values():
            runner.close()
    if operations:
        rows += _measure_operations(platform, measure, executions)

    rows = _with_speedups(rows)
    summaries = tuple(
        _mode_summary(m.name, [r for r in rows if r.kind == "execution" and r.mode == m.name])
        for m in mode_list)
    # Rows in report order: by mode, then the baseline, then operations, each in case order.
    order = {m.name: i for i, m in enumerate(mode_list)}
    order[BASELINE_MODE] = len(order)
    kind_rank = {"execution": 0, "baseline": 0, "operation": 1}
    rows.sort(key=lambda r: (kind_rank[r.kind], order.get(r.mode, len(order) + 1)))
    config = {
        "executions": executions, "warmup": warmup, "concurrency": concurrency,
        "baseline_subprocess": baseline_subprocess, "operations": operations, "timeout_s": timeout,
        "modes": [m.name for m in mode_list], "cases": [c.name for c in case_list],
    }
    return MatrixReport(rows=tuple(rows), modes=summaries, config=config, machine=machine_info(),
                        created_at=created_at, duration=time.perf_counter() - run_start)


def _measure_operations(platform: "ExecutionPlatform", measure: Callable[..., MatrixRow],
                        executions: int) -> list[MatrixRow]:
    """Snapshot and branch of a small LOCAL sandbox, one at a time: a snapshot needs its
    sandbox idle, so snapshots of one sandbox cannot overlap anyway."""
    mode = Mode.LOCAL.name
    sandbox = snapshot = None
    try:
        try:
            sandbox = platform.create_sandbox()
            setup = sandbox.run(_SMALL_STATE)
            if not setup.success:
                raise RuntimeError(f"{_SMALL_STATE!r} failed: {setup.error}")
        except Exception as exc:
            error = f"setting up the sandbox failed: {_describe(exc)}"
            return [_failed_row("operation", mode, case, executions, error)
                    for case in (SNAPSHOT_CASE, BRANCH_CASE)]
        rows = [measure("operation", mode, SNAPSHOT_CASE, _snapshot_trial(sandbox), 1)]
        try:
            snapshot = sandbox.snapshot()
        except Exception as exc:
            rows.append(_failed_row("operation", mode, BRANCH_CASE, executions,
                                    f"the base snapshot failed: {_describe(exc)}"))
            return rows
        rows.append(measure("operation", mode, BRANCH_CASE, _branch_trial(snapshot), 1))
        return rows
    finally:
        if snapshot is not None:
            snapshot.release()
        if sandbox is not None:
            sandbox.close()


def _with_speedups(rows: list[MatrixRow]) -> list[MatrixRow]:
    baseline = {r.case: r.latency.p50 for r in rows if r.kind == "baseline"}
    out = []
    for r in rows:
        base = baseline.get(r.case)
        if r.kind == "execution" and base is not None and r.latency.p50:  # None or 0: no ratio
            r = dataclasses.replace(r, speedup=base / r.latency.p50)
        out.append(r)
    return out


def _mode_summary(mode: str, rows: Sequence[MatrixRow]) -> ModeSummary:
    samples = [s for r in rows for s in r.samples]
    failures = sum(r.latency.failed for r in rows)
    return ModeSummary(mode=mode, latency=LatencySummary.from_samples(samples, failures=failures),
                       wall_time=sum(r.wall_time for r in rows))
