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

Faults: no video is lost to a node's death or an actor's restart: `lost` is for a video no node could
analyse before the job's deadline (`deadline_s`, `--deadline`, a day unless told), or one that crashed
every worker it met. A model actor that dies (its node
gone, a crash) is restarted without limit (a restart only reloads the model, and fetches the bundle to
its new node if it travels: `actors`); a call it was answering is retried by Ray a few times, then goes
to the job's other actors in turn, pausing (0.1 s, growing to 2 s) while the dead one restarts, until
one answers or the deadline passes. A decode task whose worker process dies is run again by Ray up to
`DECODE_RETRIES` times (a video that crashes every worker it meets is `lost` then); one whose node died
meanwhile is submitted again with fresh retries. At the deadline the job ends: videos still running
are cancelled and those not started come back `lost` too, for the next run of the job. A job whose
actors are gone for good (retired by a job with another model) loses its model calls at once. The job
itself always completes. Each row names the Ray node (and host) that analysed it. The deadline is
wall-clock time (`time.time()`): the nodes' clocks are assumed to agree (NTP).
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from video_emotion.data.library import Source
from video_emotion.inference.batch import BatchOptions, WorkerLost, analyze_source
from video_emotion.inference.batch_store import summary_row
from video_emotion.inference.bundle import ModelBundle
from video_emotion.scale.actors import ModelPool, exists, local_bundle

DECODE_RETRIES = 3
MODEL_SHARE = 0.2   # share of a video's time in the model (measured: 0.3 of 1.8 s, 20 s real clip, Keras graph)
QUEUED_PER_WORKER = 2
DEADLINE_S = 24 * 3600.0  # a job's time limit unless told (`--deadline`): past it no video waits or starts
MAX_PAUSE_S = 2.0   # the longest wait between two tries of a model call whose actors are down
_turn = itertools.count()
log = logging.getLogger(__name__)


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
    names: list = field(default_factory=list)  # the servers' actor names (a freed name: that actor is gone for good)
    holder: str = ""  # the packed bundle's actor: its files (face detector, settings) are read from a node-local copy
    key: str = ""     # the copy's content hash (or, without a holder, the bundle folder)
    shapes: dict | None = None
    deadline: float | None = None  # the job's deadline (time.time()); None: wait as long as an actor exists

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

    def _left(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.time())

    def _call(self, method: str, *args) -> Any:
        """The call on one of the model actors. One that fails because its actor died goes to the next actor,
        pausing while they restart, until one answers: WorkerLost only past the job's deadline, or when no
        actor of the job exists any more (each is alive or restarting while its name is held)."""
        import ray

        turn, pause, k = next(_turn), 0.1, -1
        while True:
            k += 1
            left = self._left()
            if left == 0.0:
                raise WorkerLost("lost: no model actor answered before the job's deadline")
            server = self.servers[(turn + k) % len(self.servers)]
            try:
                return ray.get(getattr(server, method).remote(*args), timeout=left)
            except ray.exceptions.GetTimeoutError as exc:  # an OSError: must not read as a bad file
                raise WorkerLost("lost: no model actor answered before the job's deadline") from exc
            except ray.exceptions.RayActorError as exc:  # ActorDiedError, ActorUnavailableError
                if self.names and not any(exists(n) for n in self.names):
                    raise WorkerLost(f"lost: every model actor of the job is gone ({type(exc).__name__}: retired "
                                     "by a job with another model, or failed to start)") from exc
                log.warning("model actor %d of %d is down (%s); trying again in %.1f s", (turn + k) % len(
                    self.servers) + 1, len(self.servers), type(exc).__name__, pause)
                time.sleep(min(pause, self._left() or pause))
                pause = min(2 * pause, MAX_PAUSE_S)


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


class _NodeDeaths:
    """How many nodes of the cluster have died so far (dead nodes stay listed; a restarted node is a new one),
    asked of the GCS at most once a second unless asked `fresh`."""

    def __init__(self) -> None:
        self.n, self.at = 0, -math.inf

    def count(self, fresh: bool = False) -> int:
        import ray

        if fresh or time.monotonic() - self.at > 1.0:
            self.n, self.at = sum(not n["Alive"] for n in ray.nodes()), time.monotonic()
        return self.n


def _lost(source: Source, why: str) -> tuple[dict[str, Any], None]:
    return summary_row(source.path, None, source.size, source.mtime, None, f"lost: {why}", "ray", 0.0,
                       status="lost"), None


class RayEngine:
    """`Engine` for `run_batch`. Ray starts only when there is something to do (`cluster.ray_session`: the
    cluster of RAY_ADDRESS, a Ray this process already runs, or a local one with `workers` CPUs). On the
    cluster of RAY_ADDRESS the model actors stay up after the job for the next one (`actors.ModelPool`)."""

    def __init__(self, folder: Path, info: dict[str, Any], opts: BatchOptions, workers: int | None = None,
                 actors: int | None = None, actor_cpus: float = 0.0, ship_bundle: bool | None = None,
                 deadline_s: float | None = DEADLINE_S) -> None:
        """`ship_bundle`: copy the bundle to every node through the cluster (default: only when the
        cluster has nodes other than this machine). `deadline_s`: the job's time limit from its start
        (None: none; videos then wait for a live actor or node as long as one of the job's actors exists)."""
        self.folder, self.info, self.opts, self.deadline_s = Path(folder), info, opts, deadline_s
        self.workers, self.actors, self.actor_cpus, self.ship_bundle = workers, actors, actor_cpus, ship_bundle
        self.pool: ModelPool | None = None

    @property
    def servers(self) -> list:
        return self.pool.servers if self.pool else []

    def sizes(self) -> tuple[int, int]:
        from video_emotion.scale.cluster import cluster_cpus

        workers = self.workers or cluster_cpus()
        return workers, self.actors or max(1, math.ceil(workers * MODEL_SHARE))

    def start(self, keep: bool = False, deadline: float | None = None) -> RemoteBundle:
        import ray

        _, actors = self.sizes()
        ship = self.ship_bundle
        if ship is None:
            here = ray.util.get_node_ip_address()
            ship = not all(n["NodeManagerAddress"] == here for n in ray.nodes() if n["Alive"])
        self.pool = ModelPool.open(self.folder, self.info, actors, self.actor_cpus, ship, keep)
        spec = ray.get(self.pool.servers[0].spec.remote())
        return RemoteBundle(**spec, servers=self.pool.servers, names=self.pool.names, holder=self.pool.holder,
                            key=self.pool.key, deadline=deadline)

    def stop(self) -> None:
        if self.pool is not None:
            self.pool.close()

    def __call__(self, todo: list[Source]) -> Iterator[tuple[dict[str, Any], str | None]]:
        from video_emotion.scale.cluster import ray_session

        with ray_session(self.workers, worker_env=False) as joined:
            yield from self._run(todo, keep=joined)

    def _run(self, todo: list[Source], keep: bool = False) -> Iterator[tuple[dict[str, Any], str | None]]:
        import ray

        deadline = None if self.deadline_s is None else time.time() + self.deadline_s
        workers, _ = self.sizes()
        warm = ray.remote(_warm_up).options(num_cpus=1)
        for _ in range(min(workers, len(todo))):
            warm.remote()
        bundle = ray.put(self.start(keep, deadline))  # one copy for every task
        task = ray.remote(_analyze_task).options(num_cpus=1, max_retries=DECODE_RETRIES)
        rest, pending, deaths = iter(todo), {}, _NodeDeaths()

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.time())

        def submit(again: Source | None = None) -> None:
            source = again or (next(rest, None) if left() != 0.0 else None)  # none starts past the deadline
            if source is not None:
                pending[task.remote(source, bundle, self.opts)] = (source, deaths.count())

        try:
            for _ in range(workers * QUEUED_PER_WORKER):
                submit()
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=left())
                if not ready:  # the deadline: what still runs (or waits for a CPU) is lost to this run
                    for ref, (source, _) in pending.items():
                        ray.cancel(ref, force=True)
                        yield _lost(source, f"not analysed before the job's deadline ({self.deadline_s:g} s)")
                    break
                source, died_before = pending.pop(ready[0])
                try:
                    row = ray.get(ready[0])
                except ray.exceptions.RayError as exc:  # its worker died past the retries
                    if left() != 0.0 and deaths.count(fresh=True) > died_before:
                        submit(source)  # a node died meanwhile: again, with fresh retries
                        continue
                    row = _lost(source, f"its worker died past {DECODE_RETRIES} retries ({type(exc).__name__})")
                submit()
                yield row
            for source in rest:
                yield _lost(source, f"not started before the job's deadline ({self.deadline_s:g} s)")
        finally:
            self.stop()
