"""The embedded default corpus: synthetic actors performing the seven emotions.

No labelled emotion video corpus can be downloaded at build time, so the project generates one,
deterministically from a seed, as real video files (mp4v) with a sidecar WAV. It exists to exercise
the whole pipeline end to end and to teach *when* in a clip an expression happens; it is not a
measure of how real faces are read. Each clip has onset -> apex -> offset dynamics, head motion,
scale, lighting, blur and noise variation; each actor has its own face shape, skin tone, eye spacing,
hair and voice. `actors` are who performs, `faces` draws, `voices` speaks, this module writes the corpus.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from video_emotion.data.synthetic.actors import Actor, actor_ids, make_actors
from video_emotion.data.synthetic.faces import EXPRESSIONS, degrade, draw_face, intensity_curve, make_background
from video_emotion.data.synthetic.voices import synth_audio, write_wav
from video_emotion.labels import LABELS

__all__ = ["EXPRESSIONS", "Actor", "actor_ids", "generate", "intensity_curve", "iter_generate", "make_actors",
           "synth_audio", "write_clip", "write_wav"]


def write_clip(path: Path, actor: Actor, label: str, *, fps: float, duration_s: float, width: int,
               height: int, rng: np.random.Generator) -> int:
    """Write one mp4v clip of `actor` performing `label`; returns the frame count."""
    n = max(1, int(round(fps * duration_s)))
    curve = intensity_curve(n, rng)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"cannot open a video writer for {path}")
    # Smooth random head motion: start/end pose plus a slow wobble.
    p0 = {"dx": rng.uniform(-0.08, 0.08), "dy": rng.uniform(-0.05, 0.05), "scale": rng.uniform(0.85, 1.1),
          "roll": rng.uniform(-8, 8)}
    p1 = {k: v + rng.uniform(-0.03, 0.03) * (100 if k == "roll" else 1) for k, v in p0.items()}
    light, grad = rng.uniform(0.7, 1.2), rng.uniform(0.0, 0.25)
    blur, noise = rng.uniform(0.0, 1.4), rng.uniform(1.0, 7.0)
    background = make_background(actor, (width, height), rng.uniform(0, 6.28))
    try:
        for i in range(n):
            a = i / max(1, n - 1)
            pose = {k: (1 - a) * p0[k] + a * p1[k] for k in p0}
            pose["dx"] += 0.01 * math.sin(6.28 * a * 1.5)
            frame = draw_face(actor, label, float(curve[i]), (width, height), pose, background)
            writer.write(degrade(frame, light, grad, blur, noise, rng))
    finally:
        writer.release()
    return n


def iter_generate(out_dir: Path, *, n_actors: int, clips_per_label: int, fps: float, duration_s: float,
                  width: int, height: int, audio: bool, seed: int, progress: bool = True,
                  root_for=None):
    """Write the corpus clip by clip, yielding `(root, record)` as each clip is done.

    `root_for(actor_id)` picks the folder a clip is written under (default `out_dir`), so that a
    caller can keep some actors' clips in private scratch space (e.g. to encrypt them at once).
    Record paths are relative to that root.
    """
    from tqdm import tqdm

    actors = make_actors(n_actors, seed)
    jobs = [(a, lab, r) for a in actors for lab in LABELS for r in range(clips_per_label)]
    for actor, label, rep in tqdm(jobs, desc="synthesising clips", disable=None if progress else True,
                                  unit="clip"):
        root = Path(root_for(actor.actor_id)) if root_for else Path(out_dir)
        # One generator per clip: a clip's pixels do not depend on which other clips exist.
        rng = np.random.default_rng([seed, int(actor.actor_id[1:]), LABELS.index(label), rep])
        rel = Path(actor.actor_id) / f"{actor.actor_id}_{label}_{rep:02d}.mp4"
        (root / rel.parent).mkdir(parents=True, exist_ok=True)
        write_clip(root / rel, actor, label, fps=fps, duration_s=duration_s, width=width,
                   height=height, rng=rng)
        audio_rel = None
        if audio:
            audio_rel = rel.with_suffix(".wav")
            write_wav(root / audio_rel, synth_audio(actor, label, duration_s, rng))
        yield root, {"path": rel.as_posix(), "label": label, "actor": actor.actor_id,
                     "audio_path": audio_rel.as_posix() if audio_rel else ""}


def generate(out_dir: Path, **kwargs) -> list[dict]:
    """Write the whole corpus under `out_dir`; return one record per clip."""
    return [rec for _, rec in iter_generate(out_dir, **kwargs)]
