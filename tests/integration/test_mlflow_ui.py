"""The MLflow story of the runs, against a real store: the session's tiny pipeline run, then a second run
made the way `dvc exp run -S train.epochs=1` makes it (params.yaml committed, changed in the workspace,
DVC_EXP_NAME set). Then `mlflow ui` and `mlflow models serve` over HTTP, and the logged model loaded in a
process that cannot import this checkout.

The second run writes into a copy of the pipeline's store, so test_pipeline.py sees the store as the
pipeline left it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import requests
import yaml

from tests import servers
from video_emotion.stages import evaluate, train

pytestmark = pytest.mark.slow

EXP = "bumpy-lark"
NAME = "video-emotion"
MLFLOW = str(Path(sys.executable).parent / "mlflow")
CONTRACT_KEYS = {"video", "duration_s", "fps", "frames_analysed", "model", "faces_detected", "timeline", "summary"}


@pytest.fixture(scope="module")
def store(pipeline, tmp_path_factory):
    from mlflow import MlflowClient

    tmp = tmp_path_factory.mktemp("exp")
    db = tmp / "mlflow.db"
    shutil.copy(pipeline["tmp"] / "mlflow.db", db)
    uri = f"sqlite:///{db}"
    params = yaml.safe_load(pipeline["params"].read_text())
    params["tracking"]["uri"] = uri
    params_file = tmp / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp)]
    subprocess.run(["git", "init", "-q", str(tmp)], check=True)
    subprocess.run(git + ["add", "params.yaml"], check=True)
    subprocess.run(git + ["commit", "-qm", "params"], check=True)
    params["train"]["epochs"] = 1  # what `dvc exp run -S train.epochs=1` does to the workspace
    params_file.write_text(yaml.safe_dump(params))

    client = MlflowClient(uri)
    first = pipeline["first"]
    champion_before = _alias(client, "champion")
    if champion_before:  # forget the champion's real-face score: the next evaluation must measure it again
        held = {k: v for k, v in champion_before.tags.items() if k.startswith("selection.")}
        for key in held:
            client.delete_model_version_tag(NAME, champion_before.version, key)
    d = pipeline["paths"]
    P = ["--params", str(params_file)]
    mp = pytest.MonkeyPatch()
    mp.setenv("DVC_EXP_NAME", EXP)
    try:
        assert train.main(P + ["--processed-dir", d["processed_dir"], "--model-dir", str(tmp / "model"),
                               "--pretrained", d["pretrained"], "--metrics", str(tmp / "train.json"),
                               "--plot", str(tmp / "curves.csv")]) == 0
        assert evaluate.main(P + ["--model-dir", str(tmp / "model"), "--processed-dir", d["processed_dir"],
                                  "--real-faces-dir", d["real_faces_dir"], "--metrics", str(tmp / "eval.json"),
                                  "--confusion", str(tmp / "confusion.csv"),
                                  "--report-dir", str(tmp / "reports" / "evaluation")]) == 0
    finally:
        mp.undo()
    second = json.loads((tmp / "reports" / "registry.json").read_text())
    exp = client.get_experiment_by_name(params["tracking"]["experiment"])
    # `mlflow ui` and `mlflow models serve` of the champion start now, side by side (each takes seconds), and
    # only read the store; their tests wait until each answers.
    ports = {servers.free_port()}
    while len(ports) < 2:
        ports.add(servers.free_port())
    ui, serve = (f"http://127.0.0.1:{port}" for port in sorted(ports))
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri,  # the scoring server is the venv's uvicorn
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    started = {"ui": servers.launch([MLFLOW, "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port",
                                     ui.rsplit(":", 1)[1], "--workers", "1"], dict(os.environ), tmp / "ui.log"),
               "serve": servers.launch([MLFLOW, "models", "serve", "-m", f"models:/{NAME}@champion", "--env-manager",
                                        "local", "-h", "127.0.0.1", "-p", serve.rsplit(":", 1)[1]], env,
                                       tmp / "serve.log")}
    try:
        yield {"tmp": tmp, "uri": uri, "client": client, "exp": exp, "first": first, "second": second,
               "champion_before": champion_before, "held": held if champion_before else {},
               "ui": {"url": ui, "proc": started["ui"][0], "log": tmp / "ui.log"},
               "serve": {"url": serve, "proc": started["serve"][0], "log": tmp / "serve.log"}}
    finally:
        for proc, out in started.values():
            servers.stop(proc, out)


def _alias(client, alias):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(NAME, alias)
    except MlflowException:
        return None


def test_the_experiment_says_it_is_model_training(store):
    assert store["exp"].tags["mlflow.experimentKind"] == "custom_model_development"


def test_runs_are_named_by_what_they_are_and_never_share_a_name(store):
    client = store["client"]
    runs = client.search_runs([store["exp"].experiment_id], max_results=1000)
    names = [r.info.run_name for r in runs]
    assert len(names) == len(set(names)) >= 2
    second = client.get_run(store["second"]["run_id"])
    assert second.info.run_name == f"train · exp {EXP} · train.epochs=1"
    assert second.data.tags["dvc_experiment"] == EXP and "train.epochs=1" in second.data.tags["mlflow.note.content"]
    first = client.get_run(store["first"]["run_id"])
    assert first.info.run_name.startswith("train · ") and "epochs=1" not in first.info.run_name
    assert "train.epochs=2" in first.info.run_name  # the tiny config differs from params.yaml's 15 epochs


def test_training_and_evaluation_runs_carry_their_datasets(store, real_faces):
    from video_emotion.modeling.lineage import folder_ref

    client = store["client"]
    inputs = {}
    for key in ("first", "second"):
        run = client.get_run(store[key]["run_id"])
        inputs[key] = {i.dataset.name: i for i in run.inputs.dataset_inputs}
        assert set(inputs[key]) == {"train", "val", "test", "real_faces"}
        for i in inputs[key].values():
            assert re.fullmatch(r"[0-9a-f]{32}", i.dataset.digest) and i.dataset.source_type == "dvc"
            assert {t.key: t.value for t in i.tags}["mlflow.data.context"] in ("training", "validation", "testing",
                                                                                 "evaluation")
        test = inputs[key]["test"].dataset
        source, profile = json.loads(test.source), json.loads(test.profile)
        assert source["path"].endswith("test.npz.enc") and source["encrypted"] and len(source["dvc_md5"]) == 32
        assert profile["clips"] == 7 and sum(profile["labels"].values()) == 7  # counts only, never content
        assert json.loads(inputs[key]["train"].dataset.source)["path"].endswith("train.npz")
    for name in ("train", "val", "test", "real_faces"):  # the same data, the same digests
        assert inputs["first"][name].dataset.digest == inputs["second"][name].dataset.digest
    assert inputs["first"]["real_faces"].dataset.digest == folder_ref(real_faces, real_faces.parent).digest


def test_curves_metrics_images_and_signature_are_at_hand(store):
    import mlflow

    client = store["client"]
    second = client.get_run(store["second"]["run_id"])
    assert len(client.get_metric_history(second.info.run_id, "val_loss")) == 1  # one step per epoch
    assert len(client.get_metric_history(store["first"]["run_id"], "val_loss")) == 2
    selected_by = client.get_model_version(NAME, store["second"]["version"]).tags["selection_metric"]
    for key in ("test_accuracy", "test_uar", "test_macro_f1", selected_by):  # the real-face score that selects
        assert key in second.data.metrics
    images = [f.path for f in client.list_artifacts(second.info.run_id, "images")]
    assert any("confusion_test" in p for p in images) and any("confusion_real_faces" in p for p in images)
    mlflow.set_tracking_uri(store["uri"])
    sig = mlflow.models.get_model_info(f"models:/{NAME}/{store['second']['version']}").signature
    assert sig.inputs.input_names() == ["video", "transcript"]
    assert [p.name for p in sig.params.params] == ["sample_fps", "lang"]


def test_every_version_says_why_it_got_its_alias(store):
    client = store["client"]
    assert "champion" in client.get_registered_model(NAME).description
    for key in ("first", "second"):
        reg = store[key]
        mv = client.get_model_version(NAME, reg["version"])
        assert mv.description.startswith(f"**@{reg['alias']}**: {reg['reason']}")
        for part in ("Gate test_floor", f"Selection: {mv.tags['selection_metric']} = ",
                     mv.tags["selection_data_digest"],
                     "Data `test` (testing)", "Data `real_faces` (evaluation)", reg["run_id"]):
            assert part in mv.description, part
        assert mv.tags["run_id"] == reg["run_id"] and mv.tags["git_commit"] and mv.tags["selection_data_digest"]
    assert client.get_model_version(NAME, store["second"]["version"]).tags["dvc_experiment"] == EXP
    before = store["champion_before"]
    if before is not None:  # its score on this set was forgotten, measured again, and is the same
        after = client.get_model_version(NAME, before.version)
        assert {k: after.tags.get(k) for k in store["held"]} == store["held"]
        compared = tuple(f"{word} champion v{before.version}" for word in ("beats", "ties", "below"))
        assert store["second"]["reason"].startswith(compared + ("failed gate", "gate not run"))


def test_mlflow_ui_serves_the_runs(store):
    url = store["ui"]["url"]
    servers.wait_ready(store["ui"]["proc"], f"{url}/health", store["ui"]["log"], 240)
    page = requests.get(f"{url}/", timeout=30)
    assert page.status_code == 200 and "<html" in page.text.lower()
    exp_id = store["exp"].experiment_id
    exp = requests.get(f"{url}/ajax-api/2.0/mlflow/experiments/get", params={"experiment_id": exp_id}, timeout=30)
    tags = {t["key"]: t["value"] for t in exp.json()["experiment"]["tags"]}
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    runs = requests.post(f"{url}/ajax-api/2.0/mlflow/runs/search", json={"experiment_ids": [exp_id]}, timeout=30)
    names = [r["info"]["run_name"] for r in runs.json()["runs"]]
    assert f"train · exp {EXP} · train.epochs=1" in names and len(names) == len(set(names))
    with_data = [r for r in runs.json()["runs"] if r.get("inputs", {}).get("dataset_inputs")]
    assert len(with_data) >= 2


@pytest.fixture(scope="module")
def real_clip(real_faces, tmp_path_factory) -> Path:
    """The first 2 s of the real footage (a woman crying), as its own clip."""
    import cv2

    cap = cv2.VideoCapture(str(real_faces / "cry_then_laugh.mp4"))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    out = tmp_path_factory.mktemp("clip") / "crying.mp4"
    writer = None
    for _ in range(int(2 * fps)):
        ok, frame = cap.read()
        if not ok:
            break
        if writer is None:
            writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, frame.shape[1::-1])
        writer.write(frame)
    writer.release()
    cap.release()
    return out


def test_mlflow_models_serve_answers_for_the_champion(store, real_clip):
    champion = _alias(store["client"], "champion")
    assert champion is not None, "the pipeline registered no champion"
    url = store["serve"]["url"]
    servers.wait_ready(store["serve"]["proc"], f"{url}/ping", store["serve"]["log"], 240)
    r = requests.post(f"{url}/invocations", timeout=300,
                      json={"dataframe_split": {"columns": ["video"], "data": [[str(real_clip)]]}})
    assert r.status_code == 200, r.text[:2000]
    result = json.loads(r.json()["predictions"][0])
    assert CONTRACT_KEYS <= set(result) and result["faces_detected"] is True and result["timeline"]
    assert result["duration_s"] == pytest.approx(2.0, abs=0.2)


ISOLATED = r"""
import importlib.util, json, sys
sys.path.append(sys.argv[1])  # the venv's third-party packages only: no .pth files, so no editable install
assert importlib.util.find_spec("video_emotion") is None, "the checkout is importable"
import mlflow, pandas as pd
mlflow.set_tracking_uri(sys.argv[2])
model = mlflow.pyfunc.load_model(sys.argv[3])
out = model.predict(pd.DataFrame({"video": [sys.argv[4]]}))
import video_emotion
print(json.dumps({"package": video_emotion.__file__, "result": json.loads(out[0])}))
"""


def test_the_logged_model_runs_without_this_checkout(store, real_clip, tmp_path):
    """`python -I -S`: no PYTHONPATH, no user site, no site-packages .pth files (the editable install is one)."""
    site = sysconfig.get_paths()["purelib"]
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", ISOLATED, site, store["uri"],
                           f"models:/{NAME}/{store['second']['version']}", str(real_clip)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=400,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "/code/video_emotion/" in out["package"] and not out["package"].startswith(str(Path(__file__).parents[2]))
    assert CONTRACT_KEYS <= set(out["result"]) and out["result"]["faces_detected"] is True
