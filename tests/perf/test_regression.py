"""Regression baselines and SLOs: the comparison names what regressed and by how much, the
files are pytest-benchmark JSON, and `faas-sdk compare` gates CI through its exit status."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

from faas_sdk.perf.regression import (
    SLO,
    benchmark_from_samples,
    check_slo,
    compare,
    load_run,
    make_run,
    report_metrics,
    run_from_pytest_benchmark,
    run_from_report,
    run_from_samples,
    save_baseline,
    save_run,
)

FAAS_SDK = os.path.join(os.path.dirname(sys.executable), "faas-sdk")


def samples(n: int = 400, seed: int = 7, base: float = 0.0012) -> list[float]:
    """Deterministic latencies around `base` seconds with a tail."""
    rng = random.Random(seed)
    return [base * (1 + 0.3 * rng.random()) + (0.004 if i % 97 == 0 else 0.0) for i in range(n)]


def scaled(values: list[float], factor: float) -> list[float]:
    return [v * factor for v in values]


def verdict(comparison, metric, kind="regression"):
    [v] = [v for v in comparison.verdicts if v.metric == metric and v.kind == kind]
    return v


# ---- comparisons ---------------------------------------------------------------------------


def test_a_baseline_twice_as_fast_fails_naming_p95_and_p99_and_the_amount():
    lat = samples()
    baseline = run_from_samples("execute_print", scaled(lat, 0.5), duration=1.0)
    run = run_from_samples("execute_print", lat, duration=1.0)

    result = compare(baseline, run)

    assert result.regressed and not result
    assert {(v.metric, v.kind) for v in result.failures} == {("p95", "regression"), ("p99", "regression")}
    p95 = verdict(result, "p95")
    assert p95.change == pytest.approx(1.0)
    report = result.report()
    assert report.startswith("REGRESSED")
    assert "execute_print p95 regressed by 100.0% (" in report
    assert "execute_print p99 regressed by 100.0% (" in report
    assert "tolerance 10%" in report


def test_the_report_shows_both_figures_in_readable_units():
    baseline = run_from_samples("execute_print", [0.00120] * 100, duration=1.0)
    run = run_from_samples("execute_print", [0.00245] * 100, duration=1.0)
    message = verdict(compare(baseline, run), "p95").message
    assert message == "execute_print p95 regressed by 104.2% (1.20 ms -> 2.45 ms, tolerance 10%)"


def test_a_run_within_tolerance_passes():
    lat = samples()
    result = compare(run_from_samples("b", lat, duration=2.0), run_from_samples("b", scaled(lat, 1.05), duration=2.0))
    assert not result.regressed and result
    assert result.report().startswith("OK: 1 benchmark(s)")
    assert {v.status for v in result.verdicts} == {"pass"}


def test_an_improvement_is_not_a_regression():
    lat = samples()
    result = compare(run_from_samples("b", lat, duration=1.0), run_from_samples("b", scaled(lat, 0.5), duration=0.5))
    assert not result.regressed


def test_tolerance_is_configurable():
    lat = samples()
    baseline, run = run_from_samples("b", lat), run_from_samples("b", scaled(lat, 1.15))
    assert compare(baseline, run, tolerance=0.10).regressed
    assert not compare(baseline, run, tolerance=0.20).regressed


def test_a_throughput_drop_beyond_tolerance_fails():
    lat = samples()
    result = compare(run_from_samples("b", lat, duration=1.0), run_from_samples("b", lat, duration=2.0))
    assert [(v.metric, v.kind) for v in result.failures] == [("throughput", "regression")]
    assert "b throughput regressed by 50.0% (400.0/s -> 200.0/s, tolerance 10%)" in result.report()


def test_error_rate_rises_are_judged_in_points_with_a_floor():
    lat = samples(1000)
    baseline = run_from_samples("b", lat, errors=0, duration=1.0)
    one_in_a_thousand = run_from_samples("b", lat, errors=1, duration=1.0)
    five_percent = run_from_samples("b", lat, errors=53, duration=1.0)
    assert not compare(baseline, one_in_a_thousand).regressed
    result = compare(baseline, five_percent)
    assert [v.metric for v in result.failures] == ["error_rate"]
    assert "b error rate regressed by 5.03 points (0.00% -> 5.03%" in result.report()


def test_absolute_slos_fail_even_without_a_regression():
    run = run_from_samples("b", [0.002] * 99 + [0.010], errors=2, duration=0.5)
    result = compare(run, run, slos=SLO(p95_ms=1.0, p99_ms=20, max_error_rate=0.01, min_throughput=500))
    failed = {(v.metric, v.kind) for v in result.failures}
    assert failed == {("p95", "slo"), ("error_rate", "slo"), ("throughput", "slo")}
    report = result.report()
    assert "b p95 misses its SLO by 100.0% (2.00 ms, SLO at most 1.00 ms)" in report
    assert "b throughput misses its SLO by 60.0% (200.0/s, SLO at least 500.0/s)" in report
    assert "b error rate misses its SLO by 0.96 points (1.96%, SLO at most 1.00%)" in report
    assert verdict(result, "p99", "slo").ok


def test_slos_can_be_given_per_benchmark():
    run = make_run([benchmark_from_samples("fast", [0.001] * 10), benchmark_from_samples("slow", [0.1] * 10)],
                   commit_info={})
    result = compare(run, run, slos={"fast": SLO(p95_ms=2), "*": SLO(p95_ms=200)})
    assert not result.regressed
    result = compare(run, run, slos={"slow": SLO(p95_ms=50)})
    assert [v.benchmark for v in result.failures] == ["slow"]


def test_benchmarks_missing_on_either_side_are_noted_not_failed():
    baseline = make_run([benchmark_from_samples("kept", [0.001] * 5), benchmark_from_samples("gone", [0.001] * 5)])
    run = make_run([benchmark_from_samples("kept", [0.001] * 5), benchmark_from_samples("new", [0.001] * 5)])
    result = compare(baseline, run)
    assert not result.regressed
    assert result.missing == ("gone",) and result.new == ("new",)
    assert "gone: in the baseline but not in this run" in result.report()


def test_invalid_inputs_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="at least one successful latency"):
        benchmark_from_samples("b", [])
    with pytest.raises(ValueError, match="non-negative"):
        benchmark_from_samples("b", [0.1, -1])
    with pytest.raises(ValueError, match="fraction"):
        SLO(max_error_rate=5)
    with pytest.raises(ValueError, match="tolerance"):
        compare(run_from_samples("b", [1.0]), run_from_samples("b", [1.0]), tolerance=-0.1)


# ---- the file format -----------------------------------------------------------------------


def test_stats_are_computed_exactly_like_pytest_benchmark():
    from pytest_benchmark.stats import Stats

    for n in (1, 2, 3, 4, 5, 6, 7, 8, 13, 400):
        lat = samples(n, seed=n)
        theirs = Stats()
        for x in lat:
            theirs.update(x)
        ours = benchmark_from_samples("b", lat)["stats"]
        for field in Stats.fields:
            expected = getattr(theirs, field)
            if isinstance(expected, str):  # "outliers"
                assert ours[field] == expected, (n, field)
            else:
                assert ours[field] == pytest.approx(expected, rel=1e-12), (n, field)


def test_percentiles_are_nearest_rank():
    stats = benchmark_from_samples("b", [i / 1000 for i in range(1, 101)])["stats"]
    assert (stats["p50"], stats["p95"], stats["p99"]) == (0.05, 0.095, 0.099)


def test_a_run_has_the_pytest_benchmark_keys_and_our_metrics(tmp_path):
    run = load_run(save_run(run_from_samples("b", samples(), errors=3, duration=0.5), tmp_path / "r.json"))
    assert set(run) >= {"machine_info", "commit_info", "benchmarks", "datetime", "version"}
    [bench] = run["benchmarks"]
    assert set(bench) >= {"name", "fullname", "group", "params", "param", "extra_info", "options", "stats"}
    assert set(bench["stats"]) >= {"min", "max", "mean", "stddev", "median", "iqr", "ops", "rounds",
                                   "p95", "p99", "error_rate", "throughput"}
    assert bench["stats"]["error_rate"] == pytest.approx(3 / 403)
    assert bench["stats"]["throughput"] == pytest.approx(800.0)


def test_saved_baselines_are_read_by_pytest_benchmarks_own_loader_and_compare_command(tmp_path):
    from pytest_benchmark.logger import Logger
    from pytest_benchmark.storage.file import FileStorage

    path = save_baseline("main", run_from_samples("execute_print", samples(), duration=1.0), tmp_path)
    assert path == tmp_path / "main.json"
    storage = FileStorage(tmp_path, Logger(Logger.QUIET))
    [bench] = list(storage.load_benchmarks(str(path)))
    assert bench["name"] == "execute_print" and bench["rounds"] == 400 and bench["p95"] > 0

    tool = os.path.join(os.path.dirname(sys.executable), "pytest-benchmark")
    if not os.path.exists(tool):
        pytest.skip("the pytest-benchmark command is not installed")
    out = subprocess.run([tool, "compare", str(path)], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "execute_print" in out.stdout


def test_a_pytest_benchmark_file_gains_p95_p99_from_its_raw_samples(tmp_path):
    lat = [i / 1000 for i in range(1, 101)]
    stats = {k: v for k, v in benchmark_from_samples("x", lat)["stats"].items()
             if k not in ("p50", "p95", "p99", "error_rate", "errors", "throughput", "duration")}
    doc = {"machine_info": {}, "commit_info": {}, "datetime": "2026-01-01T00:00:00", "version": "5.1.0",
           "benchmarks": [{"name": "test_x", "fullname": "t.py::test_x", "group": None, "params": None,
                           "param": None, "extra_info": {}, "options": {},
                           "stats": dict(stats, data=lat)},
                          {"name": "test_y", "fullname": "t.py::test_y", "group": None, "params": None,
                           "param": None, "extra_info": {"p99_us": 250.0}, "options": {},
                           "stats": dict(stats)}]}
    (tmp_path / "pb.json").write_text(json.dumps(doc))
    run = run_from_pytest_benchmark(tmp_path / "pb.json")
    x, y = run["benchmarks"]
    assert (x["stats"]["p95"], x["stats"]["p99"], x["stats"]["error_rate"]) == (0.095, 0.099, 0.0)
    assert x["stats"]["throughput"] == pytest.approx(x["stats"]["ops"])
    assert y["stats"]["p99"] == pytest.approx(250e-6) and "p95" not in y["stats"]
    skipped = [v for v in compare(run, run).verdicts if v.status == "skip"]
    assert [(v.benchmark, v.metric) for v in skipped] == [("test_y", "p95")]


def test_load_reports_become_runs():
    report = {"requests": {"completed": 200, "failed": 4}, "throughput": {"achieved": 98.0},
              "elapsed_s": 2.0, "latency_s": {"count": 196, "mean": 0.002, "min": 0.001, "p50": 0.0018,
                                              "p95": 0.004, "p99": 0.006, "max": 0.009}}
    metrics = report_metrics(report)
    assert metrics == {"p50": 0.0018, "p95": 0.004, "p99": 0.006, "error_rate": 0.02, "errors": 4,
                       "requests": 200, "throughput": 98.0, "duration": 2.0}
    [bench] = run_from_report("load", report)["benchmarks"]
    assert bench["stats"]["median"] == 0.0018 and bench["stats"]["rounds"] == 196
    assert "stddev" in bench["extra_info"]["not_measured"]
    verdicts = check_slo(bench, SLO(p99_ms=5, max_error_rate=0.05))
    assert [(v.metric, v.status) for v in verdicts] == [("p99", "fail"), ("error_rate", "pass")]

    raw = run_from_report("raw", {"latencies": [0.001] * 99 + [0.5], "errors": 1, "duration": 1.0})
    assert raw["benchmarks"][0]["stats"]["p99"] == 0.001
    assert raw["benchmarks"][0]["stats"]["error_rate"] == pytest.approx(1 / 101)


def test_baselines_are_found_by_name_and_a_missing_one_says_how_to_make_it(tmp_path):
    save_baseline("nightly", run_from_samples("b", [0.001] * 3), tmp_path)
    assert load_run("nightly", tmp_path)["benchmarks"][0]["name"] == "b"
    with pytest.raises(FileNotFoundError, match="faas-sdk baseline save other --from RUN.json"):
        load_run("other", tmp_path)
    with pytest.raises(ValueError, match="baseline name"):
        save_baseline("../escape", run_from_samples("b", [0.001]), tmp_path)


# ---- the command line ----------------------------------------------------------------------


def faas_sdk(*args, cwd):
    return subprocess.run([FAAS_SDK, *args], capture_output=True, text=True, cwd=cwd, timeout=60)


@pytest.fixture
def runs(tmp_path):
    lat = samples()
    save_run(run_from_samples("execute_print", lat, duration=1.0), tmp_path / "before.json")
    save_run(run_from_samples("execute_print", scaled(lat, 2.0), duration=2.0), tmp_path / "slower.json")
    save_run(run_from_samples("execute_print", scaled(lat, 1.03), duration=1.0), tmp_path / "same.json")
    return tmp_path


def test_cli_saves_a_baseline_into_the_default_directory(runs):
    out = faas_sdk("baseline", "save", "main", "--from", "before.json", cwd=runs)
    assert out.returncode == 0, out.stderr
    assert (runs / ".faas-baselines" / "main.json").is_file()
    assert "saved baseline 'main' (1 benchmark(s))" in out.stdout
    assert faas_sdk("baseline", "list", cwd=runs).stdout.split() == ["main"]


def test_cli_compare_exits_nonzero_on_regression_and_names_the_metric(runs):
    assert faas_sdk("baseline", "save", "main", "--from", "before.json", cwd=runs).returncode == 0
    out = faas_sdk("compare", "main", "slower.json", cwd=runs)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "execute_print p95 regressed by 100.0%" in out.stdout
    assert "execute_print throughput regressed by 50.0%" in out.stdout


def test_cli_compare_exits_zero_within_tolerance_and_slos(runs):
    assert faas_sdk("baseline", "save", "main", "--from", "before.json", "--dir", "b", cwd=runs).returncode == 0
    out = faas_sdk("compare", "main", "same.json", "--dir", "b", "--p95-ms", "50", "--max-error-rate", "0.01",
                   cwd=runs)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("OK")


def test_cli_compare_fails_a_missed_slo_and_honours_tolerance(runs):
    out = faas_sdk("compare", "before.json", "same.json", "--p95-ms", "0.5", "--json", "v.json", cwd=runs)
    assert out.returncode == 1
    assert "execute_print p95 misses its SLO" in out.stdout
    assert json.loads((runs / "v.json").read_text())["regressed"] is True
    assert faas_sdk("compare", "before.json", "slower.json", "--tolerance", "1.5", cwd=runs).returncode == 0


def test_cli_compare_exits_2_when_it_cannot_check_anything(runs):
    out = faas_sdk("compare", "nope", "same.json", cwd=runs)
    assert out.returncode == 2 and "no baseline named 'nope'" in out.stderr
    save_run(run_from_samples("other", [0.001] * 5), runs / "other.json")
    out = faas_sdk("compare", "before.json", "other.json", cwd=runs)
    assert out.returncode == 2 and "nothing was compared" in out.stderr
