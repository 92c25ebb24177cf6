"""What the voice costs: its encoder per minute of speech, and whole `analyze` of a long clip with speech with and
without it.

    .venv/bin/python benchmarks/voice_cost.py [--bundle models/video_emotion] [--speech RAVDESS_DIR | WAV]
                                              [--seconds 197] [--runs 3]

1. The voice alone: Whisper base's layers 2 and 3 over speech (`text.voice_states.encode_spans`) and the head,
   CPU seconds and wall seconds per minute of speech, after the encoders are loaded (their load timed apart).
2. Whole process: `video-emotion analyze CLIP --model BUNDLE` (transcription on, as by default) with `--voice auto`
   and `--voice off`, alternating, medians of --runs. CLIP is the real 197 s footage of `make_clips` (the bench's
   long clip) with speech under it throughout: RAVDESS utterances (real actors, a user's copy: --speech DIR) or
   one WAV repeated (--speech WAV).

Prints a Markdown table and writes .bench/voice_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / ".bench"
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def speech_track(source: Path, seconds: float, out: Path) -> Path:
    """A 16 kHz WAV of `seconds` of speech: RAVDESS utterances one after another, or one WAV repeated."""
    import wave

    from video_emotion.features.audio import load_audio

    files = sorted(source.rglob("03-01-*.wav")) if source.is_dir() else [source]
    pieces, total, i = [], 0, 0
    while total < seconds * 16000:
        x = load_audio(files[i % len(files)])
        pieces.append(x)
        total += len(x)
        i += 7  # spread over actors and emotions
    x = (np.clip(np.concatenate(pieces)[: int(seconds * 16000)], -1, 1) * 32767).astype("<i2")
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(x.tobytes())
    return out


def voice_alone(wav: Path) -> dict[str, float]:
    """Encoder + head over the speech of `wav`: seconds per minute of speech (CPU and wall)."""
    from video_emotion.features.audio import load_audio
    from video_emotion.inference.voice import VoiceModel
    from video_emotion.text.speech import speech_spans
    from video_emotion.text.voice_states import VoiceEncoder, encode_spans

    samples = load_audio(wav)
    spans = speech_spans(samples)
    speech_min = sum(s["end"] - s["start"] for s in spans) / 16000 / 60
    enc = VoiceEncoder(ROOT / "models" / "pretrained" / "whisper-base")
    t0 = time.perf_counter()
    enc.states(samples[:16000])
    load_s = time.perf_counter() - t0
    model = VoiceModel.load(ROOT / "models" / "voice")
    c0, t0 = time.process_time(), time.perf_counter()
    states = encode_spans(enc, samples, spans)
    for lo in np.arange(0, len(samples) / 16000, 2.0):
        part = states.between(lo - 0.5, lo + 2.5)
        if len(part) >= 25:
            model.read(part)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    return {"speech_minutes": round(speech_min, 2), "load_s": round(load_s, 2),
            "cpu_s_per_speech_min": round(cpu / speech_min, 2), "wall_s_per_speech_min": round(wall / speech_min, 2)}


def whole(clip: Path, bundle: Path, voice: str) -> float:
    """Wall seconds of one `video-emotion analyze` process."""
    cmd = [str(ROOT / ".venv" / "bin" / "video-emotion"), "analyze", str(clip), "--model", str(bundle),
           "--voice", voice, "--out", os.devnull]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=common.ENV)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, default=ROOT / "models" / "video_emotion")
    ap.add_argument("--speech", type=Path, required=True,
                    help="a RAVDESS speech folder or a WAV (the footage's own track holds no speech)")
    ap.add_argument("--seconds", type=float, default=197.0)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    BENCH.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        wav = speech_track(args.speech, args.seconds, work / "speech.wav")
        alone = voice_alone(wav)
        common.log(f"voice alone: {alone}")
        from video_emotion.features.audio import mux

        long = common.make_clips(ROOT / "data" / "external" / "real_faces" / "cry_then_laugh.mp4")["200s"]
        clip = mux(long, wav, work / "talking.mp4")
        times: dict[str, list[float]] = {"auto": [], "off": []}
        for _ in range(args.runs):
            for voice in ("off", "auto"):
                times[voice].append(whole(clip, args.bundle, voice))
                common.log(f"voice {voice}: {times[voice][-1]:.1f} s")
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {"machine": common.machine(), "speech": str(args.speech.name), "seconds": args.seconds, "voice_alone": alone,
           "whole_s": times, "median_s": med, "ratio": round(med["auto"] / med["off"], 3)}
    (BENCH / "voice_cost.json").write_text(json.dumps(out, indent=1) + "\n")
    print("| what | figure |\n|---|---|\n"
          f"| voice alone (layers 2+3 and the head) | {alone['cpu_s_per_speech_min']} CPU s, "
          f"{alone['wall_s_per_speech_min']} s wall per minute of speech (encoders load once: {alone['load_s']} s) |\n"
          f"| whole `analyze`, {args.seconds:.0f} s clip with speech throughout, transcription on | voice auto "
          f"{med['auto']:.1f} s, off {med['off']:.1f} s: **{out['ratio']:.2f}x** (medians of {args.runs}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
