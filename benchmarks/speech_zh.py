"""How well offline speech recognition hears real Mandarin, and what it costs: one line per Whisper model.

    .venv/bin/python benchmarks/speech_zh.py WAV_DIR REFERENCES.tsv [--model base] [--model NAME=DIR]
        [--lang zh] [--threads 2] [--json .bench/speech_zh.json]

REFERENCES.tsv: one recording a line, `file<TAB>reference text[<TAB>key words, comma-separated]`; lines
starting with # are comments (keep each recording's source, commit and licence there). The recordings
themselves are not in the repository: docs/speech.md names where each comes from.

Each recording goes through the project's own `Transcriber` (the VAD, decoding options and cue filters
`analyze` uses; language detected unless --lang), so the figures are those of an analysis. Reported per
model: the character error rate (simplified characters, punctuation and spaces removed, so Whisper's
traditional characters and its punctuation are not counted as errors), the key words heard, how many
sentences keep the sentiment (positive / neutral / negative, the project's Chinese scoring) of their
reference, and the cost per minute of speech: wall-clock seconds and CPU seconds of the whole process
(model loading excluded, reported apart). Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def log(msg: str) -> None:
    print(f"[speech-zh] {msg}", file=sys.stderr, flush=True)


def normalise(text: str) -> str:
    """What is compared: simplified characters, lower case, no punctuation or spaces."""
    from video_emotion.text.sentiment import simplified

    return re.sub(r"[\W_]+", "", simplified(text)).lower()


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between two strings (characters)."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        diag, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diag + (ca != cb))
    return row[-1]


def read_references(path: Path) -> list[tuple[str, str, list[str]]]:
    """(file, reference, key words) per non-comment line of the references file."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cols = line.split("\t")
        keys = [k.strip() for k in cols[2].split(",") if k.strip()] if len(cols) > 2 else []
        rows.append((cols[0].strip(), cols[1].strip(), keys))
    return rows


def sentiment(text: str) -> str:
    from video_emotion.labels import polarity
    from video_emotion.text.sentiment import score_text

    return polarity(score_text(text, "zh")["score"])


def run_model(name: str, folder: Path, wav_dir: Path, refs: list, lang: str | None, threads: int) -> dict:
    """Every recording heard by one model: per-recording hypotheses and the totals."""
    from faster_whisper import decode_audio

    from video_emotion.text.speech import Transcriber
    from video_emotion.text.speech_audio import SAMPLE_RATE

    t = Transcriber(folder, cpu_threads=threads)
    t0 = time.perf_counter()
    t.model()
    load_s = time.perf_counter() - t0
    rows, wall, cpu, audio_s = [], 0.0, 0.0, 0.0
    for file, ref, keys in refs:
        samples = decode_audio(str(wav_dir / file), sampling_rate=SAMPLE_RATE)
        audio_s += len(samples) / SAMPLE_RATE
        w0, c0 = time.perf_counter(), time.process_time()
        out = t.transcribe(samples, language=lang)
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        hyp = " ".join(c["text"] for c in out["cues"]) if out else ""
        r, h = normalise(ref), normalise(hyp)
        rows.append({"file": file, "reference": ref, "heard": hyp, "language": out["language"] if out else None,
                     "edits": edit_distance(r, h), "chars": len(r),
                     "keys_heard": [k for k in keys if normalise(k) in h], "keys": keys,
                     "sentiment_ref": sentiment(ref), "sentiment_heard": sentiment(hyp) if hyp else "neutral"})
        log(f"{name}: {file}: {hyp}")
    minutes = audio_s / 60
    return {"model": name, "folder": str(folder), "threads": threads, "load_s": round(load_s, 2),
            "cer": round(sum(r["edits"] for r in rows) / max(1, sum(r["chars"] for r in rows)), 4),
            "sentiment_kept": sum(r["sentiment_ref"] == r["sentiment_heard"] for r in rows), "sentences": len(rows),
            "keys_heard": sum(len(r["keys_heard"]) for r in rows), "keys": sum(len(r["keys"]) for r in rows),
            "audio_s": round(audio_s, 2), "wall_s_per_min": round(wall / minutes, 2),
            "cpu_s_per_min": round(cpu / minutes, 2), "rows": rows}


def tables(results: list[dict]) -> list[str]:
    lines = ["| model | CER | key words heard | sentiment kept | wall s / min of speech | CPU s / min | load s |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['model']} | {r['cer']:.3f} | {r['keys_heard']}/{r['keys']} | "
                     f"{r['sentiment_kept']}/{r['sentences']} | {r['wall_s_per_min']} | {r['cpu_s_per_min']} | "
                     f"{r['load_s']} |")
    lines += ["", "| recording | reference | model | heard | edits | sentiment (reference -> heard) |",
              "|---|---|---|---|---|---|"]
    for r in results:
        for row in r["rows"]:
            lines.append(f"| {row['file']} | {row['reference']} | {r['model']} | {row['heard']} | "
                         f"{row['edits']}/{row['chars']} | {row['sentiment_ref']} -> {row['sentiment_heard']} |")
    return lines


def parse_models(specs: list[str]) -> list[tuple[str, Path]]:
    """`NAME` (a model `make assets` installs) or `NAME=DIR` (any faster-whisper folder)."""
    from video_emotion.text.whisper_model import MODEL_DIRS

    out = []
    for spec in specs:
        name, _, folder = spec.partition("=")
        if not folder and name not in MODEL_DIRS:
            raise SystemExit(f"unknown model {name!r}: one of {', '.join(MODEL_DIRS)}, or NAME=DIR")
        out.append((name, Path(folder) if folder else ROOT / MODEL_DIRS[name]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("wav_dir", type=Path)
    ap.add_argument("references", type=Path)
    ap.add_argument("--model", action="append", default=None, help="NAME or NAME=DIR (repeat; default: base)")
    ap.add_argument("--lang", default=None, help="the spoken language given (default: detected, as analyze does)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=ROOT / ".bench" / "speech_zh.json")
    args = ap.parse_args()
    refs = read_references(args.references)
    load = os.getloadavg()[0]
    results = [run_model(name, folder, args.wav_dir, refs, args.lang, args.threads)
               for name, folder in parse_models(args.model or ["base"])]
    lines = tables(results)
    lines.append(f"\n{len(refs)} recordings, {results[0]['audio_s']} s; {args.threads} CPU threads; "
                 f"load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print("\n".join(lines))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
