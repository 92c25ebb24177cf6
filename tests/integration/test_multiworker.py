"""`train.strategy: multiworker`: two workers on 127.0.0.1 (Ray actors on a local Ray, started and stopped
here) train the model with MultiWorkerMirroredStrategy for one epoch; the model is saved once and loads."""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def _split(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    y = np.arange(n) % 7
    X = rng.integers(0, 255, (n, 6, 64, 64), dtype=np.uint8)
    X[:, :, 20:44, 20:44] = (y * 30)[:, None, None, None]  # a learnable difference between the classes
    return {"X": X, "face": np.ones((n, 6), bool), "detected": np.ones((n, 6), bool), "y": y.astype(np.int64),
            "actor": np.array([f"a{i % 3}" for i in range(n)]), "path": np.array([f"c{i}.mp4" for i in range(n)]),
            "sha256": np.array([f"{i:064x}" for i in range(n)])}


def test_two_workers_train_one_epoch_and_the_model_is_saved_once(ray_local, tmp_path, caplog):
    from video_emotion.config import ModelConfig, TrainConfig
    from video_emotion.inference.bundle import ModelBundle
    from video_emotion.labels import LABELS
    from video_emotion.stages import train

    processed = tmp_path / "processed"
    processed.mkdir()
    rng = np.random.default_rng(0)
    np.savez(processed / "train.npz", **_split(28, rng))
    np.savez(processed / "val.npz", **_split(14, rng))
    settings = {"labels": list(LABELS), "n_frames": 6, "image_size": 64, "face_margin": 0.12, "min_face_frac": 0.2,
                "detect_every": 1, "denoise": False, "equalize": False, "audio": False, "window_s": 1.0}
    (processed / "preprocessing.json").write_text(json.dumps(settings))
    cfg = dataclasses.replace(TrainConfig(), epochs=1, batch_size=8, strategy="multiworker", workers=2)
    model_dir = tmp_path / "model"
    with caplog.at_level(logging.INFO, logger="video_emotion.train"):
        # A small CNN from scratch: tracing the distributed step of the pretrained one costs a minute here.
        result = train.run(ModelConfig(init="scratch", lstm_units=8, bidirectional=False), cfg, processed, model_dir,
                           None)
    assert "2 workers: 127.0.0.1:" in caplog.text
    assert result["metrics"]["workers"] == 2 and result["metrics"]["epochs_run"] == 1
    assert len(result["history"]["loss"]) == 1 and np.isfinite(result["history"]["val_loss"][0])
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.keras")) == ["model/model.keras"]
    bundle = ModelBundle.load(model_dir)
    probs = bundle.predict(_split(4, rng)["X"], np.ones((4, 6), np.float32))
    assert probs.shape == (4, 7) and np.allclose(probs.sum(1), 1, atol=1e-4)
