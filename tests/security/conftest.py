"""Isolation tests skip where the machine cannot isolate, unless FAAS_SDK_MUST_ISOLATE=1 (CI
sets it), which turns every such skip into a failure (design.md §6)."""

import os

import pytest


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
