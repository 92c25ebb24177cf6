"""Readings into words: timeline segments, the video-level summary and its tags."""

from __future__ import annotations

from typing import Any

import numpy as np

from video_emotion.inference.windows import Window
from video_emotion.labels import arousal_of, polarity, translate, valence_of
from video_emotion.modeling.calibration import apply_temperature

TAG_MIN_SHARE = 0.15  # an emotion becomes a tag when it leads at least this share of the analysed time


def segment(w: Window, p: np.ndarray, labels: list[str], lang: str, temperature: float = 1.0) -> dict[str, Any]:
    """A window's reading. `p` is calibrated by the bundle's `temperature` (how sure it is); valence, arousal and
    sentiment come from the network's own reading (the temperature undone, exactly), so calibration changes
    the confidence shown, never what is read: softening towards the label mix, whose mean valence is negative,
    would otherwise turn uncertain neutral faces negative (docs/real-faces.md, Calibration)."""
    probs = {lab: round(float(v), 4) for lab, v in zip(labels, p, strict=False)}
    top = labels[int(np.argmax(p))]
    raw = p if temperature == 1.0 else apply_temperature(np.asarray(p)[None], 1.0 / temperature)[0]
    reading = {lab: float(v) for lab, v in zip(labels, raw, strict=False)}
    val, aro = valence_of(reading), arousal_of(reading)
    seg = {"start_s": round(w.start_s, 3), "end_s": round(w.end_s, 3), "emotion": top,
           "confidence": round(float(np.max(p)), 4), "probabilities": probs, "valence": round(val, 4),
           "arousal": round(aro, 4), "sentiment": polarity(val), "face_coverage": round(float(w.face.mean()), 3)}
    if lang != "en":
        seg["emotion_label"] = translate(top, lang)
        seg["sentiment_label"] = translate(seg["sentiment"], lang)
    return seg


def summarize(timeline: list[dict[str, Any]], labels: list[str], lang: str = "en") -> dict[str, Any]:
    """Video-level reading: time-weighted distribution, dominant emotion, sentiment and tags. Windows
    marked `unreadable` (faces too poor to read) do not vote; `unreadable_s` says how long they last."""
    unreadable = round(sum(s["end_s"] - s["start_s"] for s in timeline if s.get("unreadable")), 3)
    read = [s for s in timeline if not s.get("unreadable")]
    if not read:
        note = "faces were found but none could be read" if timeline else "no face was found in the video"
        return {"dominant_emotion": None, "distribution": {lab: 0.0 for lab in labels}, "sentiment": None,
                "sentiment_score": None, "tags": [], "note": note, "unreadable_s": unreadable}
    out = _summary(read, labels, lang)
    out["unreadable_s"] = unreadable
    return out


def _summary(timeline: list[dict[str, Any]], labels: list[str], lang: str) -> dict[str, Any]:
    dur = np.array([max(1e-6, s["end_s"] - s["start_s"]) for s in timeline])
    weights = dur / dur.sum()
    probs = np.array([[s["probabilities"][lab] for lab in labels] for s in timeline])
    dist = (weights[:, None] * probs).sum(0)
    score = float(np.clip(sum(w * s["valence"] for w, s in zip(weights, timeline, strict=False)), -1, 1))
    lead: dict[str, float] = {}
    for w, s in zip(weights, timeline, strict=False):
        lead[s["emotion"]] = lead.get(s["emotion"], 0.0) + float(w)
    tags = [k for k, v in sorted(lead.items(), key=lambda kv: -kv[1]) if v >= TAG_MIN_SHARE]
    dominant = labels[int(np.argmax(dist))]
    out = {"dominant_emotion": dominant,
           "distribution": {lab: round(float(v), 4) for lab, v in zip(labels, dist, strict=False)},
           "sentiment": polarity(score), "sentiment_score": round(score, 4), "tags": tags,
           "time_share": {k: round(v, 4) for k, v in sorted(lead.items(), key=lambda kv: -kv[1])}}
    if lang != "en":
        out["dominant_emotion_label"] = translate(dominant, lang)
        out["tag_labels"] = [translate(t, lang) for t in tags]
        out["sentiment_label"] = translate(out["sentiment"], lang)
    return out


def _voice_at(voice: list[dict[str, Any]], start_s: float) -> dict[str, Any]:
    """The voice's cells for the window starting at `start_s`: the voice window that holds that time."""
    for v in voice:
        if v["start_s"] <= start_s + 1e-3 < v["end_s"]:
            return {"voice_speech": bool(v["speech"]), "voice_emotion": v["emotion"],
                    "voice_confidence": v["confidence"]}
    return {"voice_speech": None, "voice_emotion": None, "voice_confidence": None}


def csv_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per timeline segment of an analysis result (the CLI's `--format csv`), with the voice's reading of
    the same time (`voice_speech` false: no speech there; empty: the voice was not read); an audio file, which has
    no face timeline, gets one row per voice window, its face cells empty."""
    labels = result["model"]["labels"]
    voice = (result.get("voice") or {}).get("timeline") or []

    def row(s: dict[str, Any] | None, start_s: float, end_s: float) -> dict[str, Any]:
        s = s or {}
        return {"video": result["video"], "start_s": start_s, "end_s": end_s, "emotion": s.get("emotion"),
                "confidence": s.get("confidence"), "valence": s.get("valence"), "arousal": s.get("arousal"),
                "sentiment": s.get("sentiment"), **{f"p_{k}": (s.get("probabilities") or {}).get(k) for k in labels},
                "unreadable": bool(s.get("unreadable", False)) if s else None, **_voice_at(voice, start_s)}

    if not result["timeline"] and result.get("media") == "audio":
        return [row(None, v["start_s"], v["end_s"]) for v in voice]
    return [row(s, s["start_s"], s["end_s"]) for s in result["timeline"]]


def format_results(results: list[dict[str, Any]], fmt: str, single: bool) -> str:
    """Analysis results as JSON (one object for a single video) or as CSV timeline rows."""
    import csv
    import io
    import json

    if fmt == "json":
        return json.dumps(results[0] if single and len(results) == 1 else results, ensure_ascii=False, indent=2) + "\n"
    buf = io.StringIO()
    rows = [r for res in results for r in csv_rows(res)]
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()
