"""A real `bentoml serve` on 127.0.0.1: contract, auth, every bad input, and that it keeps answering."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.conftest import write_video
from tests.integration.conftest import GOOD

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
