"""The executor matrix and `faas-sdk bench`: statistics, JSON/CSV schema, table contents,
failure counting, same-run speed-ups and the command's exit status."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import faas_sdk
from faas_sdk import ExecutionPlatform, Mode, ModeNotAvailable
from faas_sdk.perf import matrix, matrix_cli
from faas_sdk.perf.matrix import STANDARD_CASES, Case, default_modes, run_matrix
from faas_sdk.perf.stats import LatencySummary, percentile

# ---- the schema, written out independently of the code under test ----------------------------

NUM_OR_NULL = (float, type(None))
SUMMARY_FIELDS: dict[str, Any] = {
    "executions": int, "successful": int, "failed": int, "success_rate": float,
    "total_s": float, "mean_s": NUM_OR_NULL, "min_s": NUM_OR_NULL, "max_s": NUM_OR_NULL,
    "p50_s": NUM_OR_NULL, "p95_s": NUM_OR_NULL, "p99_s": NUM_OR_NULL, "wall_s": float,
}
ROW_FIELDS: dict[str, Any] = {
    "kind": str, "mode": str, "case": str, **SUMMARY_FIELDS,
    "speedup_vs_subprocess": NUM_OR_NULL, "errors": list, "samples_s": list,
}
MODE_FIELDS: dict[str, Any] = {"mode": str, **SUMMARY_FIELDS}
MACHINE_FIELDS: dict[str, Any] = {
    "hostname": str, "system": str, "release": str, "machine": str,
    "cpu_count": (int, type(None)), "loadavg_1m": NUM_OR_NULL, "python_version": str,
    "python_implementation": str, "python_executable": str, "faas_sdk_version": str,
}
CONFIG_FIELDS: dict[str, Any] = {
    "executions": int, "warmup": int, "concurrency": int, "baseline_subprocess": bool,
    "operations": bool, "timeout_s": NUM_OR_NULL, "modes": list, "cases": list,
}
TOP_FIELDS: dict[str, Any] = {
    "schema_version": int, "generator": str, "created_at": str, "duration_s": float,
    "machine": dict, "config": dict, "rows": list, "modes": list,
}
CSV_COLUMNS = ["kind", "mode", "case", "executions", "successful", "failed", "success_rate",
               "total_s", "mean_s", "min_s", "max_s", "p50_s", "p95_s", "p99_s", "wall_s",
               "speedup_vs_subprocess", "errors"]
CSV_INTS = {"executions", "successful", "failed"}
CSV_FLOATS = {"success_rate", "total_s", "wall_s"}
CSV_OPTIONAL_FLOATS = {"mean_s", "min_s", "max_s", "p50_s", "p95_s", "p99_s", "speedup_vs_subprocess"}


def _check_fields(obj: dict, spec: dict[str, Any], where: str) -> None:
    assert isinstance(obj, dict), f"{where}: not an object"
    missing = set(spec) - set(obj)
    assert not missing, f"{where}: missing keys {sorted(missing)}"
    for key, kind in spec.items():
        value = obj[key]
        # bool is an int subclass; a count or a time must not be a bool.
        assert not (isinstance(value, bool) and kind is not bool), f"{where}.{key}: bool {value!r}"
        assert isinstance(value, kind), f"{where}.{key}: {type(value).__name__} {value!r}"


def _check_counts(row: dict, where: str) -> None:
    assert row["executions"] == row["successful"] + row["failed"], where
    if row["executions"]:
        assert math.isclose(row["success_rate"], row["successful"] / row["executions"]), where
    have = row["successful"] > 0
    for key in ("mean_s", "min_s", "max_s", "p50_s", "p95_s", "p99_s"):
        assert (row[key] is not None) == have, f"{where}.{key}: {row[key]!r}"
    if have:
        assert 0 <= row["min_s"] <= row["p50_s"] <= row["p95_s"] <= row["p99_s"] <= row["max_s"], where


def validate_json(doc: dict) -> None:
    _check_fields(doc, TOP_FIELDS, "report")
    assert doc["schema_version"] == 1
    _check_fields(doc["machine"], MACHINE_FIELDS, "machine")
    _check_fields(doc["config"], CONFIG_FIELDS, "config")
    assert doc["rows"] and doc["modes"]
    for i, row in enumerate(doc["rows"]):
        where = f"rows[{i}]"
        _check_fields(row, ROW_FIELDS, where)
        assert row["kind"] in {"execution", "baseline", "operation"}, where
        _check_counts(row, where)
        assert all(isinstance(e, str) for e in row["errors"]), where
        assert len(row["samples_s"]) == row["successful"], where
        assert all(isinstance(s, float) and s >= 0 for s in row["samples_s"]), where
    for i, mode in enumerate(doc["modes"]):
        _check_fields(mode, MODE_FIELDS, f"modes[{i}]")
        _check_counts(mode, f"modes[{i}]")


def validate_csv(text: str) -> list[dict]:
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == CSV_COLUMNS
    rows = list(reader)
    assert rows
    for i, row in enumerate(rows):
        where = f"csv line {i + 2}"
        assert row["kind"] in {"execution", "baseline", "operation", "mode"}, where
        assert row["mode"], where
        assert (row["case"] == "") == (row["kind"] == "mode"), where
        for key in CSV_INTS:
            int(row[key])
        for key in CSV_FLOATS:
            float(row[key])
        for key in CSV_OPTIONAL_FLOATS:
            if row[key] != "":
                float(row[key])
        assert int(row["executions"]) == int(row["successful"]) + int(row["failed"]), where
    return rows


# ---- statistics ----------------------------------------------------------------------------

def test_percentiles_are_nearest_rank_samples():
    ten = [float(i) for i in range(10, 0, -1)]  # unsorted on purpose
    assert percentile(ten, 50) == 5.0
    assert percentile(ten, 95) == 10.0
    assert percentile(ten, 10) == 1.0
    hundred = [float(i) for i in range(1, 101)]
    assert (percentile(hundred, 50), percentile(hundred, 95), percentile(hundred, 99)) == (50.0, 95.0, 99.0)
    assert percentile([float(i) for i in range(1, 1001)], 99.9) == 999.0
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 0)


def test_latency_summary_counts_failures_but_times_successes_only():
    s = LatencySummary.from_samples([0.3, 0.1, 0.2], failures=1)
    assert (s.count, s.successful, s.failed, s.success_rate) == (4, 3, 1, 0.75)
    assert s.total == pytest.approx(0.6) and s.mean == pytest.approx(0.2)
    assert (s.min, s.max, s.p50, s.p95, s.p99) == (0.1, 0.3, 0.2, 0.3, 0.3)
    assert list(s.to_dict()) == ["count", "successful", "failed", "success_rate", "total", "mean",
                                 "min", "max", "p50", "p95", "p99"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.count = 5  # type: ignore[misc]


def test_latency_summary_without_samples_has_no_times():
    s = LatencySummary.from_samples([], failures=2)
    assert (s.count, s.successful, s.failed, s.success_rate, s.total) == (2, 0, 2, 0.0, 0.0)
    assert (s.mean, s.min, s.max, s.p50, s.p95, s.p99) == (None,) * 6
    assert LatencySummary.from_samples([]).success_rate == 0.0


# ---- one matrix run with the baseline, shared by the tests below -------------------------------

@pytest.fixture(scope="module")
def matrix_platform():
    with ExecutionPlatform() as p:
        yield p


@pytest.fixture(scope="module")
def report(matrix_platform):
    return run_matrix(matrix_platform, executions=3, warmup=1, concurrency=2, baseline_subprocess=True)


def test_default_modes_are_every_available_mode():
    assert set(default_modes()) == set(faas_sdk.AVAILABLE_MODES)
    assert default_modes() == [m for m in Mode if m in faas_sdk.AVAILABLE_MODES]


def test_standard_run_succeeds_with_verified_output(report):
    assert report.all_succeeded, report.to_table()
    assert report.config["modes"] == [m.name for m in default_modes()]
    assert report.config["cases"] == [c.name for c in STANDARD_CASES]
    for row in report.rows:
        assert row.latency.count == 3 and row.latency.successful == 3, row


def test_json_validates_against_the_schema(report, tmp_path):
    path = tmp_path / "matrix.json"
    path.write_text(report.to_json())
    doc = json.loads(path.read_text())
    validate_json(doc)
    keys = {(r["kind"], r["mode"], r["case"]) for r in doc["rows"]}
    expected = {("execution", m.name, c.name) for m in default_modes() for c in STANDARD_CASES}
    expected |= {("baseline", "subprocess", c.name) for c in STANDARD_CASES}
    expected |= {("operation", "LOCAL", "sandbox.snapshot()"), ("operation", "LOCAL", "snapshot.branch()")}
    assert keys == expected
    assert [m["mode"] for m in doc["modes"]] == [m.name for m in default_modes()]


def test_csv_validates_against_the_schema(report, tmp_path):
    path = tmp_path / "matrix.csv"
    path.write_text(report.to_csv())
    rows = validate_csv(path.read_text())
    assert len(rows) == len(report.rows) + len(report.modes)
    first = rows[0]
    assert float(first["p50_s"]) == report.rows[0].latency.p50  # full precision, seconds


def test_table_lists_every_mode_and_case_with_every_column(report):
    table = report.to_table()
    header = next(line for line in table.splitlines() if line.startswith("mode"))
    for column in ("case", "executions", "successful", "failed", "success rate", "total", "mean",
                   "min", "max", "p50", "p95", "p99", "speed-up"):
        assert column in header
    for mode in [m.name for m in default_modes()] + ["subprocess"]:
        for case in STANDARD_CASES:
            pattern = rf"^{mode}\s+{re.escape(case.name)}\s+3\s+3\s+0\s+100\.0%"
            assert re.search(pattern, table, re.M), f"no row {mode} / {case.name}:\n{table}"
    for mode in default_modes():
        assert re.search(rf"^{mode.name}\s+all cases\s+12\s+12\s+0", table, re.M)


def test_speedups_are_baseline_p50_over_row_p50_from_the_same_run(report):
    table = report.to_table().splitlines()
    for row in report.rows:
        if row.kind != "execution":
            assert row.speedup is None
            continue
        base = report.row("subprocess", row.case)
        assert row.speedup == pytest.approx(base.latency.p50 / row.latency.p50)
        # The baseline's samples were taken inside this run, not loaded from elsewhere.
        assert 0 < base.wall_time <= report.duration
        line = next(l for l in table if re.match(rf"{row.mode}\s+{re.escape(row.case)}\s", l))
        assert line.rstrip().endswith(f"{row.speedup:.1f}x")


def test_checkpointed_snapshots_and_the_branched_base_are_released(report, matrix_platform):
    assert matrix_platform.snapshots == []
    assert matrix_platform.sandboxes == []


# ---- failures -------------------------------------------------------------------------------

RAISES = Case("Raises", "raise ValueError('boom')", None)
WRONG_OUTPUT = Case("Wrong Output", "print('hi')", "bye\n")


def _live_snapshots_settle_at(platform, expected: int) -> bool:
    deadline = time.monotonic() + 5
    while platform.metrics(memory=False)["snapshots_live"] != expected:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_failures_are_counted_not_raised(platform, monkeypatch):
    # Without the garbage collector's help: the matrix itself must release every snapshot.
    monkeypatch.setattr(faas_sdk.Snapshot, "__del__", lambda self: None)
    live_before = platform.metrics(memory=False)["snapshots_live"]
    cases = [STANDARD_CASES[0], RAISES, WRONG_OUTPUT]
    report = run_matrix(platform, modes=[Mode.LOCAL, Mode.CHECKPOINTED], cases=cases,
                        executions=3, warmup=0, concurrency=2, baseline_subprocess=True,
                        operations=False)
    assert not report.all_succeeded
    for mode in ("LOCAL", "CHECKPOINTED"):
        ok, raised, wrong = (report.row(mode, c.name) for c in cases)
        assert (ok.latency.successful, ok.latency.failed) == (3, 0)
        assert (raised.latency.successful, raised.latency.failed, raised.latency.success_rate) == (0, 3, 0.0)
        assert raised.latency.p50 is None and raised.speedup is None
        assert raised.errors == ("ValueError: boom",)
        assert wrong.latency.failed == 3
        assert wrong.errors[0].startswith("wrong output: expected 'bye\\n'")
    # CHECKPOINTED snapshots a failed execution's end state too; the matrix released them all.
    assert _live_snapshots_settle_at(platform, live_before)
    base_raised = report.row("subprocess", "Raises")
    assert base_raised.latency.failed == 3 and "ValueError: boom" in base_raised.errors[0]
    for summary in report.modes:
        assert (summary.latency.count, summary.latency.successful, summary.latency.failed) == (9, 3, 6)
        assert summary.latency.success_rate == pytest.approx(1 / 3)
    table = report.to_table()
    assert re.search(r"^LOCAL\s+Raises\s+3\s+0\s+3\s+0\.0%", table, re.M)
    assert re.search(r"^CHECKPOINTED\s+all cases\s+9\s+3\s+6\s+33\.3%", table, re.M)
    assert "Failures:" in table and "LOCAL / Raises: ValueError: boom" in table
    validate_json(json.loads(report.to_json()))
    validate_csv(report.to_csv())


def test_concurrency_is_bounded():
    lock = threading.Lock()
    in_flight = peak = 0

    def call(_context):
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.02)
        with lock:
            in_flight -= 1

    samples = matrix._run_timed(matrix._Trial(call=call), count=12, concurrency=3)
    assert len(samples) == 12 and all(s.ok and s.latency >= 0.02 for s in samples)
    assert peak == 3


def test_modes_follow_available_modes_at_call_time(platform, monkeypatch):
    monkeypatch.setattr(faas_sdk, "AVAILABLE_MODES", frozenset({Mode.LOCAL}))
    report = run_matrix(platform, cases=["simple print"], executions=1, warmup=0, operations=False)
    assert {r.mode for r in report.rows} == {"LOCAL"}
    with pytest.raises(ModeNotAvailable):
        run_matrix(platform, modes=["branched"], executions=1)
    with pytest.raises(ValueError, match="unknown mode"):
        run_matrix(platform, modes=["nope"], executions=1)
    with pytest.raises(ValueError, match="unknown case"):
        run_matrix(platform, cases=["nope"], executions=1)


def test_cases_are_selected_by_name_or_key():
    assert [c.key for c in STANDARD_CASES] == ["simple_print", "loop_calculation",
                                               "function_definition", "file_io"]
    chosen = matrix.resolve_cases(["file_io", "Simple Print", "loop-calculation"])
    assert [c.name for c in chosen] == ["File I/O", "Simple Print", "Loop Calculation"]
    with pytest.raises(ValueError, match="given twice"):
        matrix.resolve_cases(["file_io", "File I/O"])


# ---- the command ----------------------------------------------------------------------------

def test_bench_command_runs_writes_valid_files_and_exits_0(tmp_path):
    faas_sdk_cli = Path(sys.executable).with_name("faas-sdk")
    assert faas_sdk_cli.exists(), faas_sdk_cli
    proc = subprocess.run([str(faas_sdk_cli), "bench", "--executions", "2", "--json", "out.json",
                           "--csv", "out.csv"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Executor matrix" in proc.stdout and "Simple Print" in proc.stdout
    validate_json(json.loads((tmp_path / "out.json").read_text()))
    validate_csv((tmp_path / "out.csv").read_text())


def test_bench_command_exits_1_when_an_execution_fails(monkeypatch, capsys):
    real = matrix_cli.run_matrix
    monkeypatch.setattr(matrix_cli, "run_matrix",
                        lambda platform, **kw: real(platform, **{**kw, "cases": [RAISES]}))
    from faas_sdk.cli import main
    status = main(["bench", "--executions", "1", "--warmup", "0", "--modes", "local",
                   "--no-operations", "--quiet"])
    assert status == 1
    assert "LOCAL / Raises: ValueError: boom" in capsys.readouterr().out


def test_bench_command_rejects_an_unknown_case(capsys):
    from faas_sdk.cli import main
    with pytest.raises(SystemExit) as exited:
        main(["bench", "--cases", "nope", "--quiet"])
    assert exited.value.code == 2
    assert "unknown case 'nope'" in capsys.readouterr().err
