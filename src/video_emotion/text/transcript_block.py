"""A recognised transcript into the analysis result: SubRip text and the words' sentiment block."""

from __future__ import annotations

import re
from typing import Any

_SPACE = re.compile(r"\s+")


def _clean(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


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
    (`language`, `timed`, scored `cues`, `score`, `sentiment`) plus `source`, `language_probability` and
    `model` (which speech model heard the words).

    For a language the sentiment step does not support, the cues keep their text and times with
    `score` and `sentiment` None, the block's too, and `note` says why (skip `align` and `fuse` then).
    """
    from video_emotion.text.sentiment import analyze_transcript

    extra = {"source": transcript.get("source", "asr"),
             "language_probability": transcript.get("language_probability"), "model": transcript.get("model")}
    lang = transcript["language"]
    if lang in SENTIMENT_LANGUAGES:
        return {**analyze_transcript(to_srt(transcript), lang), **extra}
    cues = [{"start_s": c["start_s"], "end_s": c["end_s"], "text": c["text"], "score": None, "sentiment": None}
            for c in transcript["cues"]]
    return {"language": lang, "timed": True, "cues": cues, "score": None, "sentiment": None, **extra,
            "note": f"speech in {lang!r}: word sentiment covers {' and '.join(SENTIMENT_LANGUAGES)} only"}


__all__ = ["SENTIMENT_LANGUAGES", "to_srt", "transcript_sentiment"]
