"""Videos per minute of `video-emotion batch` with the local engine and with Ray at 1 and 2 workers, on the
same 40 real clips, and what that says about one million 30 s videos on a cluster of such machines.

Each run is the whole command as a user runs it (its own process: interpreter, imports, Ray start or
model load, the analysis, the output written), into a fresh output folder; the three configurations
alternate for `--rounds` rounds so that they share the background load. Writes (replaces) the
"Batch analysis at scale" section of benchmarks/RESULTS.md. Used by `make bench`; runs alone too:

    .venv/bin/python benchmarks/batch_scale.py --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
import cv2

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / ".bench"
REAL = ROOT / "data" / "external" / "real_faces"
SECTION = "## Batch analysis at scale"
ENV = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "3", "RAY_USAGE_STATS_ENABLED": "0",
       "BENTOML_DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true"}
CONFIGS = {"local": ["--engine", "local"], "ray, 1 worker": ["--engine", "ray", "--workers", "1"],
           "ray, 2 workers": ["--engine", "ray", "--workers", "2"]}


def log(msg: str) -> None:
    print(f"[batch-bench] {msg}", file=sys.stderr, flush=True)


def make_library(folder: Path) -> Path:
    """40 real clips: 24 five-second cuts of the crying-then-laughing footage (640x360) at different
    offsets, 8 copies of the short single-face clip and 8 of the face-less clip (960x540)."""
    if (folder / ".ready").is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "cuts").mkdir(parents=True)
    cap = cv2.VideoCapture(str(REAL / "cry_then_laugh.mp4"))
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while (got := cap.read())[0]:
        frames.append(got[1])
    cap.release()
    h, w = frames[0].shape[:2]
    n = int(round(5 * fps))
    for k in range(24):
        start = int(round(k * 0.6 * fps))
        wr = cv2.VideoWriter(str(folder / "cuts" / f"cut_{k:02d}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        for f in frames[start:start + n]:
            wr.write(f)
        wr.release()
    for name in ("single_face", "no_face"):
        (folder / name).mkdir()
        for k in range(8):
            shutil.copy(REAL / f"{name}.mp4", folder / name / f"{name}_{k}.mp4")
    (folder / ".ready").touch()
    return folder


def bundle_for(path: Path) -> Path:
    """A snapshot of the trained bundle if `make run` made one (a pipeline running meanwhile must not swap
    the model between runs), else a FER-initialised one (as the tests use)."""
    if (path / "model.keras").is_file():
        snap = BENCH / "batch-model" / path.name
        shutil.rmtree(snap.parent, ignore_errors=True)
        shutil.copytree(path, snap)
        return snap
    out = BENCH / "batch-bundle"
    if not (out / "model.keras").is_file():
        code = ("import json,sys; from pathlib import Path; from video_emotion.config import ModelConfig; "
                "from video_emotion.labels import LABELS; from video_emotion.modeling.model import build_model; "
                "o=Path(sys.argv[1]); o.mkdir(parents=True, exist_ok=True); "
                "build_model(ModelConfig(correction_bound=0.0), 16, 64, Path(sys.argv[2])).save(o/'model.keras'); "
                "(o/'preprocessing.json').write_text(json.dumps({'labels': list(LABELS), 'n_frames': 16, "
                "'image_size': 64, 'detector': 'blazeface', 'face_margin': 0.12, 'min_face_frac': 0.2, "
                "'detect_every': 1, 'window_s': 2.0})); "
                "from video_emotion.config import PreprocessConfig; "
                "from video_emotion.features.faces import save_face_models; "
                "save_face_models(PreprocessConfig(), Path(sys.argv[3]), o)")
        subprocess.run([sys.executable, "-c", code, str(out),
                        str(ROOT / "models/pretrained/fer2013_mini_xception.hdf5"), str(ROOT / "models/pretrained")],
                       env=ENV, check=True)
    return out


def run_once(library: Path, bundle: Path, args: list[str]) -> dict:
    out = Path(tempfile.mkdtemp(prefix="batch-bench-", dir=BENCH))
    cmd = [str(Path(sys.executable).parent / "video-emotion"), "batch", str(library), "--out", str(out / "o"),
           "--model", str(bundle), "--transcribe", "off", *args]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    sys.path.insert(0, str(ROOT / "src"))
    from video_emotion.inference.batch_store import read_summary

    df = read_summary(out / "o")
    shutil.rmtree(out, ignore_errors=True)
    done = df["finished_at"].sort_values().to_numpy()
    return {"wall_s": wall, "videos": len(df), "errors": int((df["status"] != "ok").sum()), "load": load,
            "steady_vpm": 60 * (len(done) - 1) / max(1e-9, done[-1] - done[0]),
            "busy_s": float(df["seconds"].sum()), "video_s": float(df["duration_s"].fillna(0).sum()),
            "dominant": dict(zip(df["path"], df["dominant_emotion"].fillna("-"), strict=False))}


def report(runs: dict[str, list[dict]], rounds: int, model_name: str, nodes: list[int]) -> list[str]:
    vpm = {k: [60 * r["videos"] / r["wall_s"] for r in v] for k, v in runs.items()}
    mean = {k: statistics.mean(v) for k, v in vpm.items()}
    steady = {k: statistics.mean(r["steady_vpm"] for r in v) for k, v in runs.items()}
    ratio = [r2 / lo for r2, lo in zip(vpm["ray, 2 workers"], vpm["local"], strict=False)]
    same = all(r["dominant"] == runs["local"][0]["dominant"] for v in runs.values() for r in v)
    r2 = runs["ray, 2 workers"]
    video_s = r2[0]["video_s"]
    # Per-video work measured inside the workers (decode, faces, model); the rate once running (first to last
    # video done); and the fixed cost of a job (start-up and shut-down: the wall time the rate leaves over).
    per_video_s = statistics.mean(r["busy_s"] for r in r2) / r2[0]["videos"]
    rate = statistics.mean(r["steady_vpm"] for r in r2) / 60  # videos per second
    fixed_s = statistics.mean(r["wall_s"] - r["videos"] / (r["steady_vpm"] / 60) for r in r2)
    node_video_s_per_s = rate * video_s / r2[0]["videos"]
    total_video_s = 1_000_000 * 30.0
    lines = [SECTION, "",
             f"Command: `make bench` (runs `.venv/bin/python benchmarks/batch_scale.py`), {time.strftime('%Y-%m-%d')}; "
             f"{r2[0]['videos']} real clips ({video_s:.0f} s of video: 24 five-second cuts of the 640x360 "
             "crying-then-laughing footage, 8 copies of the 2.4 s single-face clip, 8 of the 4.1 s face-less 960x540 "
             f"clip), model {model_name}, default sampling, "
             "`--transcribe off`. Each figure is the whole command in its own process (start, imports, Ray start or "
             f"model load, analysis, output), fresh output folder; the three configurations alternate, {rounds} "
             f"round{'s' if rounds > 1 else ''}. 1-minute load average at each start in brackets: other work on the "
             "machine shares its 2 cores.", "",
             "| configuration | " + " | ".join(f"round {i + 1}: videos/min (load)" for i in range(rounds))
             + " | mean videos/min, whole command | mean videos/min once running |", "|---|" + "---|" * (rounds + 2)]
    for k, v in runs.items():
        lines.append(f"| `batch {' '.join(CONFIGS[k])}` | "
                     + " | ".join(f"{x:.1f} ({r['load']:.1f})" for x, r in zip(vpm[k], v, strict=False))
                     + f" | **{mean[k]:.1f}** | {steady[k]:.1f} |")
    lines += ["", f"Ray at 2 workers vs local, per round: {', '.join(f'{x:.2f}x' for x in ratio)}; "
              f"means: **{mean['ray, 2 workers'] / mean['local']:.2f}x** (bar: at least 0.75x). Ray at 1 worker vs "
              f"local: {mean['ray, 1 worker'] / mean['local']:.2f}x. Once running (first to last video done, start-up "
              f"and shut-down left out): Ray at 2 workers **{steady['ray, 2 workers'] / steady['local']:.2f}x** local, "
              f"at 1 worker {steady['ray, 1 worker'] / steady['local']:.2f}x. Dominant emotion of every clip identical "
              f"in every run: **{'yes' if same else 'NO'}**. With a load average above 2 the runs share the cores with "
              "other work, so rates, and the projection below, are lower than on an idle machine.", "",
              "### Projection: one million 30 s videos", "",
              f"From the 2-worker runs: {per_video_s:.2f} s of worker time per clip (decode, faces, model; "
              f"{per_video_s * r2[0]['videos'] / video_s:.3f} s per second of video), and a fixed "
              f"{fixed_s:.0f} s per job (Ray start, actor start and model load, output). One node of this size "
              f"(2 cores) analyses {node_video_s_per_s:.1f} s of video per second once running. One million 30 s "
              f"videos are {total_video_s / 3600:.0f} hours of video; the work scales with video seconds (sampling is "
              "per second of video, default 8 frames/s), and decode tasks share nothing but the model actors (one per "
              "5 workers):", "",
              "| nodes (2 cores each) | decode workers | model actors | wall time |", "|---|---|---|---|"]
    for n in nodes:
        hours = (total_video_s / (n * node_video_s_per_s) + fixed_s) / 3600
        lines.append(f"| {n} | {2 * n} | {max(1, -(-2 * n // 5))} | {hours:,.1f} h ({hours / 24:,.1f} days) |")
    lines += ["", "Assumptions: the clips' mix of resolution and face count is like this set's (a 1080p source decodes "
              "about 4x slower than 640x360); inputs are read from storage that keeps up (a million 30 s 360p clips "
              "are about 2-4 TB, i.e. under 100 MB/s even at 100 nodes); Ray's per-video overhead is included in the "
              "measured rate (one task per video, one model call per 16 windows); the driver writes a "
              "Parquet part per 200 rows and is far from limiting at these rates (a 1000-node job finishes a video "
              f"every {1 / (1000 * node_video_s_per_s / 30) * 1000:.0f} ms). Not measured here: network transfer of "
              "windows between nodes (about 1 MB per 30 s video) and stragglers.", ""]
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=str(ROOT / "models" / "video_emotion"), help="model bundle folder")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    args = ap.parse_args()
    BENCH.mkdir(exist_ok=True)
    library, bundle = make_library(BENCH / "batch-library"), bundle_for(Path(args.bundle))
    runs: dict[str, list[dict]] = {k: [] for k in CONFIGS}
    for i in range(args.rounds):
        order = list(CONFIGS) if i % 2 == 0 else list(reversed(CONFIGS))
        for k in order:
            log(f"round {i + 1}: {k}")
            runs[k].append(run_once(library, bundle, CONFIGS[k]))
            log(f"  {runs[k][-1]['wall_s']:.1f} s, load {runs[k][-1]['load']:.1f}")
    name = "`models/video_emotion` (trained by `make run`)" if bundle.parent.name == "batch-model" else \
        "a FER-initialised bundle (no trained model found)"
    lines = report(runs, args.rounds, name, [1, 10, 100, 1000])
    common.write_section(Path(args.out), SECTION, lines)  # bench.py rewrites the rest
    print("\n".join(lines))
    (BENCH / "batch_scale.json").write_text(json.dumps({k: [{kk: vv for kk, vv in r.items() if kk != "dominant"}
                                                            for r in v] for k, v in runs.items()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
