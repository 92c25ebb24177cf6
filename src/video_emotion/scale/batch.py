"""The Ray engine of `video-emotion batch`: decode and faces in parallel tasks, the model in an actor pool.

Each video goes through `analyze_source` in a Ray task (one CPU), the same function the local engine
runs, so decoding, face tracking, windows, summary and result are the library's own code. Tasks are
submitted as a stream over the list, a bounded window ahead of the running ones (`QUEUED_PER_WORKER`
per worker: a freed CPU starts the next video at once, and the driver never holds more than the window
in flight, whatever the library's size); rows come back as videos finish. (A Ray Data `map` over the
list does the same with more machinery: measured on this 2-core machine it took 40.1 s where these
plain tasks take 35.6 s for the same 40 clips, the local engine 28.6 s; see docs/scale-out.md.) The tasks
hold a `RemoteBundle` instead of a model: its `predict_inputs` sends each batch of windows to one of the
`ModelServer` actors, which load the model once each and answer with the same call on the same arrays as
a local bundle would, so the numbers are identical. Decode tasks never import TensorFlow or Keras (about
110 MB of imports).

A model call blocks its task, so a task's CPU is free while an actor computes for it: actors ask for
no CPU of their own by default and are spread over the nodes. The model is about a fifth of a
video's CPU time, hence one actor per five decode workers by default.

Faults: a decode task whose worker process dies is run again, up to `DECODE_RETRIES` times; an actor
that dies is restarted (without limit: a restart only reloads the model) and the call it was
answering is retried, up to `MODEL_CALL_RETRIES` times. A node that dies (its raylet gone) takes its
running tasks and actors with it: Ray reruns those tasks on the surviving nodes (counted as retries)
and restarts the actors there, which fetch the bundle to their new node if it travels (`actors`).
Past the retries the video's row says `lost` and the next run of the job tries it again; the job
itself always completes. Each row names the Ray node (and host) that analysed it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from video_emotion.data.library import Source
from video_emotion.inference.batch import BatchOptions, WorkerLost, analyze_source
from video_emotion.inference.batch_store import summary_row
from video_emotion.inference.bundle import ModelBundle
from video_emotion.scale.actors import MODEL_CALL_RETRIES, ModelPool, local_bundle

DECODE_RETRIES = 3
MODEL_SHARE = 0.2   # share of a video's time in the model (measured: 0.3 of 1.8 s, 20 s real clip, Keras graph)
QUEUED_PER_WORKER = 2
_turn = itertools.count()


def resolve_model(ref: str, params) -> tuple[Path, dict[str, Any]]:
    """A bundle folder or a registry reference -> (local bundle folder, model info), without loading it."""
    p = Path(ref)
    if p.is_dir():
        return p, {"name": p.name, "version": "local"}
    from video_emotion.modeling.model_cache import cached_bundle

    return cached_bundle(ref, params.tracking, params.root)


@dataclass
class RemoteBundle(ModelBundle):
    """A model bundle whose predictions run in the `ModelServer` actors (what decode tasks hold)."""

    servers: list = field(default_factory=list)
    holder: str = ""  # the packed bundle's actor: its files (face detector, settings) are read from a node-local copy
    key: str = ""     # the copy's content hash (or, without a holder, the bundle folder)
    shapes: dict | None = None

    def localize(self) -> RemoteBundle:
        """Point `folder` at this node's copy of the bundle (decode tasks read the face detector from it)."""
        self.folder = local_bundle(self.holder, self.key)
        return self

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        if self.shapes is None:
            self.shapes = dict(self._call("shapes"))
        return dict(self.shapes)

    def wait(self) -> None:
        """Nothing to wait for here: the actors load the model."""

    def warm_up(self) -> None:
        """The actors warm up on their first call."""

    def predict_inputs(self, inputs: dict[str, np.ndarray], batch_size: int = 32) -> np.ndarray:
        return self._call("predict", inputs, batch_size)

    def _call(self, method: str, *args) -> Any:
        import ray

        server = self.servers[next(_turn) % len(self.servers)]
        try:
            return ray.get(getattr(server, method).remote(*args))
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
            raise WorkerLost(f"lost: the model actor died past {MODEL_CALL_RETRIES} retries "
                             f"({type(exc).__name__})") from exc


def _analyze_task(source: Source, bundle: RemoteBundle, opts: BatchOptions) -> tuple[dict[str, Any], str | None]:
    """Ray task: one listed video -> (summary row, result JSON)."""
    import cv2
    import ray

    cv2.setNumThreads(1)  # one CPU per task: OpenCV's own threads would only contend with the other tasks
    return analyze_source(source, bundle.localize(), opts, "ray", node=ray.get_runtime_context().get_node_id())


def _warm_up() -> None:
    """Ray task: only the imports of a video's task, so that the job's worker processes start (a second or
    more each) while the driver opens the model pool; the videos' tasks then find them ready."""
    import cv2  # noqa: F401

    import video_emotion.inference.analyze  # noqa: F401


class RayEngine:
    """`Engine` for `run_batch`. Ray starts only when there is something to do (`cluster.ray_session`: the
    cluster of RAY_ADDRESS, a Ray this process already runs, or a local one with `workers` CPUs). On the
    cluster of RAY_ADDRESS the model actors stay up after the job for the next one (`actors.ModelPool`)."""

    def __init__(self, folder: Path, info: dict[str, Any], opts: BatchOptions, workers: int | None = None,
                 actors: int | None = None, actor_cpus: float = 0.0, ship_bundle: bool | None = None) -> None:
        """`ship_bundle`: copy the bundle to every node through the cluster (default: only when the
        cluster has nodes other than this machine)."""
        self.folder, self.info, self.opts = Path(folder), info, opts
        self.workers, self.actors, self.actor_cpus, self.ship_bundle = workers, actors, actor_cpus, ship_bundle
        self.pool: ModelPool | None = None

    @property
    def servers(self) -> list:
        return self.pool.servers if self.pool else []

    def sizes(self) -> tuple[int, int]:
        from video_emotion.scale.cluster import cluster_cpus

        workers = self.workers or cluster_cpus()
        return workers, self.actors or max(1, math.ceil(workers * MODEL_SHARE))

    def start(self, keep: bool = False) -> RemoteBundle:
        import ray

        _, actors = self.sizes()
        ship = self.ship_bundle
        if ship is None:
            here = ray.util.get_node_ip_address()
            ship = not all(n["NodeManagerAddress"] == here for n in ray.nodes() if n["Alive"])
        self.pool = ModelPool.open(self.folder, self.info, actors, self.actor_cpus, ship, keep)
        spec = ray.get(self.pool.servers[0].spec.remote())
        return RemoteBundle(**spec, servers=self.pool.servers, holder=self.pool.holder, key=self.pool.key)

    def stop(self) -> None:
        if self.pool is not None:
            self.pool.close()

    def __call__(self, todo: list[Source]) -> Iterator[tuple[dict[str, Any], str | None]]:
        from video_emotion.scale.cluster import ray_session

        with ray_session(self.workers, worker_env=False) as joined:
            yield from self._run(todo, keep=joined)

    def _run(self, todo: list[Source], keep: bool = False) -> Iterator[tuple[dict[str, Any], str | None]]:
        import ray

        workers, _ = self.sizes()
        warm = ray.remote(_warm_up).options(num_cpus=1)
        for _ in range(min(workers, len(todo))):
            warm.remote()
        bundle = ray.put(self.start(keep))  # one copy for every task
        task = ray.remote(_analyze_task).options(num_cpus=1, max_retries=DECODE_RETRIES)
        rest, pending = iter(todo), {}

        def submit() -> None:
            source = next(rest, None)
            if source is not None:
                pending[task.remote(source, bundle, self.opts)] = source

        try:
            for _ in range(workers * QUEUED_PER_WORKER):
                submit()
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                source = pending.pop(ref)
                submit()
                try:
                    yield ray.get(ref)
                except ray.exceptions.RayError as exc:  # its worker died past the retries
                    yield summary_row(source.path, None, source.size, source.mtime, None,
                                      f"lost: its worker died past {DECODE_RETRIES} retries ({type(exc).__name__})",
                                      "ray", 0.0, status="lost"), None
        finally:
            self.stop()
