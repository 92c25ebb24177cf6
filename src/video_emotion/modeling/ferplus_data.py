"""FER+ faces as the product reads them: the analysis-time crop of every image, computed once and cached.

A FER-2013 image is a 48x48 grey face already cropped by the challenge's own detector. The product never
reads such a crop: it finds a face in a video frame (BlazeFace), levels the eyes and cuts its own square
(`features.faces.FacePath`, settings from `PreprocessConfig`). So each image is placed in a video frame
exactly as the real-face evaluation places a small photo (`features.stills.place_in_frame`: enlarged 3x,
centred in 640x360) and read by the product's face path; its crop is what the network is trained and
scored on. Where the face path finds no face (about one image in six: tight crops cut the chin or
forehead, heads turned), the image itself is the crop (the 144 px placed photo resized to the network's
input): it is already a face crop, and dropping those images would make Test easier than the published
protocol. `found` keeps which is which, so figures can be given on both.

The crops depend only on the images, the face path settings and the detector, so they are cached under a
key made of those (`cache_key`), and a second run reads them back instead of running BlazeFace 35,710 times.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from video_emotion.config import PreprocessConfig
from video_emotion.data.ferplus import FerSplit
from video_emotion.features import stills
from video_emotion.features.faces import FacePath
from video_emotion.io_utils import atomic_path

log = logging.getLogger("video_emotion.ferplus")
CROP_VERSION = 1  # bump when the way crops are made changes


def image_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The photo itself as the crop (its placement in the frame, resized to the network's input)."""
    frame, (x, y, w, h) = stills.place_in_frame(image)
    return cv2.resize(frame[y:y + h, x:x + w], (size, size), interpolation=cv2.INTER_AREA)


def product_crops(paths: list[Path], faces: FacePath, progress: Callable[[int], None] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(n, S, S) uint8 crops of the images by the product's face path, and whether it found the face
    (where it did not, the image itself is the crop)."""
    size = faces.cfg.image_size
    crops, found = np.zeros((len(paths), size, size), np.uint8), np.zeros(len(paths), bool)
    for i, path in enumerate(paths):
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            raise ValueError(f"{path}: not a readable image")
        frame, _ = stills.place_in_frame(gray)
        crop, face = faces.read(frame)
        found[i] = face is not None
        crops[i] = crop if found[i] else image_crop(gray, size)
        if progress and (i + 1) % 1000 == 0:
            progress(i + 1)
    return crops, found


def cache_key(split: FerSplit, cfg: PreprocessConfig, face_models: Path) -> str:
    """A digest of what the crops depend on: the image list and votes, the face path settings, the detector."""
    h = hashlib.sha256()
    h.update(json.dumps({"v": CROP_VERSION, "split": split.split, "cfg": asdict(cfg)}, sort_keys=True).encode())
    h.update("\n".join(p.name for p in split.paths).encode())
    h.update(np.ascontiguousarray(split.votes).tobytes())
    for f in sorted(Path(face_models).glob("blazeface_*.tflite")):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def cached_crops(split: FerSplit, cfg: PreprocessConfig, face_models: Path, cache_dir: Path
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The split's crops and `found` flags, from `cache_dir` when made before with the same inputs."""
    path = Path(cache_dir) / f"crops-{split.split}-{cache_key(split, cfg, face_models)}.npz"
    if path.is_file():
        with np.load(path) as z:
            return z["crops"], z["found"]
    log.info("FER+ %s: cropping %d images with the product's face path (once; cached in %s)",
             split.split, len(split.paths), path.parent)
    faces = FacePath(cfg, face_models)
    crops, found = product_crops(split.paths, faces, lambda k: log.info("  %d / %d", k, len(split.paths)))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, crops=crops, found=found)
    log.info("FER+ %s: the face path found %.1f%% of the faces", split.split, 100 * found.mean())
    return crops, found
