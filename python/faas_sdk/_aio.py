"""asyncio support: one eventfd per event loop announces completed executions, so awaiting
an execution costs no thread and never blocks the loop."""

from __future__ import annotations

import asyncio
import weakref
from typing import Optional

from ._engine import core

_waiters: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopWaiter]" = weakref.WeakKeyDictionary()


class _LoopWaiter:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.queue = core.CompletionQueue()
        self.pending: dict = {}
        loop.add_reader(self.queue.fileno(), self._on_ready)

    def _on_ready(self) -> None:
        for exec_id in self.queue.drain():
            entry = self.pending.pop(exec_id, None)
            if entry is None:
                continue
            future, handle = entry
            if not future.done():
                future.set_result(handle.result())


def _waiter(loop: asyncio.AbstractEventLoop) -> _LoopWaiter:
    waiter = _waiters.get(loop)
    if waiter is None:
        waiter = _waiters[loop] = _LoopWaiter(loop)
    return waiter


async def run_async(core_sandbox, code: bytes, timeout: Optional[float]) -> dict:
    """Submits `code` and awaits its raw result without blocking the loop."""
    loop = asyncio.get_running_loop()
    waiter = _waiter(loop)
    exec_id, handle = core_sandbox.submit(code, timeout, waiter.queue)
    future = loop.create_future()
    # Completion is only ever handled on this loop's thread, after this registration.
    waiter.pending[exec_id] = (future, handle)
    try:
        return await future
    except asyncio.CancelledError:
        handle.interrupt()
        raise
