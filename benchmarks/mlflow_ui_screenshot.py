"""Screenshots of the MLflow UI for docs/pipeline.md: the training runs, their charts, two runs compared, the champion.

    .venv/bin/python benchmarks/mlflow_ui_screenshot.py [--store sqlite:///mlflow.db] [--out docs/img]

Starts `mlflow ui` on 127.0.0.1 (a free port) against the store, opens it in Debian's headless Chromium
(Playwright, as the browser tests do), saves PNGs and stops the server. Make the store first with
`make run` and `dvc exp run -S train.epochs=3`: the compare view shows the two newest training runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # tests.servers: the tests' own server helper

from tests import servers  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def _api(url: str, path: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(f"{url}/ajax-api/2.0/mlflow/{path}", method="POST" if body is not None else "GET",
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _settle(page, text: str) -> None:
    """Wait until `text` shows (the UI keeps polling, so "network idle" never comes), then let charts draw."""
    page.get_by_text(text).first.wait_for(timeout=120_000)
    page.wait_for_timeout(3000)


def _columns(page, names: list[str]) -> None:
    """Toggle table columns by name in the Columns menu (metrics before parameters of the same name)."""
    page.get_by_role("button", name="Columns").click()
    search = page.get_by_placeholder("Search columns")
    menu = search.locator("xpath=ancestor::*[.//*[text()='Reset to defaults']][1]")
    for name in names:
        search.fill(name)
        page.wait_for_timeout(500)
        item = menu.get_by_text(name, exact=True)
        if not item.count():  # its section is folded
            folds = menu.locator("[class*=tree-switcher_close]")
            while folds.count():
                folds.first.click()
                page.wait_for_timeout(300)
        item.first.click()
    search.fill("")
    page.keyboard.press("Escape")


def _widen(page, header: str, by: int) -> None:
    handle = page.locator(".ag-header-cell", has_text=header).first.locator(".ag-header-cell-resize").first
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    handle.hover()
    page.mouse.down()
    for dx in range(10, by + 10, 10):
        page.mouse.move(x + dx, y)
    page.mouse.up()
    page.mouse.move(5, 5)


def shoot(url: str, out: Path, experiment: str, model: str) -> list[Path]:
    """The runs table, the runs' charts, two runs compared and the champion version, as PNGs in `out`."""
    from playwright.sync_api import sync_playwright

    exp = _api(url, f"experiments/get-by-name?experiment_name={experiment}")["experiment"]
    exp_id = exp["experiment_id"]
    runs = _api(url, "runs/search", {"experiment_ids": [exp_id], "max_results": 50,
                                     "filter": "tags.stage = 'train'",
                                     "order_by": ["attributes.start_time DESC"]})["runs"]
    champion = _api(url, f"registered-models/alias?name={model}&alias=champion")["model_version"]
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1800, "height": 1000})
        page.goto(f"{url}/#/experiments/{exp_id}/runs")
        _settle(page, runs[0]["info"]["run_name"])
        if page.get_by_role("button", name="Close").count():  # the assistant panel: not part of the story
            page.get_by_role("button", name="Close").first.click()
        page.get_by_text("Model training", exact=True).first.click()  # the UI's mode for training runs
        _columns(page, ["Source", "test_macro_f1", "test_uar", "test_accuracy", "realface_photo_accuracy",
                        "train.epochs"])
        _widen(page, "Run Name", 140)
        page.set_viewport_size({"width": 1800, "height": 620})
        page.wait_for_timeout(1500)
        page.screenshot(path=str(out / "mlflow-runs.png"))
        saved.append(out / "mlflow-runs.png")
        page.set_viewport_size({"width": 1600, "height": 1000})
        page.locator("label", has=page.locator("input[value=CHART]")).click()
        _settle(page, "Model metrics")
        page.screenshot(path=str(out / "mlflow-charts.png"))
        saved.append(out / "mlflow-charts.png")
        if len(runs) >= 2:
            ids = json.dumps([r["info"]["run_id"] for r in runs[:2]])
            page.goto(f"{url}/#/compare-runs?runs={ids}&experiments={json.dumps([exp_id])}")
            _settle(page, "Show diff only")
            for section in ("Parameters", "Metrics"):
                page.get_by_role("switch", name=f"{section} - Show diff only").click()
            page.get_by_text("Visualizations", exact=True).click()
            page.set_viewport_size({"width": 1600, "height": 1150})
            page.wait_for_timeout(2000)
            page.screenshot(path=str(out / "mlflow-compare.png"))
            saved.append(out / "mlflow-compare.png")
        page.set_viewport_size({"width": 1600, "height": 1000})
        page.goto(f"{url}/#/models/{model}/versions/{champion['version']}")
        _settle(page, "Description")
        page.screenshot(path=str(out / "mlflow-version.png"))
        saved.append(out / "mlflow-version.png")
        browser.close()
    return saved


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default=f"sqlite:///{ROOT / 'mlflow.db'}", help="backend store URI")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img", help="folder for the PNGs")
    ap.add_argument("--experiment", default="video-emotion")
    ap.add_argument("--model", default="video-emotion")
    args = ap.parse_args()
    port = servers.free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    proc, _ = servers.start([str(Path(sys.executable).parent / "mlflow"), "ui", "--backend-store-uri", args.store,
                             "--host", "127.0.0.1", "--port", str(port)], f"{url}/health", env, timeout_s=120)
    try:
        for path in shoot(url, args.out, args.experiment, args.model):
            print(path)
    finally:
        servers.stop(proc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
