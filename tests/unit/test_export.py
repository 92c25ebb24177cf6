"""The inference exports (TFLite on LiteRT, SavedModel) predict what the Keras model predicts; bundles
without them still load; analysis of an exported bundle loads neither TensorFlow nor Keras."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from video_emotion.config import ModelConfig
from video_emotion.labels import LABELS

N_FRAMES, SIZE = 5, 16


def make_bundle(folder: Path, n_frames: int = N_FRAMES, seed: int = 0, formats: tuple[str, ...] | None = None,
                cfg: ModelConfig | None = None) -> Path:
    """A real (untrained, seeded) CNN + BiLSTM + attention bundle, small enough to build in seconds. With
    `cfg` (the design's settings) exported as training exports it, which may split it into parts."""
    import keras

    from video_emotion.modeling.export import export_inference
    from video_emotion.modeling.model import build_model

    keras.utils.set_random_seed(seed)
    model = build_model(cfg or ModelConfig(init="scratch", lstm_units=4), n_frames, SIZE)
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    settings = {"labels": list(LABELS), "n_frames": n_frames, "image_size": SIZE, "window_s": 1.0,
                "detector": "blazeface", "model": {"modalities": ["video"]}}
    (folder / "preprocessing.json").write_text(json.dumps(settings))
    export_inference(model, folder, formats, cfg=cfg)  # None: what training writes
    return folder


def inputs(n: int = 6, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = (rng.random((n, N_FRAMES)) > 0.3).astype("float32")
    mask[0] = 1
    mask[1, 2:] = 0  # a window whose face was lost after two frames
    return {"frames": rng.integers(0, 256, (n, N_FRAMES, SIZE, SIZE)).astype("float32"), "mask": mask}


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("export") / "bundle", formats=("lite", "graph"))


def test_export_writes_the_graphs_asked_for(bundle_dir):
    info = json.loads((bundle_dir / "export.json").read_text())
    assert info["lite"] == "model.tflite" and info["graph"] == "graph"
    assert info["inputs"] == {"frames": [N_FRAMES, SIZE, SIZE], "mask": [N_FRAMES]}
    assert (bundle_dir / "model.tflite").stat().st_size > 10_000
    assert (bundle_dir / "graph" / "saved_model.pb").is_file()


@pytest.mark.parametrize("flip_average", [False, True])
def test_training_writes_the_parts_where_the_model_splits_and_the_whole_graph_where_not(tmp_path, flip_average):
    """A design read frame by frame gets `frame.tflite` + `head.tflite` and no whole graph (nothing would read
    it); mirror averaging cannot be split, so that design gets `model.tflite`. Either predicts what Keras does."""
    from video_emotion.inference.bundle import ModelBundle
    from video_emotion.inference.lite_parts import LiteGraph, LiteParts

    cfg = ModelConfig(init="scratch", lstm_units=4, flip_average=flip_average)
    folder = make_bundle(tmp_path / "bundle", cfg=cfg)
    info = json.loads((folder / "export.json").read_text())
    assert info["graph"] is None and not (folder / "graph").exists()
    if flip_average:
        assert info["parts"] is None and info["lite"] == "model.tflite" and not (folder / "frame.tflite").exists()
    else:
        assert info["lite"] is None and not (folder / "model.tflite").exists()
        assert info["parts"]["frame"] == "frame.tflite" and (folder / "head.tflite").is_file()
    x = inputs(6)
    bundle = ModelBundle.load(folder)
    assert bundle.runtime == "litert" and isinstance(bundle._predictor, LiteGraph if flip_average else LiteParts)
    np.testing.assert_allclose(bundle.predict_inputs(x), ModelBundle.load(folder, runtime="keras").predict_inputs(x),
                               atol=1e-5)


@pytest.mark.parametrize("runtime", ["litert", "savedmodel"])
def test_exported_graph_predicts_what_keras_predicts(bundle_dir, runtime):
    from video_emotion.inference.bundle import ModelBundle

    x = inputs(6)  # 6 windows: LiteRT runs a fixed batch of 4, so the second batch is padded
    reference = ModelBundle.load(bundle_dir, runtime="keras").predict_inputs(x)
    exported = ModelBundle.load(bundle_dir, runtime=runtime)
    assert exported.runtime == runtime and exported._keras is None  # no Keras model resident beside it
    got = exported.predict_inputs(x)
    assert got.shape == (6, len(LABELS))
    np.testing.assert_allclose(got, reference, atol=1e-5)
    # Batches cut differently give the same rows (padding never leaks into real windows).
    np.testing.assert_allclose(exported.predict_inputs(x, batch_size=1), reference, atol=1e-5)


def test_auto_prefers_litert_and_old_bundles_still_load(bundle_dir, tmp_path):
    from video_emotion.inference.bundle import ModelBundle

    assert ModelBundle.load(bundle_dir).runtime == "litert"
    old = tmp_path / "old"
    old.mkdir()
    for name in ("model.keras", "preprocessing.json"):  # a bundle from before the export
        shutil.copy2(bundle_dir / name, old / name)
    legacy = ModelBundle.load(old, background=True)
    assert legacy.runtime == "keras" and legacy.input_shapes == {"frames": (N_FRAMES, SIZE, SIZE), "mask": (N_FRAMES,)}
    x = inputs(3)
    np.testing.assert_allclose(legacy.predict_inputs(x), ModelBundle.load(bundle_dir).predict_inputs(x), atol=1e-5)
    with pytest.raises(FileNotFoundError, match="litert"):
        ModelBundle.load(old, runtime="litert")


def test_a_broken_export_fails_where_prediction_needs_it(bundle_dir, tmp_path):
    from video_emotion.inference.bundle import ModelBundle, ModelLoadError

    broken = tmp_path / "broken"
    shutil.copytree(bundle_dir, broken)
    (broken / "model.tflite").write_bytes(b"not a flatbuffer" * 64)
    bundle = ModelBundle.load(broken, background=True)  # returns at once; the load fails on its thread
    assert bundle.n_frames == N_FRAMES and bundle.labels == list(LABELS)
    with pytest.raises(ModelLoadError, match="broken"):
        bundle.predict_inputs(inputs(2))


def test_exported_bundle_runs_without_tensorflow_keras_or_mlflow(bundle_dir):
    """The whole point of the export: a fresh process predicts with LiteRT alone."""
    code = (
        "import sys, json, numpy as np\n"
        "from video_emotion.inference.bundle import ModelBundle\n"
        f"b = ModelBundle.load({str(bundle_dir)!r})\n"
        f"p = b.predict_inputs({{'frames': np.zeros((2, {N_FRAMES}, {SIZE}, {SIZE}), np.float32),"
        f" 'mask': np.ones((2, {N_FRAMES}), np.float32)}})\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'mlflow', 'pandas', 'scipy', "
        "'matplotlib'})\n"
        "print(json.dumps({'runtime': b.runtime, 'sum': float(p.sum()), 'heavy': heavy}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, timeout=120)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["runtime"] == "litert" and abs(res["sum"] - 2.0) < 1e-4
    assert res["heavy"] == []
