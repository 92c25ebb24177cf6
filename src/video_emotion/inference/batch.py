"""Batch analysis of a video library: every video analysed exactly as `analyze` does it, one summary
row and one full result per video, resumable, with progress on the console.

An engine turns the videos still to do into (summary row, result JSON) pairs, each made by
`analyze_source` (so a row holds what `analyze` says about that file with that model). This module
plans the job (what the output folder holds already), stores what the engine yields
(`batch_store`) and reports progress. The local engine (`local_engine`) analyses one video after the
other in this process; the Ray engine (`video_emotion.scale.batch`) spreads the same per-video work
over the CPUs of a machine or a cluster.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from video_emotion.data.library import Source, open_source, sha256_source
from video_emotion.inference.batch_store import BatchStore, summary_row

Engine = Callable[[list[Source]], Iterator[tuple[dict[str, Any], str | None]]]


class WorkerLost(RuntimeError):
    """The workers analysing a video died more often than they are retried: the video is not the
    cause as far as anyone knows, so its row says `lost` and the next run tries it again."""


@dataclass(frozen=True)
class BatchOptions:
    """How each video is analysed (the same options as `analyze`)."""

    sample_fps: float | None = None
    lang: str = "en"
    transcribe: str = "auto"
    speech_lang: str | None = None
    speech_model: str | None = None  # Whisper model folder (None: no speech recognition)
    batch_windows: int = 8           # windows per model call (a fuller batch only costs memory: docs/speed.md)
    voice: str = "auto"              # read the voice (auto) or not (off)

    def job(self, model_info: dict[str, Any]) -> dict[str, Any]:
        """What the rows of an output folder depend on: a second run must use the same."""
        return {"model_name": model_info.get("name", "video-emotion"), "model_version": str(model_info.get("version")),
                "sample_fps": self.sample_fps, "lang": self.lang, "transcribe": self.transcribe, "voice": self.voice}


def analyze_source(source: Source, bundle, opts: BatchOptions, engine: str,
                   node: str = "local") -> tuple[dict[str, Any], str | None]:
    """One video -> (summary row, result JSON), the row naming the `node` (and host) it ran on. A file
    that cannot be analysed gives a row with its error, never an exception; a model that cannot be
    loaded does raise (every video would fail)."""
    from video_emotion.inference.analyze import analyze_video
    from video_emotion.inference.bundle import ModelLoadError

    t0 = time.perf_counter()
    sha = None
    where = {"node": node, "host": socket.gethostname()}
    try:
        with open_source(source) as (path, sha):
            result = analyze_video(path, bundle, sample_fps=opts.sample_fps, lang=opts.lang,
                                   batch_windows=opts.batch_windows, transcribe=opts.transcribe,
                                   speech_lang=opts.speech_lang, speech_model=opts.speech_model, voice=opts.voice)
    except ModelLoadError:
        raise
    except WorkerLost as exc:
        return summary_row(source.path, sha, source.size, source.mtime, None, str(exc), engine,
                           time.perf_counter() - t0, status="lost", **where), None
    except Exception as exc:  # a bad file is a row with its error, never a failed job
        error = str(exc) if isinstance(exc, (ValueError, OSError)) else f"{type(exc).__name__}: {exc}"
        return summary_row(source.path, sha, source.size, source.mtime, None, error, engine,
                           time.perf_counter() - t0, **where), None
    row = summary_row(source.path, sha, source.size, source.mtime, result, None, engine, time.perf_counter() - t0,
                      **where)
    return row, json.dumps(result, ensure_ascii=False)


def local_engine(bundle, opts: BatchOptions) -> Engine:
    """One video after the other in this process: exactly `analyze`."""
    def run(todo: list[Source]) -> Iterator[tuple[dict[str, Any], str | None]]:
        for source in todo:
            yield analyze_source(source, bundle, opts, "local")
    return run


def plan(sources: list[Source], store: BatchStore, retry_errors: bool = False) -> tuple[list[Source], int]:
    """(videos to analyse, number already done). A video is done when the folder has its path with the
    same content: the same size and modification time (the content hash recorded then stands), or,
    when those changed, the same sha256. Rows of videos to redo are removed first."""
    index = store.index()
    todo, redo, skipped = [], set(), 0
    for s in sources:
        old = index.get(s.path)
        if old is None:
            todo.append(s)
            continue
        if old["status"] == "lost" or (retry_errors and old["status"] == "error"):
            same = False
        elif old["size_bytes"] == s.size and old["mtime"] == s.mtime:
            same = True
        else:
            try:
                same = old["sha256"] is not None and sha256_source(s) == old["sha256"]
            except OSError:
                same = False
        if same:
            skipped += 1
        else:
            redo.add(s.path)
            todo.append(s)
    store.drop(redo)
    return todo, skipped


class Progress:
    """Videos done / total, videos per second and ETA on stderr (rewritten in place on a terminal)."""

    def __init__(self, total: int, skipped: int, enabled: bool = True, stream=None) -> None:
        self.total, self.skipped, self.enabled = total, skipped, enabled
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = 0.5 if self.tty else 5.0
        self.counts = {"ok": 0, "error": 0, "lost": 0}
        self.t0 = self._last = time.perf_counter()

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def rate(self) -> float:
        return self.done / max(1e-9, time.perf_counter() - self.t0)

    def line(self) -> str:
        rate, left = self.rate(), self.total - self.skipped - self.done
        eta = f"{left / rate:.0f} s" if rate > 0 else "?"
        return (f"[batch] {self.skipped + self.done}/{self.total} videos ({self.skipped} already done, "
                f"{self.counts['error']} errors, {self.counts['lost']} lost) {rate:.2f} videos/s, ETA {eta}")

    def update(self, row: dict[str, Any]) -> None:
        self.counts[row["status"]] += 1
        now = time.perf_counter()
        if self.enabled and now - self._last >= self.every:
            self._last = now
            self.stream.write(("\r" if self.tty else "") + self.line() + ("" if self.tty else "\n"))
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write(("\r" if self.tty else "") + self.line() + "\n")
            self.stream.flush()


def run_batch(sources: list[Source], store: BatchStore, engine: Engine, retry_errors: bool = False,
              progress: bool = True, on_row: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Analyse what is not done yet, storing rows as they come; returns the job's counts."""
    todo, skipped = plan(sources, store, retry_errors)
    prog = Progress(len(sources), skipped, progress)
    seen: set[str] = set()
    try:
        for row, result in engine(todo) if todo else ():
            store.add(row, result)
            seen.add(row["path"])
            prog.update(row)
            if on_row is not None:
                on_row(row)
        for s in todo:  # the engine gave up on these (workers died past their retries)
            if s.path not in seen:
                row = summary_row(s.path, None, s.size, s.mtime, None, "lost: its workers died past their retries",
                                  "-", 0.0, status="lost")
                store.add(row, None)
                prog.update(row)
    finally:
        store.flush()  # whatever was done is kept, also when the job stops with an error
        prog.close()
    seconds = time.perf_counter() - prog.t0
    return {"total": len(sources), "skipped": skipped, "analysed": prog.done, **prog.counts,
            "seconds": round(seconds, 2), "videos_per_s": round(prog.done / seconds, 3) if seconds > 0 else 0.0}
