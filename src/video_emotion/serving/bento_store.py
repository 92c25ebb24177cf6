"""Bring a registered model (MLflow registry) or a local bundle into the BentoML model store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from video_emotion.features.faces import BUNDLE_DIR as FACE_MODELS

BENTO_MODEL_NAME = "video-emotion"


def import_bundle(bundle_dir: Path, info: dict[str, Any]) -> str:
    """Copy a model bundle into a new BentoML model; returns its tag."""
    import bentoml

    settings = json.loads((Path(bundle_dir) / "preprocessing.json").read_text(encoding="utf-8"))
    labels = {"mlflow_version": str(info.get("version", "local")), "source": info.get("source", "mlflow")}
    metadata = {k: v for k, v in info.items() if isinstance(v, str | int | float)}
    metadata["labels"] = ",".join(settings["labels"])
    with bentoml.models.create(BENTO_MODEL_NAME, labels=labels, metadata=metadata) as model:
        for f in ("model.keras", "preprocessing.json"):
            shutil.copy2(Path(bundle_dir) / f, Path(model.path) / f)
        if (Path(bundle_dir) / FACE_MODELS).is_dir():  # the face detector the model was trained with
            shutil.copytree(Path(bundle_dir) / FACE_MODELS, Path(model.path) / FACE_MODELS)
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
