"""Load tester: drives an executor at a target arrival rate (open loop) or with a fixed number of
concurrent callers (closed loop) and reports latency percentiles, throughput, errors, a timeline
and resource use. What starts and stops each clock is written in docs/benchmarks.md."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import inspect
import io
import itertools
import json
import math
import queue
import random
import threading
import time
from collections import Counter
from typing import Any, Callable, Optional, Sequence

from .histogram import Histogram
from .monitor import ResourceMonitor, ResourceSample
from .progress import Progress

__all__ = [
    "CONSTANT",
    "ExecuteExecutor",
    "Executor",
    "LoadPattern",
    "LoadReport",
    "LoadTester",
    "PlotUnavailable",
    "RAMP_UP",
    "SPIKE",
    "STEP",
    "SandboxExecutor",
    "Segment",
    "TimelinePoint",
    "format_seconds",
]

REPORT_FORMAT = "faas_sdk.load/1"
DEFAULT_MAX_WORKERS = 512
HANDOFF_LEAD = 0.002  # open loop: seconds before its send time a request goes to a thread
DEFAULT_SPIN = 0.00015  # open loop: seconds a thread spins (instead of sleeping) before a send


def format_seconds(s: Optional[float]) -> str:
    """A duration for people: µs under 1 ms, ms under 1 s, else s."""
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1.0:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.3f} s"


def _fmt_num(x: float) -> str:
    return f"{x:g}"


# =============================================================================================
# Arrival patterns
# =============================================================================================

@dataclasses.dataclass(frozen=True)
class Segment:
    """The rate goes linearly from `start_rate` to `end_rate` (requests/s) over [start, end)."""

    start: float
    end: float
    start_rate: float
    end_rate: float

    def rate_at(self, t: float) -> float:
        span = self.end - self.start
        return self.start_rate + (self.end_rate - self.start_rate) * (t - self.start) / span

    def requests(self) -> float:
        """Expected requests in the segment: the integral of the rate."""
        return (self.start_rate + self.end_rate) / 2.0 * (self.end - self.start)

    def time_for(self, n: float) -> float:
        """The time by which the integral of the rate from `start` reaches `n` (0 <= n <=
        requests())."""
        r0 = self.start_rate
        slope = (self.end_rate - r0) / (self.end - self.start)
        if abs(slope) < 1e-12:
            tau = n / r0
        else:  # r0*tau + slope*tau^2/2 = n
            disc = max(0.0, r0 * r0 + 2.0 * slope * n)
            tau = (-r0 + math.sqrt(disc)) / slope
        return self.start + min(max(tau, 0.0), self.end - self.start)


def _check_rate(name: str, value: float) -> float:
    value = float(value)
    if not (value >= 0.0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite rate >= 0 requests/s, got {value!r}")
    return value


def _check_positive(name: str, value: float) -> float:
    value = float(value)
    if not (value > 0.0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")
    return value


class LoadPattern:
    """A target arrival rate over time, made of linear segments.

    Make one with ``LoadPattern.constant``, ``.ramp_up``, ``.spike`` or ``.step`` (also available
    as ``CONSTANT``, ``RAMP_UP``, ``SPIKE``, ``STEP``). ``rate_at(t)`` is the target rate at `t`
    seconds after the start; ``arrivals()`` the send times that realise it.
    """

    def __init__(self, kind: str, params: dict[str, Any], segments: Sequence[Segment]) -> None:
        if not segments:
            raise ValueError("a pattern needs at least one segment")
        self.kind = kind
        self.params = dict(params)
        self.segments = tuple(segments)
        self.duration = self.segments[-1].end

    # ---- constructors ------------------------------------------------------------------------

    @classmethod
    def constant(cls, rate: float, duration: float) -> "LoadPattern":
        """`rate` requests/s for `duration` seconds."""
        rate = _check_rate("rate", rate)
        duration = _check_positive("duration", duration)
        return cls("constant", {"rate": rate, "duration": duration},
                   [Segment(0.0, duration, rate, rate)])

    @classmethod
    def ramp_up(cls, start_rate: float, end_rate: float, duration: float) -> "LoadPattern":
        """A rate growing linearly from `start_rate` to `end_rate` over `duration` seconds."""
        start_rate = _check_rate("start_rate", start_rate)
        end_rate = _check_rate("end_rate", end_rate)
        duration = _check_positive("duration", duration)
        params = {"start_rate": start_rate, "end_rate": end_rate, "duration": duration}
        return cls("ramp_up", params, [Segment(0.0, duration, start_rate, end_rate)])

    @classmethod
    def spike(cls, base_rate: float, spike_rate: float, spike_start: float, spike_duration: float,
              duration: float) -> "LoadPattern":
        """`base_rate`, except `spike_rate` during [spike_start, spike_start + spike_duration)."""
        base_rate = _check_rate("base_rate", base_rate)
        spike_rate = _check_rate("spike_rate", spike_rate)
        duration = _check_positive("duration", duration)
        spike_duration = _check_positive("spike_duration", spike_duration)
        spike_start = float(spike_start)
        spike_end = spike_start + spike_duration
        if not 0.0 <= spike_start or spike_end > duration + 1e-9:
            raise ValueError(f"the spike [{spike_start:g}, {spike_end:g}) s must lie within the "
                             f"duration [0, {duration:g}) s")
        spike_end = min(spike_end, duration)
        segments = []
        if spike_start > 0:
            segments.append(Segment(0.0, spike_start, base_rate, base_rate))
        segments.append(Segment(spike_start, spike_end, spike_rate, spike_rate))
        if spike_end < duration:
            segments.append(Segment(spike_end, duration, base_rate, base_rate))
        return cls("spike", {"base_rate": base_rate, "spike_rate": spike_rate,
                             "spike_start": spike_start, "spike_duration": spike_duration,
                             "duration": duration}, segments)

    @classmethod
    def step(cls, rates: Sequence[float], step_duration: float) -> "LoadPattern":
        """Each rate of `rates` in turn, for `step_duration` seconds each."""
        rates = [_check_rate("each rate", r) for r in rates]
        if not rates:
            raise ValueError("step needs at least one rate")
        step_duration = _check_positive("step_duration", step_duration)
        segments = [Segment(i * step_duration, (i + 1) * step_duration, r, r)
                    for i, r in enumerate(rates)]
        return cls("step", {"rates": rates, "step_duration": step_duration}, segments)

    # ---- queries -----------------------------------------------------------------------------

    def rate_at(self, t: float) -> float:
        """Target requests/s at `t` seconds from the start (0 outside [0, duration))."""
        if t < 0.0 or t >= self.duration:
            return 0.0
        for seg in self.segments:
            if t < seg.end:
                return seg.rate_at(t)
        return 0.0  # not reached

    def expected_requests(self, start: float = 0.0, end: Optional[float] = None) -> float:
        """The integral of the rate over [start, end): requests the pattern asks for."""
        end = self.duration if end is None else end
        total = 0.0
        for seg in self.segments:
            lo, hi = max(start, seg.start), min(end, seg.end)
            if hi > lo:
                total += (seg.rate_at(lo) + seg.rate_at(hi)) / 2.0 * (hi - lo)
        return total

    @property
    def total_requests(self) -> int:
        """Requests in the evenly spaced schedule: every n with n < expected_requests()."""
        return max(0, math.ceil(self.expected_requests() - 1e-9))

    def arrivals(self, poisson: bool = False, seed: Optional[int] = None) -> list[float]:
        """Send times in seconds from the start, increasing.

        Evenly spaced (default): request n is sent when the integral of the rate reaches n, so
        a constant 100/s sends at 0, 0.01, 0.02, ... With ``poisson=True`` the gaps in that
        integral are exponential (a non-homogeneous Poisson process, reproducible with `seed`).
        """
        total = self.expected_requests()
        rng = random.Random(seed) if poisson else None
        out: list[float] = []
        seg_iter = iter(self.segments)
        seg = next(seg_iter)
        seg_base = 0.0  # integral of the rate at seg.start
        n = 0.0 if rng is None else rng.expovariate(1.0)
        while n < total - 1e-9:
            while n > seg_base + seg.requests() and seg is not self.segments[-1]:
                seg_base += seg.requests()
                seg = next(seg_iter)
            out.append(seg.time_for(n - seg_base))
            n = n + 1.0 if rng is None else n + rng.expovariate(1.0)
        return out

    def describe(self) -> str:
        p = self.params
        if self.kind == "constant":
            return f"constant {_fmt_num(p['rate'])}/s for {_fmt_num(p['duration'])} s"
        if self.kind == "ramp_up":
            return (f"ramp {_fmt_num(p['start_rate'])}/s -> {_fmt_num(p['end_rate'])}/s over "
                    f"{_fmt_num(p['duration'])} s")
        if self.kind == "spike":
            return (f"spike {_fmt_num(p['base_rate'])}/s, {_fmt_num(p['spike_rate'])}/s from "
                    f"{_fmt_num(p['spike_start'])} s for {_fmt_num(p['spike_duration'])} s, "
                    f"{_fmt_num(p['duration'])} s in all")
        if self.kind == "step":
            rates = ", ".join(_fmt_num(r) for r in p["rates"])
            return f"steps {rates}/s, {_fmt_num(p['step_duration'])} s each"
        return f"{self.kind} for {_fmt_num(self.duration)} s"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.params}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LoadPattern":
        params = dict(data)
        kind = params.pop("kind")
        makers = {"constant": cls.constant, "ramp_up": cls.ramp_up, "spike": cls.spike,
                  "step": cls.step}
        if kind not in makers:
            raise ValueError(f"unknown pattern kind {kind!r}")
        return makers[kind](**params)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LoadPattern):
            return NotImplemented
        return self.kind == other.kind and self.params == other.params

    def __repr__(self) -> str:
        return f"LoadPattern({self.describe()})"


CONSTANT = LoadPattern.constant
RAMP_UP = LoadPattern.ramp_up
SPIKE = LoadPattern.spike
STEP = LoadPattern.step


# =============================================================================================
# Executors for faas_sdk
# =============================================================================================

class Executor:
    """A callable the tester drives, with hooks the tester calls around each run: ``prepare()``
    before the clock starts (and before warm-up), ``close()`` after the run."""

    def prepare(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __call__(self) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        return type(self).__name__


def _short(code: str, limit: int = 40) -> str:
    text = code if len(code) <= limit else code[: limit - 3] + "..."
    return repr(text)


class ExecuteExecutor(Executor):
    """Each request is ``platform.execute(code)``: a fresh sandbox from the warm pool."""

    def __init__(self, platform: Any, code: str, *, timeout: Optional[float] = None) -> None:
        self.platform = platform
        self.code = code
        self.timeout = timeout

    def __call__(self) -> Any:
        return self.platform.execute(self.code, timeout=self.timeout)

    def describe(self) -> str:
        return f"platform.execute({_short(self.code)})"


class SandboxExecutor(Executor):
    """Each request is ``sandbox.run(code)`` on a sandbox taken from a pool.

    target     a Sandbox (every request runs in it, one at a time), a list of sandboxes, or an
               ExecutionPlatform: then `pool_size` sandboxes are created in ``prepare()`` (off
               the clock), `setup` code is run in each, and they are closed in ``close()``
    A request waits for a free sandbox; that wait is part of its service time. A sandbox this
    executor created that dies (a timeout kills it) is replaced by a new one during the request
    that found it dead.
    """

    def __init__(self, target: Any, code: str, *, pool_size: int = 1, setup: Optional[str] = None,
                 timeout: Optional[float] = None) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be >= 1")
        self.code = code
        self.setup = setup
        self.timeout = timeout
        self.pool_size = pool_size
        self._platform: Any = None
        self._given: list[Any] = []
        if isinstance(target, (list, tuple)):
            self._given = list(target)
        elif hasattr(target, "create_sandbox"):
            self._platform = target
        elif hasattr(target, "run"):
            self._given = [target]
        else:
            raise TypeError("target must be a Sandbox, a list of sandboxes or an ExecutionPlatform")
        self._owned: list[Any] = []
        self._pool: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._lock = threading.Lock()

    def _new_sandbox(self) -> Any:
        sb = self._platform.create_sandbox()
        with self._lock:
            self._owned.append(sb)
        if self.setup:
            r = sb.run(self.setup)
            if not r.success:
                raise RuntimeError(f"the setup code failed in {sb.id}: {r.error}")
        return sb

    def prepare(self) -> None:
        self.close()
        self._pool = queue.SimpleQueue()
        if self._platform is not None:
            for _ in range(self.pool_size):
                self._pool.put(self._new_sandbox())
        else:
            for sb in self._given:
                if self.setup:
                    sb.run(self.setup)
                self._pool.put(sb)

    def __call__(self) -> Any:
        sb = self._pool.get()
        try:
            if not sb.alive and self._platform is not None:
                sb.close()
                sb = self._new_sandbox()
            return sb.run(self.code, timeout=self.timeout)
        finally:
            self._pool.put(sb)

    def close(self) -> None:
        with self._lock:
            owned, self._owned = self._owned, []
        for sb in owned:
            sb.close()

    def describe(self) -> str:
        n = self.pool_size if self._platform is not None else len(self._given)
        return f"sandbox.run({_short(self.code)}) on {n} sandbox{'es' if n != 1 else ''}"


# =============================================================================================
# Results
# =============================================================================================

@dataclasses.dataclass(frozen=True)
class TimelinePoint:
    """One interval of the run, [t, t + interval) seconds from its start, by completion time.

    scheduled    requests whose scheduled send time falls in the interval (open loop; else None)
    target_rate  scheduled / interval (open loop; else None)
    completed    requests that completed in the interval (successes and errors)
    errors       of those, the ones that failed
    throughput   completed / interval
    p50, p99, max  latency of the requests completed in the interval (None if none)
    """

    t: float
    scheduled: Optional[int]
    target_rate: Optional[float]
    completed: int
    errors: int
    throughput: float
    p50: Optional[float]
    p99: Optional[float]
    max: Optional[float]


_TIMELINE_FIELDS = [f.name for f in dataclasses.fields(TimelinePoint)]


class PlotUnavailable(ImportError):
    """LoadReport.plot() needs matplotlib."""


@dataclasses.dataclass(eq=True)
class LoadReport:
    """The result of one load test. See docs/benchmarks.md, "Load tester", for every clock.

    latency       open loop: scheduled send time -> completion (queueing included);
                  closed loop: call -> return
    service_time  the executor call -> its return (the request's own work)
    send_delay    open loop: scheduled send time -> the executor call (the tester's own
                  lateness, and any wait for a free sender thread at max_workers)
    timeline      per interval of completion time; resource_samples are timed from the same
                  start (the scheduled time of the first request)
    """

    mode: str  # "open" or "closed"
    executor: str
    pattern: Optional[dict[str, Any]]
    concurrency: Optional[int]
    duration: float  # planned seconds
    elapsed: float  # start -> max(planned end, last completion)
    started_at: str  # ISO 8601, UTC
    scheduled: Optional[int]
    sent: int
    completed: int
    failed: int
    incomplete: int
    errors_by_type: dict[str, int]
    latency: Histogram
    service_time: Histogram
    send_delay: Optional[Histogram]
    timeline_interval: float
    timeline: list[TimelinePoint]
    resources: dict[str, Any]
    resource_samples: list[ResourceSample]
    max_workers: Optional[int] = None
    workers_started: int = 0
    saturated: int = 0  # open loop: sends that found every worker thread busy at max_workers

    # ---- derived figures ---------------------------------------------------------------------

    @property
    def succeeded(self) -> int:
        return self.completed - self.failed

    @property
    def error_rate(self) -> float:
        """(failed + incomplete) / sent."""
        return (self.failed + self.incomplete) / self.sent if self.sent else 0.0

    @property
    def target_throughput(self) -> Optional[float]:
        """Scheduled requests / planned duration (open loop only)."""
        return None if self.scheduled is None else self.scheduled / self.duration

    @property
    def achieved_throughput(self) -> float:
        """Completed requests / elapsed."""
        return self.completed / self.elapsed if self.elapsed > 0 else 0.0

    def percentiles(self) -> dict[str, Optional[float]]:
        """Latency ``count, mean, min, p50, p95, p99, p999, max`` in seconds."""
        return self.latency.summary()

    # ---- serialisation -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "mode": self.mode,
            "executor": self.executor,
            "pattern": self.pattern,
            "concurrency": self.concurrency,
            "started_at": self.started_at,
            "duration_s": self.duration,
            "elapsed_s": self.elapsed,
            "requests": {"scheduled": self.scheduled, "sent": self.sent,
                         "completed": self.completed, "succeeded": self.succeeded,
                         "failed": self.failed, "incomplete": self.incomplete},
            "throughput": {"target": self.target_throughput, "achieved": self.achieved_throughput},
            "error_rate": self.error_rate,
            "errors_by_type": dict(self.errors_by_type),
            "latency_s": self.latency.summary(),
            "service_time_s": self.service_time.summary(),
            "send_delay_s": None if self.send_delay is None else self.send_delay.summary(),
            "timeline_interval_s": self.timeline_interval,
            "timeline": [dataclasses.asdict(p) for p in self.timeline],
            "resources": {"summary": self.resources,
                          "samples": [dataclasses.asdict(s) for s in self.resource_samples]},
            "tester": {"max_workers": self.max_workers, "workers_started": self.workers_started,
                       "saturated": self.saturated},
            "histograms": {
                "latency": self.latency.to_dict(),
                "service_time": self.service_time.to_dict(),
                "send_delay": None if self.send_delay is None else self.send_delay.to_dict(),
            },
        }

    def to_json(self, path: Optional[str] = None, indent: int = 2) -> str:
        """The report as JSON (``from_json`` restores it); also written to `path` if given."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text + "\n")
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LoadReport":
        if data.get("format") != REPORT_FORMAT:
            raise ValueError(f"not a {REPORT_FORMAT} report (format={data.get('format')!r})")
        req = data["requests"]
        hists = data["histograms"]
        tester = data.get("tester", {})
        return cls(
            mode=data["mode"], executor=data["executor"], pattern=data["pattern"],
            concurrency=data["concurrency"], duration=data["duration_s"],
            elapsed=data["elapsed_s"], started_at=data["started_at"],
            scheduled=req["scheduled"], sent=req["sent"], completed=req["completed"],
            failed=req["failed"], incomplete=req["incomplete"],
            errors_by_type=dict(data["errors_by_type"]),
            latency=Histogram.from_dict(hists["latency"]),
            service_time=Histogram.from_dict(hists["service_time"]),
            send_delay=None if hists["send_delay"] is None
            else Histogram.from_dict(hists["send_delay"]),
            timeline_interval=data["timeline_interval_s"],
            timeline=[TimelinePoint(**p) for p in data["timeline"]],
            resources=data["resources"]["summary"],
            resource_samples=[ResourceSample(**s) for s in data["resources"]["samples"]],
            max_workers=tester.get("max_workers"), workers_started=tester.get("workers_started", 0),
            saturated=tester.get("saturated", 0),
        )

    @classmethod
    def from_json(cls, text: str) -> "LoadReport":
        return cls.from_dict(json.loads(text))

    def to_csv(self, path: Optional[str] = None) -> str:
        """The timeline as CSV, one row per interval (columns: the fields of TimelinePoint,
        seconds for latencies, empty for None); also written to `path` if given."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(_TIMELINE_FIELDS)
        for p in self.timeline:
            writer.writerow(["" if v is None else repr(v) if isinstance(v, float) else v
                             for v in dataclasses.astuple(p)])
        text = buf.getvalue()
        if path is not None:
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(text)
        return text

    @staticmethod
    def timeline_from_csv(text: str) -> list[TimelinePoint]:
        """Parses ``to_csv()`` output back into timeline points."""
        rows = list(csv.DictReader(io.StringIO(text)))
        ints = {"scheduled", "completed", "errors"}
        points = []
        for row in rows:
            values: dict[str, Any] = {}
            for name in _TIMELINE_FIELDS:
                raw = row[name]
                values[name] = None if raw == "" else int(raw) if name in ints else float(raw)
            points.append(TimelinePoint(**values))
        return points

    # ---- presentation ------------------------------------------------------------------------

    def summary_text(self) -> str:
        """A few lines for people (the CLI prints this)."""
        if self.mode == "open":
            what = LoadPattern.from_dict(self.pattern).describe() if self.pattern else "open loop"
            head = f"open loop, {what}"
        else:
            head = f"closed loop, {self.concurrency} concurrent for {self.duration:g} s"
        lines = [f"load test: {head}; {self.executor}"]
        lines.append(
            f"  requests    {self.sent} sent, {self.completed} completed, {self.failed} failed, "
            f"{self.incomplete} incomplete; error rate {self.error_rate * 100:.2f}%")
        target = self.target_throughput
        tput = f"  throughput  {self.achieved_throughput:.1f}/s achieved"
        if target is not None:
            tput += f", {target:.1f}/s target ({self.achieved_throughput / target * 100:.0f}%)" \
                if target else ", 0/s target"
        lines.append(tput + f" over {self.elapsed:.2f} s")

        def pct_line(name: str, h: Histogram) -> str:
            s = h.summary()
            return (f"  {name:<11} p50 {format_seconds(s['p50'])}  p95 {format_seconds(s['p95'])}  "
                    f"p99 {format_seconds(s['p99'])}  p99.9 {format_seconds(s['p999'])}  "
                    f"max {format_seconds(s['max'])}  mean {format_seconds(s['mean'])}")

        lines.append(pct_line("latency", self.latency))
        lines.append(pct_line("service", self.service_time))
        if self.send_delay is not None and self.send_delay.count:
            d = self.send_delay
            lines.append(f"  send delay  p50 {format_seconds(d.percentile(50))}  "
                         f"p99 {format_seconds(d.percentile(99))}  max {format_seconds(d.max)}"
                         f"  (scheduled -> call: tester lateness, in latency)")
        if self.errors_by_type:
            errs = ", ".join(f"{k} {v}" for k, v in sorted(self.errors_by_type.items(),
                                                             key=lambda kv: -kv[1]))
            lines.append(f"  errors      {errs}")
        for group, r in self.resources.items():
            lines.append(
                f"  {group:<11} cpu mean {r['cpu_percent']['mean']:.0f}% max "
                f"{r['cpu_percent']['max']:.0f}% ({r.get('cpu_seconds', 0.0):.2f} cpu-s), "
                f"rss max {r['rss_bytes']['max'] / 2**20:.1f} MiB, "
                f"processes max {r['processes']['max']}, threads max {r['threads']['max']}, "
                f"fds max {r['fds']['max']}")
        if self.saturated:
            lines.append(f"  note        {self.saturated} sends found all {self.max_workers} "
                         f"tester threads busy; their wait is counted in latency")
        return "\n".join(lines)

    def timeline_text(self) -> str:
        rows = [f"  {'t (s)':>7} {'target/s':>9} {'done/s':>8} {'errors':>6} {'p50':>10} "
                f"{'p99':>10} {'max':>10}"]
        for p in self.timeline:
            target = "-" if p.target_rate is None else f"{p.target_rate:.1f}"
            rows.append(f"  {p.t:7.2f} {target:>9} {p.throughput:8.1f} {p.errors:6d} "
                        f"{format_seconds(p.p50):>10} {format_seconds(p.p99):>10} "
                        f"{format_seconds(p.max):>10}")
        return "\n".join(rows)

    def __str__(self) -> str:
        return self.summary_text()

    def plot(self, path: str) -> str:
        """Writes a PNG: latency over time, throughput over time, the latency distribution
        (percentile spectrum) and CPU over time. Needs matplotlib (``pip install
        'faas_sdk[plot]'``); raises PlotUnavailable otherwise. Returns `path`."""
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError as exc:
            raise PlotUnavailable(
                "LoadReport.plot() needs matplotlib, which is not installed: "
                "pip install 'faas_sdk[plot]' (or: pip install matplotlib)") from exc
        fig = Figure(figsize=(12, 8), dpi=100)
        FigureCanvasAgg(fig)
        (ax_lat, ax_tput), (ax_dist, ax_cpu) = fig.subplots(2, 2)
        title = self.summary_text().splitlines()[0]
        fig.suptitle(title, fontsize=10)

        ts = [p.t + self.timeline_interval / 2 for p in self.timeline]
        for field, style in (("p50", "-"), ("p99", "-"), ("max", ":")):
            xs = [t for t, p in zip(ts, self.timeline) if getattr(p, field) is not None]
            ys = [max(getattr(p, field) * 1e3, 1e-3) for p in self.timeline
                  if getattr(p, field) is not None]
            ax_lat.plot(xs, ys, style, marker=".", label=field)
        ax_lat.set_yscale("log")
        ax_lat.set_xlabel(f"time (s), {self.timeline_interval:g} s intervals by completion")
        ax_lat.set_ylabel("latency (ms)")
        ax_lat.set_title("latency over time", fontsize=10)
        ax_lat.legend(fontsize=8)
        ax_lat.grid(True, which="both", alpha=0.3)

        ax_tput.plot(ts, [p.throughput for p in self.timeline], marker=".", label="completed/s")
        if self.mode == "open":
            ax_tput.step(ts, [p.target_rate or 0.0 for p in self.timeline], "--", where="mid",
                         label="target/s")
        ax_tput.plot(ts, [p.errors / self.timeline_interval for p in self.timeline], ":",
                     label="errors/s")
        ax_tput.set_xlabel("time (s)")
        ax_tput.set_ylabel("requests/s")
        ax_tput.set_title("throughput", fontsize=10)
        ax_tput.legend(fontsize=8)
        ax_tput.grid(True, alpha=0.3)

        # Percentile spectrum, HDR style: x = 1/(1-q) on a log axis spreads the tail out.
        for name, hist in (("latency", self.latency), ("service time", self.service_time)):
            if not hist.count:
                continue
            xs, ys, seen = [], [], 0
            for _lo, hi, c in hist.buckets():
                seen += c
                q = seen / hist.count
                xs.append(1.0 / max(1.0 - q, 0.5 / hist.count))
                ys.append(max(min(hi, hist.max) * 1e3, 1e-3))
            ax_dist.step(xs, ys, where="post", label=name)
        ax_dist.set_xscale("log")
        ax_dist.set_yscale("log")
        ticks = [1 / (1 - q) for q in (0.5, 0.9, 0.99, 0.999, 0.9999)]
        ax_dist.set_xticks(ticks)
        ax_dist.set_xticklabels(["p50", "p90", "p99", "p99.9", "p99.99"])
        ax_dist.set_ylabel("latency (ms)")
        ax_dist.set_title("latency distribution", fontsize=10)
        ax_dist.legend(fontsize=8)
        ax_dist.grid(True, which="both", alpha=0.3)

        groups = sorted({s.group for s in self.resource_samples})
        for group in groups:
            mine = [s for s in self.resource_samples if s.group == group]
            ax_cpu.plot([s.t for s in mine], [s.cpu_percent for s in mine], marker=".", label=group)
        ax_cpu.set_xlabel("time (s); each point: CPU used since the previous sample")
        ax_cpu.set_ylabel("CPU (% of one CPU)")
        ax_cpu.set_title("CPU", fontsize=10)
        if groups:
            ax_cpu.legend(fontsize=8)
        else:
            ax_cpu.text(0.5, 0.5, "no resource samples", ha="center", transform=ax_cpu.transAxes)
        ax_cpu.grid(True, alpha=0.3)
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator
        for ax in (ax_lat, ax_dist):
            # Latencies often span less than a decade: label 1-2-5 steps, not only powers of 10.
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax_dist.xaxis.set_minor_locator(NullLocator())
        fig.tight_layout()
        fig.savefig(path, format="png")
        return path


# =============================================================================================
# The tester
# =============================================================================================

def _adapt(executor: Callable[..., Any]) -> Callable[[int], Any]:
    """Calls with no arguments when the executor accepts that, else with the request index."""
    try:
        sig = inspect.signature(executor)
    except (TypeError, ValueError):
        return lambda _k: executor()
    try:
        sig.bind()
        return lambda _k: executor()
    except TypeError:
        pass
    try:
        sig.bind(0)
    except TypeError:
        raise TypeError("the executor must be callable with no arguments or with the request "
                        "index") from None
    return executor


def _error_type(result: Any) -> Optional[str]:
    """None for a success, else the error's type name."""
    if isinstance(result, bool):
        return None if result else "Failed"
    if getattr(result, "success", True):
        return None
    err = getattr(result, "error", None)
    return getattr(err, "type", None) or "Failed"


class _Recorder:
    """Everything the workers record, under one lock."""

    def __init__(self, interval: float) -> None:
        self.lock = threading.Lock()
        self.interval = interval
        self.t0 = 0.0
        self.latency = Histogram()
        self.service = Histogram()
        self.lag = Histogram()
        self.sent = 0
        self.done = 0
        self.failed = 0
        self.errors: Counter[str] = Counter()
        self.intervals: dict[int, list[Any]] = {}  # index -> [completed, errors, Histogram]
        self.last_end = 0.0

    def record(self, scheduled: float, start: float, end: float, error: Optional[str]) -> None:
        latency = max(0.0, end - scheduled)
        service = max(0.0, end - start)
        lag = max(0.0, start - scheduled)
        idx = int(max(0.0, end - self.t0) // self.interval)
        with self.lock:
            self.latency.record(latency)
            self.service.record(service)
            self.lag.record(lag)
            slot = self.intervals.get(idx)
            if slot is None:
                slot = self.intervals[idx] = [0, 0, Histogram()]
            slot[0] += 1
            slot[2].record(latency)
            self.done += 1
            if error is not None:
                slot[1] += 1
                self.failed += 1
                self.errors[error] += 1
            if end > self.last_end:
                self.last_end = end


class _WorkerPool:
    """Threads started on demand, up to max_workers; a send never waits for a thread while
    fewer than max_workers exist."""

    def __init__(self, serve: Callable[[Any], None], max_workers: int) -> None:
        self._serve = serve
        self.max_workers = max_workers
        self._queue: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for work that no queued item is meant for yet
        self._backlog = 0  # queued items that no thread was free for
        self.threads: list[threading.Thread] = []
        self.saturated = 0

    def submit(self, item: Any) -> None:
        spawn = False
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
            elif len(self.threads) < self.max_workers:
                spawn = True
            else:
                self.saturated += 1
                self._backlog += 1
        self._queue.put(item)
        if spawn:
            t = threading.Thread(target=self._work, name=f"faas-load-{len(self.threads)}",
                                 daemon=True)
            self.threads.append(t)  # only the dispatching thread appends
            t.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._serve(item)
            with self._lock:
                if self._backlog > 0:
                    self._backlog -= 1  # the next queued item is ours
                else:
                    self._idle += 1

    def shutdown(self, timeout: Optional[float]) -> None:
        for _ in self.threads:
            self._queue.put(None)
        deadline = None if timeout is None else time.perf_counter() + timeout
        for t in self.threads:
            t.join(None if deadline is None else max(0.0, deadline - time.perf_counter()))


def _sleep_until(deadline: float, stop: threading.Event) -> bool:
    """Sleeps until perf_counter() >= deadline; False if `stop` was set meanwhile."""
    while True:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return True
        if stop.wait(remaining):
            return False


def _wait_precisely(deadline: float, spin: float) -> None:
    """Sleeps until `spin` seconds before `deadline`, then spins to it: a timed sleep here
    wakes 0.1-0.5 ms late, which would all be counted as latency."""
    perf = time.perf_counter
    remaining = deadline - spin - perf()
    if remaining > 0:
        time.sleep(remaining)
    while perf() < deadline:
        pass


class LoadTester:
    """Drives `executor` and measures it.

    executor   a callable taking no arguments (or the request index) that returns a result with
               ``.success`` (and optionally ``.error.type``), or raises: an exception is an error
               of its type's name. Anything without ``.success`` counts as a success. An
               ``Executor`` also gets ``prepare()`` before and ``close()`` after each run.
    pattern    a LoadPattern: **open loop**, requests are sent at the pattern's times whether or
               not earlier ones have completed
    concurrency  **closed loop** instead: this many callers, each sending its next request
               when its previous one returns, for `duration` (default: the pattern's)
    max_workers  open loop: bound on tester threads (started on demand; a send that finds all
               busy waits in a queue, and that wait counts in its latency)
    warmup     calls made before the clock starts, not recorded
    timeline_interval  seconds per timeline point
    monitor    sample CPU, memory, threads and fds of this process and its descendants
    progress   None: a progress bar on a terminal or in Jupyter; False: none; True: always
    poisson, seed  open loop: exponential gaps instead of even spacing (see LoadPattern.arrivals)
    drain_timeout  seconds to wait for requests still running at the end (None: as long as it
               takes); requests still running after it are counted as incomplete
    spin       open loop: a sender thread sleeps until this long before its send time, then
               spins (holding the GIL) to be on time; 0 sleeps all the way (cheaper, but sends
               then start 0.1-0.5 ms late on a VM, which counts as latency)
    """

    def __init__(self, executor: Callable[..., Any], pattern: Optional[LoadPattern] = None, *,
                 concurrency: Optional[int] = None, duration: Optional[float] = None,
                 max_workers: int = DEFAULT_MAX_WORKERS, warmup: int = 0,
                 timeline_interval: float = 1.0, monitor: bool = True,
                 monitor_interval: float = 0.25, progress: Optional[bool] = None,
                 poisson: bool = False, seed: Optional[int] = None,
                 drain_timeout: Optional[float] = None, spin: float = DEFAULT_SPIN,
                 description: Optional[str] = None) -> None:
        if not callable(executor):
            raise TypeError("executor must be callable")
        if concurrency is None and pattern is None:
            raise ValueError("give a pattern (open loop) or a concurrency (closed loop)")
        if concurrency is not None:
            if concurrency < 1:
                raise ValueError("concurrency must be >= 1")
            duration = pattern.duration if duration is None and pattern is not None else duration
            if duration is None:
                raise ValueError("a closed loop needs a duration (or a pattern to take it from)")
            duration = _check_positive("duration", duration)
        elif duration is not None:
            raise ValueError("duration= is for the closed loop; an open loop runs its pattern")
        if max_workers < 1:
            raise ValueError("max_workers must be >= 1")
        if warmup < 0:
            raise ValueError("warmup must be >= 0")
        self.executor = executor
        self.pattern = pattern
        self.concurrency = concurrency
        self.duration: float = (duration if concurrency is not None
                                else pattern.duration)  # type: ignore[union-attr]
        self.max_workers = max_workers
        self.warmup = warmup
        self.timeline_interval = _check_positive("timeline_interval", timeline_interval)
        self.monitor = monitor
        self.monitor_interval = monitor_interval
        self.progress = progress
        self.poisson = poisson
        self.seed = seed
        self.drain_timeout = drain_timeout
        if not spin >= 0:
            raise ValueError("spin must be >= 0")
        self.spin = spin
        if description is None:
            description = (executor.describe() if isinstance(executor, Executor)
                           else getattr(executor, "__name__", type(executor).__name__))
        self.description = description
        self._call = _adapt(executor)

    @property
    def mode(self) -> str:
        return "closed" if self.concurrency is not None else "open"

    # ---- convenience constructors ------------------------------------------------------------

    @classmethod
    def for_execute(cls, platform: Any, code: str, pattern: Optional[LoadPattern] = None, *,
                    timeout: Optional[float] = None, **options: Any) -> "LoadTester":
        """Each request is ``platform.execute(code, timeout=timeout)``."""
        return cls(ExecuteExecutor(platform, code, timeout=timeout), pattern, **options)

    @classmethod
    def for_sandbox(cls, target: Any, code: str, pattern: Optional[LoadPattern] = None, *,
                    pool_size: int = 1, setup: Optional[str] = None,
                    timeout: Optional[float] = None, **options: Any) -> "LoadTester":
        """Each request is ``sandbox.run(code)`` on a pool of sandboxes (see SandboxExecutor)."""
        return cls(SandboxExecutor(target, code, pool_size=pool_size, setup=setup,
                                   timeout=timeout), pattern, **options)

    # ---- running -----------------------------------------------------------------------------

    def run(self) -> LoadReport:
        """Runs the test and returns its report. Blocks for about the duration."""
        owned = isinstance(self.executor, Executor)
        if owned:
            self.executor.prepare()  # type: ignore[union-attr]
        monitor: Optional[ResourceMonitor] = None
        try:
            for k in range(self.warmup):
                try:
                    self._call(-1 - k)
                except Exception:
                    pass
            if self.monitor:
                monitor = ResourceMonitor(interval=self.monitor_interval).start()
            rec = _Recorder(self.timeline_interval)
            started_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            if self.concurrency is None:
                report_bits = self._run_open(rec)
            else:
                report_bits = self._run_closed(rec)
        finally:
            if monitor is not None:
                monitor.stop()
            if owned:
                self.executor.close()  # type: ignore[union-attr]
        return self._report(rec, started_at, monitor, **report_bits)

    def _progress_status(self, rec: _Recorder, now: float,
                         total: Optional[int]) -> tuple[float, str]:
        elapsed = max(0.0, now - rec.t0)
        with rec.lock:
            done, failed, sent = rec.done, rec.failed, rec.sent
            p99 = rec.latency.percentile(99) if rec.latency.count else None
        of = f"/{total}" if total is not None else ""
        status = (f"{done}{of} done  {done / elapsed if elapsed > 0 else 0.0:.1f}/s  "
                  f"errors {failed}  in flight {sent - done}  p99 {format_seconds(p99)}  "
                  f"{min(elapsed, self.duration):.1f}/{self.duration:g} s")
        return min(1.0, elapsed / self.duration), status

    def _run_open(self, rec: _Recorder) -> dict[str, Any]:
        schedule = self.pattern.arrivals(self.poisson, self.seed)  # type: ignore[union-attr]
        call = self._call
        perf = time.perf_counter
        spin = self.spin

        def serve(item: tuple[int, float]) -> None:
            k, scheduled = item
            _wait_precisely(scheduled, spin)
            start = perf()
            try:
                error = _error_type(call(k))
            except Exception as exc:
                error = type(exc).__name__
            rec.record(scheduled, start, perf(), error)

        pool = _WorkerPool(serve, self.max_workers)
        stop = threading.Event()
        dispatched = threading.Event()

        def dispatch() -> None:
            try:
                for k, offset in enumerate(schedule):
                    target = rec.t0 + offset
                    # Hand each request to a thread a little early; the thread waits for the
                    # exact time itself, so no thread wake-up lies between it and the send.
                    if not _sleep_until(target - HANDOFF_LEAD, stop):
                        return
                    with rec.lock:
                        rec.sent += 1
                    pool.submit((k, target))
            finally:
                dispatched.set()

        rec.t0 = perf() + 0.02  # time to start the dispatcher
        dispatcher = threading.Thread(target=dispatch, name="faas-load-dispatch", daemon=True)
        bar = Progress("load", enabled=self.progress)
        drain_deadline: Optional[float] = None
        try:
            dispatcher.start()
            while True:
                now = perf()
                if bar.active:
                    bar.update(*self._progress_status(rec, now, len(schedule)))
                if dispatched.is_set():
                    if rec.done >= rec.sent:
                        break
                    if drain_deadline is None and self.drain_timeout is not None:
                        drain_deadline = now + self.drain_timeout
                    if drain_deadline is not None and now >= drain_deadline:
                        break
                if dispatched.is_set():
                    time.sleep(0.01)
                else:
                    dispatched.wait(0.05)
        finally:
            stop.set()
            dispatcher.join()
            abandoned = drain_deadline is not None and rec.done < rec.sent
            pool.shutdown(timeout=0.0 if abandoned else 5.0)
            if bar.active:
                bar.update(*self._progress_status(rec, perf(), len(schedule)), force=True)
            bar.close()
        return {"scheduled_offsets": schedule, "workers": len(pool.threads),
                "saturated": pool.saturated}

    def _run_closed(self, rec: _Recorder) -> dict[str, Any]:
        call = self._call
        perf = time.perf_counter
        stop = threading.Event()
        counter = itertools.count()
        rec.t0 = perf() + 0.02
        end_at = rec.t0 + self.duration

        def caller() -> None:
            if not _sleep_until(rec.t0, stop):
                return
            while not stop.is_set():
                start = perf()
                if start >= end_at:
                    return
                k = next(counter)
                with rec.lock:
                    rec.sent += 1
                try:
                    error = _error_type(call(k))
                except Exception as exc:
                    error = type(exc).__name__
                rec.record(start, start, perf(), error)

        threads = [threading.Thread(target=caller, name=f"faas-load-{i}", daemon=True)
                   for i in range(self.concurrency)]  # type: ignore[arg-type]
        bar = Progress("load", enabled=self.progress)
        try:
            for t in threads:
                t.start()
            drain_deadline = None
            while any(t.is_alive() for t in threads):
                now = perf()
                if bar.active:
                    bar.update(*self._progress_status(rec, now, None))
                if now >= end_at and self.drain_timeout is not None:
                    drain_deadline = drain_deadline or now + self.drain_timeout
                    if now >= drain_deadline:
                        break
                time.sleep(0.02)
        finally:
            stop.set()
            if bar.active:
                bar.update(*self._progress_status(rec, perf(), None), force=True)
            bar.close()
        return {"scheduled_offsets": None, "workers": len(threads), "saturated": 0}

    def _report(self, rec: _Recorder, started_at: str, monitor: Optional[ResourceMonitor], *,
                scheduled_offsets: Optional[list[float]], workers: int,
                saturated: int) -> LoadReport:
        interval = self.timeline_interval
        with rec.lock:
            elapsed = max(self.duration, rec.last_end - rec.t0)
            n = max(math.ceil(elapsed / interval - 1e-9),
                    max(rec.intervals, default=-1) + 1)
            per_interval_scheduled: Counter[int] = Counter()
            if scheduled_offsets is not None:
                for off in scheduled_offsets:
                    per_interval_scheduled[int(off // interval)] += 1
            timeline = []
            for i in range(n):
                completed, errors, hist = rec.intervals.get(i, [0, 0, Histogram()])
                scheduled = per_interval_scheduled[i] if scheduled_offsets is not None else None
                timeline.append(TimelinePoint(
                    t=round(i * interval, 9),
                    scheduled=scheduled,
                    target_rate=None if scheduled is None else scheduled / interval,
                    completed=completed, errors=errors, throughput=completed / interval,
                    p50=hist.percentile(50) if hist.count else None,
                    p99=hist.percentile(99) if hist.count else None,
                    max=hist.max if hist.count else None))
            open_loop = scheduled_offsets is not None
            return LoadReport(
                mode=self.mode, executor=self.description,
                pattern=self.pattern.to_dict() if self.pattern is not None and open_loop else None,
                concurrency=self.concurrency, duration=self.duration, elapsed=elapsed,
                started_at=started_at,
                scheduled=len(scheduled_offsets) if open_loop else None,
                sent=rec.sent, completed=rec.done, failed=rec.failed,
                incomplete=rec.sent - rec.done, errors_by_type=dict(rec.errors),
                latency=rec.latency.copy(), service_time=rec.service.copy(),
                send_delay=rec.lag.copy() if open_loop else None,
                timeline_interval=interval, timeline=timeline,
                resources=monitor.summary() if monitor is not None else {},
                # Sample times from the load's start, like the timeline (warm-up is before 0).
                resource_samples=[] if monitor is None else [
                    dataclasses.replace(s, t=round(s.t + monitor.started_at - rec.t0, 6))
                    for s in monitor.samples],
                max_workers=self.max_workers if open_loop else None,
                workers_started=workers, saturated=saturated)
