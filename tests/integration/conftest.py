"""Shared fixture: a real `bentoml serve` on 127.0.0.1 with a FER-initialised model in a private store."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT

GOOD = "test-key-good"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def service(tmp_path_factory, pretrained):
    """Import a FER-initialised bundle into a private BentoML store and serve it."""
    from video_emotion.config import ModelConfig
    from video_emotion.labels import LABELS
    from video_emotion.modeling.model import build_model
    from video_emotion.serving.bento_store import import_bundle

    tmp = tmp_path_factory.mktemp("service")
    bundle = tmp / "bundle"
    bundle.mkdir()
    # Untrained temporal head without correction: the clip output is an attention-weighted mean of
    # the pretrained CNN's per-frame probabilities, so it reads real faces as FER-2013 does.
    build_model(ModelConfig(lstm_units=8, correction_bound=0.0), 8, 64, pretrained).save(bundle / "model.keras")
    settings = {"labels": list(LABELS), "n_frames": 8, "image_size": 64, "face_margin": 0.12,
                "min_face_frac": 0.2, "detect_every": 1, "denoise": False, "equalize": False, "window_s": 1.0}
    (bundle / "preprocessing.json").write_text(json.dumps(settings))
    env = {**os.environ, "BENTOML_HOME": str(tmp / "bentoml"), "VIDEO_EMOTION_API_KEYS": f"other-key,{GOOD}",
           "VIDEO_EMOTION_API_KEY_FILE": str(tmp / "no-key-file"), "VIDEO_EMOTION_MAX_UPLOAD_MB": "2",
           "VIDEO_EMOTION_MAX_DURATION_S": "30", "TMPDIR": str(tmp / "svc-tmp")}
    (tmp / "svc-tmp").mkdir()
    os.environ["BENTOML_HOME"] = env["BENTOML_HOME"]
    try:
        import_bundle(bundle, {"name": "video-emotion", "version": "test"})
    finally:
        del os.environ["BENTOML_HOME"]
    port = _free_port()
    log = open(tmp / "serve.log", "wb")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "bentoml"), "serve", "--host", "127.0.0.1",
                             "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, url, tmp)
    except BaseException:
        os.killpg(proc.pid, signal.SIGTERM)  # never leave a server behind
        raise
    yield {"url": url, "tmp": tmp, "proc": proc}
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()


def _wait_ready(proc: subprocess.Popen, url: str, tmp: Path) -> None:
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("bentoml serve exited:\n" + (tmp / "serve.log").read_text()[-3000:])
        try:
            if requests.get(f"{url}/readyz", timeout=5).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(1)
    else:
        raise RuntimeError("bentoml serve did not become ready:\n" + (tmp / "serve.log").read_text()[-3000:])
