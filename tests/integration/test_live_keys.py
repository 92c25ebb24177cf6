"""/live against a real `bentoml serve` on 127.0.0.1 of a bundle at the shipped temperature, keys from a key file
made by `video-emotion apikey create`, VIDEO_EMOTION_MAX_LIVE=3 (one session per key, the default):

- a face reads the same live and uploaded (valence within 0.02, the same sentiment);
- a key's second session is refused with 4429 naming the per-key limit; `apikey revoke` ends the first (4401);
- ten sockets of one address that never send a key: at most 4 held at once, each refused one audited;
- a session that sends text but no frame is closed as idle.

The key wait and the idle time are shortened by their environment variables (the defaults are 5 s and 30 s)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import cv2
import pytest
import requests

from tests import servers
from tests.conftest import ROOT
from tests.integration.conftest import BIN
from tests.unit.test_live_reader import live_bundle, shipped_temperature, still_clip

pytestmark = pytest.mark.slow
KEY_WAIT_S, IDLE_S = 3.0, 3.0


def apikey(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "video-emotion"), "apikey", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def live(tmp_path_factory, pretrained, exported_model):
    """The server: the pretrained network's bundle calibrated at params.yaml's temperature, imported with
    `video-emotion bento-import --model FOLDER`, three keys."""
    tmp = tmp_path_factory.mktemp("live-keys")
    bundle = live_bundle(tmp / "bundle", pretrained, exported_model, shipped_temperature())
    env = {k: v for k, v in os.environ.items() if k not in ("VIDEO_EMOTION_API_KEYS", "VIDEO_EMOTION_MAX_LIVE_PER_KEY")}
    env.update(BENTOML_HOME=str(tmp / "bentoml"), VIDEO_EMOTION_API_KEY_FILE=str(tmp / "keys" / "api_keys"),
               VIDEO_EMOTION_MAX_LIVE="3", VIDEO_EMOTION_RATE_LIMIT="100000", TMPDIR=str(tmp / "svc-tmp"),
               VIDEO_EMOTION_LIVE_KEY_WAIT_S=str(KEY_WAIT_S), VIDEO_EMOTION_LIVE_IDLE_S=str(IDLE_S),
               VIDEO_EMOTION_WHISPER_DIR=str(tmp / "no-whisper"))  # no speech here: the server starts sooner
    (tmp / "svc-tmp").mkdir()
    imported = subprocess.run([str(BIN / "video-emotion"), "bento-import", "--model", str(bundle)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
    assert imported.returncode == 0, imported.stderr
    keys = {}
    for name in ("parity", "bars", "idle"):
        made = apikey(env, "create", "--name", name)
        assert made.returncode == 0, made.stderr
        keys[name] = made.stdout.strip()
    proc, url, log = servers.start_bentoml(env, tmp / "serve.log", timeout_s=240)
    yield {"url": url, "env": env, "keys": keys, "audit": Path(f"{tmp / 'keys' / 'api_keys'}.audit.jsonl"),
           "tmp": tmp}
    servers.stop(proc, log)


def _ws(live, address: str = "127.0.0.1"):
    import httpx
    from httpx_ws import connect_ws

    client = httpx.Client(transport=httpx.HTTPTransport(local_address=address))
    return connect_ws(live["url"].replace("http://", "ws://") + "/live", client, max_message_size_bytes=16 << 20,
                      keepalive_ping_interval_seconds=None)


def _closed(ws, timeout: float = 15) -> tuple[int, str]:
    """(code, reason) of the server's close; other messages are skipped."""
    from httpx_ws import WebSocketDisconnect

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            ws.receive_text(timeout=timeout)
        except WebSocketDisconnect as exc:
            return exc.code, exc.reason
    raise AssertionError(f"not closed within {timeout} s")


def _exchange(ws, message: bytes | str) -> tuple[int, str] | None:
    """Send one message and take its answer; the server's (code, reason) if it closed the session instead."""
    from httpx_ws import WebSocketDisconnect

    try:
        ws.send_bytes(message) if isinstance(message, bytes) else ws.send_text(message)
        ws.receive_text(timeout=30)
        return None
    except WebSocketDisconnect as exc:
        return exc.code, exc.reason
    except Exception:  # sent after the server's close (the protocol refuses it): the close waits in the queue
        return _closed(ws, 5)


def _hello(ws, key: str) -> None:
    ws.send_text(json.dumps({"key": key}))
    assert json.loads(ws.receive_text(timeout=30))["type"] == "ready"


def _no_sessions(live) -> None:
    """Until the server holds no live session (a closed one frees its slot a moment after its socket closes)."""
    deadline = time.time() + 10
    auth = {"Authorization": f"Bearer {live['keys']['parity']}"}
    while requests.get(f"{live['url']}/model", headers=auth, timeout=10).json()["load"]["live_sessions"]:
        assert time.time() < deadline, "a live session kept its slot"
        time.sleep(0.1)


def _audit(live) -> list[dict]:
    return [json.loads(line) for line in live["audit"].read_text().splitlines()]


@pytest.mark.parametrize("photo", ["posed_surprise", "posed_disgust"])
def test_the_same_face_reads_the_same_live_and_uploaded(live, real_faces, tmp_path, photo):
    jpeg = cv2.imencode(".jpg", cv2.imread(str(real_faces / f"{photo}.jpg")))[1].tobytes()
    _no_sessions(live)
    with _ws(live) as ws:
        _hello(ws, live["keys"]["parity"])
        for n in range(1, 31):
            ws.send_bytes(jpeg)
            reading = json.loads(ws.receive_text(timeout=30))
            assert reading["type"] == "reading" and reading["frame"] == n
    frame = cv2.imdecode(cv2.imencode(".jpg", cv2.imread(str(real_faces / f"{photo}.jpg")))[1], cv2.IMREAD_COLOR)
    clip = still_clip(frame, tmp_path / "still.mkv", seconds=2.0)
    with open(clip, "rb") as fh:
        r = requests.post(f"{live['url']}/analyze", files={"video": ("still.mkv", fh)}, data={"transcribe": "off"},
                          headers={"Authorization": f"Bearer {live['keys']['parity']}"}, timeout=120)
    assert r.status_code == 200, r.text
    upload = r.json()["summary"]
    for said in (reading["faces"][0], reading["state"]):
        assert abs(said["valence"] - upload["sentiment_score"]) <= 0.02, (said["valence"], upload)
        assert said["sentiment"] == upload["sentiment"]


def test_one_key_one_session_and_a_revoked_key_ends_its_session(live, real_faces):
    key = live["keys"]["bars"]
    jpeg = cv2.imencode(".jpg", cv2.imread(str(real_faces / "posed_happy.jpg")))[1].tobytes()
    _no_sessions(live)
    with _ws(live) as first:
        _hello(first, key)
        with _ws(live) as second:
            second.send_text(json.dumps({"key": key}))
            code, reason = _closed(second)
        assert code == 4429 and "per-key limit" in reason
        t0 = time.monotonic()
        revoking = subprocess.Popen([str(BIN / "video-emotion"), "apikey", "revoke", "bars"], cwd=ROOT,
                                    env=live["env"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = None
        while end is None and time.monotonic() - t0 < 30:  # the session goes on, frame after frame, until it ends
            end = _exchange(first, jpeg)
        took = time.monotonic() - t0
        assert end is not None, "the session outlived its key"
        code, reason = end
        assert revoking.wait(60) == 0
    assert code == 4401 and "revoked" in reason and took < 10, (code, reason, took)
    mine = [x for x in _audit(live) if x["key"] == "bars"]
    assert [x["status"] for x in mine] == [101, 101, 429, 401] and "per-key limit" in mine[2]["reason"]
    assert "revoked" in mine[3]["reason"] and key not in live["audit"].read_text()


def test_sockets_that_never_send_a_key_at_most_four_held_and_every_refusal_audited(live):
    from httpx_ws import WebSocketDisconnect

    address = "127.0.0.21"  # its own address: the ten refusals start its back-off, nobody else's
    ends: list[tuple[int, str]] = []
    with ExitStack() as stack:
        t0 = time.monotonic()
        sockets = [stack.enter_context(_ws(live, address)) for _ in range(10)]
        opening = time.monotonic() - t0
        for ws in sockets:
            try:
                ws.receive_text(timeout=15)
            except WebSocketDisconnect as exc:
                ends.append((exc.code, exc.reason))
    assert opening < KEY_WAIT_S, f"opening the sockets took {opening:.1f} s: longer than the key wait"
    held = [e for e in ends if e[0] == 4401]  # held until the key wait ran out: all ten were open together
    refused = [e for e in ends if e[0] == 4429]
    assert len(ends) == 10 and len(held) == 4 and len(refused) == 6
    assert all("at most 4" in e[1] for e in refused) and all(f"no key within {KEY_WAIT_S:g} s" in e[1] for e in held)
    lines = [x for x in _audit(live) if x["client"] == address]
    assert len(lines) == 10 and all(x["method"] == "WS" and x["reason"] for x in lines)
    assert sorted(x["status"] for x in lines) == sorted(401 if e[0] == 4401 else 429 for e in ends)


def test_a_session_without_frames_is_idle_whatever_else_it_sends(live):
    _no_sessions(live)
    with _ws(live) as ws:
        _hello(ws, live["keys"]["idle"])
        t0 = time.monotonic()
        end = None
        while end is None and time.monotonic() - t0 < 20:
            end = _exchange(ws, json.dumps({"type": "ping"}))  # text, answered with an error: no frame
            time.sleep(0.3)
        took = time.monotonic() - t0
    assert end is not None, "a session without frames was kept open"
    code, reason = end
    assert code == 4408 and reason == f"no frame for {IDLE_S:g} s" and IDLE_S - 0.5 < took < IDLE_S + 5
