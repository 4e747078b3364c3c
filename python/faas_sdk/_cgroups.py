"""Per-sandbox cgroups: CONTAINER mode's limits on memory, processes and CPU bandwidth.

The host makes them (a sandbox cannot: it sees no cgroup file system), under the cgroup the
host process already runs in:

    <controller's hierarchy>/<our cgroup>/faas_sdk-<host pid>/<sandbox id>

cgroup v1 (one hierarchy per controller, as these machines mount them) and v2 (one unified
hierarchy, with the controllers enabled for our subtree) are both read from /proc/self/mountinfo
and /proc/self/cgroup. A controller that is in neither, or whose directory we cannot write, is
"unavailable": the caller then falls back to a weaker mechanism with a warning, or refuses.

A sandbox's cgroup also ends it for good: remove() kills every process left in it, so a process
the sandbox started in a session of its own cannot outlive it.
"""

from __future__ import annotations

import atexit
import functools
import os
import signal
import time
from dataclasses import dataclass
from typing import Optional

__all__ = ["Hierarchy", "SandboxCgroup", "available_controllers", "unavailable_reason"]

CONTROLLERS = ("memory", "pids", "cpu")
CPU_PERIOD_US = 100_000  # the scheduler's default CFS period


@dataclass(frozen=True)
class Hierarchy:
    controller: str
    version: int  # 1 or 2
    own_dir: str  # the directory of the cgroup this process is in


def _mountinfo() -> list[tuple[str, str, str, str]]:
    """(root within the hierarchy, mount point, fs type, super options) of each cgroup mount."""
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
                mounts.append((fields[3], fields[4], tail[0], tail[2]))
    return mounts


def _own_cgroups() -> dict[str, str]:
    """Controller (or "" for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    own = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                own[name] = path
    return own


def _join(mount_point: str, mount_root: str, path: str) -> Optional[str]:
    """Where cgroup `path` of a hierarchy mounted from `mount_root` lies on disk."""
    if mount_root != "/" and not (path == mount_root or path.startswith(mount_root + "/")):
        return None  # our cgroup is outside what this mount shows
    relative = path[len(mount_root):] if mount_root != "/" else path
    return os.path.join(mount_point, relative.lstrip("/")).rstrip("/")


@functools.lru_cache(maxsize=None)
def available_controllers() -> dict[str, Hierarchy]:
    """Each of CONTROLLERS we can set limits with: v1 first (a controller bound to a v1
    hierarchy is absent from v2), then v2 where the controller is enabled for our cgroup."""
    try:
        mounts, own = _mountinfo(), _own_cgroups()
    except OSError:
        return {}
    found: dict[str, Hierarchy] = {}
    for root, point, fstype, options in mounts:
        if fstype != "cgroup":
            continue
        for controller in CONTROLLERS:
            if controller in options.split(",") and controller in own and controller not in found:
                directory = _join(point, root, own[controller])
                if directory and os.access(directory, os.W_OK):
                    found[controller] = Hierarchy(controller, 1, directory)
    for root, point, fstype, _ in mounts:
        if fstype != "cgroup2" or "" not in own:
            continue
        directory = _join(point, root, own[""])
        try:
            with open(os.path.join(directory, "cgroup.controllers")) as f:
                enabled = f.read().split()
        except (OSError, TypeError):
            continue
        for controller in CONTROLLERS:
            if controller in enabled and controller not in found and os.access(directory, os.W_OK):
                found[controller] = Hierarchy(controller, 2, directory)
    return found


def unavailable_reason(controller: str) -> Optional[str]:
    """Why `controller` cannot limit sandboxes here, or None if it can."""
    if controller in available_controllers():
        return None
    return (f"the cgroup {controller} controller is neither in a writable cgroup v1 hierarchy nor "
            f"enabled in a writable cgroup v2 one for this process (see /proc/self/cgroup)")


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _read_counter(path: str, key: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0


class SandboxCgroup:
    """One sandbox's cgroup in each hierarchy its limits need."""

    def __init__(self, sandbox_id: str, memory_bytes: Optional[int] = None, pids: Optional[int] = None,
                 cpu_cores: Optional[float] = None) -> None:
        wanted = {"memory": memory_bytes, "pids": pids, "cpu": cpu_cores}
        hierarchies = available_controllers()
        self.dirs: dict[str, tuple[Hierarchy, str]] = {}  # controller -> (hierarchy, our directory)
        try:
            for controller, value in wanted.items():
                if value is None:
                    continue
                hierarchy = hierarchies[controller]  # the caller checked unavailable_reason()
                directory = self._make_dir(hierarchy, sandbox_id)
                self.dirs[controller] = (hierarchy, directory)
                self._set_limit(hierarchy, directory, value)
        except BaseException:
            self.remove()
            raise

    @staticmethod
    def _make_dir(hierarchy: Hierarchy, sandbox_id: str) -> str:
        parent = os.path.join(hierarchy.own_dir, f"faas_sdk-{os.getpid()}")
        if hierarchy.version == 2:
            # v2 hands a controller to children only through subtree_control, level by level.
            _write(os.path.join(hierarchy.own_dir, "cgroup.subtree_control"), f"+{hierarchy.controller}")
        if not os.path.isdir(parent):
            os.makedirs(parent, exist_ok=True)
            atexit.register(SandboxCgroup.remove_parents)  # a platform never closed: once empty
        if hierarchy.version == 2:
            _write(os.path.join(parent, "cgroup.subtree_control"), f"+{hierarchy.controller}")
        directory = os.path.join(parent, sandbox_id)
        os.mkdir(directory)
        return directory

    @staticmethod
    def _set_limit(hierarchy: Hierarchy, directory: str, value) -> None:
        v1 = hierarchy.version == 1
        if hierarchy.controller == "memory":
            _write(os.path.join(directory, "memory.limit_in_bytes" if v1 else "memory.max"), str(int(value)))
            if not v1 and os.path.exists(os.path.join(directory, "memory.swap.max")):
                _write(os.path.join(directory, "memory.swap.max"), "0")  # no escape into swap
        elif hierarchy.controller == "pids":
            _write(os.path.join(directory, "pids.max"), str(int(value)))
        elif hierarchy.controller == "cpu":
            quota = max(1000, int(value * CPU_PERIOD_US))
            if v1:
                _write(os.path.join(directory, "cpu.cfs_period_us"), str(CPU_PERIOD_US))
                _write(os.path.join(directory, "cpu.cfs_quota_us"), str(quota))
            else:
                _write(os.path.join(directory, "cpu.max"), f"{quota} {CPU_PERIOD_US}")

    def add(self, pid: int) -> None:
        """Moves process `pid` (a kernel that has run no user code yet) into every cgroup."""
        for _, directory in self.dirs.values():
            _write(os.path.join(directory, "cgroup.procs"), str(pid))

    def oom_kills(self) -> int:
        """How many of the sandbox's processes the memory limit has killed."""
        if "memory" not in self.dirs:
            return 0
        hierarchy, directory = self.dirs["memory"]
        if hierarchy.version == 1:
            return _read_counter(os.path.join(directory, "memory.oom_control"), "oom_kill")
        return _read_counter(os.path.join(directory, "memory.events"), "oom_kill")

    def _members(self) -> set[int]:
        pids: set[int] = set()
        for _, directory in self.dirs.values():
            try:
                with open(os.path.join(directory, "cgroup.procs")) as f:
                    pids.update(int(line) for line in f if line.strip())
            except OSError:
                pass
        return pids

    def remove(self, timeout: float = 5.0) -> None:
        """Kills whatever still runs in the cgroups, then removes them. Idempotent."""
        deadline = time.monotonic() + timeout
        while self.dirs:
            for pid in self._members():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for controller, (_, directory) in list(self.dirs.items()):
                try:
                    os.rmdir(directory)
                except FileNotFoundError:
                    pass
                except OSError:
                    continue  # EBUSY: a killed process has not left yet
                del self.dirs[controller]
            if self.dirs:
                if time.monotonic() > deadline:
                    raise OSError(f"cgroups {sorted(d for _, d in self.dirs.values())} still hold processes")
                time.sleep(0.005)

    @staticmethod
    def remove_parents() -> None:
        """Removes this process's faas_sdk-<pid> directories once they are empty."""
        for hierarchy in available_controllers().values():
            try:
                os.rmdir(os.path.join(hierarchy.own_dir, f"faas_sdk-{os.getpid()}"))
            except OSError:
                pass
