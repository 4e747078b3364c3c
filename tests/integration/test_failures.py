"""Timeouts, crashes, kills, garbage and floods: typed errors, never a hang or a host crash."""

import os
import signal
import threading
import time

import pytest

from faas_sdk import InvalidCode, Limits, SandboxDead


def test_timeout_interrupts_reports_and_kills_the_sandbox(sandbox):
    result = sandbox.run("import time\nwhile True:\n    time.sleep(0.01)", timeout=0.3)
    assert not result.success and result.outcome == "timeout" and result.timed_out
    assert result.error.type == "ExecutionTimeout" and "0.3" in result.error.message
    assert "time.sleep" in result.error.traceback  # where it was stuck, from the interrupt
    assert not sandbox.alive
    with pytest.raises(SandboxDead, match="timed out"):
        sandbox.run("1")


def test_timeout_of_code_that_ignores_sigint_still_ends(sandbox):
    code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass"
    started = time.monotonic()
    result = sandbox.run(code, timeout=0.3)
    assert result.outcome == "timeout" and result.error.type == "ExecutionTimeout"
    assert time.monotonic() - started < 5
    assert not sandbox.alive


def test_default_timeout_comes_from_limits(platform):
    with platform.create_sandbox(limits=Limits(timeout=0.2)) as sb:
        assert sb.run("import time\ntime.sleep(5)").outcome == "timeout"


def test_a_sandbox_killed_from_outside_is_dead_on_the_next_call(sandbox):
    os.kill(sandbox.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while sandbox.alive and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(SandboxDead, match="SIGKILL"):
        sandbox.run("1")


def test_a_kill_during_an_execution_completes_it_as_died(sandbox):
    threading.Timer(0.2, os.kill, (sandbox.pid, signal.SIGKILL)).start()
    result = sandbox.run("print('started', flush=True)\nimport time\ntime.sleep(30)")
    assert result.outcome == "died" and result.error.type == "SandboxDead"
    assert "SIGKILL" in result.error.message
    assert result.stdout == "started\n"  # output produced before the death is kept
    with pytest.raises(SandboxDead):
        sandbox.run("1")


def test_the_process_exiting_by_itself_is_reported(sandbox):
    result = sandbox.run("import os\nos._exit(7)")
    assert result.outcome == "died" and "status 7" in result.error.message


def test_a_segfault_is_reported_with_its_signal(sandbox):
    result = sandbox.run("import ctypes\nctypes.string_at(0)")
    assert result.outcome == "died" and "SIGSEGV" in result.error.message


def test_closing_the_kernel_channel_kills_the_sandbox(sandbox):
    result = sandbox.run("import os\nos.close(3)\nimport time\ntime.sleep(10)", timeout=20)
    assert result.outcome == "died" and not sandbox.alive


def test_closing_stdout_does_not_hang_the_execution(sandbox):
    result = sandbox.run("import os\nprint('bye')\nos.close(1)\n'after'")
    assert result.success and result.value == "'after'" and result.stdout == "bye\n"


@pytest.mark.parametrize("code, message", [
    (b"x = '\xff'", "not valid UTF-8"),
    ("x = 1\0", "NUL byte"),
    ("'\ud800'", "not valid Unicode"),
])
def test_garbage_code_is_refused_and_the_sandbox_survives(sandbox, code, message):
    with pytest.raises(InvalidCode, match=message):
        sandbox.run(code)
    assert sandbox.run("'ok'").value == "'ok'"


def test_huge_output_is_capped_and_flagged(sandbox):
    result = sandbox.run("import sys\nfor _ in range(60):\n    sys.stdout.write('x' * (1 << 20))\n'done'")
    assert result.success and result.value == "'done'"
    assert result.output_truncated and len(result.stdout) == 10 * 1024 * 1024
    small = sandbox.run("print('next')")
    assert small.stdout == "next\n" and not small.output_truncated


def test_output_limit_can_be_lowered(platform):
    with platform.create_sandbox(limits=Limits(output_bytes=1000)) as sb:
        result = sb.run("print('y' * 5000)\nimport sys\nsys.stderr.write('e' * 5000)")
        assert result.output_truncated and len(result.stdout) + len(result.stderr) == 1000


def test_a_flooding_sandbox_does_not_stall_the_others(platform):
    with platform.create_sandbox() as flooder, platform.create_sandbox() as other:
        done = threading.Event()

        def flood():
            flooder.run("import sys\nwhile True:\n    sys.stdout.write('z' * 65536)", timeout=4)
            done.set()

        threading.Thread(target=flood).start()
        time.sleep(0.2)
        for i in range(50):
            assert other.run(f"{i} * 2").value == str(i * 2)
        assert not done.is_set(), "the other sandbox should finish while the flood is still going"
        done.wait(10)


def test_memory_limit_turns_a_memory_bomb_into_memory_error(platform):
    with platform.create_sandbox(limits=Limits(memory_bytes=512 * 1024 * 1024)) as sb:
        result = sb.run("blocks = []\nwhile True:\n    blocks.append(bytearray(50 * 1024 * 1024))")
        assert result.error.type == "ResourceLimitExceeded" and result.limit_exceeded == "memory_bytes"
        assert "Limits.memory_bytes=536870912 exceeded (MemoryError" in result.error.message
        assert sb.run("del blocks\n'recovered'").value == "'recovered'"


def test_file_size_limit_stops_a_disk_fill(platform):
    with platform.create_sandbox(limits=Limits(file_size_bytes=1024 * 1024)) as sb:
        result = sb.run("with open('big', 'wb') as f:\n    f.write(b'0' * (4 * 1024 * 1024))")
        assert not result.success and result.limit_exceeded == "file_size_bytes"
        assert result.error.type == "ResourceLimitExceeded" and "File too large" in result.error.message


def test_cpu_limit_kills_a_spinning_sandbox(platform):
    with platform.create_sandbox(limits=Limits(cpu_seconds=1)) as sb:
        result = sb.run("while True: pass", timeout=30)
        assert result.outcome == "died" and "SIGXCPU" in result.error.message
        assert result.limit_exceeded == "cpu_seconds"


def test_open_files_limit_applies(platform):
    with platform.create_sandbox(limits=Limits(open_files=32)) as sb:
        result = sb.run("files = [open('/dev/null') for _ in range(64)]")
        assert result.limit_exceeded == "open_files" and "Too many open files" in result.error.message


def test_host_ctrl_c_interrupts_the_sandbox_and_keeps_it(sandbox):
    sandbox.run("counter = 0")
    main = threading.main_thread().ident
    threading.Timer(0.3, signal.pthread_kill, (main, signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        sandbox.run("import time\nwhile True:\n    counter += 1\n    time.sleep(0.001)")
    assert sandbox.alive  # it stopped within the grace period, like a notebook interrupt
    assert sandbox.run("counter > 0").value == "True"


def test_a_missing_interpreter_is_a_clear_error(platform):
    from faas_sdk import FaasError
    with pytest.raises(FaasError, match="/nonexistent/python"):
        platform.create_sandbox(python="/nonexistent/python")


def test_user_code_that_forks_does_not_break_the_protocol(sandbox):
    result = sandbox.run("import os\npid = os.fork()\nif pid == 0:\n    print('child')\nelse:\n"
                         "    os.waitpid(pid, 0)\n    print('parent')\n'done'")
    assert result.success and result.value == "'done'"
    assert sorted(result.stdout.split()) == ["child", "parent"]
    assert sandbox.run("1 + 1").value == "2"


def test_an_oversized_environment_is_refused_and_the_zygote_survives(platform, sandbox):
    from faas_sdk import FaasError
    with pytest.raises(FaasError, match="at most"):
        platform.create_sandbox(env={"HUGE": "a" * 200_000})
    assert sandbox.run("'unaffected'").value == "'unaffected'"
    with platform.create_sandbox(env={"SMALL": "b" * 1000}) as sb:
        assert sb.run("import os\nlen(os.environ['SMALL'])").value == "1000"


def test_oversized_code_is_refused():
    from faas_sdk._code import MAX_CODE_BYTES, encode_code
    with pytest.raises(InvalidCode, match="at most"):
        encode_code(b"#" * (MAX_CODE_BYTES + 1))
