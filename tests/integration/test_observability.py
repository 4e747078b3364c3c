"""Metrics histograms and logging forwarded into Python."""

import logging

import pytest

from faas_sdk import FaasError


def test_metrics_count_starts_and_executions(platform):
    before = platform.metrics()
    with platform.create_sandbox(env={"X": "1"}) as sb:
        for _ in range(20):
            sb.run("pass")
        sb.run("1/0")
    after = platform.metrics()
    assert after["execute"]["count"] >= before["execute"]["count"] + 21
    assert after["executions_failed"] >= before["executions_failed"] + 1
    assert after["sandboxes_started"] >= before["sandboxes_started"] + 1
    for name in ("execute", "sandbox_start"):
        h = after[name]
        assert 0 < h["min"] <= h["p50"] <= h["p95"] <= h["p99"] <= h["p999"] <= h["max"]


def test_latency_percentiles_track_real_durations(platform):
    with platform.create_sandbox() as sb:
        before = platform.metrics()["execute"]["count"]
        for _ in range(10):
            sb.run("import time\ntime.sleep(0.05)")
        m = platform.metrics()["execute"]
        assert m["count"] == before + 10
        assert m["max"] >= 0.05 and m["p99"] >= 0.05


def test_timeouts_are_counted(platform):
    before = platform.metrics()["timeouts"]
    with platform.create_sandbox() as sb:
        sb.run("while True: pass", timeout=0.1)
    assert platform.metrics()["timeouts"] == before + 1


def test_engine_warnings_reach_python_logging(platform, caplog):
    import time
    caplog.set_level(logging.WARNING, logger="faas_sdk")
    with pytest.raises(FaasError):
        platform.create_sandbox(python="/nonexistent/python-for-log-test")
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and not any("python-for-log-test" in r.getMessage() for r in caplog.records):
        time.sleep(0.02)
    records = [r for r in caplog.records if "python-for-log-test" in r.getMessage()]
    assert records and records[0].name == "faas_sdk.engine" and records[0].levelno == logging.WARNING
