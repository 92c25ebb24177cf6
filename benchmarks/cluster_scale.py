"""`video-emotion batch` on a running Ray cluster of one and of two nodes (one CPU each, on this machine), beside
the local engine: the same 40 real clips, videos/min and the split over the nodes; a short job of 4 other clips
on the warm cluster against the local engine (time to the first video started, whole command); and where one
driver stops keeping up as nodes are added, from the measured per-video costs.

The cluster is started once (`ray start --head`, then `ray start --address` for the second node: each node has
its own raylet and object store) with token authentication, on unusual ports, and stopped at the end; each job
is the whole command in its own process with `RAY_ADDRESS` set, as a user runs it against a cluster that is
up. Writes (replaces) the "Batch on a running cluster" section of benchmarks/RESULTS.md. Used by `make bench`:

    .venv/bin/python benchmarks/cluster_scale.py
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT), str(ROOT / "benchmarks")]

import common  # noqa: E402
from batch_scale import BENCH, ENV, REAL, bundle_for, make_library  # noqa: E402

from tests.ray_cluster import LocalCluster  # noqa: E402

SECTION = "## Batch on a running cluster"


def log(msg: str) -> None:
    print(f"[cluster-bench] {msg}", file=sys.stderr, flush=True)


def short_library(folder: Path) -> Path:
    """4 real clips the 40-clip library does not hold: 3 s cuts of the crying-then-laughing footage, re-encoded."""
    import imageio_ffmpeg

    if (folder / ".ready").is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for k in range(4):
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-ss", f"{1.7 + 2.9 * k:.1f}",
                        "-t", "3", "-i", str(REAL / "cry_then_laugh.mp4"), "-an", "-c:v", "libx264", "-preset",
                        "veryfast", "-pix_fmt", "yuv420p", str(folder / f"short_{k}.mp4")], check=True)
    (folder / ".ready").touch()
    return folder


def job(library: Path, bundle: Path, engine: str, cluster: LocalCluster | None) -> dict:
    """One whole command; its wall time, its own CPU time (the driver's), and its rows."""
    from video_emotion.inference.batch_store import read_summary

    out = Path(tempfile.mkdtemp(prefix="cluster-bench-", dir=BENCH))
    env = {**ENV, **(cluster.env if cluster else {}), "PYTHONPATH": str(ROOT / "src")}
    env.pop("RAY_ADDRESS", None)
    if cluster:
        env["RAY_ADDRESS"] = cluster.address
    cmd = [str(Path(sys.executable).parent / "video-emotion"), "batch", str(library), "--out", str(out / "o"),
           "--model", str(bundle), "--transcribe", "off", "--engine", engine]
    load = os.getloadavg()[0]
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0, wall0 = time.time(), time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - wall0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    df = read_summary(out / "o")
    shutil.rmtree(out, ignore_errors=True)
    started = (df["finished_at"] - df["seconds"]).min()
    return {"wall_s": wall, "videos": len(df), "ok": int((df["status"] == "ok").sum()), "load": load,
            "driver_cpu_s": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
            "first_start_s": float(started - t0), "busy_s": float(df["seconds"].sum()),
            "nodes": Counter(df["node"]), "vpm": 60 * len(df) / wall}


# The local engine in a process that already holds the model (as a notebook or a long-running worker does): one
# untimed job loads and warms it, then each timed job is `run_batch` alone. Prints the timed jobs' wall seconds.
WARM_LOCAL = """
import json, sys, tempfile, time
from pathlib import Path
from video_emotion.data.library import list_videos
from video_emotion.inference.batch import BatchOptions, local_engine, run_batch
from video_emotion.inference.batch_store import BatchStore
from video_emotion.inference.bundle import load_bundle

library, bundle, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
model, opts = load_bundle(bundle, None), BatchOptions(transcribe="off")
engine, sources, walls = local_engine(model, opts), list_videos(library), []
for _ in range(rounds + 1):
    t0 = time.perf_counter()
    run_batch(sources, BatchStore(Path(tempfile.mkdtemp(dir=sys.argv[4])) / "o", opts.job(model.info)), engine,
              progress=False)
    walls.append(time.perf_counter() - t0)
print(json.dumps(walls[1:]))
"""


def warm_local(library: Path, bundle: Path, rounds: int) -> list[dict]:
    """The short job on the local engine warm: `rounds` jobs in one process after an untimed one."""
    import json

    env = {**ENV, "PYTHONPATH": str(ROOT / "src")}
    env.pop("RAY_ADDRESS", None)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir=BENCH) as tmp:
        res = subprocess.run([sys.executable, "-c", WARM_LOCAL, str(library), str(bundle), str(rounds), tmp],
                             cwd=ROOT, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"warm local engine failed:\n{res.stderr[-3000:]}")
    return [{"wall_s": w, "load": load} for w in json.loads(res.stdout.strip().splitlines()[-1])]


def report(r: dict, nodes: list[str], rounds: int) -> list[str]:
    name = {n: f"node {i + 1}{' (head)' if i == 0 else ''}" for i, n in enumerate(nodes)}

    def split(c: Counter) -> str:
        return ", ".join(f"{name.get(k, k)}: {v}" for k, v in sorted(c.items(), key=lambda kv: name.get(kv[0], "")))

    lines = [SECTION, "",
             "Command: `make bench` (runs `.venv/bin/python benchmarks/cluster_scale.py`), "
             f"{time.strftime('%Y-%m-%d')}, "
             "on this 2-core machine shared with other work (1-minute load average at each start in brackets). A Ray "
             "cluster started once (`ray start --head --num-cpus 1`, later `ray start --address ... --num-cpus 1`: "
             "two nodes, each its own raylet and object store, one CPU each, token authentication on), warm: a first "
             "job loaded the model actors, which stay up between jobs. Each figure is the whole command in its own "
             "process with `RAY_ADDRESS` set (`video-emotion batch LIB --out NEW --model BUNDLE --transcribe off "
             "--engine ray|local`), the same 40 real clips as the section above.", "",
             "| configuration | videos/min, whole command (load) | videos per node | driver CPU s | "
             "command start to first video started |", "|---|---|---|---|---|"]
    for k in ("local", "1 node", "2 nodes"):
        for x in r[k]:
            lines.append(f"| {k} | {x['vpm']:.1f} ({x['load']:.1f}) | {split(x['nodes'])} | {x['driver_cpu_s']:.1f} | "
                         f"{x['first_start_s']:.2f} s |")
    lines += ["", *short_lines(r["short"], rounds)]
    two, ray2 = r["2 nodes"][-1], r["short"]["2 nodes"]
    per_video = two["busy_s"] / two["videos"]        # CPU-seconds of a node's worker per video (decode, faces, model)
    driver = max(1e-3, (two["driver_cpu_s"] - ray2[-1]["driver_cpu_s"]) / (two["videos"] - ray2[-1]["videos"]))
    cpus_per_node = 1
    node_rate = cpus_per_node / per_video             # videos/s one node of one CPU keeps up with
    n_max = 1 / (driver * node_rate)
    lines += ["", "### Projection for N nodes", "",
              f"Measured on the 2-node run: {per_video:.2f} s of worker time per video on a node (decode, faces, "
              f"model call), so a node of one CPU analyses {60 * node_rate:.1f} videos/min; the driver's own CPU per "
              f"video (its CPU time in the 40-clip job minus the 4-clip job, over the 36 extra videos: submitting, "
              f"receiving rows, writing Parquet) is {1000 * driver:.1f} ms. N nodes analyse N x that rate until the "
              f"driver's one CPU is busy: at about **{n_max:,.0f} one-CPU nodes** ({n_max / 8:,.0f} nodes of 8 CPUs), "
              f"{60 / driver:,.0f} videos/min, one driver stops keeping up; past it, split the library and run "
              "several drivers (each its own output folder).", "",
              "| nodes (1 CPU each) | videos/min (projected) | driver CPU busy |", "|---|---|---|"]
    for n in (1, 2, 10, 100, 1000):
        rate = min(n * node_rate, 1 / driver)
        lines.append(f"| {n} | {60 * rate:,.0f} | {100 * rate * driver:.0f}% |")
    lines += ["", "Assumptions: the nodes' CPUs are as fast as these and as busy; clips like these (a 1080p source "
              "decodes about 4x slower); the driver's cost grows with videos, not their length. Not measured here: "
              "network transfer between machines (nodes on one machine share memory), stragglers.", ""]
    return lines


def short_jobs(short: Path, bundle: Path, cluster: LocalCluster, rounds: int) -> dict[str, list[dict]]:
    """The short job on the two warm nodes and as a local command, alternating, then on the local engine warm."""
    r: dict[str, list[dict]] = {"local": [], "2 nodes": []}
    for i in range(rounds):
        for k in (["local", "2 nodes"] if i % 2 == 0 else ["2 nodes", "local"]):
            log(f"short job, round {i + 1}: {k}")
            r[k].append(job(short, bundle, "ray" if k != "local" else "local", cluster if k != "local" else None))
    log(f"short job, local engine warm ({rounds} timed jobs in one process)")
    r["local, warm process"] = warm_local(short, bundle, rounds)
    return r


def short_lines(short: dict, rounds: int) -> list[str]:
    """The short job: the warm cluster's whole command against the local command (cold: it starts Python and
    loads the model every job) and against the local engine warm (like with like: both hold a loaded model)."""
    loc, ray2, warm = short["local"], short["2 nodes"], short.get("local, warm process", [])

    def walls(xs: list[dict]) -> str:
        return ", ".join(f"{x['wall_s']:.1f} s ({x['load']:.1f})" for x in xs)

    def mean(xs: list[dict]) -> float:
        return sum(x["wall_s"] for x in xs) / len(xs)

    def firsts(xs: list[dict]) -> str:
        return ", ".join(f"{x['first_start_s']:.2f} s" for x in xs)

    lines = [f"Short job, 4 other clips (3 s cuts), same cluster warm, alternating with the local engine ({rounds} "
             f"rounds): wall time of the whole command, local {walls(loc)}; 2-node cluster {walls(ray2)}; ratio "
             f"**{mean(ray2) / mean(loc):.2f}x** (bar: at most 1.5x). Not like with like: the cluster's model actors "
             "are warm, while the local command starts Python, imports TensorFlow and loads the model every job. "
             f"Command start to first video started on the cluster: {firsts(ray2)} (bar: at most 2 s); locally "
             f"{firsts(loc)} (the local engine loads the model in the background while the first video decodes)."]
    if warm:
        lines += ["", f"Like with like, warm against warm: the local engine in a process that already holds the model "
                      f"(an untimed job first, then the job alone, `run_batch`): {walls(warm)}; the warm cluster's "
                      f"whole command is **{mean(ray2) / mean(warm):.2f}x** that (it also starts Python, imports Ray "
                      "and connects, about 2 s of each job; two one-CPU nodes on the same two shared cores)."]
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=str(ROOT / "models" / "video_emotion"), help="model bundle folder")
    ap.add_argument("--rounds", type=int, default=2, help="short-job rounds")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    ap.add_argument("--short-only", action="store_true",
                    help="only the short job (two nodes warm, the local command, the local engine warm); prints, "
                         "writes nothing")
    args = ap.parse_args()
    BENCH.mkdir(exist_ok=True)
    library, bundle = make_library(BENCH / "batch-library"), bundle_for(Path(args.bundle))
    short = short_library(BENCH / "cluster-short")
    r: dict = {"local": [], "1 node": [], "2 nodes": [], "short": {"local": [], "2 nodes": []}}
    (BENCH / "cluster" / "tmp").mkdir(parents=True, exist_ok=True)
    cluster = LocalCluster(BENCH / "cluster", nodes=1, cpus=1, env={**ENV, "TMPDIR": str(BENCH / "cluster" / "tmp")})
    try:
        if args.short_only:
            cluster.add_node()
        log("warm-up job (loads the model actors)")
        job(short, bundle, "ray", cluster)
        if args.short_only:
            r["short"] = short_jobs(short, bundle, cluster, args.rounds)
            print("\n".join(short_lines(r["short"], args.rounds)))
            return 0
        log("40 clips, 1 node")
        r["1 node"].append(job(library, bundle, "ray", cluster))
        cluster.add_node()
        log("40 clips, 2 nodes")
        r["2 nodes"].append(job(library, bundle, "ray", cluster))
        log("40 clips, local engine")
        r["local"].append(job(library, bundle, "local", None))
        r["short"] = short_jobs(short, bundle, cluster, args.rounds)
        nodes = list(cluster.node_ids)
    finally:
        cluster.stop()
    lines = report(r, nodes, args.rounds)
    common.write_section(Path(args.out), SECTION, lines)  # bench.py rewrites the rest
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
