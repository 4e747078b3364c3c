"""The host does not leak across many sandbox lifetimes, and one platform scales across threads."""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest


def host_counts():
    me = psutil.Process()
    return me.memory_info().rss, me.num_threads(), me.num_fds()


def test_500_create_close_cycles_do_not_leak(platform):
    def cycle(i):
        with platform.create_sandbox() as sb:
            assert sb.run(f"{i} + 1").value == str(i + 1)

    for i in range(50):  # warm-up: pools, zygote, allocator high-water marks
        cycle(i)
    rss0, threads0, fds0 = host_counts()
    for i in range(500):
        cycle(i)
    platform_metrics = platform.metrics(memory=False)
    rss1, threads1, fds1 = host_counts()
    assert rss1 <= rss0 * 1.10, f"host RSS grew {100 * (rss1 / rss0 - 1):.1f}% over 500 cycles"
    assert threads1 <= threads0 + 1, (threads0, threads1)
    assert fds1 <= fds0 + 8, (fds0, fds1)  # pooled sandboxes may come and go
    assert platform_metrics["sandboxes_live"] < 20


@pytest.mark.parametrize("count", [10, 100, 1000])
def test_lightweight_executions_at_scale(platform, count):
    with platform.create_sandbox() as sb:
        sb.run("hits = 0")
        with ThreadPoolExecutor(max_workers=8) as pool:
            values = list(pool.map(lambda i: sb.run(f"hits += 1\n{i} * 3").value, range(count)))
        assert values == [str(i * 3) for i in range(count)]
        assert sb.run("hits").value == str(count)


def test_one_platform_shared_across_threads(platform):
    errors = []

    def worker(index):
        try:
            with platform.create_sandbox() as sb:
                for n in range(20):
                    assert sb.run(f"{index} * 100 + {n}").value == str(index * 100 + n)
            assert platform.execute(f"{index}").value == str(index)
        except Exception as exc:  # collected: assertion errors in threads would be lost
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
