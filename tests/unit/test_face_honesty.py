"""Face honesty: no face invented where there is none, unreadable faces said to be so, small faces still read.

Real inputs: a colour wheel drawn here, the frames of the project's own title sequence with no person
(`no_face.mp4`, from `make assets`), a real photo, and a real (tiny) model analysing still clips."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.conftest import PRETRAINED, REAL_FACES, fer_bundle, require_assets
from video_emotion.config import PreprocessConfig
from video_emotion.features.blazeface import Detection
from video_emotion.features.faces import FacePath, save_face_models
from video_emotion.features.quality import FaceQuality, face_quality, head_pose, plausible
from video_emotion.features.stills import still_clip
from video_emotion.features.tracking import FaceTracker
from video_emotion.features.video import iter_frames, probe
from video_emotion.inference.readability import is_unreadable, readable_mask, unreadable_segment
from video_emotion.inference.summary import csv_rows, summarize
from video_emotion.inference.windows import Window
from video_emotion.labels import LABELS


@pytest.fixture(scope="module")
def path() -> FacePath:
    require_assets()
    return FacePath(PreprocessConfig(), PRETRAINED.parent)


def colour_wheel(size: int = 360) -> np.ndarray:
    """Hue by angle, saturation in five rings, on grey: the kind of picture a detector alone calls a face."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - (size - 1) / 2
    r, ang = np.hypot(xx, yy) / (size / 2), (np.degrees(np.arctan2(yy, xx)) + 360) % 360
    sat = np.clip(np.floor(np.clip(r, 0, 1) * 5) / 5 + 0.2, 0, 1)
    img = cv2.cvtColor(np.stack([ang / 2, sat * 255, np.full_like(r, 255)], -1).astype(np.uint8), cv2.COLOR_HSV2BGR)
    img[r > 1] = 128
    frame = np.full((360, 640, 3), 128, np.uint8)
    frame[:, 140:500] = img
    return frame


def small_face_frame(side: int = 48) -> np.ndarray:
    """A real face cut to a tight `side` px grey crop (as CK+'s 48x48), enlarged to 192 px with bicubic
    interpolation and padded into a 640x360 frame: how a checker shows a small photo as a video frame."""
    photo = cv2.imread(str(REAL_FACES / "posed_happy.jpg"))
    d = FacePath(PreprocessConfig(), PRETRAINED.parent).detect(photo)[0]
    x, y, w, h = d.int_box(photo.shape[1], photo.shape[0])
    tight = cv2.resize(cv2.cvtColor(photo[y:y + h, x:x + w], cv2.COLOR_BGR2GRAY), (side, side),
                       interpolation=cv2.INTER_AREA)
    big = cv2.resize(tight, (192, 192), interpolation=cv2.INTER_CUBIC)
    frame = np.full((360, 640), int(np.median(big)), np.uint8)
    frame[84:276, 224:416] = big
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)


def test_a_colour_wheel_is_not_a_face(path):
    frame = colour_wheel()
    assert path.detect(frame), "the detector alone fires on this wheel: the gate is what keeps it out"
    assert path.new_faces(frame) == [] and path.read(frame)[1] is None


def test_the_title_sequence_without_a_person_has_no_face_in_any_frame(path):
    clip = REAL_FACES / "no_face.mp4"
    frames = list(iter_frames(clip, range(60, probe(clip).n_frames)))  # its last 1.6 s: clouds, letters, a title
    assert sum(bool(path.detect(f)) for _, f in frames) >= 3  # clouds and letters the detector alone takes for faces
    assert not any(path.new_faces(f) for _, f in frames)
    tracker = FaceTracker(path, 3, max_gap=8)
    assert not any(tracker(f)[1] for _, f in frames)


def test_real_faces_pass_the_gate_and_are_readable(path):
    for name in ("posed_happy.jpg", "posed_angry.jpg", "posed_surprise.jpg", "posed_disgust.jpg"):
        frame = cv2.imread(str(REAL_FACES / name))
        found = path.new_faces(frame)
        assert found, name
        q = path.quality(frame, found[0], path.crop(frame, found[0]))
        assert q.readable and q.size_px > 80, (name, q)
        assert abs(q.yaw_deg) < 30 or name == "posed_disgust.jpg", (name, q)  # that one turns ~60 degrees away


def test_a_48_px_face_enlarged_is_found_and_read(path):
    frame = small_face_frame(48)
    crop, face = path.read(frame)
    assert face is not None
    q = path.quality(frame, face, crop)
    assert q.readable, q


def tiny_face_frame(face_px: int = 20, size: tuple[int, int] = (320, 180)) -> np.ndarray:
    """The real posed_happy.jpg shrunk so that its face is about `face_px` wide, centred in a frame of `size`
    (a low-resolution clip: 320x180)."""
    photo = cv2.imread(str(REAL_FACES / "posed_happy.jpg"))
    small = cv2.resize(photo, None, fx=face_px / 310, fy=face_px / 310, interpolation=cv2.INTER_AREA)  # face: 310 px
    W, H = size
    frame = np.full((H, W, 3), 120, np.uint8)
    y0, x0 = (H - small.shape[0]) // 2, (W - small.shape[1]) // 2
    frame[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
    return frame


def test_a_tiny_face_in_a_small_frame_is_found_but_too_small_to_read(path):
    """"too small" on the default path: a face keeps only when it is at least `min_face_frac` (0.1) of the short
    side, so a face under 24 px reaches the size check in frames under 240 px high, as in a 320x180 clip."""
    frame = tiny_face_frame(20)
    found = path.new_faces(frame)
    assert len(found) == 1 and found[0].box[2] < 24
    q = path.quality(frame, found[0], path.crop(frame, found[0]))
    assert not q.readable and q.reason == "too small" and q.size_px < 24 and q.sharpness > 3.5
    tracker = FaceTracker(path, 1, max_gap=8)
    flags, quality = [], []
    for _ in range(4):
        flags.append(tracker(frame)[1])
        quality.append(tracker.quality)
    assert all(flags) and all(not q.readable and q.reason == "too small" for q in quality)
    w = Window(0.0, 2.0, np.zeros((4, 8, 8), np.uint8), np.array(flags), quality=quality)
    assert is_unreadable(w) and unreadable_segment(w)["quality"]["unreadable_because"] == ["too small"]
    # the same face in a frame 360 px high is under a tenth of its height: not a face of the video at all
    assert path.new_faces(tiny_face_frame(20, (640, 360))) == []


def test_the_score_is_reported_not_checked(path):
    """The detector's own thresholds are the score floor (0.5 short range, 0.6 full range): what it reports, even
    on clouds it takes for faces, scores at least 0.5, so a read floor at 0.5 could never fire. A face's
    quality carries its score and is not made unreadable by it."""
    clip = REAL_FACES / "no_face.mp4"
    scores = [d.score for _, f in iter_frames(clip, range(60, probe(clip).n_frames)) for d in path.detect(f)]
    assert scores and min(scores) >= 0.5
    crop = cv2.imread(str(REAL_FACES / "posed_happy.jpg"), cv2.IMREAD_GRAYSCALE)[100:300, 150:350]
    low = Detection((50.0, 60.0, 100.0, 100.0), 0.3, _det(0).keypoints)
    q = face_quality(low, crop)
    assert q.readable and q.score == pytest.approx(0.3)


def test_a_smeared_face_is_detected_but_unreadable(path):
    frame = cv2.GaussianBlur(cv2.imread(str(REAL_FACES / "posed_happy.jpg")), (0, 0), 22)  # the face: ~300 px
    found = path.detect(frame)
    assert found
    q = path.quality(frame, found[0], path.crop(frame, found[0]))
    assert not q.readable and "blurred" in q.reason


def _det(nose_dx: float, mouth_dy: float = 40.0) -> Detection:
    kp = np.array([[80, 100], [120, 100], [100 + nose_dx, 120], [100, 100 + mouth_dy], [60, 105], [140, 105]],
                  np.float32)
    return Detection((50.0, 60.0, 100.0, 100.0), 0.9, kp)


def test_head_turn_and_plausible_keypoints_from_geometry():
    assert abs(head_pose(_det(0))[0]) < 1
    assert 40 < head_pose(_det(14))[0] < 50 and head_pose(_det(-50))[0] < -70  # nose_x = 0.35 tan(yaw)
    assert plausible(_det(0)) and not plausible(_det(0, mouth_dy=-30))  # a mouth above the eyes is no face
    crop = cv2.imread(str(REAL_FACES / "posed_happy.jpg"), cv2.IMREAD_GRAYSCALE)[100:300, 150:350]
    assert face_quality(_det(0), crop).readable
    turned = face_quality(_det(-50), crop)
    assert not turned.readable and turned.reason == "turned away"


def _window(face: list[bool], readable: list[bool]) -> Window:
    q = [FaceQuality(0.9, 100, 6.0, 0.0, 0.0, r, "" if r else "blurred") if f else None
         for f, r in zip(face, readable, strict=True)]
    return Window(0.0, 2.0, np.zeros((len(face), 8, 8), np.uint8), np.array(face), quality=q)


def test_the_quality_gate_of_a_window():
    assert not is_unreadable(_window([True] * 4, [True, True, False, False]))  # half readable: read them
    w = _window([True, True, True, False], [True, False, False, False])
    assert is_unreadable(w) and readable_mask(w).tolist() == [True, False, False, False]
    assert not is_unreadable(_window([False] * 4, [False] * 4))  # no face is not an unreadable face
    seg = unreadable_segment(w)
    assert seg["unreadable"] and seg["emotion"] is None and seg["quality"]["unreadable_because"] == ["blurred"]


def test_unreadable_windows_do_not_vote_in_the_summary():
    p = dict.fromkeys(LABELS, 0.0) | {"happy": 1.0}
    read = {"start_s": 0.0, "end_s": 2.0, "emotion": "happy", "confidence": 1.0, "probabilities": p, "valence": 0.8,
            "arousal": 0.5, "sentiment": "positive", "unreadable": False}
    bad = unreadable_segment(_window([True] * 4, [False] * 4)) | {"start_s": 2.0, "end_s": 6.0}
    s = summarize([read, bad], list(LABELS))
    assert s["dominant_emotion"] == "happy" and s["distribution"]["happy"] == 1.0 and s["unreadable_s"] == 4.0
    only = summarize([bad], list(LABELS))
    assert only["dominant_emotion"] is None and "none could be read" in only["note"]
    rows = csv_rows({"video": "v", "model": {"labels": list(LABELS)}, "timeline": [read, bad]})
    assert rows[1]["unreadable"] and rows[1]["emotion"] is None and rows[1]["p_happy"] is None


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, fer_model):
    """A tiny real model on the default face path (BlazeFace, eyes levelled), its detector in the bundle."""
    from video_emotion.inference.bundle import ModelBundle

    cfg = PreprocessConfig()
    d = fer_bundle(fer_model, tmp_path_factory.mktemp("bundle"), face_margin=cfg.face_margin,
                   face_offset=cfg.face_offset, align=cfg.align, detector="blazeface", min_face_frac=cfg.min_face_frac)
    save_face_models(cfg, PRETRAINED.parent, d)
    return ModelBundle.load(d)


@pytest.mark.slow
def test_analysis_reports_no_face_on_a_colour_wheel_and_reads_a_small_face(bundle, tmp_path):
    from video_emotion.inference.analyze import analyze_video

    wheel = analyze_video(still_clip(colour_wheel(), tmp_path / "wheel.mkv"), bundle, transcribe="off")
    assert not wheel["faces_detected"] and wheel["timeline"] == [] and wheel["summary"]["dominant_emotion"] is None
    small = analyze_video(still_clip(small_face_frame(), tmp_path / "small.mkv"), bundle, transcribe="off")
    assert small["faces_detected"] and small["timeline"]
    assert all(not s["unreadable"] and s["emotion"] in LABELS and s["quality"]["readable_frames"] > 0
               for s in small["timeline"])


@pytest.mark.slow
def test_analysis_marks_a_face_going_out_of_focus_unreadable_but_found(bundle, tmp_path):
    """A face seen sharp for a second, then smeared for two (focus lost): still followed, so still found,
    but those windows are unreadable and leave the summary to the sharp second."""
    from tests.conftest import write_video
    from video_emotion.inference.analyze import analyze_video

    sharp = cv2.resize(cv2.imread(str(REAL_FACES / "posed_happy.jpg")), (360, 360))
    frame = np.full((360, 640, 3), 120, np.uint8)
    frame[:, 140:500] = sharp
    smeared = cv2.GaussianBlur(frame, (0, 0), 16)
    clip = write_video(tmp_path / "focus.avi", [frame] * 8 + [smeared] * 16, fps=8.0, fourcc="MJPG")
    res = analyze_video(clip, bundle, transcribe="off")
    assert res["faces_detected"] and len(res["timeline"]) == 3
    first, *later = sorted(res["timeline"], key=lambda s: s["start_s"])
    assert not first["unreadable"] and first["emotion"] in LABELS
    assert all(s["unreadable"] and s["emotion"] is None and s["quality"]["face_frames"] > 0 for s in later)
    assert res["summary"]["dominant_emotion"] == first["emotion"] and res["summary"]["unreadable_s"] > 1.5
    still = analyze_video(still_clip(cv2.GaussianBlur(frame, (0, 0), 13), tmp_path / "soft.mkv"), bundle,
                          transcribe="off")  # a soft face alone: sure enough to be a face, too soft to read
    assert still["faces_detected"] and all(s["unreadable"] for s in still["timeline"])
    assert still["summary"]["dominant_emotion"] is None and "none could be read" in still["summary"]["note"]
