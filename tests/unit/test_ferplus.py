"""FER+ fine-tuning: the data adapter (both layouts, the majority rule, vote distributions), the network written
back in face-api.js's format (read by the product exactly as the classifier reads it), and the stage (nothing
heavy without FER+; on a tiny FER+-style folder of real faces: a network the product loads, figures, a card)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from tests.conftest import PRETRAINED, REAL_FACES, require_assets, tiny_params_dict
from video_emotion.data.ferplus import _ORDER, CLASSES8, load_split, majority

# FER+ vote order: neutral happiness surprise sadness anger disgust fear contempt unknown NF
VOTES = {
    "happy": [0, 9, 1, 0, 0, 0, 0, 0, 0, 0], "surprise": [1, 0, 7, 0, 0, 0, 2, 0, 0, 0],
    "angry": [0, 0, 0, 1, 6, 3, 0, 0, 0, 0], "disgust": [0, 0, 0, 0, 3, 5, 0, 2, 0, 0],
}


def fer_folder(root: Path, layout: str = "manifest") -> Path:
    """A FER+-style folder of tight 48x48 grey crops of the real posed photos (and shifted, mirrored copies)."""
    from video_emotion.config import PreprocessConfig
    from video_emotion.features.faces import FacePath

    faces = FacePath(PreprocessConfig(), PRETRAINED.parent)
    rows = []
    for split, folder, variants in (("train", "FER2013Train", 4), ("valid", "FER2013Valid", 1),
                                    ("test", "FER2013Test", 1)):
        (root / "data" / folder).mkdir(parents=True)
        for label, votes in VOTES.items():
            photo = cv2.imread(str(REAL_FACES / f"posed_{label}.jpg"))
            x, y, w, h = faces.detect(photo)[0].int_box(photo.shape[1], photo.shape[0])
            grey = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
            for k in range(variants):
                d = (k % 2) * w // 12
                crop = cv2.resize(grey[y + d:y + h + d, x:x + w], (48, 48), interpolation=cv2.INTER_AREA)
                name = f"{label}{k}-{split}.png"
                cv2.imwrite(str(root / "data" / folder / name), crop[:, ::-1] if k >= 2 else crop)
                rows.append((split, folder, name, votes))
    if layout == "manifest":
        with open(root / "manifest.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["path", "label", "split", "votes"])
            w.writerows([f"data/{f}/{n}", "", s, " ".join(map(str, v))] for s, f, n, v in rows)
    else:
        for split, folder in (("train", "FER2013Train"), ("valid", "FER2013Valid"), ("test", "FER2013Test")):
            with open(root / "data" / folder / "label.csv", "w", newline="") as fh:
                csv.writer(fh).writerows([n, "(0, 0, 48, 48)", *v] for s, _, n, v in rows if s == split)
    return root


def test_majority_rule_and_distributions(tmp_path):
    v = np.array([[0, 9, 1, 0, 0, 0, 0, 0, 0, 0], [5, 5, 0, 0, 0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0, 6, 3],
                  [0, 0, 0, 0, 0, 0, 0, 6, 4, 0]])
    require_assets()
    split = load_split(fer_folder(tmp_path, "label.csv"), "train")
    assert len(split.paths) == 16 and split.votes.shape == (16, 10)
    assert [CLASSES8[i] for i in split.label[::4]] == list(VOTES)  # FER+ order moved to the project's
    # the same rows through majority() after reordering: happiness majority, a tie, unknown, contempt
    reordered = _ORDER
    moved = np.zeros_like(v)
    moved[:, reordered] = v
    assert majority(moved).tolist() == [CLASSES8.index("happy"), -1, -1, CLASSES8.index("contempt")]
    dist = split.distribution()
    assert np.allclose(dist.sum(1), 1.0) and dist[0, CLASSES8.index("surprise")] == pytest.approx(0.1)
    assert split.trainable.all()


def test_both_layouts_read_alike(tmp_path):
    require_assets()
    a = load_split(fer_folder(tmp_path / "a", "manifest"), "valid")
    b = load_split(fer_folder(tmp_path / "b", "label.csv"), "valid")
    assert [p.name for p in a.paths] == [p.name for p in b.paths]
    assert np.array_equal(a.votes, b.votes)
    with pytest.raises(FileNotFoundError):
        load_split(tmp_path / "nothing", "test")


def test_exported_network_reads_as_the_classifier(tmp_path):
    """Fine-tuned weights written in face-api.js's format are read back by the product's loader, and it reads a
    face exactly as the fine-tuned classifier's 7 product columns (renormalised) do."""
    require_assets()
    from video_emotion.modeling.backbones import pretrained_backbone, probabilities
    from video_emotion.modeling.ferplus import predict8, product_reading, readings
    from video_emotion.modeling.ferplus_net import classifier_model, export_network, split_network

    backbone, trunk, tail = split_network(PRETRAINED, 1)
    model = classifier_model(backbone, tail, 0.2)
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (6, 112, 112), dtype=np.uint8)
    original = probabilities(pretrained_backbone(PRETRAINED), crops)
    exact = trunk.predict(crops[..., None].astype(np.float32) / 127.5 - 1.0, verbose=0)  # float32 readings
    assert np.allclose(product_reading(predict8(model, exact)), original, atol=1e-5)
    cached = readings(trunk, crops)  # float16, as cached for training: close, not exact
    assert cached.dtype == np.float16 and np.allclose(product_reading(predict8(model, cached)), original, atol=2e-3)
    for layer in (model.get_layer("ferplus_logits"), backbone.get_layer("dense3_conv3")):  # as training would
        layer.set_weights([w + rng.normal(0, 0.05, w.shape).astype(np.float32) for w in layer.get_weights()])
    tuned = product_reading(predict8(model, exact))
    assert not np.allclose(tuned, original, atol=1e-3)
    export_network(backbone, model.get_layer("ferplus_logits"), PRETRAINED, tmp_path / "net")
    assert np.allclose(probabilities(pretrained_backbone(tmp_path / "net"), crops), tuned, atol=1e-4)


def _params(tmp_path: Path, root: str, **extra):
    from video_emotion.config import load_params

    raw = tiny_params_dict(tmp_path)
    raw["paths"].update(base_network=str(PRETRAINED), ferplus_network=str(tmp_path / "net"))
    raw["finetune_faces"] = {"root": root, "epochs": 2, "batch_size": 8, **extra}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    return tmp_path / "params.yaml", load_params(tmp_path / "params.yaml")


def test_stage_without_ferplus_does_nothing_heavy(tmp_path):
    from video_emotion.stages import finetune_faces

    params_file, _ = _params(tmp_path, "")
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "keep.txt").write_text("untouched")
    assert finetune_faces.main(["--params", str(params_file)]) == 0
    assert "no FER+ folder" in json.loads((tmp_path / "metrics" / "finetune_faces.json").read_text())["skipped"]
    assert (tmp_path / "plots" / "finetune_faces_history.csv").read_text().startswith("epoch,")
    assert (tmp_path / "net" / "keep.txt").read_text() == "untouched"


def test_stage_fine_tunes_a_network_the_product_loads(tmp_path):
    require_assets()
    from video_emotion.modeling.backbones import pretrained_backbone
    from video_emotion.stages import finetune_faces

    root = fer_folder(tmp_path / "ferplus")
    _, params = _params(tmp_path, str(root))
    result = finetune_faces.run(params, PRETRAINED, PRETRAINED.parent, tmp_path / "net")
    assert set(result["figures"]) == {"valid", "test"} and 1 <= result["best_epoch"] <= result["epochs_run"] <= 2
    test = result["figures"]["test"]
    assert test["base"]["n"] == 4 and 0 <= test["finetuned"]["accuracy8"] <= 1
    assert 0.0 <= test["face_found"] <= 1.0 and result["temperature"] > 0
    assert len(test["finetuned"]["confusion_matrix"]) == len(CLASSES8)
    assert pretrained_backbone(tmp_path / "net").output_shape[-1] == 256 + 7
    card = (tmp_path / "net" / "MODEL_CARD.md").read_text()
    assert "FER-2013" in card and "| test, fine-tuned |" in card
    assert json.loads((tmp_path / "net" / "ferplus.json").read_text())["temperature"] == result["temperature"]
    assert (tmp_path / "net" / "LICENSE").is_file()
    again = finetune_faces.run(params, PRETRAINED, PRETRAINED.parent, tmp_path / "net")  # crops and readings cached
    assert again["seconds"]["crops"] < 1.0 and again["figures"]["test"]["base"] == test["base"]


def test_the_default_network_loads_and_carries_its_calibration():
    """The per-frame network params.yaml names loads as the product loads it; where it is the FER+ fine-tuned
    network, the temperature the pipeline applies is the one fitted for it on FER+ Valid (its ferplus.json)."""
    from video_emotion.config import load_params
    from video_emotion.modeling.backbones import pretrained_backbone

    params = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
    net = params.path("pretrained")
    if net == params.path("ferplus_network"):
        card = json.loads((net / "ferplus.json").read_text())
        assert params.model.temperature == pytest.approx(card["temperature"], abs=1e-3)
        assert card["figures"]["test"]["finetuned"]["accuracy8"] > card["figures"]["test"]["base"]["accuracy8"]
    else:
        require_assets()
    assert pretrained_backbone(net).output_shape[-1] == 256 + 7


def test_batches_cover_every_reading_once_with_its_target():
    from video_emotion.modeling.ferplus_net import Batches

    a, b = np.arange(10, dtype=np.float16)[:, None], 100 + np.arange(10, dtype=np.float16)[:, None]
    rows = np.array([1, 3, 4, 8])
    targets = np.concatenate([a[rows], b[rows]]).astype(np.float32)  # each reading's target is its own value
    batches = Batches([(a, rows), (b, rows)], targets, batch_size=3, seed=0)
    seen = []
    for i in range(len(batches)):
        x, t = batches[i]
        assert x.dtype == np.float32 and np.array_equal(x, t)
        seen += x[:, 0].tolist()
    assert sorted(seen) == sorted(targets[:, 0].tolist())
    with pytest.raises(ValueError):
        Batches([(a, rows)], targets, 3, 0)


def test_mixing_moves_weights_back_towards_the_start():
    import keras

    from video_emotion.modeling.ferplus_net import mix_weights

    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    start = [w.copy() for w in layer.get_weights()]
    tuned = [w + 1.0 for w in start]
    layer.set_weights(tuned)
    mix_weights([layer], [start], 0.25)
    assert all(np.allclose(w, s + 0.25) for w, s in zip(layer.get_weights(), start, strict=True))


def test_benchmark_reads_a_bundle_as_its_network(tmp_path, exported_model):
    """`benchmarks/ferplus.py DIR` scores a model bundle (each face a still window) and a bare network alike: a
    bundle whose head is untrained reads a still face exactly as its per-frame network does."""
    import shutil
    import subprocess
    import sys
    from dataclasses import asdict

    from tests.conftest import ROOT
    from video_emotion.config import PreprocessConfig
    from video_emotion.features.faces import save_face_models
    from video_emotion.labels import LABELS

    require_assets()
    root = fer_folder(tmp_path / "ferplus")
    params_file, _ = _params(tmp_path, "")
    bundle = tmp_path / "bundle"
    shutil.copytree(exported_model, bundle)
    prep = PreprocessConfig(n_frames=16, image_size=112)
    save_face_models(prep, PRETRAINED.parent, bundle)
    (bundle / "preprocessing.json").write_text(json.dumps(
        {"labels": list(LABELS), "window_s": 2.0, "model": {"modalities": ["video"]}, **asdict(prep)}))
    last = []
    for which in (["--model", str(bundle)], ["--network", str(PRETRAINED)]):
        out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ferplus.py"), str(root), "--params",
                              str(params_file), *which], capture_output=True, text=True, check=True).stdout
        last.append(out.strip().splitlines()[-1])
        assert "4 faces, 4 with a majority label" in out
    assert last[0] == last[1] and last[0].startswith("accuracy8=") and "macro_f1_7=" in last[0]
