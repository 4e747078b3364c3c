"""The pytest plugin (faas_sdk.testing.plugin), tested with pytester: options, fixtures that
clean up after themselves, the slo marker, and a cheap load."""

from __future__ import annotations

import sys

import pytest

pytest_plugins = ["pytester"]


def run_inline(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # -p no:cacheprovider: nothing written next to the tests; -W: the editable install's
    # import hook is imported before pytest can rewrite it, which is harmless.
    return pytester.runpytest("-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning", *args)


def test_options_appear_in_help_in_their_own_group(pytester):
    result = run_inline(pytester, "--help")
    out = result.stdout.str()
    assert "faas_sdk sandboxes and SLO checks:" in out
    for option in ("--faas-python", "--faas-pool-size", "--faas-timeout", "--faas-slo-rounds",
                   "--faas-slo-warn-only", "--faas-slo-report"):
        assert option in out, option


def test_the_slo_marker_is_registered(pytester):
    result = run_inline(pytester, "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.slo(p95_ms=None, p99_ms=None, error_rate=None, min_throughput=None):*"])


def test_bad_option_values_are_usage_errors(pytester):
    result = run_inline(pytester, "--faas-pool-size", "-1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--faas-pool-size must be >= 0*"])


def test_fixtures_close_every_sandbox_they_made(pytester):
    pytester.makepyfile("""
        MADE = []

        def test_uses_sandboxes(platform, sandbox, sandbox_factory):
            other = sandbox_factory(env={"K": "V"})
            MADE.extend([sandbox, other])
            assert sandbox.run("1 + 1").value == "2"
            assert other.run("import os; os.environ['K']").value == "'V'"
            assert sorted(s.id for s in platform.sandboxes) == sorted(s.id for s in MADE)

        def test_they_are_closed_afterwards(platform):
            assert [s.alive for s in MADE] == [False, False]
            assert {s.death_reason for s in MADE} == {"closed"}
            assert platform.sandboxes == []
    """)
    run_inline(pytester).assert_outcomes(passed=2)


def test_the_platform_fixture_is_shared_by_the_session_and_follows_the_options(pytester):
    pytester.makepyfile("""
        import sys
        SEEN = []

        def test_one(platform):
            SEEN.append(platform)
            assert platform.execute("import sys; sys.executable").value == repr(sys.executable)

        def test_two(platform):
            assert platform is SEEN[0] and not platform.closed
            r = platform.execute("while True: pass")
            assert r.outcome == "timeout"
    """)
    run_inline(pytester, "--faas-timeout", "0.3", "--faas-pool-size", "1",
               "--faas-python", sys.executable).assert_outcomes(passed=2)


def test_a_failed_test_lists_the_sandboxes_it_made(pytester):
    pytester.makepyfile("""
        def test_fails(sandbox):
            print("SANDBOX", sandbox.id)
            assert sandbox.run("1").value == "2"
    """)
    result = run_inline(pytester)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    sandbox_id = out.split("SANDBOX ", 1)[1].split()[0]
    result.stdout.fnmatch_lines(["*- faas_sdk sandboxes -*", f"{sandbox_id} pid=* alive workdir=*"])


def test_slo_marker_passes_a_run_within_its_slo(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.slo(p95_ms=5, p99_ms=10, error_rate=0.05)
        def test_recorded(slo_recorder):
            for i in range(100):
                slo_recorder.record(0.001 if i < 98 else 0.008)
            slo_recorder.record(0.050, ok=False)

        @pytest.mark.slo(p99_ms=100)
        def test_measured(slo_recorder, sandbox):
            results = slo_recorder.measure(sandbox.run, "1 + 1", rounds=20)
            assert [r.value for r in results] == ["2"] * 20

        @pytest.mark.slo(p95_ms=5, error_rate=0.01)
        def test_returns_a_report():
            return {"latency": {"p95": 0.002, "p99": 0.003}, "error_rate": 0.0}
    """)
    result = run_inline(pytester, "-W", "error::pytest.PytestReturnNotNoneWarning")
    result.assert_outcomes(passed=3)


def test_slo_marker_fails_a_run_that_misses_it_naming_the_metric(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.slo(p95_ms=1)
        def test_slow_p95(slo_recorder):
            for _ in range(100):
                slo_recorder.record(0.00245)

        @pytest.mark.slo(p99_ms=100, error_rate=0.01)
        def test_too_many_errors(slo_recorder):
            for i in range(100):
                slo_recorder.record(0.001, ok=i % 10 != 0)

        @pytest.mark.slo(p99_ms=5)
        def test_returned_report_misses(slo_recorder):
            slo_recorder.attach({"latency_s": {"p99": 0.020}, "error_rate": 0.0})

        @pytest.mark.slo(p95_ms=5)
        def test_records_nothing():
            pass

        @pytest.mark.slo(p95_ms=5)
        def test_fails_on_its_own(slo_recorder):
            slo_recorder.record(1.0)
            assert False, "the test's own failure"
    """)
    result = run_inline(pytester)
    result.assert_outcomes(failed=5)
    result.stdout.fnmatch_lines([
        "*SLO missed: test_slow_p95 p95 misses its SLO by 145.0% (2.45 ms, SLO at most 1.00 ms)*",
        "*SLO missed: test_too_many_errors error rate misses its SLO by 9.00 points (10.00%, SLO at most 1.00%)*",
        "*SLO missed: test_returned_report_misses p99 misses its SLO by 300.0% (20.00 ms, SLO at most 5.00 ms)*",
        "*is marked slo but recorded no measurements*",
        "*AssertionError: the test's own failure*",
    ])
    assert "test_fails_on_its_own p95" not in result.stdout.str()


def test_slo_marker_arguments_are_checked(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.slo(p95=5)
        def test_typo(slo_recorder):
            slo_recorder.record(0.001)

        @pytest.mark.slo(error_rate=2)
        def test_not_a_fraction(slo_recorder):
            slo_recorder.record(0.001)
    """)
    result = run_inline(pytester)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*unknown @pytest.mark.slo argument(s) p95; expected p95_ms*",
                                 "*@pytest.mark.slo: SLO max_error_rate is a fraction in [[]0, 1[]], got 2*"])


def test_warn_only_turns_slo_misses_into_warnings(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.slo(p95_ms=1)
        def test_slow(slo_recorder):
            slo_recorder.record(0.5)
    """)
    result = run_inline(pytester, "--faas-slo-warn-only")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*SLO missed: test_slow p95*"])


def test_slo_report_writes_a_run_that_compare_reads(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.slo(p95_ms=10)
        def test_fast(slo_recorder):
            for _ in range(50):
                slo_recorder.record(0.002)

        def test_unmarked():
            pass
    """)
    run_inline(pytester, "--faas-slo-report", "out/run.json").assert_outcomes(passed=2)
    from faas_sdk.perf.regression import compare, load_run

    run = load_run(str(pytester.path / "out" / "run.json"))
    [bench] = run["benchmarks"]
    assert bench["fullname"] == "test_slo_report_writes_a_run_that_compare_reads.py::test_fast"
    assert bench["stats"]["p95"] == 0.002 and bench["stats"]["rounds"] == 50
    assert bench["extra_info"]["slo"] == {"p95_ms": 10}
    assert not compare(run, run).regressed


def test_load_tester_returns_a_configured_tester_whose_reports_meet_the_slo(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.slo(p99_ms=1000, error_rate=0.5)
        def test_load(load_tester):
            tester = load_tester(lambda: None, concurrency=1, duration=0.2, monitor=False)
            report = tester.run()
            assert report is not None
    """)
    run_inline(pytester).assert_outcomes(passed=1)


def test_load_tester_skips_with_a_reason_without_the_load_module(pytester, monkeypatch):
    monkeypatch.setitem(sys.modules, "faas_sdk.perf.load", None)  # "not built"
    pytester.makepyfile("""
        def test_load(load_tester):
            pass
    """)
    result = run_inline(pytester, "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*load_tester needs faas_sdk.perf.load*"])


def test_plugin_starts_no_engine_when_its_fixtures_are_unused(pytester):
    pytester.makepyfile("""
        import sys
        import psutil

        def test_nothing_started():
            import faas_sdk.testing.plugin as plugin
            assert "faas_sdk.testing.plugin" in sys.modules  # loaded through its entry point
            assert psutil.Process().children() == []      # no broker, no zygote, no sandbox
            from faas_sdk import _engine
            assert not _engine._configured
            for name in ("faas_sdk.perf.regression", "faas_sdk.perf.load", "faas_sdk.perf.profiling"):
                assert name not in sys.modules, name
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W",
                                           "ignore::pytest.PytestAssertRewriteWarning")
    result.assert_outcomes(passed=1)


def test_loading_the_plugin_does_not_import_the_native_module(pytester):
    pytester.makepyfile("""
        import sys

        def test_not_imported():
            assert "faas_sdk.testing.plugin" in sys.modules
            assert "faas_sdk._core" not in sys.modules
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W",
                                           "ignore::pytest.PytestAssertRewriteWarning")
    result.assert_outcomes(passed=1)


def test_the_plugin_module_imports_only_pytest_and_the_standard_library():
    import ast
    import faas_sdk.testing.plugin as plugin

    tree = ast.parse(open(plugin.__file__, encoding="utf-8").read())
    top_level = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    modules = {alias.name.split(".")[0] for node in top_level if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module.split(".")[0] for node in top_level if isinstance(node, ast.ImportFrom) and node.module}
    assert modules - {"__future__", "pytest"} <= set(sys.stdlib_module_names), modules
    assert "faas_sdk" not in modules
