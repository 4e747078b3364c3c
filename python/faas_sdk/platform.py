"""ExecutionPlatform: the entry point. Creates sandboxes and runs one-shot executions."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import weakref
from typing import Mapping, Optional

from ._code import Code, check_timeout, encode_code
from ._engine import core, ensure_configured
from .errors import FaasError, ModeNotAvailable
from .limits import DEFAULT_OUTPUT_BYTES, Limits
from .modes import AVAILABLE_MODES, Mode
from .results import ExecutionResult
from .sandbox import Sandbox

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
        self._lock = threading.Lock()
        self._closed = False
        core.prewarm(self._python, warm_pool_size)

    # ---- sandboxes -------------------------------------------------------------------------

    def create_sandbox(self, mode: Mode = Mode.LOCAL, workdir: Optional[str] = None,
                       env: Optional[Mapping[str, str]] = None, limits: Optional[Limits] = None,
                       python: Optional[str] = None) -> Sandbox:
        """A new, ready sandbox.

        workdir  its working directory (created if missing, kept on close); default: a private
                 temporary directory removed on close
        env      variables added to the inherited environment
        limits   resource limits (see Limits)
        python   interpreter for this sandbox (default: the platform's)
        """
        self._check_open()
        _check_mode(mode)
        limits = limits or Limits()
        interpreter = os.path.abspath(python) if python else self._python
        default_options = workdir is None and not env and limits.is_default and interpreter == self._python
        if default_options:
            raw = core.take_warm_sandbox(interpreter)
        else:
            raw = core.create_sandbox(
                python=interpreter,
                workdir=os.path.abspath(workdir) if workdir else "",
                env=[(str(k), str(v)) for k, v in (env or {}).items()],
                rlimits=limits.rlimits(),
                output_limit=limits.output_bytes,
                interrupt_grace=DEFAULT_INTERRUPT_GRACE,
            )
        sandbox = Sandbox(raw, mode, limits.timeout if limits.timeout is not None else self._default_timeout)
        with self._lock:
            self._sandboxes.add(sandbox)
        return sandbox

    @property
    def sandboxes(self) -> list[Sandbox]:
        """The sandboxes this platform made that are still open."""
        with self._lock:
            return [s for s in self._sandboxes if not s._core.closed]

    # ---- one-shot execution ------------------------------------------------------------------

    def execute(self, code: Code, mode: Mode = Mode.LOCAL, timeout: Optional[float] = None) -> ExecutionResult:
        """Runs `code` in a fresh sandbox from the warm pool and discards the sandbox."""
        self._check_open()
        _check_mode(mode)
        data = encode_code(code)
        t = check_timeout(timeout if timeout is not None else self._default_timeout)
        raw_sandbox = core.take_warm_sandbox(self._python)
        try:
            raw = raw_sandbox.run(data, t, None, None)
        finally:
            raw_sandbox.close_async()
        return ExecutionResult._from_core(raw, raw_sandbox.id)

    async def aexecute(self, code: Code, mode: Mode = Mode.LOCAL, timeout: Optional[float] = None) -> ExecutionResult:
        """The asyncio form of execute()."""
        self._check_open()
        _check_mode(mode)
        data = encode_code(code)
        t = check_timeout(timeout if timeout is not None else self._default_timeout)
        loop = asyncio.get_running_loop()
        # Taking a sandbox can wait for a fork (or, the first time, an interpreter start).
        raw_sandbox = await loop.run_in_executor(None, core.take_warm_sandbox, self._python)
        from . import _aio
        try:
            raw = await _aio.run_async(raw_sandbox, data, t)
        finally:
            raw_sandbox.close_async()
        return ExecutionResult._from_core(raw, raw_sandbox.id)

    # ---- observability -----------------------------------------------------------------------

    def metrics(self) -> dict:
        """Engine-wide latency histograms (seconds) and counters.

        ``sandbox_start`` and ``execute`` hold count, mean, min, max, p50, p95, p99, p999.
        The engine is shared by every platform in the process, and so are its metrics.
        """
        return core.metrics()

    # ---- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Ends every sandbox this platform made and waits until their files are gone."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            sandboxes = list(self._sandboxes)
        for sandbox in sandboxes:
            sandbox.close()
        core.wait_disposals()

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


def _check_mode(mode: Mode) -> None:
    if not isinstance(mode, Mode):
        raise TypeError(f"mode must be a faas_sdk.Mode, not {type(mode).__name__}")
    if mode not in AVAILABLE_MODES:
        available = ", ".join(sorted(m.name for m in AVAILABLE_MODES))
        raise ModeNotAvailable(f"mode {mode.name} is not implemented yet in this build (available: {available})")
