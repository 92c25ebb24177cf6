"""Speech recognition inside the analysis, end to end on real files: a real face (a posed photo turned
into a clip) with espeak-ng English speech muxed in, through `analyze_video`, the CLI and a real
`bentoml serve`; silent clips get no words; `transcribe=off` skips it; a missing model leaves the
face analysis whole."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.conftest import ROOT, fer_bundle
from tests.integration.conftest import GOOD
from tests.speech_media import (
    NEGATIVE,
    POSITIVE,
    face_with_voice,
    recall,
    require_whisper,
    samples_16k,
    silence_wav,
    speak,
)

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {GOOD}"}


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory, fer_model) -> Path:
    """A FER-initialised bundle: the clip output is a weighted mean of the pretrained CNN's readings."""
    return fer_bundle(fer_model, tmp_path_factory.mktemp("speech-bundle"))


@pytest.fixture(scope="module")
def bundle(bundle_dir):
    from video_emotion.inference.bundle import ModelBundle

    return ModelBundle.load(bundle_dir)


@pytest.fixture(scope="module")
def clips(tmp_path_factory, real_faces) -> dict[str, Path]:
    """The same smiling face with positive words, negative words, a silent track, and no track."""
    d = tmp_path_factory.mktemp("speech-clips")
    photo = real_faces / "posed_happy.jpg"
    return {
        "positive": face_with_voice(photo, speak(POSITIVE, d / "pos.wav", lead_s=1.0), d / "positive.mp4"),
        "negative": face_with_voice(photo, speak(NEGATIVE, d / "neg.wav", lead_s=1.0), d / "negative.mp4"),
        "silent": face_with_voice(photo, silence_wav(d / "quiet.wav", 4.0), d / "silent.mp4", seconds=4.0),
        "no_audio": face_with_voice(photo, None, d / "no_audio.mp4", seconds=4.0),
    }


@pytest.fixture(scope="module")
def analysed(bundle, clips) -> dict[str, dict]:
    """Each speech clip analysed once with defaults (transcribe auto) and once with transcribe off."""
    from video_emotion.inference.analyze import analyze_video

    model_dir = require_whisper()
    out = {}
    for name in ("positive", "negative"):
        out[name] = analyze_video(clips[name], bundle, speech_model=model_dir)
        out[name + "_off"] = analyze_video(clips[name], bundle, speech_model=model_dir, transcribe="off")
    return out


class _NoWhisper:
    """A transcriber whose model must never load (the real energy check and VAD run around it)."""

    def __new__(cls, model_dir):
        from video_emotion.text.speech import Transcriber

        class NoWhisper(Transcriber):
            def model(self):
                raise AssertionError("Whisper was loaded for a clip without speech")

        return NoWhisper(model_dir)


@pytest.mark.parametrize("name,spoken,sign", [("positive", POSITIVE, 1), ("negative", NEGATIVE, -1)])
def test_speech_becomes_words_that_move_the_combined_score(analysed, name, spoken, sign):
    res, off = analysed[name], analysed[name + "_off"]
    assert res["faces_detected"] and res["summary"]["dominant_emotion"] == "happy"
    tr = res["transcript"]
    assert tr["source"] == "asr" and tr["language"] == "en" and tr["language_probability"] > 0.5 and tr["timed"]
    assert tr["model"] == "whisper-base"  # which model heard the words
    assert recall(spoken, tr) >= 0.8, tr
    assert tr["cues"] and all(np.sign(c["score"]) == sign for c in tr["cues"]), tr["cues"]
    assert np.sign(tr["score"]) == sign and tr["sentiment"] == ("positive" if sign > 0 else "negative")
    assert 0.5 <= tr["cues"][0]["start_s"] <= 1.8  # after the 1 s of silence, on the video's own clock
    assert res["speech"]["status"] == "transcribed" and res["speech"]["model"] == "whisper-base"
    # The words are on the timeline where they were said, and move the combined score their way.
    spoken_segs = [s for s in res["timeline"] if "text_score" in s]
    assert spoken_segs and all(np.sign(s["text_score"]) == sign for s in spoken_segs)
    assert all("text_score" not in s for s in res["timeline"] if s["end_s"] <= tr["cues"][0]["start_s"])
    face = res["summary"]["sentiment_score"]
    assert face == off["summary"]["sentiment_score"]  # the face reading is the same either way
    assert np.sign(res["summary"]["combined_sentiment_score"] - face) == sign
    assert "recognised speech" in res["summary"]["sentiment_sources"]
    # transcribe="off": no words at all, and the result says why.
    assert "transcript" not in off and off["speech"]["status"] == "off"
    assert off["summary"]["combined_sentiment_score"] == face
    assert all("text_score" not in s for s in off["timeline"])


def test_silent_clips_get_no_words_and_never_load_whisper(bundle, clips):
    from video_emotion.inference.analyze import analyze_video

    quiet = _NoWhisper(require_whisper())
    for name, status in (("silent", "no_speech"), ("no_audio", "no_audio")):
        res = analyze_video(clips[name], bundle, speech_model=quiet)
        assert res["faces_detected"] and "transcript" not in res, name
        assert res["speech"]["status"] == status and all("text_score" not in s for s in res["timeline"])
        assert res["summary"]["combined_sentiment_score"] == res["summary"]["sentiment_score"]
        assert res["summary"]["sentiment_sources"].startswith("face only")
    assert not quiet.loaded


def test_a_user_transcript_wins_over_speech(bundle, clips):
    from video_emotion.inference.analyze import analyze_video

    srt = "1\n00:00:01,000 --> 00:00:04,000\nThis is awful and I hate it.\n"
    res = analyze_video(clips["positive"], bundle, transcript=srt, speech_model=_NoWhisper(require_whisper()))
    assert res["transcript"]["source"] == "user" and res["transcript"]["language_probability"] is None
    assert res["transcript"]["model"] is None
    assert res["transcript"]["sentiment"] == "negative" and res["speech"]["status"] == "user_transcript"
    assert [c["text"] for c in res["transcript"]["cues"]] == ["This is awful and I hate it."]


def test_a_missing_model_leaves_the_face_analysis_whole_and_says_why(bundle, clips, analysed, tmp_path):
    from video_emotion.inference.analyze import analyze_video

    res = analyze_video(clips["positive"], bundle, speech_model=tmp_path / "no-whisper-here")
    assert "transcript" not in res and res["speech"]["status"] == "unavailable"
    assert "make assets" in res["speech"]["note"]
    assert res["timeline"] == analysed["positive_off"]["timeline"]
    assert "speech recognition unavailable" in res["summary"]["sentiment_sources"]


def test_a_damaged_model_leaves_the_face_analysis_whole_and_says_why(bundle, clips, analysed, tmp_path):
    from tests.unit.test_speech import damaged_model
    from video_emotion.inference.analyze import analyze_video

    res = analyze_video(clips["positive"], bundle, speech_model=damaged_model(tmp_path / "whisper"))
    assert "transcript" not in res and res["speech"]["status"] == "unavailable"
    assert "cannot be loaded" in res["speech"]["note"] and "make assets" in res["speech"]["note"]
    assert res["timeline"] == analysed["positive_off"]["timeline"]


def test_bad_speech_options_fail_before_any_work(bundle, clips):
    from video_emotion.inference.analyze import analyze_video

    with pytest.raises(ValueError, match="unknown speech language"):
        analyze_video(clips["positive"], bundle, speech_lang="klingon", speech_model=require_whisper())
    with pytest.raises(ValueError, match="transcribe must be one of auto, off"):
        analyze_video(clips["positive"], bundle, transcribe="yes")


def test_a_stopped_analysis_stops_its_transcription(clips, monkeypatch):
    """The service stops an analysis whose client left: a transcription in progress stops with it, at
    the next window or cue, instead of decoding the rest of the audio."""
    from video_emotion.inference.words import Words
    from video_emotion.text.speech import Transcriber, get_transcriber

    small = Transcriber(require_whisper(), window_s=8.0)
    small._model = get_transcriber(require_whisper()).model()  # share the loaded model
    calls = []
    real = small._model.transcribe
    monkeypatch.setattr(small._model, "transcribe",
                        lambda audio, **kw: (calls.append(len(audio)), real(audio, **kw))[1])
    voice = samples_16k(clips["positive"])
    gap = np.zeros(16000 * 2, np.float32)
    speech = np.concatenate([np.concatenate([voice, gap])] * 6)  # ~40 s: five or six windows with speech
    words = Words(clips["positive"], None, "auto", "en", small, speech, audio_decoded=True)
    deadline = time.time() + 120
    while not calls and time.time() < deadline:
        time.sleep(0.05)
    assert calls, "the transcription never started"
    assert words.wait(should_stop=lambda: True) is False
    assert not any(t.name == "video-emotion-speech" and t.is_alive() for t in threading.enumerate())
    assert len(calls) <= 2 < len(speech) / (8.0 * 16000)  # stopped after at most one more window


def test_cli_transcribes_by_default_and_not_with_off(bundle_dir, clips, tmp_path, capsys):
    from video_emotion import cli

    require_whisper()
    params = str(ROOT / "params.yaml")  # paths.whisper_dir resolves against the project
    out = tmp_path / "pos.json"
    assert cli.main(["--params", params, "analyze", str(clips["positive"]), "--model", str(bundle_dir),
                     "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["transcript"]["source"] == "asr" and recall(POSITIVE, res["transcript"]) >= 0.8
    assert res["transcript"]["sentiment"] == "positive"
    off = tmp_path / "off.json"
    assert cli.main(["--params", params, "analyze", str(clips["positive"]), "--model", str(bundle_dir),
                     "--transcribe", "off", "--out", str(off)]) == 0
    res = json.loads(off.read_text())
    assert "transcript" not in res and res["speech"]["status"] == "off"
    capsys.readouterr()
    assert cli.main(["--params", params, "analyze", str(clips["positive"]), "--model", str(bundle_dir),
                     "--speech-lang", "klingon"]) == 2
    assert "unknown speech language 'klingon'" in capsys.readouterr().err


def test_service_transcribes_validates_and_reports_speech(service, clips):
    info = requests.get(f"{service['url']}/model", headers=AUTH, timeout=10).json()
    assert info["speech_recognition"]["available"] is True and info["speech_recognition"]["model"] == "whisper-base"

    def post(clip, **data):
        with open(clip, "rb") as fh:
            return requests.post(f"{service['url']}/analyze", files={"video": (clip.name, fh)}, data=data,
                                 headers=AUTH, timeout=300)

    r = post(clips["negative"])
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["transcript"]["source"] == "asr" and recall(NEGATIVE, res["transcript"]) >= 0.8
    assert res["transcript"]["sentiment"] == "negative"
    assert res["summary"]["combined_sentiment_score"] < res["summary"]["sentiment_score"]
    r = post(clips["negative"], transcribe="off", speech_lang="en")
    assert r.status_code == 200 and "transcript" not in r.json() and r.json()["speech"]["status"] == "off"
    r = post(clips["silent"])
    assert r.status_code == 200 and "transcript" not in r.json() and r.json()["speech"]["status"] == "no_speech"
    for field, value in (("transcribe", "maybe"), ("speech_lang", "klingon")):
        r = post(clips["silent"], **{field: value})
        assert r.status_code == 400 and field in r.json()["error"], r.text
