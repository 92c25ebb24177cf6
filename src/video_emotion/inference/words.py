"""The words of a video for the analysis: the user's transcript, or its speech recognised once.

A user-given transcript always wins. Otherwise, with `transcribe="auto"`, the audio track is
transcribed once per video by a background thread that runs beside the face work (ffmpeg and
CTranslate2 work outside the Python interpreter lock), reusing the samples when the audio model has
already decoded them. A track without speech costs an energy check (and at most the small VAD
model), never Whisper. Every outcome is said in the result's `speech` block; a missing model or an
unreadable audio track leaves the face analysis whole, with a note saying why there are no words.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from video_emotion.inference.voice import VoiceTimeline
from video_emotion.text.speech import (
    NoAudioStream,
    SpeechModelError,
    Transcriber,
    get_transcriber,
    transcript_sentiment,
    whisper_language,
)
from video_emotion.text.whisper_model import MODEL_NAME, is_installed

TRANSCRIBE_MODES = ("auto", "off")

# Why a video has no words, per `speech.status`, in the combined-sentiment sentence.
_NO_WORDS = {
    "off": "no transcript given; speech recognition off",
    "no_speech": "no transcript given and no speech heard",
    "no_audio": "no transcript given and no audio track",
    "unavailable": "no transcript given; speech recognition unavailable",
    "failed": "no transcript given; the audio track could not be read",
}


class AnalysisStopped(Exception):
    """The caller's `should_stop` turned true: the analysis was abandoned part-way (`analyze`, `audio_file`)."""


def check_options(transcribe: str, speech_lang: str | None, voice: str = "auto") -> None:
    """ValueError for a transcription or voice mode or speech language that cannot be used (before any work)."""
    if voice not in TRANSCRIBE_MODES:
        raise ValueError(f"voice must be one of {', '.join(TRANSCRIBE_MODES)}, got {voice!r}")
    if transcribe not in TRANSCRIBE_MODES:
        raise ValueError(f"transcribe must be one of {', '.join(TRANSCRIBE_MODES)}, got {transcribe!r}")
    if speech_lang is not None:
        whisper_language(speech_lang)


class Words:
    """The words (and the voice's encoder states) of one video: started before the frames are read, finished after.

    `voice`, when given, receives the encoder's states over the speech (`text.voice_states`) as the audio is heard,
    window by window, whether or not the words are recognised (a user's transcript, `transcribe="off"`)."""

    def __init__(self, path: Path, user: dict[str, Any] | None, transcribe: str, speech_lang: str | None,
                 speech_model: Transcriber | str | Path | None, samples: np.ndarray | None,
                 audio_decoded: bool, voice: VoiceTimeline | None = None) -> None:
        self.user, self.voice = user, voice
        self.info: dict[str, Any] = {"transcribe": transcribe, "status": "off", "model": None,
                                     "language": speech_lang, "seconds": None}
        self.voice_status = "off" if voice is None else "pending"
        self._words = user is None and transcribe != "off"
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._out: dict[str, Any] | None = None
        self._error: BaseException | None = None
        if user is not None:
            self.info["status"] = "user_transcript"
        if not self._words and voice is None:
            return
        transcriber = speech_model if isinstance(speech_model, Transcriber) or speech_model is None \
            else get_transcriber(speech_model)
        if transcriber is None:
            self._unavailable("speech recognition is not set up here (no Whisper model)")
            return
        if self._words:
            self.info["model"] = MODEL_NAME
        if not is_installed(transcriber.model_dir):
            self._unavailable(f"the Whisper model is missing or incomplete in {transcriber.model_dir}: run "
                              "`make assets`")
            return
        if audio_decoded and samples is None:  # the audio model found no readable track already
            self._say("no_audio")
            return
        self._thread = threading.Thread(target=self._work, args=(transcriber, path, samples, speech_lang),
                                        name="video-emotion-speech", daemon=True)
        self._thread.start()

    def _unavailable(self, note: str) -> None:
        self.voice_status = "unavailable" if self.voice is not None else self.voice_status
        if self._words:
            self._say("unavailable", note)

    def _say(self, status: str, note: str | None = None) -> None:
        if status in ("no_audio", "failed", "unavailable") and self.voice is not None:
            self.voice_status = status
        if not self._words:
            return
        self.info["status"] = status
        if note:
            self.info["note"] = note

    def _work(self, transcriber: Transcriber, path: Path, samples: np.ndarray | None, lang: str | None) -> None:
        t0 = time.perf_counter()
        sink = self.voice.add if self.voice is not None else None
        try:
            if samples is not None:
                self._out = transcriber.transcribe(samples, language=lang, cancel=self._cancel, on_states=sink,
                                                   words=self._words)
            else:
                self._out = transcriber.transcribe_media(path, language=lang, cancel=self._cancel, missing_ok=False,
                                                         on_states=sink, words=self._words)
        except BaseException as exc:  # handed to the analysing thread in finish()
            self._error = exc
        finally:
            if self._words:
                self.info["seconds"] = round(time.perf_counter() - t0, 3)

    def cancel(self) -> None:
        """Stop a running transcription (the face analysis failed); returns once it has stopped."""
        self._cancel.set()
        if self._thread is not None:
            self._thread.join()

    def wait(self, should_stop: Callable[[], bool] | None = None, poll_s: float = 0.2) -> bool:
        """Wait for the transcription; False (the transcription cancelled) as soon as `should_stop` says so."""
        if self._thread is None:
            return True
        while self._thread.is_alive():
            if should_stop is not None and should_stop():
                self.cancel()
                return False
            self._thread.join(poll_s if should_stop is not None else None)
        return True

    def finish(self) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """(the result's `transcript` block or None, the `speech` block), once the transcription is done."""
        if self._thread is not None:
            self._thread.join()
            self._settle()
        if self.user is not None:
            return {**self.user, "source": "user", "language_probability": None, "model": None}, self.info
        if self._thread is None or not self._words or self._out is None:
            return None, self.info
        self.info["language"] = self._out["language"]
        return transcript_sentiment(self._out), self.info

    def _settle(self) -> None:
        """The outcome of the audio thread into the statuses (an unexpected error is raised here)."""
        if isinstance(self._error, NoAudioStream):
            self._say("no_audio")
        elif isinstance(self._error, (SpeechModelError, FileNotFoundError, ImportError)):  # the set-up, not the video
            self._unavailable(str(self._error))
        elif isinstance(self._error, (ValueError, OSError)):  # an audio track ffmpeg cannot read
            self._say("failed", f"speech recognition skipped: {self._error}")
        elif self._error is not None:
            raise self._error
        else:
            if self._words:
                self._say("no_speech" if self._out is None else "transcribed")
            if self.voice is not None:
                self.voice_status = "read"

    def no_words(self) -> str:
        """Why there are no words, for the combined-sentiment sentence."""
        return _NO_WORDS.get(self.info["status"], "no transcript given")
