"""The model's inference graph, exported into the bundle beside `model.keras` at training time.

A Keras model loaded from `model.keras` has to be traced on its first call (seconds), and Keras and
TensorFlow together cost 5-8 s of start-up and 600-800 MB of memory before the first frame. So the
bundle also carries the model's inference graph, traced once here:

- `model.tflite`: the graph with its weights frozen, built-in TFLite ops only (the LSTM's loop is a
  WHILE op), run by the LiteRT interpreter (`ai-edge-litert`: starts in a fraction of a second,
  tens of MB) with a fixed batch of `LITE_BATCH` windows (shorter batches are padded);
- `graph/`: a SavedModel with one `serve` endpoint (any batch size), for `tf.saved_model.load`. By
  default it is written only when the TFLite conversion fails (a model with an op TFLite lacks):
  LiteRT is pinned with the project, and the SavedModel export costs training about as much time
  again as the TFLite one.

- `frame.tflite` and `head.tflite` (`parts`): the same model split at the per-frame readings (one face crop
  -> its features; T features and the mask -> the clip's probabilities), batch 1. Analysis runs the CNN once
  per distinct crop on them, and live camera sessions keep each frame's features instead of running the
  whole window again. Where the model splits, training writes these two and no `model.tflite` (nothing
  reads the whole graph where the parts exist, and its conversion was the longest of the three: 14 s of the
  default model's `train` stage); a design that cannot be split gets `model.tflite` as before.

`export.json` names what was written and the model's inputs. `model.keras` stays the model for
everything else (training, fine-tuning, inspection); the exports are only for prediction.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("video_emotion.modeling.export")

EXPORT_INFO = "export.json"
GRAPH_DIR = "graph"
LITE_MODEL = "model.tflite"
LITE_BATCH = 4   # windows per LiteRT call: batching pays (3x per window over 1), padding wastes at most 3
PARTS = {"frame": "frame.tflite", "head": "head.tflite"}
ENDPOINT = "serve"


def input_shapes(model: Any) -> dict[str, list[int]]:
    """Named inputs of a Keras model -> per-example shapes (no batch axis)."""
    inputs = model.input if isinstance(model.input, dict) else {}
    return {name: [int(d) for d in t.shape[1:]] for name, t in inputs.items()}


def _specs(shapes: dict[str, list[int]], batch: int | None):
    import tensorflow as tf

    return {name: tf.TensorSpec([batch, *shape], tf.float32, name=name) for name, shape in shapes.items()}


def export_graph(model: Any, out: Path, shapes: dict[str, list[int]]) -> None:
    """The SavedModel: one `serve` endpoint over the named inputs, any batch size."""
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(ENDPOINT, lambda x: model(x, training=False), input_signature=[_specs(shapes, None)])
    archive.write_out(str(out), verbose=False)


def export_lite(model: Any, out: Path, shapes: dict[str, list[int]], batch: int = LITE_BATCH) -> None:
    """The TFLite flatbuffer: weights frozen into constants (TFLite cannot read the LSTM's resource
    variables inside its loop), a fixed batch (the loop's tensor lists need static shapes), built-in
    ops only (LiteRT's pip package has no TensorFlow-op fallback)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    fn = tf.function(lambda x: model(x, training=False), input_signature=[_specs(shapes, batch)])
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function(), lower_control_flow=False)
    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)  # "provide trackable_obj": a frozen function has no variables to track
    try:
        converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        out.write_bytes(converter.convert())
    finally:
        absl.setLevel(level)


def export_parts(model: Any, cfg: Any, bundle_dir: Path) -> dict[str, Any] | None:
    """`frame.tflite` and `head.tflite` (see the module docstring), or None for a design that cannot be split."""
    from video_emotion.modeling.model import frame_parts

    parts = frame_parts(model, cfg)
    if parts is None:
        return None
    for part, name in zip(parts, PARTS.values(), strict=True):
        export_lite(part, bundle_dir / name, input_shapes(part), batch=1)
    return {**PARTS, "features": int(parts[0].output.shape[-1])}


def export_inference(model: Any, bundle_dir: str | Path, formats: tuple[str, ...] | None = None,
                     cfg: Any = None) -> dict[str, Any]:
    """Write the exports into `bundle_dir` and `export.json` saying which exist.

    By default (`formats` None: what training writes) the frame-by-frame parts when the model's settings
    (`cfg`, a `ModelConfig`) say it splits, else the whole TFLite graph, and the SavedModel only if that
    conversion fails too. `formats` (of "lite", "graph") asks for those whole-graph exports explicitly (with
    `cfg` and "lite", the parts as well). A model whose inputs are not named, or exports that all fail,
    leave the bundle served from `model.keras`."""
    bundle_dir = Path(bundle_dir)
    shapes = input_shapes(model)
    info: dict[str, Any] = {"inputs": shapes, "graph": None, "lite": None, "lite_batch": LITE_BATCH, "parts": None}
    if not shapes:
        log.warning("model inputs are not named: nothing exported, the bundle is served from model.keras")
        return info
    if cfg is not None and (formats is None or "lite" in formats):
        try:
            info["parts"] = export_parts(model, cfg, bundle_dir)
        except Exception as exc:  # the whole graph serves instead (analysis and live read whole windows)
            log.warning("no frame-by-frame export (%s: %s)", type(exc).__name__, str(exc).splitlines()[0][:300])
    for key, name, export in (("lite", LITE_MODEL, export_lite), ("graph", GRAPH_DIR, export_graph)):
        if formats is None and (info["parts"] or (key == "graph" and info["lite"])):
            continue
        if formats is not None and key not in formats:
            continue
        try:
            export(model, bundle_dir / name, shapes)
            info[key] = name
        except Exception as exc:  # an op the format lacks: that export is skipped, the others serve
            log.warning("no %s export (%s: %s)", key, type(exc).__name__, str(exc).splitlines()[0][:300])
    (bundle_dir / EXPORT_INFO).write_text(json.dumps(info, indent=2), encoding="utf-8")
    return info
