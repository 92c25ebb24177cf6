"""Named keys (create, list, revoke, old key files), the limits (failed keys per address, requests per key),
the audit log, failing closed, and `admit` for entry points other than HTTP."""

import asyncio
import json
import logging
import stat

import pytest

from tests.unit.test_auth import _call
from video_emotion.cli import main
from video_emotion.serving import auth
from video_emotion.serving.audit import AuditLog, last_use
from video_emotion.serving.gate import Gate
from video_emotion.serving.keyfile import KeyFileError, create_key, read_records, revoke_key
from video_emotion.serving.keystore import ApiKeys, key_table
from video_emotion.serving.limits import FailedKeys, PerKey


@pytest.fixture
def keyfile(tmp_path, monkeypatch):
    path = tmp_path / "cfg" / "api_keys"
    monkeypatch.delenv(auth.ENV_KEYS, raising=False)
    monkeypatch.delenv("VIDEO_EMOTION_AUDIT_LOG", raising=False)
    monkeypatch.delenv("VIDEO_EMOTION_RATE_LIMIT", raising=False)
    monkeypatch.delenv("VIDEO_EMOTION_TRUSTED_PROXIES", raising=False)
    monkeypatch.setenv(auth.ENV_KEY_FILE, str(path))
    return path


def bearer(key):
    return [("authorization", f"Bearer {key}")]


def audit_lines(path):
    return [json.loads(line) for line in path.with_name(path.name + ".audit.jsonl").read_text().splitlines()]


def test_cli_creates_lists_and_revokes_by_name_without_ever_showing_a_key(keyfile, capsys):
    assert main(["apikey", "create", "--name", "bars"]) == 0
    bars = capsys.readouterr().out.strip()
    assert main(["apikey", "create", "--name", "bars2"]) == 0
    bars2 = capsys.readouterr().out.strip()
    assert main(["apikey", "create", "--name", "bars"]) == 1  # an active name is not given twice
    assert "already exists" in capsys.readouterr().err
    assert main(["apikey", "revoke", "bars2"]) == 0
    assert main(["apikey", "revoke", "bars2"]) == 1 and "revoked already" in capsys.readouterr().err
    assert main(["apikey", "revoke", "nobody"]) == 1
    assert main(["apikey", "create", "--name", "bad name"]) == 1
    capsys.readouterr()
    assert main(["apikey", "list"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rows["bars"][1] == "active" and rows["bars2"][1] == "revoked" and rows["bars"][-1] == "never"
    assert rows["bars2"][3].endswith("Z")  # the revocation time
    for secret in (bars, bars2, *(r.digest.hex() for r in read_records(keyfile))):
        assert secret not in out
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    assert [r.name for r in read_records(keyfile)] == ["bars", "bars2"]  # the revoked key stays, marked


def test_key_files_in_the_old_format_still_load(keyfile):
    create_key("new", keyfile)
    old = "alice:sha256:" + "ab" * 32
    keyfile.write_text(f"# written by an older version\n{old}\n" + keyfile.read_text())
    records = read_records(keyfile)
    assert [(r.name, r.created, r.active) for r in records][:1] == [("alice", None, True)]
    assert records[1].created is not None
    revoke_key("alice", keyfile)
    assert read_records(keyfile)[0].revoked and "alice" in key_table(keyfile)


def test_wrong_keys_block_their_address_with_a_growing_back_off_and_no_other(keyfile):
    key = create_key("bars", keyfile)
    mw = auth.GuardMiddleware(None)
    statuses = [_call(mw, "/model", bearer(f"wrong-{i}"), client="10.0.0.1")[0] for i in range(12)]
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]
    assert _call(mw, "/model", bearer(key), client="10.0.0.1")[0] == 429  # blocked: no oracle for a right guess
    assert _call(mw, "/model", bearer(key), client="10.0.0.2")[0] == 200  # other addresses are unaffected
    assert _call(mw, "/model", client="10.0.0.3")[0] == 401  # no key at all counts nothing
    limiter = FailedKeys(max_failures=3, window_s=60, base_s=10)
    blocks = []
    now = 0.0
    for _ in range(3):
        while not (b := limiter.failure("a", now)):
            now += 1
        assert limiter.wait("a", now) == b and limiter.wait("b", now) == 0
        blocks.append(b)
        now += b
    assert blocks == [10, 20, 40]


def test_refusals_carry_retry_after_and_a_request_id(keyfile):
    key = create_key("bars", keyfile)
    gate = Gate(per_minute=5)
    mw = auth.GuardMiddleware(None, gate=gate)
    sent = []

    async def send(msg):
        sent.append(msg)

    for _ in range(5):
        assert _call(mw, "/model", bearer(key), client="10.0.0.9")[0] == 200
    scope = {"type": "http", "path": "/model", "method": "GET", "client": ("10.0.0.9", 1),
             "headers": [(b"authorization", f"Bearer {key}".encode())]}
    asyncio.run(mw(scope, None, send))
    headers = dict(sent[0]["headers"])
    assert sent[0]["status"] == 429 and 1 <= int(headers[b"retry-after"]) <= 60
    assert json.loads(sent[1]["body"])["request_id"] == headers[b"x-request-id"].decode()
    assert _call(mw, "/model", bearer("nope"), client="10.0.0.9")[0] == 401  # invalid is 401 whatever else


def test_counters_stay_bounded_under_a_flood_of_addresses():
    limiter = FailedKeys(max_entries=100)
    per_key = PerKey(per_minute=5, max_entries=100)
    for i in range(5000):
        limiter.failure(f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}", float(i) / 100)
        per_key.hit(f"k{i}", float(i) / 100)
    assert len(limiter) <= 100 and len(per_key) <= 100
    limiter.failure("x", 0.0)
    limiter.failure("y", 10_000.0)  # an hour later: x has expired
    assert len(limiter) <= 100 and limiter.wait("x", 10_000.0) == 0
    assert [per_key.hit("k", t) for t in (0, 1, 2, 3, 4, 5)] == [0, 0, 0, 0, 0, 55]
    assert per_key.hit("k", 60.5) == 0


def test_the_audit_log_has_one_line_per_request_with_the_name_and_never_the_key(keyfile):
    key = create_key("alice", keyfile)
    mw = auth.GuardMiddleware(None)
    _call(mw, "/analyze", bearer(key), b"x" * 30)
    _call(mw, "/model", bearer("wrong-secret"), client="10.0.0.7")
    _call(mw, "/readyz")  # a probe is not a keyed request
    lines = audit_lines(keyfile)
    assert [(x["key"], x["status"], x["path"], x["client"]) for x in lines] == [
        ("alice", 200, "/analyze", "10.0.0.1"), ("-", 401, "/model", "10.0.0.7")]
    assert lines[0]["bytes_in"] == 30 and lines[0]["method"] == "POST" and len(lines[0]["request_id"]) == 16
    assert lines[1]["reason"] and {"time", "seconds"} <= set(lines[0])
    text = keyfile.with_name(keyfile.name + ".audit.jsonl").read_text()
    assert key not in text and "wrong-secret" not in text
    assert stat.S_IMODE(keyfile.with_name(keyfile.name + ".audit.jsonl").stat().st_mode) == 0o600
    assert "alice" in key_table(keyfile) and "never" not in key_table(keyfile)


def test_the_audit_log_rotates_by_size_and_last_use_reads_every_file(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", max_bytes=400, backups=2)
    for i in range(30):
        log.write({"time": f"2026-01-01T00:00:{i:02d}.000Z", "key": f"k{i % 3}", "path": "/x\n\u202e"})
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    assert all(p.stat().st_size <= 400 for p in tmp_path.iterdir())
    text = (tmp_path / "audit.jsonl").read_text()
    assert "\\n" in text and "\\u202e" in text and text.count("\n") == len(text.splitlines())  # escaped
    assert last_use(tmp_path / "audit.jsonl", backups=2)["k2"] == "2026-01-01T00:00:29.000Z"


def test_forwarded_for_is_believed_only_from_trusted_proxies(keyfile):
    create_key("bars", keyfile)
    gate = Gate(trusted_proxies="10.9.0.0/16")
    xff = [(b"x-forwarded-for", b"203.0.113.5, 10.9.0.2")]
    assert gate.client({"client": ("10.9.0.1", 1), "headers": xff}) == "203.0.113.5"
    assert gate.client({"client": ("198.51.100.1", 1), "headers": xff}) == "198.51.100.1"  # spoofed: ignored
    assert Gate(trusted_proxies="").client({"client": ("10.9.0.1", 1), "headers": xff}) == "10.9.0.1"
    with pytest.raises(ValueError, match="TRUSTED_PROXIES"):
        Gate(trusted_proxies="not-an-address")


def test_a_broken_key_file_fails_closed_and_weak_environment_keys_are_named(keyfile, monkeypatch, caplog):
    key = create_key("bars", keyfile)
    monkeypatch.setenv(auth.ENV_KEYS, "short,a-long-enough-environment-key")
    caplog.set_level(logging.INFO, logger="video_emotion.serving.auth")
    keys = ApiKeys()
    assert "weak API key: env-1" in caplog.text and "env-2" not in caplog.text and "short" not in caplog.text
    assert keys.match(key) == "bars" and keys.match("a-long-enough-environment-key") == "env-2"
    keyfile.write_text("garbage\n")
    assert keys.match(key) is None and keys.match("short") == "env-1"
    assert "every key in it is refused" in caplog.text
    keyfile.unlink()
    assert keys.match(key) is None
    with pytest.raises(KeyFileError):
        revoke_key("bars", keyfile)


def test_admit_serves_a_websocket_session_as_one_request(keyfile):
    key = create_key("live", keyfile)
    mw = auth.GuardMiddleware(None, gate=Gate(per_minute=2))
    scopes = []

    async def app(scope, receive, send):
        scopes.append(scope)

    mw.app = app
    for _ in range(3):
        asyncio.run(mw({"type": "websocket", "path": "/live", "client": ("10.0.0.5", 1), "headers": []}, None, None))
    answers = [auth.admit(s, key) for s in scopes]
    assert [(a.name, a.status) for a in answers] == [("live", 200), ("live", 200), (None, 429)]
    assert answers[2].retry_after and auth.admit(scopes[0], "wrong").status == 401
    assert auth.admit({"type": "websocket"}, key).status == 401  # no guard in front: nobody is admitted
    assert [(x["key"], x["method"], x["status"]) for x in audit_lines(keyfile)][:3] == [
        ("live", "WS", 101), ("live", "WS", 101), ("live", "WS", 429)]
