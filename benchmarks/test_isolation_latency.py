"""SECURE mode against LOCAL and against bubblewrap, in the same run.

- a SECURE sandbox from its warm pool (target p50 <= 3 ms), and one forked and confined on
  demand (non-default options bypass the pool);
- execute(print) in SECURE from the warm pool;
- the warm round trip in SECURE and LOCAL, in paired rounds (target: SECURE within 10%);
- `bwrap --unshare-all ... python -c "print('hello')"`, the conventional baseline.
Branch creation in SECURE is not benchmarked: snapshots of SECURE sandboxes do not exist yet.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

from faas_sdk import Mode
from faas_sdk._isolation import secure_unavailable_reason

ROUNDS, WARMUP = 200, 10
RT_ROUNDS, RT_WARMUP = 5000, 200
BWRAP_ROUNDS = 30
POOL_REFILL_PAUSE_S = 0.03

pytestmark = pytest.mark.skipif(secure_unavailable_reason() is not None,
                                reason=str(secure_unavailable_reason()))


def test_secure_create_from_refilled_warm_pool(benchmark, platform, record):
    made = []
    platform.create_sandbox(mode=Mode.SECURE).close()  # starts the SECURE zygote and its pool

    def close_it():
        sb = made.pop()
        assert sb.run("import os; os.getuid() != 0").value == "True"
        sb.close()

    benchmark.pedantic(lambda: made.append(platform.create_sandbox(mode=Mode.SECURE)),
                       setup=lambda: time.sleep(POOL_REFILL_PAUSE_S), teardown=close_it,
                       rounds=ROUNDS, warmup_rounds=WARMUP, iterations=1)
    record(benchmark, "secure_create_warm")


def test_secure_create_forked_on_demand(benchmark, platform, record):
    made = []

    def close_it():
        sb = made.pop()
        assert sb.run("import os; os.environ['K']").value == "'V'"
        sb.close()

    benchmark.pedantic(lambda: made.append(platform.create_sandbox(mode=Mode.SECURE, env={"K": "V"})),
                       teardown=close_it, rounds=ROUNDS, warmup_rounds=WARMUP, iterations=1)
    record(benchmark, "secure_create_fork")


def test_secure_execute_print_from_refilled_warm_pool(benchmark, platform, record):
    engine: list[float] = []

    def execute():
        r = platform.execute("print('hello')", mode=Mode.SECURE)
        assert r.success and r.stdout == "hello\n", r
        engine.append(r.duration)

    benchmark.pedantic(execute, setup=lambda: time.sleep(POOL_REFILL_PAUSE_S), rounds=ROUNDS,
                       warmup_rounds=WARMUP, iterations=1)
    record(benchmark, "secure_execute_warm", engine=engine[-ROUNDS:])


@pytest.mark.parametrize("mode", [Mode.LOCAL, Mode.SECURE], ids=["LOCAL", "SECURE"])
def test_round_trip_paired(benchmark, platform, record, mode):
    """Each round runs `pass` in both modes back to back, so machine noise hits both alike;
    pytest-benchmark times the mode under test, the other keeps the pairing."""
    with platform.create_sandbox(mode=Mode.LOCAL) as local, platform.create_sandbox(mode=Mode.SECURE) as secure:
        timed, other = (local, secure) if mode is Mode.LOCAL else (secure, local)
        engine: list[float] = []

        def paired_round():
            r = timed.run("pass")
            assert r.success, r.error
            engine.append(r.duration)

        def other_round() -> None:  # pedantic's setup must return None
            other.run("pass")

        benchmark.pedantic(paired_round, setup=other_round, rounds=RT_ROUNDS,
                           warmup_rounds=RT_WARMUP, iterations=1)
        record(benchmark, f"round_trip_{mode.value}_paired", engine=engine[-RT_ROUNDS:])


def test_bwrap_python_baseline(benchmark, record):
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        pytest.skip("bubblewrap is not installed (scripts/ensure_system_packages.sh installs it)")
    command = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
               "--unshare-all", "--die-with-parent", "--new-session", sys.executable, "-c", "print('hello')"]

    def run():
        out = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and out.stdout == "hello\n", out.stderr

    benchmark.pedantic(run, rounds=BWRAP_ROUNDS, warmup_rounds=2, iterations=1)
    record(benchmark, "bwrap")
