"""The synthetic corpus's actors: everything about a face and a voice that does not change with emotion."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SKIN_TONES = [(185, 205, 240), (150, 180, 225), (120, 160, 210), (95, 130, 180), (70, 100, 150),
              (55, 80, 120), (165, 190, 235), (110, 145, 195)]
HAIR_COLOURS = [(20, 20, 25), (30, 45, 70), (40, 70, 120), (60, 110, 170), (140, 150, 160),
                (15, 25, 45), (90, 120, 150)]


@dataclass(frozen=True)
class Actor:
    """A synthetic identity: everything about a face that does not change with emotion."""

    actor_id: str
    face_w: float      # half-width of the face ellipse, fraction of frame height
    face_h: float      # half-height
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    hair_style: int    # 0 short, 1 long, 2 bangs, 3 bald-ish, 4 bun
    eye_spacing: float
    eye_size: float
    brow_thickness: int
    mouth_width: float
    nose_len: float
    background: tuple[int, int, int]
    pitch_hz: float    # speaking fundamental frequency
    female: bool


def actor_ids(n_actors: int) -> list[str]:
    return [f"A{i + 1:02d}" for i in range(n_actors)]


def make_actors(n: int, seed: int) -> list[Actor]:
    """`n` distinct actors, deterministic in `seed`."""
    rng = np.random.default_rng(seed)
    actors = []
    for i in range(n):
        female = bool(i % 2)
        actors.append(Actor(
            actor_id=actor_ids(n)[i],
            face_w=float(rng.uniform(0.24, 0.31)),
            face_h=float(rng.uniform(0.33, 0.39)),
            skin=SKIN_TONES[int(rng.integers(len(SKIN_TONES)))],
            hair=HAIR_COLOURS[int(rng.integers(len(HAIR_COLOURS)))],
            hair_style=int(rng.integers(5)),
            eye_spacing=float(rng.uniform(0.36, 0.46)),
            eye_size=float(rng.uniform(0.85, 1.2)),
            brow_thickness=int(rng.integers(2, 5)),
            mouth_width=float(rng.uniform(0.85, 1.15)),
            nose_len=float(rng.uniform(0.8, 1.2)),
            background=tuple(int(c) for c in rng.integers(40, 200, size=3)),
            pitch_hz=float(rng.uniform(180, 250) if female else rng.uniform(95, 140)),
            female=female,
        ))
    return actors
