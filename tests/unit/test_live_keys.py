"""Keys that reach live sessions, without a server: refusals before the key counted and audited, sockets waiting
for their key capped per address, IPv6 clients counted by their /64, a revoked key (or a key file failing closed)
ending a running session, sessions per key, idle meaning no frame, server faults told from clients that left,
and an audio-only model refused with a reason."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from types import SimpleNamespace

import pytest
from starlette.websockets import WebSocketDisconnect

from video_emotion.serving.audit import AuditLog
from video_emotion.serving.gate import GATE, Gate
from video_emotion.serving.keyfile import create_key, revoke_key
from video_emotion.serving.limits import FailedKeys, Waiting, address_key
from video_emotion.serving.live import LiveLimits, LiveSlots, _Mailbox, _receive_messages, _send, serve_live
from video_emotion.serving.live_auth import Hello, Refused, open_session, watch_key


@pytest.fixture
def gate(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDEO_EMOTION_API_KEYS", "env-key-0123456789")
    monkeypatch.setenv("VIDEO_EMOTION_API_KEY_FILE", str(tmp_path / "keys" / "api_keys"))
    return Gate(per_minute=0, audit=AuditLog(tmp_path / "audit.jsonl"))


def lines(tmp_path) -> list[dict]:
    path = tmp_path / "audit.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def scope_of(gate: Gate, client: str = "127.0.0.9") -> dict:
    return {"type": "websocket", "state": {GATE: gate}, "client": (client, 5000), "path": "/live", "headers": []}


def says(*messages):
    """A receive() that gives these messages, then waits forever."""
    queue = list(messages)

    async def receive():
        if queue:
            return queue.pop(0)
        await asyncio.sleep(3600)

    return receive


def test_every_refusal_before_the_key_counts_toward_the_back_off_and_is_audited(gate, tmp_path):
    firsts = [{"type": "websocket.receive", "bytes": b"\xff\xd8"}, {"type": "websocket.receive", "text": "not json"}]

    async def go():
        for k in range(10):
            with pytest.raises(Refused) as err:
                await open_session(scope_of(gate), says(*firsts[k % 2:k % 2 + 1]) if k < 8 else says(), 0.05)
            assert err.value.code == 4401
        with pytest.raises(Refused) as err:  # ten refusals: the address is blocked, its next socket refused at once
            await open_session(scope_of(gate), says({"type": "websocket.receive", "text": '{"key": "x"}'}), 5)
        return err.value

    blocked = asyncio.run(go())
    assert blocked.code == 4429 and "retry after" in blocked.reason
    audit = lines(tmp_path)
    assert [x["status"] for x in audit] == [401] * 10 + [429] and all(x["method"] == "WS" for x in audit)
    assert {x["reason"] for x in audit[:10]} == {'send {"key": "..."} as the first message', "no key within 0.05 s",
                                                 'the first message must be JSON {"key": "..."}'}
    assert gate.blocked("127.0.0.10") == 0  # another address is unaffected


def test_sockets_waiting_for_their_key_are_capped_per_address(gate, tmp_path):
    async def go():
        waiting = [asyncio.ensure_future(open_session(scope_of(gate), says(), 0.5)) for _ in range(4)]
        await asyncio.sleep(0.05)
        assert gate.waiting.count("127.0.0.9") == 4
        t0 = time.monotonic()
        with pytest.raises(Refused) as err:
            await open_session(scope_of(gate), says(), 0.5)
        refused_in = time.monotonic() - t0
        other = await open_session(scope_of(gate, "127.0.0.8"),
                                   says({"type": "websocket.receive", "text": '{"key": "env-key-0123456789"}'}), 0.5)
        results = await asyncio.gather(*waiting, return_exceptions=True)
        return err.value, refused_in, other, results

    refused, refused_in, (other, _), results = asyncio.run(go())
    assert refused.code == 4429 and "at most 4" in refused.reason and refused_in < 0.05
    assert other.key_name == "env-1"  # another address still gets in
    assert all(isinstance(r, Refused) and "no key within" in r.reason for r in results)
    assert gate.waiting.count("127.0.0.9") == 0  # every socket that stopped waiting left the count
    assert [x["status"] for x in lines(tmp_path)].count(401) == 4 and lines(tmp_path)[0]["status"] == 429


def test_an_ipv6_client_is_one_address_per_64():
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:10.0.0.7") == "10.0.0.7" and address_key("10.0.0.7") == "10.0.0.7"
    limiter = FailedKeys(max_failures=3, window_s=60, base_s=10)
    for i in range(3):  # three addresses of one /64: one client
        limiter.failure(f"2001:db8::{i + 1}", 100.0)
    assert limiter.wait("2001:db8::ffff", 100.0) == 10 and limiter.wait("2001:db8:0:1::1", 100.0) == 0
    waiting = Waiting(2)
    assert waiting.enter("2001:db8::1") and waiting.enter("2001:db8::2") and not waiting.enter("2001:db8::3")
    assert waiting.enter("2001:db8:0:1::1")


@pytest.mark.parametrize("how", ["revoke", "fail closed"])
def test_a_running_session_ends_when_its_key_is_revoked_or_its_key_file_fails(gate, tmp_path, how):
    key_file = gate.keys.path
    key = create_key("alice", key_file)
    hello = Hello("alice", "en", key)
    assert gate.accepts(key)

    async def go():
        watching = asyncio.ensure_future(watch_key(gate, scope_of(gate), hello, every_s=0.02))
        await asyncio.sleep(0.1)
        assert not watching.done()
        if how == "revoke":
            revoke_key("alice", key_file)
        else:
            key_file.chmod(0o644)  # open to others: every key of the file refused
        return await asyncio.wait_for(watching, 2)

    reason = asyncio.run(go())
    assert ("revoked" in reason) if how == "revoke" else ("key file cannot be used" in reason)
    last = lines(tmp_path)[-1]
    assert (last["key"], last["status"], last["reason"]) == ("alice", 401, reason) and key not in json.dumps(last)


def test_sessions_are_bounded_in_all_and_per_key():
    slots = LiveSlots(3, per_key=1)
    assert slots.take("a") and slots.refusal("a").startswith("per-key limit") and not slots.take("a")
    assert slots.take("b") and slots.take("c") and slots.refusal("d") == "busy"
    slots.free("a")
    assert slots.refusal("a") is None and slots.take("a") and slots.busy == 3


class Socket:
    """A WebSocket as the service sees one: a scope, messages in, text out, a close."""

    def __init__(self, scope: dict, messages=(), fail=None) -> None:
        self.scope, self.inbox, self.sent, self.closed, self.fail = scope, list(messages), [], None, fail

    async def accept(self) -> None:
        return None

    async def receive(self) -> dict:
        if self.inbox:
            return self.inbox.pop(0)
        await asyncio.sleep(3600)

    async def send_text(self, text: str) -> None:
        if self.fail is not None:
            raise self.fail
        self.sent.append(json.loads(text))

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


def test_idle_means_no_frame_whatever_else_is_sent():
    class Chatty(Socket):
        async def receive(self) -> dict:
            await asyncio.sleep(0.02)
            return {"type": "websocket.receive", "text": '{"type": "ping"}'}

    async def go():
        box, t0 = _Mailbox(), time.monotonic()
        await asyncio.wait_for(_receive_messages(Chatty({}), box, LiveLimits(idle_s=0.3)), 5)
        return box, time.monotonic() - t0

    box, took = asyncio.run(go())
    assert box.close == (4408, "no frame for 0.3 s") and 0.25 < took < 1.5 and box.received == 0


def test_a_client_that_left_is_not_a_server_fault_and_a_server_fault_is_raised():
    async def go():
        gone = await _send(Socket({}, fail=WebSocketDisconnect(1006)), {"type": "x"})
        with pytest.raises(RuntimeError):
            await _send(Socket({}, fail=RuntimeError("the server's stack broke")), {"type": "x"})
        with pytest.raises(TypeError):
            await _send(Socket({}), {"type": "x", "value": object()})
        return gone

    assert asyncio.run(go()) is False


def _bundle(modalities):
    return SimpleNamespace(modalities=modalities, labels=["happy", "sad"], info={"name": "m", "version": "1"})


def test_an_audio_only_model_refuses_live_with_a_reason_not_an_internal_error(gate):
    ws = Socket(scope_of(gate), [{"type": "websocket.receive", "text": '{"key": "env-key-0123456789"}'}])
    slots = LiveSlots(2)
    asyncio.run(serve_live(ws, _bundle(["audio"]), slots, LiveLimits()))
    assert ws.closed[0] == 4415 and "reads voices only" in ws.closed[1] and "faces" in ws.closed[1]
    assert slots.busy == 0 and ws.sent == []


def test_a_send_that_fails_on_the_server_is_logged_as_a_server_fault(gate, monkeypatch, caplog):
    class Reader:
        def __init__(self, bundle, lang):
            pass

    monkeypatch.setattr("video_emotion.inference.live.LiveReader", Reader)
    hello = [{"type": "websocket.receive", "text": '{"key": "env-key-0123456789"}'}]
    slots = LiveSlots(2)
    with caplog.at_level(logging.INFO, logger="video_emotion.serving.live"):
        ws = Socket(scope_of(gate), hello, fail=RuntimeError("the server's stack broke"))
        asyncio.run(serve_live(ws, _bundle(["video"]), slots, LiveLimits()))
        faults = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert ws.closed == (1011, "internal error") and len(faults) == 1 and "internal error" in faults[0].getMessage()
        assert "the server's stack broke" in caplog.text and slots.busy == 0
        caplog.clear()
        gone = Socket(scope_of(gate, "127.0.0.7"), hello, fail=WebSocketDisconnect(1006))
        asyncio.run(serve_live(gone, _bundle(["video"]), slots, LiveLimits()))
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING] and slots.busy == 0


def test_a_frame_the_server_fails_to_read_is_a_server_fault_and_a_bad_frame_the_clients(gate, monkeypatch, caplog):
    import cv2
    import numpy as np

    class Reader:
        def __init__(self, bundle, lang):
            pass

        def read(self, frame, t):
            raise ValueError("operands could not be broadcast together")  # a bug of the server's, not the frame's

    monkeypatch.setattr("video_emotion.inference.live.LiveReader", Reader)
    jpeg = cv2.imencode(".jpg", np.full((48, 64, 3), 128, np.uint8))[1].tobytes()
    ws = Socket(scope_of(gate), [{"type": "websocket.receive", "text": '{"key": "env-key-0123456789"}'},
                                 {"type": "websocket.receive", "bytes": b"not a jpeg"},
                                 {"type": "websocket.receive", "bytes": jpeg}])
    with caplog.at_level(logging.INFO, logger="video_emotion.serving.live"):
        asyncio.run(asyncio.wait_for(serve_live(ws, _bundle(["video"]), LiveSlots(2), LiveLimits()), 10))
    assert [m["type"] for m in ws.sent] == ["ready", "error"] and "JPEG" in ws.sent[1]["error"]
    assert ws.closed == (1011, "internal error") and "operands could not be broadcast" in caplog.text
