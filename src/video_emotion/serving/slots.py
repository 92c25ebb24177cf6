"""Analysis slots: a bounded number of analyses at once, each stoppable, none outliving its slot.

An analysis runs in its own thread (the CNN and decoding release the GIL). A slot is released only
when that thread has finished, never when the request merely gave up: a cancelled request therefore
cannot leave work running outside the limit. Work is stopped cooperatively: `Stop` is the
`should_stop` callback that `analyze_video` checks between windows; it turns true when the client
disconnects, the request is cancelled (server timeout, shutdown) or the time budget runs out.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from video_emotion.serving.forms import ClientGone

T = TypeVar("T")


class Stop:
    """Why an analysis should stop: its client went away, or its time budget ran out."""

    def __init__(self, budget_s: float) -> None:
        self.gone = threading.Event()
        self._gone_async = asyncio.Event()
        self.deadline = time.monotonic() + budget_s

    def set_gone(self) -> None:
        """Called on the event loop when the client disconnects or the request is cancelled."""
        self.gone.set()
        self._gone_async.set()

    @property
    def timed_out(self) -> bool:
        return time.monotonic() > self.deadline

    def __call__(self) -> bool:  # the `should_stop` callback, polled from the analysis thread
        return self.gone.is_set() or self.timed_out

    async def wait_gone(self) -> None:
        await self._gone_async.wait()


async def watch_disconnect(receive: Callable[[], Any], stop: Stop) -> None:
    """After the body was read, the next ASGI message is `http.disconnect`: it means the client left."""
    while True:
        message = await receive()
        if message.get("type") == "http.disconnect":
            stop.set_gone()
            return


class Slots:
    """At most `n` analyses at once; waiting ends early when the client leaves."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._sem = asyncio.Semaphore(n)
        self.busy = 0

    async def _acquire(self, stop: Stop) -> None:
        acquire = asyncio.ensure_future(self._sem.acquire())
        gone = asyncio.ensure_future(stop.wait_gone())
        try:
            await asyncio.wait({acquire, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not acquire.done():
                acquire.cancel()
                await asyncio.gather(acquire, return_exceptions=True)
        if acquire.cancelled() or acquire.exception() is not None:
            raise ClientGone()
        if stop.gone.is_set():  # acquired, but nobody is waiting any more
            self._sem.release()
            raise ClientGone()

    async def run(self, fn: Callable[[], T], stop: Stop) -> T:
        """Run `fn` in a thread inside a slot; the slot is freed when `fn` returns, whatever happens."""
        await self._acquire(stop)
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self.busy += 1

        def finish(result: Any, error: BaseException | None) -> None:
            self.busy -= 1
            self._sem.release()
            if not future.done():
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(result)

        def work() -> None:
            result, error = None, None
            try:
                result = fn()
            except BaseException as exc:  # handed to the request, which decides what it means
                error = exc
            try:
                loop.call_soon_threadsafe(finish, result, error)
            except RuntimeError:  # the event loop is gone (server shutting down): nothing to answer
                pass

        threading.Thread(target=work, name="video-emotion-analysis", daemon=True).start()
        try:
            return await future
        except asyncio.CancelledError:
            stop.set_gone()  # the request was cancelled: stop the work at its next window
            raise
