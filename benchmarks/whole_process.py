"""Whole-process figures, as a user waits for them: `video-emotion analyze` against a `fer` script, each
run as its own process from start to exit (interpreter start, imports, model loading, the analysis,
writing the result), wall time and peak RSS of that process.

Runs alternate between the two tools, so that both see the same background load; each figure is
the median (and the minimum) of `repeats` runs, with the machine's load average while they ran.
The wall time includes the 20 ms polling of the child's memory (at most 20 ms per run).
Used by `bench.py` (`make bench`; the clips, cases and `fer` environment are `common.py`'s); runs
alone too:

    .venv/bin/python benchmarks/whole_process.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SHORT = ROOT / "data" / "external" / "real_faces" / "single_face.mp4"  # 2.4 s, 640x360, 30 fps


def _vm_hwm_mb(pid: int) -> float:
    """Peak resident memory of a running process's own address space (Linux /proc, kB -> MB)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def measure(cmd: list[str], env: dict[str, str]) -> dict:
    """Run `cmd` to completion: wall seconds and the peak RSS of that process.

    The peak is the child's own high-water mark (VmHWM), polled every 20 ms until it exits (it only
    grows, so polling misses at most the last 20 ms). Not the rusage of wait4: Linux carries the
    parent's high-water mark into a child across fork and exec, so a child of this benchmark (which
    decoded whole clips to build the long one) would inherit hundreds of MB it never used.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err: list[bytes] = []
    drain = threading.Thread(target=lambda: err.append(proc.stderr.read()))  # the pipe never fills
    drain.start()
    peak = 0.0
    while proc.poll() is None:
        try:
            peak = max(peak, _vm_hwm_mb(proc.pid))
        except (OSError, ValueError):
            pass  # exiting between poll and read
        time.sleep(0.02)
    seconds = time.perf_counter() - t0
    drain.join()
    proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited "
                           f"{proc.returncode}:\n{err[0].decode(errors='replace')[-2000:]}")
    return {"seconds": seconds, "peak_rss_mb": peak, "load": os.getloadavg()[0]}


def ours_cmd(clip: Path, model: str, sample_fps: float | None, out: Path) -> list[str]:
    cmd = [str(BIN / "video-emotion"), "analyze", str(clip), "--model", model, "--transcribe", "off", "--out", str(out)]
    return cmd + (["--sample-fps", str(sample_fps)] if sample_fps else [])


def fer_cmd(fer_python: Path, clip: Path, frequency: int) -> list[str]:
    return [str(fer_python), str(ROOT / "benchmarks" / "fer_runner.py"), str(clip), str(frequency)]


def summary(runs: list[dict]) -> dict:
    secs = [r["seconds"] for r in runs]
    return {"median_s": statistics.median(secs), "min_s": min(secs), "runs_s": [round(s, 2) for s in secs],
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs),
            "load_max": max(r["load"] for r in runs)}


def compare(cases: list[dict], fer_python: Path | None, model: str, repeats: int, env: dict[str, str]) -> list[dict]:
    """Each case: {label, clip, sample_fps (ours; None = model default), fer_frequency}."""
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-whole-") as tmp:
        out = Path(tmp) / "result.json"
        for case in cases:
            ours, fer = [], []
            for _ in range(repeats):
                ours.append(measure(ours_cmd(case["clip"], model, case["sample_fps"], out), env))
                frames = json.loads(out.read_text())["frames_analysed"]
                if fer_python is not None and case.get("fer_frequency"):
                    fer.append(measure(fer_cmd(fer_python, case["clip"], case["fer_frequency"]), env))
            results.append({**case, "frames": frames, "ours": summary(ours), "fer": summary(fer) if fer else None})
    return results


def table(results: list[dict]) -> list[str]:
    lines = ["| clip, sampling | ours: wall s, median (min) | ours: peak RSS MB | fer: wall s, median (min) | "
             "fer: peak RSS MB | ours vs fer, speed (median) | RSS ours / fer | load avg (max) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        o, f = r["ours"], r["fer"]
        fer_cols = (f"{f['median_s']:.1f} ({f['min_s']:.1f}) | {f['peak_rss_mb']:.0f} | "
                    f"**{f['median_s'] / o['median_s']:.2f}x** | **{o['peak_rss_mb'] / f['peak_rss_mb']:.2f}x** | "
                    f"{max(o['load_max'], f['load_max']):.1f} |") if f else f"- | - | - | - | {o['load_max']:.1f} |"
        lines.append(f"| {r['label']} | {o['median_s']:.1f} ({o['min_s']:.1f}) | {o['peak_rss_mb']:.0f} | " + fer_cols)
    return lines


def main() -> int:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import common

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="video-emotion@champion", help="what `analyze --model` gets")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-fer", action="store_true")
    args = ap.parse_args()
    clips = common.make_clips(ROOT / "data" / "external" / "real_faces" / "cry_then_laugh.mp4")
    results = compare(common.whole_cases(clips), None if args.skip_fer else common.fer_python(), args.model,
                      args.repeats, common.ENV)
    print("\n".join(table(results)))
    print(json.dumps(results, default=str, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
