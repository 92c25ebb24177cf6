"""/live against the real `bentoml serve`: the key in the first message or nothing, bounded sessions,
readings of real frames, bad frames answered without ending the session, the session's result."""

from __future__ import annotations

import json
import time

import cv2
import pytest
import requests

from tests.integration.conftest import GOOD

pytestmark = pytest.mark.slow


def _ws(service):
    from httpx_ws import connect_ws

    return connect_ws(service["url"].replace("http://", "ws://") + "/live", max_message_size_bytes=16 << 20,
                      keepalive_ping_interval_seconds=None)


def _closed(ws, timeout: float = 15) -> tuple[int, str, list]:
    """Messages until the server closes: (code, reason, messages before the close)."""
    from httpx_ws import WebSocketDisconnect

    got = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            got.append(ws.receive_text(timeout=timeout))
        except WebSocketDisconnect as exc:
            return exc.code, exc.reason, got
    raise AssertionError(f"not closed within {timeout} s; got {got}")


def _frames(real_faces, start_s: float = 12.0, n: int = 12) -> list[bytes]:
    cap = cv2.VideoCapture(str(real_faces / "cry_then_laugh.mp4"))
    cap.set(cv2.CAP_PROP_POS_MSEC, start_s * 1000)
    out = []
    while len(out) < n:
        ok, frame = cap.read()
        assert ok
        out.append(cv2.imencode(".jpg", frame)[1].tobytes())
        for _ in range(2):
            cap.grab()
    cap.release()
    return out


def _hello(ws, key: str = GOOD, lang: str = "en") -> dict:
    ws.send_text(json.dumps({"key": key, "lang": lang}))
    ready = json.loads(ws.receive_text(timeout=30))
    assert ready["type"] == "ready"
    return ready


def test_a_frame_instead_of_a_key_or_a_wrong_key_gets_no_reading_and_is_closed(service, real_faces):
    frame = _frames(real_faces, n=1)[0]
    with _ws(service) as ws:
        ws.send_bytes(frame)
        code, reason, got = _closed(ws)
    assert code == 4401 and "key" in reason and got == []
    with _ws(service) as ws:
        ws.send_text(json.dumps({"key": "not-the-key"}))
        code, reason, got = _closed(ws)
    assert code == 4401 and "invalid API key" in reason and got == []
    t0 = time.time()
    with _ws(service) as ws:  # nothing at all: closed after the 5 s the key may take
        code, reason, got = _closed(ws)
    assert code == 4401 and "no key within 5 s" in reason and 4.5 < time.time() - t0 < 12
    assert GOOD not in service["log"].read_text(errors="replace")  # keys never reach the log


def test_websockets_elsewhere_are_refused_at_the_handshake(service):
    from httpx_ws import WebSocketUpgradeError, connect_ws

    with pytest.raises(WebSocketUpgradeError) as err, connect_ws(service["url"].replace("http://", "ws://") + "/model"):
        pass
    assert err.value.response.status_code == 403


def test_readings_of_real_frames_then_the_result(service, real_faces):
    frames = _frames(real_faces)
    with _ws(service) as ws:
        ready = _hello(ws, lang="zh")
        assert ready["label_names"]["zh"]["happy"] == "高兴" and ready["labels"]
        readings, seq = [], 0
        for i, frame in enumerate(frames):
            seq += 1
            ws.send_bytes(frame)
            msg = json.loads(ws.receive_text(timeout=30))
            assert msg["type"] == "reading" and msg["frame"] == seq
            readings.append(msg)
            if i == 3:  # a bad frame is answered with an error; the session goes on
                seq += 1
                ws.send_bytes(b"\xff\xd8 not really a jpeg")
                err = json.loads(ws.receive_text(timeout=30))
                assert err["type"] == "error" and err["frame"] == seq and "JPEG" in err["error"]
        ws.send_text(json.dumps({"type": "end"}))
        result = json.loads(ws.receive_text(timeout=60))
        code, _, _ = _closed(ws)
    assert code == 1000
    face = readings[-1]["faces"][0]
    assert set(face) >= {"track", "box", "emotion", "probabilities", "quality", "unreadable", "valence"}
    assert {r["faces"][0]["track"] for r in readings} == {0}
    assert readings[-1]["state"]["emotion_label"] in ready["label_names"]["zh"].values()
    assert result["type"] == "result" and result["source"] == "live" and result["faces_detected"]
    assert len(result["timeline"]) == len(readings) and result["frames_analysed"] == len(readings)
    assert set(result["summary"]) >= {"dominant_emotion", "distribution", "sentiment", "sentiment_score", "tags"}


def test_sessions_beyond_the_limit_are_busy_and_a_closed_one_frees_its_slot_at_once(service):
    auth = {"Authorization": f"Bearer {GOOD}"}
    first, second = _ws(service), _ws(service)
    a, b = first.__enter__(), second.__enter__()
    try:
        _hello(a)
        _hello(b)
        load = requests.get(f"{service['url']}/model", headers=auth, timeout=10).json()["load"]
        assert (load["live_sessions"], load["max_live"]) == (2, 2)
        with _ws(service) as c:
            c.send_text(json.dumps({"key": GOOD}))
            assert _closed(c)[:2] == (4429, "busy")
    finally:
        first.__exit__(None, None, None)
    try:
        deadline = time.time() + 5
        while requests.get(f"{service['url']}/model", headers=auth, timeout=10).json()["load"]["live_sessions"] > 1:
            assert time.time() < deadline, "a closed session kept its slot"
            time.sleep(0.05)
        with _ws(service) as c:
            _hello(c)
    finally:
        second.__exit__(None, None, None)


def test_chinese_transcripts_come_back_in_simplified_characters(service, face_clip):
    srt = "1\n00:00:00,000 --> 00:00:01,500\n我們今天很開心\n"
    with open(face_clip, "rb") as fh:
        r = requests.post(f"{service['url']}/analyze", files={"video": ("happy.mp4", fh)},
                          data={"transcript": srt, "lang": "zh", "transcribe": "off"},
                          headers={"Authorization": f"Bearer {GOOD}"}, timeout=120)
    assert r.status_code == 200, r.text
    tr = r.json()["transcript"]
    assert tr["script"] == "simplified"
    assert [(c["text"], c["text_original"]) for c in tr["cues"]] == [("我们今天很开心", "我們今天很開心")]
