"""Every mode is named; a mode this machine cannot run says why with a typed error."""

import pytest

import faas_sdk.platform
from faas_sdk import AVAILABLE_MODES, FaasError, Mode, ModeNotAvailable


def test_the_enum_names_all_five_modes():
    assert [m.name for m in Mode] == ["LOCAL", "SECURE", "CONTAINER", "CHECKPOINTED", "BRANCHED"]


@pytest.mark.parametrize("mode", [Mode.SECURE, Mode.CONTAINER])
def test_unavailable_modes_raise_a_clear_error(platform, mode, monkeypatch):
    # As on a machine without Landlock: the isolated modes are missing from AVAILABLE_MODES.
    monkeypatch.setattr(faas_sdk.platform, "AVAILABLE_MODES", AVAILABLE_MODES - {mode})
    monkeypatch.setattr(faas_sdk.platform, "secure_unavailable_reason", lambda: "SECURE mode needs Landlock")
    monkeypatch.setattr(faas_sdk.platform, "container_unavailable_reason", lambda: "CONTAINER mode needs Landlock")
    with pytest.raises(ModeNotAvailable, match=mode.name) as info:
        platform.execute("1", mode=mode)
    assert isinstance(info.value, FaasError) and isinstance(info.value, NotImplementedError)
    with pytest.raises(ModeNotAvailable, match=mode.name):
        platform.create_sandbox(mode=mode)
