"""A real Ray cluster of two nodes on this machine (head and one more node, one CPU each, started and stopped
here on unusual ports with token authentication): `video-emotion batch` with `RAY_ADDRESS` set spreads the
videos over both nodes and keeps its model actors for the next job; preprocessing and multi-worker training
run across the two nodes and give what they give on one; and with the second node's raylet killed after 1, 2
and 5 finished videos (three jobs, the node started again between them), each job still ends with an `ok` row
for every clip, `error` for the broken file, none `lost`.

Every driver is its own process (as a user's command is), joining the cluster through `RAY_ADDRESS`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, fer_bundle, tiny_params_dict
from tests.ray_cluster import LocalCluster
from video_emotion.modeling.distributed import HEARTBEAT_TIMEOUT_S

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]  # one Ray cluster at a time

# Runs `video-emotion batch` in this process as the CLI does. With a raylet pid, kills that raylet once `after`
# videos are done, noting where the model actors were then. With `spread` > 0, first opens the job's kept model
# actors (`spread` of them, as `--actors` will ask) so that one runs on each node: Ray's SPREAD (and soft node
# affinity) often leaves them all on one node, and a kill that takes no actor tests only half the failure. The job
# then finds them by name, as a job on a warm cluster does. Prints the exit code and the model actors on the
# cluster at the kill and after the job (name -> [pid, node]).
DRIVER = """
import json, os, signal, sys
from pathlib import Path
import ray
import video_emotion.inference.batch as batch
from video_emotion import cli
from video_emotion.scale.actors import ModelPool, retire
from video_emotion.scale.batch import resolve_model

args, kill, after, spread = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

def model_actors():
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == "video-emotion"]
    return {n: ray.get(ray.get_actor(n).where.remote()) for n in names if n.startswith("video-emotion-model-")}

if spread:
    ray.init(namespace="video-emotion", logging_level="WARNING")
    nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    folder, info = resolve_model(args[args.index("--model") + 1], None)
    for _ in range(20):
        retire()
        pool = ModelPool.open(Path(folder), info, spread, 0.0, ship=True, keep=True)
        if {node for _, node in ray.get([s.where.remote() for s in pool.servers])} == nodes:
            break
    ray.shutdown()
at_kill = {}
real = batch.run_batch
def run_batch(*a, **kw):
    done = []
    def on_row(row):
        done.append(row)
        if kill and len(done) == after:
            at_kill.update(model_actors())
            os.kill(kill, signal.SIGKILL)
    return real(*a, on_row=on_row, **kw)
batch.run_batch = run_batch
rc = cli.main(args)
ray.init(namespace="video-emotion", logging_level="WARNING")
print(json.dumps({"rc": rc, "actors": model_actors(), "at_kill": at_kill}))
"""


def _cut(src: Path, out: Path, start: float, seconds: float, width: int = 320) -> None:
    """A re-encoded H.264 cut of a real clip (the ffmpeg of the imageio-ffmpeg wheel)."""
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-ss", f"{start:.2f}", "-t",
                    f"{seconds:.2f}", "-i", str(src), "-vf", f"scale={width}:-2", "-an", "-c:v", "libx264",
                    "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(out)], check=True, timeout=120)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, fer_model, real_faces):
    """A small bundle, params, a folder of 16 real clips and a broken file, and 4 other real clips."""
    tmp = tmp_path_factory.mktemp("cluster")
    bundle = fer_bundle(fer_model, tmp / "bundle")
    params = tmp / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params_dict(tmp)))
    lib, other = tmp / "library", tmp / "other"
    lib.mkdir()
    other.mkdir()
    src = real_faces / "cry_then_laugh.mp4"
    cuts = [(lib / f"cut_{k:02d}.mp4", 0.8 * k) for k in range(12)]
    cuts += [(other / f"other_{k}.mp4", 1.3 + 2.1 * k) for k in range(4)]
    with ThreadPoolExecutor(2) as pool:  # two ffmpeg processes at a time: one per core
        list(pool.map(lambda cut: _cut(src, cut[0], cut[1], 1.5), cuts))
    for k in range(2):
        shutil.copy(real_faces / "single_face.mp4", lib / f"single_face_{k}.mp4")
        shutil.copy(real_faces / "no_face.mp4", lib / f"no_face_{k}.mp4")
    (lib / "broken.mp4").write_bytes(b"not a video at all " * 40)
    return {"tmp": tmp, "bundle": bundle, "params": params, "lib": lib, "other": other}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Head and a second node, one CPU each; their workers' temp files (node-local bundle copies) go
    under the test's folder."""
    root = tmp_path_factory.mktemp("ray-cluster")
    (root / "tmp").mkdir()
    c = LocalCluster(root, nodes=2, cpus=1, env={"TMPDIR": str(root / "tmp"), "TF_ENABLE_ONEDNN_OPTS": "0",
                                                  "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        yield c
    finally:
        c.stop()


def _drive(cluster: LocalCluster, code: str, *argv: str, timeout: int = 300) -> dict:
    env = {**cluster.env, "RAY_ADDRESS": cluster.address, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    res = subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=timeout)
    assert res.returncode == 0, res.stderr[-4000:]
    return {**json.loads(res.stdout.strip().splitlines()[-1]), "stderr": res.stderr}


def _batch(cluster: LocalCluster, setup: dict, folder: Path, out: Path, *extra: str, kill: int = 0, after: int = 2,
           spread: int = 0) -> dict:
    args = ["--params", str(setup["params"]), "batch", str(folder), "--out", str(out), "--model",
            str(setup["bundle"]), "--transcribe", "off", *extra]
    return _drive(cluster, DRIVER, json.dumps(args), str(kill), str(after), str(spread))


def test_batch_names_both_nodes_and_a_second_job_reuses_the_model_actors(cluster, setup):
    from video_emotion.inference.batch_store import read_summary

    first = _batch(cluster, setup, setup["lib"], setup["tmp"] / "out-1")
    assert first["rc"] == 0
    df = read_summary(setup["tmp"] / "out-1").set_index("path")
    assert len(df) == 17 and set(df["engine"]) == {"ray"}
    assert set(df["node"]) == set(cluster.node_ids)  # both nodes analysed videos
    assert df["host"].notna().all()
    broken = df.loc[str(setup["lib"] / "broken.mp4")]
    assert broken["status"] == "error" and "not a readable video" in broken["error"]
    assert (df.drop(str(setup["lib"] / "broken.mp4"))["status"] == "ok").all()
    assert first["actors"], "the model actors stay on the cluster after the job"

    second = _batch(cluster, setup, setup["other"], setup["tmp"] / "out-2")
    assert second["rc"] == 0 and (read_summary(setup["tmp"] / "out-2")["status"] == "ok").sum() == 4
    assert second["actors"] == first["actors"]  # the same processes: the second job loaded no model


# The local engine, then the Ray engine, on the same manifest; prints how the two outputs compare.
PREPROCESS = """
import dataclasses, json, logging, sys
from pathlib import Path
from video_emotion import security
from video_emotion.config import load_params
from video_emotion.data.processed import load_split
from video_emotion.stages import ingest, preprocess

logging.basicConfig(level=logging.INFO)
tmp = Path(sys.argv[1])
assert ingest.main(["--params", str(tmp / "params.yaml")]) == 0
params = load_params(tmp / "params.yaml")
ring = security.load_keyring(params.secure.key_file)
manifest = params.path("manifest")
local = preprocess.run(params.preprocess, manifest, tmp / "local", ["test"], ring)
on_ray = preprocess.run(dataclasses.replace(params.preprocess, engine="ray"), manifest, tmp / "ray", ["test"], ring)
diff, faces = [], {}
for split in ("train", "val", "test"):
    a, b = load_split(tmp / "local", split, ring), load_split(tmp / "ray", split, ring)
    if sorted(a) != sorted(b):
        diff.append(f"{split}: keys {sorted(a)} != {sorted(b)}")
    diff += [f"{split}/{k}" for k in a if k in b and not (a[k].dtype == b[k].dtype and (a[k] == b[k]).all())]
    faces[split] = bool(a["face"].any())
files = {n: json.loads((tmp / "local" / n).read_text()) == json.loads((tmp / "ray" / n).read_text())
         for n in ("preprocessing.json", "summary.json")}
print(json.dumps({"splits": local["splits"] == on_ray["splits"], "diff": diff, "faces": faces, "files": files,
                  "engine_saved": "engine" in json.loads((tmp / "ray" / "preprocessing.json").read_text())}))
"""


def test_preprocess_runs_across_both_nodes_and_writes_the_same_arrays(cluster, tmp_path):
    """`preprocess.engine: ray` writes the same arrays, in the same order, of the same dtypes, as the local
    engine, for every split (the encrypted test split included), with its crop tasks on both nodes."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params_dict(tmp_path)))
    res = _drive(cluster, PREPROCESS, str(tmp_path))
    assert res["splits"] and res["diff"] == []
    assert res["faces"] == {"train": True, "val": True, "test": True}  # real crops compared, not empty arrays
    assert res["files"] == {"preprocessing.json": True, "summary.json": True} and not res["engine_saved"]
    nodes = json.loads(res["stderr"].split("crop tasks per node: ", 1)[1].splitlines()[0])
    assert set(nodes) == set(cluster.node_ids)


# Two workers train one epoch with MultiWorkerMirroredStrategy on a small CNN from scratch (tracing the
# distributed step of the pretrained one costs a minute here); the saved model is loaded and read.
TRAIN = """
import dataclasses, json, logging, sys
from pathlib import Path
import numpy as np
from video_emotion.config import ModelConfig, TrainConfig
from video_emotion.inference.bundle import ModelBundle
from video_emotion.labels import LABELS
from video_emotion.stages import train

def split(n, rng):
    y = np.arange(n) % 7
    X = rng.integers(0, 255, (n, 6, 64, 64), dtype=np.uint8)
    X[:, :, 20:44, 20:44] = (y * 30)[:, None, None, None]  # a learnable difference between the classes
    return {"X": X, "face": np.ones((n, 6), bool), "detected": np.ones((n, 6), bool), "y": y.astype(np.int64),
            "actor": np.array([f"a{i % 3}" for i in range(n)]), "path": np.array([f"c{i}.mp4" for i in range(n)]),
            "sha256": np.array([f"{i:064x}" for i in range(n)])}

logging.basicConfig(level=logging.INFO)
tmp = Path(sys.argv[1])
processed = tmp / "processed"
processed.mkdir()
rng = np.random.default_rng(0)
np.savez(processed / "train.npz", **split(28, rng))
np.savez(processed / "val.npz", **split(14, rng))
settings = {"labels": list(LABELS), "n_frames": 6, "image_size": 64, "face_margin": 0.12, "min_face_frac": 0.2,
            "detect_every": 1, "denoise": False, "equalize": False, "audio": False, "window_s": 1.0,
            "detector": "blazeface"}  # a bundle without it would be an old Haar one, which is refused
(processed / "preprocessing.json").write_text(json.dumps(settings))
cfg = dataclasses.replace(TrainConfig(), epochs=1, batch_size=8, strategy="multiworker", workers=2)
result = train.run(ModelConfig(init="scratch", lstm_units=8, bidirectional=False), cfg, processed, tmp / "model", None)
probs = ModelBundle.load(tmp / "model").predict(split(4, rng)["X"], np.ones((4, 6), np.float32))
print(json.dumps({"metrics": result["metrics"], "history": result["history"], "shape": list(probs.shape),
                  "sums": probs.sum(1).tolist(), "keras": sorted(p.relative_to(tmp).as_posix()
                                                                  for p in tmp.rglob("*.keras"))}))
"""


def test_multiworker_training_has_one_worker_on_each_node(cluster, tmp_path):
    """`train.strategy: multiworker`: two workers, one on each node, train one epoch; the chief's model is
    saved once (no other worker writes a copy), and it loads and reads."""
    res = _drive(cluster, TRAIN, str(tmp_path))
    assert "2 workers: 127.0.0.1:" in res["stderr"]  # one machine: TF_CONFIG names the loopback address
    assert res["metrics"]["workers"] == 2 and res["metrics"]["epochs_run"] == 1
    # A worker starved of CPU is not declared dead after TensorFlow's 10 s (that aborted a fit under load).
    assert res["metrics"]["heartbeat_timeout_s"] == HEARTBEAT_TIMEOUT_S
    nodes = json.loads(res["stderr"].split("multiworker nodes: ", 1)[1].splitlines()[0])
    assert sorted(nodes) == sorted(cluster.node_ids)  # one worker per node
    history = res["history"]
    assert len(history["loss"]) == 1 and all(v == v and abs(v) != float("inf") for v in history["val_loss"])
    assert res["keras"] == ["model/model.keras"]
    assert res["shape"] == [4, 7] and all(abs(s - 1) < 1e-4 for s in res["sums"])


def test_a_node_lost_mid_job_loses_no_video(cluster, setup):
    """Three jobs of the first job's folder, each into a fresh folder with the bundle shipped to each node (the
    path separate machines take) and two model actors, one on each node; the second node's raylet is killed after
    1, then 2, then 5 finished videos, and the node started again between the jobs. Every job ends
    with 16 `ok`, the broken file's `error` and nothing `lost`, though the kill took a model actor each time."""
    from video_emotion.inference.batch_store import read_summary

    broken = str(setup["lib"] / "broken.mp4")
    for k, after in enumerate((1, 2, 5)):
        if k:
            cluster.restart_node(1)
        head, second = cluster.node_ids
        out = setup["tmp"] / f"out-kill-{after}"
        res = _batch(cluster, setup, setup["lib"], out, "--ship-model", "--actors", "2", kill=cluster.raylet_pid(1),
                     after=after, spread=2)
        df = read_summary(out).set_index("path")
        assert (res["rc"], (df["status"] == "lost").sum()) == (0, 0), df.loc[df["status"] == "lost", "error"].to_dict()
        assert cluster.alive_nodes() == [head]  # the second node is really gone
        # The kill took a model actor.
        assert {node for _, node in res["at_kill"].values()} == {head, second}, (after, head, second, res["at_kill"])
        assert len(df) == 17 and df.loc[broken, "status"] == "error"
        assert (df.drop(broken)["status"] == "ok").all()
        # Every model actor now runs on the head, from the head's own copy of the shipped bundle.
        assert res["actors"] and {node for _, node in res["actors"].values()} == {head}
        copies = list((cluster.root / "tmp" / "video-emotion-ray-models").glob("*/*/bundle/model.keras"))
        assert head[:16] in {c.parent.parent.name for c in copies}
