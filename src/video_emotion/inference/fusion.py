"""Face and voice into one overall reading, each by how long it was read and how sure it was.

Each source's weight is the time it was read (seconds of readable face, seconds of speech) times its mean
calibrated confidence there; the overall distribution and sentiment score are the weighted mean of the
two summaries. A face that is absent or unreadable leaves the voice to speak, silence leaves the face;
the summary's `sources` says what each contributed and why a source is missing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from video_emotion.labels import polarity, translate

TAG_MIN_SHARE = 0.15  # as the face's tags: the voice's emotion is a tag when the voice carries this much


def _face_weight(timeline: list[dict[str, Any]]) -> float:
    read = [s for s in timeline if not s.get("unreadable") and s.get("probabilities")]
    return float(sum((s["end_s"] - s["start_s"]) * s["confidence"] for s in read))


def _voice_weight(voice: dict[str, Any] | None) -> float:
    if not voice or not voice.get("timeline"):
        return 0.0
    return float(sum(s["speech_s"] * s["confidence"] for s in voice["timeline"] if s["speech"]))


def combine(face_summary: dict[str, Any], timeline: list[dict[str, Any]], voice: dict[str, Any] | None,
            labels: list[str], lang: str = "en", no_voice: str | None = None) -> dict[str, Any]:
    """The result's `summary`: the face's summary where the voice says nothing, else face and voice combined.

    `face_summary` (the face's own, `summarize`) is kept as it is under the key `face`; `no_voice` says why
    there is no voice reading (off, no speech, no audio) when there is none."""
    wf, wv = _face_weight(timeline), _voice_weight(voice)
    vs = voice["summary"] if voice else None
    out = dict(face_summary)
    out["face"] = {k: face_summary.get(k) for k in ("dominant_emotion", "sentiment", "sentiment_score")}
    if wv <= 0 or vs is None or vs.get("dominant_emotion") is None:
        out["sources"] = {"face": 1.0 if wf > 0 else 0.0, "voice": 0.0,
                          "note": no_voice or "the voice was not read"}
        return out
    share_f, share_v = wf / (wf + wv), wv / (wf + wv)
    face_dist = np.array([face_summary["distribution"][lab] for lab in labels]) if wf > 0 else np.zeros(len(labels))
    voice_dist = np.array([vs["distribution"][lab] for lab in labels])
    dist = share_f * face_dist + share_v * voice_dist
    score = share_v * vs["sentiment_score"] + (share_f * face_summary["sentiment_score"] if wf > 0 else 0.0)
    top = labels[int(np.argmax(dist))]
    out.update({"dominant_emotion": top,
                "distribution": {lab: round(float(v), 4) for lab, v in zip(labels, dist, strict=True)},
                "sentiment": polarity(score), "sentiment_score": round(float(score), 4)})
    tags = list(face_summary.get("tags", [])) if wf > 0 else []
    if share_v >= TAG_MIN_SHARE and vs["dominant_emotion"] not in tags:
        tags.append(vs["dominant_emotion"])
    out["tags"] = tags
    why = "face and voice, each weighed by the seconds it was read times its mean calibrated confidence"
    if wf <= 0:
        why = "the voice alone: " + (face_summary.get("note") or "no face could be read")
    out["sources"] = {"face": round(share_f, 4), "voice": round(share_v, 4), "note": why}
    if lang != "en":
        out["dominant_emotion_label"] = translate(top, lang)
        out["tag_labels"] = [translate(t, lang) for t in tags]
        out["sentiment_label"] = translate(out["sentiment"], lang)
    return out


__all__ = ["combine"]
