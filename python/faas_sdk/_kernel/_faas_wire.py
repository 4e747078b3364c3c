"""Wire constants and codecs shared by the kernel and the fork server (mirrors
src/core/protocol/messages.hpp; docs/protocol.md describes both)."""

import struct

HEADER = struct.Struct("<IBBH")
FRAME_EXEC, FRAME_SNAPSHOT = 0x01, 0x02
FRAME_READY, FRAME_RESULT, FRAME_FATAL, FRAME_SNAPSHOT_DONE = 0x81, 0x82, 0x83, 0x84
FORK_REQUEST, FORK_SERVER_READY, FORK_DONE, FORK_CHILD_EXITED = 0x01, 0x80, 0x81, 0x82
FORK_LOOPBACK = 0x01  # FORK flags
STATUS_OK, STATUS_ERROR = 0, 1
MARKER_STDOUT, MARKER_STDERR = 1, 2
FLAG_HAS_VALUE = 1
MARKER_PREFIX = b"\x1e\x1fFAAS-END:"
TOKEN_SIZE = 16
RLIM_INFINITY_WIRE = (1 << 64) - 1
CONTROL_BUFFER = 256 * 1024  # larger than the engine's 128 KiB control-message bound


class Reader:
    """Bounds-checked little-endian reader for control messages."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ValueError("message truncated")
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value

    def str(self) -> str:
        n = self.take("<I")
        if self.pos + n > len(self.data):
            raise ValueError("message truncated")
        s = self.data[self.pos:self.pos + n].decode("utf-8", "surrogateescape")
        self.pos += n
        return s


def wire_str(s: str, limit: int) -> bytes:
    b = s.encode("utf-8", "backslashreplace")
    if len(b) > limit:
        b = b[:limit] + b"...[truncated]"
    return struct.pack("<I", len(b)) + b


def frame(frame_type: int, payload: bytes, flags: int = 0) -> bytes:
    return HEADER.pack(len(payload), frame_type, flags, 0) + payload
