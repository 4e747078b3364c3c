"""What SECURE mode does not offer yet says so with a typed error, and a SECURE sandbox is a
normal sandbox otherwise (state, output, one-shot execute, clean-up)."""

from __future__ import annotations

import os

import pytest

from faas_sdk import ExecutionPlatform, Mode, ModeNotAvailable
from faas_sdk._isolation import secure_unavailable_reason


@pytest.fixture(scope="module")
def secure_platform(require_isolation):
    require_isolation(secure_unavailable_reason())
    with ExecutionPlatform(warm_pool_size=1) as p:
        yield p


def test_state_output_and_one_shot_execute(secure_platform):
    with secure_platform.create_sandbox(mode=Mode.SECURE) as sb:
        sb.run("x = 41")
        result = sb.run("print('hi'); x + 1")
        assert result.value == "42" and result.stdout == "hi\n"
        assert sb.run("import os; os.getuid()").value != "0" or os.geteuid() != 0
        workdir = sb.workdir
        sb.run("open('kept.txt', 'w').write('from the sandbox')")
        with open(os.path.join(workdir, "kept.txt")) as f:  # the host sees its workdir
            assert f.read() == "from the sandbox"
    assert not os.path.exists(workdir)
    assert secure_platform.execute("print(6 * 7)", mode=Mode.SECURE).stdout == "42\n"


def test_snapshot_is_not_available_yet(secure_platform):
    with secure_platform.create_sandbox(mode=Mode.SECURE) as sb:
        with pytest.raises(ModeNotAvailable, match="snapshots of secure sandboxes"):
            sb.snapshot()
        assert sb.run("1 + 1").value == "2"


def test_a_workdir_of_your_choice_is_refused(secure_platform, tmp_path):
    with pytest.raises(ModeNotAvailable, match="workdir"):
        secure_platform.create_sandbox(mode=Mode.SECURE, workdir=str(tmp_path))
