"""Experiment tracking and the model registry: the only library module that imports mlflow (the logged
model's own code, `inference/pyfunc_model.py`, is a file MLflow runs, logged by path, never imported here).

A local backend store (sqlite + an artifacts folder, both created on first use) keeps every run. The
experiment declares itself a model-training experiment, so the MLflow UI opens on its training runs.
Runs are named by what they are (`lineage.run_name`) and carry the datasets they used as MLflow dataset
inputs (content digest, DVC path, counts). Training and the first evaluation of a model share one run; a
re-evaluation gets its own run, nested under the training run; a model whose training run this store lacks
(DVC restored `train` from its run cache) gets a new run that says so. `promotion.decide` picks the alias.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from video_emotion.config import Params, TrackingConfig
from video_emotion.modeling import lineage, packaging, promotion
from video_emotion.modeling.lineage import DataRef

log = logging.getLogger("video_emotion.modeling.registry")

CHAMPION, CHALLENGER = promotion.CHAMPION, promotion.CHALLENGER
tracking_uri = lineage.tracking_uri  # where the store is (callers read it here)


def _mlflow():
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    return mlflow


def configure(cfg: TrackingConfig, root: Path) -> str:
    """Point mlflow at the project's store, make sure the experiment exists and says what it is."""
    mlflow = _mlflow()
    mlflow.set_tracking_uri(tracking_uri(cfg, root))
    exp = mlflow.get_experiment_by_name(cfg.experiment)
    if exp is None:
        artifacts = (root / cfg.artifact_location).resolve()
        artifacts.mkdir(parents=True, exist_ok=True)
        exp_id = mlflow.create_experiment(cfg.experiment, artifact_location=artifacts.as_uri(),
                                          tags=lineage.EXPERIMENT_TAGS)
    else:
        exp_id = exp.experiment_id
        for key, value in lineage.EXPERIMENT_TAGS.items():  # the kind always; the description only where there is none
            if exp.tags.get(key) != value and (key == "mlflow.experimentKind" or not exp.tags.get(key)):
                mlflow.MlflowClient().set_experiment_tag(exp_id, key, value)
    return exp_id


def _taken_names(exp_id: str) -> set[str]:
    runs = _mlflow().MlflowClient().search_runs([exp_id], max_results=50000, run_view_type=3)
    return {r.info.run_name for r in runs}


def _entity(ref: DataRef):
    from mlflow.entities import Dataset as DatasetEntity

    return DatasetEntity(name=ref.name, digest=ref.digest[:36], source_type="dvc", source=lineage.as_json(ref.source),
                         profile=lineage.as_json(ref.profile) if ref.profile else None)


def log_datasets(run_id: str, refs: list[DataRef]) -> None:
    """Dataset inputs of a run: digest, source (DVC path and hash) and counts; never content."""
    from mlflow.entities import DatasetInput, InputTag

    inputs = [DatasetInput(_entity(r), [InputTag("mlflow.data.context", r.context)]) for r in refs]
    _mlflow().MlflowClient().log_inputs(run_id, datasets=inputs)


def start_run(params: Params, stage: str, tags: dict[str, str], datasets: list[DataRef] = (),
              parent_run_id: str | None = None, note: str = "") -> str:
    """Open a named run with all parameters, the reproducibility tags and its datasets; return its id."""
    mlflow = _mlflow()
    exp_id = configure(params.tracking, params.root)
    experiment = os.environ.get("DVC_EXP_NAME", "")
    commit = lineage.git_commit(packaging.package_dir())
    changes = lineage.changed_params(stage, params.to_flat_dict(), lineage.committed_defaults(params))
    name = lineage.unique_name(lineage.run_name(stage, experiment, commit, changes), _taken_names(exp_id))
    note = (f"Stage `{stage}` of the DVC pipeline{f', experiment `{experiment}`' if experiment else ''}. "
            f"Parameters changed from the committed params.yaml: {', '.join(changes) or 'none'}.{note}")
    all_tags = {"git_commit": commit, "dvc_experiment": experiment or "workspace", "stage": stage,
                "mlflow.note.content": note, **tags}
    with mlflow.start_run(experiment_id=exp_id, run_name=name, parent_run_id=parent_run_id,
                          nested=parent_run_id is not None) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.to_flat_dict().items()})
        mlflow.set_tags(all_tags)
        run_id = run.info.run_id
    if datasets:
        log_datasets(run_id, list(datasets))
    log.info("MLflow run %r (%s)", name, run_id)
    return run_id


def log_history(run_id: str, history: dict[str, list[float]]) -> None:
    """Per-epoch curves, one metric step per epoch."""
    mlflow = _mlflow()
    with mlflow.start_run(run_id=run_id):
        for name, values in history.items():
            for step, value in enumerate(values):
                mlflow.log_metric(name, float(value), step=step)


def log_metrics(run_id: str, metrics: dict[str, float], artifacts: list[Path] = (),
                tags: dict[str, str] | None = None, model_id: str | None = None,
                dataset: DataRef | None = None) -> None:
    mlflow = _mlflow()
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, model_id=model_id,
                           dataset=_entity(dataset) if dataset else None)
        for path in artifacts:
            mlflow.log_artifact(str(path), artifact_path="evaluation")
        if tags:
            mlflow.set_tags(tags)


def log_confusions(run_id: str, confusions: dict[str, tuple[Any, list[str], str]]) -> None:
    """Confusion matrices as images under stable keys (shown side by side when runs are compared)."""
    from PIL import Image

    from video_emotion.modeling.metrics import confusion_png

    mlflow = _mlflow()
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_id=run_id):
        for key, (cm, labels, title) in confusions.items():
            png = Path(tmp) / f"{key}.png"
            confusion_png(cm, labels, png, title=title)
            with Image.open(png) as img:
                mlflow.log_image(img.convert("RGB"), key=key, step=0)


def _signature():
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec(DataType.string, "video"), ColSpec(DataType.string, "transcript", required=False)]),
        outputs=Schema([ColSpec(DataType.string)]),
        params=ParamSchema([ParamSpec("sample_fps", DataType.double, 0.0), ParamSpec("lang", DataType.string, "en")]))


def log_model(run_id: str, model_dir: Path) -> Any:
    """The bundle as a pyfunc model that serves outside this checkout: package code attached, exact pins.
    The model is logged from code (`packaging.MODEL_CODE`, a file MLflow runs at load), not pickled."""
    mlflow = _mlflow()
    with mlflow.start_run(run_id=run_id):
        return mlflow.pyfunc.log_model(name="model", python_model=str(packaging.model_code()),
                                       artifacts={"bundle": str(model_dir)},
                                       code_paths=[str(packaging.package_dir())], signature=_signature(),
                                       pip_requirements=packaging.runtime_requirements())


def evaluation_run(params: Params, model_dir: Path, datasets: list[DataRef]) -> tuple[str, str]:
    """(run id, provenance): the training run (`run.json`) if it holds no evaluation yet, else a new run nested
    under it; where this store lacks it, a new run saying where the model came from (provenance, else '')."""
    mlflow = _mlflow()
    configure(params.tracking, params.root)
    trained = json.loads((model_dir / "run.json").read_text(encoding="utf-8"))
    train_run_id = str(trained["run_id"])
    try:
        run = mlflow.MlflowClient().get_run(train_run_id)
    except mlflow.exceptions.MlflowException:  # not in this store
        run = None
    if run is None or run.info.lifecycle_stage != "active":
        provenance = lineage.restored_model(trained, lineage.folder_ref(model_dir, params.root).digest)
        log.warning("the model was %s", provenance)
        run_id = start_run(params, "evaluate", {"training_run_id": train_run_id, "training_run_found": "false",
                                                "model_provenance": provenance}, datasets,
                           note=f" The model was not trained in this run: it was {provenance}.")
        if (model_dir / "history.json").is_file():
            log_history(run_id, json.loads((model_dir / "history.json").read_text(encoding="utf-8")))
        return run_id, provenance
    if "test_macro_f1" not in run.data.metrics:
        log_datasets(train_run_id, datasets)
        return train_run_id, ""
    return start_run(params, "evaluate", {"training_run_id": train_run_id}, datasets, parent_run_id=train_run_id), ""


def _champion(client, name: str):
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except _mlflow().exceptions.MlflowException:
        return None


def record_evaluation(params: Params, model_dir: Path, candidate: promotion.Candidate, report: dict[str, Any],
                      rescore: Callable[[Path], promotion.Selection] | None = None) -> dict[str, Any]:
    """Log an evaluation (datasets, the model, metrics linked to it and to their data, confusion images) and
    register the model; returns the registration with the run id."""
    run_id, provenance = evaluation_run(params, model_dir, report["datasets"])
    if provenance:  # the version says it too
        report = {**report, "tags": {**report.get("tags", {}), "model_provenance": provenance}}
    info = log_model(run_id, model_dir)
    log_metrics(run_id, report["metrics"], report["artifacts"], model_id=info.model_id, dataset=report["test_data"])
    log_metrics(run_id, report["per_class"])
    if report["real_metrics"]:
        log_metrics(run_id, report["real_metrics"], model_id=info.model_id, dataset=report["real_data"])
    log_confusions(run_id, report["confusions"])
    return {**register(params, run_id, info, candidate, report, rescore), "run_id": run_id}


def register(params: Params, run_id: str, info: Any, candidate: promotion.Candidate, report: dict[str, Any],
             rescore: Callable[[Path], promotion.Selection] | None = None) -> dict[str, Any]:
    """Register the logged model as a new version, decide its alias and say why in its description.

    `rescore(bundle_dir)` measures the champion on the candidate's real-face set when the champion has no
    score there yet (or no tie-break where the scores tie), so that the two are always compared on the same data.
    """
    mlflow = _mlflow()
    client = mlflow.MlflowClient()
    name = params.evaluate.registered_model
    sel = candidate.selection
    current, unmeasured = _champion(client, name), ""
    if current is not None and rescore is not None and sel.value is not None:
        current, unmeasured = _measure_champion(params, client, current, sel, rescore)
    decision = promotion.decide(candidate, promotion.Champion.from_tags(current.version, current.tags, unmeasured)
                                if current else None)
    commit = lineage.git_commit(packaging.package_dir())
    experiment = os.environ.get("DVC_EXP_NAME", "") or "workspace"
    tags = {"run_id": run_id, "git_commit": commit, "dvc_experiment": experiment,
            **promotion.version_tags(decision, candidate), **{k: str(v) for k, v in report.get("tags", {}).items()}}
    mv = mlflow.register_model(info.model_uri, name, tags=tags)
    version = str(mv.version)
    client.update_model_version(name, version,
                                promotion.describe(decision, candidate, report, run_id, commit, experiment))
    client.set_registered_model_alias(name, decision.alias, version)
    if not client.get_registered_model(name).description:
        client.update_registered_model(name, promotion.RULE)
    for k, v in {"registered_version": version, "alias": decision.alias, "alias_reason": decision.reason}.items():
        client.set_tag(run_id, k, v)
    log.info("registered %s version %s as @%s (%s)", name, version, decision.alias, decision.reason)
    if decision.blocker:
        log.warning("%s", decision.blocker)
    return {"name": name, "version": version, "alias": decision.alias, "reason": decision.reason,
            "model_id": info.model_id, **({"blocker": decision.blocker} if decision.blocker else {})}


def _measure_champion(params: Params, client, current, sel: promotion.Selection,
                      rescore: Callable[[Path], promotion.Selection]) -> tuple[Any, str]:
    """(the champion's version, measured on the candidate's real-face set (`rescore`, the same code) where its tags
    lack what the decision needs (`promotion.missing_scores`); why it could not be, or ""). Only missing tags are
    written; a champion that cannot be measured stays as its tags say."""
    name, missing = params.evaluate.registered_model, promotion.missing_scores(current.tags, sel)
    if not missing:
        return current, ""
    try:
        with tempfile.TemporaryDirectory(prefix="video-emotion-champion-") as tmp:
            folder, _ = download_model(f"{name}/{current.version}", params.tracking, params.root, Path(tmp))
            measured = promotion.scores_of(rescore(folder))
    except Exception as exc:  # an old champion that cannot be re-measured stays uncompared
        log.warning("could not measure champion v%s on this real-face set: %s", current.version, exc)
        return current, f"{type(exc).__name__}: {str(exc)[:300]}"
    for key in (k for k in missing if k in measured):
        client.set_model_version_tag(name, current.version, key, f"{measured[key]:.6f}")
        log.info("champion v%s measured on this real-face set: %s %.4f", current.version, key, measured[key])
    return client.get_model_version(name, current.version), ""


def download_model(ref: str, cfg: TrackingConfig, root: Path, dest: Path) -> tuple[Path, dict[str, str]]:
    """Resolve `name@alias`, `name/version` or a `models:/` URI; download its bundle under `dest`."""
    mlflow = _mlflow()
    mlflow.set_tracking_uri(tracking_uri(cfg, root))
    uri = ref if ref.startswith("models:/") else f"models:/{ref}"
    client = mlflow.MlflowClient()
    body = uri[len("models:/"):]
    if "@" in body:
        name, alias = body.split("@", 1)
        mv = client.get_model_version_by_alias(name, alias)
    else:
        name, version = body.split("/", 1)
        mv = client.get_model_version(name, version)
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{mv.version}", dst_path=str(dest)))
    bundle = next(p for p in local.rglob("model.keras") if "code" not in p.relative_to(local).parts).parent
    return bundle, {"name": name, "version": str(mv.version), "run_id": mv.run_id or "", **dict(mv.tags)}
