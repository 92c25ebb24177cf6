import asyncio
import stat

import pytest

from video_emotion.serving import auth


def test_created_keys_are_stored_only_as_hashes(tmp_path, monkeypatch):
    monkeypatch.delenv(auth.ENV_KEYS, raising=False)
    path = tmp_path / "cfg" / "api_keys"
    monkeypatch.setenv(auth.ENV_KEY_FILE, str(path))
    key = auth.create_key("alice")
    text = path.read_text()
    assert key.startswith("ve_") and len(key) > 40 and key not in text
    assert text.startswith("alice:sha256:") and stat.S_IMODE(path.stat().st_mode) == 0o600
    hashes = auth.load_hashes()
    assert auth.is_valid(f"Bearer {key}", hashes)
    assert auth.is_valid(f"bearer {key} ", hashes)
    for bad in (None, "", key, f"Basic {key}", "Bearer ", f"Bearer {key}x"):
        assert not auth.is_valid(bad, hashes)


def test_environment_keys_and_a_corrupt_key_file(tmp_path, monkeypatch):
    monkeypatch.setenv(auth.ENV_KEYS, " one , two ")
    monkeypatch.setenv(auth.ENV_KEY_FILE, str(tmp_path / "none"))
    hashes = auth.load_hashes()
    assert auth.is_valid("Bearer two", hashes) and not auth.is_valid("Bearer three", hashes)
    bad = tmp_path / "bad"
    bad.write_text("alice:plain:secret\n")
    monkeypatch.setenv(auth.ENV_KEY_FILE, str(bad))
    with pytest.raises(ValueError, match="name:sha256"):
        auth.load_hashes()


def _call(mw, path, headers=(), body=b""):
    sent = []
    reached = []

    async def app(scope, receive, send):
        while True:
            msg = await receive()
            if not msg.get("more_body"):
                break
        reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    mw.app = app
    chunks = [body[i:i + 10] for i in range(0, len(body), 10)] or [b""]
    queue = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive():
        return queue.pop(0)

    async def send(msg):
        sent.append(msg)

    scope = {"type": "http", "path": path, "method": "POST", "headers": [(k.encode(), v.encode()) for k, v in headers]}
    asyncio.run(mw(scope, receive, send))
    return sent[0]["status"], reached


def test_middleware_guards_everything_but_probes_and_caps_the_body(monkeypatch, tmp_path):
    monkeypatch.setenv(auth.ENV_KEYS, "k1")
    monkeypatch.setenv(auth.ENV_KEY_FILE, str(tmp_path / "none"))
    mw = auth.GuardMiddleware(None, max_body_bytes=25, public_prefixes=("/ui",))
    assert _call(mw, "/readyz") == (200, ["/readyz"])
    assert _call(mw, "/ui/app.js") == (200, ["/ui/app.js"])
    assert _call(mw, "/analyze") == (401, [])
    assert _call(mw, "/metrics", [("authorization", "Bearer nope")]) == (401, [])
    ok = [("authorization", "Bearer k1")]
    assert _call(mw, "/analyze", ok, b"x" * 20) == (200, ["/analyze"])
    assert _call(mw, "/analyze", ok + [("content-length", "999")], b"x") == (413, [])
    assert _call(mw, "/analyze", ok, b"x" * 40)[0] == 413  # no Content-Length: counted as it arrives


def test_no_keys_configured_fails_closed(monkeypatch, tmp_path):
    monkeypatch.delenv(auth.ENV_KEYS, raising=False)
    monkeypatch.setenv(auth.ENV_KEY_FILE, str(tmp_path / "none"))
    mw = auth.GuardMiddleware(None)
    assert _call(mw, "/analyze", [("authorization", "Bearer anything")])[0] == 401
