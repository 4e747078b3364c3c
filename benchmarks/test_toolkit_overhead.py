"""The performance toolkit's own cost per measured operation, against what it measures.

A closed-loop LoadTester drives a no-op executor: everything it spends per operation (the
call, the clocks, both histograms, the timeline, the resource monitor) is overhead that a real
measurement carries too. It is compared, in the same run, with a warm LOCAL execute
(platform.execute of a print, from the warm pool) and with a round trip in a warm sandbox.
"""

import time

from faas_sdk.perf.load import LoadTester


def _per_operation(monitor: bool) -> tuple[float, int]:
    tester = LoadTester(lambda: None, concurrency=1, duration=1.0, monitor=monitor, progress=False)
    report = tester.run()
    assert report.failed == 0 and report.completed > 1000
    return report.elapsed / report.completed, report.completed


def _p50(fn, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    samples.sort()
    return samples[len(samples) // 2]


def test_toolkit_overhead_per_operation(benchmark, platform, sandbox, record_note):
    def execute():
        assert platform.execute("print('hello')").stdout == "hello\n"

    execute_p50 = _p50(execute, 200)
    round_trip_p50 = _p50(lambda: sandbox.run("pass"), 2000)
    bare, n_bare = benchmark.pedantic(_per_operation, args=(False,), rounds=1, iterations=1)
    monitored, n_mon = _per_operation(True)
    benchmark.extra_info.update(overhead_us=bare * 1e6, overhead_monitored_us=monitored * 1e6,
                                execute_p50_us=execute_p50 * 1e6, round_trip_p50_us=round_trip_p50 * 1e6)
    record_note(f"LoadTester, no-op executor, closed loop: {bare * 1e6:.1f} µs per operation "
                f"({n_bare} ops), {monitored * 1e6:.1f} µs with the resource monitor on")
    record_note(f"= {100 * bare / execute_p50:.2f}% of a warm LOCAL execute (p50 {execute_p50 * 1e3:.2f} ms; "
                f"target < 5%), {100 * monitored / execute_p50:.2f}% with the monitor")
    record_note(f"= {100 * bare / round_trip_p50:.1f}% of a round trip in a warm sandbox "
                f"(p50 {round_trip_p50 * 1e6:.1f} µs)")
