import numpy as np
import pytest

from tests.conftest import PRETRAINED, require_assets
from video_emotion.config import PreprocessConfig
from video_emotion.features.faces import FacePath, clip_faces, faces_from_frames
from video_emotion.features.video import VideoError, iter_frames, probe, uniform_indices


def test_uniform_indices_cover_the_clip():
    idx = uniform_indices(100, 10)
    assert len(idx) == 10 and idx[0] >= 0 and idx[-1] <= 99
    assert np.all(np.diff(idx) > 0)
    assert list(uniform_indices(3, 6)) == [0, 0, 1, 1, 2, 2]  # short clips repeat frames
    assert len(uniform_indices(0, 5)) == 0


def test_iter_frames_yields_exactly_the_requested_frames(face_clip):
    info = probe(face_clip, count=True)
    assert info.n_frames == 24 and info.width == 192 and info.height == 144
    got = list(iter_frames(face_clip, [0, 5, 5, 23]))
    assert [i for i, _ in got] == [0, 5, 5, 23]
    assert got[0][1].shape == (144, 192, 3)
    # Asking past the end stops quietly with what exists.
    assert [i for i, _ in iter_frames(face_clip, [22, 40])] == [22]


def test_corrupt_and_missing_files_raise_video_error(tmp_path, face_clip):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(VideoError):
        probe(junk)
    with pytest.raises(VideoError, match="no such file"):
        probe(tmp_path / "missing.mp4")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(face_clip.read_bytes()[:2000])
    with pytest.raises(VideoError):
        probe(truncated)


def test_an_encrypted_file_is_refused_as_such_whatever_its_random_bytes_look_like(tmp_path):
    """FFmpeg takes some random byte strings for a raw H.263 stream and "decodes" a frame of noise from them
    (this made a test of the encrypted split fail one run in a few): the store's files are known by their magic."""
    from video_emotion.security import MAGIC

    rng = np.random.default_rng(0)
    for i in range(20):
        enc = tmp_path / f"clip{i}.mp4.enc"
        enc.write_bytes(MAGIC + rng.bytes(4096))
        with pytest.raises(VideoError, match="encrypted store file"):
            probe(enc)
        with pytest.raises(VideoError, match="encrypted store file"):
            list(iter_frames(enc, [0]))


def test_synthetic_face_is_found_and_cropped(face_clip):
    require_assets()
    cfg = PreprocessConfig(n_frames=8)  # the default face path (BlazeFace, its new-face gate)
    ff, info = clip_faces(face_clip, cfg, FacePath(cfg, PRETRAINED.parent))
    assert ff.crops.shape == (8, 112, 112) and ff.crops.dtype == np.uint8
    assert ff.face.mean() >= 0.75
    assert ff.detected.any()
    # Boxes are in frame coordinates and roughly central.
    x, y, w, h = ff.boxes[ff.detected][0]
    assert 0 <= x < info.width and 0 <= y < info.height and w > 30


def test_frames_without_a_face_are_flagged_not_invented(blank_clip):
    require_assets()
    cfg = PreprocessConfig(n_frames=6)
    ff, _ = clip_faces(blank_clip, cfg, FacePath(cfg, PRETRAINED.parent))
    assert not ff.face.any() and not ff.detected.any()
    assert ff.crops.shape == (6, 112, 112)  # a centre-crop fallback, flagged False


def test_gaps_between_detections_are_bridged_only_nearby():
    cfg = PreprocessConfig(n_frames=4)

    class Scripted:
        def __init__(self, hits):
            self.hits = iter(hits)

        def detect(self, gray):
            return [(10, 10, 40, 40)] if next(self.hits) else []

    frames = [(i, np.zeros((80, 80), np.uint8)) for i in range(12)]
    ff = faces_from_frames(frames, cfg, Scripted([1] + [0] * 11), max_gap=3)
    assert list(ff.face) == [True] * 4 + [False] * 8
    assert list(ff.detected) == [True] + [False] * 11
