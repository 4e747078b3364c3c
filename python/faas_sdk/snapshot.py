"""Snapshots: a frozen copy of a live sandbox (memory and workdir files) that branches into
independent sandboxes, copy-on-write."""

from __future__ import annotations

import datetime
import weakref
from typing import TYPE_CHECKING, Optional, Union

from ._engine import core
from ._memory import process_memory
from .errors import FaasError, SnapshotError
from .modes import Mode

if TYPE_CHECKING:
    from .platform import ExecutionPlatform
    from .sandbox import Sandbox

__all__ = ["Snapshot"]


class Snapshot:
    """A frozen sandbox. Make one with ``sandbox.snapshot()`` or ``Mode.CHECKPOINTED``.

    ``branch()`` makes live sandboxes with exactly its state; they then diverge independently.
    It stays valid after the sandbox it came from is closed or killed. ``release()`` (or the
    end of a ``with`` block, or garbage collection) ends its template process; branches
    already made live on. Snapshots form a tree: ``parent`` is the snapshot of the branch this
    one was taken from, ``children`` the snapshots taken from its branches.
    """

    def __init__(self, raw, platform: "ExecutionPlatform", parent: Optional["Snapshot"], mode: Mode,
                 default_timeout: Optional[float]) -> None:
        self._core = raw
        self._platform = platform
        self._parent = parent
        self._mode = mode
        self._default_timeout = default_timeout
        self._children: "weakref.WeakSet[Snapshot]" = weakref.WeakSet()
        if parent is not None:
            parent._children.add(self)

    @property
    def id(self) -> str:
        return self._core.id

    @property
    def parent(self) -> Optional["Snapshot"]:
        """The snapshot this one descends from (its sandbox was a branch of it), or None."""
        return self._parent

    @property
    def children(self) -> list["Snapshot"]:
        """Snapshots taken from branches of this one (those still referenced)."""
        return sorted(self._children, key=lambda s: s.created_at)

    @property
    def source_sandbox_id(self) -> str:
        return self._core.source_sandbox_id

    @property
    def created_at(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self._core.created_at, tz=datetime.timezone.utc)

    @property
    def released(self) -> bool:
        return self._core.released

    @property
    def alive(self) -> bool:
        """Branches can be made: not released, and the template process is running."""
        return self._core.usable

    @property
    def branches_made(self) -> int:
        return self._core.branches_made

    @property
    def template_pid(self) -> int:
        return self._core.template_pid

    def memory(self) -> dict:
        """Memory of the template process, from /proc: rss, pss and uss in bytes.

        ``uss`` is what releasing the snapshot frees; ``pss`` is its fair share of the pages it
        shares copy-on-write with the sandbox it came from and with its branches.
        """
        if not self.alive:
            return {"rss": 0, "pss": 0, "uss": 0}
        return process_memory(self.template_pid)

    def branch(self, count: Optional[int] = None, seed: Optional[int] = None
               ) -> Union["Sandbox", list[Union["Sandbox", FaasError]]]:
        """A live sandbox with this snapshot's exact state (globals, modules, workdir files).

        With ``count``, a list of ``count`` branches in which each item is a Sandbox or the
        SnapshotError that prevented it. ``seed`` makes the branch's randomness (random,
        numpy.random) deterministic so a search can be replayed; with ``count``, branch i gets
        ``seed + i``. Without a seed every branch draws fresh entropy.
        Raises SnapshotError when the snapshot is released or its template is gone.
        """
        from .sandbox import Sandbox
        self._platform._check_open()
        if seed is not None and seed < 0:
            raise ValueError("seed must be >= 0")
        if count is None:
            sandbox = Sandbox(core.branch(self._core, seed), self._mode, self._default_timeout, origin=self)
            self._platform._adopt(sandbox)
            return sandbox
        if count < 0:
            raise ValueError("count must be >= 0")
        out: list = []
        for item in core.branch_many(self._core, count, seed):
            if isinstance(item, str):
                out.append(SnapshotError(item))
            else:
                sandbox = Sandbox(item, self._mode, self._default_timeout, origin=self)
                self._platform._adopt(sandbox)
                out.append(sandbox)
        return out

    def release(self) -> None:
        """Ends the template process and frees its frozen files (once no branch uses them).
        Branches already made are unaffected. Idempotent."""
        self._core.release()

    def describe(self) -> dict:
        """This node of the snapshot tree as data: lineage, state and memory."""
        return {
            "id": self.id,
            "parent": self._parent.id if self._parent else None,
            "source_sandbox_id": self.source_sandbox_id,
            "created_at": self.created_at.isoformat(),
            "alive": self.alive,
            "released": self.released,
            "branches_made": self.branches_made,
            "memory": self.memory(),
            "children": [child.id for child in self.children],
        }

    def __enter__(self) -> "Snapshot":
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

    def __del__(self) -> None:
        core_snapshot = getattr(self, "_core", None)
        if core_snapshot is not None and not core_snapshot.released:
            try:
                core_snapshot.release()
            except Exception:
                pass

    def __repr__(self) -> str:
        state = "alive" if self.alive else ("released" if self.released else "dead")
        parent = f" parent={self._parent.id}" if self._parent else ""
        return f"<Snapshot {self.id}{parent} from {self.source_sandbox_id} {state}>"
