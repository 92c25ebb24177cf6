"""Audio files analysed end to end on real files: one espeak-ng English sentence (after a second of silence) made
into WAV, MP3, M4A (AAC), OGG (Vorbis) and FLAC by the project's ffmpeg, read with a bundle carrying a voice model
(the shipped one, learned from RAVDESS speech) and the real
Whisper base. Each gives the voice and the words with no face; silence gives neither and no error; `voice off`
turns the voice off; a video with a face and speech combines both; the CLI's JSON and CSV and `batch` carry it."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import fer_bundle
from tests.speech_media import POSITIVE, face_with_voice, recall, require_whisper, silence_wav, speak
from tests.voice_media import AUDIO_CODECS, audio_as, shipped_voice_model
from video_emotion.labels import LABELS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory, fer_model) -> Path:
    folder = fer_bundle(fer_model, tmp_path_factory.mktemp("voice-bundle") / "bundle")
    shipped_voice_model(folder / "voice")
    return folder


@pytest.fixture(scope="module")
def bundle(bundle_dir):
    from video_emotion.inference.bundle import ModelBundle

    return ModelBundle.load(bundle_dir)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("audio-files")
    wav = speak(POSITIVE, d / "speech.wav", lead_s=1.0)
    out = {suffix: wav if suffix == ".wav" else audio_as(wav, suffix, d) for suffix in AUDIO_CODECS}
    out["silent"] = silence_wav(d / "quiet.wav", 3.0)
    return out


def _samples_s(path: Path) -> float:
    from tests.speech_media import samples_16k

    return len(samples_16k(path)) / 16000


@pytest.mark.parametrize("suffix", list(AUDIO_CODECS))
def test_each_audio_format_gives_the_voice_and_the_words_and_no_face(bundle, media, suffix):
    from video_emotion.inference.analyze import analyze_video

    res = analyze_video(media[suffix], bundle, speech_model=require_whisper())
    assert res["media"] == "audio" and res["video"] == media[suffix].name
    assert res["faces_detected"] is False and res["timeline"] == [] and res["faces"] == []
    assert abs(res["duration_s"] - _samples_s(media[".wav"])) < 0.1  # from the sound (codecs pad a little)
    assert res["speech"]["status"] == "transcribed" and recall(POSITIVE, res["transcript"]) >= 0.8
    assert res["transcript"]["score"] > 0
    voice = res["voice"]
    assert voice["status"] == "read" and voice["model"]["name"] == "voice-ravdess"
    windows = voice["timeline"]
    assert len(windows) == int(np.ceil(res["duration_s"])) and windows[-1]["end_s"] == res["duration_s"]
    assert windows[0]["speech"] is False and windows[0]["emotion"] is None  # the second of silence: marked
    heard = [w for w in windows if w["speech"]]
    assert len(heard) >= 3
    for w in heard:
        assert w["emotion"] in LABELS and abs(sum(w["probabilities"].values()) - 1) < 1e-3
    s = res["summary"]
    assert s["dominant_emotion"] == voice["summary"]["dominant_emotion"] is not None
    assert s["sources"]["face"] == 0.0 and s["sources"]["voice"] == 1.0 and "voice alone" in s["sources"]["note"]
    assert s["face"]["dominant_emotion"] is None and "no face" in s["note"]
    assert "voice" in s["sentiment_sources"] and "recognised speech" in s["sentiment_sources"]


def test_silence_gets_no_voice_emotion_and_no_error(bundle, media):
    from video_emotion.inference.analyze import analyze_video

    res = analyze_video(media["silent"], bundle, speech_model=require_whisper())
    assert res["faces_detected"] is False and abs(res["duration_s"] - 3.0) < 0.05
    assert res["speech"]["status"] == "no_speech" and "transcript" not in res
    assert res["voice"]["status"] == "no_speech" and res["voice"]["summary"]["dominant_emotion"] is None
    assert [w["speech"] for w in res["voice"]["timeline"]] == [False, False, False]
    s = res["summary"]
    assert s["dominant_emotion"] is None and s["sentiment"] is None and s["combined_sentiment_score"] is None
    assert "no face" in s["note"] and "no speech" in s["note"]


def test_voice_off_is_said(bundle, media):
    from video_emotion.inference.analyze import analyze_video

    res = analyze_video(media[".flac"], bundle, speech_model=require_whisper(), voice="off", transcribe="off")
    assert res["voice"]["status"] == "off" and res["voice"]["timeline"] == []
    assert res["speech"]["status"] == "off" and res["summary"]["dominant_emotion"] is None
    assert "voice off" in res["summary"]["note"] and "no face" in res["summary"]["note"]


def test_a_face_with_speech_combines_face_and_voice_and_the_csv_carries_both(bundle, media, real_faces, tmp_path):
    from video_emotion.inference.analyze import analyze_video
    from video_emotion.inference.summary import csv_rows

    clip = face_with_voice(real_faces / "posed_happy.jpg", media[".wav"], tmp_path / "talking.mp4", seconds=5.0)
    res = analyze_video(clip, bundle, speech_model=require_whisper(), transcribe="off")
    assert res["faces_detected"] and res["timeline"] and "media" not in res
    assert res["voice"]["status"] == "read" and res["speech"]["status"] == "off"
    src = res["summary"]["sources"]
    assert 0 < src["face"] < 1 and 0 < src["voice"] < 1 and abs(src["face"] + src["voice"] - 1) < 1e-3
    assert "face and voice" in src["note"] and res["summary"]["face"]["dominant_emotion"] == "happy"
    rows = csv_rows(res)
    assert len(rows) == len(res["timeline"])
    by_start = {w["start_s"]: w for w in res["voice"]["timeline"]}
    for row, seg in zip(rows, res["timeline"], strict=True):
        w = by_start[float(np.floor(seg["start_s"] + 1e-3))]  # the 1 s voice window holding the face window
        assert (row["voice_speech"], row["voice_emotion"], row["voice_confidence"]) == \
            (w["speech"], w["emotion"], w["confidence"])
    assert rows[0]["voice_speech"] is False and rows[-1]["voice_speech"] is True


def test_cli_json_and_csv_of_an_audio_file(bundle_dir, media, tmp_path):
    from video_emotion.cli import main

    out = tmp_path / "memo.json"
    assert main(["analyze", "--model", str(bundle_dir), str(media[".mp3"]), "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["faces_detected"] is False and res["voice"]["summary"]["dominant_emotion"] is not None
    assert res["transcript"]["source"] == "asr"
    table = tmp_path / "memo.csv"
    assert main(["analyze", "--model", str(bundle_dir), str(media[".ogg"]), "--transcribe", "off", "--format", "csv",
                 "--out", str(table)]) == 0
    rows = list(csv.DictReader(io.StringIO(table.read_text())))
    assert len(rows) == 5 and [r["start_s"] for r in rows] == ["0.0", "1.0", "2.0", "3.0", "4.0"]
    assert rows[0]["voice_speech"] == "False" and rows[0]["voice_emotion"] == ""
    assert all(r["voice_speech"] == "True" and r["voice_emotion"] in LABELS for r in rows[1:])
    assert all(r["emotion"] == "" and r["p_happy"] == "" for r in rows)  # no face: its cells empty
    off = tmp_path / "off.json"
    assert main(["analyze", "--model", str(bundle_dir), str(media[".m4a"]), "--voice", "off", "--transcribe", "off",
                 "--out", str(off)]) == 0
    assert json.loads(off.read_text())["voice"]["status"] == "off"


def test_batch_reads_a_folder_of_audio_files_and_videos(bundle_dir, media, real_faces, tmp_path):
    import shutil

    import pandas as pd

    from video_emotion.cli import main
    from video_emotion.inference.batch_store import read_results, read_summary

    lib = tmp_path / "calls"
    lib.mkdir()
    for suffix in (".wav", ".m4a"):
        shutil.copy(media[suffix], lib / f"call{suffix}")
    shutil.copy(media["silent"], lib / "hold_music.wav")
    shutil.copy(real_faces / "single_face.mp4", lib / "face.mp4")
    out = tmp_path / "out"
    assert main(["batch", str(lib), "--out", str(out), "--engine", "local", "--model", str(bundle_dir),
                 "--transcribe", "off"]) == 0
    df = read_summary(out).set_index("path")
    results = read_results(out)
    assert (df["status"] == "ok").all() and len(df) == 4
    for name in ("call.wav", "call.m4a"):
        row, res = df.loc[str(lib / name)], results[str(lib / name)]
        assert not row["faces_detected"] and row["voice_emotion"] == res["voice"]["summary"]["dominant_emotion"]
        assert row["voice_emotion"] in LABELS and row["dominant_emotion"] == row["voice_emotion"]
        assert abs(row["duration_s"] - res["duration_s"]) < 1e-9
    assert pd.isna(df.loc[str(lib / "hold_music.wav"), "voice_emotion"])  # silence: no voice emotion, no error
    assert df.loc[str(lib / "face.mp4"), "faces_detected"]
    assert json.loads((out / "job.json").read_text())["voice"] == "auto"
