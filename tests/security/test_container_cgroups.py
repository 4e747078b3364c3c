"""CONTAINER's cgroup limits: memory, processes and CPU bandwidth are held for the sandbox as a
whole (all its processes together), the result names the limit, closing a sandbox kills every
process in its cgroup, and nothing of ours is left in the cgroup file system. Where no cgroup
is writable the limit falls back with a LimitWeakenedWarning, or is refused."""

from __future__ import annotations

import os
import warnings

import pytest

from faas_sdk import ExecutionPlatform, LimitWeakenedWarning, Limits, Mode, ModeNotAvailable
from faas_sdk import _cgroups
from faas_sdk._isolation import container_unavailable_reason


@pytest.fixture(scope="module")
def container_platform(require_isolation):
    require_isolation(container_unavailable_reason())
    for controller in _cgroups.CONTROLLERS:
        require_isolation(_cgroups.unavailable_reason(controller))
    with ExecutionPlatform(warm_pool_size=1) as p:
        yield p
    leftovers = [h.own_dir for h in _cgroups.available_controllers().values()
                 if os.path.exists(os.path.join(h.own_dir, f"faas_sdk-{os.getpid()}"))]
    assert not leftovers, f"cgroup directories left behind under {leftovers}"


@pytest.fixture
def bystander(container_platform, bystander_in):
    """Another CONTAINER sandbox, which must not notice."""
    with bystander_in(container_platform, Mode.CONTAINER) as sb:
        yield sb


def test_memory_bomb_is_held_by_the_memory_cgroup(container_platform, bystander):
    sb = container_platform.create_sandbox(mode=Mode.CONTAINER, limits=Limits(memory_bytes=128 << 20))
    with sb:
        assert sb.run("1").success
        result = sb.run("hog = bytearray(1 << 30)")
        assert result.limit_exceeded == "memory_bytes"
        assert result.error.type == "ResourceLimitExceeded"
        assert "SIGKILL" in result.error.message  # the kernel's OOM killer, not a MemoryError
        assert not sb.alive


def test_the_memory_limit_covers_all_processes_together(container_platform, bystander):
    # Two children of 100 MiB each: each is under the 160 MiB limit (RLIMIT_AS would let both
    # live), together they are not, so the cgroup kills one of them.
    code = """
import os
children = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        hog = bytearray(100 << 20)
        import time; time.sleep(2)
        os._exit(0)
    children.append(pid)
sorted(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children)
"""
    with container_platform.create_sandbox(mode=Mode.CONTAINER, limits=Limits(memory_bytes=160 << 20)) as sb:
        result = sb.run(code, timeout=30)
        assert result.success, result.error
        assert eval(result.value)[0] == -9  # SIGKILL
        assert sb._cgroup.oom_kills() >= 1
        assert sb.run("1 + 1").value == "2"  # the kernel itself was under the limit


def test_fork_bomb_is_held_by_the_pids_cgroup(container_platform, bystander, fork_bomb):
    with container_platform.create_sandbox(mode=Mode.CONTAINER, limits=Limits(pids=16)) as sb:
        result = sb.run(fork_bomb, timeout=30)
        assert result.limit_exceeded == "pids"
        assert "Resource temporarily unavailable" in result.error.message
        assert int(result.stdout) == 15  # the kernel is the 16th
        assert sb.run("1 + 1").value == "2"


def test_cpu_bandwidth_is_throttled_by_the_cpu_cgroup(container_platform, bystander):
    spin = "import time\nend = time.time() + 1\nstart = time.process_time()\nwhile time.time() < end: pass\n" \
           "time.process_time() - start"
    with container_platform.create_sandbox(mode=Mode.CONTAINER, limits=Limits(cpu_cores=0.2)) as sb:
        used = float(sb.run(spin).value)
        _, directory = sb._cgroup.dirs["cpu"]
        stat = dict(line.split() for line in open(os.path.join(directory, "cpu.stat")))
        assert int(stat["nr_throttled"]) > 0
        assert used < 0.5  # a second of wall time at a fifth of a core: ~0.2 s of CPU


def test_close_kills_processes_that_left_the_sandbox_session(container_platform):
    daemon = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(120)
    os._exit(0)
os.wait()
"""
    sb = container_platform.create_sandbox(mode=Mode.CONTAINER, limits=Limits(pids=32))
    assert sb.run(daemon).success
    members = sb._cgroup._members()
    assert len(members) == 2  # the kernel and the daemon
    directories = [directory for _, directory in sb._cgroup.dirs.values()]
    sb.close()
    for pid in members:
        assert not os.path.exists(f"/proc/{pid}"), f"process {pid} outlived its sandbox"
    for directory in directories:
        assert not os.path.exists(directory)


def test_no_writable_cgroup_weakens_memory_and_refuses_cpu(monkeypatch):
    monkeypatch.setattr(_cgroups, "available_controllers", lambda: {})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        enforcement = Limits(memory_bytes=1 << 30).enforcement(Mode.CONTAINER)
    assert [type(w.message) for w in caught] == [LimitWeakenedWarning]
    assert "RLIMIT_AS" in str(caught[0].message) and "cgroup memory controller" in str(caught[0].message)
    assert enforcement.cgroup == {} and len(enforcement.rlimits) == 1
    with pytest.raises(ModeNotAvailable, match="cpu_cores"):
        Limits(cpu_cores=1).enforcement(Mode.CONTAINER)


def test_cgroup_limits_are_container_only():
    with pytest.raises(ModeNotAvailable, match="CONTAINER"):
        Limits(cpu_cores=1).enforcement(Mode.SECURE)
    assert Limits(memory_bytes=1 << 30).enforcement(Mode.SECURE).cgroup == {}
