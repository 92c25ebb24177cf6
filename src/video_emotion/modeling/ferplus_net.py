"""The face-api.js expression network cut for fine-tuning on FER+, and written back in its own format.

- `split_network(folder, blocks)`: the network (`backbones.faceapi_backbone`) as a frozen trunk and the
  layers after it. The trunk's output (the input of the last `blocks` dense blocks; with 0, the pooled
  features) does not change while the last blocks train, so it is computed once per face and cached;
  only the last blocks and the classifier train, on those readings.
- `classifier_model(...)`: readings -> the fine-tuned blocks -> 8 logits (the seven product labels in
  canonical order, then contempt), initialised from the network's own 7-way classifier (contempt starts
  from zero weights and a low bias), so training starts where the network stands.
- `export_network(...)`: the fine-tuned network as a face-api.js weights folder (manifest + float32 .bin,
  the same tensor names and shapes), with the 7 product columns of the 8-way classifier as its `fc`:
  the softmax over those 7 logits is the 8-way reading renormalised without contempt. Any code that reads
  the original network reads this one (`backbones.pretrained_backbone`), and so does face-api.js itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
from keras import layers

from video_emotion.labels import LABELS
from video_emotion.modeling.backbones import (
    FACEAPI_LABELS,
    FACEAPI_MANIFEST,
    FACEAPI_NAME,
    faceapi_backbone,
)

WEIGHTS_FILE = "face_expression_model.bin"
# blocks fine-tuned -> the layer whose input is the cached reading
CUT = {0: "faceapi_expressions", 1: "dense3_conv0", 2: "dense2_conv0"}
N8 = len(LABELS) + 1


def split_network(folder: str | Path, blocks: int) -> tuple[keras.Model, keras.Model, keras.Model]:
    """(backbone, trunk, tail): trunk = input -> reading; tail = reading -> pooled features, sharing the
    backbone's layers (training the tail changes the backbone)."""
    if blocks not in CUT:
        raise ValueError(f"blocks must be one of {sorted(CUT)}, got {blocks}")
    backbone = faceapi_backbone(folder)
    cut = backbone.get_layer(CUT[blocks]).input
    trunk = keras.Model(backbone.input, cut, name="ferplus_trunk")
    if blocks == 0:  # the reading is the pooled features themselves
        features = keras.Input(cut.shape[1:], name="features")
        return backbone, trunk, keras.Model(features, layers.Identity()(features), name="ferplus_tail")
    tail = keras.Model(cut, backbone.get_layer("faceapi_features").output, name="ferplus_tail")
    for layer in tail.layers:
        layer.trainable = True
    return backbone, trunk, tail


def classifier_model(backbone: keras.Model, tail: keras.Model, dropout: float) -> keras.Model:
    """Readings -> tail -> dropout -> 8 logits, the first seven initialised from the network's classifier."""
    inp = keras.Input(tail.input_shape[1:], name="reading")
    x = layers.Dropout(dropout)(tail(inp)) if dropout > 0 else tail(inp)
    dense = layers.Dense(N8, name="ferplus_logits")
    out = dense(x)
    kernel, bias = backbone.get_layer("faceapi_expressions").get_weights()
    k8 = np.concatenate([kernel, np.zeros((kernel.shape[0], 1), np.float32)], axis=1)
    b8 = np.concatenate([bias, [bias.min() - 2.0]]).astype(np.float32)
    dense.set_weights([k8, b8])
    return keras.Model(inp, out, name="ferplus_classifier")


def _faceapi_columns() -> np.ndarray:
    """For each face-api.js output position, the canonical column that feeds it."""
    return np.array([LABELS.index(next(c for c, f in FACEAPI_NAME.items() if f == name)) for name in FACEAPI_LABELS])


def network_tensors(backbone: keras.Model, logits: layers.Dense, names: list[str]) -> dict[str, np.ndarray]:
    """The face-api.js tensors `names` from the (fine-tuned) backbone, `fc` from the 8-way layer's 7 columns."""
    kernel, bias = logits.get_weights()
    cols = _faceapi_columns()
    out: dict[str, np.ndarray] = {}
    for name in names:
        block, _, kind = name.rpartition("/")
        if block == "fc":
            out[name] = (kernel[:, cols] if kind == "weights" else bias[cols]).astype(np.float32)
            continue
        w = backbone.get_layer(block.replace("/", "_")).get_weights()
        index = {"filters": 0, "depthwise_filter": 0, "pointwise_filter": 1, "bias": len(w) - 1}[kind]
        out[name] = np.asarray(w[index], np.float32)
    return out


def export_network(backbone: keras.Model, logits: layers.Dense, base: str | Path, dest: str | Path) -> Path:
    """Write the fine-tuned network to `dest` in face-api.js's format (manifest + float32 weights)."""
    base, dest = Path(base), Path(dest)
    groups = json.loads((base / FACEAPI_MANIFEST).read_text(encoding="utf-8"))
    names = [w["name"] for g in groups for w in g["weights"]]
    tensors = network_tensors(backbone, logits, names)
    dest.mkdir(parents=True, exist_ok=True)
    with open(dest / WEIGHTS_FILE, "wb") as fh:
        for name in names:
            fh.write(np.ascontiguousarray(tensors[name], "<f4").tobytes())
    manifest = [{"paths": [WEIGHTS_FILE], "weights": [{"name": n, "shape": list(tensors[n].shape), "dtype": "float32"}
                                                       for n in names]}]
    (dest / FACEAPI_MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    return dest


class Batches(keras.utils.PyDataset):
    """Shuffled float32 batches of cached float16 readings (rows of one or more arrays, memory-mapped or not)
    with their targets: nothing is copied whole, so training holds one batch, not the training set, in float32."""

    def __init__(self, sources: list[tuple[np.ndarray, np.ndarray]], targets: np.ndarray, batch_size: int,
                 seed: int) -> None:
        super().__init__()
        self.sources, self.targets, self.batch_size = sources, np.asarray(targets, np.float32), batch_size
        self.index = np.concatenate([np.stack([np.full(len(rows), k), rows], 1) for k, (_, rows) in enumerate(sources)])
        if len(self.index) != len(self.targets):
            raise ValueError(f"{len(self.index)} readings for {len(self.targets)} targets")
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(self.index))

    def __len__(self) -> int:
        return -(-len(self.index) // self.batch_size)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        pick = np.sort(self.order[i * self.batch_size:(i + 1) * self.batch_size])
        xs, ts = [], []
        for k, (arr, _) in enumerate(self.sources):
            at = pick[self.index[pick, 0] == k]
            if len(at):
                rows = self.index[at, 1]
                o = np.argsort(rows, kind="stable")
                xs.append(np.asarray(arr[rows[o]], np.float32))
                ts.append(self.targets[at[o]])
        return np.concatenate(xs), np.concatenate(ts)

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.index))


def mix_weights(layers_: list[keras.layers.Layer], start: list[list[np.ndarray]], alpha: float) -> None:
    """Weight-space ensembling (WiSE-FT, Wortsman et al. 2022): each layer's weights moved back to
    start + alpha * (fine-tuned - start); alpha 1 keeps the fine-tuned network, 0 the one it started from."""
    for layer, w0 in zip(layers_, start, strict=True):
        layer.set_weights([a + alpha * (b - a) for a, b in zip(w0, layer.get_weights(), strict=True)])
