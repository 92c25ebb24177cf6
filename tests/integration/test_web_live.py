"""The page's Camera mode in a real headless Chromium whose fake camera plays real footage of a laughing
person, against the real service, used as a person would: key, Start, a reading, the lag, Stop, download."""

from __future__ import annotations

import json
import subprocess
import time

import numpy as np
import pytest
import requests

from tests.integration.conftest import GOOD
from tests.integration.test_web import ARGS, ARTIFACTS, CHROMIUM

pytestmark = pytest.mark.slow
CSV_HEADER = "start_s,end_s,emotion,confidence,valence,arousal,sentiment,p_angry,p_disgust,p_fear,p_happy,p_sad," \
             "p_surprise,p_neutral,unreadable"
# Every change of #live-latency, recorded in the page (the lag of each reading as the page shows it).
RECORD_LAGS = """() => { window.lags = []; new MutationObserver(() => {
    window.lags.push(document.getElementById('live-latency').textContent); })
    .observe(document.getElementById('live-latency'), {childList: true, characterData: true, subtree: true}); }"""


@pytest.fixture(scope="module")
def camera_clip(tmp_path_factory, real_faces):
    """The laughing part of the real clip (11-17 s) as the y4m file Chromium's fake camera plays (640x480)."""
    import imageio_ffmpeg

    out = tmp_path_factory.mktemp("camera") / "laughing.y4m"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-ss", "11", "-t", "6",
                    "-i", str(real_faces / "cry_then_laugh.mp4"), "-vf",
                    "scale=640:480:force_original_aspect_ratio=decrease,pad=640:480:(ow-iw)/2:(oh-ih)/2,fps=15",
                    "-pix_fmt", "yuv420p", str(out)], check=True, timeout=120)
    return out


@pytest.fixture(scope="module")
def camera_browser(camera_clip):
    if not CHROMIUM.exists():
        pytest.fail("Debian chromium is not installed (apt-get install chromium fonts-wqy-zenhei)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            *ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={camera_clip}"])
        yield b
        b.close()


@pytest.fixture
def open_page(camera_browser, service):
    contexts = []

    def make():
        ctx = camera_browser.new_context(viewport={"width": 1100, "height": 1500})
        contexts.append(ctx)
        pg = ctx.new_page()
        pg.goto(f"{service['url']}/ui/")
        return pg

    yield make
    for ctx in contexts:
        ctx.close()


def _wait(page, expression: str, timeout_ms: int) -> None:
    """Poll `expression` in the page until it is truthy. Playwright's wait_for_function evaluates its
    string with eval inside the page, which the page's Content-Security-Policy (script-src 'self')
    forbids; page.evaluate goes through the DevTools protocol and is not subject to it."""
    deadline = time.monotonic() + timeout_ms / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true within {timeout_ms} ms: {expression}")
        time.sleep(0.1)


def _start(page, key: str = GOOD) -> None:
    page.fill("#key", key)
    page.click("#mode-camera")
    page.click("#live-start")


def test_the_camera_is_read_live_and_the_session_downloads(open_page):
    page = open_page()
    assert page.is_hidden("#live")
    page.click("#mode-camera")
    assert page.is_visible("#live-start") and page.is_hidden("#go") and page.is_hidden("#drop")
    assert page.evaluate("document.getElementById('live-video').srcObject") is None  # no camera until asked
    page.evaluate(RECORD_LAGS)
    _start(page)
    _wait(page, "document.getElementById('live-state').dataset.label === 'happy'", 15_000)
    assert page.inner_text("#live-state") == "happy" and page.get_attribute("#live-status", "data-state") == "live"
    _wait(page, "window.lags.filter((x) => /^[0-9]+$/.test(x)).length >= 21", 60_000)
    lags = [int(x) for x in page.evaluate("window.lags") if x.isdigit()]  # "—" only before the first reading
    assert len(set(lags)) > 1 and all(x > 0 for x in lags)  # a number that changes with every reading
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "web-live-latency.json").write_text(json.dumps(
        {"samples_ms": lags[1:21], "p95_ms": float(np.percentile(lags[1:21], 95))}))
    # Boxes and labels are drawn over the preview, and the rolling chart has points.
    drawn = page.evaluate("""() => { const c = document.getElementById('live-overlay');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""")
    assert drawn > 500
    assert int(page.get_attribute("#live-chart", "data-points")) > 5
    page.screenshot(path=str(ARTIFACTS / "web-page-live.png"), full_page=True)
    page.select_option("#lang", "zh")  # the state in the page's language
    _wait(page, "document.getElementById('live-state').textContent === '高兴'", 10_000)
    page.click("#live-stop")
    _wait(page, "document.getElementById('live-status').dataset.state === 'stopped'", 30_000)
    assert page.evaluate("document.getElementById('live-video').srcObject") is None  # the camera is released
    with page.expect_download() as dl:
        page.click("#live-dl-json")
    result = json.loads(open(dl.value.path(), encoding="utf-8").read())
    assert result["source"] == "live" and result["faces_detected"] and result["summary"]["dominant_emotion"] == "happy"
    assert len(result["timeline"]) >= 20 and result["label_names"]["happy"] == "happy"  # the session began in English
    with page.expect_download() as dl:
        page.click("#live-dl-csv")
    rows = open(dl.value.path(), encoding="utf-8").read().splitlines()
    assert rows[0] == CSV_HEADER and len(rows) == len(result["timeline"]) + 1


def test_a_wrong_key_is_refused_with_its_reason_and_no_reading(open_page):
    page = open_page()
    _start(page, key="not-the-key")
    _wait(page, "document.getElementById('live-status').dataset.state === 'refused'", 15_000)
    assert "invalid API key" in page.inner_text("#live-status")
    assert page.inner_text("#live-latency") == "—" and page.inner_text("#live-state") == "—"
    assert page.evaluate("document.getElementById('live-video').srcObject") is None


def test_a_third_page_is_told_busy_and_a_closed_tab_frees_its_session(open_page, service):
    first, second, third = open_page(), open_page(), open_page()
    for page in (first, second):
        _start(page)
        _wait(page, "document.getElementById('live-latency').textContent !== '—'", 30_000)
    _start(third)
    _wait(third, "document.getElementById('live-status').dataset.state === 'refused'", 15_000)
    assert "busy" in third.inner_text("#live-status")
    first.close()  # a closed tab: its session ends with it, and its slot is free at once
    deadline = time.time() + 2
    while requests.get(f"{service['url']}/model", headers={"Authorization": f"Bearer {GOOD}"},
                       timeout=10).json()["load"]["live_sessions"] > 1:
        assert time.time() < deadline, "the closed tab's session kept its slot"
        time.sleep(0.05)
    third.click("#live-start")
    _wait(third, "document.getElementById('live-latency').textContent !== '—'", 30_000)
    assert third.get_attribute("#live-status", "data-state") == "live"
