"""Video -> emotion timeline + video-level summary: the orchestration used by the CLI, the service
and evaluation.

The work lives in the rooms below: frame windows and their face crops (`windows`), the model
(`bundle`), audio features (`features.audio`), words (`words`: a transcript or recognised speech,
scored by `text.sentiment`) and the summary (`summary`).
This module streams windows through the model in batches and assembles the result contract.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from video_emotion.features.streams import prefetched
from video_emotion.features.video import FrameClock, VideoError, VideoInfo
from video_emotion.inference.audio_file import analyze_audio, probe_media
from video_emotion.inference.bundle import ModelBundle
from video_emotion.inference.hearing import hear, listener, model_block
from video_emotion.inference.readability import is_unreadable, readable_mask, unreadable_segment, window_quality
from video_emotion.inference.summary import segment, summarize
from video_emotion.inference.windows import DETECT_INTERVAL_S, Window, iter_windows
from video_emotion.inference.words import AnalysisStopped, Words, check_options
from video_emotion.labels import TRANSLATIONS, translate
from video_emotion.modeling.inputs import model_inputs
from video_emotion.text.speech import Transcriber

# A stream that decodes to less than this share of its header's frames, and at least this much shorter, ends early.
ENDS_EARLY_SHARE, ENDS_EARLY_S = 0.9, 1.0


class _AudioTrack:
    """A video's audio samples, cut into per-window log-mel features (None: no audio track)."""

    def __init__(self, path: Path, n_frames: int) -> None:
        from video_emotion.features.audio import load_audio

        self.n_frames = n_frames
        try:
            self.samples: np.ndarray | None = load_audio(path)
        except ValueError:
            self.samples = None  # no audio track: windows are flagged, never invented

    def window(self, w: Window) -> tuple[np.ndarray, bool]:
        from video_emotion.features.audio import SAMPLE_RATE, segment_features

        lo, hi = w.span_s or (w.start_s, w.end_s)
        seg = None if self.samples is None else self.samples[int(lo * SAMPLE_RATE):int(hi * SAMPLE_RATE)]
        return segment_features(seg, self.n_frames)


class _Readings:
    """The model's readings of a video, accumulated batch by batch: the main timeline, the per-face
    timelines and the windows without anything to read."""

    def __init__(self, bundle: ModelBundle, lang: str, audio: _AudioTrack | None, batch: int) -> None:
        self.bundle, self.lang, self.audio, self.batch = bundle, lang, audio, batch
        self.uses_video = "video" in bundle.modalities
        self.timeline: list[dict[str, Any]] = []
        self.face_tracks: dict[int, list[dict[str, Any]]] = {}
        self.gaps: list[dict[str, float]] = []

    def add(self, windows: list[Window]) -> None:
        if not windows:
            return
        arrays: dict[str, np.ndarray] = {"X": np.stack([w.crops for w in windows]),
                                         "face": np.stack([w.face for w in windows])}
        if self.audio is not None:
            feats = [self.audio.window(w) for w in windows]
            arrays["A"] = np.stack([f for f, _ in feats])
            arrays["has_audio"] = np.array([h for _, h in feats], np.float32)
        ok = arrays["face"].any(1) if self.uses_video else arrays["has_audio"] > 0
        for w, good in zip(windows, ok, strict=False):
            if not good:
                self.gaps.append({"start_s": round(w.start_s, 3), "end_s": round(w.end_s, 3)})
        if self.uses_video:  # the quality gate: faces too poor to read are marked, never read
            ok = self._gate(windows, ok, arrays)
        idx = np.flatnonzero(ok)
        if not idx.size:
            return
        probs = self.bundle.predict_inputs(model_inputs(arrays, idx, self.bundle.modalities), batch_size=self.batch)
        for i, p in zip(idx, probs, strict=False):
            seg = self._segment(windows[i], p)
            if self.uses_video:
                seg.update(unreadable=False, quality=window_quality(windows[i]))
            if self.audio is not None:
                seg["audio"] = bool(arrays["has_audio"][i])
            self.timeline.append(seg)
        if self.uses_video:
            self._per_face(windows, idx, probs, arrays)

    def _gate(self, windows: list[Window], ok: np.ndarray, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Unreadable windows go into the timeline as such (inference.readability); readable ones are read
        from their readable frames only."""
        bad = np.array([bool(good) and is_unreadable(w) for w, good in zip(windows, ok, strict=False)])
        self.timeline.extend(unreadable_segment(w) for w, b in zip(windows, bad, strict=False) if b)
        arrays["face"] = np.stack([readable_mask(w) for w in windows])
        return ok & ~bad

    def _segment(self, w: Window, p: np.ndarray) -> dict[str, Any]:
        return segment(w, p, self.bundle.labels, self.lang, self.bundle.temperature)

    def _per_face(self, windows: list[Window], idx: np.ndarray, probs: np.ndarray, arrays: dict) -> None:
        """Per-face timelines: a window with a single face reuses the main reading; only windows
        with several faces run the model again, once per extra face."""
        extra: dict[str, list] = {"X": [], "face": [], "A": [], "has_audio": []}
        keys: list[tuple[Window, int]] = []
        for i, p in zip(idx, probs, strict=False):
            w = windows[i]
            live = {t: v for t, v in w.tracks.items() if v[1].any()}
            if len(live) <= 1:
                for t in live:
                    self.face_tracks.setdefault(t, []).append(self._segment(w, p))
                continue
            for t, (crops, face) in live.items():
                keys.append((w, t))
                extra["X"].append(crops)
                extra["face"].append(face)
                if "A" in arrays:
                    extra["A"].append(arrays["A"][i])
                    extra["has_audio"].append(arrays["has_audio"][i])
        if not keys:
            return
        stacked = {k: np.stack(v) for k, v in extra.items() if v}
        inputs = model_inputs(stacked, slice(None), self.bundle.modalities)
        for (w, t), p in zip(keys, self.bundle.predict_inputs(inputs, batch_size=self.batch), strict=False):
            self.face_tracks.setdefault(t, []).append(self._segment(w, p))


def analyze_video(path: str | Path, bundle: ModelBundle, sample_fps: float | None = None, lang: str = "en",
                  batch_windows: int = 8, progress: bool = False, transcript: str | None = None,
                  transcript_lang: str | None = None, min_frames: int = 1,
                  detect_interval_s: float = DETECT_INTERVAL_S, fast: bool = True, transcribe: str = "auto",
                  speech_lang: str | None = None, speech_model: Transcriber | str | Path | None = None,
                  should_stop: Callable[[], bool] | None = None, pipeline: bool = True,
                  decoder: str = "auto", voice: str = "auto") -> dict[str, Any]:
    """The analysis-result contract (see the design notes) for one video.

    `transcript` (plain text, SRT or VTT content) adds text sentiment, aligned to the timeline where
    it is timed. Without one, `transcribe="auto"` recognises the speech of the audio track once with
    `speech_model` (a Whisper model folder or a `Transcriber`; None: no recognition), in `speech_lang`
    (None: detected); `"off"` skips it. The result's `speech` block says what happened.
    `lang` (en|zh) adds translated label names beside the canonical English keys.
    `fast=False` runs the whole-frame face detector on every sampled frame (the reference path that
    the benchmark compares the default tracking path with). `should_stop` is polled between windows;
    when it turns true the analysis ends with `AnalysisStopped` (a service whose client left).
    `pipeline` (default) decodes, finds faces and runs the model side by side, each on its own thread with
    bounded queues between them (docs/speed.md); False runs them in turn (the same result, slower).
    `decoder`: "auto" decodes only the sampled frames of Motion JPEG (libjpeg), "ffmpeg" every frame.
    `voice` "auto" reads the voice with the bundle's voice model (Whisper's encoder at layers 2 and 3 over the
    speech), "off" does not; the summary combines face and voice (`inference.fusion`).
    A file with sound and no video stream is an audio file: its voice and words, no face (`inference.audio_file`).
    """
    if lang not in TRANSLATIONS:
        raise ValueError(f"unsupported language {lang!r}; expected one of {', '.join(TRANSLATIONS)}")
    check_options(transcribe, speech_lang, voice)
    text = None
    if transcript is not None:
        from video_emotion.text.sentiment import analyze_transcript

        text = analyze_transcript(transcript, transcript_lang)  # parse before the (slow) video work
    path = Path(path)
    info = header = probe_media(path)
    if info is None:  # sound and no video stream (a voice memo, a call, a podcast): the voice and the words
        return analyze_audio(path, bundle, lang, text, transcribe, speech_lang, speech_model, should_stop, voice)
    if info.n_frames < min_frames:
        raise VideoError(f"{path.name}: {info.n_frames} frame(s); at least {min_frames} are needed to read "
                         "an expression over time")
    if sample_fps is not None and not (0 < sample_fps <= 120):
        raise ValueError(f"sample_fps must be in (0, 120], got {sample_fps}")
    audio = _AudioTrack(path, bundle.n_audio_frames) if "audio" in bundle.modalities else None
    words = Words(path, text, transcribe, speech_lang, speech_model, audio.samples if audio else None,
                  audio_decoded=audio is not None, voice=listener(bundle, voice, lang))
    try:
        stream = {"detect_interval_s": detect_interval_s, "fast": fast, "pipeline": pipeline, "decoder": decoder}
        readings, frames_analysed, info = _read_frames(path, bundle, info, lang, audio, sample_fps, batch_windows,
                                                       progress, stream, should_stop)
        if info.n_frames < min_frames:  # a header that promised more than the stream holds
            raise VideoError(f"{path.name}: {info.n_frames} decodable frame(s); at least {min_frames} are needed")
        if not words.wait(should_stop):
            raise AnalysisStopped(f"{path.name}: stopped while transcribing its speech")
    except BaseException:
        words.cancel()
        raise
    result = _result(path, info, bundle, lang, frames_analysed, readings, words, voice == "off")
    result["ends_early"] = ends_early(header, info)
    return result


def ends_early(header: VideoInfo, measured: VideoInfo) -> dict[str, Any] | None:
    """Where the video stream decodes to much less than its container's header says (a download cut short, a
    damaged file): what was promised and what was read; None otherwise, and for a header that promised
    nothing (none, or a browser's implausible one: the stream was then measured, and its duration set, before
    the analysis)."""
    if header.duration is not None:
        return None
    promised, decoded = header.duration_s, measured.duration_s
    if measured.n_frames >= ENDS_EARLY_SHARE * header.n_frames or promised - decoded < ENDS_EARLY_S:
        return None
    return {"header_duration_s": round(promised, 3), "decoded_duration_s": round(decoded, 3),
            "note": f"the video stream ends at {decoded:.1f} s of the {promised:.1f} s its header states (cut "
                    "short or damaged): the part that could be decoded was analysed"}


def _read_frames(path: Path, bundle: ModelBundle, info, lang: str, audio: _AudioTrack | None,
                 sample_fps: float | None, batch_windows: int, progress: bool, stream: dict[str, Any],
                 should_stop: Callable[[], bool] | None = None) -> tuple[_Readings, int, VideoInfo]:
    """Every window of the video through the model, in batches; with the video's frame count, rate and
    duration as the stream measured them (headers lie: a browser's WebM has no duration).

    With `stream["pipeline"]` the windows are made on their own thread (which decodes on another), up
    to half a batch ahead of the model, which runs here: the three stages overlap, the queues bound memory.
    """
    readings = _Readings(bundle, lang, audio, batch_windows)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=round(info.duration_s, 1), unit="s", desc=path.name, disable=None)
    frames_analysed = 0
    pending: list[Window] = []
    clock = FrameClock(info.fps)
    windows = iter_windows(path, bundle, sample_fps, info=info, clock=clock, **stream)
    with closing(prefetched(windows, max(2, batch_windows // 2), "faces", stream["pipeline"])) as windows:
        for w in windows:
            if should_stop is not None and should_stop():
                raise AnalysisStopped(f"{path.name}: stopped after {frames_analysed} frames")
            pending.append(w)
            frames_analysed += w.new_frames
            if bar is not None:
                bar.update(round(w.end_s - w.start_s, 1))
            if len(pending) >= batch_windows:
                readings.add(pending)
                pending = []
    readings.add(pending)
    if bar is not None:
        bar.close()
    measured = dataclasses.replace(info, fps=clock.fps, n_frames=clock.frames, duration=clock.duration_s, counted=True)
    return readings, frames_analysed, measured


def _result(path: Path, info, bundle: ModelBundle, lang: str, frames_analysed: int, readings: _Readings,
            words: Words, voice_off: bool = False) -> dict[str, Any]:
    timeline = sorted(readings.timeline, key=lambda s: s["start_s"])
    result = {
        "video": path.name, "duration_s": round(info.duration_s, 3), "fps": round(info.fps, 3),
        "frames_analysed": frames_analysed, "model": model_block(bundle),
        "faces_detected": bool(timeline),
        "timeline": timeline,
        "summary": summarize(timeline, bundle.labels, lang),
        "no_face_segments": readings.gaps,
        "lang": lang,
        "label_names": {lab: translate(lab, lang) for lab in bundle.labels},
        # Every face tracked, in order of appearance; the main timeline follows the largest face.
        "faces": [{"track": n, "timeline": segs, "summary": summarize(segs, bundle.labels, lang)}
                  for n, (_, segs) in enumerate(sorted(readings.face_tracks.items()))],
    }
    return hear(result, timeline, words, bundle.labels, lang, info.duration_s, voice_off)


__all__ = ["AnalysisStopped", "ModelBundle", "VideoError", "analyze_video", "iter_windows", "summarize"]
