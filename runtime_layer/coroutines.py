"""Running an ASGI app's coroutine without a Task: the one stepper both `http11` and `lambda_http` use.

Why: the serving core usually finishes a request without waiting for anything (a quick model call inline, a
health check). Stepping its coroutine by hand with `send(None)` then answers in the same turn of the event
loop (http11) or with no event loop at all (Lambda), with no Task to create and schedule. A coroutine that
does wait yields what it awaits; `step_to_end` resumes it whenever that is done, as a Task would.

Only public APIs: `asyncio.isfuture` tells futures apart, and a future is waited for through its done
callback. (An earlier version cleared the private "future blocking" flag of asyncio futures as `Task.__step`
does; nothing but a Task reads it, so it bought nothing.)
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any


def first_step(coro: Coroutine[Any, Any, None]) -> tuple[bool, Any]:
    """Run the coroutine to its first wait: (True, None) when it finished, else (False, what it awaits)."""
    try:
        return False, coro.send(None)
    except StopIteration:
        return True, None


async def step_to_end(coro: Coroutine[Any, Any, None], awaited: Any) -> None:
    """Resume a coroutine that yielded `awaited` each time what it awaits is done, until it returns.

    Its exceptions propagate; when this is cancelled, the coroutine is left as it is (the caller closes it)."""
    import asyncio

    while True:
        if asyncio.isfuture(awaited):
            await settled(awaited)
        else:  # a bare yield (asyncio.sleep(0)): give the loop one turn
            await asyncio.sleep(0)
        try:
            awaited = coro.send(None)
        except StopIteration:
            return


async def settled(future: Any) -> None:
    """Wait until `future` is done, whatever its outcome (the coroutine awaiting it reads that itself)."""
    if future.done():
        return
    import asyncio

    waiter = asyncio.get_running_loop().create_future()

    def wake(_: Any) -> None:
        if not waiter.done():
            waiter.set_result(None)

    future.add_done_callback(wake)
    await waiter


def run_to_end(coro: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine: at once when it never waits (the inline core), else on a fresh asyncio event loop."""
    finished, awaited = first_step(coro)
    if finished:
        return
    import asyncio

    asyncio.run(step_to_end(coro, awaited))
