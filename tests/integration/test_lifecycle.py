"""Closing, host death and reaping: no process, zombie or directory of ours outlives its owner."""

import os
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from faas_sdk import ExecutionPlatform, FaasError, SandboxDead


def running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def descendants(pid: int) -> list[int]:
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def wait_gone(pids, seconds=5.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = [p for p in pids if running(p)]
        if not alive:
            return []
        time.sleep(0.02)
    return alive


def test_close_kills_the_process_and_removes_the_private_workdir(platform):
    sb = platform.create_sandbox()
    pid, workdir = sb.pid, sb.workdir
    sb.run("open('f.txt', 'w').write('x')")
    assert os.path.exists(os.path.join(workdir, "f.txt"))
    sb.close()
    assert not running(pid)
    assert not os.path.exists(workdir)
    with pytest.raises(SandboxDead, match="closed"):
        sb.run("1")
    sb.close()  # idempotent


def test_close_also_kills_the_sandbox_children(platform):
    sb = platform.create_sandbox()
    child = int(sb.run("import subprocess\np = subprocess.Popen(['sleep', '60'])\np.pid").value)
    sb.close()
    assert wait_gone([child]) == []


def test_platform_close_ends_every_sandbox_it_made():
    platform = ExecutionPlatform()
    sandboxes = [platform.create_sandbox() for _ in range(5)]
    pids = [sb.pid for sb in sandboxes]
    assert len(platform.sandboxes) == 5
    platform.close()
    assert wait_gone(pids) == []
    assert all(not sb.alive for sb in sandboxes)
    assert platform.sandboxes == []
    with pytest.raises(FaasError, match="closed"):
        platform.execute("1")


def test_context_managers_close_what_they_opened():
    with ExecutionPlatform() as platform:
        with platform.create_sandbox() as sb:
            pid = sb.pid
        assert wait_gone([pid]) == []


def test_a_dropped_sandbox_is_closed_by_the_garbage_collector(platform):
    import gc
    sb = platform.create_sandbox()
    pid = sb.pid
    del sb
    gc.collect()
    assert wait_gone([pid]) == []


def test_killed_sandboxes_leave_no_zombie(platform):
    sandboxes = [platform.create_sandbox() for _ in range(5)]
    pids = [sb.pid for sb in sandboxes]
    for pid in pids:
        os.kill(pid, 9)
    assert wait_gone(pids) == []
    for pid in pids:
        assert not psutil.pid_exists(pid), f"pid {pid} is a zombie nobody reaped"
    for sb in sandboxes:
        sb.close()


HOST_SCRIPT = textwrap.dedent("""
    import sys
    from faas_sdk import ExecutionPlatform
    platform = ExecutionPlatform()
    sandboxes = [platform.create_sandbox() for _ in range(3)]
    child = sandboxes[0].run("import subprocess\\nsubprocess.Popen(['sleep', '60']).pid").value
    import faas_sdk._core as core
    print(" ".join(str(sb.pid) for sb in sandboxes), child, core.temp_root(), flush=True)
    sys.stdin.read()  # wait to be killed
""")


@pytest.mark.parametrize("how", ["sigkill", "os_exit"])
def test_sandboxes_die_with_their_host(how):
    script = HOST_SCRIPT if how == "sigkill" else HOST_SCRIPT.replace("sys.stdin.read()", "import os; os._exit(0)")
    host = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = host.stdout.readline().split()
    *kernel_pids, child_pid, temp_root = line
    pids = [int(p) for p in kernel_pids] + [int(child_pid)]
    others = descendants(host.pid)
    if how == "sigkill":
        host.kill()
    host.wait(10)
    assert wait_gone(pids + others, 10) == [], "sandbox processes outlived their host"
    deadline = time.monotonic() + 5
    while os.path.exists(temp_root) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not os.path.exists(temp_root), "the broker should remove the temp root when the host dies"


def test_the_engine_restarts_after_shutdown():
    from faas_sdk import _engine
    with ExecutionPlatform() as platform:
        assert platform.execute("1").value == "1"
    _engine.shutdown()
    with ExecutionPlatform() as platform:
        assert platform.execute("2").value == "2"


def test_a_forked_host_child_neither_uses_nor_kills_the_parents_sandboxes(platform, sandbox):
    sandbox.run("x = 'parent state'")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: must get a clear error, then a working engine of its own
        try:
            try:
                sandbox.run("1")
                verdict = b"ran-in-parent-sandbox"
            except FaasError as exc:
                verdict = b"refused" if b"fork" in str(exc).encode() else b"wrong-error"
            with ExecutionPlatform() as own:
                verdict += b" own-engine-ok" if own.execute("6 * 7").value == "42" else b" own-engine-bad"
            sandbox.close()  # must not touch the parent's sandbox
            from faas_sdk import _engine
            _engine.shutdown()  # must not end the parent's engine either
            os.write(write, verdict)
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 100) == b"refused own-engine-ok"
    assert sandbox.alive and sandbox.run("x").value == "'parent state'"
