"""CREMA-D adapter: `ActorID_Sentence_Emotion_Level` videos (VideoFlash/*.flv) with `AudioWAV/*.wav`.

Emotions ANG, DIS, FEA, HAP, NEU, SAD; levels LO, MD, HI, XX; actors 1001-1091; 12 sentences.
"""

from __future__ import annotations

import re
from pathlib import Path

from video_emotion.data.common import CorpusScan

NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")
EMOTION = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
LEVEL = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
SENTENCES = {"IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI"}
VIDEO = {".flv", ".mp4"}


def scan(root: str | Path) -> CorpusScan:
    root = Path(root)
    out = CorpusScan(source="cremad")
    audio = {p.stem: p for p in root.rglob("*.wav")}
    used_audio: set[str] = set()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() != ".wav"):
        if path.suffix.lower() not in VIDEO:
            out.reject(path, "not a CREMA-D video (.flv or .mp4)")
            continue
        m = NAME.match(path.stem)
        if not m:
            out.reject(path, "name does not follow ActorID_Sentence_Emotion_Level")
            continue
        actor, sentence, emo, level = m.groups()
        if out.reject_unknown(path, {f"emotion {emo}": emo in EMOTION, f"sentence {sentence}": sentence in SENTENCES,
                                     f"level {level}": level in LEVEL, f"actor {actor}": 1001 <= int(actor) <= 1091}):
            continue
        wav = audio.get(path.stem)
        if wav is not None:
            used_audio.add(path.stem)
        out.records.append({"path": path, "label": EMOTION[emo], "actor": f"cremad-{actor}",
                            "modality": "video+sidecar-audio" if wav else "video-only", "audio_path": wav,
                            "source_label": emo, "sentence": sentence, "intensity": LEVEL[level]})
    for stem, wav in sorted(audio.items()):
        if stem not in used_audio:
            out.reject(wav, "audio file without a matching video" if NAME.match(stem)
                       else "name does not follow ActorID_Sentence_Emotion_Level")
    return out
