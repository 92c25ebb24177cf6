"""Ray for a job: join the cluster that `RAY_ADDRESS` names, or start a local one and stop it after."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

# Passed to the workers of a cluster (a local Ray's workers inherit this process's environment).
WORKER_ENV = ("TF_ENABLE_ONEDNN_OPTS", "TF_CPP_MIN_LOG_LEVEL", "MLFLOW_DISABLE_TELEMETRY", "BENTOML_DO_NOT_TRACK",
              "DVC_NO_ANALYTICS", "GX_ANALYTICS_ENABLED", "VIDEO_EMOTION_MODEL_CACHE")


@contextlib.contextmanager
def ray_session(num_cpus: int | None = None, worker_env: bool = True) -> Iterator[bool]:
    """Ray for the duration of the block. A Ray this process already runs (a test's, a notebook's) is
    used as it is and left running; otherwise `RAY_ADDRESS` is joined, or a local Ray with `num_cpus`
    CPUs (default: all) is started, and disconnected or stopped at the end. Yields whether it joined
    RAY_ADDRESS's cluster (one that outlives the job: what the job leaves there may serve the next).
    `worker_env`: give the job's workers `WORKER_ENV` as a job-wide runtime environment. That costs
    about 3 s before a job's first task starts (Ray's runtime-env agent prepares every worker), so the
    batch engine passes False: its decode tasks never import TensorFlow, and its model actors get the
    variables on their own (`worker_runtime_env`)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        yield False
        return
    kwargs = {"include_dashboard": False, "logging_level": logging.WARNING}
    joined = bool(os.environ.get("RAY_ADDRESS"))
    if joined:
        ray.init(runtime_env=worker_runtime_env() if worker_env else None, namespace="video-emotion", **kwargs)
    else:
        # Ray runs its workers at nice 15 by default, so that its own daemons stay responsive. On a local
        # Ray started for this job the workers are the job: at nice 15 any other process on the machine
        # takes their CPU first (measured on 2 shared cores: 1.5x slower per video). They run at 0.
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, **kwargs)
    try:
        yield joined
    finally:
        ray.shutdown()


def worker_runtime_env() -> dict | None:
    """This process's `WORKER_ENV` variables as a Ray runtime environment (None when it has none)."""
    env = {k: os.environ[k] for k in WORKER_ENV if k in os.environ}
    return {"env_vars": env} if env else None


def cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))

