"""Live camera sessions without a server: the first-message key check, the guard's WebSocket handling,
frame checks, the one-frame mailbox, and the live reader on real footage through the real face path."""

from __future__ import annotations

import asyncio
import json

import cv2
import numpy as np
import pytest

from video_emotion.serving.audit import AuditLog
from video_emotion.serving.auth import GATE, GuardMiddleware
from video_emotion.serving.gate import Gate
from video_emotion.serving.live import LiveLimits, LiveSlots, _Mailbox, decode_frame, jpeg_size
from video_emotion.serving.live_auth import Refused, authenticate, check_key, parse_hello


def _jpeg(w: int = 64, h: int = 48) -> bytes:
    return cv2.imencode(".jpg", np.full((h, w, 3), 128, np.uint8))[1].tobytes()


def test_jpeg_size_is_read_from_the_header_and_bad_frames_are_refused_before_decoding():
    assert jpeg_size(_jpeg(64, 48)) == (64, 48)
    assert jpeg_size(cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes()) is None
    assert decode_frame(_jpeg(), LiveLimits()).shape == (48, 64, 3)
    with pytest.raises(ValueError, match="not a JPEG"):
        decode_frame(b"\x00" * 100, LiveLimits())
    with pytest.raises(ValueError, match="pixels a side"):
        decode_frame(_jpeg(400, 40), LiveLimits(max_side=320))
    with pytest.raises(ValueError, match="MiB"):
        decode_frame(_jpeg() + b"\x00" * (1 << 20), LiveLimits(max_frame_bytes=1 << 20))
    with pytest.raises(ValueError, match="could not be decoded"):
        decode_frame(_jpeg(64, 48)[:200], LiveLimits())


@pytest.mark.parametrize("message", [{"type": "websocket.receive", "bytes": _jpeg()},
                                     {"type": "websocket.receive", "text": "not json"},
                                     {"type": "websocket.receive", "text": json.dumps(["key"])},
                                     {"type": "websocket.receive", "text": json.dumps({"key": ""})},
                                     {"type": "websocket.receive", "text": json.dumps({"key": "k", "lang": "fr"})},
                                     {"type": "websocket.receive", "text": json.dumps({"key": "k" * 5000})}])
def test_any_first_message_but_a_key_is_refused_with_4401(message):
    with pytest.raises(Refused) as err:
        parse_hello(message)
    assert err.value.code == 4401 and err.value.reason


def test_the_key_is_checked_by_the_guards_gate_and_nothing_passes_without_it(monkeypatch, tmp_path):
    monkeypatch.setenv("VIDEO_EMOTION_API_KEYS", "right-key")
    monkeypatch.setenv("VIDEO_EMOTION_API_KEY_FILE", str(tmp_path / "keys"))
    gate = Gate(per_minute=2, audit=AuditLog(tmp_path / "audit.jsonl"))
    scope = {"state": {GATE: gate}, "client": ("127.0.0.9", 5000), "path": "/live"}
    assert check_key(scope, "right-key") == "env-1"  # the key's name, never the key
    for scope_, key in ((scope, "wrong-key"), ({}, "right-key")):
        with pytest.raises(Refused) as err:
            check_key(scope_, key)
        assert err.value.code == 4401
    check_key(scope, "right-key")  # a session is one request for the per-key limit (2 a minute here)
    with pytest.raises(Refused) as err:
        check_key(scope, "right-key")
    assert err.value.code == 4429 and "rate limit" in err.value.reason
    lines = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [x["status"] for x in lines] == [101, 401, 101, 429] and all("right-key" not in json.dumps(x) for x in lines)
    assert parse_hello({"type": "websocket.receive", "text": json.dumps({"key": " right-key ", "lang": "zh"})}) == \
        ("right-key", "zh")


def test_no_first_message_within_the_timeout_is_refused():
    async def never():
        await asyncio.sleep(10)

    with pytest.raises(Refused) as err:
        asyncio.run(authenticate({}, never, timeout_s=0.05))
    assert err.value.code == 4401 and "no key within" in err.value.reason


def _guard_run(scope: dict, monkeypatch) -> tuple[list, list]:
    monkeypatch.setenv("VIDEO_EMOTION_API_KEYS", "k")
    monkeypatch.setenv("VIDEO_EMOTION_API_KEY_FILE", "/nonexistent/keys")
    called, sent = [], []

    async def app(scope, receive, send):
        called.append(scope)

    async def receive():
        return {"type": "websocket.connect"}

    async def send(message):
        sent.append(message)

    asyncio.run(GuardMiddleware(app, socket_paths=("/live",), cors=False)(scope, receive, send))
    return called, sent


def test_the_guard_lets_websockets_through_only_where_the_first_message_is_checked(monkeypatch):
    called, sent = _guard_run({"type": "websocket", "path": "/live", "headers": []}, monkeypatch)
    assert len(called) == 1 and isinstance(called[0]["state"][GATE], Gate) and not sent
    called, sent = _guard_run({"type": "websocket", "path": "/analyze", "headers": []}, monkeypatch)
    assert not called and sent == [{"type": "websocket.close", "code": 4401, "reason": "no WebSocket here"}]
    called, _ = _guard_run({"type": "lifespan"}, monkeypatch)
    assert len(called) == 1
    called, sent = _guard_run({"type": "something-new", "path": "/live"}, monkeypatch)
    assert not called and not sent


def test_sessions_are_bounded_and_a_freed_slot_is_free_at_once():
    slots = LiveSlots(2, per_key=2)
    assert slots.take() and slots.take() and not slots.take()
    slots.free()
    assert slots.take() and slots.busy == 2


def test_the_mailbox_holds_only_the_newest_frame():
    async def go():
        box = _Mailbox()
        for data in (b"1", b"2", b"3"):
            box.put(data)
        return box

    box = asyncio.run(go())
    assert box.frame[:2] == (3, b"3") and box.received == 3 and box.dropped == 2
    box.stop(ended=True)
    assert box.ended and not box.gone
    box.stop()
    assert box.gone
