"""Experiment tracking and the model registry: the only module that imports mlflow.

A local backend store (sqlite + an artifacts folder, both created on first use) keeps every run.
Training and evaluation of one model share one run; `dvc exp run` variations make separate runs.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

from video_emotion.config import TrackingConfig

log = logging.getLogger("video_emotion.modeling.registry")

CHAMPION, CHALLENGER = "champion", "challenger"


def _mlflow():
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    return mlflow


def tracking_uri(cfg: TrackingConfig, root: Path) -> str:
    """The backend URI with a relative sqlite path resolved against the project root."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or cfg.uri
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        uri = prefix + str((root / uri[len(prefix):]).resolve())
    return uri


def configure(cfg: TrackingConfig, root: Path) -> str:
    """Point mlflow at the project's store and make sure the experiment exists; return its id."""
    mlflow = _mlflow()
    mlflow.set_tracking_uri(tracking_uri(cfg, root))
    exp = mlflow.get_experiment_by_name(cfg.experiment)
    if exp is None:
        artifacts = (root / cfg.artifact_location).resolve()
        artifacts.mkdir(parents=True, exist_ok=True)
        return mlflow.create_experiment(cfg.experiment, artifact_location=artifacts.as_uri())
    return exp.experiment_id


def git_commit(root: Path) -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def start_run(cfg: TrackingConfig, root: Path, params: dict[str, Any], tags: dict[str, str],
              run_name: str | None = None) -> str:
    """Open a run with all parameters and the reproducibility tags; return its id (run left closed)."""
    mlflow = _mlflow()
    exp_id = configure(cfg, root)
    exp_name = os.environ.get("DVC_EXP_NAME", "")
    all_tags = {"git_commit": git_commit(root), "dvc_experiment": exp_name or "workspace", **tags}
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name or exp_name or None) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.set_tags(all_tags)
        return run.info.run_id


def log_history(run_id: str, history: dict[str, list[float]]) -> None:
    """Per-epoch curves, one metric step per epoch."""
    mlflow = _mlflow()
    with mlflow.start_run(run_id=run_id):
        for name, values in history.items():
            for step, value in enumerate(values):
                mlflow.log_metric(name, float(value), step=step)


def log_metrics(run_id: str, metrics: dict[str, float], artifacts: list[Path] = (),
                tags: dict[str, str] | None = None) -> None:
    mlflow = _mlflow()
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        for path in artifacts:
            mlflow.log_artifact(str(path), artifact_path="evaluation")
        if tags:
            mlflow.set_tags(tags)




def _pyfunc_class():
    mlflow = _mlflow()

    class VideoEmotionPyfunc(mlflow.pyfunc.PythonModel):
        """pyfunc wrapper: a DataFrame column `video` of paths -> JSON analysis results."""

        def load_context(self, context):
            from video_emotion.inference.analyze import ModelBundle

            self.bundle = ModelBundle.load(Path(context.artifacts["bundle"]))

        def predict(self, context, model_input, params=None):
            from video_emotion.inference.analyze import analyze_video

            videos = model_input["video"] if hasattr(model_input, "columns") else model_input
            return [json.dumps(analyze_video(v, self.bundle)) for v in videos]

    return VideoEmotionPyfunc


def register(run_id: str, model_dir: Path, name: str, test_macro_f1: float, gate_passed: bool | None,
             requirements: list[str]) -> dict[str, Any]:
    """Log the model bundle in the run, register a new version and decide the alias.

    `champion` moves to the new version only if it beats the current champion's test macro-F1
    (ties keep the old one) and passed the real-face gate; otherwise it becomes `challenger`.
    """
    mlflow = _mlflow()
    from mlflow import MlflowClient

    client = MlflowClient()
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(name="model", python_model=_pyfunc_class()(),
                                       artifacts={"bundle": str(model_dir)}, pip_requirements=requirements,
                                       registered_model_name=name)
    version = str(info.registered_model_version)
    client.set_model_version_tag(name, version, "test_macro_f1", f"{test_macro_f1:.6f}")
    client.set_model_version_tag(name, version, "real_face_check",
                                 "not run" if gate_passed is None else "pass" if gate_passed else "fail")
    client.set_model_version_tag(name, version, "run_id", run_id)
    current = None
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        current = None
    current_f1 = float(current.tags.get("test_macro_f1", "-1")) if current is not None else -1.0
    # Compare at the precision the tag stores, so that re-evaluating the same model is a tie.
    if gate_passed and round(test_macro_f1, 6) > current_f1:
        alias, reason = CHAMPION, (f"beats champion v{current.version} ({current_f1:.4f})" if current
                                   else "first version to pass the gate")
    else:
        alias = CHALLENGER
        reason = ("the real-face check needs a face (video) model" if gate_passed is None
                  else "failed the real-face check" if not gate_passed
                  else f"does not beat champion v{current.version} ({current_f1:.4f})")
    client.set_registered_model_alias(name, alias, version)
    client.set_model_version_tag(name, version, "alias_decision", reason)
    with mlflow.start_run(run_id=run_id):
        mlflow.set_tags({"registered_version": version, "alias": alias, "alias_reason": reason})
    log.info("registered %s version %s as @%s (%s)", name, version, alias, reason)
    return {"name": name, "version": version, "alias": alias, "reason": reason}


def download_model(ref: str, cfg: TrackingConfig, root: Path, dest: Path) -> tuple[Path, dict[str, str]]:
    """Resolve `name@alias`, `name/version` or a `models:/` URI; download its bundle under `dest`."""
    mlflow = _mlflow()
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri(cfg, root))
    uri = ref if ref.startswith("models:/") else f"models:/{ref}"
    client = MlflowClient()
    body = uri[len("models:/"):]
    if "@" in body:
        name, alias = body.split("@", 1)
        mv = client.get_model_version_by_alias(name, alias)
    else:
        name, version = body.split("/", 1)
        mv = client.get_model_version(name, version)
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{mv.version}", dst_path=str(dest)))
    bundle = next(local.rglob("model.keras")).parent
    return bundle, {"name": name, "version": str(mv.version), "run_id": mv.run_id or "", **dict(mv.tags)}


def requirements() -> list[str]:
    """Exact pins of what the logged pyfunc model needs, from the installed distributions."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in ("tensorflow-cpu", "keras", "numpy", "opencv-python-headless", "pandas", "tqdm", "pyyaml"):
        try:
            out.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return out
