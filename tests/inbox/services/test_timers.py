from __future__ import annotations

import asyncio

from inbox.services.timers import Timers


async def test_a_callback_runs_once_when_due_and_is_then_forgotten() -> None:
    timers = Timers()
    ran = asyncio.Event()
    timers.later(-1.0, ran.set)
    await asyncio.wait_for(ran.wait(), 5)
    assert len(timers) == 0


async def test_none_runs_after_close_and_none_is_taken_after_it() -> None:
    timers = Timers()
    ran: list[str] = []
    timers.later(0.0, lambda: ran.append("early"))
    timers.close()
    assert timers.later(0.0, lambda: ran.append("late")) is None
    await asyncio.sleep(0.01)
    assert ran == [] and len(timers) == 0
