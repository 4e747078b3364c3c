"""Every mode is named; the ones not built yet say so with a typed error."""

import pytest

from faas_sdk import AVAILABLE_MODES, FaasError, Mode, ModeNotAvailable


def test_the_enum_names_all_five_modes():
    assert [m.name for m in Mode] == ["LOCAL", "SECURE", "CONTAINER", "CHECKPOINTED", "BRANCHED"]


@pytest.mark.parametrize("mode", [m for m in Mode if m not in AVAILABLE_MODES])
def test_unavailable_modes_raise_a_clear_error(platform, mode):
    with pytest.raises(ModeNotAvailable, match=mode.name) as info:
        platform.execute("1", mode=mode)
    assert isinstance(info.value, FaasError) and isinstance(info.value, NotImplementedError)
    with pytest.raises(ModeNotAvailable, match=mode.name):
        platform.create_sandbox(mode=mode)
