"""The H.264/HEVC reader that leaves unsampled non-reference frames undecoded (`features.avreader`) against
OpenCV's FFmpeg decoding every frame (`decoder="ffmpeg"`, the reference): the same sampled frames, pixel
for pixel, the same times, the same frame count, on real footage encoded with B-frames (H.264 and HEVC),
with a variable frame rate, rotated, and with corrupt packets; and OpenCV where the reader cannot vouch for
a file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from video_emotion.features import avreader, sampling
from video_emotion.features.audio import ffmpeg_exe
from video_emotion.features.nal import Layout, disposable, layout, new_parameter_sets
from video_emotion.features.sampling import iter_grid
from video_emotion.features.video import FrameClock

REAL = Path(__file__).resolve().parents[2] / "data" / "external" / "real_faces" / "cry_then_laugh.mp4"
X264 = ["-an", "-c:v", "libx264", "-preset", "veryfast", "-bf", "3", "-pix_fmt", "yuv420p"]
# 40 frames at 23.98 fps, 40 at twice that, the rest at 1/1.7 of it: a variable frame rate.
VFR = ("setpts='if(lt(N,40),N,if(lt(N,80),40+(N-40)*0.5,60+(N-80)*1.7))*1001/24000/TB'")


def _ffmpeg(*args: str) -> None:
    res = subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *args], capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr.decode(errors="replace")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """6 s of the real footage as H.264 with up to 3 B-frames (pyramid), the same at a variable frame rate,
    the first rotated by metadata (OpenCV reports 270 and 90 degrees), as HEVC (x265's B-frames), and 3 s
    tagged BT.709 and full range (the conversion to BGR follows the tags as OpenCV's does)."""
    d = tmp_path_factory.mktemp("h264")
    out = {name: d / f"{name}.mp4" for name in ("bframes", "vfr", "rot90", "rot270", "hevc", "bt709", "full")}
    _ffmpeg("-i", str(REAL), "-t", "6", *X264, str(out["bframes"]))
    _ffmpeg("-i", str(REAL), "-t", "6", "-vf", VFR, "-fps_mode", "vfr", *X264, str(out["vfr"]))
    _ffmpeg("-display_rotation", "90", "-i", str(out["bframes"]), "-c", "copy", str(out["rot90"]))
    _ffmpeg("-display_rotation", "-90", "-i", str(out["bframes"]), "-c", "copy", str(out["rot270"]))
    _ffmpeg("-i", str(REAL), "-t", "3", *X264, "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc",
            "bt709", str(out["bt709"]))
    _ffmpeg("-i", str(REAL), "-t", "3", *X264, "-color_range", "pc", str(out["full"]))
    _ffmpeg("-i", str(REAL), "-t", "6", "-an", "-c:v", "libx265", "-preset", "veryfast", "-x265-params",
            "log-level=error", str(out["hevc"]))
    return out


@pytest.fixture
def readers(monkeypatch) -> list:
    """The `SkippingReader`s `iter_grid` opens (None where it fell back to OpenCV)."""
    made = []

    def spy(*args, **kw):
        made.append(avreader.open_skipping(*args, **kw))
        return made[-1]

    monkeypatch.setattr(sampling, "open_skipping", spy)
    return made


def assert_same_as_ffmpeg(path: Path, rate: float) -> list:
    """The grid's points, frames (pixel for pixel) and clock of the default reader and of the reference."""
    ours_clock, ref_clock = FrameClock(), FrameClock()
    ours = list(iter_grid(path, rate, ours_clock, decoder="auto"))
    ref = list(iter_grid(path, rate, ref_clock, decoder="ffmpeg"))
    assert [p for p, _ in ours] == [p for p, _ in ref] and len(ref) >= 5
    assert all(a.shape == b.shape and np.array_equal(a, b) for (_, a), (_, b) in zip(ours, ref, strict=True))
    clock = ("frames", "origin", "last", "interval", "duration_s", "fps")
    assert [getattr(ours_clock, k) for k in clock] == [getattr(ref_clock, k) for k in clock]
    return ours


@pytest.mark.parametrize("name", ["bframes", "vfr", "rot90", "rot270", "hevc"])
@pytest.mark.parametrize("rate", [4.0, 7.0, 30.0])
def test_sampled_frames_and_clock_are_those_of_the_full_decode(clips, readers, name, rate):
    frames = assert_same_as_ffmpeg(clips[name], rate)
    (reader,) = readers
    assert isinstance(reader, avreader.SkippingReader) and reader._cv is None  # never handed over
    if rate < 10:
        assert reader.skipped >= 20  # of 144 frames (of 111 at the variable rate), 40-60% non-reference
    if name.startswith("rot"):
        assert frames[0][1].shape[:2] == (640, 360)  # upright, as OpenCV turns it


@pytest.mark.parametrize("name", ["bt709", "full"])
def test_colour_tags_convert_as_opencv_converts(clips, readers, name):
    assert_same_as_ffmpeg(clips[name], 8.0)
    assert readers[0].skipped > 0


@pytest.mark.parametrize("name", ["bframes", "hevc"])
def test_frame_threaded_decoding_gives_the_same_result(clips, readers, monkeypatch, name):
    """On machines with more cores FFmpeg decodes on several threads (frame threading delays its output):
    still the reference's frames and clock."""
    monkeypatch.setattr(sampling, "decode_threads", lambda: 3)
    assert_same_as_ffmpeg(clips[name], 4.0)
    assert readers[0].skipped > 0 and readers[0]._cv is None


@pytest.mark.parametrize("name", ["bframes", "vfr", "hevc"])
def test_every_frames_time_is_opencvs_including_the_undecoded(clips, name):
    """Frame by frame, skipped or not, CAP_PROP_POS_MSEC as OpenCV reports it, and as many frames."""
    reader, _ = sampling._reader(clips[name], "auto", 4.0, FrameClock().interval)
    cap = cv2.VideoCapture(str(clips[name]))
    assert isinstance(reader, avreader.SkippingReader)
    times = []
    while reader.grab():
        assert cap.grab()
        times.append((reader.get(cv2.CAP_PROP_POS_MSEC), cap.get(cv2.CAP_PROP_POS_MSEC)))
    assert not cap.grab() and reader.skipped > 0 and reader._cv is None
    assert [a for a, _ in times] == [b for _, b in times] and len(times) > 100
    reader.release()
    cap.release()


def _corrupt(src: Path, dst: Path) -> tuple[int, int]:
    """`src` with the middle of two inter-coded pictures' slice data overwritten (one non-reference, one
    reference); returns their packet indices."""
    import av

    data = bytearray(src.read_bytes())
    with av.open(str(src)) as c:
        stream = c.streams.video[0]
        lay = layout("h264", stream.codec_context.extradata)
        packets = [(p.pos, p.size, disposable(bytes(p), lay), p.is_keyframe) for p in c.demux(stream) if p.size]
    nonref = next(i for i, p in enumerate(packets) if i > 30 and p[2])
    ref = next(i for i, p in enumerate(packets) if i > 60 and not p[2] and not p[3])
    rng = np.random.default_rng(7)
    for i in (nonref, ref):
        pos, n = packets[i][:2]
        data[pos + n // 2:pos + n // 2 + 32] = rng.integers(0, 256, 32, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))
    return nonref, ref


@pytest.mark.parametrize("rate", [4.0, 30.0])
def test_a_clip_with_corrupt_packets_gives_the_reference_result(clips, readers, tmp_path, rate):
    """Damaged slice data: FFmpeg conceals it; where the reader sees a damaged frame it hands over to OpenCV
    at that frame. Either way the result is the reference's."""
    broken = tmp_path / "broken.mp4"
    _corrupt(clips["bframes"], broken)
    assert_same_as_ffmpeg(broken, rate)
    assert isinstance(readers[0], avreader.SkippingReader)


def test_a_skipped_frame_asked_for_is_decoded_by_opencv(clips, readers, monkeypatch):
    """The safety net: were the plan wrong (here: every non-reference frame skipped, sampled or not), the
    frame asked for is read by OpenCV from the start and the rest follows from there."""
    monkeypatch.setattr(avreader, "plan", lambda times, *_: np.arange(len(times)) == 0)
    assert_same_as_ffmpeg(clips["bframes"], 4.0)
    assert readers[0]._cv is not None


def test_unsupported_cases_fall_back_to_opencv(clips, readers, tmp_path, monkeypatch):
    """Annex B H.264 (MPEG-TS: no length-prefixed packets), a grid-less read, and PyAV missing: OpenCV decodes
    every frame, with the reference's result."""
    ts = tmp_path / "clip.ts"
    _ffmpeg("-i", str(clips["bframes"]), "-c", "copy", str(ts))
    assert_same_as_ffmpeg(ts, 4.0)
    assert readers == [None]
    cap, _ = sampling._reader(clips["bframes"], "auto")  # no rate: nothing to plan against
    assert isinstance(cap, cv2.VideoCapture)
    cap.release()
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` raises ImportError
    assert_same_as_ffmpeg(clips["bframes"], 4.0)
    assert readers[-1] is None


def test_packet_facts():
    """Non-reference slices (H.264 nal_ref_idc 0, HEVC TRAIL_N) are disposable; a reference slice, broken
    lengths or an unknown picture parameter set are not; a parameter set not in the record is new."""
    ue = "1" + "1" + "010"  # H.264: first_mb 0, slice_type 0 (P), pps_id 1
    header = int(ue.ljust(8, "0"), 2).to_bytes(1, "big")

    def nal(head: bytes, body: bytes = header + b"\x80\x00") -> bytes:
        return (len(head) + len(body)).to_bytes(4, "big") + head + body

    avc = Layout(False, 4, frozenset({1}), frozenset({b"\x68\xee\x3c\x80"}))
    assert disposable(nal(b"\x01"), avc) is True
    assert disposable(nal(b"\x09", b"\x10") + nal(b"\x01"), avc) is True  # after a delimiter
    assert disposable(nal(b"\x21"), avc) is False  # nal_ref_idc 1
    assert disposable(nal(b"\x01"), avc._replace(pps=frozenset({0}))) is False  # unknown PPS
    assert disposable(nal(b"\x01")[:-1], avc) is False  # lengths do not add up
    assert not new_parameter_sets(nal(b"\x68", b"\xee\x3c\x80") + nal(b"\x01"), avc)  # the record's own PPS
    assert new_parameter_sets(nal(b"\x68", b"\xee\x3c\x81"), avc)
    hevc = avc._replace(hevc=True, pps=frozenset({0}))
    assert disposable(nal(b"\x00\x01", b"\xc0\x00"), hevc) is True  # TRAIL_N, first slice, pps 0
    assert disposable(nal(b"\x02\x01", b"\xc0\x00"), hevc) is False  # TRAIL_R
    assert disposable(nal(b"\x00\x02", b"\xc0\x00"), hevc) is False  # temporal sub-layer 1
    assert layout("vp9", b"\x01" * 30) is None and layout("h264", None) is None and layout("h264", b"\x00\x01") is None
