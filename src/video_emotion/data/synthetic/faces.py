"""Drawn faces of the synthetic corpus: actors, expressions with onset -> apex -> offset dynamics,
head pose, lighting, blur and sensor noise (OpenCV drawing, supersampled)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# Expression parameters at full intensity; 0 everywhere is the neutral face.
#   brow_raise: +up, brow_tilt: + inner ends up (sad/fear), - inner ends down (angry)
#   eye_open: multiplier on eye height; mouth_curve: + smile, - frown; mouth_open: 0..1
#   mouth_width: multiplier; teeth: show teeth; lip_raise: upper lip / nose wrinkle (disgust)
EXPRESSIONS: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": {"mouth_curve": 1.0, "mouth_open": 0.35, "mouth_width": 1.3, "teeth": 1.0,
              "eye_open": -0.35, "cheek": 1.0, "brow_raise": 0.1},
    "sad": {"mouth_curve": -1.5, "brow_tilt": 1.4, "brow_raise": 0.0, "eye_open": -0.55,
            "mouth_width": 1.0, "head_down": 1.0, "lid_droop": 1.0},
    "surprise": {"brow_raise": 1.0, "eye_open": 0.8, "mouth_open": 1.0, "mouth_width": 0.65},
    "fear": {"brow_raise": 0.7, "brow_tilt": 0.9, "eye_open": 0.7, "mouth_open": 0.45,
             "mouth_width": 1.35, "mouth_curve": -0.35, "teeth": 0.6},
    "angry": {"brow_tilt": -1.7, "brow_raise": -0.9, "eye_open": -0.1, "mouth_curve": -0.5,
              "mouth_width": 1.15, "teeth": 1.0, "mouth_open": 0.45, "glare": 1.0},
    "disgust": {"lip_raise": 1.3, "brow_tilt": -0.8, "brow_raise": -0.6, "eye_open": -0.6,
                "mouth_curve": -0.9, "mouth_width": 1.1, "asym": 1.0, "mouth_open": 0.3, "teeth": 0.5},
}

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


def intensity_curve(n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """Onset -> apex -> offset envelope in [0, 1] with a random apex position and length."""
    t = np.linspace(0.0, 1.0, n_frames)
    onset_end = rng.uniform(0.15, 0.35)
    apex_end = onset_end + rng.uniform(0.3, 0.5)
    peak = rng.uniform(0.75, 1.0)
    curve = np.where(t < onset_end, t / onset_end,
                     np.where(t < apex_end, 1.0, 1.0 - (t - apex_end) / max(1e-6, 1.0 - apex_end) * 0.7))
    smooth = 0.5 - 0.5 * np.cos(np.clip(curve, 0, 1) * math.pi)
    return (smooth * peak).astype(np.float32)


def _expr(label: str, k: float) -> dict[str, float]:
    base = EXPRESSIONS[label]
    keys = ("brow_raise", "brow_tilt", "eye_open", "mouth_curve", "mouth_open", "teeth", "cheek",
            "lip_raise", "lip_press", "asym", "head_down", "lid_droop", "glare")
    out = {key: base.get(key, 0.0) * k for key in keys}
    out["mouth_width"] = 1.0 + (base.get("mouth_width", 1.0) - 1.0) * k
    return out


SCALE = 2  # drawing supersampling factor


def make_background(actor: Actor, size: tuple[int, int], phase: float) -> np.ndarray:
    """A softly textured backdrop (at drawing scale) so that the face is not on a flat field."""
    W, H = size[0] * SCALE, size[1] * SCALE
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    tex = 12 * np.sin(xx / (17 * SCALE) + phase) * np.cos(yy / (23 * SCALE))
    return np.clip(np.asarray(actor.background, np.float32) + tex[..., None], 0, 255).astype(np.uint8)


def draw_face(actor: Actor, label: str, k: float, size: tuple[int, int], pose: dict[str, float],
              background: np.ndarray | None = None) -> np.ndarray:
    """Render one BGR frame of `actor` showing `label` at intensity `k` in [0, 1].

    Drawn at SCALE x and downsampled so that strokes are anti-aliased like a camera image.
    """
    w, h = size
    W, H = w * SCALE, h * SCALE
    e = _expr(label, k)
    if background is None:
        background = make_background(actor, size, pose.get("bg_phase", 0.0))
    img = background.copy()

    fh = actor.face_h * H * pose["scale"]
    fw = actor.face_w * H * pose["scale"]
    cx = W / 2 + pose["dx"] * W
    cy = H / 2 + pose["dy"] * H + e["head_down"] * 0.03 * H
    u = fh / 100.0  # drawing unit: 1 % of the face half-height
    skin = actor.skin
    shade = tuple(int(c * 0.78) for c in skin)
    dark = (25, 25, 35)

    def P(x: float, y: float) -> tuple[int, int]:
        return int(round(cx + x * u)), int(round(cy + y * u))

    def L(v: float) -> int:
        return max(1, int(round(v * u)))

    hair = actor.hair
    # Hair behind the head.
    if actor.hair_style == 1:
        cv2.ellipse(img, P(0, 10), (L(fw / u * 1.22), L(118)), 0, 180, 360, hair, -1, cv2.LINE_AA)
        cv2.rectangle(img, P(-fw / u * 1.2, 10), P(fw / u * 1.2, 120), hair, -1, cv2.LINE_AA)
    elif actor.hair_style == 4:
        cv2.circle(img, P(0, -118), L(30), hair, -1, cv2.LINE_AA)
    # Neck and shoulders.
    cv2.rectangle(img, P(-32, 70), P(32, 160), shade, -1, cv2.LINE_AA)
    cv2.ellipse(img, P(0, 175), (L(150), L(60)), 0, 180, 360, tuple(int(c * 0.5) for c in hair), -1)
    # Ears and face.
    for s in (-1, 1):
        cv2.ellipse(img, P(s * fw / u * 0.98, 2), (L(12), L(20)), 0, 0, 360, shade, -1, cv2.LINE_AA)
    cv2.ellipse(img, P(0, 0), (int(fw), int(fh)), 0, 0, 360, skin, -1, cv2.LINE_AA)
    # Side shading for volume: a darker crescent on one cheek, blended inside the face only.
    x0, x1 = max(0, int(cx - fw)), min(W, int(cx + fw) + 1)
    y0, y1 = max(0, int(cy - fh)), min(H, int(cy + fh) + 1)
    if x1 > x0 and y1 > y0:
        roi = img[y0:y1, x0:x1]
        overlay = roi.copy()
        cv2.ellipse(overlay, (int(cx + 0.55 * fw) - x0, int(cy + 5 * u) - y0), (int(fw * 0.5), int(fh * 0.9)),
                    0, 0, 360, shade, -1)
        mask = np.zeros(roi.shape[:2], np.uint8)
        cv2.ellipse(mask, (int(cx) - x0, int(cy) - y0), (int(fw), int(fh)), 0, 0, 360, 255, -1)
        blend = cv2.addWeighted(roi, 0.6, overlay, 0.4, 0)
        np.copyto(roi, blend, where=mask[..., None] > 0)
    # Hair on top.
    if actor.hair_style in (0, 1, 2, 4):
        cv2.ellipse(img, P(0, -fh / u * 0.55), (int(fw * 1.05), int(fh * 0.55)), 0, 180, 360, hair, -1,
                    cv2.LINE_AA)
    if actor.hair_style == 2:
        cv2.ellipse(img, P(-fw / u * 0.25, -fh / u * 0.62), (int(fw * 0.8), int(fh * 0.25)), 10, 0, 180,
                    hair, -1, cv2.LINE_AA)
    if actor.hair_style == 3:
        cv2.ellipse(img, P(0, -fh / u * 0.7), (int(fw * 0.9), int(fh * 0.35)), 0, 180, 360,
                    tuple(int(0.5 * a + 0.5 * b) for a, b in zip(hair, skin)), -1, cv2.LINE_AA)

    ex = actor.eye_spacing * 100 / 2 * (fw / fh) * 2.4
    ey = -18.0
    eye_w = 14 * actor.eye_size
    eye_h = max(0.6, 7 * actor.eye_size * (1 + e["eye_open"]))
    asym = e["asym"]
    # Cheeks raised in a smile.
    if e["cheek"] > 0:
        for s in (-1, 1):
            cv2.ellipse(img, P(s * ex * 1.05, 18), (L(16), L(9 * e["cheek"] + 1)), 0, 0, 360,
                        tuple(int(min(255, c * 1.08)) for c in skin), -1, cv2.LINE_AA)
    # Eyes: sclera, iris, lids.
    for s in (-1, 1):
        c = P(s * ex, ey)
        cv2.ellipse(img, c, (L(eye_w), L(eye_h)), 0, 0, 360, (235, 235, 235), -1, cv2.LINE_AA)
        cv2.circle(img, c, L(min(eye_h, eye_w * 0.55)), (60, 50, 40), -1, cv2.LINE_AA)
        cv2.circle(img, c, L(min(eye_h, eye_w * 0.55) * 0.5), (10, 10, 10), -1, cv2.LINE_AA)
        cv2.ellipse(img, c, (L(eye_w), L(eye_h)), 0, 180, 360, dark, L(1.6), cv2.LINE_AA)
        # Eye socket shadow above the eye helps both the detector and the CNN.
        cv2.ellipse(img, P(s * ex, ey - eye_h - 2), (L(eye_w * 1.2), L(4)), 0, 180, 360, shade, L(2.5),
                    cv2.LINE_AA)
        if e["lid_droop"] > 0.1:  # heavy upper lid of sadness
            cv2.ellipse(img, c, (L(eye_w * 1.05), L(eye_h + 2)), 0, 180, 360, shade, -1, cv2.LINE_AA)
            cv2.line(img, P(s * ex - eye_w, ey), P(s * ex + eye_w, ey + 1), dark, L(2), cv2.LINE_AA)
        if e["glare"] > 0.1:  # lowered lid line of a glare
            cv2.line(img, P(s * ex - eye_w, ey - eye_h * (0.2 if s > 0 else 0.2) - 2 * s),
                     P(s * ex + eye_w, ey - eye_h * 0.2 + 2 * s), dark, L(2.5), cv2.LINE_AA)
        if e["cheek"] > 0.2 or e["lip_raise"] > 0.3:  # lower lid pushed up
            cv2.ellipse(img, P(s * ex, ey + eye_h), (L(eye_w), L(3)), 0, 180, 360, shade, L(1.5), cv2.LINE_AA)
    # Brows: inner end y and outer end y.
    by = ey - 16 - 12 * e["brow_raise"]
    for s in (-1, 1):
        side_asym = 1.0 + (0.6 * asym if s > 0 else -0.3 * asym)
        inner = (s * (ex - eye_w * 0.9), by - 9 * e["brow_tilt"] * side_asym + 2)
        outer = (s * (ex + eye_w * 1.15), by + 5 * e["brow_tilt"] * side_asym - 1)
        mid = (s * ex, by - 4 - 2 * max(0.0, e["brow_raise"]))
        pts = np.array([P(*inner), P(*mid), P(*outer)], np.int32)
        cv2.polylines(img, [pts], False, tuple(int(c * 0.35) for c in hair), L(actor.brow_thickness * 2.2),
                      cv2.LINE_AA)
    if e["brow_tilt"] < -0.3:  # frown lines between the brows
        for s in (-1, 1):
            cv2.line(img, P(s * 4, by + 2), P(s * 3, by + 12), shade, L(1.2), cv2.LINE_AA)
    # Nose.
    nl = 26 * actor.nose_len
    cv2.line(img, P(0, ey + 4), P(-2, ey + 4 + nl), shade, L(2), cv2.LINE_AA)
    cv2.ellipse(img, P(0, ey + 6 + nl), (L(9 + 3 * e["lip_raise"]), L(5)), 0, 0, 180, shade, L(2), cv2.LINE_AA)
    if e["lip_raise"] > 0.2:  # nose wrinkle
        for dy in (0, 4):
            cv2.line(img, P(-7, ey + 10 + dy), P(7, ey + 8 + dy), shade, L(1.2), cv2.LINE_AA)
    # Mouth.
    my = 45 - 6 * e["lip_raise"]
    mw = 28 * actor.mouth_width * e["mouth_width"]
    curve = e["mouth_curve"] * 12
    opening = e["mouth_open"] * 30
    lip = (45, 45, 120)
    left = (-mw, my - curve + 4 * asym)
    right = (mw, my - curve - 5 * asym)
    if opening > 2.5:
        top_mid = (0, my - opening * 0.35 - 3 * e["lip_raise"] + curve * 0.3)
        bot_mid = (0, my + opening * 0.65 + curve * 0.4)
        poly = np.array([P(*left), P(-mw * 0.5, top_mid[1]), P(*top_mid), P(mw * 0.5, top_mid[1]),
                         P(*right), P(mw * 0.5, bot_mid[1]), P(*bot_mid), P(-mw * 0.5, bot_mid[1])], np.int32)
        cv2.fillPoly(img, [poly], (35, 20, 60), cv2.LINE_AA)
        if e["teeth"] > 0.2:
            tpoly = np.array([P(*left), P(-mw * 0.5, top_mid[1] + 1), P(*top_mid), P(mw * 0.5, top_mid[1] + 1),
                              P(*right), P(mw * 0.5, top_mid[1] + opening * 0.35),
                              P(-mw * 0.5, top_mid[1] + opening * 0.35)], np.int32)
            cv2.fillPoly(img, [tpoly], (230, 235, 240), cv2.LINE_AA)
        cv2.polylines(img, [poly], True, lip, L(3.5), cv2.LINE_AA)
    else:
        thickness = L(4.5 - 2.0 * e["lip_press"])
        pts = np.array([P(*left), P(-mw * 0.45, my + curve * 0.55), P(0, my + curve * 0.75),
                        P(mw * 0.45, my + curve * 0.55), P(*right)], np.int32)
        cv2.polylines(img, [pts], False, lip, thickness, cv2.LINE_AA)
        if e["lip_press"] > 0.3:
            cv2.line(img, P(-mw * 0.6, my + 7), P(mw * 0.6, my + 7), shade, L(1.5), cv2.LINE_AA)
    if e["mouth_curve"] < -0.3:  # chin dimple of a frown
        cv2.ellipse(img, P(0, my + 18), (L(8), L(3)), 0, 180, 360, shade, L(1.2), cv2.LINE_AA)
    if e["cheek"] > 0.3:  # nasolabial folds
        for s in (-1, 1):
            cv2.ellipse(img, P(s * (mw + 2), my - 12), (L(6), L(16)), 0, -70 * s + 90, 70 * s + 90 + 0,
                        shade, L(1.5), cv2.LINE_AA)

    # Head roll, then downsample.
    M = cv2.getRotationMatrix2D((cx, cy), pose["roll"], 1.0)
    img = cv2.warpAffine(img, M, (W, H), borderMode=cv2.BORDER_REFLECT)
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def degrade(img: np.ndarray, light: float, gradient: float, blur: float, noise: float,
            rng: np.random.Generator) -> np.ndarray:
    """Camera-like variation: global light, a side light gradient, defocus blur and sensor noise."""
    h, w = img.shape[:2]
    ramp = np.linspace(1 - gradient, 1 + gradient, w, dtype=np.float32)[None, :, None]
    out = img.astype(np.float32) * light * ramp
    if blur > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), blur)
    out += rng.normal(0, noise, out.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)
