"""Regression baselines and SLOs: save a run as a baseline, compare a later run to it.

Runs and baselines are pytest-benchmark JSON (``pytest-benchmark compare`` reads them) whose
``stats`` also carry ``p95``, ``p99``, ``error_rate`` and ``throughput``. Everything here works
on plain dicts, so measurements from any tool can be fed in. See docs/benchmarks.md.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import platform as _platform
import re
import statistics
import subprocess
from bisect import bisect_left, bisect_right
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

__all__ = [
    "DEFAULT_BASELINE_DIR",
    "DEFAULT_ERROR_RATE_SLACK",
    "DEFAULT_TOLERANCE",
    "METRICS",
    "SLO",
    "Comparison",
    "Verdict",
    "benchmark_from_report",
    "benchmark_from_samples",
    "check_slo",
    "compare",
    "format_seconds",
    "load_run",
    "make_run",
    "normalize_benchmark",
    "report_metrics",
    "run_from_pytest_benchmark",
    "run_from_report",
    "run_from_samples",
    "save_baseline",
    "save_run",
]

DEFAULT_BASELINE_DIR = ".faas-baselines"
DEFAULT_TOLERANCE = 0.10
# An error rate rises "beyond tolerance" only if it also rises by this much in absolute terms:
# relative changes of near-zero rates (0 -> 1 failure in 10 000) are noise, not regressions.
DEFAULT_ERROR_RATE_SLACK = 0.001
METRICS = ("p95", "p99", "error_rate", "throughput")

RunLike = Union[Mapping[str, Any], str, "os.PathLike[str]"]
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# ---- building runs -------------------------------------------------------------------------


def _percentile(sorted_data: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (the same definition as the latency suite's p50/p99): the
    sample of rank ceil(q/100 * n), computed exactly (0.95 * 100 is not 95 in floats)."""
    rank = max(1, math.ceil(Fraction(str(q)) * len(sorted_data) / 100))
    return sorted_data[rank - 1]


def _quartiles(data: Sequence[float]) -> tuple[float, float]:
    """Q1 and Q3 exactly as pytest-benchmark computes them (Wikipedia methods 2 and 3)."""
    n = len(data)
    if n == 1:
        return data[0], data[0]
    if n % 2:
        k, r = n // 4, n % 4
        if r == 1:
            q1 = 0.25 * data[k - 1] + 0.75 * data[k]
            q3 = 0.75 * data[3 * k] + 0.25 * data[3 * k + 1]
        else:
            q1 = 0.75 * data[k] + 0.25 * data[k + 1]
            q3 = 0.25 * data[3 * k + 1] + 0.75 * data[3 * k + 2]
        return q1, q3
    return statistics.median(data[: n // 2]), statistics.median(data[n // 2:])


def _latency_stats(latencies: Sequence[float]) -> dict[str, Any]:
    """pytest-benchmark's ``stats`` fields for these samples (seconds), plus p50/p95/p99."""
    data = sorted(float(x) for x in latencies)
    n = len(data)
    mean = statistics.fmean(data)
    stddev = statistics.stdev(data) if n > 1 else 0.0
    q1, q3 = _quartiles(data)
    iqr = q3 - q1
    lo, hi = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    iqr_outliers = sum(1 for x in data if x < lo or x > hi)
    stddev_outliers = sum(1 for x in data if x < mean - stddev or x > mean + stddev)
    total = math.fsum(data)
    return {
        "min": data[0],
        "max": data[-1],
        "mean": mean,
        "stddev": stddev,
        "rounds": n,
        "median": statistics.median(data),
        "iqr": iqr,
        "q1": q1,
        "q3": q3,
        "iqr_outliers": iqr_outliers,
        "stddev_outliers": stddev_outliers,
        "outliers": f"{stddev_outliers};{iqr_outliers}",
        "ld15iqr": data[0] if n == 1 else data[bisect_left(data, lo)],
        "hd15iqr": data[0] if n == 1 else data[bisect_right(data, hi) - 1],
        "ops": n / total if total else 0.0,
        "total": total,
        "iterations": 1,
        "p50": _percentile(data, 50),
        "p95": _percentile(data, 95),
        "p99": _percentile(data, 99),
    }


def benchmark_from_samples(name: str, latencies: Iterable[float], errors: int = 0,
                           duration: Optional[float] = None, *, group: Optional[str] = None,
                           extra_info: Optional[Mapping[str, Any]] = None,
                           include_data: bool = False) -> dict[str, Any]:
    """One benchmark entry (pytest-benchmark shape) from raw measurements.

    latencies  seconds, one per *successful* request (a failed request counts only in `errors`)
    errors     how many requests failed
    duration   wall-clock seconds of the whole run; throughput = successful requests / duration.
               Without it, throughput = successes / sum(latencies) (requests issued one after
               another), which is pytest-benchmark's ``ops``.
    """
    samples = [float(x) for x in latencies]
    if not samples:
        raise ValueError(f"benchmark {name!r}: at least one successful latency sample is needed")
    if any(not math.isfinite(x) or x < 0 for x in samples):
        raise ValueError(f"benchmark {name!r}: latencies must be finite, non-negative seconds")
    errors = int(errors)
    if errors < 0:
        raise ValueError(f"benchmark {name!r}: errors must be >= 0, got {errors}")
    if duration is not None and not (duration > 0 and math.isfinite(duration)):
        raise ValueError(f"benchmark {name!r}: duration must be positive seconds, got {duration!r}")
    stats = _latency_stats(samples)
    stats["errors"] = errors
    stats["error_rate"] = errors / (len(samples) + errors)
    stats["duration"] = float(duration) if duration is not None else stats["total"]
    stats["throughput"] = len(samples) / duration if duration is not None else stats["ops"]
    if include_data:
        stats["data"] = samples
    return {
        "group": group,
        "name": name,
        "fullname": name,
        "params": None,
        "param": None,
        "extra_info": dict(extra_info or {}),
        "options": {"timer": "perf_counter", "source": "faas_sdk"},
        "stats": stats,
    }


def _machine_info() -> dict[str, Any]:
    return {
        "node": _platform.node(),
        "processor": _platform.processor(),
        "machine": _platform.machine(),
        "python_compiler": _platform.python_compiler(),
        "python_implementation": _platform.python_implementation(),
        "python_implementation_version": _platform.python_version(),
        "python_version": _platform.python_version(),
        "python_build": list(_platform.python_build()),
        "release": _platform.release(),
        "system": _platform.system(),
        "cpu": {"count": os.cpu_count()},
    }


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5, check=True)
    return out.stdout.strip()


def _commit_info() -> dict[str, Any]:
    """What pytest-benchmark records about the source tree; "unversioned" outside git."""
    info: dict[str, Any] = {"id": "unversioned", "time": None, "author_time": None,
                            "dirty": False, "project": os.path.basename(os.getcwd()),
                            "branch": "(unknown)"}
    try:
        info["id"], info["time"], info["author_time"] = _git("log", "-1", "--format=%H%n%cI%n%aI").split("\n")
        info["dirty"] = bool(_git("status", "--porcelain", "--untracked-files=no"))
        info["branch"] = _git("rev-parse", "--abbrev-ref", "HEAD")
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    return info


def _version() -> str:
    try:
        from importlib.metadata import version
        return f"faas_sdk-{version('faas_sdk')}"
    except Exception:
        return "faas_sdk"


def make_run(benchmarks: Iterable[Mapping[str, Any]], *,
             machine_info: Optional[Mapping[str, Any]] = None,
             commit_info: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """A run document around benchmark entries: machine and commit info, timestamp, version."""
    return {
        "machine_info": dict(machine_info) if machine_info is not None else _machine_info(),
        "commit_info": dict(commit_info) if commit_info is not None else _commit_info(),
        "benchmarks": [dict(b) for b in benchmarks],
        "datetime": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "version": _version(),
    }


def run_from_samples(name: str, latencies: Iterable[float], errors: int = 0,
                     duration: Optional[float] = None, **kwargs: Any) -> dict[str, Any]:
    """A run with one benchmark made from raw samples; see benchmark_from_samples()."""
    info = {k: kwargs.pop(k) for k in ("machine_info", "commit_info") if k in kwargs}
    return make_run([benchmark_from_samples(name, latencies, errors, duration, **kwargs)], **info)


def normalize_benchmark(bench: dict[str, Any]) -> dict[str, Any]:
    """Fills our metrics into an entry written by pytest-benchmark (or an older run).

    p95/p99 come from the raw samples (``stats.data``, written with --benchmark-save-data)
    or from ``extra_info`` ``p95_us``/``p99_us``; else they stay missing and are not compared.
    pytest-benchmark records only successful rounds, so the error rate defaults to 0, and
    throughput to ``ops`` (rounds per second of measured time).
    """
    stats = bench.setdefault("stats", {})
    data = stats.get("data")
    if data and ("p95" not in stats or "p99" not in stats):
        ordered = sorted(float(x) for x in data)
        stats.setdefault("p50", _percentile(ordered, 50))
        stats.setdefault("p95", _percentile(ordered, 95))
        stats.setdefault("p99", _percentile(ordered, 99))
    extra = bench.get("extra_info") or {}
    for q in ("p50", "p95", "p99"):
        if q not in stats and isinstance(extra.get(f"{q}_us"), (int, float)):
            stats[q] = extra[f"{q}_us"] * 1e-6
    if "ops" not in stats and stats.get("mean"):
        stats["ops"] = 1.0 / stats["mean"]
    stats.setdefault("errors", 0)
    stats.setdefault("error_rate", 0.0)
    if "throughput" not in stats and "ops" in stats:
        stats["throughput"] = stats["ops"]
    if "median" not in stats and "p50" in stats:
        stats["median"] = stats["p50"]
    # pytest-benchmark's table needs every column. A run made from a summary (no raw samples)
    # lacks some; they are written as 0 and listed in extra_info["not_measured"].
    placeholders = {"min": 0.0, "max": 0.0, "mean": 0.0, "stddev": 0.0, "median": 0.0,
                    "iqr": 0.0, "q1": 0.0, "q3": 0.0, "ld15iqr": 0.0, "hd15iqr": 0.0,
                    "iqr_outliers": 0, "stddev_outliers": 0, "outliers": "0;0", "ops": 0.0,
                    "rounds": 0, "total": 0.0}
    absent = [k for k in placeholders if k not in stats]
    if absent:
        for key in absent:
            stats[key] = placeholders[key]
        extra = bench.setdefault("extra_info", {})
        extra["not_measured"] = sorted(set(extra.get("not_measured", [])) | set(absent))
    stats.setdefault("iterations", 1)
    bench.setdefault("fullname", bench.get("name"))
    for key in ("group", "params", "param"):
        bench.setdefault(key, None)
    bench.setdefault("extra_info", {})
    bench.setdefault("options", {})
    return bench


def run_from_pytest_benchmark(source: Union[Mapping[str, Any], str, "os.PathLike[str]"]) -> dict[str, Any]:
    """A run from a pytest-benchmark JSON file (``--benchmark-json`` or a saved run) or its dict."""
    if isinstance(source, Mapping):
        doc = json.loads(json.dumps(source))  # a private deep copy
    else:
        doc = _read_json(Path(source))
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise ValueError("not a pytest-benchmark document: it has no 'benchmarks' list")
    for bench in doc["benchmarks"]:
        if not isinstance(bench, dict) or "name" not in bench:
            raise ValueError("not a pytest-benchmark document: a benchmark has no 'name'")
        normalize_benchmark(bench)
    doc.setdefault("machine_info", {})
    doc.setdefault("commit_info", {})
    doc.setdefault("datetime", None)
    doc.setdefault("version", None)
    return doc


def _number(value: Any, *subkeys: str) -> Optional[float]:
    """`value` if it is a number; if it is a mapping, its first numeric entry among `subkeys`."""
    if isinstance(value, Mapping):
        for key in subkeys:
            found = _number(value.get(key))
            if found is not None:
                return found
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _lookup(mappings: Sequence[Mapping[str, Any]], keys: Sequence[str], *subkeys: str) -> Optional[float]:
    for mapping in mappings:
        for key in keys:
            found = _number(mapping.get(key), *subkeys)
            if found is not None:
                return found
    return None


def _as_mapping(report: Any) -> Mapping[str, Any]:
    for method in ("to_dict", "to_json"):
        if not isinstance(report, Mapping) and callable(getattr(report, method, None)):
            report = getattr(report, method)()
            break
    if isinstance(report, (str, bytes)):
        report = json.loads(report)
    if not isinstance(report, Mapping):
        raise TypeError(f"expected a LoadReport-like mapping or JSON, got {type(report).__name__}")
    return report


def _latency_block(report: Mapping[str, Any]) -> Mapping[str, Any]:
    for key in ("latency", "latency_s", "latency_seconds"):
        block = report.get(key)
        if isinstance(block, Mapping):
            return block
    return {}


def report_metrics(report: Any) -> dict[str, Any]:
    """p95/p99 (seconds), error rate, throughput and counts from a LoadReport-like object.

    Accepted: an object with ``to_dict()`` or ``to_json()``, a JSON string, or a mapping.
    Looked up, seconds unless the key ends in ``_ms``:

    - ``p50``/``p95``/``p99`` at the top level or in a ``latency`` (or ``latency_s``) mapping;
    - ``latencies``: raw samples of the successful requests; anything missing is computed
      from them;
    - ``error_rate``, else ``errors``/``failed`` over ``requests`` (a number, or a mapping
      with ``completed``/``sent``/``count`` and ``failed``);
    - ``throughput`` (a number, or a mapping with ``achieved``);
    - ``elapsed``/``elapsed_s``/``duration``/``duration_s``: wall-clock seconds of the run.

    Missing metrics are left out, never guessed.
    """
    report = _as_mapping(report)
    latency = _latency_block(report)
    scopes = (report, latency)
    out: dict[str, Any] = {}
    samples = report.get("latencies")
    ordered = sorted(float(x) for x in samples) if isinstance(samples, (list, tuple)) and samples else None
    for q in ("p50", "p95", "p99"):
        value = _lookup(scopes, (q,))
        if value is None:
            ms = _lookup(scopes, (f"{q}_ms",))
            value = ms * 1e-3 if ms is not None else None
        if value is None and ordered:
            value = _percentile(ordered, int(q[1:]))
        if value is not None:
            out[q] = value
    requests_block = report.get("requests")
    errors = _lookup((report,), ("errors", "failed", "failures"))
    if errors is None and isinstance(report.get("errors"), (list, tuple)):
        errors = float(len(report["errors"]))
    if errors is None:
        errors = _number(requests_block, "failed", "errors")
    requests = _number(requests_block, "completed", "sent", "count", "total")
    if requests is None:
        requests = _lookup((report,), ("count", "executions", "total_requests"))
    if requests is None and ordered is not None:
        requests = len(ordered) + (errors or 0)
    error_rate = _lookup((report,), ("error_rate",))
    if error_rate is None and errors is not None and requests:
        error_rate = errors / requests
    if error_rate is not None:
        out["error_rate"] = error_rate
    if errors is not None:
        out["errors"] = int(errors)
    if requests is not None:
        out["requests"] = int(requests)
    throughput = _lookup((report,), ("throughput", "achieved_throughput", "rps"), "achieved")
    if throughput is not None:
        out["throughput"] = throughput
    duration = _lookup((report,), ("elapsed_s", "elapsed", "duration_s", "duration"))
    if duration is not None and duration > 0:
        out["duration"] = duration
    if ordered:
        out["latencies"] = ordered
    return out


def run_from_report(name: str, report: Any) -> dict[str, Any]:
    """A run with one benchmark from a LoadReport-like object; see benchmark_from_report()."""
    return make_run([benchmark_from_report(name, report)])


def benchmark_from_report(name: str, report: Any) -> dict[str, Any]:
    """One benchmark entry from a LoadReport-like object; see report_metrics().

    With raw ``latencies`` the full pytest-benchmark statistics are computed; otherwise the
    entry carries the summary figures the report has (``min``, ``max``, ``mean``, ``p50``
    as ``median``, ``count`` as ``rounds``, from the ``latency`` mapping).
    """
    report = _as_mapping(report)
    m = report_metrics(report)
    if m.get("latencies"):
        errors = m.get("errors")
        if errors is None and "error_rate" in m and m["error_rate"] < 1:
            rate = m["error_rate"]
            errors = round(rate * len(m["latencies"]) / (1 - rate))
        bench = benchmark_from_samples(name, m["latencies"], int(errors or 0), m.get("duration"))
        for key in ("p50", "p95", "p99", "error_rate", "throughput"):
            if key in m:
                bench["stats"][key] = m[key]
        return bench
    latency = _latency_block(report)
    stats: dict[str, Any] = {}
    for ours, theirs in (("min", "min"), ("max", "max"), ("mean", "mean"), ("median", "p50"),
                         ("stddev", "stddev"), ("rounds", "count")):
        value = _number(latency.get(theirs))
        if value is not None:
            stats[ours] = int(value) if ours == "rounds" else value
    stats.update({k: v for k, v in m.items() if k not in ("latencies", "requests")})
    if stats.get("mean"):
        stats.setdefault("ops", 1.0 / stats["mean"])
    return normalize_benchmark({"name": name, "stats": stats})


# ---- files ---------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"no such run file: {path}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None


def _baseline_path(name: str, directory: Union[str, "os.PathLike[str]", None]) -> Path:
    if not _NAME_RE.match(name):
        raise ValueError(f"baseline name {name!r} must be letters, digits, '_', '-' or '.', "
                         "starting with a letter or digit")
    return Path(directory if directory is not None else DEFAULT_BASELINE_DIR) / f"{name}.json"


def load_run(path_or_name: RunLike, directory: Union[str, "os.PathLike[str]", None] = None) -> dict[str, Any]:
    """A run from a dict, a JSON file, or the name of a baseline saved in `directory`
    (default ``.faas-baselines/``). pytest-benchmark files and LoadReport-like JSON are
    accepted and normalised (missing p95/p99 computed from raw samples when present)."""
    if isinstance(path_or_name, Mapping):
        doc: Any = json.loads(json.dumps(path_or_name))
        where = "the given run"
    else:
        path = Path(path_or_name)
        if not path.is_file() and isinstance(path_or_name, str) and _NAME_RE.match(path_or_name):
            candidate = _baseline_path(path_or_name, directory)
            if candidate.is_file():
                path = candidate
            elif not path_or_name.endswith(".json"):
                where_dir = directory if directory is not None else DEFAULT_BASELINE_DIR
                raise FileNotFoundError(
                    f"no run file {path_or_name!r} and no baseline named {path_or_name!r} in "
                    f"{where_dir}/; save one with `faas-sdk baseline save {path_or_name} --from RUN.json`")
        doc = _read_json(path)
        where = str(path)
    if isinstance(doc, dict) and "benchmarks" in doc:
        return run_from_pytest_benchmark(doc)
    if isinstance(doc, dict):
        name = next((doc[k] for k in ("name", "scenario", "description", "executor")
                     if isinstance(doc.get(k), str) and doc[k]), "load")
        return run_from_report(str(name), doc)
    raise ValueError(f"{where} is neither a pytest-benchmark run nor a LoadReport-like object")


def save_run(run: RunLike, path: Union[str, "os.PathLike[str]"]) -> Path:
    """Writes `run` (normalised) as pytest-benchmark JSON to `path`; returns the path."""
    doc = load_run(run)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=4, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, target)  # a reader never sees half a baseline
    return target


def save_baseline(name: str, run: RunLike, directory: Union[str, "os.PathLike[str]", None] = None) -> Path:
    """Saves `run` (a dict or a file) as baseline `name` in `directory` (default
    ``.faas-baselines/``) as ``NAME.json``, replacing an older one; returns the path."""
    return save_run(run, _baseline_path(name, directory))


# ---- comparing -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SLO:
    """Absolute service-level objectives; None means "no objective".

    p95_ms, p99_ms     latency percentiles must be at most this many milliseconds
    max_error_rate     fraction of failed requests (0.01 = 1%) must be at most this
    min_throughput     successful requests per second must be at least this
    """

    p95_ms: Optional[float] = None
    p99_ms: Optional[float] = None
    max_error_rate: Optional[float] = None
    min_throughput: Optional[float] = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"SLO {field.name} must be a non-negative number, got {value!r}")
        if self.max_error_rate is not None and self.max_error_rate > 1:
            raise ValueError(f"SLO max_error_rate is a fraction in [0, 1], got {self.max_error_rate!r}")

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in dataclasses.fields(self))


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One check of one metric of one benchmark.

    kind      "slo" (against an absolute objective) or "regression" (against the baseline)
    status    "pass", "fail" or "skip" (the metric is missing from the run or the baseline)
    value     the run's figure; baseline: the baseline's; limit: the threshold applied
    change    relative change against the baseline (0.5 = 50% higher), regressions only
    """

    benchmark: str
    metric: str
    kind: str
    status: str
    value: Optional[float]
    limit: Optional[float]
    baseline: Optional[float] = None
    change: Optional[float] = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "fail"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_LABEL = {"p95": "p95", "p99": "p99", "error_rate": "error rate", "throughput": "throughput"}


def format_seconds(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.3f} s"


def _fmt(metric: str, value: float) -> str:
    if metric in ("p95", "p99"):
        return format_seconds(value)
    if metric == "error_rate":
        return f"{value * 100:.2f}%"
    return f"{value:,.1f}/s"


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The verdicts of compare(). ``regressed`` is True if any verdict failed."""

    verdicts: tuple[Verdict, ...]
    tolerance: float
    slos: Mapping[str, SLO]
    missing: tuple[str, ...] = ()   # in the baseline, not in the run
    new: tuple[str, ...] = ()       # in the run, not in the baseline (SLOs only)

    @property
    def regressed(self) -> bool:
        return any(not v.ok for v in self.verdicts)

    @property
    def compared(self) -> bool:
        """False when no benchmark was checked at all (no common name and no SLO)."""
        return bool(self.verdicts)

    @property
    def failures(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.ok]

    def __bool__(self) -> bool:
        """True when the run is acceptable (no failed verdict)."""
        return not self.regressed

    def for_benchmark(self, name: str) -> list[Verdict]:
        return [v for v in self.verdicts if v.benchmark == name]

    def report(self, verbose: bool = False) -> str:
        """Readable text: failures first, each naming the benchmark, metric and amount."""
        lines = []
        failures = self.failures
        benches = sorted({v.benchmark for v in self.verdicts})
        if failures:
            lines.append(f"REGRESSED: {len(failures)} check(s) failed "
                         f"(tolerance {self.tolerance * 100:g}%)")
            lines.extend(f"  FAIL {v.message}" for v in failures)
        elif not benches:
            lines.append("NOTHING COMPARED: no benchmark of the run is in the baseline and no SLO "
                         "was given")
        else:
            lines.append(f"OK: {len(benches)} benchmark(s) within tolerance "
                         f"({self.tolerance * 100:g}%) and SLOs")
        for bench in benches:
            mine = [v for v in self.verdicts if v.benchmark == bench and v.ok]
            if verbose:
                lines.extend(f"  {v.status:4} {v.message}" for v in mine)
                continue
            parts = []
            for v in mine:
                if v.status == "skip":
                    continue
                if v.kind == "regression":
                    delta = ("" if v.change is None or v.metric == "error_rate"
                             else f" ({v.change * 100:+.1f}%)")
                    parts.append(f"{_LABEL[v.metric]} {_fmt(v.metric, v.value)}{delta}")
                else:
                    parts.append(f"{_LABEL[v.metric]} {_fmt(v.metric, v.value)} meets SLO")
            skipped = sorted({_LABEL[v.metric] for v in mine if v.status == "skip"})
            if skipped:
                parts.append("not compared: " + ", ".join(skipped))
            if parts or not any(v.benchmark == bench and not v.ok for v in self.verdicts):
                lines.append(f"  ok   {bench}: " + "; ".join(parts) if parts else f"  ok   {bench}")
        for name in self.missing:
            lines.append(f"  note {name}: in the baseline but not in this run (not compared)")
        for name in self.new:
            lines.append(f"  note {name}: not in the baseline (SLOs checked only)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()

    def to_dict(self) -> dict[str, Any]:
        return {
            "regressed": self.regressed,
            "tolerance": self.tolerance,
            "slos": {k: dataclasses.asdict(v) for k, v in self.slos.items()},
            "verdicts": [v.to_dict() for v in self.verdicts],
            "missing": list(self.missing),
            "new": list(self.new),
        }


def _stat(bench: Optional[Mapping[str, Any]], metric: str) -> Optional[float]:
    if bench is None:
        return None
    value = bench.get("stats", {}).get(metric)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _slo_verdicts(name: str, stats_bench: Mapping[str, Any], slo: SLO) -> list[Verdict]:
    checks = (("p95", slo.p95_ms, 1e-3, "max"), ("p99", slo.p99_ms, 1e-3, "max"),
              ("error_rate", slo.max_error_rate, 1.0, "max"),
              ("throughput", slo.min_throughput, 1.0, "min"))
    out = []
    for metric, objective, scale, sense in checks:
        if objective is None:
            continue
        limit = objective * scale
        value = _stat(stats_bench, metric)
        label = _LABEL[metric]
        if value is None:
            out.append(Verdict(name, metric, "slo", "skip", None, limit,
                               message=f"{name} {label}: not recorded, SLO not checked"))
            continue
        bad = value > limit if sense == "max" else value < limit
        word = "at most" if sense == "max" else "at least"
        if bad:
            if metric == "error_rate":
                by = f"{(value - limit) * 100:.2f} points"
            else:
                by = f"{abs(value / limit - 1) * 100:.1f}%" if limit else "(limit is 0)"
            msg = (f"{name} {label} misses its SLO by {by} "
                   f"({_fmt(metric, value)}, SLO {word} {_fmt(metric, limit)})")
        else:
            msg = f"{name} {label} {_fmt(metric, value)} meets its SLO ({word} {_fmt(metric, limit)})"
        out.append(Verdict(name, metric, "slo", "fail" if bad else "pass", value, limit, message=msg))
    return out


def _regression_verdicts(name: str, base: Mapping[str, Any], run: Mapping[str, Any],
                         tolerance: float, error_rate_slack: float) -> list[Verdict]:
    out = []
    tol = f"tolerance {tolerance * 100:g}%"
    for metric in METRICS:
        b, v = _stat(base, metric), _stat(run, metric)
        label = _LABEL[metric]
        if b is None or v is None:
            which = "the baseline" if b is None else "this run"
            if b is None and v is None:
                which = "either run"
            out.append(Verdict(name, metric, "regression", "skip", v, None, b,
                               message=f"{name} {label}: not recorded in {which}, not compared"))
            continue
        if metric == "error_rate":
            limit = b + max(tolerance * b, error_rate_slack)
            bad = v > limit
            change = (v / b - 1) if b else None
            if bad:
                msg = (f"{name} error rate regressed by {(v - b) * 100:.2f} points "
                       f"({_fmt(metric, b)} -> {_fmt(metric, v)}, {tol}, "
                       f"at least {error_rate_slack * 100:g} points)")
            else:
                msg = f"{name} error rate {_fmt(metric, b)} -> {_fmt(metric, v)}, within {tol}"
        elif metric == "throughput":
            limit = b * (1 - tolerance)
            change = (v / b - 1) if b else None
            bad = v < limit
            if bad:
                msg = (f"{name} throughput regressed by {(1 - v / b) * 100:.1f}% "
                       f"({_fmt(metric, b)} -> {_fmt(metric, v)}, {tol})")
            else:
                msg = f"{name} throughput {_fmt(metric, b)} -> {_fmt(metric, v)}, within {tol}"
        else:
            limit = b * (1 + tolerance)
            change = (v / b - 1) if b else None
            bad = v > limit
            if bad:
                by = f"{change * 100:.1f}%" if change is not None else "from zero"
                msg = (f"{name} {label} regressed by {by} "
                       f"({_fmt(metric, b)} -> {_fmt(metric, v)}, {tol})")
            else:
                msg = f"{name} {label} {_fmt(metric, b)} -> {_fmt(metric, v)}, within {tol}"
        out.append(Verdict(name, metric, "regression", "fail" if bad else "pass", v, limit, b,
                           change, msg))
    return out


def check_slo(benchmark: Mapping[str, Any], slo: SLO) -> list[Verdict]:
    """The SLO verdicts of one benchmark entry (status "skip" where a metric is missing)."""
    name = str(benchmark.get("name") or benchmark.get("fullname") or "benchmark")
    return _slo_verdicts(name, benchmark, slo)


def compare(baseline: RunLike, run: RunLike, slos: Union[SLO, Mapping[str, SLO], None] = None,
            tolerance: float = DEFAULT_TOLERANCE, *,
            error_rate_slack: float = DEFAULT_ERROR_RATE_SLACK,
            directory: Union[str, "os.PathLike[str]", None] = None) -> Comparison:
    """Compares `run` to `baseline`, benchmark by benchmark (matched by ``fullname``).

    Each metric (p95, p99, error rate, throughput) is checked twice: against the absolute SLO
    if one is given, and against the baseline: p95/p99 fail above baseline x (1 + tolerance),
    throughput below baseline x (1 - tolerance), the error rate above baseline + max(tolerance
    x baseline, error_rate_slack). `slos` is one SLO for every benchmark or a mapping from
    benchmark name to SLO (key "*" for the rest). `baseline`/`run` are dicts, files or
    baseline names (in `directory`).
    """
    if not (isinstance(tolerance, (int, float)) and 0 <= tolerance < 10 and math.isfinite(tolerance)):
        raise ValueError(f"tolerance is a fraction (0.1 = 10%), got {tolerance!r}")
    base_doc = load_run(baseline, directory)
    run_doc = load_run(run, directory)
    if isinstance(slos, SLO) or slos is None:
        slo_map: dict[str, SLO] = {"*": slos} if slos is not None and not slos.empty else {}
    else:
        slo_map = dict(slos)

    def key(b: Mapping[str, Any]) -> str:
        return str(b.get("fullname") or b.get("name"))

    base_by = {key(b): b for b in base_doc["benchmarks"]}
    verdicts: list[Verdict] = []
    new = []
    for bench in run_doc["benchmarks"]:
        name = key(bench)
        short = str(bench.get("name") or name)
        slo = slo_map.get(name) or slo_map.get(short) or slo_map.get("*")
        if slo is not None:
            verdicts.extend(_slo_verdicts(short, bench, slo))
        if name in base_by:
            verdicts.extend(_regression_verdicts(short, base_by[name], bench, tolerance, error_rate_slack))
        else:
            new.append(short)
    run_names = {key(b) for b in run_doc["benchmarks"]}
    missing = tuple(str(b.get("name") or k) for k, b in base_by.items() if k not in run_names)
    return Comparison(tuple(verdicts), float(tolerance), slo_map, missing, tuple(new))
