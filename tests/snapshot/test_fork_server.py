"""The snapshot template's fork server (src/kernel_native/fork_server.c): the spare it forks
ahead, the branch layers on its own tmpfs, and what is left once they are done."""

import os
import signal
import time

import psutil

from faas_sdk import Sandbox


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    return predicate()


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def spares(snapshot, branches) -> list:
    """The template's children that are not branches: its spare, if any."""
    taken = {b.pid for b in branches}
    return [c.pid for c in psutil.Process(snapshot.template_pid).children() if c.pid not in taken]


def upper_dir(branch: Sandbox) -> str:
    """The branch's own layer, as its overlay mount names it."""
    for line in open(f"/proc/{branch.pid}/mountinfo"):
        if " - overlay " in line:
            options = line.split(" - overlay ", 1)[1].split()[1]
            return next(o.split("=", 1)[1] for o in options.split(",") if o.startswith("upperdir="))
    raise AssertionError("the branch has no overlay")


def test_a_branched_template_keeps_one_spare_and_it_serves_the_next_branch(platform):
    with platform.create_sandbox() as sandbox:
        sandbox.run("import os\nv = 7\nopen('f', 'w').write('base')")
        with sandbox.snapshot() as snapshot:
            assert spares(snapshot, []) == []  # none before the first branch
            first = snapshot.branch()
            spare = wait_for(lambda: spares(snapshot, [first]))
            assert len(spare) == 1
            second = snapshot.branch()
            assert second.pid == spare[0]  # the spare became the branch
            for b in (first, second):
                assert b.run("v, open('f').read(), os.environ['FAAS_SDK_SANDBOX_ID'], os.getpid()").value == \
                    repr((7, "base", b.id, b.pid))
            second.run("v = 8\nopen('f', 'w').write('second')")
            assert first.run("v, open('f').read()").value == "(7, 'base')"
            assert sandbox.run("v, open('f').read()").value == "(7, 'base')"
            # A burst takes the spare, then forks the rest on demand: all the same state.
            more = snapshot.branch(count=3)
            assert all(isinstance(b, Sandbox) for b in more), more
            assert [b.run("v").value for b in more] == ["7"] * 3
            live = [first, second] + more
            assert len(wait_for(lambda: spares(snapshot, live))) == 1
            for b in live:
                b.close()


def test_seeded_branches_replay_whether_spare_or_forked(platform):
    with platform.create_sandbox() as sandbox:
        sandbox.run("import random")
        with sandbox.snapshot() as snapshot:
            draws = []
            for _ in range(3):  # the first is forked on demand, the others come from a spare
                with snapshot.branch(seed=11) as b:
                    draws.append(b.run("random.random()").value)
                wait_for(lambda: spares(snapshot, []))
            assert len(set(draws)) == 1
            with snapshot.branch() as b1, snapshot.branch() as b2:
                assert b1.run("random.random()").value != b2.run("random.random()").value


def test_a_killed_spare_is_replaced_and_branching_goes_on(platform):
    with platform.create_sandbox() as sandbox:
        sandbox.run("v = 1")
        with sandbox.snapshot() as snapshot:
            snapshot.branch().close()
            spare = wait_for(lambda: spares(snapshot, []))[0]
            os.kill(spare, signal.SIGKILL)
            assert wait_for(lambda: gone(spare))
            with snapshot.branch() as b:
                assert b.pid != spare and b.run("v").value == "1"
            assert wait_for(lambda: [p for p in spares(snapshot, [b]) if p != spare])


def test_releasing_the_snapshot_ends_its_spare(platform):
    with platform.create_sandbox() as sandbox:
        snapshot = sandbox.snapshot()
        branch = snapshot.branch()
        spare = wait_for(lambda: spares(snapshot, [branch]))[0]
        snapshot.release()
        assert wait_for(lambda: gone(spare))
        assert branch.run("'alive'").value == "'alive'"
        branch.close()


def test_branch_layers_live_in_the_template_namespace_and_go_with_their_branch(platform):
    with platform.create_sandbox() as sandbox:
        with sandbox.snapshot() as snapshot:
            branch = snapshot.branch()
            branch.run("open('written-in-branch', 'w').write('x')")
            upper = upper_dir(branch)
            in_template = f"/proc/{snapshot.template_pid}/root{upper}"
            assert os.listdir(in_template) == ["written-in-branch"]
            # The host sees none of it: the layer is on the template's own tmpfs.
            assert not os.path.exists(upper)
            assert all(upper not in line for line in open("/proc/self/mountinfo"))
            branch.close()
            assert wait_for(lambda: not os.path.exists(os.path.dirname(in_template)))
