"""Named keys, limits, the audit log and the page's policy on a real `bentoml serve` on 127.0.0.1: keys made
with `video-emotion apikey create`, VIDEO_EMOTION_RATE_LIMIT=5, clients at several loopback addresses
(all of 127.0.0.0/8 is loopback: a client socket bound to 127.0.0.2 is another address to the server)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests import servers
from tests.conftest import ROOT
from tests.integration.conftest import BIN, start_server, stop_server

pytestmark = pytest.mark.slow


def apikey(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "video-emotion"), "apikey", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def keyed(service, tmp_path_factory):
    """A second server of the same model, keys only from a key file made by the CLI, 5 requests/min a key."""
    tmp = tmp_path_factory.mktemp("keyed")
    env = {k: v for k, v in service["env"].items() if k not in ("VIDEO_EMOTION_API_KEYS", "VIDEO_EMOTION_RATE_LIMIT")}
    env.update(VIDEO_EMOTION_API_KEY_FILE=str(tmp / "keys" / "api_keys"), VIDEO_EMOTION_RATE_LIMIT="5")
    keys = {}
    for name in ("bars", "bars2"):
        made = apikey(env, "create", "--name", name)
        assert made.returncode == 0, made.stderr
        keys[name] = made.stdout.strip()
    proc, url, log = start_server(env, tmp)
    yield {"url": url, "env": env, "keys": keys, "key_file": tmp / "keys" / "api_keys", "log": tmp / "serve.log"}
    stop_server(proc, log)


def get(keyed, address: str, key: str | None, path: str = "/model", **headers) -> requests.Response:
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    with servers.session_from(address) as session:
        return session.get(keyed["url"] + path, headers=headers, timeout=10)


def until(status: int, call, seconds: float = 5.0) -> float:
    """Seconds until `call()` answers `status` (fails after `seconds`)."""
    start = time.monotonic()
    while (code := call().status_code) != status:
        assert time.monotonic() - start < seconds, f"still {code} after {seconds} s"
        time.sleep(0.1)
    return time.monotonic() - start


def test_the_bars(keyed):
    keys = keyed["keys"]
    wrong = [get(keyed, "127.0.0.1", f"ve_wrong{i}") for i in range(30)]
    assert [r.status_code for r in wrong[:10]] == [401] * 10
    assert wrong[-1].status_code == 429 and int(wrong[-1].headers["retry-after"]) > 0
    assert get(keyed, "127.0.0.2", keys["bars"]).status_code == 200  # another address is unaffected
    quick = [get(keyed, "127.0.0.3", keys["bars"]) for _ in range(8)]
    limited = [r for r in quick if r.status_code == 429]
    assert limited and int(limited[0].headers["retry-after"]) > 0 and "rate limit" in limited[0].json()["error"]
    assert get(keyed, "127.0.0.4", keys["bars2"]).status_code == 200
    assert apikey(keyed["env"], "revoke", "bars2").returncode == 0
    until(401, lambda: get(keyed, "127.0.0.4", keys["bars2"]))
    listed = apikey(keyed["env"], "list")
    assert listed.returncode == 0
    rows = {line.split()[0]: line.split()[1] for line in listed.stdout.splitlines()[1:]}
    assert rows == {"bars": "active", "bars2": "revoked"}
    assert keys["bars"] not in listed.stdout + listed.stderr and keys["bars2"] not in listed.stdout + listed.stderr
    audit = Path(f"{keyed['key_file']}.audit.jsonl")
    text = audit.read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) >= 30 + 1 + 8 + 2 and all(set(x) >= {"time", "key", "client", "status", "request_id"}
                                               for x in lines)
    named = {(x["client"], x["key"], x["status"]) for x in lines}
    assert {("127.0.0.2", "bars", 200), ("127.0.0.3", "bars", 429), ("127.0.0.1", "-", 429),
            ("127.0.0.4", "bars2", 200), ("127.0.0.4", "-", 401)} <= named
    assert keys["bars"] not in text and keys["bars2"] not in text and "ve_wrong" not in text
    keyed["key_file"].write_text("garbage\n")
    until(401, lambda: get(keyed, "127.0.0.5", keys["bars"]))
    page = get(keyed, "127.0.0.6", None, "/ui/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]


def test_forwarded_for_from_an_untrusted_peer_does_not_dodge_the_address_limit(keyed):
    answers = [get(keyed, "127.0.0.7", f"ve_guess{i}", **{"X-Forwarded-For": f"198.51.100.{i}"}).status_code
               for i in range(12)]
    assert answers[:10] == [401] * 10 and answers[10:] == [429, 429]
    lines = [json.loads(x) for x in Path(f"{keyed['key_file']}.audit.jsonl").read_text().splitlines()]
    assert not any(x["client"].startswith("198.51.100.") for x in lines)
