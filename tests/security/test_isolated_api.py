"""What the isolated modes (SECURE, CONTAINER) do not offer yet says so with a typed error, and
an isolated sandbox is a normal sandbox otherwise (state, output, one-shot execute, clean-up)."""

from __future__ import annotations

import os

import pytest

from faas_sdk import ExecutionPlatform, ModeNotAvailable



@pytest.fixture(scope="module")
def isolated_platform():
    with ExecutionPlatform(warm_pool_size=1) as p:
        yield p



def test_state_output_and_one_shot_execute(isolated_platform, mode):
    with isolated_platform.create_sandbox(mode=mode) as sb:
        sb.run("x = 41")
        result = sb.run("print('hi'); x + 1")
        assert result.value == "42" and result.stdout == "hi\n"
        assert sb.run("import os; os.getuid()").value != "0" or os.geteuid() != 0
        workdir = sb.workdir
        sb.run("open('kept.txt', 'w').write('from the sandbox')")
        with open(os.path.join(workdir, "kept.txt")) as f:  # the host sees its workdir
            assert f.read() == "from the sandbox"
    assert not os.path.exists(workdir)
    assert isolated_platform.execute("print(6 * 7)", mode=mode).stdout == "42\n"


def test_the_host_sees_the_kernel_by_its_own_pid(isolated_platform, mode):
    # CONTAINER kernels live in a pid namespace; sandbox.pid is still the host's pid.
    with isolated_platform.create_sandbox(mode=mode) as sb:
        with open(f"/proc/{sb.pid}/cmdline", "rb") as f:
            assert b"kernel.py" in f.read()


def test_a_workdir_of_your_choice_is_refused(isolated_platform, mode, tmp_path):
    with pytest.raises(ModeNotAvailable, match="workdir"):
        isolated_platform.create_sandbox(mode=mode, workdir=str(tmp_path))
