"""Branch identity, scale, failures and lifecycle of snapshots and branches."""

import os
import time

import psutil
import pytest

from faas_sdk import FaasError, Mode, Sandbox, SnapshotError


def test_branches_draw_different_randomness_unless_seeded(platform):
    with platform.create_sandbox() as sandbox:
        sandbox.run("import random")
        snapshot = sandbox.snapshot()
        a, b = snapshot.branch(), snapshot.branch()
        assert a.run("random.random()").value != b.run("random.random()").value
        s1, s2 = snapshot.branch(seed=7), snapshot.branch(seed=7)
        assert s1.run("[random.random() for _ in range(3)]").value == s2.run("[random.random() for _ in range(3)]").value
        batch = snapshot.branch(count=2, seed=7)
        assert batch[0].run("random.random()").value == snapshot.branch(seed=7).run("random.random()").value
        assert batch[0].run("random.random()").value != batch[1].run("random.random()").value
        ids = {sb.run("import os\nos.environ['FAAS_SDK_SANDBOX_ID']").value for sb in (a, b, s1)}
        assert ids == {repr(a.id), repr(b.id), repr(s1.id)}
        snapshot.release()


def test_numpy_is_reseeded_per_branch(platform):
    pytest.importorskip("numpy")
    with platform.create_sandbox() as sandbox:
        sandbox.run("import numpy as np")
        with sandbox.snapshot() as snapshot:
            a, b = snapshot.branch(), snapshot.branch()
            assert a.run("np.random.rand()").value != b.run("np.random.rand()").value
            c, d = snapshot.branch(seed=3), snapshot.branch(seed=3)
            assert c.run("np.random.rand()").value == d.run("np.random.rand()").value


def test_the_issue_scenario_three_solvers_in_parallel(platform):
    setup = (
        "import math\n"
        "problem = {'a': 1.0, 'b': -3.0, 'c': 2.0}   # x^2 - 3x + 2 = 0\n"
        "def solve_algebraically():\n"
        "    a, b, c = problem.values()\n"
        "    d = math.sqrt(b*b - 4*a*c)\n"
        "    return ('algebraic', sorted(((-b - d) / (2*a), (-b + d) / (2*a))))\n"
        "def solve_numerically():\n"
        "    f = lambda x: x*x - 3*x + 2\n"
        "    lo, hi = 1.5, 3.0\n"
        "    for _ in range(60):\n"
        "        mid = (lo + hi) / 2\n"
        "        lo, hi = (lo, mid) if f(lo) * f(mid) <= 0 else (mid, hi)\n"
        "    return ('numeric', round(lo, 6))\n"
        "def solve_graphically():\n"
        "    xs = [i / 100 for i in range(0, 400)]\n"
        "    return ('graphic', [x for x in xs if abs(x*x - 3*x + 2) < 1e-9])\n")
    base = platform.execute(setup, mode=Mode.CHECKPOINTED)
    assert base.success and base.snapshot is not None
    branches = platform.explore_parallel(
        ["solve_algebraically()", "solve_numerically()", "solve_graphically()"], base_snapshot=base.snapshot)
    assert all(b.success for b in branches)
    assert [b.value for b in branches] == ["('algebraic', [1.0, 2.0])", "('numeric', 2.0)", "('graphic', [1.0, 2.0])"]
    assert len({b.branch_id for b in branches}) == 3
    base.snapshot.release()


def test_results_keep_input_order_and_failures_stay_local(platform):
    with platform.create_sandbox() as sandbox:
        sandbox.run("import time")
        with sandbox.snapshot() as snapshot:
            results = platform.explore_parallel(
                ["time.sleep(0.3)\n'slow'", "1/0", "while True: pass", "'fast'", "import os\nos._exit(3)"],
                base_snapshot=snapshot, timeout=1.0)
            assert [r.outcome for r in results] == ["completed", "completed", "timeout", "completed", "died"]
            assert results[0].value == "'slow'" and results[3].value == "'fast'"
            assert results[1].error.type == "ZeroDivisionError"
            assert results[2].error.type == "ExecutionTimeout"
            assert all(r.sandbox is None for r in results)  # not kept: closed


def test_max_parallel_bounds_concurrency(platform):
    with platform.create_sandbox() as sandbox:
        sandbox.run("import time, os")
        with sandbox.snapshot() as snapshot:
            codes = ["t0 = time.time(); time.sleep(0.2); (t0, time.time())"] * 6
            results = platform.explore_parallel(codes, base_snapshot=snapshot, max_parallel=2)
            spans = [eval(r.value) for r in results]
            for t in sorted(s[0] for s in spans):
                running = sum(1 for start, end in spans if start <= t + 1e-3 < end)
                assert running <= 2


def test_keep_returns_live_branches_and_end_snapshots(platform):
    with platform.create_sandbox() as sandbox:
        sandbox.run("x = 1")
        with sandbox.snapshot() as snapshot:
            results = platform.explore_parallel(["x += 1\nx", "x += 2\nx"], base_snapshot=snapshot, keep=True,
                                                snapshot_end=True)
            assert [r.value for r in results] == ["2", "3"]
            assert all(isinstance(r.sandbox, Sandbox) and r.sandbox.alive for r in results)
            assert results[0].sandbox.run("x").value == "2"
            with results[1].snapshot.branch() as deeper:
                assert deeper.run("x").value == "3"
            assert results[1].snapshot.parent is snapshot
            for r in results:
                r.snapshot.release()
                r.sandbox.close()


def test_branch_depth_50(platform):
    sandbox = platform.create_sandbox()
    sandbox.run("depth = 0\nopen('trail', 'w').write('0')")
    snapshots, current = [], sandbox
    for level in range(1, 51):
        snapshot = current.snapshot()
        snapshots.append(snapshot)
        branch = snapshot.branch()
        branch.run(f"depth += 1\nopen('trail', 'a').write(',{level}')")
        if current is not sandbox:
            current.close()
        current = branch
    assert current.run("depth").value == "50"
    assert current.run("open('trail').read()").value == repr(",".join(str(i) for i in range(51)))
    lineage, node = [], snapshots[-1]
    while node is not None:
        lineage.append(node)
        node = node.parent
    assert lineage == snapshots[::-1]
    current.close()
    sandbox.close()
    for snapshot in snapshots:
        snapshot.release()


def test_200_live_branches_of_one_snapshot(platform):
    with platform.create_sandbox() as sandbox:
        sandbox.run("payload = list(range(1000))")
        with sandbox.snapshot() as snapshot:
            branches = snapshot.branch(count=200)
            try:
                assert all(isinstance(b, Sandbox) for b in branches), [b for b in branches if not isinstance(b, Sandbox)][:3]
                assert len({b.pid for b in branches}) == 200
                for i, b in enumerate(branches):
                    b.run(f"payload[0] = {i}")
                assert [b.run("payload[0]").value for b in branches] == [str(i) for i in range(200)]
                assert platform.metrics()["branches_live"] >= 200
            finally:
                for b in branches:
                    b.close()


def test_snapshot_with_live_threads_fails_cleanly(platform):
    with platform.create_sandbox() as sandbox:
        sandbox.run("import threading, time\nstop = threading.Event()\n"
                    "workers = [threading.Thread(target=stop.wait) for _ in range(2)]\n"
                    "[w.start() for w in workers]")
        live_before = platform.metrics()["snapshots_live"]
        with pytest.raises(SnapshotError, match="3 threads"):
            sandbox.snapshot()
        assert platform.metrics()["snapshots_live"] == live_before  # nothing half-made
        children = [c for c in psutil.Process(sandbox.pid).children()]
        assert children == []  # no template was forked
        sandbox.run("stop.set()\n[w.join() for w in workers]")
        with sandbox.snapshot() as snapshot:  # once joined, it works
            with snapshot.branch() as branch:
                assert branch.run("len(workers)").value == "2"


def test_killing_a_template_makes_branching_fail_but_nothing_else(platform):
    with platform.create_sandbox() as sandbox:
        sandbox.run("v = 1")
        snapshot = sandbox.snapshot()
        survivor = snapshot.branch()
        os.kill(snapshot.template_pid, 9)
        deadline = time.monotonic() + 5
        while snapshot.alive and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(SnapshotError, match="template"):
            snapshot.branch()
        assert survivor.run("v + 1").value == "2"  # branches do not depend on the template
        failed = snapshot.branch(count=2)
        assert all(isinstance(f, SnapshotError) for f in failed)
        assert platform.execute("'still working'").value == "'still working'"
        with sandbox.snapshot() as fresh, fresh.branch() as b:
            assert b.run("v").value == "1"
        survivor.close()
        snapshot.release()


def test_released_snapshot_ends_its_template_and_refuses_branches(platform):
    with platform.create_sandbox() as sandbox:
        snapshot = sandbox.snapshot()
        template = snapshot.template_pid
        branch = snapshot.branch()
        snapshot.release()
        deadline = time.monotonic() + 5
        while psutil.pid_exists(template) and psutil.Process(template).status() != psutil.STATUS_ZOMBIE \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not psutil.pid_exists(template) or psutil.Process(template).status() == psutil.STATUS_ZOMBIE
        with pytest.raises(SnapshotError, match="released"):
            snapshot.branch()
        assert branch.run("'alive'").value == "'alive'"
        branch.close()


def test_branched_and_checkpointed_modes(platform):
    base = platform.execute("total = 10\nprint('setup')", mode=Mode.CHECKPOINTED)
    assert base.stdout == "setup\n" and base.snapshot.alive
    r = platform.execute("total * 2", mode=Mode.BRANCHED, base_snapshot=base.snapshot)
    assert r.value == "20"
    with pytest.raises(ValueError, match="base_snapshot"):
        platform.execute("1", mode=Mode.BRANCHED)
    failed = platform.execute("boom = 1\n1/0", mode=Mode.CHECKPOINTED)
    assert failed.error.type == "ZeroDivisionError"
    with failed.snapshot.branch() as b:  # the end state, even after an error
        assert b.run("boom").value == "1"
    failed.snapshot.release()
    base.snapshot.release()


def test_snapshot_tree_reports_lineage_state_and_memory(platform):
    with platform.create_sandbox() as sandbox:
        sandbox.run("blob = bytearray(8 << 20)")
        root = sandbox.snapshot()
        with root.branch() as b:
            child = b.snapshot()
        tree = {node["id"]: node for node in platform.snapshot_tree()}
        assert tree[root.id]["children"] == [child.id] and tree[child.id]["parent"] == root.id
        assert tree[root.id]["alive"] and tree[root.id]["memory"]["rss"] > 8 << 20
        assert 0 < tree[root.id]["memory"]["uss"] <= tree[root.id]["memory"]["rss"]
        child.release()
        assert {n["id"]: n for n in platform.snapshot_tree()}[child.id]["released"]
        assert child.memory() == {"rss": 0, "pss": 0, "uss": 0}
        root.release()


def test_metrics_cover_snapshots_and_branches(platform):
    before = platform.metrics()
    with platform.create_sandbox() as sandbox:
        with sandbox.snapshot() as snapshot, snapshot.branch():
            m = platform.metrics()
            assert m["snapshots_live"] >= 1 and m["branches_live"] >= 1
            memory = m["memory"]
            assert memory["template"]["count"] >= 1 and memory["branch"]["count"] >= 1
            assert 0 < memory["branch"]["uss"] <= memory["branch"]["pss"] * 4
    after = platform.metrics()
    assert after["snapshot"]["count"] == before["snapshot"]["count"] + 1
    assert after["branch_start"]["count"] == before["branch_start"]["count"] + 1
    assert after["snapshots_created"] == before["snapshots_created"] + 1


def test_platform_close_releases_snapshots_and_branches():
    from faas_sdk import ExecutionPlatform
    platform = ExecutionPlatform()
    sandbox = platform.create_sandbox()
    snapshot = sandbox.snapshot()
    branches = snapshot.branch(count=3)
    pids = [snapshot.template_pid, sandbox.pid] + [b.pid for b in branches]
    deadline = time.monotonic() + 5
    while len(psutil.Process(snapshot.template_pid).children()) <= len(branches) and time.monotonic() < deadline:
        time.sleep(0.01)
    pids += [c.pid for c in psutil.Process(snapshot.template_pid).children()]  # its spare too
    assert len(pids) == 2 + 3 + 4
    workdir = sandbox.workdir
    platform.close()
    deadline = time.monotonic() + 5
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.01)
    assert alive == []
    assert not snapshot.alive and snapshot.released
    assert not os.path.exists(workdir)
    with pytest.raises(FaasError):
        snapshot.branch()


def test_tree_search_finds_a_two_step_solution(platform):
    with platform.create_sandbox() as sandbox:
        sandbox.run("state = []")
        with sandbox.snapshot() as root:
            target = ["b", "c"]
            search = platform.explore_tree(
                root, expand=lambda node: [f"state.append({c!r})\nstate" for c in "abc"],
                score=lambda r: sum(1 for x, y in zip(eval(r.value), target) if x == y) - 0.1 * len(eval(r.value)),
                beam_width=2, depth=2)
            assert eval(search.best.result.value) == target
            assert len(search.best.path) == 2 and search.branches_run == 3 + 6
            with search.best.snapshot.branch() as b:
                assert b.run("state").value == "['b', 'c']"
            search.release()


def test_released_templates_do_not_linger_as_zombies(platform):
    with platform.create_sandbox() as sandbox:
        snapshots = [sandbox.snapshot() for _ in range(3)]
        templates = [s.template_pid for s in snapshots]
        for s in snapshots:
            s.release()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            sandbox.run("pass")  # the kernel reaps finished templates between executions
            if not any(psutil.pid_exists(p) for p in templates):
                break
            time.sleep(0.02)
        assert not any(psutil.pid_exists(p) for p in templates)


def test_aexecute_supports_checkpointed_and_branched(platform):
    import asyncio

    async def main():
        base = await platform.aexecute("v = 5", mode=Mode.CHECKPOINTED)
        branched = await platform.aexecute("v * 2", mode=Mode.BRANCHED, base_snapshot=base.snapshot)
        base.snapshot.release()
        return branched
    assert asyncio.run(main()).value == "10"


def test_a_failed_checkpoint_keeps_the_execution_result(platform):
    with pytest.raises(SnapshotError) as info:
        platform.execute("import threading\nt = threading.Thread(target=__import__('time').sleep, args=(5,))\n"
                         "t.start()\nprint('ran')", mode=Mode.CHECKPOINTED)
    assert info.value.result.success and info.value.result.stdout == "ran\n"


@pytest.mark.parametrize("mode", [Mode.CHECKPOINTED, Mode.BRANCHED])
def test_sandboxes_are_not_created_in_snapshot_modes(platform, mode):
    with pytest.raises(ValueError, match="snapshot"):
        platform.create_sandbox(mode=mode)
