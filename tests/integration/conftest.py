"""Shared fixtures: the tiny pipeline (trained and registered once per session) and a real
`bentoml serve` on 127.0.0.1 of the model that pipeline registered as champion, imported with
`video-emotion bento-import --model video-emotion@champion` as a user does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import servers
from tests.conftest import ROOT

GOOD = "test-key-good"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory, pretrained, real_faces):
    """ingest -> validate -> preprocess -> train -> evaluate (registers v1) on a tiny corpus, once for
    the whole session: the pipeline tests check it, the service serves what it registered."""
    import yaml

    from tests.conftest import tiny_params_dict
    from video_emotion.stages import evaluate, ingest, preprocess, train, validate

    tmp = tmp_path_factory.mktemp("pipeline")
    params_file = tmp / "params.yaml"
    params_file.write_text(yaml.safe_dump(tiny_params_dict(tmp)))
    P = ["--params", str(params_file)]
    d = tiny_params_dict(tmp)["paths"]
    assert ingest.main(P + ["--raw-dir", d["raw_dir"], "--manifest", d["manifest"]]) == 0
    assert validate.main(P + ["--manifest", d["manifest"], "--report", d["validation_report"]]) == 0
    assert preprocess.main(P + ["--manifest", d["manifest"], "--out-dir", d["processed_dir"]]) == 0
    assert train.main(P + ["--processed-dir", d["processed_dir"], "--model-dir", d["model_dir"],
                           "--pretrained", d["pretrained"], "--metrics", f"{d['metrics_dir']}/train.json",
                           "--plot", f"{d['plots_dir']}/train_history.csv"]) == 0
    eval_args = P + ["--model-dir", d["model_dir"], "--processed-dir", d["processed_dir"],
                     "--real-faces-dir", d["real_faces_dir"], "--metrics", f"{d['metrics_dir']}/eval.json",
                     "--confusion", f"{d['plots_dir']}/confusion.csv", "--report-dir",
                     str(tmp / "reports" / "evaluation")]
    assert evaluate.main(eval_args) == 0
    first = json.loads((tmp / "reports" / "registry.json").read_text())
    return {"tmp": tmp, "params": params_file, "paths": d, "eval_args": eval_args, "first": first}


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray on 2 CPUs for one test module (the Ray engine's tests), shut down after it."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def service(tmp_path_factory, pipeline):
    """The pipeline's registered champion, imported into a private BentoML store and served."""
    tmp = tmp_path_factory.mktemp("service")
    env = {**os.environ, "BENTOML_HOME": str(tmp / "bentoml"), "VIDEO_EMOTION_API_KEYS": f"other-key,{GOOD}",
           "VIDEO_EMOTION_API_KEY_FILE": str(tmp / "api_keys"), "VIDEO_EMOTION_MAX_UPLOAD_MB": "2",
           "VIDEO_EMOTION_MAX_DURATION_S": "30", "TMPDIR": str(tmp / "svc-tmp"),
           "VIDEO_EMOTION_RATE_LIMIT": "100000",  # the limits have their own server (test_service_keys.py) ...
           "VIDEO_EMOTION_MAX_LIVE_PER_KEY": "2"}  # ... and so do live sessions' keys (test_live_keys.py)
    (tmp / "svc-tmp").mkdir()
    imported = subprocess.run([str(BIN / "video-emotion"), "--params", str(pipeline["params"]), "bento-import",
                               "--model", "video-emotion@champion"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300)
    if imported.returncode != 0:
        pytest.fail(f"bento-import of the pipeline's champion failed (registry decision: {pipeline['first']}):\n"
                    f"{imported.stderr[-2000:]}", pytrace=False)
    tag = imported.stdout.split(" as ", 1)[1].split(";", 1)[0].strip()
    model_dir = Path(pipeline["paths"]["model_dir"])
    settings = json.loads((model_dir / "preprocessing.json").read_text())
    proc, url, log = start_server(env, tmp)
    yield {"url": url, "tmp": tmp, "proc": proc, "env": env, "tag": tag, "log": tmp / "serve.log",
           "version": pipeline["first"]["version"], "n_frames": settings["n_frames"]}
    stop_server(proc, log)


def start_server(env: dict[str, str], tmp: Path) -> tuple[subprocess.Popen, str, Any]:
    """`bentoml serve` on a free port of 127.0.0.1 with `env`, logging to tmp/serve.log; waits until ready."""
    return servers.start_bentoml(env, tmp / "serve.log", timeout_s=180)


def stop_server(proc: subprocess.Popen, log: Any) -> None:
    servers.stop(proc, log)
