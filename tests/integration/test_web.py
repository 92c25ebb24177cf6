"""The web page in a real headless Chromium against the real service: upload, chart, summary, errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT
from tests.integration.conftest import GOOD

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "test-artifacts"))
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():  # the browser test is part of the suite: missing Chromium is a failure
        pytest.fail("Debian chromium is not installed: `make test` installs it when run as root "
                    "(otherwise: apt-get install chromium fonts-wqy-zenhei)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, service):
    ctx = browser.new_context(viewport={"width": 1100, "height": 1400})
    pg = ctx.new_page()
    pg.goto(f"{service['url']}/ui/")
    yield pg
    ctx.close()


def _analyse(page, video: Path, key: str = GOOD, lang: str = "en") -> None:
    page.fill("#key", key)
    page.set_input_files("#video", str(video))
    page.select_option("#lang", lang)
    page.click("#go")


def test_upload_shows_the_timeline_and_summary_the_api_returns(page, service, face_clip):
    with open(face_clip, "rb") as fh:
        expected = requests.post(f"{service['url']}/analyze", files={"video": ("happy.mp4", fh)},
                                 headers={"Authorization": f"Bearer {GOOD}"}, timeout=120).json()
    assert expected["faces_detected"]
    _analyse(page, face_clip)
    page.wait_for_selector("#result:not([hidden])", timeout=120_000)
    rows = page.locator("#segments tbody tr")
    assert rows.count() == len(expected["timeline"])
    assert [rows.nth(i).get_attribute("data-emotion") for i in range(rows.count())] == \
        [s["emotion"] for s in expected["timeline"]]
    summary = expected["summary"]
    assert page.get_attribute("#dominant", "data-label") == summary["dominant_emotion"]
    assert page.get_attribute("#sentiment", "data-sentiment") == summary["sentiment"]
    assert page.inner_text("#score") == f"{summary['sentiment_score']:.2f}"
    assert [t.get_attribute("data-label") for t in page.locator("#tags .tag").all()] == summary["tags"]
    assert f"video-emotion v{service['version']}" in page.inner_text("#model")  # the registered champion
    # The chart is really drawn: many coloured pixels, and a text alternative naming each segment.
    coloured = page.evaluate("""() => { const c = document.getElementById('chart');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 0; i < d.length; i += 4) if (!(d[i] > 240 && d[i+1] > 240 && d[i+2] > 240)) n++; return n; }""")
    assert coloured > 20_000
    label = page.get_attribute("#chart", "aria-label")
    assert label.count(" s: ") == len(expected["timeline"])
    # Clicking the chart seeks the video; the cursor follows.
    box = page.locator("#chart").bounding_box()
    page.mouse.click(box["x"] + 40 / 960 * box["width"] + 0.75 * (920 / 960) * box["width"], box["y"] + 50)
    t = page.evaluate("document.getElementById('player').currentTime")
    assert abs(t - 0.75 * expected["duration_s"]) < 0.15
    assert abs(float(page.get_attribute("#chart", "data-cursor")) - t) < 0.05
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-page-result.png"), full_page=True)


def test_real_footage_in_chinese(page, service, real_faces):
    clip = real_faces / "cry_then_laugh.mp4"
    _analyse(page, clip, lang="zh")
    page.wait_for_selector("#result:not([hidden])", timeout=120_000)
    sentiments = [r.get_attribute("data-sentiment") for r in page.locator("#segments tbody tr").all()]
    n = len(sentiments)
    assert sentiments[: n // 3].count("negative") > n // 6 and sentiments[-(n // 3):].count("positive") > n // 6
    assert "悲伤" in page.inner_text("#legend") and "高兴" in page.inner_text("#legend")
    page.evaluate("document.getElementById('player').currentTime = 4")
    page.wait_for_timeout(300)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-page-real-footage-zh.png"), full_page=True)


def test_wrong_key_and_garbage_file_show_clear_messages(page, tmp_path, face_clip):
    _analyse(page, face_clip, key="not-the-key")
    page.wait_for_selector("#error:not([hidden])", timeout=30_000)
    assert "API key" in page.inner_text("#error")
    assert page.is_hidden("#result")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"definitely not a video" * 100)
    _analyse(page, junk)
    # Waits by selector: the page's policy forbids eval, which wait_for_function's polling needs.
    page.locator("#error", has_text="422").wait_for(timeout=30_000)
    assert "cannot analyse the video" in page.inner_text("#error")


def test_no_face_is_said_not_invented(page, blank_clip):
    _analyse(page, blank_clip)
    page.wait_for_selector("#result:not([hidden])", timeout=60_000)
    assert "No face" in page.inner_text("#summary")
    assert page.locator("#segments tbody tr").count() == 0


def test_a_file_cut_short_is_said_to_end_early(page, face_clip, tmp_path):
    import subprocess

    from video_emotion.features.audio import ffmpeg_exe

    whole, cut = tmp_path / "whole.mp4", tmp_path / "cut.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-stream_loop", "2", "-i", str(face_clip), "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(whole)], check=True, timeout=120)
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # the header at the front promises 6 s
    _analyse(page, cut)
    page.wait_for_selector("#result:not([hidden])", timeout=60_000)
    note = page.inner_text("#ends-early")
    assert "cut short or damaged" in note and "of the 6.0 s" in note


def test_controls_are_keyboard_reachable(page):
    page.focus("#key")
    order = []
    for _ in range(9):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id"))
    assert order[:8] == ["video", "transcript", "fps", "lang", "transcribe", "speech-lang", "voice", "go"]
    for control in ("key", "video", "transcript", "fps", "lang", "transcribe", "speech-lang", "voice"):
        assert page.locator(f"label[for={control}]").count() == 1


def test_several_faces_get_their_own_tracks(page, two_face_clip):
    _analyse(page, two_face_clip)
    page.wait_for_selector("#result:not([hidden])", timeout=60_000)
    assert page.is_visible("#faces")
    cards = page.locator("#face-list .face")
    assert cards.count() == 2
    assert all(cards.nth(i).get_attribute("data-dominant") for i in range(2))


def test_recognised_speech_is_shown_under_the_chart_and_seeks(page, service, real_faces, tmp_path):
    """A real face with English speech (espeak-ng) after a second of silence: the page lists the words
    the API recognised, coloured by sentiment, says they came from speech recognition, and a click on
    a line plays the video from there; with recognition off there are no words and the card says so."""
    from tests.speech_media import POSITIVE, face_with_voice, speak

    clip = face_with_voice(real_faces / "posed_happy.jpg", speak(POSITIVE, tmp_path / "pos.wav", lead_s=1.0),
                           tmp_path / "speech.mp4")
    with open(clip, "rb") as fh:
        expected = requests.post(f"{service['url']}/analyze", files={"video": ("speech.mp4", fh)},
                                 headers={"Authorization": f"Bearer {GOOD}"}, timeout=300).json()
    cues = expected["transcript"]["cues"]
    assert expected["transcript"]["source"] == "asr" and cues
    _analyse(page, clip)
    page.wait_for_selector("#result:not([hidden])", timeout=300_000)
    assert page.is_visible("#words")
    # Under the chart, in reading order.
    assert page.locator("#words").bounding_box()["y"] > page.locator("#chart").bounding_box()["y"]
    lines = page.locator("#cues .cue")
    assert lines.count() == len(cues)
    for i, cue in enumerate(cues):
        line = lines.nth(i)
        assert cue["text"] in line.inner_text()
        assert line.get_attribute("data-sentiment") == cue["sentiment"] == "positive"
        assert "sent-positive" in line.get_attribute("class")
    colour = page.evaluate("getComputedStyle(document.querySelector('#cues .cue')).borderLeftColor")
    assert colour == "rgb(58, 166, 85)"  # the positive green
    assert page.get_attribute("#words-from", "data-source") == "asr"
    assert "speech recognition" in page.inner_text("#summary")
    assert page.get_attribute("#words-source", "data-source") == "asr"
    lines.last.click()
    t = page.evaluate("document.getElementById('player').currentTime")
    assert abs(t - cues[-1]["start_s"]) < 0.1 and cues[-1]["start_s"] > 0.3
    assert "active" in lines.last.get_attribute("class")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-page-speech.png"), full_page=True)
    # Recognition off: no words, and the card says why.
    page.select_option("#transcribe", "off")
    page.click("#go")
    page.locator("#words[hidden]").wait_for(state="attached", timeout=120_000)
    page.wait_for_selector("#words-from[data-status=off]", timeout=120_000)
    assert page.locator("#cues .cue").count() == 0


def test_the_page_runs_under_its_policy_and_shows_hostile_text_as_text(browser, service, face_clip, tmp_path):
    """Served with a Content-Security-Policy (no inline script or style, nothing from elsewhere): the page
    works without one violation, its bars get their colours and widths from CSS variables, and a transcript
    full of markup is shown as text, never run."""
    r = requests.get(f"{service['url']}/ui/", timeout=10)
    policy = r.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy and "blob:" in policy
    assert "unsafe-inline" not in policy and "style=" not in r.text
    assert requests.get(f"{service['url']}/ui/app.js", timeout=10).headers["content-security-policy"] == policy
    ctx = browser.new_context(viewport={"width": 1100, "height": 1400})
    ctx.add_init_script("window.__violations = []; document.addEventListener('securitypolicyviolation', "
                        "(e) => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));")
    page = ctx.new_page()
    try:
        page.goto(f"{service['url']}/ui/")
        hostile = tmp_path / "hostile.srt"
        # Complete tags are stripped by the transcript parser; an unclosed one reaches the page as the user's text.
        hostile.write_text("1\n00:00:00,000 --> 00:00:02,000\nhappy & wonderful <img id=injected src=x "
                           "onerror=window.pwned=1 \n", encoding="utf-8")
        page.set_input_files("#transcript", str(hostile))
        _analyse(page, face_clip)
        page.wait_for_selector("#result:not([hidden])", timeout=120_000)
        assert page.locator("#injected").count() == 0
        assert "<img id=injected" in page.inner_text("#cues") and not page.evaluate("window.pwned")
        bar = page.locator(".dist i").first
        assert bar.bounding_box()["width"] > 0
        colour = page.evaluate("getComputedStyle(document.querySelector('.dist i')).backgroundColor")
        assert colour not in ("rgba(0, 0, 0, 0)", "transparent")
        assert page.evaluate("window.__violations") == []
    finally:
        ctx.close()
