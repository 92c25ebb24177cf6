"""Registered models resolve without MLflow where sqlite answers: the alias decides on every call, the
bundle cache is keyed by version, and a rebuilt registry never serves the old copy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_export import make_bundle
from video_emotion.config import TrackingConfig

NAME = "video-emotion"


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("versions")
    # Two real bundles that differ in what a user sees: the model's frame count.
    return {"a": make_bundle(tmp / "a" / "bundle", n_frames=4, seed=1),
            "b": make_bundle(tmp / "b" / "bundle", n_frames=6, seed=2)}


def _client(db: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{db}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _register(client, source: Path) -> str:
    try:
        client.create_registered_model(NAME)
    except Exception:  # already there
        pass
    return str(client.create_model_version(NAME, str(source.parent)).version)


def _n_frames(folder: Path) -> int:
    return json.loads((folder / "preprocessing.json").read_text())["n_frames"]


def test_the_whole_graph_export_skips_the_savedmodel_when_tflite_converts(bundles):
    for folder in bundles.values():
        info = json.loads((folder / "export.json").read_text())
        assert info["lite"] == "model.tflite" and info["graph"] is None and not (folder / "graph").exists()


def test_alias_decides_and_the_cache_is_keyed_by_version(tmp_path, bundles, monkeypatch):
    from video_emotion.modeling.model_cache import cached_bundle, resolve

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    db = tmp_path / "mlflow.db"
    cfg = TrackingConfig(uri=f"sqlite:///{db}")
    client = _client(db)
    v1 = _register(client, bundles["a"])
    client.set_registered_model_alias(NAME, "champion", v1)
    client.set_model_version_tag(NAME, v1, "test_macro_f1", "0.5")

    folder1, info1 = cached_bundle(f"{NAME}@champion", cfg, tmp_path)
    assert info1["version"] == "1" and info1["test_macro_f1"] == "0.5" and _n_frames(folder1) == 4
    assert folder1.is_relative_to(tmp_path / ".cache" / "models") and folder1.parent.name == "1"

    # Move the alias: the very next resolution follows it, from a new cache entry.
    v2 = _register(client, bundles["b"])
    client.set_registered_model_alias(NAME, "champion", v2)
    folder2, info2 = cached_bundle(f"{NAME}@champion", cfg, tmp_path)
    assert info2["version"] == "2" and _n_frames(folder2) == 6 and folder2 != folder1
    champion = client.get_model_version_by_alias(NAME, "champion")
    assert resolve(f"{NAME}@champion", cfg, tmp_path)["version"] == str(champion.version)

    # The first version's entry is still there and is reused, not fetched again.
    stamp = folder1.parent / "source.json"
    before = stamp.stat().st_mtime_ns
    again, info = cached_bundle(f"{NAME}/1", cfg, tmp_path)
    assert again == folder1 and info["version"] == "1" and stamp.stat().st_mtime_ns == before

    # Back to version 1: the alias, not the most recent fill, decides.
    client.set_registered_model_alias(NAME, "champion", v1)
    assert cached_bundle(f"{NAME}@champion", cfg, tmp_path)[1]["version"] == "1"

    # Unknown alias or version: a clear error, never another version's bundle.
    with pytest.raises(LookupError, match="no alias 'nope'"):
        cached_bundle(f"{NAME}@nope", cfg, tmp_path)
    with pytest.raises(LookupError, match="not found"):
        cached_bundle(f"{NAME}/9", cfg, tmp_path)
    # `latest` is MLflow's to compute: the client answers (highest version).
    assert cached_bundle(f"{NAME}@latest", cfg, tmp_path)[1]["version"] == "2"


def test_a_rebuilt_registry_never_serves_the_old_copy(tmp_path, bundles, monkeypatch):
    from video_emotion.modeling.model_cache import cached_bundle

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    db = tmp_path / "mlflow.db"
    cfg = TrackingConfig(uri=f"sqlite:///{db}")
    client = _client(db)
    client.set_registered_model_alias(NAME, "champion", _register(client, bundles["a"]))
    assert _n_frames(cached_bundle(f"{NAME}@champion", cfg, tmp_path)[0]) == 4
    # Same name, same version number, another model.
    client.delete_registered_model(NAME)
    client.set_registered_model_alias(NAME, "champion", _register(client, bundles["b"]))
    folder, info = cached_bundle(f"{NAME}@champion", cfg, tmp_path)
    assert info["version"] == "1" and _n_frames(folder) == 6


def test_analysis_of_a_registered_model_imports_no_mlflow(tmp_path, bundles):
    """The light path, end to end in a fresh process: registry reference -> bundle -> prediction."""
    db = tmp_path / "mlflow.db"
    client = _client(db)
    client.set_registered_model_alias(NAME, "champion", _register(client, bundles["b"]))
    code = (
        "import sys, json, numpy as np\n"
        "from pathlib import Path\n"
        "from video_emotion.config import TrackingConfig\n"
        "from video_emotion.inference.bundle import ModelBundle\n"
        "from video_emotion.modeling.model_cache import cached_bundle\n"
        f"folder, info = cached_bundle('{NAME}@champion', TrackingConfig(uri='sqlite:///{db}'), "
        f"Path({str(tmp_path)!r}))\n"
        "b = ModelBundle.load(folder, info)\n"
        "p = b.predict_inputs({'frames': np.zeros((1, 6, 16, 16), np.float32), 'mask': np.ones((1, 6), np.float32)})\n"
        "print(json.dumps({'version': info['version'], 'rows': len(p), 'runtime': b.runtime,\n"
        "                  'heavy': sorted({m.split('.')[0] for m in sys.modules} & {'mlflow', 'tensorflow', 'keras', "
        "'sqlalchemy'})}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, timeout=120)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res == {"version": "1", "rows": 1, "runtime": "litert", "heavy": []}
