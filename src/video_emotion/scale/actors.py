"""The model on a Ray cluster: `ModelServer` actors that hold it once each, and the bundle's files on every node.

A job's model actors are named by the bundle's content (`bundle_key`: the model version and a hash of
its files). On a cluster that stays up between jobs (`keep=True`: the driver joined `RAY_ADDRESS`) they
are detached actors in the `video-emotion` namespace: the next job with the same model finds them by
name, warm, and loads nothing; a job with another model retires them. On a Ray started for one job
they are ordinary actors, killed at its end.

Where nodes do not share this machine's disk the bundle travels through the cluster: a `BundleHolder`
actor on the head node keeps it packed, and each node unpacks it once into a node-local folder (one per
Ray node id, so that several nodes on one machine each make their own copy, as separate machines
would); a model actor restarted on another node after its node died fetches it again from the holder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from video_emotion.inference.bundle import ModelBundle
from video_emotion.io_utils import sha256_file

NAMESPACE = "video-emotion"
SERVER_PREFIX = "video-emotion-model-"
HOLDER_PREFIX = "video-emotion-bundle-"
MODEL_CALL_RETRIES = 3  # Ray's own retries of a call whose actor died; past them `RemoteBundle` waits (scale.batch)


def bundle_key(folder: Path, info: dict[str, Any]) -> str:
    """The model's identity: its name and version and the content of every file of the bundle."""
    h = hashlib.sha256(f"{info.get('name')}\0{info.get('version')}".encode())
    for f in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        h.update(f"\0{f.relative_to(folder).as_posix()}\0{sha256_file(f)}".encode())
    return h.hexdigest()[:20]


def pack_folder(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(folder), arcname="bundle")
    return buf.getvalue()


def local_bundle(holder: str, key: str) -> Path:
    """The bundle in this node's folder for `key`, fetched once per node from the `BundleHolder` named
    `holder` (shared by the node's actors and tasks). Without a holder `key` is the bundle folder itself."""
    import ray

    if not holder:
        return Path(key)
    node = ray.get_runtime_context().get_node_id()[:16]
    dest = Path(tempfile.gettempdir()) / "video-emotion-ray-models" / key / node
    if not (dest / "bundle").is_dir():
        blob = ray.get(ray.get_actor(holder, namespace=NAMESPACE).get.remote())
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=dest.parent))
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            tar.extractall(tmp, filter="data")
        try:
            os.replace(tmp, dest)
        except OSError:  # another process of this node got there first
            shutil.rmtree(tmp, ignore_errors=True)
    return dest / "bundle"


class BundleHolder:
    """A Ray actor (no CPU, on the head node) keeping the packed bundle for the nodes to fetch."""

    def __init__(self, blob: bytes) -> None:
        self.blob = blob

    def get(self) -> bytes:
        return self.blob


class ModelServer:
    """A Ray actor holding the model once: answers `predict_inputs` calls from the decode tasks."""

    def __init__(self, holder: str, key: str, info: dict[str, Any]) -> None:
        # Loading goes on in the background: `spec` answers at once, so decoding starts meanwhile.
        self.bundle = ModelBundle.load(local_bundle(holder, key), info, background=True)

    def spec(self) -> dict[str, Any]:
        return {f.name: getattr(self.bundle, f.name) for f in dataclasses.fields(self.bundle) if f.init}

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return self.bundle.input_shapes

    def predict(self, inputs: dict[str, np.ndarray], batch_size: int) -> np.ndarray:
        return self.bundle.predict_inputs(inputs, batch_size=batch_size)

    def where(self) -> tuple[int, str]:
        """(process id, Ray node id): for tests and for the logs."""
        import ray

        return os.getpid(), ray.get_runtime_context().get_node_id()


def _head_node() -> str:
    import ray

    return next(n["NodeID"] for n in ray.nodes() if n["Alive"] and "node:__internal_head__" in n["Resources"])


def exists(name: str) -> bool:
    """Whether the named actor of the namespace is alive or restarting (a dead one's name is free again)."""
    import ray

    try:
        ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        return False
    return True


@dataclass
class ModelPool:
    """The model actors of a job (and the holder of the bundle they read, when it travels)."""

    servers: list
    names: list   # the servers' actor names: a server whose name is gone is gone for good (not restarting)
    holder: str  # the holder actor's name ("" when every node reads the bundle folder itself)
    key: str     # the node-local copy's key, or the bundle folder
    keep: bool
    own: list = dataclasses.field(default_factory=list)  # actors to kill at the end (those not kept)

    @classmethod
    def open(cls, folder: Path, info: dict[str, Any], actors: int, actor_cpus: float, ship: bool,
             keep: bool) -> ModelPool:
        """The job's model actors: the kept ones of this model when there are (`keep`), else new ones."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from video_emotion.scale.cluster import worker_runtime_env

        key = bundle_key(folder, info)
        if keep:
            retire(key)
        # Kept actors that read the folder and those that fetch the shipped bundle are different actors.
        tag = f"{key}-{'ship' if ship else 'disk'}" + ("" if keep else f"-{os.getpid()}-{os.urandom(3).hex()}")
        life = {"lifetime": "detached", "get_if_exists": True} if keep else {}
        holder, own = "", []
        if ship:
            holder = f"{HOLDER_PREFIX}{tag}"
            if not (keep and exists(holder)):
                # On the head node: it lives as long as the cluster, whichever other node dies.
                where = NodeAffinitySchedulingStrategy(_head_node(), soft=False)
                own.append(ray.remote(BundleHolder).options(num_cpus=0, name=holder, namespace=NAMESPACE,
                                                            scheduling_strategy=where, **life)
                           .remote(pack_folder(folder)))
        copy_key = key if ship else str(Path(folder).resolve())
        actor, opts = ray.remote(ModelServer), {"num_cpus": actor_cpus, "max_restarts": -1, "namespace": NAMESPACE,
                                                "max_task_retries": MODEL_CALL_RETRIES, "scheduling_strategy": "SPREAD"}
        if keep:  # the TensorFlow settings of WORKER_ENV, for these actors only (the job has no runtime env)
            opts["runtime_env"] = worker_runtime_env()
        names = [f"{SERVER_PREFIX}{tag}-{i}" for i in range(actors)]
        servers = [actor.options(name=name, **opts, **life).remote(holder, copy_key, info) for name in names]
        return cls(servers, names, holder, copy_key, keep, [] if keep else [*servers, *own])

    def close(self) -> None:
        import ray

        for a in self.own:
            ray.kill(a, no_restart=True)
        self.own = []


def retire(key: str | None = None) -> list[str]:
    """Kill the kept model actors (and bundle holders) of every model but `key`; returns their names.
    A job still running with that other model loses its model calls: its videos come back `lost`."""
    import ray

    gone = []
    for a in ray.util.list_named_actors(all_namespaces=True):
        name = a["name"]
        if a["namespace"] == NAMESPACE and name.startswith((SERVER_PREFIX, HOLDER_PREFIX)) \
                and (key is None or not name.removeprefix(SERVER_PREFIX).removeprefix(HOLDER_PREFIX).startswith(key)):
            try:
                ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
                gone.append(name)
            except ValueError:  # gone meanwhile
                pass
    return gone
