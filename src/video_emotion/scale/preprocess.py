"""Preprocessing on Ray (`preprocess.engine: ray`): clips cropped in parallel Ray tasks.

Each task runs the library's own `process_clips` on a chunk of consecutive clips, and the chunks are
put back in order, so the arrays are the same, in the same order, as the local engine's: DVC sees the
same outputs whichever engine made them. Clips of an encrypted split are decrypted and cropped here,
in the stage's own process, while the tasks run: the data key never leaves it (no key in the object
store, none on another node). Audio features stay in the stage's process too (one ffmpeg call per
clip, a small part of the stage's time). A task whose worker dies is run again, up to `RETRIES` times.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from video_emotion import security
from video_emotion.config import PreprocessConfig
from video_emotion.features.clips import process_clips

log = logging.getLogger("video_emotion.preprocess")
RETRIES = 3
TASKS_PER_CPU = 4  # several chunks per CPU: a slow clip holds up a small part of the split, not a CPU's share


@contextlib.contextmanager
def engine_session(engine: str) -> Iterator[None]:
    """Ray for the `ray` engine (the cluster of RAY_ADDRESS, or a local Ray stopped afterwards)."""
    if engine != "ray":
        yield
        return
    from video_emotion.scale.cluster import ray_session

    with ray_session():
        yield


def clip_cropper(engine: str) -> Callable[..., dict[str, Any]]:
    """`process_clips` or its Ray counterpart (same arguments, same result)."""
    if engine not in ("local", "ray"):
        raise ValueError(f"preprocess.engine must be local or ray, got {engine!r}")
    return process_clips_ray if engine == "ray" else process_clips


def _crop_chunk(paths: list[Path], cfg: PreprocessConfig, face_models: Path | None = None) -> dict[str, Any]:
    import cv2
    import ray

    cv2.setNumThreads(1)  # one CPU per task
    return {**process_clips(paths, cfg, face_models=face_models), "node": ray.get_runtime_context().get_node_id()}


def _node_slots() -> list:
    """One soft node affinity per CPU of every alive node, in turn: chunk k goes to slot k. Left to Ray,
    short chunks all run on the first worker it leases (it drains the queue before a worker starts on
    another node); soft, so a chunk whose node died runs elsewhere."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [(n["NodeID"], int(n["Resources"].get("CPU", 0))) for n in ray.nodes() if n["Alive"]]
    turns = [node for k in range(max(c for _, c in nodes)) for node, c in nodes if c > k]
    return [NodeAffinitySchedulingStrategy(node, soft=True) for node in turns] or ["DEFAULT"]


def process_clips_ray(paths: list[Path], cfg: PreprocessConfig, desc: str = "clips",
                      names: list[str | None] | None = None, ring: security.KeyRing | None = None,
                      face_models: Path | None = None) -> dict[str, Any]:
    """`features.clips.process_clips` with the plaintext clips cropped in Ray tasks (inside `engine_session`)."""
    import ray
    from tqdm import tqdm

    from video_emotion.scale.cluster import cluster_cpus

    n, t, s = len(paths), cfg.n_frames, cfg.image_size
    secret = [i for i in range(n) if names and names[i] is not None]
    plain = [i for i in range(n) if not (names and names[i] is not None)]
    size = max(1, math.ceil(len(plain) / (cluster_cpus() * TASKS_PER_CPU)))
    chunks = [plain[k:k + size] for k in range(0, len(plain), size)]
    task, slots = ray.remote(_crop_chunk), _node_slots()
    refs = {task.options(num_cpus=1, max_retries=RETRIES, scheduling_strategy=slots[k % len(slots)])
            .remote([paths[i] for i in chunk], cfg, face_models): chunk for k, chunk in enumerate(chunks)}
    out = {"X": np.zeros((n, t, s, s), np.uint8), "face": np.zeros((n, t), bool), "detected": np.zeros((n, t), bool)}
    errors: dict[int, list[str]] = {}

    def put(idx: list[int], res: dict[str, Any]) -> None:
        for k in out:
            out[k][idx] = res[k]
        errors[idx[0] if idx else -1] = res["errors"]

    if secret:  # meanwhile, here: the key stays in this process
        put(secret, process_clips([paths[i] for i in secret], cfg, desc=f"{desc} (encrypted, here)",
                                  names=[names[i] for i in secret], ring=ring, face_models=face_models))
    nodes: Counter = Counter()
    with tqdm(total=len(plain), desc=f"{desc} (ray)", unit="clip", disable=None) as bar:
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            chunk, res = refs[done[0]], ray.get(done[0])
            put(chunk, res)
            nodes[res["node"]] += 1
            bar.update(len(chunk))
    log.info("%s: crop tasks per node: %s", desc, json.dumps(dict(nodes)))
    return {**out, "errors": [e for k in sorted(errors) for e in errors[k]]}
