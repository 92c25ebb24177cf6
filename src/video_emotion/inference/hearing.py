"""What an analysis heard, added to its result: the words, the voice, and the summary that combines them.

One home for the part of the result that a video and an audio file share (`analyze` for videos,
`audio_file` for a voice memo, a call, a podcast): the `speech` and `transcript` blocks, the `voice` block,
the summary combining face and voice (`fusion.combine`), and the sentiment combined with the words.
"""

from __future__ import annotations

from typing import Any

from video_emotion.inference.fusion import combine
from video_emotion.inference.voice import VoiceTimeline, voice_block
from video_emotion.inference.words import Words
from video_emotion.labels import polarity


def model_block(bundle) -> dict[str, Any]:
    """The result's `model`: name, registry version, labels and modalities of the bundle."""
    return {"name": bundle.info.get("name", "video-emotion"), "version": str(bundle.info.get("version", "local")),
            "labels": list(bundle.labels), "modalities": list(bundle.modalities)}


def listener(bundle, voice: str, lang: str) -> VoiceTimeline | None:
    """The voice timeline an analysis fills as its audio is heard: None with `voice="off"` or a bundle without a
    voice model."""
    model = bundle.voice_model() if voice == "auto" else None
    return VoiceTimeline(model, bundle.window_s, lang) if model is not None else None


def _reading(sources: dict[str, Any]) -> str:
    """What the summary's sentiment was read from, for the combined-sentiment sentence."""
    if sources.get("voice", 0) > 0:
        return "face and voice" if sources.get("face", 0) > 0 else "voice"
    return "face"


def hear(result: dict[str, Any], timeline: list[dict[str, Any]], words: Words, labels: list[str], lang: str,
         duration_s: float, voice_off: bool) -> dict[str, Any]:
    """Add `speech`, `voice` and (where there are words) `transcript` to `result`, whose `summary` is the face's
    own; the summary becomes face and voice combined, with the words' sentiment beside it. Returns `result`."""
    from video_emotion.text.sentiment import align, fuse, simplified_transcript

    text, result["speech"] = words.finish()
    status = words.voice_status if words.voice is not None else ("off" if voice_off else "no_model")
    result["voice"] = voice_block(status, words.voice, duration_s, lang)
    result["summary"] = combine(result["summary"], timeline, result["voice"], labels, lang,
                                result["voice"]["summary"].get("note"))
    if text is not None and lang == "zh":  # shown in the reader's script (simplified); what was written is kept
        text = simplified_transcript(text)
    scored = text is not None and text["score"] is not None
    if text is not None:
        if scored:
            align(timeline, text)
        result["transcript"] = text
    combined, how = fuse(result["summary"]["sentiment_score"], text["score"] if scored else None,
                         words="recognised speech" if text and text["source"] == "asr" else "transcript",
                         no_words=text.get("note", "") if text else words.no_words(),
                         reading=_reading(result["summary"]["sources"]))
    result["summary"]["combined_sentiment_score"] = combined
    result["summary"]["combined_sentiment"] = polarity(combined) if combined is not None else None
    result["summary"]["sentiment_sources"] = how
    return result


__all__ = ["hear", "listener", "model_block"]
