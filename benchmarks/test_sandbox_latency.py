"""Engine latency: warm round trip, one-shot execute from the warm pool, sandbox creation."""

from __future__ import annotations

import time

RT_ROUNDS, RT_WARMUP = 10000, 500
EXEC_ROUNDS, EXEC_WARMUP = 500, 20
CREATE_ROUNDS, CREATE_WARMUP = 200, 5
POOL_REFILL_PAUSE_S = 0.02  # untimed; long enough for the pool to fork and ready a replacement


def test_round_trip_pass_in_warm_sandbox(benchmark, sandbox, record):
    engine: list[float] = []

    def run_pass():
        r = sandbox.run("pass")
        assert r.success, r.error
        engine.append(r.duration)

    benchmark.pedantic(run_pass, rounds=RT_ROUNDS, warmup_rounds=RT_WARMUP, iterations=1)
    record(benchmark, "round_trip", engine=engine[-RT_ROUNDS:])


def _execute_print(platform, engine: list[float]) -> None:
    r = platform.execute("print('hello')")
    assert r.success and r.stdout == "hello\n", r
    engine.append(r.duration)


def test_execute_print_from_refilled_warm_pool(benchmark, platform, record):
    """What a caller sees when the pool has had time to refill between calls."""
    engine: list[float] = []
    benchmark.pedantic(_execute_print, args=(platform, engine),
                       setup=lambda: time.sleep(POOL_REFILL_PAUSE_S),
                       rounds=EXEC_ROUNDS, warmup_rounds=EXEC_WARMUP, iterations=1)
    record(benchmark, "execute_warm", engine=engine[-EXEC_ROUNDS:])


def test_execute_print_back_to_back(benchmark, platform, record):
    """Sustained calls: the pool of 2 cannot keep up, so some calls wait for a fork to be ready."""
    engine: list[float] = []
    benchmark.pedantic(_execute_print, args=(platform, engine), rounds=EXEC_ROUNDS,
                       warmup_rounds=EXEC_WARMUP, iterations=1)
    record(benchmark, "execute_back_to_back", engine=engine[-EXEC_ROUNDS:])


def test_create_sandbox_with_env_until_ready(benchmark, platform, record):
    """Non-default options bypass the pool: a fork of the warm zygote, timed until READY."""
    made = []

    def create():
        made.append(platform.create_sandbox(env={"K": "V"}))

    def close_it():
        sb = made.pop()
        assert sb.alive and sb.run("import os; os.environ['K']").value == "'V'"
        sb.close()

    benchmark.pedantic(create, teardown=close_it, rounds=CREATE_ROUNDS, warmup_rounds=CREATE_WARMUP,
                       iterations=1)
    record(benchmark, "create_env")
