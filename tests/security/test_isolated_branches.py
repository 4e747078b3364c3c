"""Snapshots and branches of isolated (SECURE, CONTAINER) sandboxes: a branch carries the
snapshot's state and files, diverges on its own, and stays as confined as its sandbox, with a
Landlock domain of its own, so sibling branches cannot reach each other. The namespaces that
give a branch its own files are granted by the engine once per branch; user code asking for
them gets EPERM."""

from __future__ import annotations

import ast
import os

import pytest

from faas_sdk import ExecutionPlatform, Mode, SnapshotError


SETUP = """
import os, random
counter = 41
open('notes.txt', 'w').write('base')
os.mkdir('data')
open('data/input.csv', 'w').write('1,2,3')
log = open('log.txt', 'a')
log.write('snapshot\\n'); log.flush()
"""

UNSHARE_BRANCH_FLAGS = """
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
rc = libc.unshare(0x10000000 | 0x00020000 | 0x08000000)
'ok' if rc == 0 else errno.errorcode[ctypes.get_errno()]
"""

ATTEMPT = """
import errno, os
def attempt(fn):
    try:
        fn()
        return 'ok'
    except OSError as exc:
        return errno.errorcode[exc.errno]
"""


@pytest.fixture(scope="module")
def platform_():
    with ExecutionPlatform(warm_pool_size=1) as p:
        yield p



@pytest.fixture
def snapshot(platform_, mode):
    with platform_.create_sandbox(mode=mode) as sb:
        assert sb.run(SETUP).success
        snap = sb.snapshot()
        yield sb, snap
        snap.release()


def value(sandbox, code):
    result = sandbox.run(code)
    assert result.success, result.error
    return ast.literal_eval(result.value)


def test_a_branch_has_the_snapshots_state_and_files(snapshot):
    sb, snap = snapshot
    with snap.branch() as branch:
        assert value(branch, "counter, open('notes.txt').read(), open('data/input.csv').read(), os.getcwd()") == (
            41, "base", "1,2,3", sb.workdir)


def test_branches_diverge_without_seeing_each_other(snapshot):
    sb, snap = snapshot
    with snap.branch() as one, snap.branch() as two:
        one.run("counter += 1\nopen('notes.txt', 'a').write('+one')\nopen('mine.txt', 'w').write('one')\n"
                "log.write('one\\n'); log.flush()")
        assert value(two, "counter, open('notes.txt').read(), os.path.exists('mine.txt')") == (41, "base", False)
        assert value(one, "counter, open('notes.txt').read(), open('mine.txt').read()") == (42, "base+one", "one")
        assert value(two, "log.write('two\\n'); log.flush(); open('log.txt').read()") == "snapshot\ntwo\n"
    # Neither the sandbox nor the files on the host changed.
    assert value(sb, "counter, open('notes.txt').read()") == (41, "base")
    with open(os.path.join(sb.workdir, "notes.txt")) as f:
        assert f.read() == "base"


def test_sibling_branches_cannot_reach_each_other(snapshot):
    _, snap = snapshot
    with snap.branch() as one, snap.branch() as two:
        one_pid = value(one, "os.getpid()")
        one.run("import socket\nserver = socket.socket(socket.AF_UNIX)\nserver.bind(b'\\0branch-one')\nserver.listen()")
        outcome = value(two, ATTEMPT + f"""
import socket
(attempt(lambda: os.kill({one_pid}, 0)),
 attempt(lambda: socket.socket(socket.AF_UNIX).connect(b'\\0branch-one')),
 attempt(lambda: open('/proc/{one_pid}/environ', 'rb').read()))
""")
        # Another Landlock domain: no signals, no abstract sockets; no /proc (SECURE) or an
        # invisible entry (CONTAINER).
        assert outcome == ("EPERM", "EPERM", "ENOENT")


def test_only_the_engine_grants_the_branch_namespaces(platform_, snapshot):
    sb, snap = snapshot
    assert value(sb, UNSHARE_BRANCH_FLAGS) == "EPERM"  # the sandbox itself
    with snap.branch() as branch:
        assert value(branch, UNSHARE_BRANCH_FLAGS) == "EPERM"  # a branch, once set up
        # Root does not even exist in the branch's user namespace: it maps only the branch's uid.
        assert value(branch, ATTEMPT + "attempt(lambda: os.setuid(0))") == "EINVAL"
        if sb.mode is Mode.CONTAINER:  # SECURE has no /proc to read them from
            capabilities = value(branch, "[l.split()[1] for l in open('/proc/self/status') if l.startswith('Cap')]")
            assert capabilities == ["0000000000000000"] * 5


def test_a_branch_has_no_tmp(snapshot):
    # The sandbox's /tmp would be shared by all its branches: they get none, and tempfile
    # falls back to the workdir.
    sb, snap = snapshot
    sb.run("open('/tmp/shared', 'w').write('x')")
    with snap.branch() as branch:
        outcome = value(branch, ATTEMPT + "import tempfile\n"
                        "(attempt(lambda: open('/tmp/shared').read()), attempt(lambda: open('/tmp/new', 'w')),"
                        " tempfile.gettempdir() == os.getcwd())")
        assert outcome == ("EACCES", "EACCES", True)


def test_branches_of_branches(snapshot):
    _, snap = snapshot
    level, snapshots = snap.branch(), []
    try:
        for depth in range(1, 8):
            level.run(f"counter += 1\nopen('notes.txt', 'a').write('+{depth}')")
            snapshots.append(level.snapshot())
            level.close()
            level = snapshots[-1].branch()
        assert value(level, "counter, open('notes.txt').read()") == (48, "base+1+2+3+4+5+6+7")
    finally:
        level.close()
        for s in snapshots:
            s.release()


def test_the_landlock_nesting_limit_is_a_clear_error(snapshot):
    # Each level of branch-of-branch adds a Landlock domain; Linux allows 16 in all.
    _, snap = snapshot
    level, snapshots = snap.branch(), []
    try:
        with pytest.raises(SnapshotError, match="adds a Landlock domain") as info:
            for _ in range(20):
                snapshots.append(level.snapshot())
                level.close()
                level = snapshots[-1].branch()
        assert "E2BIG" in str(info.value)
        assert 13 <= len(snapshots) <= 16
    finally:
        level.close()
        for s in snapshots:
            s.release()


def test_explore_parallel_in_an_isolated_mode(platform_, snapshot):
    _, snap = snapshot
    results = platform_.explore_parallel(["counter * 2", "counter + 1", "open('notes.txt').read()"], snap)
    assert [r.value for r in results] == ["82", "42", "'base'"]
