"""The asyncio API awaits results without blocking the event loop."""

import asyncio
import time

import pytest

from faas_sdk import SandboxDead


def test_arun_keeps_state_and_returns_results(sandbox):
    async def main():
        await sandbox.arun("x = 20")
        return await sandbox.arun("x * 2 + 2")
    assert asyncio.run(main()).value == "42"


def test_the_loop_keeps_running_during_a_long_execution(sandbox):
    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        result = await sandbox.arun("import time\ntime.sleep(0.5)\n'slept'")
        task.cancel()
        return result, ticks
    result, ticks = asyncio.run(main())
    assert result.value == "'slept'"
    assert ticks >= 20, f"the event loop was blocked (only {ticks} ticks in 0.5 s)"


def test_many_sandboxes_run_concurrently(platform):
    sandboxes = [platform.create_sandbox() for _ in range(10)]

    async def main():
        return await asyncio.gather(*(sb.arun(f"import time\ntime.sleep(0.3)\n{i}") for i, sb in enumerate(sandboxes)))
    started = time.monotonic()
    results = asyncio.run(main())
    elapsed = time.monotonic() - started
    assert [r.value for r in results] == [str(i) for i in range(10)]
    assert elapsed < 2.5, f"ten 0.3 s sleeps took {elapsed:.2f} s: not concurrent"
    for sb in sandboxes:
        sb.close()


def test_concurrent_aruns_on_one_sandbox_are_queued(sandbox):
    async def main():
        await sandbox.arun("log = []")
        await asyncio.gather(*(sandbox.arun(f"log.append({i})") for i in range(20)))
        return await sandbox.arun("sorted(log) == list(range(20))")
    assert asyncio.run(main()).value == "True"


def test_aexecute_runs_one_shot(platform):
    async def main():
        return await asyncio.gather(*(platform.aexecute(f"print({i})") for i in range(5)))
    assert [r.stdout for r in asyncio.run(main())] == [f"{i}\n" for i in range(5)]


def test_async_timeout_and_death_are_reported(sandbox):
    async def main():
        result = await sandbox.arun("while True: pass", timeout=0.2)
        with pytest.raises(SandboxDead):
            await sandbox.arun("1")
        return result
    assert asyncio.run(main()).error.type == "ExecutionTimeout"


def test_cancelling_an_await_interrupts_the_execution(sandbox):
    async def main():
        task = asyncio.create_task(sandbox.arun("import time\nwhile True: time.sleep(0.01)"))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.1)
        return await sandbox.arun("'after cancel'")
    assert asyncio.run(main()).value == "'after cancel'"
