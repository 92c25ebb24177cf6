"""Pipelined streams: an iterator run on its own thread, handing items over through a bounded queue.

The analysis is a chain of stages (decode -> face search -> tracking and crops -> model). Run one after the
other, a 2-core machine does one thing at a time; with each stage on its own thread, decoding (FFmpeg,
libjpeg), face detection (LiteRT), the crops (OpenCV) and the network (LiteRT) run side by side, since they
release the GIL while they work. The queue between two stages holds at most `depth` items, so memory stays
flat whatever the video's length, and the consumer sees exactly the items, in exactly the order, the source
yields: results do not depend on the threads. An exception in the source is raised in the consumer, and
closing the stream (early exit, a client that left) stops the source at its next item and closes it
on its own thread (a generator's `finally` releases its video there).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_ITEM, _END, _ERROR = 0, 1, 2
_POLL_S = 0.05  # how often a blocked producer looks whether the stream was closed


class Prefetch(Generic[T]):
    """Iterate `source` on a background thread, at most `depth` items ahead of the consumer.

    Use as an iterator inside `with` (or call `close()`): leaving early stops the producer.
    """

    def __init__(self, source: Iterable[T], depth: int = 4, name: str = "prefetch") -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._closed = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._produce, args=(source,), name=name, daemon=True)
        self._thread.start()

    def _put(self, message: tuple[int, object]) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(message, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, source: Iterable[T]) -> None:
        it = None
        try:
            it = iter(source)
            for item in it:
                if not self._put((_ITEM, item)):
                    return
            self._put((_END, None))
        except BaseException as exc:  # noqa: BLE001  (handed to the consumer, raised there)
            self._put((_ERROR, exc))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()  # a generator is closed on the thread that ran it

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        kind, value = self._queue.get()
        if kind == _ITEM:
            return value  # type: ignore[return-value]
        self._done = True
        self._thread.join()
        if kind == _ERROR:
            raise value  # type: ignore[misc]
        raise StopIteration

    def close(self) -> None:
        """Stop the producer (it finishes the item in hand, then closes its source) and wait for it."""
        self._closed.set()
        self._done = True
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=_POLL_S)  # unblock a producer waiting on a full queue
            except queue.Empty:
                pass
        while not self._queue.empty():
            self._queue.get_nowait()

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def prefetched(source: Iterable[T], depth: int, name: str, enabled: bool = True) -> Iterator[T]:
    """`source` through a `Prefetch` of `depth` items (closed when this generator is), or as it is when
    not `enabled` (the sequential reference path)."""
    if not enabled:
        yield from source
        return
    with Prefetch(source, depth, name) as stream:
        yield from stream
