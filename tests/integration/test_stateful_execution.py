"""A sandbox keeps its state between executions and reports each one like a notebook cell."""

import pytest


def test_globals_persist_between_runs(sandbox):
    assert sandbox.run("x = 41").success
    result = sandbox.run("x + 1")
    assert result.success and result.value == "42"


def test_two_sandboxes_do_not_share_state(platform):
    with platform.create_sandbox() as a, platform.create_sandbox() as b:
        a.run("secret = 'a'")
        result = b.run("secret")
        assert not result.success and result.error.type == "NameError"
        assert a.run("secret").value == "'a'"


def test_last_expression_value_is_its_repr(sandbox):
    assert sandbox.run("[1, 'two', {3: 4.5}]").value == "[1, 'two', {3: 4.5}]"
    assert sandbox.run("x = 3\nx * 2").value == "6"


def test_statements_and_none_have_no_value(sandbox):
    assert sandbox.run("y = 1").value is None
    assert sandbox.run("None").value is None
    assert sandbox.run("print('p')").value is None


def test_underscore_holds_the_last_value(sandbox):
    sandbox.run("21 * 2")
    assert sandbox.run("_").value == "42"


def test_every_way_of_writing_stdout_is_captured_in_order(sandbox):
    result = sandbox.run(
        "import os, sys, subprocess\n"
        "print('print')\n"
        "sys.stdout.write('write\\n')\n"
        "os.write(1, b'fd\\n')\n"
        "subprocess.run(['echo', 'child'])\n"
        "print('end')\n")
    assert result.success
    assert result.stdout == "print\nwrite\nfd\nchild\nend\n"


def test_stderr_is_captured_separately(sandbox):
    result = sandbox.run("import sys, os\nsys.stderr.write('e1\\n')\nos.write(2, b'e2\\n')\nprint('o')")
    assert result.stderr == "e1\ne2\n" and result.stdout == "o\n"


def test_output_belongs_to_its_own_execution(sandbox):
    first = sandbox.run("print('first')")
    second = sandbox.run("print('second')")
    assert first.stdout == "first\n" and second.stdout == "second\n"


def test_user_exception_is_data_with_a_traceback(sandbox):
    result = sandbox.run("def f():\n    raise ValueError('bad value')\nf()")
    assert not result.success and result.outcome == "completed"
    assert result.error.type == "ValueError" and result.error.message == "bad value"
    assert 'File "<cell-' in result.error.traceback and "in f" in result.error.traceback
    assert "raise ValueError('bad value')" in result.error.traceback  # source lines are shown
    assert "kernel.py" not in result.error.traceback  # the kernel's frames are hidden


def test_output_before_an_exception_is_kept(sandbox):
    result = sandbox.run("print('before')\n1/0")
    assert result.stdout == "before\n" and result.error.type == "ZeroDivisionError"


def test_syntax_error_is_reported_and_the_sandbox_survives(sandbox):
    result = sandbox.run("def broken(:\n  pass")
    assert not result.success and result.error.type == "SyntaxError"
    assert sandbox.run("1 + 1").value == "2"


def test_system_exit_does_not_kill_the_sandbox(sandbox):
    result = sandbox.run("import sys\nsys.exit(3)")
    assert not result.success and result.error.type == "SystemExit" and result.error.message == "3"
    assert sandbox.alive and sandbox.run("'still here'").value == "'still here'"


def test_a_failing_repr_is_an_error_not_a_crash(sandbox):
    result = sandbox.run("class Bad:\n    def __repr__(self):\n        raise RuntimeError('no repr')\nBad()")
    assert not result.success and result.error.type == "RuntimeError"
    assert sandbox.alive


def test_non_ascii_text_round_trips(sandbox):
    result = sandbox.run("s = 'héllo wörld ✓ 🐍'\nprint(s)\ns")
    assert result.stdout == "héllo wörld ✓ 🐍\n" and result.value == "'héllo wörld ✓ 🐍'"


def test_invalid_utf8_output_is_replaced_not_fatal(sandbox):
    result = sandbox.run("import os\nos.write(1, b'ok \\xff\\xfe end\\n')")
    assert result.success and result.stdout == "ok \ufffd\ufffd end\n"


def test_streaming_callbacks_see_output_as_it_arrives(sandbox):
    seen_out, seen_err = [], []
    result = sandbox.run(
        "import sys, time\nfor i in range(3):\n    print(i)\n    time.sleep(0.05)\nsys.stderr.write('done\\n')",
        on_stdout=seen_out.append, on_stderr=seen_err.append)
    assert "".join(seen_out) == "0\n1\n2\n" == result.stdout
    assert len(seen_out) >= 2, "chunks should arrive while the code runs, not all at the end"
    assert "".join(seen_err) == "done\n"


def test_streaming_never_splits_a_utf8_character(sandbox):
    chunks = []
    sandbox.run("import os, time\nb = 'é'.encode()\nos.write(1, b[:1]); time.sleep(0.05); os.write(1, b[1:])",
                on_stdout=chunks.append)
    assert "".join(chunks) == "é" and all("\ufffd" not in c for c in chunks)


def test_a_raising_callback_is_re_raised_after_the_execution(sandbox):
    def explode(text):
        raise RuntimeError("callback failed")
    with pytest.raises(RuntimeError, match="callback failed"):
        sandbox.run("print('x')\ny = 5", on_stdout=explode)
    assert sandbox.run("y").value == "5"  # the execution itself completed


def test_durations_are_measured_by_both_clocks(sandbox):
    result = sandbox.run("import time\ntime.sleep(0.05)")
    assert 0.05 <= result.sandbox_duration <= result.duration


def test_sandbox_works_in_its_own_workdir(platform, tmp_path):
    with platform.create_sandbox(workdir=str(tmp_path / "wd")) as sb:
        sb.run("open('note.txt', 'w').write('hi')")
        assert sb.run("import os\nos.getcwd()").value == repr(str(tmp_path / "wd"))
    assert (tmp_path / "wd" / "note.txt").read_text() == "hi"  # a caller's workdir is kept


def test_environment_variables_are_added(platform):
    with platform.create_sandbox(env={"FAAS_TEST_VAR": "present"}) as sb:
        assert sb.run("import os\nos.environ['FAAS_TEST_VAR']").value == "'present'"
        assert sb.run("os.environ['FAAS_SDK_SANDBOX_ID']").value == repr(sb.id)


def test_another_interpreter_can_be_chosen(platform):
    import sys
    with platform.create_sandbox(python=sys.executable) as sb:
        assert sb.run("import sys\nsys.version_info[:2]").value == repr(tuple(sys.version_info[:2]))


def test_one_shot_execute_uses_a_fresh_sandbox_each_time(platform):
    first = platform.execute("leaked = 1\nprint('one')")
    second = platform.execute("'leaked' in globals()")
    assert first.stdout == "one\n" and second.value == "False"
    assert first.sandbox_id != second.sandbox_id
