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
    bad.chmod(0o600)  # a private file, so that its content (not its mode) is what gets judged
    monkeypatch.setenv(auth.ENV_KEY_FILE, str(bad))
    with pytest.raises(ValueError, match="name:sha256"):
        auth.load_hashes()


def _call(mw, path, headers=(), body=b"", method="POST", app=None, client="10.0.0.1"):
    sent = []
    reached = []

    async def reading_app(scope, receive, send):
        while True:
            msg = await receive()
            if not msg.get("more_body"):
                break
        reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    mw.app = app or reading_app
    chunks = [body[i:i + 10] for i in range(0, len(body), 10)] or [b""]
    queue = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive():
        return queue.pop(0)

    async def send(msg):
        sent.append(msg)

    scope = {"type": "http", "path": path, "method": method, "client": (client, 50000),
             "headers": [(k.encode(), v.encode()) for k, v in headers]}
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


def test_chunked_oversize_is_413_even_when_the_app_catches_every_error(monkeypatch, tmp_path):
    """Without Content-Length the cap trips while the app reads; an app that turns read errors into
    400 (as a form parser's caller does) must not hide the 413."""
    monkeypatch.setenv(auth.ENV_KEYS, "k1")
    monkeypatch.setenv(auth.ENV_KEY_FILE, str(tmp_path / "none"))
    mw = auth.GuardMiddleware(None, max_body_bytes=25)

    async def defensive_app(scope, receive, send):
        try:
            while (await receive()).get("more_body"):
                pass
            status = 200
        except Exception:
            status = 400
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    ok = [("authorization", "Bearer k1")]
    assert _call(mw, "/analyze", ok, b"x" * 40, app=defensive_app)[0] == 413
    assert _call(mw, "/analyze", ok, b"x" * 20, app=defensive_app)[0] == 200


def test_options_needs_a_key_unless_it_is_a_cors_preflight_with_cors_on(monkeypatch, tmp_path):
    monkeypatch.setenv(auth.ENV_KEYS, "k1")
    monkeypatch.setenv(auth.ENV_KEY_FILE, str(tmp_path / "none"))
    preflight = [("origin", "https://example.org"), ("access-control-request-method", "POST")]
    off = auth.GuardMiddleware(None, cors=False)
    assert _call(off, "/analyze", method="OPTIONS") == (401, [])
    assert _call(off, "/analyze", preflight, method="OPTIONS") == (401, [])
    assert _call(off, "/model", [("authorization", "Bearer k1")], method="OPTIONS") == (200, ["/model"])
    on = auth.GuardMiddleware(None, cors=True)
    assert _call(on, "/analyze", preflight, method="OPTIONS") == (200, ["/analyze"])
    assert _call(on, "/analyze", method="OPTIONS") == (401, [])  # OPTIONS without preflight headers
    assert _call(on, "/analyze", preflight, method="POST") == (401, [])
    assert auth.cors_enabled() is False  # BentoML's default: no CORS, so OPTIONS is guarded


def test_a_key_added_to_the_key_file_after_start_works_without_restart(monkeypatch, tmp_path):
    monkeypatch.delenv(auth.ENV_KEYS, raising=False)
    path = tmp_path / "api_keys"
    monkeypatch.setenv(auth.ENV_KEY_FILE, str(path))
    first = auth.create_key("alice")
    mw = auth.GuardMiddleware(None)
    assert _call(mw, "/model", [("authorization", f"Bearer {first}")])[0] == 200
    second = auth.create_key("bob")  # appended while the service runs
    assert _call(mw, "/model", [("authorization", f"Bearer {second}")])[0] == 200
    path.write_text(path.read_text().splitlines()[1] + "\n")  # alice revoked
    assert _call(mw, "/model", [("authorization", f"Bearer {first}")])[0] == 401
    assert _call(mw, "/model", [("authorization", f"Bearer {second}")])[0] == 200
    path.write_text("garbage\n")  # a broken edit fails closed: every key of the file is refused
    assert _call(mw, "/model", [("authorization", f"Bearer {second}")])[0] == 401


def test_a_key_file_others_can_read_is_refused_with_a_clear_log_line(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv(auth.ENV_KEYS, "env-key")
    path = tmp_path / "api_keys"
    monkeypatch.setenv(auth.ENV_KEY_FILE, str(path))
    key = auth.create_key("alice")
    path.chmod(0o644)
    caplog.set_level("ERROR", logger="video_emotion.serving.auth")
    mw = auth.GuardMiddleware(None)
    assert _call(mw, "/model", [("authorization", f"Bearer {key}")])[0] == 401
    assert _call(mw, "/model", [("authorization", "Bearer env-key")])[0] == 200
    assert f"refusing the API key file {path}: its mode 644" in caplog.text and "chmod 600" in caplog.text
    assert key not in caplog.text
    path.chmod(0o600)  # fixed while running: accepted from the next request on
    assert _call(mw, "/model", [("authorization", f"Bearer {key}")])[0] == 200
