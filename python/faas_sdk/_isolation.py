"""What an isolated (SECURE, CONTAINER) sandbox may read, and whether this machine can isolate.

The engine binds these host paths read-only into the isolated root of an isolated zygote
(src/core/isolation/root_filesystem.cpp) and Landlock lets its sandboxes read nothing else.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from typing import Optional

__all__ = ["readonly_paths", "secure_unavailable_reason", "container_unavailable_reason"]

# System directories (merged-/usr links included) and the few files of /etc a Python program
# reads. Not /etc as a whole: /etc/shadow and friends stay out of the sandbox's world.
SYSTEM_PATHS = (
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
    "/etc/nsswitch.conf", "/etc/passwd", "/etc/group", "/etc/hosts", "/etc/mime.types",
    "/etc/ssl/certs", "/etc/ca-certificates", "/etc/alternatives",
)

_SYS_LANDLOCK_CREATE_RULESET = 444
_LANDLOCK_CREATE_RULESET_VERSION = 1
_SYS_SECCOMP = 317
_SECCOMP_GET_ACTION_AVAIL = 2


def readonly_paths(kernel_dir: str, native_dir: str) -> list[str]:
    """System paths, the interpreter's installation, the kernel's own directory and the
    directory of its native helper; no path twice (one inside another is already covered)."""
    wanted = list(SYSTEM_PATHS)
    for prefix in (sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix):
        wanted.append(os.path.abspath(prefix))
    wanted.append(os.path.dirname(os.path.realpath(sys.executable)))
    wanted.append(os.path.abspath(kernel_dir))
    wanted.append(os.path.abspath(native_dir))
    kept: list[str] = []
    for path in sorted(set(wanted), key=len):
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


@functools.lru_cache(maxsize=None)
def landlock_abi() -> int:
    """The running kernel's Landlock ABI version, 0 without Landlock."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                       ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION))
    return max(int(abi), 0)


def _user_namespaces_allowed() -> bool:
    try:
        with open("/proc/sys/user/max_user_namespaces") as f:
            return int(f.read()) > 0
    except (OSError, ValueError):
        return False


@functools.lru_cache(maxsize=None)
def secure_unavailable_reason() -> Optional[str]:
    """Why SECURE mode cannot run here, or None if it can."""
    if not sys.platform.startswith("linux"):
        return "SECURE mode needs Linux"
    abi = landlock_abi()
    if abi < 6:
        return (f"SECURE mode needs Landlock ABI 6 or later (signal and abstract-socket scoping); "
                f"this kernel has {abi or 'none'}")
    if os.geteuid() != 0 and not _user_namespaces_allowed():
        return "SECURE mode without root needs unprivileged user namespaces (user.max_user_namespaces > 0)"
    return None


@functools.lru_cache(maxsize=None)
def container_unavailable_reason() -> Optional[str]:
    """Why CONTAINER mode cannot run here, or None if it can."""
    reason = secure_unavailable_reason()
    if reason is not None:
        return reason.replace("SECURE mode", "CONTAINER mode (SECURE plus namespaces)", 1)
    if not _user_namespaces_allowed():
        return "CONTAINER mode needs user namespaces (user.max_user_namespaces > 0)"
    return None
