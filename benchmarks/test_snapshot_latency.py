"""Snapshots and branches of a ~40 MiB kernel: snapshot, branch until ready, explore_parallel,
1,000 branches at once, and the unique memory of an idle branch."""

from __future__ import annotations

import statistics
import time

import psutil
import pytest

from faas_sdk import Sandbox

MIB = 1 << 20
DATA_BYTES = 30 * MIB
# Allocate and touch one byte per page, so the 30 MiB are resident (bytearray's zeroed pages
# are not, until written).
SETUP = ("data = bytearray(30 << 20)\n"
         "data[::4096] = b'x' * len(data[::4096])\n"
         "def solve(k):\n"
         "    return sum(i * i for i in range(k * 100))\n")
SNAP_ROUNDS, SNAP_WARMUP = 200, 5
BRANCH_ROUNDS, BRANCH_WARMUP = 200, 5
COLD_ROUNDS, COLD_WARMUP = 100, 3
EXPLORE_ROUNDS, EXPLORE_WARMUP = 100, 5
MANY, MANY_ROUNDS = 1000, 3
IDLE_BRANCHES, IDLE_PAUSE_S = 20, 0.2
DISPOSAL_PAUSE_S = 0.01  # untimed; lets the previous round's branches be killed and removed


@pytest.fixture(scope="module")
def big_sandbox(platform):
    """A sandbox whose kernel holds 30 MiB of touched data and defines solve()."""
    with platform.create_sandbox() as sb:
        r = sb.run(SETUP)
        assert r.success, r.error
        rss = psutil.Process(sb.pid).memory_info().rss
        assert rss >= DATA_BYTES, f"kernel RSS {rss} bytes: the data is not resident"
        yield sb


@pytest.fixture(scope="module")
def big_snapshot(big_sandbox):
    with big_sandbox.snapshot() as snap:
        yield snap


def _sees_snapshot_state(sb: Sandbox) -> bool:
    return sb.alive and sb.run("len(data)").value == str(DATA_BYTES)


def test_snapshot_of_a_30mb_kernel(benchmark, big_sandbox, record):
    rss = psutil.Process(big_sandbox.pid).memory_info().rss
    taken = []

    def release_it():
        snap = taken.pop()
        assert snap.alive
        snap.release()

    benchmark.pedantic(lambda: taken.append(big_sandbox.snapshot()), teardown=release_it,
                       rounds=SNAP_ROUNDS, warmup_rounds=SNAP_WARMUP, iterations=1)
    record(benchmark, "snapshot", kernel_rss_mib=round(rss / MIB, 1))


def test_branch_until_ready(benchmark, big_snapshot, record):
    made = []

    def close_it():
        b = made.pop()
        assert _sees_snapshot_state(b), b
        b.close()

    benchmark.pedantic(lambda: made.append(big_snapshot.branch()), teardown=close_it,
                       rounds=BRANCH_ROUNDS, warmup_rounds=BRANCH_WARMUP, iterations=1)
    record(benchmark, "branch")


def test_first_branch_of_a_snapshot(benchmark, big_sandbox, record):
    """A template keeps a spare child once it has served a branch; the first branch of a
    snapshot (like every branch of a burst after the first) is forked on demand."""
    snapshots, made = [], []

    def new_snapshot():
        snapshots.append(big_sandbox.snapshot())
        time.sleep(DISPOSAL_PAUSE_S)  # untimed: the template finishes starting

    def close_both():
        b = made.pop()
        assert _sees_snapshot_state(b), b
        b.close()
        snapshots.pop().release()

    benchmark.pedantic(lambda: made.append(snapshots[-1].branch()), setup=new_snapshot,
                       teardown=close_both, rounds=COLD_ROUNDS, warmup_rounds=COLD_WARMUP,
                       iterations=1)
    record(benchmark, "branch_cold")


def test_branch_until_its_first_result(benchmark, big_snapshot, record):
    """What an agent waits for: a branch, and the result of its first cell. The branch's own
    Python set-up runs at its first frame (see docs/benchmarks.md), so it is in this clock."""
    made: list = []
    engine: list[float] = []

    def branch_and_run():
        b = big_snapshot.branch()
        r = b.run("len(data)")
        assert r.value == str(DATA_BYTES), r
        engine.append(r.duration)
        made.append(b)

    benchmark.pedantic(branch_and_run, teardown=lambda: made.pop().close(), rounds=BRANCH_ROUNDS,
                       warmup_rounds=BRANCH_WARMUP, iterations=1)
    record(benchmark, "branch_first_run", engine=engine[-BRANCH_ROUNDS:])


def test_explore_parallel_three_branches(benchmark, platform, big_snapshot, record):
    codes = ["solve(1)", "solve(2)", "solve(3)"]
    expected = [str(sum(i * i for i in range(k * 100))) for k in (1, 2, 3)]
    engine: list[float] = []

    def explore():
        results = platform.explore_parallel(codes, base_snapshot=big_snapshot)
        assert all(r.success for r in results), results
        assert [r.value for r in results] == expected, results
        engine.append(max(r.duration for r in results))

    benchmark.pedantic(explore, setup=lambda: time.sleep(DISPOSAL_PAUSE_S), rounds=EXPLORE_ROUNDS,
                       warmup_rounds=EXPLORE_WARMUP, iterations=1)
    record(benchmark, "explore3", engine=engine[-EXPLORE_ROUNDS:])


def test_thousand_branches_at_once(benchmark, big_snapshot, record):
    made: list = []
    failures: list[int] = []

    def close_all():
        branches = made.pop()
        bad = [b for b in branches if not isinstance(b, Sandbox)]
        failures.append(len(bad))
        good = [b for b in branches if isinstance(b, Sandbox)]
        assert len(branches) == MANY and good, bad[:3]
        assert _sees_snapshot_state(good[0]) and _sees_snapshot_state(good[-1])
        for b in good:
            b.close()

    benchmark.pedantic(lambda: made.append(big_snapshot.branch(count=MANY)), teardown=close_all,
                       rounds=MANY_ROUNDS, warmup_rounds=0, iterations=1)
    record(benchmark, "branch_1000", branches=MANY, failures=sum(failures),
           failure_per_round=failures)


def test_unique_memory_of_an_idle_branch(benchmark, platform, big_snapshot, record_memory):
    """A measurement, not a timing: the one benchmarked round is reading the branches' smaps."""
    branches = big_snapshot.branch(count=IDLE_BRANCHES)
    try:
        assert all(isinstance(b, Sandbox) for b in branches), branches
        with platform.create_sandbox() as fresh:
            time.sleep(IDLE_PAUSE_S)
            uss: list[int] = []

            def measure():
                uss[:] = [psutil.Process(b.pid).memory_full_info().uss for b in branches]

            benchmark.pedantic(measure, rounds=1, iterations=1)
            fresh_uss = psutil.Process(fresh.pid).memory_full_info().uss
        assert all(_sees_snapshot_state(b) for b in branches)  # after the measurement
    finally:
        for b in branches:
            if isinstance(b, Sandbox):
                b.close()
    record_memory(benchmark, "branch_uss", uss,
                  template_uss=big_snapshot.memory()["uss"], fresh_sandbox_uss=fresh_uss)
    assert statistics.median(uss) > 0
