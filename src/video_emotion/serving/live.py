"""/live: a camera's frames over a WebSocket, each answered with the reading of its faces.

Protocol (see docs/live.md): the client's first message is `{"key": "...", "lang": "en"}` (live_auth);
the server answers `{"type": "ready", ...}`; then every binary message is one JPEG frame, answered by
a JSON text `{"type": "reading", "frame": n, ...}` (n counts the binary messages, from 1); the text
`{"type": "end"}` asks for the session's analysis result (`{"type": "result", ...}`, the same contract
as /analyze), after which the server closes the socket.

Frames are never queued: the session holds at most one unread frame, the newest; a frame that arrives
while another waits replaces it (counted in `dropped`), so a client that sends faster than the server
reads always gets the reading of its newest frame. Sessions are bounded (`LiveSlots`: in all, and per key), a
session beyond a limit is closed with 4429 and the limit's name, and a session's slot is freed as soon as its
socket closes and its last frame's reading (a few tens of ms) has finished. A session lives while frames arrive
(idle: no frame for `idle_s`, whatever else is sent) and while its key is accepted (live_auth.watch_key).

Faults are told apart: a client that goes away mid-send ends its session quietly; anything else that fails on
the server (a message that cannot be sent or encoded, a reading that fails) is logged with the session id
and closes the session with 1011. A model that reads voices only cannot read a camera: refused with 4415.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocketDisconnect, WebSocketDisconnected

from video_emotion.serving.gate import Gate
from video_emotion.serving.live_auth import (
    CLOSE_BUSY,
    CLOSE_UNAUTHORISED,
    Hello,
    LiveSlots,
    Refused,
    open_session,
    watch_key,
)
from video_emotion.serving.live_frames import BadFrame, decode_frame, jpeg_size

log = logging.getLogger("video_emotion.serving.live")

CLOSE_IDLE = 4408
CLOSE_TOO_LONG = 4413
CLOSE_UNSUPPORTED = 4415
CLIENT_GONE = (WebSocketDisconnect, WebSocketDisconnected, OSError)  # what a send raises when the client left
AUDIO_ONLY = ("this model reads voices only; live reading needs a model that reads faces "
              "(upload a recording to /analyze instead)")

__all__ = ["BadFrame", "LiveLimits", "LiveSlots", "decode_frame", "jpeg_size", "serve_live"]


@dataclass(frozen=True)
class LiveLimits:
    sessions: int = 2             # VIDEO_EMOTION_MAX_LIVE
    idle_s: float = 30.0          # no frame for this long closes the session (VIDEO_EMOTION_LIVE_IDLE_S)
    per_key: int = 1              # sessions one key may hold at once (VIDEO_EMOTION_MAX_LIVE_PER_KEY)
    key_wait_s: float = 5.0       # the first message (the key) must come within this (VIDEO_EMOTION_LIVE_KEY_WAIT_S)
    max_s: float = 3600.0         # a session's length (its timeline is held in memory) (VIDEO_EMOTION_LIVE_MAX_S)
    max_frame_bytes: int = 2 << 20
    max_side: int = 1920          # frames larger than this on either side are refused before decoding


class _Mailbox:
    """The newest unread frame (never more than one), or the end of the session."""

    def __init__(self) -> None:
        self.frame: tuple[int, bytes, float] | None = None
        self.received = self.dropped = 0
        self.ended = False    # the client asked for the result
        self.gone = False     # the client left, or the session must close
        self.close: tuple[int, str] | None = None
        self.event = asyncio.Event()

    def put(self, data: bytes) -> None:
        self.received += 1
        if self.frame is not None:
            self.dropped += 1
        self.frame = (self.received, data, time.monotonic())
        self.event.set()

    def stop(self, ended: bool = False, close: tuple[int, str] | None = None) -> None:
        """The session ends: with its result (`ended`), or not (the client left; `close`: close it so)."""
        if ended:
            self.ended = True
        else:
            self.gone = True
        self.close = self.close or close
        self.event.set()


async def _receive(websocket: Any, box: _Mailbox, limits: LiveLimits, sid: str = "") -> None:
    """Client messages into the mailbox until the client ends, leaves or idles; any other way out ends the
    session too: a broken connection quietly, a server fault logged and closed with 1011."""
    try:
        await _receive_messages(websocket, box, limits)
    except CLIENT_GONE:
        pass
    except Exception:
        log.exception("live %s: internal error while receiving", sid)
        box.stop(close=(1011, "internal error"))
    finally:
        if not box.ended:
            box.stop()


async def _receive_messages(websocket: Any, box: _Mailbox, limits: LiveLimits) -> None:
    """Idle is measured from the last frame: text messages (or pings) keep nobody's session open."""
    started = last_frame = time.monotonic()
    while True:
        now = time.monotonic()
        if now - started >= limits.max_s:
            return box.stop(close=(CLOSE_TOO_LONG, f"session over {limits.max_s:g} s"))
        if now - last_frame >= limits.idle_s:
            return box.stop(close=(CLOSE_IDLE, f"no frame for {limits.idle_s:g} s"))
        wait = min(limits.idle_s - (now - last_frame), limits.max_s - (now - started))
        try:
            message = await asyncio.wait_for(websocket.receive(), wait)
        except TimeoutError:
            continue
        if message["type"] == "websocket.disconnect":
            return box.stop()
        if message.get("bytes") is not None:
            last_frame = time.monotonic()
            box.put(message["bytes"])
        elif _is_end(message.get("text")):
            return box.stop(ended=True)
        elif not await _send(websocket, {"type": "error", "error": 'text messages: only {"type": "end"}'}):
            return None


def _is_end(text: str | None) -> bool:
    try:
        return isinstance(msg := json.loads(text or ""), dict) and msg.get("type") == "end"
    except ValueError:
        return False


async def _read_loop(websocket: Any, reader: Any, box: _Mailbox, limits: LiveLimits) -> None:
    """Read the newest frame whenever there is one; send its reading; the result at the end."""
    loop = asyncio.get_running_loop()
    while True:
        await box.event.wait()
        box.event.clear()
        if box.frame is not None and not box.gone:
            seq, data, t = box.frame
            box.frame = None
            t0 = time.perf_counter()
            try:
                reading = await loop.run_in_executor(None, _read, reader, data, t, limits)
            except BadFrame as exc:  # the client's frame, not the server, is at fault: say so, go on
                reading = {"type": "error", "frame": seq, "error": str(exc)}
            else:
                reading.update(type="reading", frame=seq, dropped=box.dropped,
                               server_ms=round(1000 * (time.perf_counter() - t0), 1))
            if not await _send(websocket, reading):
                return None
            continue
        if box.gone:
            return None
        if box.ended and box.frame is None:
            if await _send(websocket, {"type": "result", **reader.result()}):
                box.close = (1000, "session ended")
            return None


async def _send(websocket: Any, message: dict[str, Any]) -> bool:
    """Send a JSON text message; False when the client has gone (nothing left to do for it). Anything else that
    fails (a message that cannot be encoded, a fault in the server's stack) is the server's: raised, so that the
    session logs it as an internal error and closes with 1011."""
    text = json.dumps(message, ensure_ascii=False)
    try:
        await websocket.send_text(text)
        return True
    except CLIENT_GONE:  # the socket closed under us (a tab closed mid-send): not a server fault
        return False


def _read(reader: Any, data: bytes, t: float, limits: LiveLimits) -> dict[str, Any]:
    return reader.read(decode_frame(data, limits), t)


def ready_message(bundle: Any, sid: str, hello: Hello, limits: LiveLimits) -> dict[str, Any]:
    from video_emotion.labels import TRANSLATIONS

    names = {lang: {lab: table.get(lab, lab) for lab in bundle.labels} for lang, table in TRANSLATIONS.items()}
    return {"type": "ready", "session": sid, "lang": hello.lang,
            "model": {"name": bundle.info.get("name", "video-emotion"),
                      "version": str(bundle.info.get("version", "local"))},
            "labels": list(bundle.labels), "label_names": names,
            "limits": {"max_frame_bytes": limits.max_frame_bytes, "max_side": limits.max_side, "idle_s": limits.idle_s,
                       "max_s": limits.max_s, "sessions_per_key": limits.per_key}}


async def serve_live(websocket: Any, bundle: Any, slots: LiveSlots, limits: LiveLimits) -> None:
    """One /live session, from the key check to the close; never raises for anything a client sends."""
    sid = uuid.uuid4().hex[:12]
    await websocket.accept()
    try:
        hello, gate = await open_session(websocket.scope, websocket.receive, limits.key_wait_s)
    except Refused as exc:
        log.info("live %s: refused (%s)", sid, exc.reason)
        return await _close(websocket, exc.code, exc.reason)
    if "video" not in bundle.modalities:
        log.info("live %s: refused (key %s): the model reads audio only", sid, hello.key_name)
        return await _close(websocket, CLOSE_UNSUPPORTED, AUDIO_ONLY)
    if (why := slots.refusal(hello.key_name)) is not None:
        log.info("live %s: refused (key %s): %s (%d/%d sessions)", sid, hello.key_name, why, slots.busy, slots.n)
        gate.refuse(gate.client(websocket.scope), websocket.scope.get("path", ""), 429, why, count=False,
                    name=hello.key_name)
        return await _close(websocket, CLOSE_BUSY, why)
    slots.take(hello.key_name)
    box = _Mailbox()
    try:
        log.info("live %s: started (key %s, %d/%d sessions)", sid, hello.key_name, slots.busy, slots.n)
        await _session(websocket, bundle, (sid, hello, gate), box, limits)
    except Exception:  # a server fault: logged in full, the client gets 1011 and nothing internal
        log.exception("live %s: internal error", sid)
        box.close = (1011, "internal error")
        await _close(websocket, *box.close)
    finally:
        slots.free(hello.key_name)
        log.info("live %s: closed after %d frame(s) (%d dropped): %s", sid, box.received, box.dropped,
                 box.close[1] if box.close else "the client left")


async def _session(websocket: Any, bundle: Any, who: tuple[str, Hello, Gate], box: _Mailbox,
                   limits: LiveLimits) -> None:
    """A started session: frames read as they come, the client's messages received and the key watched beside."""
    from video_emotion.inference.live import LiveReader

    sid, hello, gate = who
    reader = LiveReader(bundle, hello.lang)
    if not await _send(websocket, ready_message(bundle, sid, hello, limits)):
        return None
    receiving = asyncio.ensure_future(_receive(websocket, box, limits, sid))
    watching = asyncio.ensure_future(_watch(gate, websocket.scope, hello, box, sid))
    try:
        await _read_loop(websocket, reader, box, limits)
    finally:
        for task in (receiving, watching):
            task.cancel()
        await asyncio.gather(receiving, watching, return_exceptions=True)
    if box.close is not None:
        await _close(websocket, *box.close)


async def _watch(gate: Gate, scope: dict[str, Any], hello: Hello, box: _Mailbox, sid: str) -> None:
    """End the session (4401) once its key is no longer accepted."""
    reason = await watch_key(gate, scope, hello)
    log.info("live %s: %s (key %s)", sid, reason, hello.key_name)
    box.stop(close=(CLOSE_UNAUTHORISED, reason))


async def _close(websocket: Any, code: int, reason: str) -> None:
    try:
        await websocket.close(code=code, reason=reason)
    except CLIENT_GONE:  # already closed by the client: nothing left to tell it
        pass
    except Exception:
        log.exception("live: the close (%d %s) could not be sent", code, reason)
