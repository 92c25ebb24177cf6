"""Which files the analysis reads as sound: real files made by the project's ffmpeg (no model needed). A recording
in each audio container, an MP3 with cover art (a podcast's: not a video), an audio-only MP4 and a WAV without its
suffix are sound; a video is a video; a container of neither and random bytes keep clear errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import write_video
from tests.speech_media import ffmpeg
from tests.voice_media import AUDIO_CODECS, audio_as
from video_emotion.features.audio import stream_listing
from video_emotion.features.video import VideoError
from video_emotion.inference.audio_file import media_duration_s, probe_media


def _run(*args: str) -> None:
    subprocess.run([ffmpeg(), "-v", "error", "-y", *args], check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def tone(tmp_path_factory) -> Path:
    wav = tmp_path_factory.mktemp("tone") / "tone.wav"
    _run("-f", "lavfi", "-i", "sine=frequency=300:duration=2.5", str(wav))
    return wav


@pytest.mark.parametrize("suffix", list(AUDIO_CODECS))
def test_each_audio_container_is_sound_with_its_length(tone, tmp_path, suffix):
    f = tone if suffix == ".wav" else audio_as(tone, suffix, tmp_path)
    assert probe_media(f) is None
    assert abs(media_duration_s(f) - 2.5) < 0.1
    assert stream_listing(f)[0] == {"Audio"}


def test_cover_art_an_audio_only_mp4_and_a_nameless_wav_are_sound(tone, tmp_path):
    cover = tmp_path / "cover.png"
    cv2.imwrite(str(cover), np.full((64, 64, 3), 200, np.uint8))
    podcast = tmp_path / "episode.mp3"
    _run("-i", str(tone), "-i", str(cover), "-map", "0", "-map", "1", "-c:a", "libmp3lame", "-c:v", "png",
         "-disposition:v", "attached_pic", str(podcast))
    assert cv2.VideoCapture(str(podcast)).isOpened()  # OpenCV alone would take the picture for a video
    assert probe_media(podcast) is None and stream_listing(podcast)[0] == {"Audio"}
    voice_only = tmp_path / "call.mp4"
    _run("-i", str(tone), "-c:a", "aac", str(voice_only))
    assert probe_media(voice_only) is None
    nameless = tmp_path / "recording"
    nameless.write_bytes(tone.read_bytes())
    assert probe_media(nameless) is None


def test_a_video_is_a_video_and_neither_nor_noise_keep_clear_errors(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", [np.full((120, 160, 3), 90 + i, np.uint8) for i in range(24)])
    info = probe_media(clip)
    assert info is not None and info.n_frames == 24 and abs(media_duration_s(clip) - 2.0) < 0.1
    subs = tmp_path / "subs.srt"
    subs.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n", encoding="utf-8")
    neither = tmp_path / "subtitles.mkv"
    _run("-i", str(subs), str(neither))
    with pytest.raises(VideoError, match="no video or audio stream"):
        probe_media(neither)
    noise = tmp_path / "noise.mp3"
    noise.write_bytes(b"not a sound at all " * 50)
    with pytest.raises(VideoError, match="not a readable video"):
        probe_media(noise)
    with pytest.raises(VideoError, match="no such file"):
        probe_media(tmp_path / "missing.wav")
