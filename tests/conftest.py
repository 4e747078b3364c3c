"""Shared fixtures, and the end-of-session check that nothing of ours is left behind."""

from __future__ import annotations

import glob
import os
import tempfile

import psutil
import pytest

from faas_sdk import ExecutionPlatform
from faas_sdk import _engine


@pytest.fixture
def platform():
    with ExecutionPlatform() as p:
        yield p


@pytest.fixture
def sandbox(platform):
    with platform.create_sandbox() as sb:
        yield sb


def _our_temp_dirs() -> list[str]:
    return glob.glob(os.path.join(tempfile.gettempdir(), f"faas_sdk-{os.getpid()}-*"))


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind():
    """After the whole suite: no sandbox process, zombie, mount or temporary directory remains."""
    yield
    _engine.shutdown()
    me = psutil.Process()
    leftovers = [c for c in me.children(recursive=True) if c.is_running()]
    described = [(c.pid, c.status(), " ".join(c.cmdline()[:4])) for c in leftovers]
    assert not described, f"processes left behind: {described}"
    assert not _our_temp_dirs(), f"temporary directories left behind: {_our_temp_dirs()}"
    with open("/proc/self/mounts") as mounts:
        ours = [line for line in mounts if "faas_sdk-" in line]
    assert not ours, f"mounts left behind in the host namespace: {ours}"
