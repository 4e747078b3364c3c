"""Resource exhaustion from an isolated sandbox is held by its limits: the execution reports
ResourceLimitExceeded naming the limit, and the host and other sandboxes carry on. The rlimit
tests run in SECURE and CONTAINER; CONTAINER's cgroup limits (memory, pids, CPU bandwidth) are
in test_container_cgroups.py."""

from __future__ import annotations

import os

import pytest

from faas_sdk import ExecutionPlatform, Limits, Mode, SandboxDead

SECURE_ONLY = pytest.mark.parametrize("mode", [Mode.SECURE], indirect=True, ids=["SECURE"])


@pytest.fixture(scope="module")
def secure_platform():
    with ExecutionPlatform(warm_pool_size=1) as p:
        yield p



@pytest.fixture
def bystander(secure_platform, bystander_in, mode):
    """Another sandbox of the same mode, which must not notice."""
    with bystander_in(secure_platform, mode) as sb:
        yield sb


@SECURE_ONLY  # CONTAINER: its pids cgroup
def test_fork_bomb_is_held_by_the_pids_limit(secure_platform, bystander, fork_bomb, mode):
    if os.geteuid() != 0:
        pytest.skip("Limits.pids needs a uid per sandbox, which only a root host can give")
    with secure_platform.create_sandbox(mode=mode, limits=Limits(pids=20)) as sb:
        result = sb.run(fork_bomb, timeout=30)
        assert result.limit_exceeded == "pids"
        assert result.error.type == "ResourceLimitExceeded"
        assert "EAGAIN" in result.error.message or "Resource temporarily unavailable" in result.error.message
        assert 0 < int(result.stdout) < 20
        assert sb.run("1 + 1").value == "2"  # the sandbox itself survives


@SECURE_ONLY  # CONTAINER: its memory cgroup
def test_memory_bomb_is_held_by_the_memory_limit(secure_platform, bystander, mode):
    with secure_platform.create_sandbox(mode=mode, limits=Limits(memory_bytes=512 << 20)) as sb:
        result = sb.run("hog = bytearray(2 << 30)")
        assert result.limit_exceeded == "memory_bytes"
        assert "MemoryError" in result.error.message
        assert sb.run("len(bytearray(1 << 20))").value == str(1 << 20)


def test_cpu_spin_is_held_by_the_timeout(secure_platform, bystander, mode):
    with secure_platform.create_sandbox(mode=mode) as sb:
        result = sb.run("while True: pass", timeout=0.5)
        assert result.error.type == "ExecutionTimeout"
        assert not sb.alive


def test_cpu_spin_is_held_by_the_cpu_limit(secure_platform, bystander, mode):
    with secure_platform.create_sandbox(mode=mode, limits=Limits(cpu_seconds=1)) as sb:
        result = sb.run("while True: pass", timeout=30)
        assert result.limit_exceeded == "cpu_seconds"
        assert "SIGXCPU" in result.error.message
        with pytest.raises(SandboxDead):
            sb.run("1")


def test_disk_fill_is_held_by_the_file_size_limit(secure_platform, bystander, mode):
    with secure_platform.create_sandbox(mode=mode, limits=Limits(file_size_bytes=1 << 20)) as sb:
        result = sb.run("open('fill', 'wb').write(b'x' * (8 << 20))")
        assert result.limit_exceeded == "file_size_bytes"
        assert "File too large" in result.error.message
        assert os.path.getsize(os.path.join(sb.workdir, "fill")) <= 1 << 20


def test_private_tmp_is_bounded(secure_platform, bystander, mode):
    with secure_platform.create_sandbox(mode=mode) as sb:
        result = sb.run("f = open('/tmp/fill', 'wb')\nfor _ in range(512): f.write(b'x' * (1 << 20))")
        assert result.error.type == "OSError" and "No space left on device" in result.error.message
        assert sb.run("os_ok = 1; os_ok").value == "1"


def test_open_files_limit(secure_platform, bystander, mode):
    with secure_platform.create_sandbox(mode=mode, limits=Limits(open_files=64)) as sb:
        result = sb.run("files = [open('/dev/null') for _ in range(100)]")
        assert result.limit_exceeded == "open_files"
