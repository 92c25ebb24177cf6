"""What the decode-floor bar leaves: the least time any analysis with today's networks could take, beside
ffmpeg's own decode and our whole process.

An analysis that gives today's results must decode the frames it reads (for H.264 every reference frame),
run BlazeFace on every sampled frame and the per-frame CNN on every distinct crop, and start Python and
its libraries. This measures those four alone, each as tight as it gets:
- decode: our reader alone at 4 fps (`iter_grid`), CPU seconds on its one thread;
- detector: BlazeFace's forward pass (colour conversion, input scaling, `invoke`) on every sampled
  frame's letterboxed square, made beforehand;
- network: the per-frame CNN on every sampled frame's crop, made beforehand, and the temporal head on
  one window of features per 8 frames (the windows of a 4 fps analysis);
- start-up: a process importing what `analyze` imports and loading the bundle, wall seconds.
On `cores` cores nothing can beat start-up + max(decode, (decode + detector + network) / cores): perfect
overlap, with no Python between the kernels, no crops, no tracking, no queues. Beside it: ffmpeg's decode
at 4 fps (the floor; best of the rounds), the bar (1.6x the floor) and the whole process (`video-emotion
analyze`, best wall of the rounds, and its CPU seconds). What the whole process spends beyond the four
is the glue: letterboxing, output decoding and NMS, tracking, crops, quality, windows, thread hand-offs.

    .venv/bin/python benchmarks/speed_bound.py [--repeats 3] [--write]

`--write` puts the table in its own section of benchmarks/RESULTS.md ("What the decode-floor bar leaves").
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
SECTION = "## What the decode-floor bar leaves"
RATE = 4.0
STARTUP = ("import time; t = time.perf_counter(); from video_emotion import cli; "
           "from video_emotion.inference import analyze; from video_emotion.features import avreader; import av; "
           "from video_emotion.config import load_params; from video_emotion.inference.bundle import load_bundle; "
           "import sys; b = load_bundle(sys.argv[1], load_params()); b.warm_up(); b.face_path(); "
           "print(time.perf_counter() - t)")


def _cpu(fn) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


def _child(cmd: list[str]) -> tuple[float, float, str]:
    """(wall, CPU seconds of the process and its threads, stdout) of one command run to completion."""
    r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime), out


def inputs(clip: Path, bundle) -> tuple[list[np.ndarray], np.ndarray]:
    """Every sampled frame's BlazeFace square (letterboxed as the detector makes it) and its face crop."""
    from video_emotion.features.blazeface import letterbox
    from video_emotion.features.sampling import iter_grid

    path = bundle.face_path()
    short = path.detector.models["short"]
    squares, crops = [], []
    for _, frame in iter_grid(clip, RATE):
        squares.append(letterbox(frame, short.spec.input_size)[0])
        crops.append(path.read(frame)[0])
    return squares, np.stack(crops)


def kernels(clip: Path, model: Path, repeats: int) -> dict[str, float]:
    """Best-of-`repeats` CPU seconds of decoding, the detector and the network, in this process."""
    from video_emotion.features.sampling import iter_grid
    from video_emotion.inference.bundle import ModelBundle

    bundle = ModelBundle.load(model)
    bundle.warm_up()
    parts = bundle.lite_parts()
    if parts is None:
        raise SystemExit(f"{model}: no frame.tflite / head.tflite (train or export the model first)")
    squares, crops = inputs(clip, bundle)
    net = bundle.face_path().detector.models["short"].net
    feats = parts.features(crops[:1])
    T = bundle.n_frames
    windows = np.repeat(feats, T, axis=0).reshape(1, T, -1)
    mask = np.ones((1, T), np.float32)
    best: dict[str, float] = {}
    for _ in range(repeats):
        for name, fn in (("decode", lambda: sum(1 for _ in iter_grid(clip, RATE))),
                         ("detector", lambda: [net(s) for s in squares]),
                         ("network", lambda: ([parts.features(c[None]) for c in crops],
                                              [parts.head(windows, mask) for _ in range(len(crops) // 8)]))):
            best[name] = min(best.get(name, np.inf), _cpu(fn))
    best["frames"] = len(crops)
    return best


def processes(clip: Path, model: Path, repeats: int) -> dict[str, float]:
    """Best-of-`repeats` wall seconds of the floor, start-up and the whole process (with its CPU)."""
    from video_emotion.features.audio import ffmpeg_exe

    floor = [ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(clip), "-vf", f"fps={RATE:g}", "-f", "null", "-"]
    whole = [str(Path(sys.executable).parent / "video-emotion"), "analyze", str(clip), "--model", str(model),
             "--sample-fps", f"{RATE:g}", "--transcribe", "off", "--out", os.devnull]
    runs: dict[str, list[tuple[float, float]]] = {"floor": [], "startup": [], "whole": []}
    for _ in range(repeats):
        runs["floor"].append(_child(floor)[:2])
        runs["startup"].append((float(_child([sys.executable, "-c", STARTUP, str(model)])[2]), 0.0))
        runs["whole"].append(_child(whole)[:2])
    best = {k: min(v) for k, v in runs.items()}
    return {"floor": best["floor"][0], "floor_cpu": best["floor"][1], "startup": best["startup"][0],
            "whole": best["whole"][0], "whole_cpu": best["whole"][1], "load": os.getloadavg()[0]}


def table(name: str, k: dict[str, float], p: dict[str, float], cores: int) -> list[str]:
    work = k["decode"] + k["detector"] + k["network"]
    bound = p["startup"] + max(k["decode"], work / cores)
    bar = 1.6 * p["floor"]
    glue = p["whole_cpu"] - work - p["startup"]
    return [f"| {name} | {p['floor']:.2f} s ({p['floor_cpu']:.2f} CPU s) | {bar:.2f} s | {k['decode']:.2f} | "
            f"{k['detector']:.2f} | {k['network']:.2f} | {p['startup']:.2f} | "
            f"**{bound:.2f} s ({bound / p['floor']:.2f}x)** | "
            f"{p['whole']:.2f} s ({p['whole'] / p['floor']:.2f}x), {p['whole_cpu']:.2f} CPU s | {glue:.2f} | "
            f"{p['load']:.1f} |"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "video_emotion"), help="a model bundle folder")
    ap.add_argument("--repeats", type=int, default=3, help="rounds (best of them)")
    ap.add_argument("--write", action="store_true", help="write the section of benchmarks/RESULTS.md")
    args = ap.parse_args()
    import speed_floor

    clips = speed_floor.make_clips(long=False)
    cores = os.cpu_count() or 1
    rows = []
    for name, key in (("197 s H.264", "197s_h264.mp4"), ("197 s MJPEG", "197s_mjpeg.avi")):
        print(f"[speed_bound] {name}", file=sys.stderr, flush=True)
        k = kernels(clips[key], Path(args.model), args.repeats)
        p = processes(clips[key], Path(args.model), args.repeats)
        rows += table(name, k, p, cores)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [SECTION, "",
             f"Command: `.venv/bin/python benchmarks/speed_bound.py --repeats {args.repeats} --write`, {when}; "
             f"machine: {platform.machine()}, {cores} cores, Python {platform.python_version()}; clips as in "
             f"\"Speed against the decode floor\" ({k['frames']:.0f} frames sampled at 4 fps). Kernel columns: CPU "
             "seconds alone, best of the rounds. Lower bound: start-up + max(decode, all kernels / cores), perfect "
             "overlap and nothing else. Glue: the whole process's CPU less the kernels and start-up.", "",
             "| clip | ffmpeg floor | bar (1.6x) | decode | BlazeFace | CNN + head | start-up (wall) | lower bound | "
             "whole process | glue (CPU s) | load |", "|---|---|---|---|---|---|---|---|---|---|---|", *rows]
    print("\n".join(lines))
    if args.write:
        from common import write_section

        write_section(ROOT / "benchmarks" / "RESULTS.md", SECTION, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
