"""The model's named inputs from arrays (no Keras import: analysis and evaluation build inputs cheaply)."""

from __future__ import annotations

import numpy as np


def model_inputs(arrays: dict, keep, modalities: list[str]) -> dict:
    """The Keras inputs a model with `modalities` takes, from processed-split style arrays:
    `X` (N, T, S, S) crops and `face` (N, T) flags; `A` (N, mels, frames) log-mel and `has_audio` (N,)."""
    out = {}
    if "video" in modalities:
        out["frames"] = arrays["X"][keep]
        out["mask"] = np.asarray(arrays["face"][keep]).astype("float32")
    if "audio" in modalities:
        if "A" not in arrays:
            raise ValueError("the audio modality needs audio features: set preprocess.audio: true")
        out["audio"] = np.asarray(arrays["A"][keep]).astype("float32")
        out["has_audio"] = np.asarray(arrays["has_audio"][keep]).astype("float32")[:, None]
    return out
