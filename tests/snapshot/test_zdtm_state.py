"""ZDTM-style: set up state, snapshot, branch, and check every branch sees exactly that state
and that writes (memory and files) stay private to the branch that made them."""

import os

import pytest

SETUP = """
import json, os
counter = 41
nested = {"a": [1, 2, 3]}
os.makedirs("sub/dir", exist_ok=True)
open("sub/dir/note.txt", "w").write("from base")
open("data.txt", "w").write("0123456789")
reader = open("data.txt")
reader.read(2)                      # offset 2 at snapshot time
appender = open("log.txt", "a")
appender.write("base\\n"); appender.flush()
WORKDIR = os.getcwd()
"""


@pytest.fixture
def base(platform):
    sandbox = platform.create_sandbox()
    assert sandbox.run(SETUP).success
    snapshot = sandbox.snapshot()
    yield sandbox, snapshot
    snapshot.release()
    sandbox.close()


def state_of(sandbox):
    return sandbox.run("(counter, nested, json.dumps([1]), open('sub/dir/note.txt').read(), "
                       "open('data.txt').read(), sorted(os.listdir('.')))").value


def test_every_branch_sees_exactly_the_snapshot_state(base):
    sandbox, snapshot = base
    expected = ("(41, {'a': [1, 2, 3]}, '[1]', 'from base', '0123456789', "
                "['data.txt', 'log.txt', 'sub'])")
    branches = snapshot.branch(count=3)
    try:
        for branch in branches:
            assert state_of(branch) == expected
            assert branch.run("'json' in __import__('sys').modules").value == "True"
    finally:
        for branch in branches:
            branch.close()


def test_memory_writes_stay_in_their_branch(base):
    sandbox, snapshot = base
    with snapshot.branch() as a, snapshot.branch() as b:
        a.run("counter += 100\nnested['a'].append(4)")
        assert a.run("counter, nested").value == "(141, {'a': [1, 2, 3, 4]})"
        assert b.run("counter, nested").value == "(41, {'a': [1, 2, 3]})"
        assert sandbox.run("counter, nested").value == "(41, {'a': [1, 2, 3]})"
        with snapshot.branch() as late:
            assert late.run("counter").value == "41"


def test_file_writes_stay_in_their_branch_even_under_absolute_paths(base):
    sandbox, snapshot = base
    with snapshot.branch() as a, snapshot.branch() as b:
        a.run("open('sub/dir/note.txt', 'w').write('from a')\n"
              "open(os.path.join(WORKDIR, 'absolute.txt'), 'w').write('a')\n"
              "os.remove('data.txt')")
        assert a.run("open(os.path.join(WORKDIR, 'sub/dir/note.txt')).read()").value == "'from a'"
        assert a.run("os.path.exists('data.txt')").value == "False"
        for other in (b, sandbox):
            assert other.run("open('sub/dir/note.txt').read()").value == "'from base'"
            assert other.run("os.path.exists(os.path.join(WORKDIR, 'absolute.txt'))").value == "False"
            assert other.run("open('data.txt').read()").value == "'0123456789'"
        assert b.run("os.getcwd() == WORKDIR").value == "True"  # same absolute path everywhere
    # Nor is anything visible from the host at the workdir path.
    assert not os.path.exists(os.path.join(sandbox.workdir, "absolute.txt"))


def test_the_original_sandbox_writes_do_not_reach_the_snapshot(base):
    sandbox, snapshot = base
    sandbox.run("counter = -1\nopen('sub/dir/note.txt', 'w').write('changed later')")
    with snapshot.branch() as branch:
        assert branch.run("counter, open('sub/dir/note.txt').read()").value == "(41, 'from base')"


def test_open_files_do_not_share_offsets_between_branches(base):
    sandbox, snapshot = base
    with snapshot.branch() as a, snapshot.branch() as b:
        assert a.run("reader.read(3)").value == "'234'"
        assert b.run("reader.read(3)").value == "'234'"  # not '567': its own offset
        assert sandbox.run("reader.read(3)").value == "'234'"
        a.run("appender.write('from a\\n'); appender.flush()")
        b.run("appender.write('from b\\n'); appender.flush()")
        assert a.run("open('log.txt').read()").value == "'base\\nfrom a\\n'"
        assert b.run("open('log.txt').read()").value == "'base\\nfrom b\\n'"
        assert sandbox.run("open('log.txt').read()").value == "'base\\n'"


def test_a_snapshot_outlives_its_sandbox(platform):
    sandbox = platform.create_sandbox()
    sandbox.run("value = 'kept'\nopen('f', 'w').write('file kept')")
    snapshot = sandbox.snapshot()
    sandbox.close()
    with snapshot.branch() as branch:
        assert branch.run("value, open('f').read()").value == "('kept', 'file kept')"
    snapshot.release()


def test_a_snapshot_outlives_a_killed_sandbox(platform):
    sandbox = platform.create_sandbox()
    sandbox.run("value = 7")
    snapshot = sandbox.snapshot()
    os.kill(sandbox.pid, 9)
    with snapshot.branch() as branch:
        assert branch.run("value * 6").value == "42"
    snapshot.release()
    sandbox.close()


def test_branches_of_branches_see_their_parent_branch_state(platform):
    sandbox = platform.create_sandbox()
    sandbox.run("history = ['root']\nopen('h.txt', 'w').write('root')")
    level1 = sandbox.snapshot()
    with level1.branch() as b1:
        b1.run("history.append('b1')\nopen('h.txt', 'a').write('+b1')")
        level2 = b1.snapshot()
        assert level2.parent is level1 and level1.children == [level2]
        with level2.branch() as b2:
            assert b2.run("history, open('h.txt').read()").value == "(['root', 'b1'], 'root+b1')"
            b2.run("open('h.txt', 'a').write('+b2')")
        assert b1.run("open('h.txt').read()").value == "'root+b1'"
    with level1.branch() as fresh:
        assert fresh.run("history, open('h.txt').read()").value == "(['root'], 'root')"
    level2.release()
    level1.release()
    sandbox.close()


def test_symlinks_and_new_files_in_branches_survive_snapshots(platform):
    sandbox = platform.create_sandbox()
    sandbox.run("import os\nopen('target.txt', 'w').write('t')\nos.symlink('target.txt', 'link')\n"
                "os.symlink('/etc/hostname', 'outside')\nos.symlink('missing', 'dangling')")
    first = sandbox.snapshot()
    with first.branch() as branch:
        branch.run("os.makedirs('made/in/branch')\nopen('made/in/branch/f', 'w').write('new')")
        second = branch.snapshot()  # a branch's own files come through /proc/<pid>/root
        with second.branch() as deeper:
            assert deeper.run("open('made/in/branch/f').read(), os.readlink('link'), "
                              "open('link').read(), os.readlink('dangling')").value == "('new', 'target.txt', 't', 'missing')"
    assert sandbox.run("os.path.exists('made')").value == "False"
    second.release()
    first.release()
    sandbox.close()


def test_branches_work_without_the_native_helper():
    """The pure-Python branch steps (used under another Python version) give the same state."""
    import subprocess
    import sys
    script = (
        "from faas_sdk import ExecutionPlatform\n"
        "with ExecutionPlatform() as p:\n"
        "    sb = p.create_sandbox()\n"
        "    sb.run(\"import sys\\nv = 1\\nopen('f', 'w').write('base')\\nh = open('f')\")\n"
        "    snap = sb.snapshot()\n"
        "    a, b = snap.branch(), snap.branch()\n"
        "    a.run(\"v = 2\\nopen('f', 'w').write('a')\")\n"
        "    print(b.run(\"v, open('f').read(), h.read(), '_faas_native' in sys.modules\").value)\n"
        "    snap.release()\n")
    env = dict(os.environ, FAAS_SDK_NATIVE="0")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1, 'base', 'base', False)"
