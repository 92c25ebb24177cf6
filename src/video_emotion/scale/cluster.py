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
def ray_session(num_cpus: int | None = None) -> Iterator[None]:
    """Ray for the duration of the block. A Ray this process already runs (a test's, a notebook's) is
    used as it is and left running; otherwise `RAY_ADDRESS` is joined, or a local Ray with `num_cpus`
    CPUs (default: all) is started, and disconnected or stopped at the end."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        yield
        return
    kwargs = {"include_dashboard": False, "logging_level": logging.WARNING}
    if os.environ.get("RAY_ADDRESS"):
        env = {k: os.environ[k] for k in WORKER_ENV if k in os.environ}
        ray.init(runtime_env={"env_vars": env}, **kwargs)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, **kwargs)
    try:
        yield
    finally:
        ray.shutdown()


def cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def quiet_data() -> None:
    """Ray Data without its own progress bars and plan printing: the job reports its own progress."""
    import ray

    data_log = logging.getLogger("ray.data")
    data_log.setLevel(logging.ERROR)  # not the warning that says progress bars are off, which is the point
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.enable_auto_log_stats = False
    data_log.setLevel(logging.WARNING)
