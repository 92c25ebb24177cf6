"""Screenshots of the MLflow UI for the README: the training runs, two runs compared, the champion version.

    .venv/bin/python benchmarks/mlflow_ui_screenshot.py [--store sqlite:///mlflow.db] [--out docs/img]

Starts `mlflow ui` on 127.0.0.1 (a free port) against the store, opens it in Debian's headless Chromium
(Playwright, as the browser tests do), saves PNGs and stops the server. Make the store first with
`make run` and `dvc exp run -S train.epochs=3`: the compare view shows the two newest training runs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(url: str, path: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(f"{url}/ajax-api/2.0/mlflow/{path}", method="POST" if body is not None else "GET",
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _wait(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("mlflow ui exited early")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise SystemExit("mlflow ui did not start")


def shoot(url: str, out: Path, experiment: str, model: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    exp = _api(url, f"experiments/get-by-name?experiment_name={experiment}")["experiment"]
    runs = _api(url, "runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 50,
                                     "filter": "tags.stage = 'train'", "order_by": ["attributes.start_time DESC"]})["runs"]
    champion = _api(url, f"registered-models/alias?name={model}&alias=champion")["model_version"]
    pages = {"mlflow-runs.png": f"#/experiments/{exp['experiment_id']}/runs",
             "mlflow-version.png": f"#/models/{model}/versions/{champion['version']}"}
    if len(runs) >= 2:
        ids = json.dumps([r["info"]["run_id"] for r in runs[:2]])
        pages["mlflow-compare.png"] = f"#/compare-runs?runs={ids}&experiments={json.dumps([exp['experiment_id']])}"
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        for name, route in pages.items():
            page.goto(f"{url}/{route}")
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(3000)  # the UI renders its tables after the API answers
            page.screenshot(path=str(out / name))
            saved.append(out / name)
        browser.close()
    return saved


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default=f"sqlite:///{ROOT / 'mlflow.db'}", help="backend store URI")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img", help="folder for the PNGs")
    ap.add_argument("--experiment", default="video-emotion")
    ap.add_argument("--model", default="video-emotion")
    args = ap.parse_args()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "ui", "--backend-store-uri", args.store,
                             "--host", "127.0.0.1", "--port", str(port)], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(url, proc)
        for path in shoot(url, args.out, args.experiment, args.model):
            print(path)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
