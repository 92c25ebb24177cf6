"""The face path on real footage: agreement of the tracking path with whole-frame detection, and detection rate.

    .venv/bin/python benchmarks/face_path.py [--bundle models/video_emotion] [CLIP ...]

For each real clip (default: the footage `make assets` installs, data/external/real_faces, and the crying /
laughing clip shrunk to a quarter in the middle of its frame: a face ~60 px wide, far from the camera), the analysis
runs twice with the bundle's own face path: the default path (`fast`: faces followed by the tracker, whole-
frame searches at every detection step for BlazeFace, searches near the last box for Haar) and the reference
path (a whole-frame search on every sampled frame, no tracking), at the model's default rate and at every
frame. Agreement is the share of windows whose top emotion (and sentiment) is the same; the detection rate
is the share of analysed frames with a face, and the share of windows with none. `--write` puts the table in
its own section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import common

ROOT = Path(__file__).resolve().parents[1]
CLIPS = ("cry_then_laugh.mp4", "single_face.mp4")


def compare(bundle, clip: Path, sample_fps: float | None) -> dict:
    """Both paths on one clip at one rate: windows, agreement, face coverage, wall times."""
    from video_emotion.inference.analyze import analyze_video

    runs = {}
    for name, fast in (("fast", True), ("reference", False)):
        t0 = time.perf_counter()
        res = analyze_video(clip, bundle, sample_fps=sample_fps, fast=fast, transcribe="off")
        runs[name] = (res, time.perf_counter() - t0)
    (a, ta), (b, tb) = runs["fast"], runs["reference"]
    ka = {s["start_s"]: s for s in a["timeline"]}
    kb = {s["start_s"]: s for s in b["timeline"]}
    windows = sorted(set(ka) | set(kb))
    same = sum(t in ka and t in kb and ka[t]["emotion"] == kb[t]["emotion"] for t in windows)
    same_sent = sum(t in ka and t in kb and ka[t]["sentiment"] == kb[t]["sentiment"] for t in windows)
    n_all = len(windows) + len(a["no_face_segments"])
    cover = [s["face_coverage"] for s in a["timeline"]] + [0.0] * len(a["no_face_segments"])
    return {"clip": clip.name, "rate": sample_fps, "windows": len(windows), "same_emotion": same / max(1, len(windows)),
            "same_sentiment": same_sent / max(1, len(windows)), "frame_face_rate": sum(cover) / max(1, len(cover)),
            "windows_without_face": len(a["no_face_segments"]) / max(1, n_all), "fast_s": ta, "reference_s": tb}


def small_faces(clip: Path, out: Path, scale: float = 0.25) -> Path:
    """The clip shrunk to `scale` in the middle of a frame of its own size (a face far from the camera)."""
    import cv2
    import numpy as np

    from video_emotion.features.video import iter_frames, probe

    info = probe(clip)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), info.fps, (info.width, info.height))
    for _, frame in iter_frames(clip, range(info.n_frames)):
        small = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        canvas = np.full_like(frame, 100)
        h, w = small.shape[:2]
        y, x = (frame.shape[0] - h) // 2, (frame.shape[1] - w) // 2
        canvas[y:y + h, x:x + w] = small
        writer.write(canvas)
    writer.release()
    return out


def measure(bundle_dir: Path, clips: list[Path]) -> list[dict]:
    from video_emotion.features.video import probe
    from video_emotion.inference.analyze import analyze_video
    from video_emotion.inference.bundle import ModelBundle

    bundle = ModelBundle.load(bundle_dir)
    bundle.warm_up()
    analyze_video(clips[0], bundle, transcribe="off")  # untimed: first-call costs are no path's
    rows = []
    for clip in clips:
        fps = probe(clip).fps
        for rate in (None, fps):
            rows.append(compare(bundle, clip, rate))
    return rows


def face_path_section(bundle_dir: Path, clips: list[Path] | None = None) -> list[str]:
    """Markdown lines: agreement and detection rate per clip and rate, with the face path's settings."""
    import json
    import tempfile

    settings = json.loads((Path(bundle_dir) / "preprocessing.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        if not clips:
            real = ROOT / "data" / "external" / "real_faces"
            clips = [real / c for c in CLIPS] + [small_faces(real / CLIPS[0], Path(tmp) / "cry_then_laugh_quarter.mp4")]
        rows = measure(Path(bundle_dir), clips)
    total = sum(r["windows"] for r in rows if r["rate"] is None)
    agree = sum(r["same_emotion"] * r["windows"] for r in rows if r["rate"] is None) / max(1, total)
    lines = [f"Face path of the bundle: detector `{settings.get('detector', 'haar')}`, margin "
             f"{settings.get('face_margin')}, offset {settings.get('face_offset', 0.0)}, eyes levelled "
             f"{settings.get('align', False)}. Agreement of "
             "the default (tracking) path with the reference path (whole-frame detection on every sampled frame), same "
             f"windows; at the model's default rate, over all clips: **{agree:.1%}** of {total} windows.", "",
             "| clip | sampling | windows | same top emotion | same sentiment | frames with a face "
             "| windows without a face | reference wall (s) | default wall (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        rate = "model default" if r["rate"] is None else f"every frame ({r['rate']:.1f} fps)"
        lines.append(f"| {r['clip']} | {rate} | {r['windows']} | {r['same_emotion']:.0%} | {r['same_sentiment']:.0%} | "
                     f"{r['frame_face_rate']:.1%} | {r['windows_without_face']:.1%} | {r['reference_s']:.2f} | "
                     f"{r['fast_s']:.2f} |")
    return lines


SECTION = "## Face path on real footage"


def write_section(lines: list[str], path: Path) -> None:
    """Replace (or add) this benchmark's section of RESULTS.md, keeping every other section as it is."""
    cmd = "`.venv/bin/python benchmarks/face_path.py --write`"
    common.write_section(path, SECTION, [SECTION, "", f"Command: {cmd}, {time.strftime('%Y-%m-%d')}.", "", *lines])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clips", nargs="*", type=Path)
    ap.add_argument("--bundle", type=Path, default=ROOT / "models" / "video_emotion")
    ap.add_argument("--write", action="store_true", help="also write the section into benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    lines = face_path_section(args.bundle, args.clips or None)
    print("\n".join(lines))
    if args.write:
        write_section(lines, ROOT / "benchmarks" / "RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
