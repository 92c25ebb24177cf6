"""The pipelined analysis against the sequential one, on real footage: every field of the result is the
same. Where the decoder path differs (Motion JPEG read as packets and decoded by libjpeg) or the face
detector's runtime does (LiteRT against OpenCV DNN), the stated tolerances of docs/speed.md hold; H.264 with
its unsampled non-reference frames left undecoded gives the full decode's result, field for field."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from video_emotion.features.audio import ffmpeg_exe
from video_emotion.features.blazeface import BlazeFaceDetector
from video_emotion.inference.analyze import AnalysisStopped, ModelBundle, analyze_video
from video_emotion.inference.lite_parts import LiteParts, distinct
from video_emotion.inference.windows import iter_windows

ROOT = Path(__file__).resolve().parents[2]
PRETRAINED_DIR = ROOT / "models" / "pretrained"
# docs/speed.md: Motion JPEG decoded by libjpeg instead of FFmpeg (pixels 0.6 levels apart on average)
# changes a window's probabilities by at most this much, and never which frames, faces or windows there are.
MJPEG_PROB_TOL = 0.1


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, exported_model) -> ModelBundle:
    """The default design (face-api.js network, attention head, 16 frames per 2 s window) with BlazeFace,
    with the exports training writes (the per-frame CNN and the head apart; no whole graph)."""
    import shutil

    from video_emotion.config import PreprocessConfig
    from video_emotion.features.faces import save_face_models
    from video_emotion.labels import LABELS

    d = tmp_path_factory.mktemp("bundle") / "bundle"
    shutil.copytree(exported_model, d)
    settings = {"labels": list(LABELS), "n_frames": 16, "image_size": 112, "detector": "blazeface",
                "face_margin": 0.05, "align": True, "min_face_frac": 0.1, "detect_every": 1, "denoise": False,
                "equalize": False, "window_s": 2.0}
    (d / "preprocessing.json").write_text(json.dumps(settings))
    save_face_models(PreprocessConfig.from_saved(settings), PRETRAINED_DIR, d)
    b = ModelBundle.load(d)
    b.warm_up()
    assert isinstance(b._predictor, LiteParts)
    return b


@pytest.fixture(scope="module")
def mjpeg(tmp_path_factory, real_faces) -> Path:
    out = tmp_path_factory.mktemp("mjpeg") / "cry_then_laugh.avi"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(real_faces / "cry_then_laugh.mp4"), "-an", "-c:v", "mjpeg",
                    "-q:v", "3", "-pix_fmt", "yuvj420p", str(out)], check=True, timeout=120)
    return out


def _analyze(clip: Path, bundle: ModelBundle, **kw) -> dict:
    return analyze_video(clip, bundle, transcribe="off", **kw)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cry_then_laugh.mp4", "single_face.mp4", "no_face.mp4", "mjpeg"])
@pytest.mark.parametrize("sample_fps", [None, 4.0])
def test_pipelined_result_is_the_sequential_result_field_for_field(bundle, real_faces, mjpeg, name, sample_fps):
    clip = mjpeg if name == "mjpeg" else real_faces / name
    piped = _analyze(clip, bundle, sample_fps=sample_fps, pipeline=True)
    assert piped == _analyze(clip, bundle, sample_fps=sample_fps, pipeline=False)
    assert piped["frames_analysed"] > 0 and piped["timeline"] + piped["no_face_segments"]


@pytest.mark.slow
@pytest.mark.parametrize("sample_fps", [None, 4.0])
def test_motion_jpeg_read_as_packets_stays_within_the_stated_tolerance(bundle, mjpeg, sample_fps):
    fast = _analyze(mjpeg, bundle, sample_fps=sample_fps, decoder="auto")
    ref = _analyze(mjpeg, bundle, sample_fps=sample_fps, decoder="ffmpeg")
    for key in ("duration_s", "fps", "frames_analysed", "faces_detected", "no_face_segments"):
        assert fast[key] == ref[key], key
    spans = [[(s["start_s"], s["end_s"]) for s in r["timeline"]] for r in (fast, ref)]
    assert spans[0] == spans[1]
    diffs = [abs(a["probabilities"][k] - b["probabilities"][k])
             for a, b in zip(fast["timeline"], ref["timeline"], strict=True) for k in a["probabilities"]]
    assert max(diffs) <= MJPEG_PROB_TOL
    assert len(fast["faces"]) == len(ref["faces"])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cry_then_laugh.mp4", "single_face.mp4", "no_face.mp4"])
@pytest.mark.parametrize("sample_fps", [None, 4.0])
def test_h264_with_unsampled_frames_left_undecoded_is_the_full_decodes_result(bundle, real_faces, name, sample_fps):
    """PyAV leaving the unsampled non-reference frames undecoded (`features.avreader`): every field equal."""
    clip = real_faces / name
    fast = _analyze(clip, bundle, sample_fps=sample_fps, decoder="auto")
    assert fast == _analyze(clip, bundle, sample_fps=sample_fps, decoder="ffmpeg")
    assert fast["frames_analysed"] > 0


def test_blazeface_on_litert_finds_what_opencv_dnn_finds(real_faces):
    lite = BlazeFaceDetector("auto", PRETRAINED_DIR, runtime="litert")
    dnn = BlazeFaceDetector("auto", PRETRAINED_DIR, runtime="opencv")
    cap = cv2.VideoCapture(str(real_faces / "cry_then_laugh.mp4"))
    frames = [cap.read()[1] for _ in range(120)][::6]
    cap.release()
    for frame in frames:
        a, b = lite.detections(frame), dnn.detections(frame)
        assert len(a) == len(b) >= 1
        for x, y in zip(a, b, strict=True):
            assert np.abs(np.subtract(x.box, y.box)).max() < 0.05  # pixels
            assert np.abs(x.keypoints - y.keypoints).max() < 0.05 and abs(x.score - y.score) < 1e-3


@pytest.mark.slow
def test_a_stopped_analysis_leaves_no_pipeline_thread_behind(bundle, real_faces):
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 1

    with pytest.raises(AnalysisStopped):
        _analyze(real_faces / "cry_then_laugh.mp4", bundle, sample_fps=8.0, should_stop=stop)
    assert not [t for t in threading.enumerate() if t.name in ("decode", "detect", "faces")]


@pytest.mark.slow
@pytest.mark.parametrize("sample_fps", [4.0, 8.0, 24.0])
def test_the_model_in_two_parts_reads_every_window_as_the_whole_graph(bundle, real_faces, sample_fps):
    """The CNN once per distinct crop, then the head: the whole Keras model's probabilities on real windows
    (at 4 fps each crop appears twice in a window, at 24 fps interleaved windows share crops)."""
    windows = list(iter_windows(real_faces / "cry_then_laugh.mp4", bundle, sample_fps))[:12]
    inputs = {"frames": np.stack([w.crops for w in windows]), "mask": np.stack([w.face for w in windows]).astype("f4")}
    whole = bundle.model.predict(inputs, batch_size=len(windows), verbose=0)  # the Keras model, whole windows
    parts = bundle._predictor(inputs)
    assert parts.shape == whole.shape and np.abs(parts - whole).max() <= 1e-5
    unique, inverse = distinct(inputs["frames"].reshape(-1, 112, 112))
    assert np.array_equal(unique[inverse], inputs["frames"].reshape(-1, 112, 112))
    if sample_fps == 4.0:
        assert len(unique) * 2 <= inverse.size  # each crop twice (thrice in a short last window): half the CNN's work
