"""The live reader on real footage: the face path's tracker follows the face from frame to frame, each
frame is read as the model's window ending there, the frame-by-frame export reads exactly what the
whole-window model reads, and a session ends as an analysis result of the same contract as a file's."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.slow
T = 16


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, pretrained, exported_model):
    """A bundle as training writes it (pretrained network, BlazeFace face path, the exports with the
    frame-by-frame parts); its head is untrained, so its readings are the pretrained network's."""
    import shutil

    from video_emotion.config import PreprocessConfig
    from video_emotion.features.faces import save_face_models
    from video_emotion.inference.bundle import ModelBundle
    from video_emotion.labels import LABELS

    d = tmp_path_factory.mktemp("live-bundle") / "bundle"
    shutil.copytree(exported_model, d)  # T = 16 frames
    prep = PreprocessConfig(n_frames=T, image_size=112)
    save_face_models(prep, pretrained.parent, d)
    (d / "preprocessing.json").write_text(json.dumps(
        {"labels": list(LABELS), "window_s": 2.0, "model": {"modalities": ["video"]},
         **{k: getattr(prep, k) for k in prep.__dataclass_fields__}}))
    return ModelBundle.load(d, {"name": "live-test", "version": "1"})


def _frames(clip: Path, start_s: float, n: int, fps: float = 8.0) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(clip))
    rate = cap.get(cv2.CAP_PROP_FPS)
    frames, i, out = [], 0, []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    for k in range(n):
        i = int((start_s + k / fps) * rate)
        out.append(frames[min(i, len(frames) - 1)])
    return out


def test_a_laughing_face_is_tracked_and_read_happy_frame_by_frame(bundle, real_faces):
    from video_emotion.inference.live import LiveReader

    reader = LiveReader(bundle, lang="zh")
    assert reader.parts is not None
    frames = _frames(real_faces / "cry_then_laugh.mp4", 12.0, 24)
    readings = [reader.read(f, k / 8) for k, f in enumerate(frames)]
    assert all(len(r["faces"]) == 1 for r in readings)
    assert {r["faces"][0]["track"] for r in readings} == {0}  # one track from start to end
    h, w = frames[0].shape[:2]
    for r in readings:
        face = r["faces"][0]
        x, y, bw, bh = face["box"]
        assert 0 <= x < w and 0 <= y < h and bw > 50 and face["primary"]
        assert abs(sum(face["probabilities"].values()) - 1) < 1e-3
        assert set(face) >= {"emotion", "confidence", "valence", "quality", "unreadable", "window_frames"}
        assert face["quality"]["score"] > 0.5 and face["quality"]["readable"] and not face["unreadable"]
    # The window fills as frames arrive (masked before the track began), then holds T frames.
    assert [r["faces"][0]["window_frames"] for r in readings[:3]] == [1, 2, 3]
    assert readings[-1]["faces"][0]["window_frames"] == T
    assert readings[-1]["state"]["emotion"] == "happy" and readings[-1]["state"]["emotion_label"] == "高兴"
    res = reader.result()
    assert res["faces_detected"] and res["summary"]["dominant_emotion"] == "happy"
    assert len(res["timeline"]) == 24 and res["frames_analysed"] == 24 and abs(res["duration_s"] - 23 / 8) < 1e-6
    ends = [s["end_s"] for s in res["timeline"]]
    assert [s["start_s"] for s in res["timeline"][1:]] == ends[:-1]  # contiguous, as a file's timeline
    assert res["label_names"]["happy"] == "高兴" and len(res["faces"]) == 1


def test_frame_by_frame_parts_read_what_the_whole_window_reads(bundle, real_faces):
    from video_emotion.inference.live import LiveReader

    frames = _frames(real_faces / "cry_then_laugh.mp4", 2.0, 20)
    fast, whole = LiveReader(bundle), LiveReader(bundle)
    whole.parts = None  # every frame's whole window through the model at each reading, no features kept
    for k, f in enumerate(frames):
        a, b = fast.read(f, k / 8), whole.read(f, k / 8)
        pa, pb = a["faces"][0]["probabilities"], b["faces"][0]["probabilities"]
        assert max(abs(pa[lab] - pb[lab]) for lab in pa) < 1e-3


def test_no_face_means_no_reading_and_no_state(bundle):
    from video_emotion.inference.live import LiveReader

    reader = LiveReader(bundle)
    for k in range(6):
        r = reader.read(np.full((480, 640, 3), 90 + 5 * k, np.uint8), k / 8)
        assert r["faces"] == [] and r["state"] is None
    res = reader.result()
    assert not res["faces_detected"] and res["timeline"] == [] and res["summary"]["dominant_emotion"] is None
    assert res["no_face_segments"] == [{"start_s": 0.0, "end_s": 0.625}]
