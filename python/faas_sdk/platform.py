"""ExecutionPlatform: the entry point. Creates sandboxes and runs one-shot executions."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import weakref
from typing import Callable, Mapping, Optional, Sequence

from ._code import Code, check_timeout, encode_code
from ._engine import core, ensure_configured
from ._cgroups import SandboxCgroup
from .errors import FaasError, IsolationError, ModeNotAvailable
from .limits import DEFAULT_OUTPUT_BYTES, Limits
from ._isolation import container_unavailable_reason, secure_unavailable_reason
from .modes import AVAILABLE_MODES, ISOLATION_PROFILE, Mode
from .results import BranchResult, ErrorInfo, ExecutionResult
from .sandbox import Sandbox
from .snapshot import Snapshot
from .tree_search import TreeNode, TreeSearchResult, explore_tree

__all__ = ["ExecutionPlatform"]

DEFAULT_INTERRUPT_GRACE = 0.2


class ExecutionPlatform:
    """Runs Python code in isolated, stateful sandboxes.

    Cheap to create; every platform in a process shares one native engine. ``close()`` (or
    leaving a ``with`` block) ends every sandbox this platform made.

    python           interpreter for sandboxes (default: this one, ``sys.executable``)
    warm_pool_size   ready sandboxes kept per interpreter for execute()
    default_timeout  seconds per execution when run()/execute() give none (None: no limit)
    """

    def __init__(self, *, python: Optional[str] = None, warm_pool_size: int = 2,
                 default_timeout: Optional[float] = None) -> None:
        if warm_pool_size < 0:
            raise ValueError("warm_pool_size must be >= 0")
        ensure_configured()
        self._python = os.path.abspath(python or sys.executable)
        self._default_timeout = check_timeout(default_timeout)
        self._sandboxes: "weakref.WeakSet[Sandbox]" = weakref.WeakSet()
        self._snapshots: "weakref.WeakSet[Snapshot]" = weakref.WeakSet()
        self._lock = threading.Lock()
        self._closed = False
        core.prewarm(self._python, warm_pool_size)

    # ---- sandboxes -------------------------------------------------------------------------

    def create_sandbox(self, mode: Mode = Mode.LOCAL, workdir: Optional[str] = None,
                       env: Optional[Mapping[str, str]] = None, limits: Optional[Limits] = None,
                       python: Optional[str] = None, rootfs: Optional[str] = None,
                       loopback: bool = False) -> Sandbox:
        """A new, ready sandbox.

        workdir  its working directory (created if missing, kept on close); default: a private
                 temporary directory removed on close
        env      variables added to the inherited environment
        limits   resource limits (see Limits)
        python   interpreter for this sandbox (default: the platform's; with rootfs, a path
                 inside it, default /usr/bin/python3, which must be CPython of the host's
                 version: the kernel's native helper is built for it)
        rootfs   CONTAINER only: a directory holding a root file system (e.g. made with
                 debootstrap) to run in instead of the host's system directories
        loopback SECURE and CONTAINER: a network namespace of the sandbox's own with its
                 loopback up, so it can serve and reach itself on 127.0.0.1 and ::1 (TCP
                 included); still no other network, host or sandbox
        """
        self._check_open()
        _check_mode(mode)
        if mode in (Mode.CHECKPOINTED, Mode.BRANCHED):
            raise ValueError(f"a sandbox is not made in {mode.name} mode: use sandbox.snapshot() to "
                             "checkpoint one and snapshot.branch() to branch one, or execute(mode=...)")
        limits = limits or Limits()
        interpreter = os.path.abspath(python) if python else self._python
        isolation = ISOLATION_PROFILE.get(mode, "")
        if rootfs is not None:
            isolation = _rootfs_profile(mode, rootfs)
            interpreter = python or "/usr/bin/python3"
        if loopback and not isolation:
            raise ValueError(f"loopback= goes with Mode.SECURE or Mode.CONTAINER; {mode.name} uses the host's network")
        default_options = (workdir is None and not env and limits.is_default and interpreter == self._python
                           and rootfs is None and not loopback)
        cgroup = None
        if default_options:
            raw = core.take_warm_sandbox(interpreter, isolation)
        else:
            enforcement = limits.enforcement(mode)
            raw = core.create_sandbox(
                python=interpreter,
                workdir=os.path.abspath(workdir) if workdir else "",
                env=[(str(k), str(v)) for k, v in (env or {}).items()],
                rlimits=enforcement.rlimits,
                output_limit=limits.output_bytes,
                interrupt_grace=DEFAULT_INTERRUPT_GRACE,
                isolation=isolation,
                loopback=bool(loopback),
            )
            if enforcement.cgroup:
                cgroup = _cgroup_for(raw, enforcement.cgroup)
        sandbox = Sandbox(raw, mode, limits.timeout if limits.timeout is not None else self._default_timeout)
        sandbox._limits = limits
        if cgroup is not None:
            sandbox._cgroup = cgroup
            weakref.finalize(sandbox, cgroup.remove)  # a sandbox dropped without close()
        self._adopt(sandbox)
        return sandbox

    def _adopt(self, sandbox: Sandbox) -> None:
        sandbox._platform = self
        with self._lock:
            self._sandboxes.add(sandbox)

    def _adopt_snapshot(self, snapshot: Snapshot) -> None:
        with self._lock:
            self._snapshots.add(snapshot)

    @property
    def snapshots(self) -> list[Snapshot]:
        """The snapshots this platform made that are not released (oldest first)."""
        with self._lock:
            live = [s for s in self._snapshots if not s.released]
        return sorted(live, key=lambda s: s.created_at)

    def snapshot_tree(self) -> list[dict]:
        """Every snapshot this platform made (released ones too, while referenced), as
        ``Snapshot.describe()`` dicts, parents before children."""
        with self._lock:
            nodes = sorted(self._snapshots, key=lambda s: s.created_at)
        return [node.describe() for node in nodes]

    @property
    def sandboxes(self) -> list[Sandbox]:
        """The sandboxes this platform made that are still open."""
        with self._lock:
            return [s for s in self._sandboxes if not s._core.closed]

    # ---- one-shot execution ------------------------------------------------------------------

    def execute(self, code: Code, mode: Mode = Mode.LOCAL, timeout: Optional[float] = None,
                base_snapshot: Optional[Snapshot] = None) -> ExecutionResult:
        """Runs `code` in a fresh sandbox and discards the sandbox.

        LOCAL         a sandbox from the warm pool
        CHECKPOINTED  the same, and ``result.snapshot`` freezes its end state (even on error)
        BRANCHED      a new branch of ``base_snapshot``
        """
        self._check_open()
        _check_mode(mode)
        data = encode_code(code)
        t = check_timeout(timeout if timeout is not None else self._default_timeout)
        raw_sandbox = self._one_shot_sandbox(mode, base_snapshot)
        try:
            raw = raw_sandbox.run(data, t, None, None)
            return self._one_shot_result(raw, raw_sandbox, mode)
        finally:
            raw_sandbox.close_async()

    def _one_shot_sandbox(self, mode: Mode, base_snapshot: Optional[Snapshot]):
        """The fresh sandbox an execute() of `mode` runs in (blocks for a fork if needed)."""
        if mode is Mode.BRANCHED:
            if base_snapshot is None:
                raise ValueError("Mode.BRANCHED needs base_snapshot=")
            return core.branch(base_snapshot._core, None)
        if base_snapshot is not None:
            raise ValueError(f"base_snapshot= only goes with Mode.BRANCHED, not {mode.name}")
        return core.take_warm_sandbox(self._python, ISOLATION_PROFILE.get(mode, ""))

    def _one_shot_result(self, raw: dict, raw_sandbox, mode: Mode) -> ExecutionResult:
        """The result, with the end state frozen in CHECKPOINTED mode. If that snapshot fails
        (e.g. the code left threads running), SnapshotError carries the result in `.result`."""
        if mode is not Mode.CHECKPOINTED or not raw_sandbox.alive:
            return ExecutionResult._from_core(raw, raw_sandbox.id)
        try:
            snapshot = Sandbox(raw_sandbox, mode, self._default_timeout, platform=self).snapshot()
        except FaasError as exc:
            exc.result = ExecutionResult._from_core(raw, raw_sandbox.id)
            raise
        return ExecutionResult._from_core(raw, raw_sandbox.id, snapshot=snapshot)

    def explore_parallel(self, codes: Sequence[Code], base_snapshot: Snapshot,
                         max_parallel: Optional[int] = None, timeout: Optional[float] = None,
                         keep: bool = False, snapshot_end: bool = False,
                         seed: Optional[int] = None) -> list[BranchResult]:
        """Runs each code in its own branch of `base_snapshot`, concurrently; results in input
        order. At most `max_parallel` branches run at once (default: all). One branch failing
        or timing out does not affect the others. With ``keep=True`` each result carries its
        live branch (``.sandbox``), and with ``snapshot_end=True`` also a snapshot of its end
        state (``.snapshot``), for multi-level search. ``seed``: branch i is seeded ``seed + i``.
        """
        self._check_open()
        if snapshot_end and not keep:
            raise ValueError("snapshot_end=True needs keep=True")
        if max_parallel is not None and max_parallel < 1:
            raise ValueError("max_parallel must be >= 1")
        if seed is not None and seed < 0:
            raise ValueError("seed must be >= 0")
        sources = [encode_code(c) for c in codes]
        t = check_timeout(timeout if timeout is not None else self._default_timeout)
        raw_items = core.explore(base_snapshot._core, sources, max_parallel or max(1, len(sources)), t, seed)
        results: list[BranchResult] = []
        for raw_sandbox, raw, error in raw_items:
            sandbox = None
            if raw_sandbox is not None:
                sandbox = Sandbox(raw_sandbox, base_snapshot._mode, base_snapshot._default_timeout,
                                  origin=base_snapshot)
                self._adopt(sandbox)
            if raw is None:
                results.append(BranchResult(
                    success=False, stdout="", stderr="", value=None,
                    error=ErrorInfo("SnapshotError", error, ""), duration=0.0, sandbox_duration=0.0,
                    output_truncated=False, outcome="died", sandbox_id=sandbox.id if sandbox else "",
                    branch_id=sandbox.id if sandbox else ""))
                if sandbox is not None:
                    sandbox.close()
                continue
            end = None
            if keep and snapshot_end and sandbox.alive:
                try:
                    end = sandbox.snapshot()
                except FaasError:
                    end = None  # e.g. the code left threads running; the other results stand
            if not keep:
                raw_sandbox.close_async()
            results.append(BranchResult._from_core(raw, sandbox.id, snapshot=end, branch_id=sandbox.id,
                                                   sandbox=sandbox if keep else None))
        return results

    async def aexecute(self, code: Code, mode: Mode = Mode.LOCAL, timeout: Optional[float] = None,
                       base_snapshot: Optional[Snapshot] = None) -> ExecutionResult:
        """The asyncio form of execute(), for every mode it supports."""
        self._check_open()
        _check_mode(mode)
        data = encode_code(code)
        t = check_timeout(timeout if timeout is not None else self._default_timeout)
        loop = asyncio.get_running_loop()
        # Taking a sandbox can wait for a fork (or, the first time, an interpreter start).
        raw_sandbox = await loop.run_in_executor(None, self._one_shot_sandbox, mode, base_snapshot)
        from . import _aio
        try:
            raw = await _aio.run_async(raw_sandbox, data, t)
            if mode is Mode.CHECKPOINTED:  # a fork of the kernel: off the loop's thread
                return await loop.run_in_executor(None, self._one_shot_result, raw, raw_sandbox, mode)
            return self._one_shot_result(raw, raw_sandbox, mode)
        finally:
            raw_sandbox.close_async()

    def explore_tree(self, root: Snapshot, expand: Callable[[TreeNode], Sequence[str]],
                     score: Callable[[BranchResult], float], beam_width: int = 3, depth: int = 3,
                     goal: Optional[Callable[[TreeNode], bool]] = None,
                     max_parallel: Optional[int] = None, timeout: Optional[float] = None) -> TreeSearchResult:
        """Beam search over code actions from the snapshot `root` (see faas_sdk.tree_search)."""
        self._check_open()
        return explore_tree(self, root, expand, score, beam_width=beam_width, depth=depth, goal=goal,
                            max_parallel=max_parallel, timeout=timeout)

    # ---- observability -----------------------------------------------------------------------

    def metrics(self, memory: bool = True) -> dict:
        """Engine-wide latency histograms (seconds), counters and memory.

        Histograms (count, mean, min, max, p50, p95, p99, p999): ``sandbox_start`` (fork from
        the zygote until ready), ``branch_start`` (fork from a snapshot until ready),
        ``snapshot`` and ``execute``. With ``memory``, ``memory`` holds per kind of process
        (sandbox, branch, template) the count and total USS/PSS in bytes, read from /proc.
        The engine is shared by every platform in the process, and so are its metrics.
        """
        result = core.metrics()
        if memory:
            from ._memory import engine_memory
            result["memory"] = engine_memory()
        return result

    # ---- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Ends every sandbox this platform made and waits until their files are gone."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            sandboxes = list(self._sandboxes)
            snapshots = list(self._snapshots)
        for snapshot in snapshots:
            snapshot.release()
        for sandbox in sandboxes:
            sandbox.close()
        core.wait_disposals()
        SandboxCgroup.remove_parents()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "ExecutionPlatform":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise FaasError("this ExecutionPlatform is closed; create a new one")

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self.sandboxes)} open sandboxes"
        return f"<ExecutionPlatform python={self._python!r} {state}>"


def _rootfs_profile(mode: Mode, rootfs: str) -> str:
    """The engine's isolation profile of a CONTAINER running in `rootfs`."""
    if mode is not Mode.CONTAINER:
        raise ValueError(f"rootfs= goes with Mode.CONTAINER, not {mode.name}")
    path = os.path.realpath(rootfs)
    if not os.path.isdir(path):
        raise ValueError(f"rootfs {rootfs!r} is not a directory")
    return f"{ISOLATION_PROFILE[mode]}:{path}"


def _cgroup_for(raw_sandbox, values: dict) -> SandboxCgroup:
    """The new sandbox's cgroup, with its kernel in it (it has run no user code yet)."""
    try:
        cgroup = SandboxCgroup(raw_sandbox.id, **values)
        try:
            cgroup.add(raw_sandbox.pid)
        except BaseException:
            cgroup.remove()
            raise
        return cgroup
    except OSError as exc:
        raw_sandbox.close()
        raise IsolationError(f"cgroups: {exc}. Hint: on cgroup v2 the host process must run in the "
                             "root cgroup, or in one whose controllers it may delegate") from exc


def _check_mode(mode: Mode) -> None:
    if not isinstance(mode, Mode):
        raise TypeError(f"mode must be a faas_sdk.Mode, not {type(mode).__name__}")
    if mode not in AVAILABLE_MODES:
        available = ", ".join(sorted(m.name for m in AVAILABLE_MODES))
        reason = {Mode.SECURE: secure_unavailable_reason,
                  Mode.CONTAINER: container_unavailable_reason}.get(mode, lambda: None)()
        raise ModeNotAvailable(reason or f"mode {mode.name} is not implemented yet in this build "
                                         f"(available: {available})")
