"""What a branch does before it runs user code again: see its own copy-on-write view of the
workdir at the same absolute path, stop sharing file offsets with its siblings, and reseed its
randomness so siblings diverge (or replay exactly, given a seed)."""

import ctypes
import os
import stat
import sys
from typing import Optional

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
REOPEN_DROP = os.O_CREAT | os.O_EXCL | os.O_TRUNC | os.O_NOCTTY


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


_template_namespace_ready = False


def prepare_template_namespace() -> None:
    """In a snapshot template, once: a private mount namespace of its own (user namespace too
    when unprivileged), so each branch only copies it instead of building one. Best effort: if
    it fails, branches do the whole job themselves and report any error."""
    global _template_namespace_ready
    try:
        _enter_mount_namespace()
        _template_namespace_ready = True
    except OSError:
        pass


def template_namespace_ready() -> bool:
    return _template_namespace_ready


def _enter_mount_namespace() -> None:
    if _template_namespace_ready:
        # Already private (and privileged within our user namespace): a plain copy will do.
        _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        return
    if os.geteuid() == 0:
        _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    else:
        # Unprivileged: a user namespace mapping only ourselves grants the mount rights.
        uid, gid = os.geteuid(), os.getegid()
        _check(_libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare(CLONE_NEWUSER|CLONE_NEWNS)")
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    # Nothing we mount may propagate back to the host.
    _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount(/, MS_REC|MS_PRIVATE)")


def mount_private_workdir(workdir: str, lower: str, own_dir: str) -> None:
    """Overlays the snapshot's frozen files (lower) with this branch's own layer (made under
    own_dir) at the workdir's own path, in a mount namespace of this process alone."""
    _enter_mount_namespace()
    upper, work = f"{own_dir}/upper", f"{own_dir}/work"
    for path in (own_dir, upper, work):
        os.mkdir(path, 0o700)
    target = workdir.encode()
    if os.path.ismount(workdir):  # a branch of a branch: drop the parent branch's overlay
        _check(_libc.umount2(target, MNT_DETACH), f"umount2({workdir})")
    options = f"lowerdir={lower},upperdir={upper},workdir={work}".encode()
    _check(_libc.mount(b"overlay", target, b"overlay", 0, options), f"mount(overlay on {workdir})")


def reopen_regular_files(keep: set) -> None:
    """Gives every inherited regular-file descriptor its own open file description (own
    offset), re-resolved by path so files under the workdir come from this branch's layer."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd in keep:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            path = os.readlink(f"/proc/self/fd/{fd}")
            if path.endswith(" (deleted)"):
                continue
            with open(f"/proc/self/fdinfo/{fd}") as info:
                flags = next(int(line.split()[1], 8) for line in info if line.startswith("flags:"))
            offset = os.lseek(fd, 0, os.SEEK_CUR)
            fresh = os.open(path, flags & ~REOPEN_DROP)
            os.lseek(fresh, offset, os.SEEK_SET)
            os.dup2(fresh, fd, inheritable=not flags & os.O_CLOEXEC)
            os.close(fresh)
        except (OSError, StopIteration, ValueError):
            continue  # not reopenable (gone, no permission): it keeps the shared description


def reseed(seed: Optional[int]) -> None:
    """Fresh entropy per branch, or a fixed seed so a search can be replayed.

    Without a seed `random` needs nothing: its own at-fork hook reseeded it from os.urandom in
    this child, and modules not imported yet seed themselves when first imported here.
    """
    random = sys.modules.get("random")
    if seed is not None:
        if random is None:
            import random
        random.seed(seed)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(None if seed is None else seed % (1 << 32))
