"""Code and argument validation happens before anything reaches a sandbox."""

import pytest

from faas_sdk import InvalidCode, Limits, ModeNotAvailable
from faas_sdk._code import check_timeout, encode_code


def test_text_is_sent_as_utf8():
    assert encode_code("print('é')") == "print('é')".encode()


def test_bytes_must_be_valid_utf8():
    with pytest.raises(InvalidCode, match="not valid UTF-8"):
        encode_code(b"print('\xff')")


def test_nul_bytes_are_refused_with_their_offset():
    with pytest.raises(InvalidCode, match="NUL byte at offset 3"):
        encode_code("abc\0def")


def test_lone_surrogates_are_refused():
    with pytest.raises(InvalidCode, match="not valid Unicode"):
        encode_code("x = '\udcff'")


def test_non_text_is_refused():
    with pytest.raises(InvalidCode, match="must be str or bytes"):
        encode_code(42)


def test_invalid_code_is_also_a_value_error():
    with pytest.raises(ValueError):
        encode_code(b"\0")


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan")])
def test_timeouts_must_be_positive_and_finite(bad):
    with pytest.raises(ValueError):
        check_timeout(bad)


def test_limits_reject_non_positive_values():
    with pytest.raises(ValueError, match="memory_bytes"):
        Limits(memory_bytes=0)


def test_pids_limit_is_refused_in_local_mode():
    with pytest.raises(ModeNotAvailable, match="pids"):
        Limits(pids=10).rlimits()
