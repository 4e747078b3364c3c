"""CONTAINER with a root file system of the user's: the sandbox runs on that system (its /etc,
its interpreter), read-only, and sees nothing of the host's beyond it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from faas_sdk import ExecutionPlatform, IsolationError, Mode
from faas_sdk._isolation import container_unavailable_reason

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory, require_isolation):
    """A small root file system: the host's /usr bound in (for a CPython of the host's version),
    the merged-/usr links, and an /etc of its own."""
    require_isolation(container_unavailable_reason())
    if os.geteuid() != 0:
        pytest.skip("building the test rootfs needs a bind mount (root)")
    version = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True).stdout.strip()
    if version != str(sys.version_info[:2]):
        require_isolation(f"{SYSTEM_PYTHON} is {version}; the kernel's native helper is for {sys.version_info[:2]}")
    root = tmp_path_factory.mktemp("rootfs")
    (root / "usr").mkdir()
    (root / "etc").mkdir()
    (root / "etc" / "os-release").write_text('PRETTY_NAME="faas_sdk test rootfs"\n')
    for link in ("bin", "lib", "lib64", "sbin"):
        (root / link).symlink_to(f"usr/{link}")
    subprocess.run(["mount", "--bind", "/usr", str(root / "usr")], check=True)
    yield str(root)
    subprocess.run(["umount", "-l", str(root / "usr")], check=True)


@pytest.fixture(scope="module")
def platform_():
    with ExecutionPlatform(warm_pool_size=0) as p:
        yield p


PROBE = f"""
import errno, os, sys
def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as exc:
        return errno.errorcode[exc.errno]
dict(os_release=open('/etc/os-release').read(), executable=sys.executable, etc=sorted(os.listdir('/etc')),
     write_etc=attempt(lambda: open('/etc/escape', 'w')), host_passwd=attempt(lambda: open('/etc/passwd')),
     project=attempt(lambda: open({REPO + '/README.md'!r})), hostname=os.uname().nodename)
"""


def test_the_sandbox_runs_on_the_users_rootfs(platform_, rootfs):
    with platform_.create_sandbox(mode=Mode.CONTAINER, rootfs=rootfs) as sb:
        result = sb.run(PROBE)
        assert result.success, result.error
        probe = eval(result.value)
    assert probe == {"os_release": 'PRETTY_NAME="faas_sdk test rootfs"\n', "executable": SYSTEM_PYTHON,
                     "etc": ["os-release"], "write_etc": "EROFS", "host_passwd": "ENOENT",
                     "project": "ENOENT", "hostname": "sandbox"}


def test_a_rootfs_without_the_interpreter_is_an_isolation_error(platform_, tmp_path, require_isolation):
    require_isolation(container_unavailable_reason())
    with pytest.raises(IsolationError, match="exec /usr/bin/python3 failed inside the isolated root"):
        platform_.create_sandbox(mode=Mode.CONTAINER, rootfs=str(tmp_path))


def test_rootfs_is_checked_before_anything_starts(platform_, tmp_path):
    with pytest.raises(ValueError, match="Mode.CONTAINER"):
        platform_.create_sandbox(mode=Mode.LOCAL, rootfs=str(tmp_path))
    with pytest.raises(ValueError, match="not a directory"):
        platform_.create_sandbox(mode=Mode.CONTAINER, rootfs=str(tmp_path / "missing"))
