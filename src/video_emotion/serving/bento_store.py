"""Bring a registered model (MLflow registry) or a local bundle into the BentoML model store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

BENTO_MODEL_NAME = "video-emotion"


def import_bundle(bundle_dir: Path, info: dict[str, Any]) -> str:
    """Copy a model bundle into a new BentoML model; returns its tag."""
    import bentoml

    settings = json.loads((Path(bundle_dir) / "preprocessing.json").read_text(encoding="utf-8"))
    labels = {"mlflow_version": str(info.get("version", "local")), "source": info.get("source", "mlflow")}
    metadata = {k: v for k, v in info.items() if isinstance(v, str | int | float)}
    metadata["labels"] = ",".join(settings["labels"])
    with bentoml.models.create(BENTO_MODEL_NAME, labels=labels, metadata=metadata) as model:
        # The whole bundle: the Keras model and its settings, the exported graphs that serve without
        # TensorFlow (frame.tflite + head.tflite, model.tflite or graph/), and the face detector the model was
        # trained with.
        for item in Path(bundle_dir).iterdir():
            if item.name in ("run.json", "history.json"):
                continue
            if item.is_dir():
                shutil.copytree(item, Path(model.path) / item.name)
            else:
                shutil.copy2(item, Path(model.path) / item.name)
        (Path(model.path) / "registry.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return str(model.tag)


def import_model(ref: str, params) -> str:
    """Import a bundle folder or a registry reference (`name@alias`, `name/version`); returns the tag."""
    p = Path(ref)
    if p.is_dir():
        return import_bundle(p, {"name": "video-emotion", "version": "local", "source": str(p)})
    import tempfile

    from video_emotion.modeling import registry

    with tempfile.TemporaryDirectory(prefix="video-emotion-model-") as tmp:
        folder, info = registry.download_model(ref, params.tracking, params.root, Path(tmp))
        return import_bundle(folder, {**info, "source": f"mlflow:{ref}"})
