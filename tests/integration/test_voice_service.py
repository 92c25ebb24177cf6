"""The voice through the service and the web page: a real `bentoml serve` on 127.0.0.1 of a bundle carrying a voice
model (the shipped one, learned from RAVDESS speech) with the real
Whisper base, and the page in a real headless Chromium. An audio upload (WAV, an MP3 without a file name suffix)
gives the voice and the words with no face; the `voice` field turns it off; the page shows the voice as its own row
(windows without speech as such), the face/voice shares, English and Chinese, and no face row for a recording."""

from __future__ import annotations

import csv
import io
import os
import subprocess
from pathlib import Path

import pytest
import requests

from tests import servers
from tests.conftest import ROOT, fer_bundle
from tests.integration.conftest import BIN, GOOD
from tests.integration.test_web import ARTIFACTS, browser  # noqa: F401  (the module's Chromium fixture)
from tests.speech_media import POSITIVE, face_with_voice, require_whisper, speak
from tests.voice_media import audio_as, shipped_voice_model
from video_emotion.labels import LABELS, translate

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {GOOD}"}


@pytest.fixture(scope="module")
def voiced(tmp_path_factory, fer_model):
    """The server: a small face bundle with a voice model, imported with `video-emotion bento-import --model FOLDER`."""
    require_whisper()
    tmp = tmp_path_factory.mktemp("voice-service")
    bundle = fer_bundle(fer_model, tmp / "bundle")
    shipped_voice_model(bundle / "voice")
    env = {k: v for k, v in os.environ.items() if k not in ("VIDEO_EMOTION_API_KEY_FILE", "VIDEO_EMOTION_WHISPER_DIR")}
    env.update(BENTOML_HOME=str(tmp / "bentoml"), VIDEO_EMOTION_API_KEYS=GOOD, VIDEO_EMOTION_RATE_LIMIT="100000",
               VIDEO_EMOTION_API_KEY_FILE=str(tmp / "no-key-file"), TMPDIR=str(tmp / "svc-tmp"))
    (tmp / "svc-tmp").mkdir()
    imported = subprocess.run([str(BIN / "video-emotion"), "bento-import", "--model", str(bundle)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
    assert imported.returncode == 0, imported.stderr
    proc, url, log = servers.start_bentoml(env, tmp / "serve.log", timeout_s=240)
    yield {"url": url, "tmp": tmp}
    servers.stop(proc, log)


@pytest.fixture(scope="module")
def media(tmp_path_factory, real_faces) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("voice-media")
    wav = speak(POSITIVE, d / "memo.wav", lead_s=1.0)
    return {"wav": wav, "mp3": audio_as(wav, ".mp3", d),
            "talking": face_with_voice(real_faces / "posed_happy.jpg", wav, d / "talking.mp4", seconds=5.0)}


def _post(voiced, path: Path, name: str | None = None, **fields) -> requests.Response:
    with open(path, "rb") as fh:
        return requests.post(f"{voiced['url']}/analyze", files={"video": (name or path.name, fh)}, data=fields,
                             headers=AUTH, timeout=300)


def test_the_api_reads_an_audio_upload_and_the_voice_field_turns_it_off(voiced, media, tmp_path):
    model = requests.get(f"{voiced['url']}/model", headers=AUTH, timeout=30).json()
    assert model["voice"]["available"] and model["voice"]["name"] == "voice-ravdess"
    r = _post(voiced, media["wav"])
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["video"] == "memo.wav" and res["media"] == "audio" and res["faces_detected"] is False
    assert res["timeline"] == [] and res["voice"]["status"] == "read" and res["transcript"]["source"] == "asr"
    assert res["summary"]["dominant_emotion"] == res["voice"]["summary"]["dominant_emotion"] in LABELS
    # An MP3 sent without a suffix is told by its streams; the voice field turns the voice off.
    off = _post(voiced, media["mp3"], name="recording", voice="off", transcribe="off")
    assert off.status_code == 200, off.text
    assert off.json()["media"] == "audio" and off.json()["voice"]["status"] == "off"
    bad = _post(voiced, media["mp3"], voice="loud")
    assert bad.status_code == 400 and "`voice` must be auto or off" in bad.json()["error"]
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"not a sound at all " * 50)
    assert _post(voiced, junk).status_code == 422


@pytest.fixture
def page(browser, voiced):  # noqa: F811
    ctx = browser.new_context(viewport={"width": 1100, "height": 1500})
    pg = ctx.new_page()
    pg.goto(f"{voiced['url']}/ui/")
    yield pg
    ctx.close()


def _analyse(page, path: Path, lang: str = "en", voice: str = "auto") -> None:
    page.fill("#key", GOOD)
    page.set_input_files("#video", str(path))
    page.select_option("#lang", lang)
    page.select_option("#voice", voice)
    page.click("#go")
    page.wait_for_selector("#result:not([hidden])", timeout=300_000)


def test_an_audio_file_shows_the_voice_row_and_the_words_and_no_face_row(page, voiced, media):
    expected = _post(voiced, media["wav"]).json()
    _analyse(page, media["wav"])
    assert page.is_hidden("#face-chart") and page.is_hidden("#face-table")
    assert page.is_visible("#voice-row") and page.is_visible("#words")
    cells = page.locator("#voice-track .vseg")
    windows = expected["voice"]["timeline"]
    assert cells.count() == len(windows)
    for i, w in enumerate(windows):
        cell = cells.nth(i)
        assert cell.get_attribute("data-speech") == str(w["speech"]).lower()
        assert cell.get_attribute("data-emotion") == (w["emotion"] or "")
        assert ("no-speech" in cell.get_attribute("class")) == (not w["speech"])
    assert cells.first.inner_text() == "no speech"  # the second of silence, shown as such
    # The cells sit on the time axis: the second window starts a fifth of the way along a 5 s recording.
    track, second = page.locator("#voice-track").bounding_box(), cells.nth(1).bounding_box()
    assert abs((second["x"] - track["x"]) / track["width"] - windows[1]["start_s"] / expected["duration_s"]) < 0.01
    voice = expected["voice"]["summary"]["dominant_emotion"]
    assert page.get_attribute("#dominant", "data-label") == voice == page.get_attribute("#voice-dominant", "data-label")
    assert "audio file" in page.inner_text("#no-face")
    assert page.get_attribute("#sources", "data-face") == "0" and page.get_attribute("#sources", "data-voice") == "1"
    assert page.locator("#cues .cue").count() == len(expected["transcript"]["cues"])
    assert page.get_attribute("#combined", "data-reading") == "combinedVoice"  # the voice's, beside the words
    assert page.inner_text("#combined").startswith("Voice + words")
    cells.nth(2).click()
    assert abs(page.evaluate("document.getElementById('player').currentTime") - windows[2]["start_s"]) < 0.1
    assert "now" in cells.nth(2).get_attribute("class")
    with page.expect_download() as dl:
        page.click("#dl-csv")
    rows = list(csv.DictReader(io.StringIO(open(dl.value.path(), encoding="utf-8").read())))
    assert len(rows) == len(windows) and rows[0]["voice_speech"] == "false" and rows[0]["emotion"] == ""
    assert [r["voice_emotion"] for r in rows] == [w["emotion"] or "" for w in windows]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-page-audio-file.png"), full_page=True)


def test_a_face_with_speech_shows_both_rows_and_their_shares_in_chinese(page, voiced, media):
    expected = _post(voiced, media["talking"], lang="zh").json()
    src = expected["summary"]["sources"]
    assert 0 < src["face"] < 1 and 0 < src["voice"] < 1
    _analyse(page, media["talking"], lang="zh")
    assert page.is_visible("#face-chart") and page.is_visible("#voice-row")
    assert page.inner_text("#voice-title") == "语音（说话的方式）"
    assert float(page.get_attribute("#sources", "data-face")) == src["face"]
    assert float(page.get_attribute("#sources", "data-voice")) == src["voice"]
    assert "人脸" in page.inner_text("#sources") and "语音" in page.inner_text("#sources")
    assert page.inner_text("#combined").startswith("人脸和语音 + 文本")
    heard = [w for w in expected["voice"]["timeline"] if w["speech"]]
    texts = [c.inner_text() for c in page.locator("#voice-track .vseg[data-speech=true]").all()]
    assert texts == [translate(w["emotion"], "zh") for w in heard]
    assert page.locator("#voice-track .vseg.no-speech").first.inner_text() == "无语音"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-page-face-and-voice-zh.png"), full_page=True)


def test_voice_off_in_the_form_is_said_on_the_page(page, media):
    _analyse(page, media["mp3"], voice="off")
    assert page.get_attribute("#voice-row", "data-status") == "off"
    assert page.locator("#voice-track .vseg").count() == 0 and page.is_hidden("#voice-track")
    assert "voice emotion off" in page.inner_text("#voice-note")
    assert page.get_attribute("#voice-dominant", "data-status") == "off"
