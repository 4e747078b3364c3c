"""pytest plugin of faas_sdk (entry point `pytest11: faas_sdk`). Loads cheaply: nothing is
imported from the engine until a fixture is used.

Fixtures: ``platform`` (session), ``sandbox``, ``sandbox_factory``, ``load_tester``,
``slo_recorder``. Marker: ``@pytest.mark.slo(p95_ms=, p99_ms=, error_rate=, min_throughput=)``.
Options: ``--faas-*`` in the "faas_sdk" group of ``pytest --help``. See docs/benchmarks.md.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import math
import os
import time
import warnings
from typing import Any, Callable, Iterator, Mapping, Optional

import pytest

__all__ = ["SLORecorder", "SLO_KEYWORDS"]

SLO_KEYWORDS = ("p95_ms", "p99_ms", "error_rate", "min_throughput")
DEFAULT_SLO_ROUNDS = 100

_SANDBOXES = pytest.StashKey[list]()          # sandboxes made for one test, for failure reports
_RECORDER = pytest.StashKey["SLORecorder"]()  # the test's slo_recorder, if it asked for one
_REPORTS = pytest.StashKey[list]()            # LoadReport-likes returned, attached or produced
_SLO_RUN = pytest.StashKey[list]()            # benchmark entries for --faas-slo-report


# ---- options and marker --------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("faas_sdk", "faas_sdk sandboxes and SLO checks")
    group.addoption("--faas-python", metavar="PATH", default=None,
                    help="interpreter that runs the sandboxes of the platform fixture "
                         "(default: the one running pytest)")
    group.addoption("--faas-pool-size", metavar="N", type=int, default=2,
                    help="warm pool size of the platform fixture (default: 2)")
    group.addoption("--faas-timeout", metavar="SECONDS", type=float, default=None,
                    help="default timeout of every execution on the platform fixture "
                         "(default: none)")
    group.addoption("--faas-slo-rounds", metavar="N", type=int, default=DEFAULT_SLO_ROUNDS,
                    help="measurements an SLO test takes with slo_recorder.measure() "
                         f"(slo_recorder.rounds; default: {DEFAULT_SLO_ROUNDS})")
    group.addoption("--faas-slo-warn-only", action="store_true", default=False,
                    help="report a missed @pytest.mark.slo as a warning instead of failing")
    group.addoption("--faas-slo-report", metavar="PATH", default=None,
                    help="write the measurements of every slo-marked test as a pytest-benchmark "
                         "JSON run (input for `faas-sdk baseline save` and `faas-sdk compare`)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slo(p95_ms=None, p99_ms=None, error_rate=None, min_throughput=None): fail the test when "
        "its measurements (the slo_recorder fixture, a LoadReport-like dict it returns or "
        "attaches, or load_tester runs) miss these objectives. error_rate is the maximum "
        "fraction of failures; min_throughput is in successful requests per second.")
    if config.getoption("faas_pool_size") < 0:
        raise pytest.UsageError(f"--faas-pool-size must be >= 0, got {config.getoption('faas_pool_size')}")
    if config.getoption("faas_slo_rounds") < 1:
        raise pytest.UsageError(f"--faas-slo-rounds must be >= 1, got {config.getoption('faas_slo_rounds')}")
    timeout = config.getoption("faas_timeout")
    if timeout is not None and not (timeout > 0 and math.isfinite(timeout)):
        raise pytest.UsageError(f"--faas-timeout must be a positive number of seconds, got {timeout}")


def _slo_marker(item: pytest.Item) -> Optional[pytest.Mark]:
    return item.get_closest_marker("slo")


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = _slo_marker(item)
    if marker is None:
        return
    if marker.args:
        pytest.fail(f"@pytest.mark.slo takes keyword arguments only ({', '.join(SLO_KEYWORDS)})",
                    pytrace=False)
    unknown = sorted(set(marker.kwargs) - set(SLO_KEYWORDS))
    if unknown:
        pytest.fail(f"unknown @pytest.mark.slo argument(s) {', '.join(unknown)}; expected "
                    f"{', '.join(SLO_KEYWORDS)}", pytrace=False)
    if not any(marker.kwargs.get(k) is not None for k in SLO_KEYWORDS):
        pytest.fail(f"@pytest.mark.slo needs at least one of {', '.join(SLO_KEYWORDS)}",
                    pytrace=False)
    try:
        _slo_of(marker)
    except (TypeError, ValueError) as exc:
        pytest.fail(f"@pytest.mark.slo: {exc}", pytrace=False)


def _slo_of(marker: pytest.Mark) -> Any:
    from faas_sdk.perf.regression import SLO

    kw = marker.kwargs
    return SLO(p95_ms=kw.get("p95_ms"), p99_ms=kw.get("p99_ms"),
               max_error_rate=kw.get("error_rate"), min_throughput=kw.get("min_throughput"))


# ---- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def platform(pytestconfig: pytest.Config) -> Iterator[Any]:
    """One ExecutionPlatform for the whole session (--faas-python, --faas-pool-size,
    --faas-timeout), closed at the end of the session. Session-scoped because a platform is
    a handle on the one engine of the process: sharing it costs nothing and keeps the warm
    pool warm across tests. Do not close it in a test; make your own ExecutionPlatform (or
    override this fixture) when a test needs one it can close."""
    from faas_sdk import ExecutionPlatform

    p = ExecutionPlatform(python=pytestconfig.getoption("faas_python"),
                          warm_pool_size=pytestconfig.getoption("faas_pool_size"),
                          default_timeout=pytestconfig.getoption("faas_timeout"))
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def sandbox_factory(request: pytest.FixtureRequest, platform: Any) -> Iterator[Callable[..., Any]]:
    """``make(**options)`` creates a sandbox with ``platform.create_sandbox(**options)``; every
    sandbox it made is closed after the test. A failed test's report lists them (id, pid,
    alive or why dead, workdir) in a "faas_sdk sandboxes" section."""
    made: list = []
    registry = request.node.stash.setdefault(_SANDBOXES, [])

    def make(**options: Any) -> Any:
        sb = platform.create_sandbox(**options)
        made.append(sb)
        registry.append(sb)
        return sb

    yield make
    errors = []
    for sb in reversed(made):
        try:
            sb.close()
        except Exception as exc:  # close the others anyway
            errors.append(f"{sb.id}: {type(exc).__name__}: {exc}")
    if errors:
        raise RuntimeError("closing sandboxes failed: " + "; ".join(errors))


@pytest.fixture
def sandbox(sandbox_factory: Callable[..., Any]) -> Any:
    """A fresh sandbox with default options from the platform fixture, closed after the test."""
    return sandbox_factory()


@pytest.fixture
def load_tester(request: pytest.FixtureRequest, platform: Any) -> Callable[..., Any]:
    """``make(target, pattern=None, **options)`` returns a configured LoadTester.

    `target` is code (each request is ``platform.execute(code)``) or a callable (each request
    calls it). `options` go to LoadTester; the progress bar is off unless asked for. The
    reports of its ``run()`` are checked against the test's @pytest.mark.slo. Skips the test
    when faas_sdk.perf.load is not part of this build.
    """
    try:
        load = importlib.import_module("faas_sdk.perf.load")
    except ImportError as exc:
        if getattr(exc, "name", None) in ("faas_sdk.perf.load", "faas_sdk.perf"):
            pytest.skip("load_tester needs faas_sdk.perf.load, which this build of faas_sdk "
                        "does not have")
        raise
    tester_cls = load.LoadTester
    reports = request.node.stash.setdefault(_REPORTS, [])

    def make(target: Any, pattern: Any = None, **options: Any) -> Any:
        if "progress" not in options and "progress" in inspect.signature(tester_cls).parameters:
            options["progress"] = False
        if isinstance(target, str):
            tester = tester_cls.for_execute(platform, target, pattern, **options)
        elif callable(target):
            tester = tester_cls(target, pattern, **options)
        else:
            raise TypeError(f"load_tester target must be code (str) or a callable, "
                            f"not {type(target).__name__}")
        run = tester.run

        @functools.wraps(run)
        def run_and_keep(*args: Any, **kwargs: Any) -> Any:
            report = run(*args, **kwargs)
            reports.append(report)
            return report

        tester.run = run_and_keep
        return tester

    return make


class SLORecorder:
    """Measurements of one test, checked against its @pytest.mark.slo after the call.

    Latencies are seconds of *successful* requests; a failed request counts only in the error
    rate. Throughput is successful requests per second of wall-clock time from the start of
    the first measurement to the end of the last.
    """

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self.latencies: list[float] = []
        self.errors = 0
        self.reports: list = []
        self._first_start: Optional[float] = None
        self._last_end: Optional[float] = None

    def _span(self, start: float, end: float) -> None:
        self._first_start = start if self._first_start is None else min(self._first_start, start)
        self._last_end = end if self._last_end is None else max(self._last_end, end)

    def record(self, latency_seconds: float, ok: bool = True) -> None:
        """One request that took `latency_seconds` (just finished) and succeeded or not."""
        latency = float(latency_seconds)
        if not (latency >= 0 and math.isfinite(latency)):
            raise ValueError(f"latency must be finite, non-negative seconds, got {latency_seconds!r}")
        now = time.perf_counter()
        self._span(now - latency, now)
        if ok:
            self.latencies.append(latency)
        else:
            self.errors += 1

    def error(self) -> None:
        """One failed request."""
        now = time.perf_counter()
        self._span(now, now)
        self.errors += 1

    def measure(self, func: Callable[..., Any], *args: Any, rounds: Optional[int] = None,
                **kwargs: Any) -> list:
        """Calls ``func(*args, **kwargs)`` `rounds` times (default --faas-slo-rounds), timing
        each call. A call fails if it raises an Exception or returns an object whose
        ``success`` is false (an ExecutionResult). Returns the results (None for a raise)."""
        results = []
        for _ in range(self.rounds if rounds is None else rounds):
            start = time.perf_counter()
            try:
                result = func(*args, **kwargs)
            except Exception:
                end = time.perf_counter()
                self._span(start, end)
                self.errors += 1
                results.append(None)
                continue
            end = time.perf_counter()
            self._span(start, end)
            if getattr(result, "success", True):
                self.latencies.append(end - start)
            else:
                self.errors += 1
            results.append(result)
        return results

    def attach(self, report: Any) -> None:
        """A LoadReport (or a dict / JSON of one) to check against the SLO as well."""
        self.reports.append(report)

    @property
    def count(self) -> int:
        return len(self.latencies) + self.errors

    def benchmark(self, name: str) -> dict:
        """These measurements as a pytest-benchmark entry (see faas_sdk.perf.regression)."""
        from faas_sdk.perf.regression import benchmark_from_samples, normalize_benchmark

        duration = None
        if self._first_start is not None and self._last_end is not None:
            duration = self._last_end - self._first_start
        if self.latencies:
            return benchmark_from_samples(name, self.latencies, self.errors,
                                          duration if duration and duration > 0 else None)
        stats = {"rounds": 0, "errors": self.errors, "error_rate": 1.0 if self.errors else 0.0,
                 "throughput": 0.0}
        return normalize_benchmark({"name": name, "fullname": name, "stats": stats})


@pytest.fixture
def slo_recorder(request: pytest.FixtureRequest) -> SLORecorder:
    """Where a test records its measurements for @pytest.mark.slo: ``record(latency, ok=True)``,
    ``error()``, ``measure(func, *args)``, ``attach(load_report)``."""
    recorder = SLORecorder(request.config.getoption("faas_slo_rounds"))
    request.node.stash[_RECORDER] = recorder
    return recorder


# ---- the SLO check -------------------------------------------------------------------------


def _looks_like_report(value: Any) -> bool:
    return isinstance(value, Mapping) or callable(getattr(value, "to_dict", None)) \
        or callable(getattr(value, "to_json", None))


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Any:
    """For slo-marked tests, keeps a LoadReport-like return value as a measurement."""
    original = pyfuncitem.obj
    if _slo_marker(pyfuncitem) is None or inspect.iscoroutinefunction(original):
        return (yield)

    @functools.wraps(original)
    def keep_report(*args: Any, **kwargs: Any) -> Any:
        value = original(*args, **kwargs)
        if value is not None and _looks_like_report(value):
            pyfuncitem.stash.setdefault(_REPORTS, []).append(value)
            return None  # consumed: pytest would warn about a test returning a value
        return value

    pyfuncitem.obj = keep_report
    try:
        return (yield)
    finally:
        pyfuncitem.obj = original


def _slo_problems(item: pytest.Item, marker: pytest.Mark) -> tuple[list[str], list[dict]]:
    from faas_sdk.perf.regression import benchmark_from_report, check_slo

    slo = _slo_of(marker)
    benches = []
    recorder = item.stash.get(_RECORDER, None)
    name = item.name
    if recorder is not None and recorder.count:
        benches.append(recorder.benchmark(name))
    reports = list(item.stash.get(_REPORTS, [])) + (recorder.reports if recorder is not None else [])
    for i, report in enumerate(reports):
        label = name if not benches and len(reports) == 1 else f"{name}[report {i + 1}]"
        benches.append(benchmark_from_report(label, report))
    if not benches:
        return [f"{item.nodeid} is marked slo but recorded no measurements: use the slo_recorder "
                "fixture (record/measure/attach), return a LoadReport, or run a load_tester"], []
    problems = []
    for bench in benches:
        for verdict in check_slo(bench, slo):
            if verdict.status == "fail":
                problems.append(verdict.message)
            elif verdict.status == "skip":
                why = ("every measurement failed" if bench["stats"].get("rounds") == 0
                       and bench["stats"].get("errors") else "it was not measured")
                problems.append(f"{bench['name']} {verdict.metric.replace('_', ' ')} cannot be "
                                f"checked against its SLO: {why}")
    return problems, benches


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    result = yield  # raises if the test itself failed: then its own failure is what counts
    marker = _slo_marker(item)
    if marker is None:
        return result
    problems, benches = _slo_problems(item, marker)
    for bench in benches:
        bench["fullname"] = item.nodeid if len(benches) == 1 else f"{item.nodeid}::{bench['name']}"
        bench.setdefault("extra_info", {})["slo"] = {k: v for k, v in marker.kwargs.items() if v is not None}
    item.config.stash.setdefault(_SLO_RUN, []).extend(benches)
    if problems:
        message = "SLO missed: " + "; ".join(problems)
        if item.config.getoption("faas_slo_warn_only"):
            warnings.warn(pytest.PytestWarning(message))
        else:
            pytest.fail(message, pytrace=False)
    return result


# ---- reporting -----------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    report = yield
    sandboxes = item.stash.get(_SANDBOXES, None)
    if report.failed and sandboxes:
        lines = []
        for sb in sandboxes:
            try:
                state = "alive" if sb.alive else f"dead: {sb.death_reason}"
                lines.append(f"{sb.id} pid={sb.pid} {state} workdir={sb.workdir}")
            except Exception as exc:  # a report must not fail because a handle is odd
                lines.append(f"{getattr(sb, 'id', '?')} ({type(exc).__name__}: {exc})")
        report.sections.append(("faas_sdk sandboxes", "\n".join(lines)))
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("faas_slo_report")
    if not path:
        return
    from faas_sdk.perf.regression import make_run

    run = make_run(session.config.stash.get(_SLO_RUN, []))
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(run, f, indent=4)
        f.write("\n")
