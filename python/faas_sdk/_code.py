"""Validation of code before it is sent to a sandbox."""

from __future__ import annotations

import math
from typing import Optional, Union

from .errors import InvalidCode

Code = Union[str, bytes]
MAX_CODE_BYTES = 256 * 1024 * 1024  # frames carry a 32-bit length; keep far below it


def encode_code(code: Code) -> bytes:
    """UTF-8 bytes of `code`, or InvalidCode saying exactly what is wrong with it."""
    if isinstance(code, str):
        try:
            data = code.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidCode(f"code is not valid Unicode text: {exc.reason} at offset {exc.start}") from None
    elif isinstance(code, (bytes, bytearray, memoryview)):
        data = bytes(code)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidCode(f"code is not valid UTF-8: {exc.reason} at byte {exc.start}") from None
    else:
        raise InvalidCode(f"code must be str or bytes, not {type(code).__name__}")
    if len(data) > MAX_CODE_BYTES:
        raise InvalidCode(f"code is {len(data)} bytes; at most {MAX_CODE_BYTES} can be sent")
    nul = data.find(b"\0")
    if nul >= 0:
        raise InvalidCode(f"code contains a NUL byte at offset {nul}")
    return data


def check_timeout(timeout: Optional[float]) -> Optional[float]:
    if timeout is None:
        return None
    t = float(timeout)
    if not (t > 0 and math.isfinite(t)):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return t
