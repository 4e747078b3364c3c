"""Many sandboxes, many threads, one platform."""

import random
import threading
from concurrent.futures import ThreadPoolExecutor


def test_100_sandboxes_times_100_executions_from_8_threads(platform):
    sandboxes = [platform.create_sandbox() for _ in range(100)]
    try:
        for i, sb in enumerate(sandboxes):
            sb.run(f"ident = {i}\ncount = 0")

        def work(thread_index: int) -> int:
            rng = random.Random(thread_index)
            done = 0
            for n in range(1250):  # 8 x 1250 = 10,000 executions = 100 per sandbox on average
                i = rng.randrange(len(sandboxes))
                result = sandboxes[i].run(f"count += 1\nprint(ident)\n(ident, {n})")
                assert result.success, result.error
                assert result.value == f"({i}, {n})" and result.stdout == f"{i}\n"
                done += 1
            return done

        with ThreadPoolExecutor(max_workers=8) as pool:
            assert sum(pool.map(work, range(8))) == 10_000
        counts = [int(sb.run("count").value) for sb in sandboxes]
        assert sum(counts) == 10_000  # every execution ran exactly once, in its own sandbox
    finally:
        for sb in sandboxes:
            sb.close()


def test_one_sandbox_shared_by_threads_serialises_executions(sandbox):
    sandbox.run("total = 0")

    def add(_):
        for _ in range(50):
            assert sandbox.run("total += 1").success

    threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sandbox.run("total").value == "400"


def test_concurrent_one_shot_executes(platform):
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: platform.execute(f"print({i})"), range(200)))
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(200)]
    assert len({r.sandbox_id for r in results}) == 200
