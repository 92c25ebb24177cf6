"""Analysis slots: a request that gives up stops its work, and its slot is freed only when the work has
stopped (never while it still runs); waiting for a slot ends when the client leaves."""

import asyncio
import threading
import time

import pytest

from video_emotion.serving.forms import ClientGone
from video_emotion.serving.slots import Slots, Stop


def _windows(stop: Stop, started: threading.Event, windows: list[int], n: int = 200) -> str:
    """A stand-in for analyze_video: works window by window and polls `should_stop` between them."""
    started.set()
    for i in range(n):
        if stop():
            return "stopped"
        windows.append(i)
        time.sleep(0.01)
    return "done"


def test_a_cancelled_request_stops_its_work_and_holds_its_slot_until_then():
    async def scenario():
        slots = Slots(1)
        stop = Stop(60)
        started, windows = threading.Event(), []
        task = asyncio.ensure_future(slots.run(lambda: _windows(stop, started, windows), stop))
        while not started.is_set():
            await asyncio.sleep(0.005)
        task.cancel()  # the server gave up on the request (timeout, shutdown)
        with pytest.raises(asyncio.CancelledError):
            await task
        assert stop.gone.is_set()
        # The slot is still held by the running work at this instant, then freed when it stops.
        assert slots.busy == 1
        for _ in range(200):
            if slots.busy == 0:
                break
            await asyncio.sleep(0.01)
        assert slots.busy == 0 and len(windows) < 50  # stopped within a few windows, not after 200
        done = threading.Event()
        assert await slots.run(lambda: _windows(Stop(60), done, [], n=2), Stop(60)) == "done"

    asyncio.run(scenario())


def test_a_client_that_leaves_while_queued_never_runs_and_a_budget_stops_work():
    async def scenario():
        slots = Slots(1)
        first, started, windows = Stop(60), threading.Event(), []
        busy = asyncio.ensure_future(slots.run(lambda: _windows(first, started, windows, n=30), first))
        while not started.is_set():
            await asyncio.sleep(0.005)
        queued_stop, ran = Stop(60), []
        queued = asyncio.ensure_future(slots.run(lambda: ran.append(1), queued_stop))
        await asyncio.sleep(0.05)
        queued_stop.set_gone()  # the client disconnected while waiting for a slot
        with pytest.raises(ClientGone):
            await queued
        assert await busy == "done" and ran == []
        timed = Stop(0.05)
        assert await slots.run(lambda: _windows(timed, threading.Event(), []), timed) == "stopped"
        assert timed.timed_out and not timed.gone.is_set() and slots.busy == 0

    asyncio.run(scenario())
