"""Drawn faces of the synthetic corpus: expressions with onset -> apex -> offset dynamics, head pose,
lighting, blur and sensor noise (OpenCV drawing, supersampled). Who is drawn: `actors`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from video_emotion.data.synthetic.actors import Actor

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


@dataclass(frozen=True)
class _Canvas:
    """The frame being drawn, in face units: 1 % of the face half-height, from the face centre."""

    img: np.ndarray
    cx: float
    cy: float
    u: float

    def pt(self, x: float, y: float) -> tuple[int, int]:
        """The pixel of face point (x, y)."""
        return int(round(self.cx + x * self.u)), int(round(self.cy + y * self.u))

    def px(self, v: float) -> int:
        """A length in face units as pixels (at least 1)."""
        return max(1, int(round(v * self.u)))


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
    fh = actor.face_h * H * pose["scale"]
    fw = actor.face_w * H * pose["scale"]
    cx = W / 2 + pose["dx"] * W
    cy = H / 2 + pose["dy"] * H + e["head_down"] * 0.03 * H
    canvas = _Canvas(background.copy(), cx, cy, fh / 100.0)
    shade = tuple(int(c * 0.78) for c in actor.skin)
    _draw_head(canvas, actor, fw, fh, shade)
    ex, ey, eye_w = _draw_eyes(canvas, actor, e, fw / fh, shade)
    _draw_brows(canvas, actor, e, ex, ey, eye_w, shade)
    _draw_nose(canvas, actor, e, ey, shade)
    _draw_mouth(canvas, actor, e, shade)
    # Head roll, then downsample.
    M = cv2.getRotationMatrix2D((cx, cy), pose["roll"], 1.0)
    img = cv2.warpAffine(canvas.img, M, (W, H), borderMode=cv2.BORDER_REFLECT)
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def _draw_head(c: _Canvas, actor: Actor, fw: float, fh: float, shade: tuple[int, ...]) -> None:
    """Hair behind the head, neck and shoulders, ears, the face with a shaded cheek, hair on top."""
    img, u, cx, cy, hair, skin = c.img, c.u, c.cx, c.cy, actor.hair, actor.skin
    H, W = img.shape[:2]
    if actor.hair_style == 1:
        cv2.ellipse(img, c.pt(0, 10), (c.px(fw / u * 1.22), c.px(118)), 0, 180, 360, hair, -1, cv2.LINE_AA)
        cv2.rectangle(img, c.pt(-fw / u * 1.2, 10), c.pt(fw / u * 1.2, 120), hair, -1, cv2.LINE_AA)
    elif actor.hair_style == 4:
        cv2.circle(img, c.pt(0, -118), c.px(30), hair, -1, cv2.LINE_AA)
    cv2.rectangle(img, c.pt(-32, 70), c.pt(32, 160), shade, -1, cv2.LINE_AA)
    cv2.ellipse(img, c.pt(0, 175), (c.px(150), c.px(60)), 0, 180, 360, tuple(int(v * 0.5) for v in hair), -1)
    for s in (-1, 1):
        cv2.ellipse(img, c.pt(s * fw / u * 0.98, 2), (c.px(12), c.px(20)), 0, 0, 360, shade, -1, cv2.LINE_AA)
    cv2.ellipse(img, c.pt(0, 0), (int(fw), int(fh)), 0, 0, 360, skin, -1, cv2.LINE_AA)
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
    if actor.hair_style in (0, 1, 2, 4):
        cv2.ellipse(img, c.pt(0, -fh / u * 0.55), (int(fw * 1.05), int(fh * 0.55)), 0, 180, 360, hair, -1,
                    cv2.LINE_AA)
    if actor.hair_style == 2:
        cv2.ellipse(img, c.pt(-fw / u * 0.25, -fh / u * 0.62), (int(fw * 0.8), int(fh * 0.25)), 10, 0, 180,
                    hair, -1, cv2.LINE_AA)
    if actor.hair_style == 3:
        cv2.ellipse(img, c.pt(0, -fh / u * 0.7), (int(fw * 0.9), int(fh * 0.35)), 0, 180, 360,
                    tuple(int(0.5 * a + 0.5 * b) for a, b in zip(hair, skin, strict=True)), -1, cv2.LINE_AA)


def _draw_eyes(c: _Canvas, actor: Actor, e: dict[str, float], aspect: float,
               shade: tuple[int, ...]) -> tuple[float, float, float]:
    """Raised cheeks, then each eye (sclera, iris, lids, the lid shapes of the expression); returns the
    eye centre's x offset and height and the eye's half-width (the brows sit on them)."""
    img, dark = c.img, (25, 25, 35)
    ex = actor.eye_spacing * 100 / 2 * aspect * 2.4
    ey = -18.0
    eye_w = 14 * actor.eye_size
    eye_h = max(0.6, 7 * actor.eye_size * (1 + e["eye_open"]))
    if e["cheek"] > 0:
        for s in (-1, 1):
            cv2.ellipse(img, c.pt(s * ex * 1.05, 18), (c.px(16), c.px(9 * e["cheek"] + 1)), 0, 0, 360,
                        tuple(int(min(255, v * 1.08)) for v in actor.skin), -1, cv2.LINE_AA)
    for s in (-1, 1):
        centre = c.pt(s * ex, ey)
        cv2.ellipse(img, centre, (c.px(eye_w), c.px(eye_h)), 0, 0, 360, (235, 235, 235), -1, cv2.LINE_AA)
        cv2.circle(img, centre, c.px(min(eye_h, eye_w * 0.55)), (60, 50, 40), -1, cv2.LINE_AA)
        cv2.circle(img, centre, c.px(min(eye_h, eye_w * 0.55) * 0.5), (10, 10, 10), -1, cv2.LINE_AA)
        cv2.ellipse(img, centre, (c.px(eye_w), c.px(eye_h)), 0, 180, 360, dark, c.px(1.6), cv2.LINE_AA)
        # Eye socket shadow above the eye helps both the detector and the CNN.
        cv2.ellipse(img, c.pt(s * ex, ey - eye_h - 2), (c.px(eye_w * 1.2), c.px(4)), 0, 180, 360, shade,
                    c.px(2.5), cv2.LINE_AA)
        if e["lid_droop"] > 0.1:  # heavy upper lid of sadness
            cv2.ellipse(img, centre, (c.px(eye_w * 1.05), c.px(eye_h + 2)), 0, 180, 360, shade, -1, cv2.LINE_AA)
            cv2.line(img, c.pt(s * ex - eye_w, ey), c.pt(s * ex + eye_w, ey + 1), dark, c.px(2), cv2.LINE_AA)
        if e["glare"] > 0.1:  # lowered lid line of a glare
            cv2.line(img, c.pt(s * ex - eye_w, ey - eye_h * (0.2 if s > 0 else 0.2) - 2 * s),
                     c.pt(s * ex + eye_w, ey - eye_h * 0.2 + 2 * s), dark, c.px(2.5), cv2.LINE_AA)
        if e["cheek"] > 0.2 or e["lip_raise"] > 0.3:  # lower lid pushed up
            cv2.ellipse(img, c.pt(s * ex, ey + eye_h), (c.px(eye_w), c.px(3)), 0, 180, 360, shade, c.px(1.5),
                        cv2.LINE_AA)
    return ex, ey, eye_w


def _draw_brows(c: _Canvas, actor: Actor, e: dict[str, float], ex: float, ey: float, eye_w: float,
                shade: tuple[int, ...]) -> None:
    """Brows from inner end through the middle to the outer end, and frown lines between them."""
    by = ey - 16 - 12 * e["brow_raise"]
    for s in (-1, 1):
        side_asym = 1.0 + (0.6 * e["asym"] if s > 0 else -0.3 * e["asym"])
        inner = (s * (ex - eye_w * 0.9), by - 9 * e["brow_tilt"] * side_asym + 2)
        outer = (s * (ex + eye_w * 1.15), by + 5 * e["brow_tilt"] * side_asym - 1)
        mid = (s * ex, by - 4 - 2 * max(0.0, e["brow_raise"]))
        pts = np.array([c.pt(*inner), c.pt(*mid), c.pt(*outer)], np.int32)
        cv2.polylines(c.img, [pts], False, tuple(int(v * 0.35) for v in actor.hair), c.px(actor.brow_thickness * 2.2),
                      cv2.LINE_AA)
    if e["brow_tilt"] < -0.3:
        for s in (-1, 1):
            cv2.line(c.img, c.pt(s * 4, by + 2), c.pt(s * 3, by + 12), shade, c.px(1.2), cv2.LINE_AA)


def _draw_nose(c: _Canvas, actor: Actor, e: dict[str, float], ey: float, shade: tuple[int, ...]) -> None:
    nose = 26 * actor.nose_len
    cv2.line(c.img, c.pt(0, ey + 4), c.pt(-2, ey + 4 + nose), shade, c.px(2), cv2.LINE_AA)
    cv2.ellipse(c.img, c.pt(0, ey + 6 + nose), (c.px(9 + 3 * e["lip_raise"]), c.px(5)), 0, 0, 180, shade, c.px(2),
                cv2.LINE_AA)
    if e["lip_raise"] > 0.2:  # nose wrinkle
        for dy in (0, 4):
            cv2.line(c.img, c.pt(-7, ey + 10 + dy), c.pt(7, ey + 8 + dy), shade, c.px(1.2), cv2.LINE_AA)


def _draw_mouth(c: _Canvas, actor: Actor, e: dict[str, float], shade: tuple[int, ...]) -> None:
    """An open mouth (with teeth) or closed lips, the chin dimple of a frown, the folds of a smile."""
    img, pt, px = c.img, c.pt, c.px
    my = 45 - 6 * e["lip_raise"]
    mw = 28 * actor.mouth_width * e["mouth_width"]
    curve = e["mouth_curve"] * 12
    opening = e["mouth_open"] * 30
    lip = (45, 45, 120)
    left = (-mw, my - curve + 4 * e["asym"])
    right = (mw, my - curve - 5 * e["asym"])
    if opening > 2.5:
        top_mid = (0, my - opening * 0.35 - 3 * e["lip_raise"] + curve * 0.3)
        bot_mid = (0, my + opening * 0.65 + curve * 0.4)
        poly = np.array([pt(*left), pt(-mw * 0.5, top_mid[1]), pt(*top_mid), pt(mw * 0.5, top_mid[1]),
                         pt(*right), pt(mw * 0.5, bot_mid[1]), pt(*bot_mid), pt(-mw * 0.5, bot_mid[1])], np.int32)
        cv2.fillPoly(img, [poly], (35, 20, 60), cv2.LINE_AA)
        if e["teeth"] > 0.2:
            teeth = np.array([pt(*left), pt(-mw * 0.5, top_mid[1] + 1), pt(*top_mid), pt(mw * 0.5, top_mid[1] + 1),
                              pt(*right), pt(mw * 0.5, top_mid[1] + opening * 0.35),
                              pt(-mw * 0.5, top_mid[1] + opening * 0.35)], np.int32)
            cv2.fillPoly(img, [teeth], (230, 235, 240), cv2.LINE_AA)
        cv2.polylines(img, [poly], True, lip, px(3.5), cv2.LINE_AA)
    else:
        pts = np.array([pt(*left), pt(-mw * 0.45, my + curve * 0.55), pt(0, my + curve * 0.75),
                        pt(mw * 0.45, my + curve * 0.55), pt(*right)], np.int32)
        cv2.polylines(img, [pts], False, lip, px(4.5 - 2.0 * e["lip_press"]), cv2.LINE_AA)
        if e["lip_press"] > 0.3:
            cv2.line(img, pt(-mw * 0.6, my + 7), pt(mw * 0.6, my + 7), shade, px(1.5), cv2.LINE_AA)
    if e["mouth_curve"] < -0.3:  # chin dimple of a frown
        cv2.ellipse(img, pt(0, my + 18), (px(8), px(3)), 0, 180, 360, shade, px(1.2), cv2.LINE_AA)
    if e["cheek"] > 0.3:  # nasolabial folds
        for s in (-1, 1):
            cv2.ellipse(img, pt(s * (mw + 2), my - 12), (px(6), px(16)), 0, -70 * s + 90, 70 * s + 90 + 0,
                        shade, px(1.5), cv2.LINE_AA)


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
