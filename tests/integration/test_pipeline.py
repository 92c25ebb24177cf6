"""ingest -> validate -> preprocess -> train -> evaluate on a tiny corpus, with a real MLflow store."""

from __future__ import annotations

import json

import pytest

from video_emotion import cli
from video_emotion.stages import evaluate, ingest, preprocess, train, validate

pytestmark = pytest.mark.slow

CONTRACT_KEYS = {"video", "duration_s", "fps", "frames_analysed", "model", "faces_detected", "timeline", "summary"}
SEGMENT_KEYS = {"start_s", "end_s", "emotion", "confidence", "probabilities", "valence", "arousal", "sentiment"}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, pretrained, real_faces):
    from tests.conftest import tiny_params_dict

    import yaml

    tmp = tmp_path_factory.mktemp("pipeline")
    params_file = tmp / "params.yaml"
    params_file.write_text(yaml.safe_dump(tiny_params_dict(tmp)))
    P = ["--params", str(params_file)]
    d = tiny_params_dict(tmp)["paths"]
    assert ingest.main(P + ["--raw-dir", d["raw_dir"], "--manifest", d["manifest"]]) == 0
    assert validate.main(P + ["--manifest", d["manifest"], "--report", d["validation_report"]]) == 0
    assert preprocess.main(P + ["--manifest", d["manifest"], "--out-dir", d["processed_dir"]]) == 0
    assert train.main(P + ["--processed-dir", d["processed_dir"], "--model-dir", d["model_dir"],
                           "--pretrained", d["pretrained"], "--metrics", f"{d['metrics_dir']}/train.json",
                           "--plot", f"{d['plots_dir']}/train_history.csv"]) == 0
    eval_args = P + ["--model-dir", d["model_dir"], "--processed-dir", d["processed_dir"],
                     "--real-faces-dir", d["real_faces_dir"], "--metrics", f"{d['metrics_dir']}/eval.json",
                     "--confusion", f"{d['plots_dir']}/confusion.csv", "--report-dir", str(tmp / "reports" / "evaluation")]
    assert evaluate.main(eval_args) == 0
    first = json.loads((tmp / "reports" / "registry.json").read_text())
    return {"tmp": tmp, "params": params_file, "paths": d, "eval_args": eval_args, "first": first}


def test_stage_outputs(pipeline):
    d, tmp = pipeline["paths"], pipeline["tmp"]
    m = json.loads((tmp / "metrics" / "eval.json").read_text())
    for key in ("accuracy", "macro_f1", "uar", "realface_pass", "realface_crying_negative_share"):
        assert key in m and 0.0 <= m[key] <= 1.0
    assert m["test_clips"] == 7 and set(m["per_class_f1"]) == {"angry", "disgust", "fear", "happy", "sad",
                                                               "surprise", "neutral"}
    curves = (tmp / "plots" / "train_history.csv").read_text().splitlines()
    assert curves[0] == "epoch,loss,val_loss,accuracy,val_accuracy" and len(curves) == 3
    confusion = (tmp / "plots" / "confusion.csv").read_text().splitlines()
    assert confusion[0] == "actual,predicted" and len(confusion) == 8
    settings = json.loads((tmp / "models" / "video_emotion" / "preprocessing.json").read_text())
    assert settings["labels"][0] == "angry" and settings["n_frames"] == 6 and settings["window_s"] == 1.0
    assert (tmp / "reports" / "evaluation" / "confusion_matrix.png").stat().st_size > 1000


def test_mlflow_run_and_registry(pipeline):
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(f"sqlite:///{pipeline['tmp'] / 'mlflow.db'}")
    client = MlflowClient()
    first = pipeline["first"]
    assert first["version"] == "1" and first["alias"] in ("champion", "challenger")
    run = client.get_run(first["run_id"])
    assert run.data.params["train.epochs"] == "2" and run.data.params["model.head"] == "attention"
    assert {"git_commit", "data_hash", "dvc_experiment"} <= set(run.data.tags)
    assert "test_macro_f1" in run.data.metrics and "realface_pass" in run.data.metrics
    assert len(client.get_metric_history(run.info.run_id, "loss")) == 2
    mv = client.get_model_version("video-emotion", "1")
    assert mv.tags["real_face_check"] in ("pass", "fail")
    if mv.tags["real_face_check"] == "fail":
        assert first["alias"] == "challenger"

    # The same model evaluated again ties on macro-F1: a tie never moves the champion.
    assert evaluate.main(pipeline["eval_args"]) == 0
    second = json.loads((pipeline["tmp"] / "reports" / "registry.json").read_text())
    assert second["version"] == "2" and second["alias"] == "challenger"
    if first["alias"] == "champion":
        assert str(client.get_model_version_by_alias("video-emotion", "champion").version) == "1"


def test_cli_analyze_contract_local_and_registered(pipeline, face_clip, blank_clip, tmp_path, capsys):
    bundle = str(pipeline["tmp"] / "models" / "video_emotion")
    out = tmp_path / "r.json"
    assert cli.main(["analyze", str(face_clip), "--model", bundle, "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert CONTRACT_KEYS <= set(res) and res["faces_detected"] is True
    assert res["timeline"] and SEGMENT_KEYS <= set(res["timeline"][0])
    assert res["timeline"][0]["start_s"] == 0.0 and res["timeline"][-1]["end_s"] == pytest.approx(2.0, abs=0.01)
    assert abs(sum(res["summary"]["distribution"].values()) - 1) < 1e-3
    assert res["summary"]["sentiment"] in ("positive", "neutral", "negative")

    # No face: no invented emotion; a broken file: one line, non-zero exit, the other file still done.
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"garbage" * 50)
    rc = cli.main(["--params", str(pipeline["params"]), "analyze", str(blank_clip), str(junk),
                   "--model", "video-emotion/1", "--lang", "zh"])
    captured = capsys.readouterr()
    assert rc == 1 and "junk.mp4" in captured.err
    results = json.loads(captured.out)
    assert len(results) == 1 and results[0]["faces_detected"] is False
    assert results[0]["timeline"] == [] and results[0]["summary"]["dominant_emotion"] is None
    assert results[0]["model"]["version"] == "1"
