"""Fixture corpora in the real RAVDESS, CREMA-D and own-data layouts: exact labels, actors,
modalities and audio, every mismatching file reported, and ingest writing the same manifest."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
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
    got = {Path(r["path"]).name: (r["label"], r["actor"], r["modality"],
                                  Path(r["audio_path"]).name if r["audio_path"] else None)
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
    assert all(any(part in w for w in reasons) for part in ("'bored'", "not found", "holdout"))
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


@pytest.fixture
def ravdess_twins(tmp_path, media):
    """Recordings in several modalities: RAVDESS ships each performance as 01 (audio-video), 02
    (video-only) and 03 (audio-only) files with the same identifiers."""
    r = tmp_path / "RAVDESS"
    for actor, emo in (("01", "03"), ("02", "04"), ("03", "05")):
        ids = f"01-{emo}-01-01-01-{actor}"
        _put(media / "av.mp4", r / f"Actor_{actor}/01-{ids}.mp4")   # audio-video
        _put(media / "v.mp4", r / f"Actor_{actor}/02-{ids}.mp4")    # the same recording, video only
        _put(media / "a.wav", r / f"Actor_{actor}/03-{ids}.wav")    # ...and its sound only
    _put(media / "av.mp4", r / "Actor_01/01-01-06-01-01-01-01.mp4")  # audio-video alone
    _put(media / "v.mp4", r / "Actor_02/02-01-07-01-01-01-02.mp4")   # video-only, with its audio twin
    _put(media / "a.wav", r / "Actor_02/03-01-07-01-01-01-02.wav")
    _put(media / "v.mp4", r / "Actor_03/02-01-08-01-01-01-03.mp4")   # video-only, no audio twin
    return r


def test_ravdess_gives_one_row_per_recording_and_reports_the_copies(ravdess_twins, tiny_params):
    import dataclasses

    from video_emotion import security as secure_store
    from video_emotion.stages import ingest

    cfg = dataclasses.replace(tiny_params.ingest, source="ravdess", root=str(ravdess_twins), val_actors=1,
                              test_actors=1)
    summary = ingest.run(cfg, tiny_params.path("raw_dir"), tiny_params.path("manifest"), ["test"],
                         secure_store.load_keyring(None))
    df = read_manifest(tiny_params.path("manifest"))
    names = sorted(Path(p).name.removesuffix(".enc") for p in df["path"])
    assert names == ["01-01-03-01-01-01-01.mp4", "01-01-04-01-01-01-02.mp4", "01-01-05-01-01-01-03.mp4",
                     "01-01-06-01-01-01-01.mp4", "02-01-07-01-01-01-02.mp4", "02-01-08-01-01-01-03.mp4"]
    assert len(df) == len({tuple(Path(p).name.split("-")[1:]) for p in df["path"]})  # one row per recording
    audio = {Path(p).name.removesuffix(".enc"): (h, Path(a).name.removesuffix(".enc") if a else "")
             for p, h, a in zip(df["path"], df["has_audio"], df["audio_path"], strict=False)}
    assert audio["02-01-07-01-01-01-02.mp4"] == (True, "03-01-07-01-01-01-02.wav")
    assert audio["02-01-08-01-01-01-03.mp4"] == (False, "")
    assert audio["01-01-03-01-01-01-01.mp4"] == (True, "01-01-03-01-01-01-01.mp4")
    report = json.loads((tiny_params.path("raw_dir") / "ingest_report.json").read_text())
    copies = {Path(d["path"]).name: Path(d["same_recording_as"]).name for d in report["duplicates_all"]}
    assert copies == {f"{m}-01-{e}-01-01-01-{a}.{x}": f"01-01-{e}-01-01-01-{a}.mp4"
                      for a, e in (("01", "03"), ("02", "04"), ("03", "05")) for m, x in (("02", "mp4"), ("03", "wav"))}
    assert report["duplicates"] == summary["duplicates"] == 6 and report["rejected"] == 0


@pytest.fixture
def own_corpus(tmp_path):
    """Three different real clips (distinct checksums), two with their own AAC track, in a corpora folder."""
    corpora = tmp_path / "corpora"
    d = corpora / "own"
    (d / "clips").mkdir(parents=True)
    for i, (name, label, sound) in enumerate((("a", "happy", True), ("b", "sad", False), ("c", "angry", True))):
        actor = make_actors(3, seed=6)[i]
        silent = d / "clips" / f"{name}_silent.mp4"
        write_clip(silent, actor, label, fps=8, duration_s=1.0, width=160, height=120, rng=np.random.default_rng(i))
        if sound:
            write_wav(d / f"{name}.wav", synth_audio(actor, label, 1.0, np.random.default_rng(10 + i)))
            mux(silent, d / f"{name}.wav", d / "clips" / f"{name}.mp4")
            silent.unlink()
            (d / f"{name}.wav").unlink()
        else:
            silent.rename(d / "clips" / f"{name}.mp4")
    return corpora


SAID = {"a": "I love this, really \"good\" news!", "c": "我很生气，真的"}


def test_own_csv_uses_the_clips_own_audio_and_keeps_the_transcript(own_corpus, tiny_params, tmp_path):
    import dataclasses

    from video_emotion import security as secure_store
    from video_emotion.data.audit import encrypted_files
    from video_emotion.data.manifest import transcript_of
    from video_emotion.stages import ingest, validate

    listing = own_corpus / "own" / "list.csv"
    df_in = pd.DataFrame({"path": ["clips/a.mp4", "clips/b.mp4", "clips/c.mp4"], "label": ["happy", "sad", "anger"],
                          "actor": ["p1", "p2", "p3"], "split": ["train", "val", "test"],
                          "transcript": [SAID["a"], "", SAID["c"]]})
    df_in.to_csv(listing, index=False)
    cfg = dataclasses.replace(tiny_params.ingest, source="csv", root=str(listing))
    ring = secure_store.load_keyring(None)
    ingest.run(cfg, tiny_params.path("raw_dir"), tiny_params.path("manifest"), ["test"], ring, corpora=own_corpus)
    df = read_manifest(tiny_params.path("manifest")).set_index("actor")
    assert df["has_audio"].to_dict() == {"p1": True, "p2": False, "p3": True}
    assert df.loc["p1", "audio_path"] == df.loc["p1", "path"] and df.loc["p2", "audio_path"] == ""
    assert df.loc["p3", "audio_path"] == df.loc["p3", "path"] and df.loc["p3", "path"].endswith(".enc")
    manifest = tiny_params.path("manifest")
    assert df.loc["p1", "transcript"] == SAID["a"] and df.loc["p2", "transcript"] == ""
    # The test split's words are ciphertext like its faces: the manifest points at them, the key reads them.
    assert df.loc["p3", "transcript"].endswith(".transcript.txt.enc")
    assert transcript_of(manifest, df.loc["p3"], ring) == SAID["c"]
    assert transcript_of(manifest, df.loc["p1"]) == SAID["a"]
    for f in [manifest, *tiny_params.path("raw_dir").rglob("*")]:
        assert not f.is_file() or SAID["c"].encode() not in f.read_bytes(), f
    assert any(name.endswith(".transcript.txt") for _, name in encrypted_files(manifest, tmp_path / "none"))
    # Every other expectation holds with the new column (three clips cannot fill 7 labels x 3 splits).
    checks = dataclasses.replace(tiny_params.validate, min_clips_per_label_split=0)
    assert validate.run(checks, manifest, tmp_path / "report")["success"]


def test_a_manifest_without_the_transcript_column_still_reads(tiny_params, tmp_path):
    from video_emotion.data.manifest import COLUMNS

    old = tmp_path / "old.csv"
    pd.DataFrame([{c: "x" for c in COLUMNS if c != "transcript"}]).to_csv(old, index=False)
    assert read_manifest(old)["transcript"].tolist() == [""]


def test_folders_adapter_takes_the_clips_own_audio(own_corpus):
    f = own_corpus / "folders"
    _put(own_corpus / "own" / "clips" / "a.mp4", f / "happy" / "a.mp4")
    (rec,) = own.scan_folders(f).records
    assert rec["audio_path"] == rec["path"]


def test_a_corpus_outside_the_watched_folder_is_refused(own_corpus, tiny_params, tmp_path):
    import dataclasses

    from video_emotion.data.corpus import CorpusError
    from video_emotion.stages import ingest

    outside = tmp_path / "elsewhere"
    shutil.copytree(own_corpus / "own", outside)
    cfg = dataclasses.replace(tiny_params.ingest, source="folders", root=str(outside))
    with pytest.raises(CorpusError, match="not inside paths.corpora"):
        ingest.run(cfg, tiny_params.path("raw_dir"), tiny_params.path("manifest"), [], None, corpora=own_corpus)
    assert not tiny_params.path("manifest").exists()
    listing = own_corpus / "own" / "list.csv"  # a listing inside that names a clip outside: reported, not used
    listing.write_text(f"path,label,actor\nclips/a.mp4,happy,p1\nclips/b.mp4,sad,p2\nclips/c.mp4,angry,p3\n"
                       f"{outside / 'clips' / 'a.mp4'},happy,p4\n")
    cfg = dataclasses.replace(tiny_params.ingest, source="csv", root=str(listing), val_actors=1, test_actors=1)
    summary = ingest.run(cfg, tiny_params.path("raw_dir"), tiny_params.path("manifest"), [], None, corpora=own_corpus)
    assert summary["clips"] == 3 and "outside paths.corpora" in summary["rejected_examples"][0]


def test_dvc_sees_a_clip_added_to_the_corpus(tmp_path):
    """The project's own `ingest` stage and params in a fresh git + DVC repository: after `dvc commit`
    it is up to date; one more clip in the corpora folder and `dvc status` reports `ingest` changed."""
    import subprocess
    import sys

    import yaml

    from tests.conftest import ROOT

    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "params.yaml", repo / "params.yaml")  # the synthetic default: root ""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"ingest": stages["ingest"]}}))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["ingest"]["root"] == "" and params["ingest"]["source"] == "synthetic"
    corpora = repo / params["paths"]["corpora"]
    shutil.copytree(ROOT / "data" / "corpora", corpora)
    (repo / params["paths"]["raw_dir"]).mkdir(parents=True)
    (repo / params["paths"]["raw_dir"] / "clip.mp4").write_bytes(b"stand-in output")
    (repo / params["paths"]["manifest"]).write_text("path,label\n")
    dvc = [str(Path(sys.executable).parent / "dvc")]
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}

    def run(*args: str) -> str:
        res = subprocess.run(args, cwd=repo, capture_output=True, text=True, timeout=120, env=env)
        assert res.returncode == 0, res.stdout + res.stderr
        return res.stdout

    run("git", "init", "-q")
    run(*dvc, "init", "-q")
    run(*dvc, "commit", "-f", "-q", "ingest")
    assert "up to date" in run(*dvc, "status", "ingest")
    _put(ROOT / "data" / "corpora" / "README.md", corpora / "own" / "happy" / "new_clip.mp4")
    status = run(*dvc, "status", "ingest")
    assert "ingest:" in status and "changed deps" in status and params["paths"]["corpora"] in status


def test_an_encrypted_clip_from_outside_the_csv_folder_stays_inside_the_raw_folder(own_corpus, tiny_params):
    """A CSV deep in the corpora folder may name a clip two folders up: its encrypted copy must not be
    written next to the raw folder (a `..` path) but inside it."""
    import dataclasses

    from video_emotion import security as secure_store
    from video_emotion.stages import ingest

    listing = own_corpus / "lists" / "deep" / "list.csv"
    listing.parent.mkdir(parents=True)
    listing.write_text("path,label,actor,split\n../../own/clips/a.mp4,happy,p1,test\n"
                       "../../own/clips/b.mp4,sad,p2,train\n")
    cfg = dataclasses.replace(tiny_params.ingest, source="csv", root=str(listing))
    raw = tiny_params.path("raw_dir")
    ingest.run(cfg, raw, tiny_params.path("manifest"), ["test"], secure_store.load_keyring(None), corpora=own_corpus)
    (enc,) = [p for p in raw.parent.rglob("*.enc")]
    assert enc.is_relative_to(raw) and enc.name == "a.mp4.enc"
    df = read_manifest(tiny_params.path("manifest"))
    assert (tiny_params.path("manifest").parent / df.loc[df["split"] == "test", "path"].item()).resolve() == enc
