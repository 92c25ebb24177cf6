"""How well does a model read FER+ Test (majority labels), through the product's own face path?

    .venv/bin/python benchmarks/ferplus.py DIR [--model video-emotion@champion | --network PATH] [--split test]

DIR is an extracted FER+ folder (`manifest.csv`, or FER+'s per-split `label.csv`, with the images under
`data/FER2013{Train,Valid,Test}/`). Each 48x48 image is placed in a video frame as the real-face evaluation
places a small photo and read by the model's face path (BlazeFace, eyes levelled, the model's crop); where the
face path finds no face, the image itself (already a face crop) is the crop (`modeling.ferplus_data`). The crops
are cached under `.cache/ferplus` (the same cache the `finetune_faces` stage fills).

- `--model REF` (default: the registry champion): a model bundle or registry reference; every face is read as a
  still window (T copies of its crop), as `evaluate-faces` reads a photo, with the bundle's temperature.
- `--network PATH`: the bare per-frame network (a face-api.js weights folder, e.g. models/pretrained/face_expression
  or models/face_expression_ferplus), read by `modeling.backbones` on the crops of params.yaml's face path.

Figures: accuracy8 over the 8 FER+ emotions (a 7-label model never says contempt: those faces count as wrong),
accuracy7 and macro-F1 over the product's 7 (faces labelled contempt left out), per-class recall, ECE; and the
same where a face not found counts as wrong (the product has no reading there) and on the faces found only.
The last line is `accuracy8=... accuracy7=... macro_f1_7=...`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from video_emotion.config import load_params  # noqa: E402
from video_emotion.data.ferplus import CLASSES8, load_split  # noqa: E402
from video_emotion.modeling.ferplus import scores  # noqa: E402
from video_emotion.modeling.ferplus_data import cached_crops  # noqa: E402


def bundle_reader(ref: str, params):
    """(face path settings, detector folder, crops -> (n, 7) probabilities) of a model bundle."""
    from video_emotion.features.faces import BUNDLE_DIR
    from video_emotion.inference.bundle import load_bundle
    from video_emotion.inference.face_eval import _predict_windows

    bundle = load_bundle(ref, params)
    T = bundle.n_frames

    def read(crops: np.ndarray) -> np.ndarray:
        out = [_predict_windows(bundle, np.repeat(crops[lo:lo + 64][:, None], T, axis=1),
                                np.ones((len(crops[lo:lo + 64]), T), bool)) for lo in range(0, len(crops), 64)]
        return np.concatenate(out)

    return bundle.preprocess, bundle.folder / BUNDLE_DIR, read, f"{ref} ({bundle.info.get('version', 'local')})"


def network_reader(path: Path, params):
    """The same for the bare per-frame network at `path`, on params.yaml's face path."""
    from video_emotion.modeling.backbones import pretrained_backbone, probabilities

    net = pretrained_backbone(path)
    return params.preprocess, params.path("face_models"), lambda crops: probabilities(net, crops), str(path)


def show(name: str, s: dict) -> None:
    rec = ", ".join(f"{k} {v:.2f}" for k, v in s["recall"].items())
    print(f"- {name} (n={s['n']}): accuracy8 {s['accuracy8']:.4f}, accuracy7 {s['accuracy7']:.4f}, "
          f"macro-F1(7) {s['macro_f1_7']:.4f}, ECE(7) {s['ece7']:.4f}\n  recall: {rec}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path, help="an extracted FER+ folder")
    ap.add_argument("--model", default="video-emotion@champion", help="model bundle folder or registry reference")
    ap.add_argument("--network", type=Path, default=None, help="score the bare per-frame network at this path")
    ap.add_argument("--split", default="test", choices=("test", "valid"))
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    args = ap.parse_args(argv)
    params = load_params(args.params)
    t0 = time.perf_counter()
    cfg, detector, read, name = (network_reader(args.network, params) if args.network
                                 else bundle_reader(args.model, params))
    split = load_split(args.folder, args.split)
    crops, found = cached_crops(split, cfg, detector, params.root / ".cache" / "ferplus")
    p = read(crops)
    y = split.label
    print(f"## FER+ {args.split}: {name}, {len(y)} faces, {int((y >= 0).sum())} with a majority label; "
          f"the face path found {found.mean():.3f} of the faces ({found[y >= 0].mean():.3f} of those labelled)\n")
    print("confusion (rows: majority label, columns: reading; " + " ".join(CLASSES8) + "):")
    main_scores = scores(p, y)
    for row in main_scores["confusion_matrix"]:
        print("  " + " ".join(f"{v:5d}" for v in row))
    show("every face (the image itself where no face was found)", main_scores)
    show("faces found by the face path only", scores(p[found], y[found]))
    keep = y >= 0
    strict = float(np.mean(found[keep] & (p.argmax(1) == y)[keep]))  # not found: no reading, wrong
    print(f"- a face not found counted wrong: accuracy8 {strict:.4f}")
    print(f"\n{time.perf_counter() - t0:.0f} s")
    print(f"accuracy8={main_scores['accuracy8']:.4f} accuracy7={main_scores['accuracy7']:.4f} "
          f"macro_f1_7={main_scores['macro_f1_7']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
