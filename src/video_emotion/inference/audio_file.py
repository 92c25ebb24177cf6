"""Audio files (a voice memo, a call, a podcast: WAV, MP3, M4A/AAC, OGG, FLAC): the voice and the words, no face.

`analyze_video` hands a file here when it holds sound but no video stream (cover art is not a video).
The result keeps the analysis contract: `faces_detected: false`, an empty face `timeline`, `duration_s` from
the decoded sound, and the voice and the words exactly as a video's (`hearing.hear`), so the summary is the
voice's where the voice was read, and says that there is no face (and no speech) where it was not.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from video_emotion.features.audio import AUDIO_SUFFIXES, SAMPLE_RATE, load_audio, stream_listing
from video_emotion.features.video import VideoError, VideoInfo, probe
from video_emotion.inference.hearing import hear, listener, model_block
from video_emotion.inference.summary import summarize
from video_emotion.inference.words import AnalysisStopped, Words
from video_emotion.labels import translate
from video_emotion.text.speech import Transcriber

NO_FACE = "an audio file: no face to read"


def _audio_only(path: Path) -> bool:
    kinds, _ = stream_listing(path)
    return "Audio" in kinds and "Video" not in kinds


def probe_media(path: Path) -> VideoInfo | None:
    """The video's header (`features.video.probe`), or None for a file with sound and no video stream. A file
    with neither keeps the video reader's error (no video stream, not a readable video)."""
    if path.suffix.lower() in AUDIO_SUFFIXES and path.is_file() and _audio_only(path):
        return None  # a podcast's cover art would read as a one-frame video
    try:
        return probe(path)
    except VideoError as exc:
        if not path.is_file():
            raise
        if _audio_only(path):  # an audio-only .mp4, .mkv, .webm
            return None
        if str(exc).endswith(": no video stream"):  # a container of neither (subtitles, data): say both
            raise VideoError(f"{path}: no video or audio stream (nothing to see or hear)") from None
        raise


def media_duration_s(path: Path) -> float:
    """How long a video or an audio file is, before any work (a service's limit): the header's word."""
    info = probe_media(path)
    if info is not None:
        return info.duration_s
    return stream_listing(path)[1] or 0.0


def _note(summary: dict[str, Any], voice: dict[str, Any]) -> None:
    """An audio file's summary says there is no face and, without a voice reading, why there is none."""
    if summary["dominant_emotion"] is None:
        summary["note"] = f"{NO_FACE}, and {voice['summary']['note'] or 'no voice reading'}: no emotion is reported"


def analyze_audio(path: Path, bundle, lang: str = "en", text: dict[str, Any] | None = None, transcribe: str = "auto",
                  speech_lang: str | None = None, speech_model: Transcriber | str | Path | None = None,
                  should_stop: Callable[[], bool] | None = None, voice: str = "auto") -> dict[str, Any]:
    """The analysis result of an audio file (options as `analyze_video`'s, already checked; `text`: the user's
    transcript, parsed). The sound is decoded once: its length is the result's duration, and the same samples
    are heard for the words and the voice."""
    samples = load_audio(path)  # AudioError (a ValueError) for sound that cannot be decoded
    duration = len(samples) / SAMPLE_RATE
    if duration <= 0:
        raise VideoError(f"{path.name}: an audio stream with no sound in it (0 s)")
    words = Words(path, text, transcribe, speech_lang, speech_model, samples, audio_decoded=True,
                  voice=listener(bundle, voice, lang))
    try:
        if not words.wait(should_stop):
            raise AnalysisStopped(f"{path.name}: stopped while hearing its speech")
    except BaseException:
        words.cancel()
        raise
    face = summarize([], bundle.labels, lang)
    face["note"] = NO_FACE
    result: dict[str, Any] = {
        "video": path.name, "media": "audio", "duration_s": round(duration, 3), "fps": None, "frames_analysed": 0,
        "model": model_block(bundle), "faces_detected": False, "timeline": [], "summary": face,
        "no_face_segments": [], "lang": lang, "label_names": {lab: translate(lab, lang) for lab in bundle.labels},
        "faces": [],
    }
    hear(result, [], words, bundle.labels, lang, duration, voice == "off")
    _note(result["summary"], result["voice"])
    result["ends_early"] = None
    return result


__all__ = ["NO_FACE", "analyze_audio", "media_duration_s", "probe_media"]
