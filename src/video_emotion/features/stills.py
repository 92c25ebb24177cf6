"""Photos as video frames: a still photo placed in a frame the way a face sits in video.

Real-face evaluation reads photos through the same face path as video (whole-frame detection, the
model's crop). A detector needs context around a face, so a photo is placed in a 640x360 frame:
- a photo of 200 px or more (a head-and-shoulders portrait) keeps its size (a larger one is shrunk
  to fit the frame);
- a smaller one (a tight face crop, such as CK+'s 48x48) is enlarged 3x with bicubic interpolation
  (144 px: a face ~40% of the frame height, a typical webcam or interview framing);
- it is centred; the rest of the frame is the photo's median colour (or, with `border="replicate"`, its
  border pixels carried outwards).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

FRAME_W, FRAME_H = 640, 360
SMALL = 200     # photos below this (long side) are tight face crops
ENLARGE = 3.0


def read_image(path: str | Path) -> np.ndarray:
    """A photo as uint8: BGR, or grey (H, W) for a grey file (read as it is: no channel is invented)."""
    img = cv2.imread(str(path), cv2.IMREAD_ANYCOLOR)
    if img is None:
        raise ValueError(f"{path}: not a readable image")
    return img


def place_in_frame(image: np.ndarray, width: int = FRAME_W, height: int = FRAME_H,
                   border: str = "median") -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The photo in a width x height frame (see the module docstring), and where it sits (x, y, w, h)."""
    if max(image.shape[:2]) < SMALL:
        image = cv2.resize(image, None, fx=ENLARGE, fy=ENLARGE, interpolation=cv2.INTER_CUBIC)
    h, w = image.shape[:2]
    if h > height or w > width:
        s = min(height / h, width / w)
        image = cv2.resize(image, (int(w * s), int(h * s)), interpolation=cv2.INTER_AREA)
        h, w = image.shape[:2]
    top, left = (height - h) // 2, (width - w) // 2
    if border == "replicate":
        frame = cv2.copyMakeBorder(image, top, height - h - top, left, width - w - left, cv2.BORDER_REPLICATE)
        return frame, (left, top, w, h)
    fill = np.median(image.reshape(-1, image.shape[2]) if image.ndim == 3 else image.reshape(-1, 1), axis=0)
    frame = np.empty((height, width) + image.shape[2:], np.uint8)
    frame[...] = fill.astype(np.uint8) if image.ndim == 3 else int(fill[0])
    frame[top:top + h, left:left + w] = image
    return frame, (left, top, w, h)


def still_clip(frame: np.ndarray, out_path: str | Path, seconds: float = 2.0, fps: float = 8.0,
               fourcc: str = "FFV1") -> Path:
    """A clip of `frame` held still (`FFV1` in .mkv/.avi: lossless, every frame identical)."""
    h, w = frame.shape[:2]
    writer = cv2.VideoWriter(str(out_path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    if not writer.isOpened():
        raise OSError(f"{out_path}: cannot write a {fourcc} clip")
    try:
        bgr = frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        for _ in range(max(1, int(round(seconds * fps)))):
            writer.write(bgr)
    finally:
        writer.release()
    return Path(out_path)
