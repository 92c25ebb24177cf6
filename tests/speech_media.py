"""Real speech for tests: espeak-ng English sentences, 16 kHz samples, videos with the speech muxed in,
and the share of spoken words found in a transcript. Debian's espeak-ng is installed by `make test`
(when run as root); without it the speech tests fail, naming that, rather than skip."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import ROOT

WHISPER_DIR = ROOT / "models" / "pretrained" / "whisper-base"
POSITIVE = "I love this wonderful day, everything is great and I am so happy"
NEGATIVE = "This is a terrible day, everything is awful and I am so sad and angry"


def espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.fail("espeak-ng is not installed: `make test` installs Debian's espeak-ng when run as root "
                    "(otherwise: apt-get install espeak-ng)", pytrace=False)
    return exe


def require_whisper() -> Path:
    from video_emotion.text.whisper_model import is_installed

    if not is_installed(WHISPER_DIR):
        pytest.fail(f"the Whisper model is missing in {WHISPER_DIR}: run `make assets` (make test does)",
                    pytrace=False)
    return WHISPER_DIR


def ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def speak(text: str, wav: Path, lead_s: float = 0.0) -> Path:
    """`text` spoken by espeak-ng (US English) into `wav`, after `lead_s` seconds of silence."""
    subprocess.run([espeak(), "-v", "en-us", "-w", str(wav), text], check=True, capture_output=True)
    if lead_s > 0:
        raw = wav.with_name(wav.stem + "_raw.wav")
        wav.rename(raw)
        subprocess.run([ffmpeg(), "-v", "error", "-y", "-i", str(raw), "-af", f"adelay={int(lead_s * 1000)}:all=1",
                        str(wav)], check=True, capture_output=True)
        raw.unlink()
    return wav


def samples_16k(path: Path) -> np.ndarray:
    res = subprocess.run([ffmpeg(), "-v", "error", "-i", str(path), "-ac", "1", "-ar", "16000", "-f", "s16le", "-"],
                         check=True, capture_output=True)
    return np.frombuffer(res.stdout, "<i2").astype(np.float32) / 32768.0


def silence_wav(path: Path, seconds: float) -> Path:
    """A WAV of digital silence (a real, present but wordless audio track)."""
    subprocess.run([ffmpeg(), "-v", "error", "-y", "-f", "lavfi", "-i", "anullsrc=r=22050:cl=mono", "-t", str(seconds),
                    str(path)], check=True, capture_output=True)
    return path


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
    subprocess.run([ffmpeg(), "-v", "error", "-y", "-i", str(silent), "-i", str(wav), "-c:v", "copy", "-c:a", "aac",
                    str(out)], check=True, capture_output=True)
    return out


def face_with_voice(photo: Path, wav: Path | None, out: Path, seconds: float = 6.0) -> Path:
    """A real face (a photo turned into a clip with a slow zoom, as the real-face check does) with `wav`
    muxed in as its AAC track (none when `wav` is None)."""
    from video_emotion.features.audio import mux
    from video_emotion.inference.realface import photo_clip

    frames = photo_clip(photo, out.with_name(out.stem + "_frames.mp4"), seconds=seconds, fps=12.0)
    if wav is None:
        return frames.rename(out)
    return mux(frames, wav, out)


_CONTRACTIONS = {"i'm": "i am", "it's": "it is", "that's": "that is", "you're": "you are", "we're": "we are",
                 "don't": "do not", "isn't": "is not", "i've": "i have"}


def words(text: str) -> list[str]:
    text = text.lower().replace("’", "'")
    for short, full in _CONTRACTIONS.items():
        text = re.sub(rf"\b{re.escape(short)}\b", full, text)
    return re.findall(r"[a-z]+", text)


def recall(expected: str, transcript: dict) -> float:
    """Share of the expected words (with repeats) found in the transcript's cues."""
    got = words(" ".join(c["text"] for c in transcript["cues"]))
    want = words(expected)
    hits = 0
    for w in want:
        if w in got:
            got.remove(w)
            hits += 1
    return hits / len(want)
