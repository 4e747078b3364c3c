"""Isolation tests skip where the machine cannot isolate, unless FAAS_SDK_MUST_ISOLATE=1 (CI
sets it), which turns every such skip into a failure (design.md §6)."""

import contextlib
import os

import pytest

from faas_sdk import Mode
from faas_sdk._isolation import container_unavailable_reason, secure_unavailable_reason


@pytest.fixture(scope="session")
def require_isolation():
    return _require_isolation


def _require_isolation(reason) -> None:
    """Skips (or, with FAAS_SDK_MUST_ISOLATE=1, fails) when `reason` says isolation is missing."""
    if reason is None:
        return
    if os.environ.get("FAAS_SDK_MUST_ISOLATE") == "1":
        pytest.fail(f"FAAS_SDK_MUST_ISOLATE=1 but isolation is unavailable: {reason}")
    pytest.skip(reason)


@pytest.fixture(params=[Mode.SECURE, Mode.CONTAINER], ids=lambda m: m.name)
def mode(request, require_isolation):
    """Each isolated mode in turn (skipped, or failed under FAAS_SDK_MUST_ISOLATE=1, where this
    machine cannot run it). A module narrows it with indirect parametrisation."""
    reason = {Mode.SECURE: secure_unavailable_reason, Mode.CONTAINER: container_unavailable_reason}[request.param]
    require_isolation(reason())
    return request.param


@contextlib.contextmanager
def _bystander(platform, mode):
    with platform.create_sandbox(mode=mode) as sb:
        sb.run("x = 41")
        yield sb
        assert sb.run("x + 1").value == "42"


@pytest.fixture(scope="session")
def bystander_in():
    """bystander_in(platform, mode): a context manager holding another sandbox of `mode`, which
    must not notice what the test does (its state survives)."""
    return _bystander


@pytest.fixture(scope="session")
def fork_bomb() -> str:
    """Code that forks until fork() fails, then kills its children and prints how many it had."""
    return FORK_BOMB


FORK_BOMB = """
import os, time
children = []
try:
    while True:
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        children.append(pid)
finally:
    count = len(children)
    for pid in children:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    print(count)
"""
