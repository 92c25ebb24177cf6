"""Offline speech recognition: the words of a video's audio track as timed cues (English, Chinese, ...).

Whisper *base* (faster-whisper: CTranslate2, int8 on the CPU) from the pinned, checked model folder
of `whisper_model` (`make assets`). Nothing is downloaded at run time: the voice activity detector
(Silero VAD) ships inside the faster-whisper wheel itself.

`Transcriber.transcribe(samples)` / `transcribe_media(path)` return a transcript dict, or None when
nothing was said. Silence costs next to nothing: an energy check first, then the small VAD model,
and only audio with speech in it loads Whisper. Long audio is handled in windows of a few minutes
cut at quiet points (`speech_audio`), so memory stays bounded whatever the length of the video.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from video_emotion.text.speech_audio import (
    SAMPLE_RATE,
    WINDOW_S,
    NoAudioStream,
    array_windows,
    has_voice_energy,
    media_windows,
)
from video_emotion.text.transcript_block import to_srt, transcript_sentiment
from video_emotion.text.voice_states import SpeechStates, VoiceEncoder, encode_spans
from video_emotion.text.whisper_model import DEFAULT_MODEL_DIR, is_installed, model_name

log = logging.getLogger("video_emotion.speech")

# Receives each window's encoder states over speech and how far the audio has been heard (s).
StatesSink = Callable[[SpeechStates, float], None]


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


def speech_spans(samples: np.ndarray) -> list[dict[str, int]]:
    """Silero VAD speech spans (in samples); the ONNX model ships inside the faster-whisper wheel."""
    from faster_whisper.vad import get_speech_timestamps

    return get_speech_timestamps(samples, _vad_options(), sampling_rate=SAMPLE_RATE)


# Tokens one 30 s chunk may produce per second of speech in it: about three times fast speech (English
# ~4 tokens/s, Mandarin ~6 with timestamps). It bounds the cost of a repetition loop, which Whisper
# falls into on voice without words, to that of real speech of the same length.
TOKENS_PER_SPEECH_S = 12
_MAX_NEW_TOKENS = 440  # Whisper's 448 minus the start-of-transcript prompt

_SPACE = re.compile(r"\s+")
_WORDLESS = re.compile(r"^[\W_]*$")
# Interjections alone carry no sentiment and are what Whisper writes for laughter, sighs, humming and
# other voice without words ("Oh", "Oh, oh, oh"): a cue made only of them is dropped.
_FILLERS = {"oh", "ah", "uh", "um", "umm", "hmm", "mm", "mmm", "hm", "eh", "huh", "ha", "haha", "ooh", "aah", "la",
            "嗯", "啊", "哦", "呃", "哈", "哈哈", "唔", "噢", "喔"}
_TOKENS = re.compile(r"[^\W\d_]+", re.UNICODE)


def _clean(text: str) -> str:
    """One line of cue text, characters kept as Whisper wrote them (Chinese may come traditional)."""
    return _SPACE.sub(" ", text).strip()


def _only_fillers(text: str) -> bool:
    words = _TOKENS.findall(text.lower())
    return bool(words) and all(w in _FILLERS or set(w) <= set("哈啊嗯") for w in words)


def _doubtful(segment) -> bool:
    """Whisper's own signs of words it made up: a decode that failed even after its temperature
    fallback, a repetition loop, or "probably no speech" with little confidence in the text."""
    return (segment.avg_logprob < -1.0 or segment.compression_ratio > 2.4
            or (segment.no_speech_prob > 0.6 and segment.avg_logprob < -0.7))


class SpeechModelError(OSError):
    """The Whisper model folder is in place but cannot be loaded (a damaged or foreign file)."""


class Transcriber:
    """Whisper base on the CPU (int8), loaded once on first need; safe to share between threads.

    Transcriptions run one at a time (they use every core they are given); calls with no speech
    never wait for the model or for another transcription.
    """

    def __init__(self, model_dir: str | Path = DEFAULT_MODEL_DIR, cpu_threads: int | None = None,
                 beam_size: int = 5, window_s: float = WINDOW_S):
        self.model_dir = Path(model_dir)
        self.name = model_name(self.model_dir)  # what the transcript says heard the words
        self.cpu_threads = cpu_threads or _default_threads()
        self.beam_size = beam_size
        self.window_s = window_s
        self._model = None
        self._voice: VoiceEncoder | None = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self.load_seconds: float | None = None

    def voice_encoder(self) -> VoiceEncoder:
        """The encoder at the voice's layers (`voice_states`), built from this model's files on first use."""
        with self._load_lock:
            if self._voice is None:
                if not is_installed(self.model_dir):
                    raise FileNotFoundError(f"Whisper model missing or incomplete in {self.model_dir}: "
                                            "run `make assets`")
                self._voice = VoiceEncoder(self.model_dir, cpu_threads=self.cpu_threads)
        return self._voice

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
                    try:
                        model = WhisperModel(str(self.model_dir), device="cpu", compute_type="int8",
                                             cpu_threads=self.cpu_threads, num_workers=1, local_files_only=True)
                    except (RuntimeError, ValueError, OSError) as exc:  # CTranslate2 reports a bad file so
                        raise SpeechModelError(f"the Whisper model in {self.model_dir} cannot be loaded ({exc}); "
                                               "`make assets` verifies and repairs it") from exc
                    self.load_seconds = time.perf_counter() - t0
                    log.info("Whisper base loaded in %.2f s (%d CPU threads)", self.load_seconds, self.cpu_threads)
                    self._model = model
        return self._model

    def transcribe(self, samples: np.ndarray, language: str | None = None, cancel: threading.Event | None = None,
                   on_states: StatesSink | None = None, words: bool = True) -> dict[str, Any] | None:
        """Transcript of 16 kHz mono float32 samples in [-1, 1], or None when no speech is found.

        `language` (`en`, `zh`, or any Whisper language; None: detected) is given to Whisper as is.
        `cancel`, once set, stops the work at the next window or cue (the result is then None).
        `on_states(states, heard_until_s)`, when given, receives the encoder's states over the speech of each
        window (`voice_states.SpeechStates`: layers 2 and 3, what the voice model reads; a pass of their own, as
        the words' pass ends at layer 6); `words=False` skips the words (no decoding).
        """
        samples = np.asarray(samples)
        if samples.ndim != 1:
            raise ValueError(f"expected mono samples (one dimension), got shape {samples.shape}")
        samples = samples.astype(np.float32, copy=False)
        return self._run(array_windows(samples, self.window_s), language, cancel, on_states, words)

    def transcribe_media(self, path: str | Path, language: str | None = None, cancel: threading.Event | None = None,
                         missing_ok: bool = True, on_states: StatesSink | None = None,
                         words: bool = True) -> dict[str, Any] | None:
        """Transcript of a video's (or audio file's) first audio track; None without speech, and without
        an audio track unless `missing_ok` is False (then NoAudioStream is raised). `on_states`, `words`: as
        `transcribe`."""
        try:
            return self._run(media_windows(path, self.window_s), language, cancel, on_states, words)
        except NoAudioStream:
            if missing_ok:
                return None
            raise

    def _run(self, windows: Iterator[tuple[float, np.ndarray]], language: str | None,
             cancel: threading.Event | None = None, on_states: StatesSink | None = None,
             words: bool = True) -> dict[str, Any] | None:
        lang = whisper_language(language) if language else None
        given, heard = lang is not None, {"language": lang, "probability": None}
        cues: list[dict[str, Any]] = []
        for offset, window in windows:
            if cancel is not None and cancel.is_set():
                return None
            spans = speech_spans(window) if has_voice_energy(window) else []
            states = SpeechStates.empty()
            if spans:
                model = self.model() if words else None
                with self._run_lock:
                    if words and not self._decode(model, window, spans, offset, heard, cues, cancel):
                        return None
                    if on_states is not None:
                        states = encode_spans(self.voice_encoder(), window, spans)
            if on_states is not None:
                on_states(states.shifted(offset), offset + len(window) / SAMPLE_RATE)
        if not cues:
            return None
        return {"language": project_language(heard["language"]),
                "language_probability": None if given else heard["probability"],
                "source": "asr", "model": self.name, "cues": cues}

    def _decode(self, model, window: np.ndarray, spans: list[dict[str, int]], offset: float, heard: dict[str, Any],
                cues: list[dict[str, Any]], cancel: threading.Event | None) -> bool:
        """The words of one window into `cues`; False when cancelled."""
        speech_s = sum(sp["end"] - sp["start"] for sp in spans) / SAMPLE_RATE
        max_tokens = min(_MAX_NEW_TOKENS, int(TOKENS_PER_SPEECH_S * min(speech_s, 30.0)) + 24)
        # One decode per 30 s chunk, no temperature fallback: on 2 cores a fallback re-decodes a failing chunk
        # up to five more times, and on voice without words (laughter, humming) it mostly turns a rejected
        # repetition loop into a plausible invention ("Oh, oh, oh").
        segments, info = model.transcribe(
            window, language=heard["language"], beam_size=self.beam_size, vad_filter=True,
            vad_parameters=_vad_options(), condition_on_previous_text=False, temperature=0.0,
            max_new_tokens=max_tokens)
        if heard["language"] is None:  # detected once, on the first window with speech, then kept
            heard["language"], heard["probability"] = info.language, round(float(info.language_probability), 4)
        for s in segments:  # a generator: decoding happens here
            if cancel is not None and cancel.is_set():
                return False
            text = _clean(s.text)
            if text and not _WORDLESS.match(text) and not _only_fillers(text) and not _doubtful(s):
                cues.append({"start_s": round(offset + s.start, 3), "end_s": round(offset + s.end, 3), "text": text})
        return True


_TRANSCRIBERS: dict[Path, Transcriber] = {}
_TRANSCRIBERS_LOCK = threading.Lock()


def get_transcriber(model_dir: str | Path = DEFAULT_MODEL_DIR) -> Transcriber:
    """The process-wide transcriber of a model folder (the model is loaded once, on first speech)."""
    key = Path(model_dir).resolve()
    with _TRANSCRIBERS_LOCK:
        if key not in _TRANSCRIBERS:
            _TRANSCRIBERS[key] = Transcriber(key)
        return _TRANSCRIBERS[key]


__all__ = ["DEFAULT_MODEL_DIR", "SAMPLE_RATE", "NoAudioStream", "SpeechModelError", "Transcriber", "get_transcriber",
           "has_voice_energy", "is_installed", "project_language", "speech_spans", "to_srt", "transcript_sentiment",
           "whisper_language"]
