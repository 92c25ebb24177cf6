"""What a tracked run is and what it saw: run names, dataset references, where the store is, and where a
model came from (no mlflow here).

Run names say what a run is: the stage, the DVC experiment (or the code's commit), and the parameters
that differ from the committed `params.yaml`, e.g. `train · exp inert-ewes · train.epochs=3`.

A dataset reference identifies data by content, never by its bytes on disk: a split's digest is the
MD5 of its clips' (name, SHA-256, label) lines from the manifest, so it is the same however often the
split is re-encrypted or re-preprocessed, and differs as soon as one clip or label differs. The source
names the DVC-tracked file and its DVC hash (the file's MD5 as DVC records it). The encrypted test split
is described by these hashes and counts only.

A trained bundle's `run.json` keeps its training run's id, commit, DVC experiment and time, so that a
model DVC restores from its run cache without that run in the store still says where it came from.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from video_emotion.config import Params, TrackingConfig, load_params
from video_emotion.io_utils import file_hash, sha256_file

SEP = " · "
# The parameter sections that can change what each stage's run produced, nearest first.
STAGE_SECTIONS = {
    "train": ("train", "model", "preprocess", "ingest"),
    "crossval": ("train", "model", "preprocess", "ingest"),
    "evaluate": ("evaluate", "train", "model", "preprocess", "ingest"),
}
ONLY_FOR = {"train.cv_folds": "crossval"}
CONTEXTS = {"train": "training", "val": "validation", "test": "testing"}
EXPERIMENT_TAGS = {  # the experiment says what it is
    "mlflow.experimentKind": "custom_model_development",  # what the UI's own kind selector writes
    "mlflow.note.content": "Video emotion recognition: one run per trained model (parameters, per-epoch curves, "
                           "train/val datasets, test and real-face metrics, the logged model), cross-validation "
                           "runs, and re-evaluations nested under their training run. Runs are named "
                           "`stage · DVC experiment · changed parameters`.",
}

# A user's MLFLOW_TRACKING_URI overrides params.yaml; read once, because mlflow.set_tracking_uri writes that
# variable itself, and a later stage in the same process must still reach the store its params name.
_USER_URI = os.environ.get("MLFLOW_TRACKING_URI")


def tracking_uri(cfg: TrackingConfig, root: Path) -> str:
    """The backend URI with a relative sqlite path resolved against the project root."""
    uri = _USER_URI or cfg.uri
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        uri = prefix + str((root / uri[len(prefix):]).resolve())
    return uri


def _git(cwd: Path, *args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True,
                              timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def git_commit(path: Path) -> str:
    """The commit of the git checkout holding `path` (`-dirty` with uncommitted tracked changes)."""
    path = Path(path)
    cwd = path if path.is_dir() else path.parent
    sha = _git(cwd, "rev-parse", "HEAD")
    if not sha:
        return "unknown"
    dirty = _git(cwd, "status", "--porcelain", "--untracked-files=no")
    return sha.strip() + ("-dirty" if dirty and dirty.strip() else "")


def committed_defaults(params: Params, params_file: str = "params.yaml") -> dict[str, Any]:
    """The flat parameters of `params.yaml` as committed (HEAD); the built-in defaults without git."""
    text = _git(params.root, "show", f"HEAD:./{params_file}")
    if text:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "params.yaml").write_text(text, encoding="utf-8")
            try:
                return load_params(Path(tmp) / "params.yaml").to_flat_dict()
            except (ValueError, OSError):
                pass  # committed with keys this code no longer knows: compare with the defaults
    return Params().to_flat_dict()


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_show(v) for v in value) + "]"
    return str(value)


def changed_params(stage: str, current: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    """`section.key=value` for each parameter of the stage's sections that differs from the defaults."""
    out = []
    for section in STAGE_SECTIONS.get(stage, ()):
        for key, value in current.items():
            if key.split(".", 1)[0] != section or ONLY_FOR.get(key, stage) != stage:
                continue
            if key not in defaults or _show(defaults[key]) != _show(value):
                out.append(f"{key}={_show(value)}")
    return out


def run_name(stage: str, experiment: str, commit: str, changes: list[str], shown: int = 4) -> str:
    """`stage · exp NAME · a=1 · b=2 · +3 more`; without a DVC experiment, the short commit instead."""
    where = f"exp {experiment}" if experiment else (commit[:7] if commit and commit != "unknown" else "")
    parts = [stage, *([where] if where else []), *changes[:shown]]
    if len(changes) > shown:
        parts.append(f"+{len(changes) - shown} more")
    return SEP.join(parts)[:240]


def unique_name(name: str, taken: set[str]) -> str:
    """`name`, or `name #2`, `name #3`, ... : no two runs share a name."""
    if name not in taken:
        return name
    n = 2
    while f"{name} #{n}" in taken:
        n += 1
    return f"{name} #{n}"


@dataclass(frozen=True)
class DataRef:
    """A dataset a run used, by content digest, source (DVC path and hash) and counts only."""

    name: str
    context: str  # training | validation | testing | evaluation
    digest: str
    source: dict[str, Any]
    profile: dict[str, Any] = field(default_factory=dict)


def _rel(path: Path, root: Path) -> str:
    path = Path(path).resolve()
    try:
        return path.relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(path)


def split_ref(params: Params, split: str, processed_dir: Path, manifest: Path | None = None,
              context: str | None = None) -> DataRef:
    """A processed split: digest from the manifest's rows of that split, source the DVC-tracked file."""
    from video_emotion.data.manifest import logical_name, read_manifest

    processed_dir = Path(processed_dir)
    enc = processed_dir / f"{split}.npz.enc"
    file = enc if enc.is_file() else processed_dir / f"{split}.npz"
    source: dict[str, Any] = {"path": _rel(file, params.root), "dvc_out": _rel(processed_dir, params.root),
                              "encrypted": file == enc}
    if file.is_file():
        source["dvc_md5"] = file_hash(file, "md5").hexdigest()
    manifest = Path(manifest) if manifest else params.path("manifest")
    profile: dict[str, Any] = {"split": split, "encrypted": file == enc}
    if manifest.is_file():
        rows = read_manifest(manifest)
        rows = rows[rows["split"] == split]
        lines = sorted(f"{logical_name(p)},{s},{lab}"
                       for p, s, lab in zip(rows["path"], rows["sha256"], rows["label"], strict=False))
        digest = hashlib.md5("\n".join(lines).encode()).hexdigest()
        source["manifest"] = _rel(manifest, params.root)
        profile.update(clips=len(rows), actors=int(rows["actor"].nunique()),
                       labels={k: int(v) for k, v in rows["label"].value_counts().sort_index().items()})
    else:  # no manifest beside the data: the DVC hash of the file is all there is
        digest = source.get("dvc_md5", "unknown")
    return DataRef(split, context or CONTEXTS.get(split, split), digest, source, profile)


def folder_ref(folder: Path, root: Path, name: str = "real_faces", context: str = "evaluation") -> DataRef:
    """A folder of files (the real-face set): digest over every file's name and SHA-256, counts only."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    lines = [f"{p.relative_to(folder).as_posix()},{sha256_file(p)}" for p in files]
    digest = hashlib.md5("\n".join(lines).encode()).hexdigest() if files else "missing"
    kinds: dict[str, int] = {}
    for p in files:
        kinds[p.suffix.lower().lstrip(".") or "other"] = kinds.get(p.suffix.lower().lstrip(".") or "other", 0) + 1
    profile: dict[str, Any] = {"files": len(files), "by_type": kinds}
    labels_csv = folder / "labels.csv"
    if labels_csv.is_file():
        with labels_csv.open(encoding="utf-8", newline="") as fh:
            labels = [row.get("label", "") for row in csv.DictReader(fh)]
        profile["labels"] = {lab: labels.count(lab) for lab in sorted(set(labels))}
    return DataRef(name, context, digest, {"path": _rel(folder, root)}, profile)


def training_record(run_id: str, commit: str) -> dict[str, str]:
    """What `run.json` keeps of the training run beside its id, so that a model restored without its run (DVC's
    run cache, a colleague's cache) still says where it came from."""
    return {"run_id": run_id, "git_commit": commit, "dvc_experiment": os.environ.get("DVC_EXP_NAME") or "workspace",
            "trained_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def restored_model(record: dict[str, Any], bundle_digest: str) -> str:
    """The provenance of a model whose training run (`run.json`: `record`) this store does not hold."""
    known = ", ".join(f"{k.replace('_', ' ')} {record[k]}" for k in ("git_commit", "dvc_experiment", "trained_at")
                      if record.get(k))
    return (f"trained in MLflow run {record.get('run_id', '?')}{f' ({known})' if known else ''}, which this "
            "store does not hold: DVC restored stage `train` from its run cache (a colleague's pushed cache, a "
            f"store rolled back) or the run was deleted; bundle digest {bundle_digest}")


def as_json(d: dict[str, Any]) -> str:
    return json.dumps(d, sort_keys=True, separators=(",", ":"))
