"""Profiling helpers: cProfile and tracemalloc on the host, and Sandbox.run(profile=True),
which profiles the code inside the sandbox without changing what run() returns."""

from __future__ import annotations

import io

import pytest

from faas_sdk import ExecutionResult
from faas_sdk.perf.profiling import (
    MemoryReport,
    ProfiledResult,
    ProfileReport,
    memory_profile,
    profile,
)


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def light() -> int:
    return sum(range(10))


def work() -> int:
    return fib(16) + light()


# ---- host: cProfile ------------------------------------------------------------------------


def test_profile_block_ranks_functions_by_cumulative_time():
    with profile() as prof:
        work()
    top = prof.top(3)
    assert [row.name for row in top[:2]] == ["work", "fib"]
    assert top[0].cumtime >= top[1].cumtime
    [fib_row] = prof.result.find("fib")
    assert fib_row.calls == 3193 and fib_row.primitive_calls == 1
    assert fib_row.function.endswith(f"test_profiling.py:{fib.__code__.co_firstlineno}(fib)")
    assert not prof.result.find("_lsprof"), "the profiler's own calls are left out"


def test_profile_report_is_a_readable_table():
    with profile(top=2) as prof:
        work()
    text = prof.report()
    lines = text.splitlines()
    assert "function calls (" in lines[0] and lines[0].endswith("seconds")
    assert lines[1].startswith("Ordered by: cumulative; top 2 of")
    assert "ncalls" in text and "cumtime" in text
    assert "3193/1" in text and "(fib)" in text
    assert str(prof.result) == prof.result.report()


def test_profile_can_sort_by_own_time():
    with profile() as prof:
        work()
    assert prof.top(1, sort="tottime")[0].name == "fib"
    with pytest.raises(ValueError, match="sort must be one of"):
        profile(sort="bogus")


def test_profile_decorator_profiles_every_call_and_keeps_the_last():
    out = io.StringIO()

    @profile(print_to=out, top=5)
    def job(n):
        return fib(n)

    assert job.last_profile is None
    assert job(10) == 55
    first = job.last_profile
    assert job(12) == 144
    assert job.last_profile is not first
    assert job.last_profile.find("fib")[0].calls == 465
    assert out.getvalue().count("profile of test_profile_decorator_profiles_every_call_and_keeps_the_last.<locals>.job:") == 2


def test_bare_profile_decorator_and_recursion_work():
    @profile
    def countdown(n):
        return 0 if n == 0 else 1 + countdown(n - 1)

    assert countdown(30) == 30  # the inner calls run unprofiled inside the outer profile
    assert countdown.last_profile.find("countdown")[0].calls == 31


def test_profile_blocks_do_not_nest():
    with profile():
        with pytest.raises(RuntimeError, match="cannot nest"):
            with profile():
                pass
    with profile() as prof:  # usable again afterwards
        light()
    assert prof.result.find("light")


def test_a_result_is_available_only_after_the_block():
    prof = profile()
    with pytest.raises(RuntimeError, match="has not finished"):
        prof.report()


def test_profile_report_round_trips_through_a_dict():
    with profile() as prof:
        work()
    again = ProfileReport.from_dict(prof.result.to_dict())
    assert again.rows == prof.result.rows and again.total_calls == prof.result.total_calls


# ---- host: tracemalloc ---------------------------------------------------------------------


def allocate_and_keep():
    return [bytes(1000) for _ in range(2000)]


def test_memory_profile_reports_peak_net_and_allocation_sites():
    with memory_profile() as mem:
        kept = allocate_and_keep()
        scratch = bytearray(8 << 20)
        del scratch
    report = mem.result
    assert isinstance(report, MemoryReport)
    assert report.peak_bytes >= 8 << 20
    assert 2_000_000 <= report.allocated_bytes < 4 << 20
    top = report.top(1)[0]
    assert top.filename == __file__ and top.lineno == allocate_and_keep.__code__.co_firstlineno + 1
    assert top.size_bytes >= 2_000_000 and top.count >= 2000
    assert "peak " in report.report() and f"test_profiling.py:{top.lineno}" in report.report()
    assert len(kept) == 2000


def test_memory_profile_decorator_and_call_chains():
    @memory_profile(nframes=3)
    def outer():
        return allocate_and_keep()

    outer()
    site = outer.last_profile.top(1)[0]
    assert len(site.traceback) == 3 and site.traceback[-1] == site.where
    assert "called from" in outer.last_profile.report()


def test_memory_profile_leaves_an_existing_tracemalloc_session_running():
    import tracemalloc

    tracemalloc.start()
    try:
        with memory_profile() as mem:
            kept = allocate_and_keep()
        assert tracemalloc.is_tracing()
        assert mem.result.top(1)[0].size_bytes >= 2_000_000
        del kept
    finally:
        tracemalloc.stop()


def test_only_one_memory_profile_runs_at_a_time():
    with memory_profile():
        with pytest.raises(RuntimeError, match="one memory profile at a time"):
            with memory_profile():
                pass


# ---- inside a sandbox ----------------------------------------------------------------------


def test_sandbox_run_with_profile_returns_the_same_result_plus_the_profile(sandbox):
    sandbox.run("def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)")
    r = sandbox.run("x = fib(15)\nprint('computed')\nx * 2", profile=True)
    assert isinstance(r, ProfiledResult) and isinstance(r, ExecutionResult)
    assert r.success and r.value == "1220" and r.stdout == "computed\n" and r.outcome == "completed"
    assert r.duration > 0 and r.sandbox_id == sandbox.id
    [row] = r.profile.find("(fib)")
    assert row.calls == 1973 and row.primitive_calls == 1
    assert row.function.startswith("<cell-")
    assert r.profile.top(1)[0].cumtime >= row.cumtime
    assert "ProfiledResult(profile=<" in repr(r)
    # Value semantics are unchanged: `_` is the last value, state persists.
    assert sandbox.run("_").value == "1220"
    assert sandbox.run("x").value == "610"


def test_profiled_statements_have_no_value_and_leave_underscore_alone(sandbox):
    sandbox.run("7 * 6")
    r = sandbox.run("y = 1", profile=True)
    assert r.value is None and r.profile is not None
    assert sandbox.run("_").value == "42"


def test_profiling_leaves_no_names_in_the_sandbox_namespace(sandbox):
    names = "print(sorted(globals()))"  # print: binding `_` would add a name
    before = sandbox.run(names).stdout
    sandbox.run("z = 3", profile=True)
    after = sandbox.run(names).stdout
    assert eval(after) == sorted(eval(before) + ["z"])


def test_an_exception_in_profiled_code_is_data_and_still_profiled(sandbox):
    r = sandbox.run("def boom():\n    return {}['k']\nboom()", profile=True)
    assert not r.success and r.error.type == "KeyError" and r.outcome == "completed"
    assert "boom()" in r.error.traceback and "return {}['k']" in r.error.traceback
    assert r.profile.find("(boom)")
    assert sandbox.alive


def test_code_that_does_not_compile_reports_syntax_error_without_a_profile(sandbox):
    r = sandbox.run("def broken(:", profile=True)
    assert r.error.type == "SyntaxError" and r.profile is None
    assert sandbox.run("1 + 1", profile=True).value == "2"


def test_streaming_callbacks_and_bytes_code_work_when_profiling(sandbox):
    chunks = []
    r = sandbox.run(b"print('a')\nprint('b')", profile=True, on_stdout=chunks.append)
    assert "".join(chunks) == "a\nb\n" == r.stdout


def test_a_timed_out_profiled_run_has_no_profile(sandbox):
    r = sandbox.run("while True: pass", timeout=0.3, profile=True)
    assert r.outcome == "timeout" and r.profile is None and not sandbox.alive


def test_profiled_runs_each_see_only_their_own_calls(sandbox):
    sandbox.run("def f():\n    return 1\ndef g():\n    return 2")
    first = sandbox.run("f()", profile=True)
    second = sandbox.run("g()", profile=True)
    assert first.profile.find("(f)") and not first.profile.find("(g)")
    assert second.profile.find("(g)") and not second.profile.find("(f)")
