"""RAVDESS adapter: `Actor_XX/MM-VC-EE-II-SS-RR-AA.mp4` (and `.wav`) -> manifest records.

Modality 01 audio-video, 02 video-only, 03 audio-only; vocal channel 01 speech, 02 song; emotion 01
neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust, 08 surprised; intensity 01
normal, 02 strong; statement; repetition; actor 01-24 (odd male, even female). The same identifiers
in another modality are the same recording: it becomes one record (the audio-video file, else the
video-only file with the audio-only file as its sidecar audio), the other copies are reported.
"""

from __future__ import annotations

import re
from pathlib import Path

from video_emotion.data.common import CorpusScan

NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})\.(mp4|wav)$", re.IGNORECASE)
MODALITY = {"01": "audio-video", "02": "video-only", "03": "audio-only"}
VOCAL = {"01": "speech", "02": "song"}
EMOTION = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fear",
           "07": "disgust", "08": "surprise"}
MEDIA = {".mp4", ".wav"}


def scan(root: str | Path, calm: str = "neutral") -> CorpusScan:
    """Every media file under `root` becomes a record or a rejection with its reason."""
    if calm not in ("neutral", "drop"):
        raise ValueError(f"ingest.ravdess_calm must be neutral or drop, got {calm!r}")
    root = Path(root)
    out = CorpusScan(source="ravdess")
    parsed: dict[tuple[str, ...], dict[str, Path]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix.lower() not in MEDIA:
            out.reject(path, "not a RAVDESS media file (.mp4 or .wav)")
            continue
        m = NAME.match(path.name)
        if not m:
            out.reject(path, "name does not follow MM-VC-EE-II-SS-RR-AA")
            continue
        mod, vc, emo, inten, stmt, rep, actor, _ = m.groups()
        if out.reject_unknown(path, {f"modality {mod}": mod in MODALITY, f"vocal channel {vc}": vc in VOCAL,
                                     f"emotion {emo}": emo in EMOTION, f"intensity {inten}": inten in ("01", "02"),
                                     f"actor {actor}": 1 <= int(actor) <= 24}):
            continue
        folder = path.parent.name
        if re.fullmatch(r"Actor_\d{2}", folder) and folder != f"Actor_{actor}":
            out.reject(path, f"file of actor {actor} inside {folder}")
            continue
        if (mod == "03") != (path.suffix.lower() == ".wav"):
            out.reject(path, f"modality {mod} ({MODALITY[mod]}) does not match the {path.suffix} extension")
            continue
        parsed.setdefault((vc, emo, inten, stmt, rep, actor), {})[mod] = path
    for (vc, emo, inten, _statement, _repetition, actor), files in sorted(parsed.items()):
        # One record per recording: the audio-video file when there is one (its 02 and 03 files are
        # the same performance again), else the video-only file with its audio-only twin.
        if "01" in files:
            path, mod, audio = files["01"], "01", files["01"]
            for twin in ("02", "03"):
                if twin in files:
                    out.duplicate(files[twin], path)
        elif "02" in files:
            path, mod, audio = files["02"], "02", files.get("03")
        else:
            out.reject(files["03"], "audio-only file without a matching video (kept out of a video corpus)")
            continue
        label = EMOTION[emo]
        if label == "calm" and calm == "drop":
            out.reject(path, "calm clips dropped (ingest.ravdess_calm: drop)")
            continue
        out.records.append({
            "path": path, "label": "neutral" if label == "calm" else label, "actor": f"ravdess-{actor}",
            "modality": MODALITY[mod], "audio_path": audio, "source_label": label,
            "vocal_channel": VOCAL[vc], "intensity": "strong" if inten == "02" else "normal",
            "gender": "male" if int(actor) % 2 else "female",
        })
    return out
