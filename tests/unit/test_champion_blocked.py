"""A champion the registry cannot measure on a candidate's real-face set blocks every promotion: the decision
says so, and `video-emotion report` (what `make run` prints at its end) says so too, not only a log line.
On a real MLflow store (sqlite in tmp_path) with the registry's own `register`."""

from __future__ import annotations

import json
from types import SimpleNamespace

from video_emotion.modeling.promotion import CHALLENGER, CHAMPION, Candidate, Champion, Gate, Selection, decide

DIGEST = "d" * 32


def _candidate(value: float) -> Candidate:
    return Candidate(Selection("realfaces_macro_f1", value, DIGEST, 0.40, "dev faces"),
                     {"test_floor": Gate(True, "0.61 vs 0.15")})


def test_decide_names_the_blocker_only_when_the_champion_could_not_be_measured():
    blocked = decide(_candidate(0.9), Champion("3", {}, unmeasured="ValueError: haar is retired"))
    assert blocked.alias == CHALLENGER and blocked.compared_with == "3"
    assert "champion v3 could not be measured" in blocked.blocker and "haar is retired" in blocked.blocker
    assert "no version can be promoted" in blocked.blocker
    # A champion simply scored on other data is not a blocker the registry found: no blocker.
    assert decide(_candidate(0.9), Champion("3", {})).blocker == ""


def _version(registry, params, run_name: str, source, value: float, rescore):
    import mlflow

    client = mlflow.MlflowClient()
    run_id = client.create_run(registry.configure(params.tracking, params.root), run_name=run_name).info.run_id
    info = SimpleNamespace(model_uri=source.as_uri(), model_id=f"m-{run_name}")
    return registry.register(params, run_id, info, _candidate(value), {"metrics": {}, "datasets": []}, rescore)


def test_an_unmeasurable_champion_is_reported_by_the_pipeline_report(tiny_params, tmp_path, monkeypatch):
    import mlflow

    from video_emotion.inference.bundle import ModelBundle
    from video_emotion.io_utils import write_json
    from video_emotion.modeling import registry
    from video_emotion.stages.report import pipeline_report

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = tiny_params
    # The champion: a version whose model.keras no longer loads (as a bundle of a retired format would not).
    old = tmp_path / "old"
    old.mkdir()
    (old / "model.keras").write_bytes(b"not a keras file")
    mlflow.set_tracking_uri(registry.tracking_uri(params.tracking, params.root))
    client = mlflow.MlflowClient()
    client.create_registered_model(params.evaluate.registered_model)
    v1 = client.create_model_version(params.evaluate.registered_model, old.as_uri()).version
    client.set_registered_model_alias(params.evaluate.registered_model, CHAMPION, v1)

    def rescore(folder):  # what the evaluate stage does first: load the champion's bundle
        ModelBundle.load(folder)
        return Selection("realfaces_macro_f1", 0.5, DIGEST, 0.40)

    (params.path("metrics_dir")).mkdir(parents=True, exist_ok=True)
    (params.path("metrics_dir") / "eval.json").write_text(json.dumps(
        {"accuracy": 0.6, "macro_f1": 0.6, "uar": 0.6, "test_clips": 7}))
    new = tmp_path / "new"
    new.mkdir()
    (new / "model.keras").write_bytes(b"x")
    for k in (1, 2):  # however good, every new version stays challenger: the champion blocks them all
        res = _version(registry, params, f"eval-{k}", new, 0.95, rescore)
        assert res["alias"] == CHALLENGER and f"champion v{v1} could not be measured" in res["blocker"]
        write_json(params.root / "reports" / "registry.json", res)
        text = pipeline_report(params)
        assert f"as @challenger (champion v{v1} could not be measured" in text
        assert f"PROMOTION BLOCKED: champion v{v1} could not be measured on dev faces" in text
        assert "move (or remove) its @champion alias" in text

    # The alias moved to a version that can be measured: the next candidate is compared, nothing is blocked.
    client.set_registered_model_alias(params.evaluate.registered_model, CHAMPION, res["version"])
    res = _version(registry, params, "eval-3", new, 0.96, lambda folder: _candidate(0.95).selection)
    assert res["alias"] == CHAMPION and "blocker" not in res and "beats champion" in res["reason"]
    write_json(params.root / "reports" / "registry.json", res)
    assert "BLOCKED" not in pipeline_report(params)
