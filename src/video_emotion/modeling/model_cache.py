"""A registered model -> a local bundle folder, fast: no MLflow import where a plain read gives the same answer.

The registry still decides. Every call reads the version that the alias points to *now*; only that
version's bundle is reused, from a local cache keyed by registry, name and version, filled once from
the version's MLflow artifacts and swapped in atomically. A cache entry also records the version's
run, creation time and artifact location, so a registry that was rebuilt (same name and version
number, another model) never serves the old copy.

For a `sqlite:///` backend store (the project default) the alias and version are read straight from
the database with the standard `sqlite3` module (read-only; the tables of MLflow's model registry:
`registered_model_aliases`, `model_versions`, `model_version_tags`), and a bundle stored under a
`file://` artifact location is copied without MLflow either. Anything else (another backend, a
separate `MLFLOW_REGISTRY_URI`, a non-default MLflow workspace, the reserved alias `latest`, a
version that is not READY, a schema this reader does not know) goes through the MLflow client in
`registry`, which gives the same answer more slowly (importing MLflow and opening its store takes
seconds) and downloads the bundle each time, as before; remote artifacts of a version read from
sqlite are downloaded once into the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlparse

from video_emotion.config import TrackingConfig
from video_emotion.io_utils import atomic_path

CACHE_ENV = "VIDEO_EMOTION_MODEL_CACHE"  # where the cache lives (default: <project>/.cache/models)
STAMP = "source.json"
BUNDLE = "bundle"
SQLITE = "sqlite:///"


class _NeedsClient(Exception):
    """The plain sqlite read cannot answer this one the way MLflow would: ask the MLflow client."""


def parse_ref(ref: str) -> tuple[str, str | None, str | None]:
    """`name@alias`, `name/version` or `models:/...` -> (name, alias, version)."""
    bare = ref[len("models:/"):] if ref.startswith("models:/") else ref
    if "@" in bare:
        name, alias = bare.split("@", 1)
        return name, alias, None
    name, sep, version = bare.rpartition("/")
    if not sep or not name or not version.isdigit():
        raise ValueError(f"{ref!r}: expected name@alias, name/version or a bundle folder")
    return name, None, version


def _read_sqlite(db: Path, name: str, alias: str | None, version: str | None) -> dict[str, str]:
    """The model version as MLflow's sqlalchemy store would return it, read with sqlite3 only."""
    workspace = os.environ.get("MLFLOW_WORKSPACE") or "default"
    if alias is not None and alias.lower() == "latest":
        raise _NeedsClient("alias 'latest' is computed by MLflow")
    if not db.is_file():
        raise FileNotFoundError(f"no model registry at {db} (train and evaluate a model first: `make run`)")
    con = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        cols = {r[1] for r in con.execute("PRAGMA table_info(model_versions)")}
        if not {"name", "version", "source", "storage_location", "run_id", "status", "current_stage"} <= cols:
            raise _NeedsClient("unknown registry schema")
        if "workspace" in cols:
            where, extra = "name = ? AND workspace = ?", (workspace,)
        elif workspace != "default":
            raise _NeedsClient("workspaces")
        else:
            where, extra = "name = ?", ()
        if alias is not None:
            row = con.execute(f"SELECT version FROM registered_model_aliases WHERE {where} AND alias = ?",
                              (name, *extra, alias)).fetchone()
            if row is None:
                if con.execute(f"SELECT 1 FROM registered_models WHERE {where}", (name, *extra)).fetchone() is None:
                    raise LookupError(f"registered model {name!r} not found in {db.name}")
                raise LookupError(f"registered model {name!r} has no alias {alias!r}")
            version = str(row[0])
        row = con.execute(f"SELECT version, run_id, status, current_stage, storage_location, source, creation_time "
                          f"FROM model_versions WHERE {where} AND version = ?", (name, *extra, int(version))).fetchone()
        if row is None:
            raise LookupError(f"model version {name}/{version} not found in {db.name}")
        if row[2] != "READY" or row[3] == "Deleted_Internal":
            raise _NeedsClient(f"version status {row[2]}/{row[3]}")
        tags = dict(con.execute(f"SELECT key, value FROM model_version_tags WHERE {where} AND version = ?",
                                (name, *extra, int(version))).fetchall())
    except sqlite3.Error as exc:  # locked beyond the timeout, a schema being migrated, ...
        raise _NeedsClient(str(exc)) from exc
    finally:
        con.close()
    return {"name": name, "version": str(row[0]), "run_id": row[1] or "", **tags,
            "location": row[4] or row[5] or "", "created": str(row[6])}


def resolve(ref: str, cfg: TrackingConfig, root: Path) -> dict[str, str] | None:
    """The version `ref` names in the registry right now (name, version, run_id, its tags, where its
    artifacts are: `location`, when it was created: `created`); None where only MLflow can tell."""
    from video_emotion.modeling import registry

    name, alias, version = parse_ref(ref)
    uri = registry.tracking_uri(cfg, root)
    if not uri.startswith(SQLITE) or "?" in uri or os.environ.get("MLFLOW_REGISTRY_URI"):
        return None  # another backend, URI options, or a registry apart from the tracking store
    try:
        return _read_sqlite(Path(uri[len(SQLITE):]), name, alias, version)
    except _NeedsClient:
        return None


def cache_root(root: Path) -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path(root) / ".cache" / "models").expanduser()


def _local_dir(location: str) -> Path | None:
    """A `file://` URI or plain path of artifacts on this machine, else None."""
    parsed = urlparse(location)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
    elif not parsed.scheme and location.startswith("/"):
        path = Path(location)
    else:
        return None
    return path if path.is_dir() else None


def _fill(dest: Path, mv: dict[str, str], cfg: TrackingConfig, root: Path) -> None:
    """Copy the version's bundle folder (the one holding model.keras) into `dest`."""
    local = _local_dir(mv["location"])
    if local is not None:
        found = sorted(local.rglob("model.keras"))
        if not found:
            raise FileNotFoundError(f"model {mv['name']}/{mv['version']}: no model.keras under {local}")
        shutil.copytree(found[0].parent, dest)
        return
    from video_emotion.modeling import registry

    download = dest.parent / "download"
    folder, _ = registry.download_model(f"models:/{mv['name']}/{mv['version']}", cfg, root, download)
    shutil.move(str(folder), dest)
    shutil.rmtree(download, ignore_errors=True)


def cached_bundle(ref: str, cfg: TrackingConfig, root: Path) -> tuple[Path, dict[str, str]]:
    """(bundle folder, model info) of the version `ref` names now; fetched once per version."""
    mv = resolve(ref, cfg, root)
    if mv is None:
        return _through_client(ref, cfg, root)
    from video_emotion.modeling import registry

    uri = registry.tracking_uri(cfg, root)
    stamp = {"tracking_uri": uri, "name": mv["name"], "version": mv["version"], "run_id": mv["run_id"],
             "created": mv["created"], "location": mv["location"]}
    store = hashlib.sha256(uri.encode()).hexdigest()[:12]
    safe_name = "".join(c if c.isalnum() or c in "-_." else "_" for c in mv["name"])
    entry = cache_root(root) / store / safe_name / mv["version"]
    info = {k: v for k, v in mv.items() if k not in ("location", "created")}
    try:
        if json.loads((entry / STAMP).read_text(encoding="utf-8")) == stamp and (entry / BUNDLE).is_dir():
            return entry / BUNDLE, info
    except (OSError, ValueError):
        pass  # missing or unreadable: fill it
    with atomic_path(entry) as tmp:
        tmp.mkdir(parents=True)
        _fill(tmp / BUNDLE, mv, cfg, root)
        (tmp / STAMP).write_text(json.dumps(stamp, indent=2), encoding="utf-8")
    return entry / BUNDLE, info


def _through_client(ref: str, cfg: TrackingConfig, root: Path) -> tuple[Path, dict[str, str]]:
    """The MLflow client resolves and downloads; the bundle is kept in a per-process temporary
    folder (removed at exit), as registry references were always served."""
    import atexit
    import tempfile

    from video_emotion.modeling import registry

    tmp = Path(tempfile.mkdtemp(prefix="video-emotion-model-"))
    atexit.register(shutil.rmtree, tmp, True)
    return registry.download_model(ref, cfg, root, tmp)
