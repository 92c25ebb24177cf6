"""A real `bentoml serve` on 127.0.0.1 of the pipeline's registered champion: contract, auth, every bad
input, internal errors, cancelled requests, key-file changes, and an offline `bentoml build`."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.conftest import ROOT, write_video
from tests.integration.conftest import BIN, GOOD

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {GOOD}"}


def post(service, files=None, data=None, headers=AUTH, timeout=120):
    return requests.post(f"{service['url']}/analyze", files=files, data=data, headers=headers, timeout=timeout)


def test_health_probes_need_no_key_everything_else_does(service):
    for probe in ("/healthz", "/livez", "/readyz"):
        assert requests.get(service["url"] + probe, timeout=5).status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": GOOD}, {"Authorization": "Basic x"}):
        r = requests.get(f"{service['url']}/model", headers=headers, timeout=5)
        assert r.status_code == 401 and "API key" in r.json()["error"]
        assert r.headers["www-authenticate"] == "Bearer"
    r = post(service, files={"video": ("a.mp4", b"x")}, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    r = requests.get(f"{service['url']}/model", headers=AUTH, timeout=5)
    assert r.status_code == 200
    info = r.json()
    # The model the pipeline registered as champion, imported through `video-emotion bento-import`.
    assert info["labels"][3] == "happy" and info["version"] == service["version"]
    assert info["bento_model"] == service["tag"] and info["preprocessing"]["n_frames"] == service["n_frames"]
    assert info["metrics"]["real_face_check"] == "pass"  # a champion passed the real-face gate


def test_options_is_no_way_around_the_key(service):
    """BentoML's default has CORS off: an OPTIONS request (preflight-looking or not) needs a key."""
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    for headers in ({}, preflight):
        for path in ("/analyze", "/model", "/metrics"):
            r = requests.options(f"{service['url']}{path}", headers=headers, timeout=5)
            assert r.status_code == 401, (path, headers, r.status_code)
            assert "access-control-allow-origin" not in r.headers


def test_contract_on_a_generated_clip_with_transcript_and_chinese(service, face_clip):
    srt = "1\n00:00:00,000 --> 00:00:02,000\nI am so happy, this is wonderful!\n"
    with open(face_clip, "rb") as fh:
        r = post(service, files={"video": ("happy.mp4", fh), "transcript": ("t.srt", srt.encode())},
                 data={"lang": "zh", "sample_fps": "6"})
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["video"] == "happy.mp4" and res["faces_detected"] is True and res["lang"] == "zh"
    assert {"duration_s", "fps", "frames_analysed", "model", "timeline", "summary"} <= set(res)
    seg = res["timeline"][0]
    assert {"start_s", "end_s", "emotion", "confidence", "probabilities", "valence", "arousal", "sentiment",
            "emotion_label", "text_sentiment"} <= set(seg)
    assert abs(sum(seg["probabilities"].values()) - 1) < 1e-3
    assert res["transcript"]["sentiment"] == "positive" and res["transcript"]["language"] == "en"
    s = res["summary"]
    assert s["dominant_emotion_label"] and "transcript" in s["sentiment_sources"]
    assert -1 <= s["combined_sentiment_score"] <= 1


def test_real_footage_reads_crying_then_laughing(service, real_faces):
    clip = real_faces / "cry_then_laugh.mp4"
    with open(clip, "rb") as fh:
        r = post(service, files={"video": ("clip.mp4", fh)})
    assert r.status_code == 200, r.text
    tl = r.json()["timeline"]
    dur = r.json()["duration_s"]
    early = [s["sentiment"] for s in tl if s["end_s"] <= 0.35 * dur]
    late = [s["sentiment"] for s in tl if s["start_s"] >= 0.65 * dur]
    assert early.count("negative") > len(early) / 2
    assert late.count("positive") > len(late) / 2


def test_no_face_is_200_without_an_invented_emotion(service, blank_clip):
    with open(blank_clip, "rb") as fh:
        r = post(service, files={"video": ("blank.mp4", fh)})
    assert r.status_code == 200
    res = r.json()
    assert res["faces_detected"] is False and res["timeline"] == []
    assert res["summary"]["dominant_emotion"] is None and "no face" in res["summary"]["note"]


def _bad_inputs(tmp_path: Path, face_clip: Path) -> dict[str, tuple[int, str, dict]]:
    one = write_video(tmp_path / "one.mp4", [np.full((96, 128, 3), 90, np.uint8)])
    long_clip = write_video(tmp_path / "long.avi", [np.full((32, 32, 3), i % 250, np.uint8) for i in range(80)],
                            fps=2.0, fourcc="MJPG")
    # A valid AVI whose codec tag names a codec nothing here can decode.
    mjpg = write_video(tmp_path / "mjpg.avi", [np.full((96, 128, 3), 90, np.uint8)] * 6, fourcc="MJPG")
    raw = mjpg.read_bytes().replace(b"MJPG", b"ZZ9Z")
    data = face_clip.read_bytes()
    return {
        "empty": (400, "empty", {"files": {"video": ("e.mp4", b"")}}),
        "not a video": (422, "cannot analyse", {"files": {"video": ("x.mp4", b"<html>not a video</html>" * 40)}}),
        "truncated": (422, "cannot analyse", {"files": {"video": ("t.mp4", data[: len(data) // 3])}}),
        "undecodable codec": (422, "cannot analyse", {"files": {"video": ("c.avi", raw)}}),
        "one frame": (422, "at least 3", {"files": {"video": ("one.mp4", one.read_bytes())}}),
        "too long": (413, "limit is 30 s", {"files": {"video": ("long.avi", long_clip.read_bytes())}}),
        "too big": (413, "MiB limit", {"files": {"video": ("big.mp4", os.urandom(3 << 20))}}),
        "no video field": (400, "field `video`", {"files": {"other": ("a.mp4", data)}}),
        "not multipart": (415, "multipart", {"data": "hello"}),
        "bad sample_fps": (400, "sample_fps", {"files": {"video": ("a.mp4", data)}, "data": {"sample_fps": "fast"}}),
        "bad lang": (400, "lang", {"files": {"video": ("a.mp4", data)}, "data": {"lang": "fr"}}),
        "binary transcript": (400, "UTF-8",
                              {"files": {"video": ("a.mp4", data), "transcript": ("t.srt", b"\xff\xfe\xfa")}}),
    }


def test_every_bad_input_gets_a_clear_4xx_and_the_service_survives(service, tmp_path, face_clip):
    for name, (status, message, kwargs) in _bad_inputs(tmp_path, face_clip).items():
        r = post(service, **kwargs)
        assert r.status_code == status, f"{name}: {r.status_code} {r.text[:300]}"
        assert message in r.json()["error"], f"{name}: {r.json()}"
    assert requests.get(f"{service['url']}/readyz", timeout=5).status_code == 200
    with open(face_clip, "rb") as fh:
        assert post(service, files={"video": ("ok.mp4", fh)}).status_code == 200
    assert service["proc"].poll() is None
    # Uploaded temp files are always removed.
    leftovers = [p for p in (service["tmp"] / "svc-tmp").rglob("*") if p.is_file() and "upload" in p.name]
    assert leftovers == []


def test_keys_never_appear_in_the_log(service):
    requests.get(f"{service['url']}/model", headers={"Authorization": "Bearer leaked-secret-123"}, timeout=5)
    time.sleep(0.5)
    log = (service["tmp"] / "serve.log").read_text(errors="replace")
    assert GOOD not in log and "leaked-secret-123" not in log


def _multipart(path: Path, fields: dict[str, str] | None = None) -> tuple[bytes, str]:
    boundary = "b" + uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in (fields or {}).items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="video"; filename="{path.name}"\r\n'
                 f"Content-Type: video/mp4\r\n\r\n".encode() + path.read_bytes() + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), boundary


def test_chunked_upload_over_the_limit_gets_413(service):
    """No Content-Length: the cap (2 MiB + 1 MiB of form overhead here) trips while the body arrives."""
    def body():
        yield b'--bnd\r\nContent-Disposition: form-data; name="video"; filename="big.mp4"\r\n\r\n'
        for _ in range(10):
            yield os.urandom(1 << 19)  # 5 MiB in all
        yield b"\r\n--bnd--\r\n"

    r = requests.post(f"{service['url']}/analyze", data=body(), timeout=60,
                      headers={**AUTH, "Content-Type": "multipart/form-data; boundary=bnd"})
    assert r.request.headers.get("Transfer-Encoding") == "chunked" and "Content-Length" not in r.request.headers
    assert r.status_code == 413 and "MiB limit" in r.json()["error"]
    assert requests.get(f"{service['url']}/readyz", timeout=5).status_code == 200


def test_an_internal_error_is_500_with_a_request_id_that_the_log_has(service, face_clip):
    """A server fault (here: its temp folder vanished) is not the client's: 500, no internals, an id."""
    tmp = service["tmp"] / "svc-tmp"
    away = tmp.with_name("svc-tmp-away")
    tmp.rename(away)
    try:
        with open(face_clip, "rb") as fh:
            r = post(service, files={"video": ("ok.mp4", fh)})
    finally:
        away.rename(tmp)
    assert r.status_code == 500, r.text
    body = r.json()
    rid = body["request_id"]
    assert re.fullmatch(r"[0-9a-f]{16}", rid) and r.headers["x-request-id"] == rid and rid in body["error"]
    assert "Traceback" not in r.text and "svc-tmp" not in r.text and "Errno" not in r.text
    time.sleep(0.5)
    log = service["log"].read_text(errors="replace")
    assert f"request {rid}: internal error" in log and "FileNotFoundError" in log
    with open(face_clip, "rb") as fh:  # and the service goes on
        assert post(service, files={"video": ("ok.mp4", fh)}).status_code == 200


LONG_S, LONG_FPS = 28, 60  # within the test service's 30 s limit; every frame is sampled at 60 fps


@pytest.fixture
def long_clip(tmp_path, real_faces) -> Path:
    """LONG_S seconds of real faces (the crying/laughing clip looped, 320x180, LONG_FPS frames a second, H.264
    to stay under the test service's 2 MB upload limit): LONG_S * LONG_FPS frames, seconds of work."""
    from video_emotion.features.audio import ffmpeg_exe

    out = tmp_path / "long.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-stream_loop", "-1", "-i", str(real_faces / "cry_then_laugh.mp4"),
                    "-t", str(LONG_S), "-an", "-vf", f"scale=320:180,fps={LONG_FPS}", "-c:v", "libx264",
                    "-preset", "ultrafast", "-crf", "30", str(out)], check=True, timeout=120)
    assert out.stat().st_size < 2 << 20
    return out


def _model(service) -> dict:
    return requests.get(f"{service['url']}/model", headers=AUTH, timeout=10).json()


def test_a_client_that_disconnects_stops_its_analysis_and_frees_its_slot(service, long_clip):
    body, boundary = _multipart(long_clip, {"sample_fps": "60", "transcribe": "off"})
    log = service["log"]
    mark = len(log.read_bytes())
    sock = socket.create_connection(("127.0.0.1", int(service["url"].rsplit(":", 1)[1])))
    sock.sendall(f"POST /analyze HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {GOOD}\r\n"
                 f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n"
                 .encode() + body)
    deadline = time.time() + 60
    started = re.compile(r'request ([0-9a-f]{16}) \(key env-2\): analysing "long\.mp4"')  # named, never the key
    while not (m := started.search(log.read_text(errors="replace")[mark:])):
        assert time.time() < deadline, "the analysis never started"
        time.sleep(0.05)
    rid = m.group(1)
    time.sleep(0.5)  # into the analysis (all of it takes several seconds)
    assert _model(service)["load"]["analyses_running"] == 1
    sock.close()  # the client gives up
    closed = time.time()
    stopped = re.compile(rf"request {rid}: client disconnected; analysis stopped \(.*: stopped after (\d+) frames\)")
    while not (m := stopped.search(log.read_text(errors="replace")[mark:])):
        assert time.time() - closed < 20, "the analysis went on after its client left"
        time.sleep(0.05)
    # Stopped part-way (a fast machine reads ~500 frames in the first second), and its slot is free again.
    assert int(m.group(1)) < LONG_S * LONG_FPS * 3 // 4
    assert _model(service)["load"]["analyses_running"] == 0


def test_a_key_added_while_running_works_and_an_open_key_file_is_refused(service):
    from video_emotion.serving.auth import create_key

    key_file = Path(service["env"]["VIDEO_EMOTION_API_KEY_FILE"])
    key = create_key("late", key_file)  # after start-up: no restart
    headers = {"Authorization": f"Bearer {key}"}
    assert requests.get(f"{service['url']}/model", headers=headers, timeout=5).status_code == 200
    key_file.chmod(0o644)
    try:
        assert requests.get(f"{service['url']}/model", headers=headers, timeout=5).status_code == 401
        assert requests.get(f"{service['url']}/model", headers=AUTH, timeout=5).status_code == 200  # env keys stay
        time.sleep(0.5)
        assert f"refusing the API key file {key_file}: its mode 644" in service["log"].read_text(errors="replace")
    finally:
        key_file.chmod(0o600)
    assert requests.get(f"{service['url']}/model", headers=headers, timeout=5).status_code == 200


def test_bentoml_build_offline_ships_runtime_dependencies_only(service, tmp_path):
    """`bentoml build` without network (a network namespace of its own where the system allows one)
    packages the imported champion with requirements-serve.lock: nothing of the development lock."""
    env = {**service["env"], "BENTOML_HOME": str(tmp_path / "bentoml")}
    shutil.copytree(Path(service["env"]["BENTOML_HOME"]) / "models", tmp_path / "bentoml" / "models")
    cmd = [str(BIN / "bentoml"), "build", "--output", "tag"]
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
        cmd = ["unshare", "-n", *cmd]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    bento = next((tmp_path / "bentoml" / "bentos" / "video-emotion").glob("*/bento.yaml")).parent
    reqs = (bento / "env" / "python" / "requirements.txt").read_text()
    names = {re.split(r"[=<>\[ ;]", line, maxsplit=1)[0].lower().replace("_", "-") for line in reqs.splitlines()
             if line and not line.startswith((" ", "#", "-"))}
    assert {"tensorflow-cpu", "keras", "bentoml", "fastapi", "opencv-python-headless"} <= names
    assert not names & {"pytest", "playwright", "dvc", "great-expectations", "mlflow", "ray", "uv"}
    assert service["tag"] in (bento / "bento.yaml").read_text()
    assert (bento / "src" / "src" / "video_emotion" / "serving" / "service.py").is_file()
