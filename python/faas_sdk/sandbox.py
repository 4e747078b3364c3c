"""A stateful sandbox: a live interpreter whose globals persist between runs."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Callable, Optional

from . import _aio
from ._code import Code, check_timeout, encode_code
from .errors import SandboxDead
from .modes import Mode
from .results import ExecutionResult

if TYPE_CHECKING:
    from ._core import Sandbox as _CoreSandbox
    from .snapshot import Snapshot

__all__ = ["Sandbox"]

OutputCallback = Callable[[str], None]


class Sandbox:
    """One sandbox. Use ``ExecutionPlatform.create_sandbox()`` to make one.

    Executions run one at a time, in order; from several threads they are serialised.
    A sandbox is a context manager: leaving the block closes it.
    """

    def __init__(self, core: "_CoreSandbox", mode: Mode, default_timeout: Optional[float],
                 origin: Optional["Snapshot"] = None, platform=None) -> None:
        self._core = core
        self._mode = mode
        self._default_timeout = default_timeout
        self._origin = origin
        self._platform = platform
        self._limits = None  # the Limits it was made with (names a limit an execution hits)
        self._cgroup = None  # CONTAINER: its _cgroups.SandboxCgroup when its limits need one
        self._async_lock: Optional[asyncio.Lock] = None

    @property
    def id(self) -> str:
        return self._core.id

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def pid(self) -> int:
        """The kernel's process id (0 until it has started)."""
        return self._core.pid

    @property
    def workdir(self) -> str:
        return self._core.workdir

    @property
    def alive(self) -> bool:
        return self._core.alive

    @property
    def origin(self) -> Optional["Snapshot"]:
        """The snapshot this sandbox is a branch of, or None."""
        return self._origin

    @property
    def death_reason(self) -> str:
        """Why the sandbox is dead ("" while it is alive)."""
        return self._core.death_reason

    def run(self, code: Code, timeout: Optional[float] = None,
            on_stdout: Optional[OutputCallback] = None,
            on_stderr: Optional[OutputCallback] = None, profile: bool = False) -> ExecutionResult:
        """Executes `code` in this sandbox and returns its result.

        The last expression's repr() becomes ``result.value``. An exception raised by the code
        is reported in ``result.error``, not raised. On timeout the code is interrupted, the
        result says ``error.type == "ExecutionTimeout"`` and the sandbox is dead afterwards.
        ``on_stdout``/``on_stderr`` are called with text as it arrives, on this thread.
        With ``profile=True`` the code runs under cProfile inside the sandbox and the result is
        a ``faas_sdk.perf.profiling.ProfiledResult`` whose ``profile`` is a ProfileReport.
        Raises SandboxDead if the sandbox is dead, InvalidCode for unsendable code.
        """
        if profile:
            from .perf.profiling import run_profiled
            return run_profiled(self, code, timeout, on_stdout, on_stderr)
        data = encode_code(code)
        t = check_timeout(timeout if timeout is not None else self._default_timeout)
        raw = self._core.run(data, t, on_stdout, on_stderr)
        return self._result(raw)

    def _result(self, raw: dict) -> ExecutionResult:
        oom_killed = self._cgroup is not None and raw["error"] is not None and self._cgroup.oom_kills() > 0
        return ExecutionResult._from_core(raw, self._core.id, self._limits, oom_killed=oom_killed)

    async def arun(self, code: Code, timeout: Optional[float] = None) -> ExecutionResult:
        """The asyncio form of run(): awaits the result without blocking the event loop.

        Cancelling the awaiting task interrupts the execution.
        """
        data = encode_code(code)
        t = check_timeout(timeout if timeout is not None else self._default_timeout)
        if self._async_lock is None:
            self._async_lock = asyncio.Lock()
        async with self._async_lock:  # one execution at a time, queued without blocking
            if not self._core.alive:
                raise SandboxDead(f"sandbox {self.id} is dead: {self._core.death_reason}")
            raw = await _aio.run_async(self._core, data, t)
        return self._result(raw)

    def snapshot(self) -> "Snapshot":
        """Freezes this sandbox's current state (memory and workdir files) into a Snapshot.

        The sandbox must be idle and single-threaded: with live user threads this raises
        SnapshotError naming how many (fork() copies only one thread). The sandbox itself
        carries on unchanged.
        """
        from ._engine import core
        from .snapshot import Snapshot
        raw = core.snapshot(self._core)
        platform = self._platform
        if platform is None:
            raise RuntimeError("this sandbox was not made by an ExecutionPlatform")
        snap = Snapshot(raw, platform, self._origin, self._mode, self._default_timeout)
        platform._adopt_snapshot(snap)
        return snap

    def close(self) -> None:
        """Kills the sandbox's processes and removes its private workdir. Idempotent."""
        self._core.close()
        if self._cgroup is not None:
            self._cgroup.remove()  # also kills what left its process group

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self) -> None:
        core = getattr(self, "_core", None)
        if core is not None and not core.closed:
            try:
                core.close_async()
            except Exception:
                pass

    def __repr__(self) -> str:
        state = "alive" if self.alive else f"dead ({self.death_reason})"
        return f"<Sandbox {self.id} mode={self._mode.name} pid={self.pid} {state}>"
