"""Speech recognition cost on this machine: model load, real-time factor, and the no-speech fast path.

    .venv/bin/python benchmarks/speech_rtf.py [--runs 3] [--beam 5] [--threads N] [--no-long]

Speech is an espeak-ng English passage of about 30 s (Debian `espeak-ng`, installed by `make test`),
transcribed by the pinned Whisper base model (int8, CPU) from `make assets`. The real-time factor
is transcription time / audio duration (lower is faster; below 1 is faster than real time). The
no-speech numbers are what a face-only video pays when transcription is on: the energy check on
silence, the VAD on noise, and ffmpeg decoding plus the energy check for a video's silent track.
The long case (10 min, three passages among silence) shows that memory stays bounded.
Prints a Markdown table and writes .bench/speech_rtf.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

from video_emotion.text import speech

ROOT = Path(__file__).resolve().parents[1]
SR = speech.SAMPLE_RATE
PASSAGE = (
    "The morning train was late again, so I walked along the river instead. The water was calm and the air "
    "was cool. A few people were running, and an old man was feeding the birds near the bridge. I stopped at "
    "a small cafe and ordered a coffee and a piece of bread. The owner told me that the market opens early "
    "on Saturdays, and that the fruit there is fresh and cheap. After breakfast I took the bus to the office, "
    "read my messages, and started working on the report that is due next week."
)


def log(msg: str) -> None:
    print(f"[speech-bench] {msg}", file=sys.stderr, flush=True)


def ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def espeak_samples(text: str, work: Path) -> np.ndarray:
    exe = shutil.which("espeak-ng")
    if exe is None:
        sys.exit("espeak-ng is not installed: apt-get install espeak-ng (make test installs it)")
    wav = work / "passage.wav"
    subprocess.run([exe, "-v", "en-us", "-w", str(wav), text], check=True, capture_output=True)
    res = subprocess.run([ffmpeg(), "-v", "error", "-i", str(wav), "-ac", "1", "-ar", str(SR), "-f", "s16le", "-"],
                         check=True, capture_output=True)
    return np.frombuffer(res.stdout, "<i2").astype(np.float32) / 32768.0


def silent_video(work: Path, seconds: float) -> Path:
    """A small MP4 (mpeg4 video, silent AAC track) made from ffmpeg's test sources."""
    out = work / f"silent_{int(seconds)}s.mp4"
    subprocess.run([ffmpeg(), "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size=320x180:rate=12:d={seconds}",
                    "-f", "lavfi", "-i", f"anullsrc=r=44100:cl=stereo:d={seconds}", "-c:v", "mpeg4", "-q:v", "8",
                    "-c:a", "aac", "-shortest", str(out)], check=True, capture_output=True)
    return out


def words(text: str) -> list[str]:
    text = re.sub(r"\bi'm\b", "i am", text.lower())
    return re.findall(r"[a-z]+", text)


def recall(expected: str, transcript: dict | None) -> float:
    if not transcript:
        return 0.0
    got = words(" ".join(c["text"] for c in transcript["cues"]))
    want = words(expected)
    hits = 0
    for w in want:
        if w in got:
            got.remove(w)
            hits += 1
    return hits / len(want)


def timed(fn, *a, **kw):
    t0 = time.perf_counter()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t0


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", default=str(ROOT / speech.DEFAULT_MODEL_DIR))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="CTranslate2 CPU threads (default: min(4, cores))")
    ap.add_argument("--no-long", action="store_true", help="skip the 10-minute bounded-memory case")
    args = ap.parse_args()
    if not speech.is_installed(args.model_dir):
        sys.exit(f"Whisper model missing in {args.model_dir}: run `make assets`")
    out: dict = {"machine": {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version()}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        passage = espeak_samples(PASSAGE, work)
        dur = len(passage) / SR
        log(f"passage: {dur:.1f} s of espeak-ng English")

        # No speech first, on a transcriber whose model is never loaded.
        idle = speech.Transcriber(args.model_dir)
        rng = np.random.default_rng(0)
        no_speech = {}
        for name, sig in (("silence_60s_array", np.zeros(60 * SR, np.float32)),
                          ("silence_600s_array", np.zeros(600 * SR, np.float32)),
                          ("white_noise_60s_array", (rng.standard_normal(60 * SR) * 0.1).astype(np.float32))):
            res, dt = timed(idle.transcribe, sig)
            assert res is None
            no_speech[name] = round(dt, 4)
        for seconds in (60, 600):
            clip = silent_video(work, seconds)
            res, dt = timed(idle.transcribe_media, clip)
            assert res is None
            no_speech[f"silent_track_{seconds}s_video"] = round(dt, 3)
            clip.unlink()
        assert not idle.loaded, "the model was loaded without speech"
        out["no_speech_seconds"] = no_speech
        log(f"no-speech path: {no_speech}")

        rss0 = rss_mib()
        tr = speech.Transcriber(args.model_dir, cpu_threads=args.threads, beam_size=args.beam)
        _, load_s = timed(tr.model)
        out["model_load_seconds"] = round(load_s, 3)
        out["threads"] = tr.cpu_threads
        out["beam_size"] = tr.beam_size
        log(f"model loaded in {load_s:.2f} s ({tr.cpu_threads} threads)")
        times, result = [], None
        for _ in range(args.runs):
            result, dt = timed(tr.transcribe, passage)
            times.append(dt)
        med = statistics.median(times)
        out["passage"] = {"audio_seconds": round(dur, 2), "transcribe_seconds": [round(t, 3) for t in times],
                          "rtf_median": round(med / dur, 4), "word_recall": round(recall(PASSAGE, result), 3),
                          "language": result and result["language"],
                          "language_probability": result and result["language_probability"],
                          "cues": len(result["cues"]) if result else 0}
        log(f"RTF {med / dur:.3f} (median of {args.runs}), recall {out['passage']['word_recall']:.2f}")
        _, dt = timed(tr.transcribe, passage, language="en")
        out["passage"]["rtf_language_given"] = round(dt / dur, 4)
        out["rss_mib_after_load_and_passage"] = round(rss_mib(), 1)
        out["rss_mib_before_model"] = round(rss0, 1)

        if not args.no_long:
            total = 600 * SR
            signal = np.zeros(total, np.float32)
            for start_s in (30, 290, 520):  # one passage straddles the first 300 s window boundary
                signal[start_s * SR:start_s * SR + len(passage)] = passage
            res, dt = timed(tr.transcribe, signal)
            out["long_10min_three_passages"] = {
                "transcribe_seconds": round(dt, 2), "rtf_vs_speech": round(dt / (3 * dur), 4),
                "rtf_vs_total": round(dt / 600, 4), "word_recall_per_passage": round(recall(PASSAGE * 3, res), 3),
                "cue_starts_s": [c["start_s"] for c in res["cues"]][:3] + ["..."],
                "peak_rss_mib": round(rss_mib(), 1)}
            log(f"long: {out['long_10min_three_passages']}")

    bench = ROOT / ".bench"
    bench.mkdir(exist_ok=True)
    (bench / "speech_rtf.json").write_text(json.dumps(out, indent=2) + "\n")
    p = out["passage"]
    print(f"| Speech recognition (Whisper base, int8, {out['threads']} CPU threads, beam {out['beam_size']}) | |")
    print("|---|---|")
    print(f"| model load | {out['model_load_seconds']:.2f} s |")
    print(f"| ~{p['audio_seconds']:.0f} s English passage (espeak-ng) | RTF {p['rtf_median']:.3f} "
          f"(median of {len(p['transcribe_seconds'])}), {p['rtf_language_given']:.3f} with the language given; "
          f"word recall {p['word_recall']:.0%} |")
    for k, v in out["no_speech_seconds"].items():
        print(f"| no speech: {k.replace('_', ' ')} | {v * 1000:.0f} ms (model not loaded) |")
    if "long_10min_three_passages" in out:
        lg = out["long_10min_three_passages"]
        print(f"| 10 min audio, 3 passages among silence | {lg['transcribe_seconds']:.1f} s, peak RSS "
              f"{lg['peak_rss_mib']:.0f} MiB, recall {lg['word_recall_per_passage']:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
