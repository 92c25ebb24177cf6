"""A real `bentoml serve` on 127.0.0.1: contract, auth, every bad input, and that it keeps answering."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests

from tests.conftest import REAL_FACES, ROOT, write_video

pytestmark = pytest.mark.slow
GOOD = "test-key-good"
AUTH = {"Authorization": f"Bearer {GOOD}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def service(tmp_path_factory, pretrained):
    """Import a FER-initialised bundle into a private BentoML store and serve it."""
    from video_emotion.bento_store import import_bundle
    from video_emotion.config import ModelConfig
    from video_emotion.labels import LABELS
    from video_emotion.model import build_model

    tmp = tmp_path_factory.mktemp("service")
    bundle = tmp / "bundle"
    bundle.mkdir()
    # Untrained temporal head without correction: the clip output is an attention-weighted mean of
    # the pretrained CNN's per-frame probabilities, so it reads real faces as FER-2013 does.
    build_model(ModelConfig(lstm_units=8, correction_bound=0.0), 8, 64, pretrained).save(bundle / "model.keras")
    settings = {"labels": list(LABELS), "n_frames": 8, "image_size": 64, "face_margin": 0.12,
                "min_face_frac": 0.2, "detect_every": 1, "denoise": False, "equalize": False, "window_s": 1.0}
    (bundle / "preprocessing.json").write_text(json.dumps(settings))
    env = {**os.environ, "BENTOML_HOME": str(tmp / "bentoml"), "VIDEO_EMOTION_API_KEYS": f"other-key,{GOOD}",
           "VIDEO_EMOTION_API_KEY_FILE": str(tmp / "no-key-file"), "VIDEO_EMOTION_MAX_UPLOAD_MB": "2",
           "VIDEO_EMOTION_MAX_DURATION_S": "30", "TMPDIR": str(tmp / "svc-tmp")}
    (tmp / "svc-tmp").mkdir()
    os.environ["BENTOML_HOME"] = env["BENTOML_HOME"]
    try:
        import_bundle(bundle, {"name": "video-emotion", "version": "test"})
    finally:
        del os.environ["BENTOML_HOME"]
    port = _free_port()
    log = open(tmp / "serve.log", "wb")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "bentoml"), "serve", "--host", "127.0.0.1",
                             "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("bentoml serve exited:\n" + (tmp / "serve.log").read_text()[-3000:])
        try:
            if requests.get(f"{url}/readyz", timeout=5).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(1)
    else:
        os.killpg(proc.pid, signal.SIGTERM)
        raise RuntimeError("bentoml serve did not become ready:\n" + (tmp / "serve.log").read_text()[-3000:])
    yield {"url": url, "tmp": tmp, "proc": proc}
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()


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
    assert info["labels"][3] == "happy" and info["version"] == "test" and info["preprocessing"]["n_frames"] == 8


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


def test_real_footage_reads_crying_then_laughing(service):
    clip = REAL_FACES / "cry_then_laugh.mp4"
    if not clip.is_file():
        pytest.skip("real footage missing: run `make assets`")
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
        "binary transcript": (400, "UTF-8", {"files": {"video": ("a.mp4", data), "transcript": ("t.srt", b"\xff\xfe\xfa")}}),
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
