"""Video as it comes from people's devices, made with the ffmpeg binary the project ships: a WebM written
to a pipe the way browsers record (no duration in its header), variable-frame-rate H.264, a phone clip
with rotation metadata, audio that starts later (or earlier) than the video, H.264/AAC. Frame counts,
times and durations must come from the decoded stream, never from the header."""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import fer_bundle
from video_emotion.features import audio as audio_mod
from video_emotion.features.audio import AudioError, ffmpeg_exe, has_audio, load_audio
from video_emotion.features.sampling import iter_grid
from video_emotion.features.video import FrameClock, VideoError, probe

FPS, N = 30, 72          # the browser clip: 2.4 s
W, H = 160, 120


def _ffmpeg(args: list[str], stdin: bytes | None = None) -> bytes:
    """The shipped ffmpeg; output to `-` comes back through a pipe (not a seekable file)."""
    res = subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *args], input=stdin, capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    return res.stdout


def _raw_in(fps: float, size: tuple[int, int] = (W, H)) -> list[str]:
    return ["-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{size[0]}x{size[1]}", "-r", str(fps), "-i", "-"]


def _face_frames(n: int) -> bytes:
    """A synthetic person smiling, moving a little: real pixels for the face path."""
    from video_emotion.data.synthetic import draw_face, make_actors

    actor = make_actors(2, seed=4)[1]
    out = []
    for i in range(n):
        pose = {"dx": 0.02 * math.sin(i / 5), "dy": 0.0, "scale": 1.0, "roll": 0.0, "bg_phase": i / n}
        out.append(np.ascontiguousarray(draw_face(actor, "happy", min(1.0, i / 20), (W, H), pose)).tobytes())
    return b"".join(out)


def _grey_frames(n: int) -> bytes:
    """Frame i is a flat grey of level 20 + 3 i, so a decoded frame tells which one it is."""
    return b"".join(np.full((H, W, 3), 20 + 3 * i, np.uint8).tobytes() for i in range(n))


def _index_of(frame: np.ndarray) -> int:
    return int(round((float(frame.mean()) - 20) / 3))


# Variable frame rate: 30 frames at 30 fps (1 s), then 30 frames at 10 fps (3 s); 4.0 s in all.
VFR_N = 60


def _vfr_time(i: int) -> float:
    return i / 30 if i < 30 else 1.0 + (i - 30) / 10


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("real_video")
    faces = _face_frames(N)
    out = {}
    # A browser's MediaRecorder writes WebM as a stream: the muxer cannot seek back to fill in a duration.
    out["webm"] = d / "browser.webm"
    out["webm"].write_bytes(_ffmpeg([*_raw_in(FPS), "-c:v", "libvpx", "-b:v", "1M", "-f", "webm", "-"], faces))
    out["vfr"] = d / "vfr.mp4"
    # Lossless RGB H.264, so that each decoded frame's grey level names it exactly.
    _ffmpeg([*_raw_in(30), "-vf", "setpts='if(lt(N,30),N/30,1+(N-30)/10)/TB'", "-fps_mode", "vfr",
             "-c:v", "libx264rgb", "-qp", "0", str(out["vfr"])], _grey_frames(VFR_N))
    # H.264 + AAC, the way phones and most sites deliver video.
    out["h264"] = d / "h264_aac.mp4"
    _ffmpeg([*_raw_in(FPS), "-f", "lavfi", "-i", "sine=frequency=220:duration=2.4", "-c:v", "libx264",
             "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(out["h264"])], faces)
    marked = np.zeros((H, W, 3), np.uint8)
    marked[:40, :40] = 255  # top-left as recorded
    plain = d / "plain.mp4"
    _ffmpeg([*_raw_in(12), "-c:v", "libx264", "-pix_fmt", "yuv420p", str(plain)], marked.tobytes() * 12)
    out["rotated"] = d / "rotated.mp4"  # a phone held upright: the stream stays landscape, metadata says 90
    _ffmpeg(["-display_rotation", "90", "-i", str(plain), "-c", "copy", str(out["rotated"])])
    return out


def _decoded(path: Path) -> tuple[int, float]:
    """Frames and duration by decoding every frame (the truth the header may not tell)."""
    cap = cv2.VideoCapture(str(path))
    ts = []
    while cap.grab():
        ts.append(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000)
    cap.release()
    return len(ts), ts[-1] + (ts[-1] - ts[-2])


def test_shipped_ffmpeg_writes_h264_vp8_and_aac():
    res = subprocess.run([ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=30)
    assert {"libx264", "libvpx", "aac"} <= {ln.split()[1] for ln in res.stdout.splitlines() if len(ln.split()) > 1}


def test_browser_webm_header_lies_and_decoding_tells_the_truth(clips):
    cap = cv2.VideoCapture(str(clips["webm"]))
    header = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    cap.release()
    assert not 1 <= header <= 10 * N  # the precondition: OpenCV reports about -2.8e17 frames
    quick = probe(clips["webm"])  # packets counted without decoding: the estimate checks before the work use
    info = probe(clips["webm"], count=True)  # every frame decoded and timed
    assert info.counted and not quick.counted
    for got in (quick, info):
        assert got.n_frames == N and abs(got.duration_s - N / FPS) < 0.05 and abs(got.fps - FPS) < 0.5
        assert (got.width, got.height) == (W, H)


def test_when_packets_cannot_be_counted_the_frames_are_decoded(clips, monkeypatch):
    from video_emotion.features import video as video_mod

    monkeypatch.setattr(video_mod, "DEMUX_TIMEOUT_S", 1e-4)  # ffmpeg gets no time: its answer is never seen
    info = probe(clips["webm"])
    assert info.counted and info.n_frames == N and abs(info.duration_s - N / FPS) < 0.05


def test_variable_frame_rate_is_sampled_by_timestamp_not_by_index(clips):
    info = probe(clips["vfr"], count=True)
    assert info.n_frames == VFR_N and abs(info.duration_s - 4.0) < 0.05
    rate = 10.0
    clock = FrameClock(info.fps)
    exact = total = 0
    for points, frame in iter_grid(clips["vfr"], rate, clock):
        got = _index_of(frame)
        for g in points:
            t = (g + 0.5) / rate
            shown = max(i for i in range(VFR_N) if _vfr_time(i) <= t + 1e-9)  # the frame on screen at t
            assert abs(got - shown) <= 1, (t, got, shown)  # at worst a neighbour, where the rate changes
            exact += got == shown
            total += 1
    assert total == 40 and exact >= 36  # 4 s at 10 points a second; index / mean rate would be off by 10 frames
    assert clock.frames == VFR_N and abs(clock.duration_s - 4.0) < 0.05


def test_rotated_phone_clip_comes_out_upright(clips):
    info = probe(clips["rotated"])
    assert (info.width, info.height) == (H, W)  # portrait, as the phone was held
    _, frame = next(iter_grid(clips["rotated"], 12.0))
    assert frame.shape[:2] == (W, H)
    ys, xs = np.nonzero(frame[..., 0] > 128)
    assert ys.min() >= W - 45 and xs.max() < 45  # the top-left mark, turned 90 degrees counter-clockwise


@pytest.mark.parametrize("video_offset,audio_offset,onset", [(0.0, 0.5, 0.5), (0.5, 0.0, 0.3)])
def test_audio_is_aligned_with_the_video_stream_start(tmp_path, video_offset, audio_offset, onset):
    """A tone that starts `onset` s after the first video frame is heard there, whichever stream starts first."""
    video, path = tmp_path / "video.mp4", tmp_path / "offset.mp4"
    _ffmpeg([*_raw_in(FPS), "-c:v", "libx264", "-pix_fmt", "yuv420p", str(video)], _grey_frames(60))
    tone_from = onset + video_offset - audio_offset  # in the audio stream's own time
    _ffmpeg(["-itsoffset", str(video_offset), "-i", str(video), "-itsoffset", str(audio_offset), "-f", "lavfi",
             "-i", f"aevalsrc='0.5*sin(2*PI*440*t)*gte(t,{tone_from})':s=16000:d=3", "-c:v", "copy",
             "-c:a", "aac", str(path)])
    samples = load_audio(path)
    heard = np.flatnonzero(np.abs(samples) > 0.1)[0] / audio_mod.SAMPLE_RATE
    assert abs(heard - onset) < 0.03
    short = load_audio(path, max_s=1.0)
    assert len(short) == audio_mod.SAMPLE_RATE and np.array_equal(short, samples[: len(short)])


def test_h264_aac_clip_is_read_whole(clips):
    info = probe(clips["h264"])
    assert info.n_frames == N and abs(info.duration_s - 2.4) < 0.05
    assert has_audio(clips["h264"])
    assert abs(len(load_audio(clips["h264"])) / audio_mod.SAMPLE_RATE - 2.4) < 0.1
    assert not has_audio(clips["webm"])
    with pytest.raises(AudioError, match="no audio stream"):
        load_audio(clips["webm"])


def test_a_stuck_ffmpeg_is_killed_at_its_deadline(tmp_path, monkeypatch):
    fifo = tmp_path / "never-written.mp4"
    os.mkfifo(fifo)  # ffmpeg blocks opening it: nobody ever writes
    monkeypatch.setattr(audio_mod, "LIST_TIMEOUT_S", 1.0)
    monkeypatch.setattr(audio_mod, "DECODE_TIMEOUT_S", 1.0)
    for call in (has_audio, load_audio):
        t = time.monotonic()
        with pytest.raises(AudioError, match="did not finish within 1 s"):
            call(fifo)
        assert time.monotonic() - t < 10


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory, fer_model) -> Path:
    """A FER-initialised bundle (T=8 frames per 1 s window: the model's rate is 8 frames a second)."""
    return fer_bundle(fer_model, tmp_path_factory.mktemp("bundle"))


def _grid_points(duration: float, rate: float) -> int:
    return sum(1 for g in range(int(duration * rate) + 2) if (g + 0.5) / rate < duration)


@pytest.mark.parametrize("sample_fps", [None, 30.0])
def test_cli_analyze_counts_and_times_frames_from_the_stream(clips, bundle_dir, tmp_path, sample_fps):
    from video_emotion.cli import main

    names = ("webm", "vfr", "h264")
    out = tmp_path / "result.json"
    argv = ["analyze", "--model", str(bundle_dir), "--transcribe", "off", "--out", str(out)]
    argv += ["--sample-fps", str(sample_fps)] if sample_fps else []
    assert main(argv + [str(clips[n]) for n in names]) == 0
    results = json.loads(out.read_text())
    for name, res in zip(names, results, strict=False):
        n, duration = _decoded(clips[name])
        assert abs(res["duration_s"] - duration) < 0.1, name
        # The model's rate (8 a second), or the asked one rounded to a multiple of it; at most the video's own
        # (the VFR clip: 15 a second on average).
        rate = min(8.0 * round(sample_fps / 8.0) if sample_fps else 8.0, probe(clips[name]).fps)
        assert res["frames_analysed"] == _grid_points(duration, rate), name
        covered = sorted([(s["start_s"], s["end_s"]) for s in res["timeline"]] +
                         [(s["start_s"], s["end_s"]) for s in res["no_face_segments"]])
        assert covered[0][0] == 0.0 and abs(max(e for _, e in covered) - res["duration_s"]) < 1e-6, name
    webm = results[0]
    assert abs(webm["duration_s"] - 2.4) < 0.1
    assert webm["frames_analysed"] == (N if sample_fps == FPS else 19)  # every decoded frame at 30 a second


def test_cli_reads_an_audio_only_file_as_sound_and_a_file_of_neither_is_named_once(clips, bundle_dir, tmp_path,
                                                                                     capsys):
    """A voice memo is analysed, not refused: no face, its length from its sound; a container of neither video
    nor sound (subtitles only) is one clear error line, and the other files are read."""
    from video_emotion.cli import main

    song = tmp_path / "voice memo.m4a"
    _ffmpeg(["-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", str(song)])
    subs = tmp_path / "subs.srt"
    subs.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n", encoding="utf-8")
    neither = tmp_path / "only subtitles.mkv"
    _ffmpeg(["-i", str(subs), str(neither)])
    out = tmp_path / "result.json"
    argv = ["analyze", "--model", str(bundle_dir), "--transcribe", "off", "--out", str(out)]
    assert main(argv + [str(song), str(neither), str(clips["h264"])]) == 1  # one file failed, the others were read
    err = capsys.readouterr().err
    assert f"error: {neither}: no video or audio stream (nothing to see or hear)\n" in err
    assert err.count("only subtitles.mkv") == 1
    assert (f"note: {song}: an audio file: no face to read, and this model carries no voice model: no emotion is "
            "reported\n") in err  # read, and said why nothing came of it
    memo, video = json.loads(out.read_text())
    assert (memo["video"], video["video"]) == (song.name, clips["h264"].name)
    assert memo["media"] == "audio" and not memo["faces_detected"] and memo["timeline"] == [] and memo["faces"] == []
    assert abs(memo["duration_s"] - 1.0) < 0.05 and memo["frames_analysed"] == 0
    assert memo["summary"]["dominant_emotion"] is None and "no face" in memo["summary"]["note"]
    assert memo["voice"]["status"] == "no_model"  # this model reads no voice: said, not guessed
    with pytest.raises(VideoError, match="no video stream"):
        probe(song)  # the video reader itself still refuses it: the analysis chose the sound path


def test_a_stream_cut_short_is_analysed_as_far_as_it_goes_and_said_to_end_early(bundle_dir, tmp_path, capsys):
    """A download cut short: the header (at the front of the file) promises 4 s, the frames stop near half-way."""
    from video_emotion.cli import main

    whole = tmp_path / "whole.mp4"
    _ffmpeg([*_raw_in(FPS), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(whole)],
            _face_frames(4 * FPS))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    out = tmp_path / "result.json"
    argv = ["analyze", "--model", str(bundle_dir), "--transcribe", "off", "--out", str(out)]
    assert main(argv + [str(whole), str(cut)]) == 0
    full, short = json.loads(out.read_text())
    assert full["ends_early"] is None and abs(full["duration_s"] - 4.0) < 0.1
    early = short["ends_early"]
    assert abs(early["header_duration_s"] - 4.0) < 0.1 and early["decoded_duration_s"] == short["duration_s"] < 3.0
    assert short["frames_analysed"] > 0 and short["timeline"]  # what could be decoded was read
    err = capsys.readouterr().err
    assert f"note: {cut}: the video stream ends at" in err and f"note: {whole}:" not in err


def test_only_a_header_that_promised_much_more_makes_a_stream_end_early():
    from video_emotion.features.video import VideoInfo
    from video_emotion.inference.analyze import ends_early

    header = VideoInfo(fps=30.0, n_frames=300, width=W, height=H)
    measured = lambda n: VideoInfo(fps=30.0, n_frames=n, width=W, height=H, duration=n / 30.0, counted=True)  # noqa: E731
    assert ends_early(header, measured(300)) is None
    assert ends_early(header, measured(275)) is None   # under 1 s short (a header's rounding, an edit list)
    assert ends_early(header, measured(100))["decoded_duration_s"] == round(100 / 30, 3)
    long_header = VideoInfo(fps=30.0, n_frames=30 * 600, width=W, height=H)
    assert ends_early(long_header, measured(30 * 590)) is None  # 10 s short of 10 min: within 90%
    for promised_nothing in (measured(300), VideoInfo(fps=30.0, n_frames=300, width=W, height=H, duration=10.0)):
        assert ends_early(promised_nothing, measured(10)) is None  # counted or demuxed: no header's promise
