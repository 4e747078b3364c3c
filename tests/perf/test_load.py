"""The load tester: histogram accuracy, arrival patterns, open vs closed loop (coordinated
omission), error accounting, reports, resource monitor, progress bar, the real platform and the
`faas-sdk load` command. Timing tests use a sleep-based fake server with a known service time."""

from __future__ import annotations

import io
import json
import math
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from faas_sdk.perf.histogram import RELATIVE_ERROR, Histogram
from faas_sdk.perf.load import (
    CONSTANT,
    RAMP_UP,
    SPIKE,
    STEP,
    LoadPattern,
    LoadReport,
    LoadTester,
    PlotUnavailable,
)
from faas_sdk.perf.monitor import HOST, SANDBOXES, ResourceMonitor
from faas_sdk.perf.progress import Progress


class Ok:
    success = True
    error = None


class _Err:
    def __init__(self, type_: str) -> None:
        self.type = type_


class Failed:
    success = False

    def __init__(self, type_: str) -> None:
        self.error = _Err(type_)


class StallingServer:
    """Serves any number of requests at once, each in `service` seconds, except for one
    stop-the-world pause: a request arriving during [stall_at, stall_at + stall_for) seconds
    after the first request waits for the pause to end (like a GC pause or a frozen VM)."""

    def __init__(self, service: float = 0.010, stall_at: float = 1.0, stall_for: float = 1.0) -> None:
        self.service, self.stall_at, self.stall_for = service, stall_at, stall_for
        self._t0 = None
        self._lock = threading.Lock()

    def __call__(self) -> Ok:
        now = time.perf_counter()
        with self._lock:
            if self._t0 is None:
                self._t0 = now
        begin = self._t0 + self.stall_at
        end = begin + self.stall_for
        if begin <= now < end:
            time.sleep(end - now)
        time.sleep(self.service)
        return Ok()


def nearest_rank(sorted_values: list[float], p: float) -> float:
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values) - 1e-9))
    return sorted_values[rank - 1]


# ---- histogram ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dist", ["lognormal", "uniform", "bimodal"])
def test_histogram_percentiles_match_exact_percentiles_within_the_documented_error(dist):
    rng = random.Random(1234)
    if dist == "lognormal":
        values = [rng.lognormvariate(math.log(2e-3), 1.5) for _ in range(50_000)]
    elif dist == "uniform":
        values = [rng.uniform(1e-5, 0.5) for _ in range(50_000)]
    else:
        values = [rng.gauss(1e-3, 1e-4) if rng.random() < 0.97 else rng.uniform(0.5, 2.0)
                  for _ in range(50_000)]
        values = [abs(v) for v in values]
    h = Histogram(values)
    exact = sorted(values)
    for p in (1, 10, 50, 90, 95, 99, 99.9, 99.99):
        want = nearest_rank(exact, p)
        got = h.percentile(p)
        # Never below the exact value, at most one bucket width (2**(1/16) - 1) above it.
        assert want <= got <= want * (1 + RELATIVE_ERROR) + 1e-12, (p, want, got)
    assert h.percentile(100) == max(values) and h.max == max(values)
    assert h.percentile(0) == min(values)
    assert h.count == len(values)
    assert h.mean == pytest.approx(sum(values) / len(values), rel=1e-9)


def test_histogram_merge_equals_one_histogram_of_everything_and_round_trips_as_dict():
    rng = random.Random(7)
    a_vals = [rng.expovariate(100.0) for _ in range(3000)]
    b_vals = [rng.expovariate(10.0) for _ in range(2000)]
    merged = Histogram(a_vals).merge(Histogram(b_vals))
    whole = Histogram(a_vals + b_vals)
    assert merged.buckets() == whole.buckets()
    assert (merged.min, merged.max, merged.count) == (whole.min, whole.max, whole.count)
    assert merged.mean == pytest.approx(whole.mean, rel=1e-12)
    assert merged.count == 5000
    assert Histogram.from_dict(json.loads(json.dumps(merged.to_dict()))) == merged
    for p in (50, 99, 99.9):
        assert merged.percentile(p) == Histogram(a_vals + b_vals).percentile(p)


def test_histogram_rejects_what_is_not_a_latency_and_is_nan_when_empty():
    h = Histogram()
    for bad in (-1e-3, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            h.record(bad)
    assert math.isnan(h.percentile(50)) and math.isnan(h.mean)
    assert h.summary()["p99"] is None
    h.record(0.0)
    h.record(1e6)  # far beyond the last bucket: still counted, max exact
    assert h.count == 2 and h.max == 1e6 and h.percentile(100) == 1e6


# ---- patterns ----------------------------------------------------------------------------------

PATTERNS = {
    "constant": CONSTANT(40, 2.0),
    "ramp": RAMP_UP(10, 110, 2.0),
    "spike": SPIKE(20, 120, spike_start=1.0, spike_duration=0.5, duration=2.0),
    "step": STEP([20, 60, 100], step_duration=0.75),
}


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_arrival_schedule_realises_the_rate_curve(name):
    pattern = PATTERNS[name]
    times = pattern.arrivals()
    assert times == sorted(times) and times[0] >= 0 and times[-1] < pattern.duration
    assert len(times) == pattern.total_requests
    width = 0.25
    for i in range(int(round(pattern.duration / width))):
        lo, hi = i * width, (i + 1) * width
        sent = sum(lo <= t < hi for t in times)
        assert abs(sent - pattern.expected_requests(lo, hi)) <= 1.0, (name, lo, sent)


def test_rate_at_follows_each_pattern_definition():
    assert CONSTANT(40, 2).rate_at(1.3) == 40 and CONSTANT(40, 2).rate_at(2.0) == 0
    ramp = RAMP_UP(10, 110, 2.0)
    assert ramp.rate_at(0) == 10 and ramp.rate_at(1.0) == pytest.approx(60)
    spike = PATTERNS["spike"]
    assert [spike.rate_at(t) for t in (0.5, 1.0, 1.49, 1.5, 1.9)] == [20, 120, 120, 20, 20]
    step = PATTERNS["step"]
    assert [step.rate_at(t) for t in (0.1, 0.8, 2.2)] == [20, 60, 100]
    assert step.duration == pytest.approx(2.25)
    with pytest.raises(ValueError):
        SPIKE(10, 100, spike_start=1.5, spike_duration=1.0, duration=2.0)
    with pytest.raises(ValueError):
        CONSTANT(-1, 1)
    assert LoadPattern.from_dict(spike.to_dict()) == spike


def test_poisson_arrivals_are_reproducible_and_keep_the_average_rate():
    pattern = CONSTANT(200, 10.0)
    a = pattern.arrivals(poisson=True, seed=3)
    assert a == pattern.arrivals(poisson=True, seed=3)
    assert a != pattern.arrivals()
    assert abs(len(a) - 2000) < 4 * math.sqrt(2000)


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_open_loop_timeline_shows_the_pattern(name):
    pattern = PATTERNS[name]
    report = LoadTester(Ok, pattern, timeline_interval=0.25, monitor=False, progress=False).run()
    assert report.completed == pattern.total_requests and report.failed == 0
    points = [p for p in report.timeline if p.t < pattern.duration - 1e-9]
    assert len(points) == round(pattern.duration / 0.25)
    for p in points:
        want = pattern.expected_requests(p.t, p.t + 0.25)
        assert abs(p.completed - want) <= max(3.0, 0.3 * want), (p, want)
        assert p.scheduled == pytest.approx(want, abs=1)
    rate = {round(p.t, 2): p.throughput for p in points}

    def mean(ts):
        return sum(rate[t] for t in ts) / len(ts)

    if name == "constant":
        assert max(rate.values()) - min(rate.values()) <= 0.6 * 40
    elif name == "ramp":
        quarters = [mean([0.0, 0.25]), mean([0.5, 0.75]), mean([1.0, 1.25]), mean([1.5, 1.75])]
        assert quarters == sorted(quarters) and quarters[3] > 2.5 * quarters[0]
    elif name == "spike":
        assert mean([1.0, 1.25]) > 4 * mean([0.0, 0.25, 0.5, 0.75, 1.5, 1.75])
    elif name == "step":
        steps = [mean([0.0, 0.25, 0.5]), mean([0.75, 1.0, 1.25]), mean([1.5, 1.75, 2.0])]
        assert steps == sorted(steps)
        for got, want in zip(steps, [20, 60, 100]):
            assert got == pytest.approx(want, rel=0.25)
    assert report.target_throughput == pytest.approx(pattern.total_requests / pattern.duration)


# ---- open vs closed loop -----------------------------------------------------------------------

def test_open_loop_reaches_the_target_rate_with_the_known_service_time():
    report = LoadTester(StallingServer(service=0.010, stall_at=1e9), CONSTANT(100, 2.0),
                        monitor=False, progress=False).run()
    assert report.completed == 200 and report.error_rate == 0
    assert report.achieved_throughput == pytest.approx(100, rel=0.1)
    svc = report.service_time
    assert 0.010 <= svc.percentile(50) <= 0.025
    # Latency = send delay + service: on time, the two nearly coincide at the median.
    assert report.latency.percentile(50) >= svc.percentile(50) * 0.99
    assert report.latency.percentile(50) - svc.percentile(50) < 0.005


def test_open_loop_p99_shows_a_stall_that_the_closed_loop_hides():
    """Coordinated omission: during a 1 s stall the open loop keeps sending (100 requests wait
    up to 1 s each), while a closed-loop caller just waits, so only its one request is slow."""
    open_report = LoadTester(StallingServer(), CONSTANT(100, 3.0), monitor=False,
                             progress=False).run()
    closed_report = LoadTester(StallingServer(), concurrency=1, duration=3.0, monitor=False,
                               progress=False).run()
    open_p99 = open_report.latency.percentile(99)
    closed_p99 = closed_report.latency.percentile(99)
    assert open_report.completed == 300
    assert open_p99 >= 0.5, open_report.summary_text()
    assert open_report.latency.percentile(90) >= 0.2  # a third of the requests met the stall
    assert closed_report.latency.max >= 0.9  # the stall happened in the closed loop too...
    assert closed_p99 < 0.1, closed_report.summary_text()  # ...but its percentiles hide it
    assert open_p99 - closed_p99 > 0.4
    # The closed loop simply did not send during the stall: the omitted measurements.
    assert closed_report.sent < 0.8 * open_report.sent


def test_latency_runs_from_the_scheduled_send_time_when_sender_threads_run_out():
    """With one sender thread, requests scheduled during a stall are sent late: their service
    time is short but their latency includes the wait (no coordinated omission in the tester)."""
    report = LoadTester(StallingServer(), CONSTANT(50, 3.0), max_workers=1, monitor=False,
                        progress=False).run()
    assert report.completed == 150 and report.workers_started == 1 and report.saturated > 0
    assert report.latency.percentile(99) >= 0.5
    assert report.send_delay.percentile(99) >= 0.5
    assert report.service_time.percentile(99) < 0.2  # only one request was in the stall
    assert report.service_time.max >= 0.9


def test_executor_gets_the_request_index_when_it_takes_one():
    seen = []

    def executor(i):
        seen.append(i)
        return Ok()

    LoadTester(executor, CONSTANT(50, 0.4), monitor=False, progress=False).run()
    assert sorted(seen) == list(range(20))


# ---- errors, reports ---------------------------------------------------------------------------

def flaky(i):
    if i % 10 == 0:
        raise ValueError("boom")
    if i % 10 == 1:
        return Failed("ZeroDivisionError")
    if i % 10 == 2:
        return False
    return Ok()


def test_errors_are_counted_by_type():
    report = LoadTester(flaky, CONSTANT(100, 0.5), monitor=False, progress=False).run()
    assert report.completed == 50 and report.failed == 15 and report.succeeded == 35
    assert report.errors_by_type == {"ValueError": 5, "ZeroDivisionError": 5, "Failed": 5}
    assert report.error_rate == pytest.approx(0.3)
    assert sum(p.errors for p in report.timeline) == 15


def test_closed_loop_counts_errors_and_has_no_target():
    report = LoadTester(flaky, concurrency=2, duration=0.3, monitor=False, progress=False).run()
    assert report.mode == "closed" and report.target_throughput is None
    assert report.sent == report.completed > 30
    assert set(report.errors_by_type) == {"ValueError", "ZeroDivisionError", "Failed"}


@pytest.fixture(scope="module")
def report() -> LoadReport:
    return LoadTester(flaky, SPIKE(40, 160, 0.5, 0.25, 1.0), timeline_interval=0.25,
                      monitor_interval=0.1, progress=False).run()


def test_report_round_trips_through_json(report, tmp_path):
    path = tmp_path / "load.json"
    text = report.to_json(str(path))
    again = LoadReport.from_json(path.read_text())
    assert again == report
    assert again.to_json() == text
    data = json.loads(text)
    assert data["latency_s"]["p99"] == report.latency.percentile(99)
    assert data["requests"]["completed"] == report.completed
    assert data["errors_by_type"] == report.errors_by_type
    assert HOST in data["resources"]["summary"]


def test_report_timeline_round_trips_through_csv(report, tmp_path):
    path = tmp_path / "timeline.csv"
    text = report.to_csv(str(path))
    assert text.splitlines()[0].startswith("t,scheduled,target_rate,completed,errors,throughput")
    assert LoadReport.timeline_from_csv(path.read_text()) == report.timeline


def test_plot_writes_a_png(report, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "load.png"
    report.plot(str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_says_how_to_install_it(report, tmp_path, monkeypatch):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes the import fail
    with pytest.raises(PlotUnavailable, match=r"pip install 'faas_sdk\[plot\]'"):
        report.plot(str(tmp_path / "x.png"))


# ---- resource monitor, progress ----------------------------------------------------------------

BURN = """
import subprocess, sys, time
# Short-lived grandchildren, each burning ~60 ms of CPU and reaped by this process.
for _ in range(8):
    subprocess.run([sys.executable, "-S", "-c",
                    "import time\\nt = time.process_time()\\nwhile time.process_time() - t < 0.06: pass"])
time.sleep(0.6)  # seen alive by a sample after the last grandchild was reaped
"""


def test_resource_monitor_counts_descendants_including_short_lived_ones():
    with ResourceMonitor(interval=0.25) as monitor:
        subprocess.run([sys.executable, "-S", "-c", BURN], check=True)
    summary = monitor.summary()
    assert set(summary) == {HOST, SANDBOXES}
    # 8 x 60 ms of busy loop, mostly in processes that lived between two samples.
    assert summary[SANDBOXES]["cpu_seconds"] >= 0.4
    # This process reaped the child at the end: its total is not counted a second time here.
    assert summary[HOST]["cpu_seconds"] < 0.3
    assert summary[HOST]["processes"]["max"] == 1
    assert summary[HOST]["rss_bytes"]["max"] > 10 << 20
    assert summary[HOST]["threads"]["max"] >= 2  # this thread and the monitor's
    assert summary[HOST]["fds"]["max"] > 0


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_with_carriage_returns_on_a_tty_and_nothing_elsewhere():
    tty = FakeTTY()
    with Progress("load", stream=tty, min_interval=0) as bar:
        bar.update(0.5, "50 done")
        bar.update(1.0, "100 done")
    out = tty.getvalue()
    assert out.count("\r") == 3 and out.endswith("\n")
    assert "[############............]  50.0%  50 done" in out
    pipe = io.StringIO()
    with Progress("load", stream=pipe, min_interval=0) as bar:
        bar.update(0.5, "50 done")
    assert pipe.getvalue() == "" and not bar.active
    with Progress("load", stream=FakeTTY(), enabled=False) as bar:
        assert not bar.active


def test_progress_updates_one_display_in_a_jupyter_kernel(monkeypatch):
    import types

    class ZMQInteractiveShell:  # what get_ipython() returns inside a Jupyter kernel
        pass

    shown = []

    class Handle:
        def update(self, obj):
            shown.append(("update", obj.data))

    def display(obj, display_id=False):
        assert display_id is True
        shown.append(("display", obj.data))
        return Handle()

    ipython = types.ModuleType("IPython")
    ipython.get_ipython = ZMQInteractiveShell
    ipython_display = types.ModuleType("IPython.display")
    ipython_display.display = display
    ipython_display.HTML = lambda html: types.SimpleNamespace(data=html)
    ipython.display = ipython_display
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", ipython_display)
    stderr = FakeTTY()
    with Progress("load", stream=stderr, min_interval=0) as bar:
        assert bar.mode == "notebook"
        bar.update(0.25, "<b>25 done</b>")
        bar.update(1.0, "100 done")
    assert [kind for kind, _ in shown] == ["display", "update", "update"]
    assert "<progress value='0.2500'" in shown[0][1] and "&lt;b&gt;25 done" in shown[0][1]
    assert stderr.getvalue() == ""  # nothing on the terminal meanwhile


# ---- the real platform -------------------------------------------------------------------------

def test_load_against_a_real_platform_has_no_errors(platform):
    tester = LoadTester.for_execute(platform, "1", CONSTANT(50, 1.0), warmup=3,
                                    monitor_interval=0.1, progress=False)
    report = tester.run()
    assert report.completed == 50 and report.error_rate == 0, report.summary_text()
    assert report.executor == "platform.execute('1')"
    assert report.latency.percentile(50) < 0.5
    assert report.resources[SANDBOXES]["processes"]["max"] >= 2  # broker and zygote at least


def test_closed_loop_on_a_pool_of_real_sandboxes(platform):
    tester = LoadTester.for_sandbox(platform, "x += 1", pool_size=2, setup="x = 0",
                                    concurrency=2, duration=0.5, monitor=False, progress=False)
    report = tester.run()
    assert report.completed > 20 and report.error_rate == 0, report.summary_text()
    assert platform.sandboxes == []  # the executor closed the sandboxes it made


def test_cli_load_runs_and_writes_json(tmp_path):
    exe = Path(sys.executable).parent / "faas-sdk"
    out = tmp_path / "out.json"
    proc = subprocess.run([str(exe), "load", "--pattern", "constant", "--rate", "20",
                           "--duration", "1", "--code", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "latency" in proc.stdout and "throughput" in proc.stdout
    data = json.loads(out.read_text())
    assert data["requests"]["completed"] == 20 and data["error_rate"] == 0
