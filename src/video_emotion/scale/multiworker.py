"""`train.strategy: multiworker`: the training loop on `train.workers` processes with
`tf.distribute.MultiWorkerMirroredStrategy`, launched as Ray actors.

TensorFlow's own interface is used directly: each worker is a Ray actor (one CPU, spread over the
nodes of `RAY_ADDRESS`'s cluster, or on a local Ray started for the job) that reports its node and a
free port; the stage writes the cluster spec into each worker's `TF_CONFIG` and each runs the same
`modeling.training.fit` under the strategy (gradients all-reduced every step; `train.batch_size` is
the global batch). On one machine the workers talk over 127.0.0.1. The train and val arrays go to the
workers through Ray's object store, once. Only the chief (worker 0) returns its model; the stage
saves it, once, like a single-process model. A worker that dies fails the stage with its error.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from video_emotion.config import ModelConfig, TrainConfig

log = logging.getLogger("video_emotion.train")


class TrainWorker:
    """One worker process of the multi-worker cluster (a Ray actor)."""

    def address(self) -> tuple[str, int, str]:
        """(host, a free port, Ray node id) of this worker."""
        import ray

        with socket.socket() as s:
            s.bind(("", 0))
            return ray.util.get_node_ip_address(), s.getsockname()[1], ray.get_runtime_context().get_node_id()

    def train(self, tf_config: str, model_cfg: ModelConfig, cfg: TrainConfig, settings: dict[str, Any],
              train: dict[str, np.ndarray], val: dict[str, np.ndarray], pretrained: str | None):
        """Fit under the strategy; the chief returns (model.keras bytes, history, metrics), the others None."""
        import json

        os.environ["TF_CONFIG"] = tf_config  # read by the strategy, created next
        from video_emotion.modeling.distributed import heartbeat_timeout_s, multiworker_strategy
        from video_emotion.modeling.training import fit

        strategy = multiworker_strategy()
        model, history, metrics = fit(model_cfg, cfg, settings, train, val, Path(pretrained) if pretrained else None,
                                      verbose=2 if json.loads(tf_config)["task"]["index"] == 0 else 0,
                                      strategy=strategy)
        if json.loads(tf_config)["task"]["index"] != 0:
            return None
        with tempfile.TemporaryDirectory(prefix="video-emotion-chief-") as tmp:
            model.save(Path(tmp) / "model.keras")
            return (Path(tmp) / "model.keras").read_bytes(), history, {**metrics, "workers": cfg.workers,
                                                                      "heartbeat_timeout_s": heartbeat_timeout_s()}


def fit_multiworker(model_cfg: ModelConfig, cfg: TrainConfig, settings: dict[str, Any], train: dict[str, np.ndarray],
                    val: dict[str, np.ndarray], pretrained: Path | None):
    """`modeling.training.fit` on `cfg.workers` workers; returns (model, history, metrics) like `fit`."""
    import json

    import ray

    from video_emotion.scale.cluster import ray_session

    with ray_session(num_cpus=cfg.workers):
        actor = ray.remote(TrainWorker).options(num_cpus=1, scheduling_strategy="SPREAD")
        workers = [actor.remote() for _ in range(cfg.workers)]
        try:
            addresses = ray.get([w.address.remote() for w in workers])
            here = ray.util.get_node_ip_address()
            one_machine = all(host == here for host, _, _ in addresses)
            cluster = {"worker": [f"{'127.0.0.1' if one_machine else host}:{port}" for host, port, _ in addresses]}
            log.info("multiworker training on %d workers: %s", len(workers), ", ".join(cluster["worker"]))
            log.info("multiworker nodes: %s", json.dumps([node for _, _, node in addresses]))
            data = ray.put(train), ray.put(val)
            results = ray.get([w.train.remote(json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
                                              model_cfg, cfg, settings, *data, str(pretrained) if pretrained else None)
                               for i, w in enumerate(workers)])
        finally:
            for w in workers:
                ray.kill(w)
    blob, history, metrics = results[0]
    return _load(blob), history, metrics


def _load(blob: bytes):
    import keras

    import video_emotion.modeling.model  # noqa: F401  (registers the custom layers)

    with tempfile.TemporaryDirectory(prefix="video-emotion-model-") as tmp:
        (Path(tmp) / "model.keras").write_bytes(blob)
        return keras.models.load_model(Path(tmp) / "model.keras")
