"""Fixture corpora in the real RAVDESS, CREMA-D and own-data layouts: exact labels, actors,
modalities and audio, every mismatching file reported, and ingest writing the same manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from video_emotion.data import cremad, own, ravdess
from video_emotion.data.manifest import read_manifest
from video_emotion.data.synthetic import make_actors, synth_audio, write_clip, write_wav
from video_emotion.features.audio import has_audio, load_audio, mux


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """One real face clip, a WAV, and the clip with the WAV muxed in as an AAC track."""
    d = tmp_path_factory.mktemp("media")
    actor = make_actors(2, seed=3)[1]
    write_clip(d / "v.mp4", actor, "happy", fps=8, duration_s=1.0, width=160, height=120,
               rng=np.random.default_rng(0))
    write_wav(d / "a.wav", synth_audio(actor, "happy", 1.0, np.random.default_rng(1)))
    mux(d / "v.mp4", d / "a.wav", d / "av.mp4")
    return d


def _put(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dst)


@pytest.fixture
def ravdess_root(tmp_path, media):
    r = tmp_path / "RAVDESS"
    _put(media / "av.mp4", r / "Actor_01/01-01-03-01-01-01-01.mp4")   # audio-video, speech, happy
    _put(media / "v.mp4", r / "Actor_01/02-01-04-02-01-01-01.mp4")    # video-only, sad, strong
    _put(media / "a.wav", r / "Actor_01/03-01-04-02-01-01-01.wav")    # ...and its audio-only twin
    _put(media / "av.mp4", r / "Actor_02/01-02-02-01-02-02-02.mp4")   # song, calm
    _put(media / "av.mp4", r / "Actor_02/01-01-08-01-01-01-02.mp4")   # surprised
    _put(media / "av.mp4", r / "Actor_03/01-01-06-01-01-01-03.mp4")   # fearful
    _put(media / "av.mp4", r / "Actor_03/01-01-07-02-02-01-03.mp4")   # disgust
    _put(media / "av.mp4", r / "Actor_02/01-01-05-01-01-01-03.mp4")   # actor 03 in Actor_02: reject
    _put(media / "av.mp4", r / "Actor_03/01-01-09-01-01-01-03.mp4")   # emotion 09: reject
    _put(media / "a.wav", r / "Actor_03/03-01-06-02-01-01-03.wav")    # audio-only without video: reject
    _put(media / "av.mp4", r / "Actor_03/clip_final.mp4")             # bad name: reject
    (r / "Actor_03/notes.txt").write_text("not media")                # not media: reject
    (r / "Actor_04").mkdir()
    (r / "Actor_04/01-01-03-01-01-01-04.mp4").write_bytes(b"corrupt" * 100)  # unreadable: reject at ingest
    return r


def test_ravdess_labels_actors_modalities_and_rejections(ravdess_root):
    scan = ravdess.scan(ravdess_root)
    got = {Path(r["path"]).name: (r["label"], r["actor"], r["modality"], Path(r["audio_path"]).name if r["audio_path"] else None)
           for r in scan.records}
    assert got == {
        "01-01-03-01-01-01-01.mp4": ("happy", "ravdess-01", "audio-video", "01-01-03-01-01-01-01.mp4"),
        "02-01-04-02-01-01-01.mp4": ("sad", "ravdess-01", "video-only", "03-01-04-02-01-01-01.wav"),
        "01-02-02-01-02-02-02.mp4": ("neutral", "ravdess-02", "audio-video", "01-02-02-01-02-02-02.mp4"),
        "01-01-08-01-01-01-02.mp4": ("surprise", "ravdess-02", "audio-video", "01-01-08-01-01-01-02.mp4"),
        "01-01-06-01-01-01-03.mp4": ("fear", "ravdess-03", "audio-video", "01-01-06-01-01-01-03.mp4"),
        "01-01-07-02-02-01-03.mp4": ("disgust", "ravdess-03", "audio-video", "01-01-07-02-02-01-03.mp4"),
        "01-01-03-01-01-01-04.mp4": ("happy", "ravdess-04", "audio-video", "01-01-03-01-01-01-04.mp4"),
    }
    calm = next(r for r in scan.records if r["source_label"] == "calm")
    assert calm["vocal_channel"] == "song" and calm["gender"] == "female"
    rejected = {Path(p).name: why for p, why in scan.rejected}
    assert set(rejected) == {"01-01-05-01-01-01-03.mp4", "01-01-09-01-01-01-03.mp4", "03-01-06-02-01-01-03.wav",
                             "clip_final.mp4", "notes.txt"}
    assert "inside Actor_02" in rejected["01-01-05-01-01-01-03.mp4"]
    assert "emotion 09" in rejected["01-01-09-01-01-01-03.mp4"]
    assert "without a matching video" in rejected["03-01-06-02-01-01-03.wav"]
    dropped = ravdess.scan(ravdess_root, calm="drop")
    assert "01-02-02-01-02-02-02.mp4" not in {Path(r["path"]).name for r in dropped.records}
    assert any("calm clips dropped" in why for _, why in dropped.rejected)


def test_real_muxed_audio_is_seen_and_read(media):
    assert has_audio(media / "av.mp4") and not has_audio(media / "v.mp4")
    samples = load_audio(media / "av.mp4")
    assert 14000 < len(samples) < 18000 and np.abs(samples).max() > 0.05


def test_ingest_ravdess_writes_the_manifest_and_reports_everything(ravdess_root, tiny_params, monkeypatch):
    import dataclasses

    from video_emotion import security as secure_store
    from video_emotion.stages import ingest

    cfg = dataclasses.replace(tiny_params.ingest, source="ravdess", root=str(ravdess_root), val_actors=1, test_actors=1)
    ring = secure_store.load_keyring(None)
    summary = ingest.run(cfg, tiny_params.path("raw_dir"), tiny_params.path("manifest"), ["test"], ring)
    df = read_manifest(tiny_params.path("manifest"))
    assert len(df) == 6 and summary["rejected"] == 6  # 5 by name/layout + 1 unreadable video
    assert (df.groupby("actor")["split"].nunique() == 1).all() and set(df["split"]) == {"train", "val", "test"}
    assert df.set_index(df["path"].map(lambda p: Path(p).name.removesuffix(".enc")))["has_audio"].to_dict() == {
        "01-01-03-01-01-01-01.mp4": True, "02-01-04-02-01-01-01.mp4": True, "01-02-02-01-02-02-02.mp4": True,
        "01-01-08-01-01-01-02.mp4": True, "01-01-06-01-01-01-03.mp4": True, "01-01-07-02-02-01-03.mp4": True}
    test = df[df["split"] == "test"]
    assert test["encrypted"].all() and all(p.endswith(".enc") for p in test["path"])
    report = json.loads((tiny_params.path("raw_dir") / "ingest_report.json").read_text())
    reasons = {Path(x["path"]).name: x["reason"] for x in report["rejected_all"]}
    assert reasons["01-01-03-01-01-01-04.mp4"].startswith("unreadable video")


@pytest.fixture
def cremad_root(tmp_path, media):
    r = tmp_path / "CREMA-D"
    for stem in ("1001_DFA_ANG_XX", "1001_IEO_HAP_HI", "1002_TIE_SAD_LO", "1003_WSI_NEU_MD"):
        _put(media / "v.mp4", r / "VideoFlash" / f"{stem}.flv")
        _put(media / "a.wav", r / "AudioWAV" / f"{stem}.wav")
    _put(media / "v.mp4", r / "VideoFlash" / "1004_DFA_DIS_XX.flv")      # no audio file: video-only
    _put(media / "v.mp4", r / "VideoFlash" / "1005_XYZ_ANG_XX.flv")      # unknown sentence
    _put(media / "v.mp4", r / "VideoFlash" / "1005_DFA_CON_XX.flv")      # unknown emotion
    _put(media / "a.wav", r / "AudioWAV" / "1006_DFA_FEA_HI.wav")        # audio without video
    (r / "README.txt").write_text("CREMA-D")
    return r


def test_cremad_labels_actors_audio_and_rejections(cremad_root):
    scan = cremad.scan(cremad_root)
    got = {Path(r["path"]).stem: (r["label"], r["actor"], r["modality"], r["intensity"]) for r in scan.records}
    assert got == {
        "1001_DFA_ANG_XX": ("angry", "cremad-1001", "video+sidecar-audio", "unspecified"),
        "1001_IEO_HAP_HI": ("happy", "cremad-1001", "video+sidecar-audio", "high"),
        "1002_TIE_SAD_LO": ("sad", "cremad-1002", "video+sidecar-audio", "low"),
        "1003_WSI_NEU_MD": ("neutral", "cremad-1003", "video+sidecar-audio", "medium"),
        "1004_DFA_DIS_XX": ("disgust", "cremad-1004", "video-only", "unspecified"),
    }
    rejected = {Path(p).name: why for p, why in scan.rejected}
    assert set(rejected) == {"1005_XYZ_ANG_XX.flv", "1005_DFA_CON_XX.flv", "1006_DFA_FEA_HI.wav", "README.txt"}
    assert "sentence XYZ" in rejected["1005_XYZ_ANG_XX.flv"] and "emotion CON" in rejected["1005_DFA_CON_XX.flv"]


def test_own_csv_and_folders(tmp_path, media):
    d = tmp_path / "own"
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        _put(media / "v.mp4", d / "clips" / name)
    (d / "list.csv").write_text("path,label,actor,split,transcript\n"
                                "clips/a.mp4,Happiness,p1,train,hello\n"
                                "clips/b.mp4,sad,p2,test,\n"
                                "clips/c.mp4,bored,p3,,\n"
                                "clips/missing.mp4,sad,p3,,\n"
                                "clips/a.mp4,sad,p1,holdout,\n")
    scan = own.scan_csv(d / "list.csv")
    assert [(Path(r["path"]).name, r["label"], r["actor"], r["split"]) for r in scan.records] == [
        ("a.mp4", "happy", "p1", "train"), ("b.mp4", "sad", "p2", "test")]
    reasons = [why for _, why in scan.rejected]
    assert any("'bored'" in w for w in reasons) and any("not found" in w for w in reasons) and any("holdout" in w for w in reasons)
    (d / "bad.csv").write_text("file,emotion\nx,y\n")
    with pytest.raises(ValueError, match="path,label"):
        own.scan_csv(d / "bad.csv")
    f = tmp_path / "folders"
    _put(media / "v.mp4", f / "angry" / "actor7" / "x.mp4")
    _put(media / "v.mp4", f / "Sadness" / "y.mp4")
    _put(media / "v.mp4", f / "boredom" / "z.mp4")
    (f / "angry" / "notes.md").write_text("-")
    fs = own.scan_folders(f)
    assert sorted((r["label"], r["actor"]) for r in fs.records) == [("angry", "actor7"), ("sad", "clip:y")]
    assert {Path(p).name for p, _ in fs.rejected} == {"z.mp4", "notes.md"}
