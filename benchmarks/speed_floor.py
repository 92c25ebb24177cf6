"""Speed against the decode floor: where an analysis's time goes, stage by stage, beside FFmpeg's own decode.

For each clip, each command runs as its own process, the commands alternating, `repeats` rounds (best
of them: the figure least disturbed by other work on the machine):
- floor: `ffmpeg -i CLIP -vf fps=4 -f null -` (the shipped FFmpeg decodes the whole stream, keeps 4 fps);
- decode: our decoder alone at 4 fps (`iter_grid`: Motion JPEG as packets, only sampled frames decoded);
- + faces: decoding and the face path (`iter_windows`, pipelined);
- + network: the whole analysis in one process (`analyze_video`, pipelined), model loaded beforehand;
- whole process: `video-emotion analyze CLIP --sample-fps 4` from start to exit (imports, model load, JSON);
- fer (optional): the `fer` script at every 6th frame (about 4 fps), as in `whole_process.py`.
Stage rows give the stage's own seconds inside its process (after imports and model loading) and that
process's wall time. Peak RSS is each process's own high-water mark. Writes the "Speed against the
decode floor" section of benchmarks/RESULTS.md (`make bench`); runs alone too:

    .venv/bin/python benchmarks/speed_floor.py [--long] [--skip-fer] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
SECTION = "## Speed against the decode floor"
SOURCE = ROOT / "data" / "external" / "real_faces" / "cry_then_laugh.mp4"  # real 640x360 footage, 19.7 s
SHORT = ROOT / "data" / "external" / "real_faces" / "single_face.mp4"     # 2.4 s
RATE = 4.0


def ffmpeg(*args: str) -> None:
    from video_emotion.features.audio import ffmpeg_exe

    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *args], check=True, timeout=3600)


def make_clips(long: bool) -> dict[str, Path]:
    """The 197 s clip (the real footage 10 times over) as Motion JPEG and as H.264, the 20 s footage as
    Motion JPEG, and with `long` the footage upscaled to 1080p: 10 min as H.264 (ultrafast) and 120 s as
    VP9 (realtime; libvpx encodes 1080p at a few frames a second on a shared 2-core machine), each with
    a cut of its start (memory against length)."""
    out = ROOT / ".bench" / "clips"
    out.mkdir(parents=True, exist_ok=True)
    mjpeg = ["-an", "-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p"]
    recipes = {
        "197s_mjpeg.avi": ["-stream_loop", "9", "-i", str(SOURCE), *mjpeg],
        "20s_mjpeg.avi": ["-i", str(SOURCE), *mjpeg],
        "197s_h264.mp4": ["-stream_loop", "9", "-i", str(SOURCE), "-an", "-c:v", "libx264", "-preset", "veryfast"],
    }
    clips = {}
    for name, args in recipes.items():
        path = out / f"clip_{name}"
        if not path.is_file():
            ffmpeg(*args, str(path))
        clips[name] = path
    if long:  # (name, loops of the 19.7 s source, seconds, encoder, seconds of the cut that measures memory)
        up = ["-an", "-vf", "scale=1920:1080"]
        h264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
        vp9 = ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1", "-b:v", "4M"]
        for name, loops, seconds, enc, cut_s in (("long_1080p_h264.mp4", 31, 600, h264, 60),
                                                 ("long_1080p_vp9_120s.webm", 6, 120, vp9, 30)):
            path = out / name
            if not path.is_file():
                ffmpeg("-stream_loop", str(loops), "-i", str(SOURCE), "-t", str(seconds), *up, *enc, str(path))
            cut = out / name.replace("_120s", "").replace(path.suffix, f"_{cut_s}s{path.suffix}")
            if not cut.is_file():
                ffmpeg("-i", str(path), "-t", str(cut_s), "-c", "copy", str(cut))
            clips[name], clips[f"cut_{name}"] = path, cut
    return clips


STAGE_OUT = ROOT / ".bench" / "speed_floor_stage.json"


def stage(which: str, clip: str, model: str, rate: float | None) -> None:
    """Runs one stage in this process and writes its JSON to STAGE_OUT (the `--stage` mode)."""
    from video_emotion.features.sampling import iter_grid
    from video_emotion.inference.analyze import ModelBundle, analyze_video
    from video_emotion.inference.windows import iter_windows

    bundle = ModelBundle.load(Path(model))
    bundle.warm_up()
    t0 = time.perf_counter()
    if which == "decode":
        n = sum(1 for _ in iter_grid(clip, rate or bundle.n_frames / bundle.window_s))
    elif which == "faces":
        n = sum(1 for _ in iter_windows(clip, bundle, rate))
    else:
        n = analyze_video(clip, bundle, sample_fps=rate, transcribe="off")["frames_analysed"]
    STAGE_OUT.write_text(json.dumps({"stage_s": time.perf_counter() - t0, "items": n}))


def commands(clip: Path, model: str, fer_py: Path | None, rate: float | None, fer_every: int) -> dict[str, list[str]]:
    """Each measured command; `rate` None: the model's own rate (the floor then samples at 8 fps)."""
    from video_emotion.features.audio import ffmpeg_exe

    me = [sys.executable, str(Path(__file__).resolve()), "--model", model, "--rate", str(rate or 0), "--stage"]
    fps = f"{rate or 8:g}"
    cmds = {"floor": [ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(clip), "-vf", f"fps={fps}", "-f", "null", "-"],
            "decode": [*me, "decode", str(clip)], "faces": [*me, "faces", str(clip)],
            "network": [*me, "network", str(clip)],
            "whole": [str(Path(sys.executable).parent / "video-emotion"), "analyze", str(clip), "--model", model,
                      "--transcribe", "off", "--out", os.devnull] + (["--sample-fps", f"{rate:g}"] if rate else [])}
    if fer_py is not None:
        cmds["fer"] = [str(fer_py), str(ROOT / "benchmarks" / "fer_runner.py"), str(clip), str(fer_every)]
    return cmds


def run(cmd: list[str], env: dict[str, str]) -> dict:
    """Wall seconds, peak RSS and load of one process (whole_process.measure), with its stage seconds."""
    import whole_process

    STAGE_OUT.unlink(missing_ok=True)
    r = whole_process.measure(cmd, env)
    return r | json.loads(STAGE_OUT.read_text()) if "--stage" in cmd else r


def measure_clip(clip: Path, kinds: list[str], model: str, fer_py: Path | None, repeats: int, env,
                 rate: float | None = RATE, fer_every: int = 6) -> dict:
    """Best of `repeats` rounds for each command, the commands alternating within a round."""
    cmds = {k: v for k, v in commands(clip, model, fer_py, rate, fer_every).items() if k in kinds}
    runs: dict[str, list[dict]] = {k: [] for k in cmds}
    for _ in range(repeats):
        for kind, cmd in cmds.items():
            print(f"[speed_floor] {clip.name}: {kind}", file=sys.stderr, flush=True)
            runs[kind].append(run(cmd, env))
    return {k: min(v, key=lambda r: r["seconds"]) | {"load_max": max(r["load"] for r in v),
                                                      "runs_s": [round(r["seconds"], 2) for r in v]}
            for k, v in runs.items()}


def _cell(r: dict | None, floor: float) -> str:
    if r is None:
        return "-"
    inner = f"{r['stage_s']:.2f} s in a {r['seconds']:.2f} s process" if "stage_s" in r else f"{r['seconds']:.2f} s"
    return f"{inner} ({r['seconds'] / floor:.2f}x)"


def stage_table(results: dict[str, dict]) -> list[str]:
    lines = ["| clip | ffmpeg decode floor | decode | decode + faces | + network | whole process (x floor) | "
             "peak RSS, whole (MB) | load avg (max) |", "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        floor = r["floor"]["seconds"]
        load = max(v["load_max"] for v in r.values())
        lines.append(f"| {name} | {floor:.2f} s | {_cell(r.get('decode'), floor)} | {_cell(r.get('faces'), floor)} | "
                     f"{_cell(r.get('network'), floor)} | **{_cell(r['whole'], floor)}** | "
                     f"{r['whole']['peak_rss_mb']:.0f} | {load:.1f} |")
    return lines


def bars(res: dict[str, dict]) -> list[str]:
    """The issue's bars, each with its figure and whether it is met."""
    rows = []

    def bar(what: str, value: float, limit: float, at_most: bool) -> None:
        ok = value <= limit if at_most else value >= limit
        rows.append(f"| {what} | {value:.2f}x | {'at most' if at_most else 'at least'} {limit:g}x | "
                    f"{'met' if ok else '**not met**'} |")

    for name in ("197 s MJPEG", "197 s H.264"):
        if name in res:
            bar(f"{name}: whole process / ffmpeg decode at 4 fps", res[name]["whole"]["seconds"] /
                res[name]["floor"]["seconds"], 1.6, True)
    for name, limit in (("197 s MJPEG", 8), ("2.4 s clip", 10)):
        if name in res and "fer" in res[name]:
            bar(f"{name}: fer / ours, whole process", res[name]["fer"]["seconds"] / res[name]["whole"]["seconds"],
                limit, False)
    if "197 s MJPEG" in res and "fer" in res["197 s MJPEG"]:
        r = res["197 s MJPEG"]
        bar("197 s MJPEG: peak RSS ours / fer", r["whole"]["peak_rss_mb"] / r["fer"]["peak_rss_mb"], 0.5, True)
    if "20 s MJPEG" in res and "197 s MJPEG" in res:
        bar("peak RSS, 197 s / 20 s (MJPEG)", res["197 s MJPEG"]["whole"]["peak_rss_mb"] /
            res["20 s MJPEG"]["whole"]["peak_rss_mb"], 1.1, True)
    for label, short in (("10 min 1080p H.264", "60 s 1080p H.264"), ("120 s 1080p VP9", "30 s 1080p VP9")):
        if label in res and short in res:
            ratio = res[label]["whole"]["peak_rss_mb"] / res[short]["whole"]["peak_rss_mb"]
            bar(f"peak RSS, {label} / {short}", ratio, 1.1, True)
    return ["| bar | measured | target | |", "|---|---|---|---|", *rows]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "video_emotion"), help="a model bundle folder")
    ap.add_argument("--repeats", type=int, default=2, help="rounds per clip (best of them)")
    ap.add_argument("--long", action="store_true", help="also 10 min of 1080p H.264 and VP9 (about 15 min more)")
    ap.add_argument("--long-only", action="store_true",
                    help="only the 1080p clips, added to the rows of the last run (.bench/speed_floor.json)")
    ap.add_argument("--skip-fer", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    ap.add_argument("--stage", nargs=2, metavar=("STAGE", "CLIP"), help=argparse.SUPPRESS)
    ap.add_argument("--rate", type=float, default=RATE, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stage:
        stage(args.stage[0], args.stage[1], args.model, args.rate or None)
        return 0
    import common

    env = common.ENV
    fer_py = None if args.skip_fer else common.fer_python()
    args.long = args.long or args.long_only
    clips = make_clips(args.long)
    all_stages = ["floor", "decode", "faces", "network", "whole"]
    plan = [("197 s MJPEG", clips["197s_mjpeg.avi"], [*all_stages, "fer"], args.repeats, RATE, 6),
            ("197 s H.264", clips["197s_h264.mp4"], all_stages, args.repeats, RATE, 6),
            ("20 s MJPEG", clips["20s_mjpeg.avi"], ["floor", "whole"], args.repeats, RATE, 6),
            ("2.4 s clip", SHORT, ["floor", "whole", "fer"], args.repeats, None, 4)]
    if args.long:
        for label, short, key in (("10 min 1080p H.264", "60 s 1080p H.264", "long_1080p_h264.mp4"),
                                  ("120 s 1080p VP9", "30 s 1080p VP9", "long_1080p_vp9_120s.webm")):
            plan += [(label, clips[key], ["floor", "decode", "whole"], 1, RATE, 6),
                     (short, clips[f"cut_{key}"], ["floor", "whole"], 1, RATE, 6)]
    saved = ROOT / ".bench" / "speed_floor.json"
    previous = json.loads(saved.read_text()) if saved.is_file() else {}
    if args.long_only:
        plan = plan[4:]
    else:  # a run without --long keeps the 1080p rows of the last one that had them
        previous = {k: v for k, v in previous.items() if "1080p" in k and not args.long}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    res = previous | {label: measure_clip(clip, [k for k in kinds if k != "fer" or fer_py], args.model, fer_py, n, env,
                                          rate, every) for label, clip, kinds, n, rate, every in plan}
    lines = [SECTION, "", f"Machine: {common.machine()}.", "",
             f"Command: `.venv/bin/python benchmarks/speed_floor.py{' --long' if args.long else ''}"
             f"{' --skip-fer' if fer_py is None else ''} --repeats "
             f"{args.repeats}` (`make bench`), {started}"
             + (" (the 1080p rows; the others from the run before, `--long-only`)" if args.long_only else
                " (the 1080p rows from an earlier `--long-only` run)" if previous else "")
             + f"; model: the bundle `{Path(args.model).name}` (LiteRT). "
             "Clips: the real 640x360 23.98 fps footage (`cry_then_laugh.mp4`) 10 times over (197 s) as Motion JPEG "
             "(`-q:v 3`) and H.264 (`-preset veryfast`); the 2.4 s real clip `single_face.mp4` at the model's rate "
             "(8 fps; fer every 4th frame; floor at 8 fps)"
             + ("; the footage upscaled to 1080p: 10 min as H.264 (`-preset ultrafast`) and its first 60 s, 120 s as "
                "VP9 (`-deadline realtime -cpu-used 8`) and its first 30 s, one round each" if args.long else "")
             + ". Each command is its own process; the commands alternate within a round; best of the rounds. Stage "
             "cells: the stage's own time inside its process (model loaded), then that process's wall time, then "
             "the process over the floor.", "", *stage_table(res), "", *bars(res), ""]
    from common import write_section

    write_section(Path(args.out), SECTION, lines)
    print("\n".join(lines))
    saved.write_text(json.dumps(res, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
