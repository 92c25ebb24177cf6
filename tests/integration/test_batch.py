"""`video-emotion batch` on a real local Ray (2 CPUs, started and stopped here) and with the local engine:
a dozen real and generated clips with a broken file and face-less clips; rows and full results equal
`analyze_video` on the same files and model; a second run skips everything; a model actor killed
mid-run is restarted and every row still comes; a model call waits for its actor's restart, and only the
job's deadline (or actors gone for good) makes a video `lost`."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import fer_bundle, tiny_params_dict, write_video
from video_emotion import cli
from video_emotion.inference.batch_store import read_results, read_summary

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]  # one Ray cluster at a time


@pytest.fixture(scope="module")
def setup(tmp_path_factory, fer_model, real_faces):
    """A bundle (FER-initialised, 8 frames per 1 s window), params, and a library of 12 files."""
    from video_emotion.data.synthetic import make_actors, write_clip

    tmp = tmp_path_factory.mktemp("batch")
    bundle = fer_bundle(fer_model, tmp / "bundle")
    params = tmp / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params_dict(tmp)))

    lib = tmp / "library"
    (lib / "real").mkdir(parents=True)
    (lib / "generated" / "nested").mkdir(parents=True)
    for name in ("single_face.mp4", "no_face.mp4"):
        shutil.copy(real_faces / name, lib / "real" / name)
    cap = cv2.VideoCapture(str(real_faces / "cry_then_laugh.mp4"))
    frames = [cap.read()[1] for _ in range(96)]  # its first 4 s: real crying
    cap.release()
    write_video(lib / "real" / "crying_4s.mp4", frames, fps=23.976)
    actors = make_actors(3, seed=4)
    for i, emotion in enumerate(("happy", "sad", "angry", "surprise", "fear", "neutral", "disgust")):
        folder = lib / "generated" / ("nested" if i % 2 else "")
        write_clip(folder / f"{emotion}.mp4", actors[i % 3], emotion, fps=12, duration_s=1.5, width=192, height=144,
                   rng=np.random.default_rng(i))
    write_video(lib / "generated" / "blank.mp4", [np.full((120, 160, 3), 60 + 4 * i, np.uint8) for i in range(18)])
    (lib / "broken.mp4").write_bytes(b"not a video at all " * 40)
    return {"tmp": tmp, "bundle": bundle, "params": params, "lib": lib}


@pytest.fixture(scope="module")
def reference(setup):
    """`analyze_video` on every readable file with the same model, as JSON would carry it."""
    from video_emotion.config import load_params
    from video_emotion.inference.analyze import analyze_video
    from video_emotion.inference.bundle import load_bundle

    bundle = load_bundle(str(setup["bundle"]), load_params(setup["params"]))
    return {str(p): json.loads(json.dumps(analyze_video(p, bundle, transcribe="off")))
            for p in sorted(setup["lib"].rglob("*.mp4")) if p.name != "broken.mp4"}


def _batch(setup, out: Path, *extra: str) -> int:
    return cli.main(["--params", str(setup["params"]), "batch", str(setup["lib"]), "--out", str(out),
                     "--model", str(setup["bundle"]), "--transcribe", "off", *extra])


def _check_rows_and_results(setup, out: Path, reference: dict) -> None:
    df = read_summary(out).set_index("path")
    assert len(df) == 12 and set(df.index) == set(reference) | {str(setup["lib"] / "broken.mp4")}
    broken = df.loc[str(setup["lib"] / "broken.mp4")]
    assert broken["status"] == "error" and "not a readable video" in broken["error"]
    assert (df.drop(str(setup["lib"] / "broken.mp4"))["status"] == "ok").all()
    for faceless in ("real/no_face.mp4", "generated/blank.mp4"):
        row = df.loc[str(setup["lib"] / faceless)]
        assert not row["faces_detected"] and pd.isna(row["dominant_emotion"])
    results = read_results(out)
    assert set(results) == set(reference)
    for path, ref in reference.items():
        assert results[path] == ref, path  # every number of the full result, not only the summary
        dominant = df.loc[path, "dominant_emotion"]
        assert (None if pd.isna(dominant) else dominant) == ref["summary"]["dominant_emotion"]
        assert df.loc[path, "sha256"] and df.loc[path, "duration_s"] == ref["duration_s"]
    assert df.loc[str(setup["lib"] / "real" / "single_face.mp4"), "model_version"] == "local"


def test_ray_batch_equals_analyze_and_resumes(ray_local, setup, reference, capsys):
    out = setup["tmp"] / "out-ray"
    assert _batch(setup, out, "--engine", "ray") == 0
    assert "12 videos analysed" in capsys.readouterr().out
    _check_rows_and_results(setup, out, reference)
    assert set(read_summary(out)["engine"]) == {"ray"}
    assert set(read_summary(out)["node"]) == {ray_local.get_runtime_context().get_node_id()}

    parts = sorted(p.name for p in (out / "summary").iterdir())
    assert _batch(setup, out, "--engine", "ray") == 0  # everything is done: nothing is analysed again
    text = capsys.readouterr().out
    assert "0 videos analysed" in text and "12 already done" in text
    assert sorted(p.name for p in (out / "summary").iterdir()) == parts


def test_local_engine_gives_the_same_rows_and_redoes_only_changed_files(setup, reference, tmp_path, capsys):
    out = tmp_path / "out-local"
    assert _batch(setup, out) == 0
    _check_rows_and_results(setup, out, reference)
    assert set(read_summary(out)["engine"]) == {"local"} and set(read_summary(out)["node"]) == {"local"}
    assert read_summary(out)["host"].notna().all()

    # One file's content changes: only that one is analysed again, and it keeps a single row.
    changed = setup["lib"] / "generated" / "happy.mp4"
    backup = changed.read_bytes()
    capsys.readouterr()
    try:
        shutil.copy(setup["lib"] / "generated" / "nested" / "sad.mp4", changed)
        assert _batch(setup, out) == 0
        assert "1 videos analysed" in capsys.readouterr().out
        df = read_summary(out)
        assert len(df) == 12 and (df["path"] == str(changed)).sum() == 1
        sad = reference[str(setup["lib"] / "generated" / "nested" / "sad.mp4")]
        assert read_results(out)[str(changed)]["summary"] == sad["summary"]
    finally:
        changed.write_bytes(backup)
    # Another model or other options in the same folder: refused, nothing mixed.
    assert _batch(setup, out, "--sample-fps", "4") == 2
    assert "other settings" in capsys.readouterr().err


def test_killed_model_actor_is_restarted_and_every_row_comes(ray_local, setup, reference, tmp_path):
    from video_emotion.config import load_params
    from video_emotion.data.library import list_videos
    from video_emotion.inference.batch import BatchOptions, run_batch
    from video_emotion.inference.batch_store import BatchStore
    from video_emotion.scale.batch import RayEngine, resolve_model

    # A list file of four videos (relative paths), to keep the run short.
    chosen = ["real/crying_4s.mp4", "real/single_face.mp4", "generated/happy.mp4", "generated/nested/sad.mp4"]
    listing = setup["lib"] / "some.txt"
    listing.write_text("".join(f"{c}\n" for c in chosen))
    opts = BatchOptions(transcribe="off")
    folder, info = resolve_model(str(setup["bundle"]), load_params(setup["params"]))
    # The bundle travels as on a cluster of several nodes: a restarted actor fetches it again.
    engine = RayEngine(folder, info, opts, workers=2, actors=1, ship_bundle=True)
    killed: list[int] = []

    def kill_the_model_actor(row):
        if not killed:
            pid, _ = ray_local.get(engine.servers[0].where.remote())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    out = tmp_path / "out-kill"
    try:
        counts = run_batch(list_videos(str(listing)), BatchStore(out, opts.job(info)), engine, progress=False,
                           on_row=kill_the_model_actor)
    finally:
        listing.unlink()
    assert killed and counts["ok"] == 4 and counts["lost"] == 0
    assert read_results(out) == {str(setup["lib"] / c): reference[str(setup["lib"] / c)] for c in chosen}


def test_a_model_call_waits_for_its_actor_and_is_lost_only_past_the_deadline(ray_local, setup, caplog):
    """A model call whose actor died, with Ray's own retries spent (none here), waits for the actor's restart and
    gets the answer a local bundle gives; a call whose actors are all gone for good, or one past the job's
    deadline, is `lost` at once (WorkerLost: the video's row says `lost`, never `error`)."""
    import dataclasses
    import logging
    import time

    from video_emotion.inference.batch import WorkerLost
    from video_emotion.inference.bundle import ModelBundle
    from video_emotion.scale.actors import NAMESPACE, ModelServer
    from video_emotion.scale.batch import RemoteBundle

    name = f"video-emotion-model-wait-test-{os.getpid()}"
    actor = ray_local.remote(ModelServer).options(name=name, namespace=NAMESPACE, num_cpus=0, max_restarts=-1,
                                                 max_task_retries=0).remote("", str(setup["bundle"]), {})
    remote = RemoteBundle(**ray_local.get(actor.spec.remote()), servers=[actor], names=[name])
    rng = np.random.default_rng(0)
    inputs = {k: rng.random((3, *shape)).astype(np.float32) for k, shape in remote.input_shapes.items()}
    local = ModelBundle.load(setup["bundle"]).predict_inputs(inputs)
    pid, _ = ray_local.get(actor.where.remote())
    os.kill(pid, signal.SIGKILL)
    with caplog.at_level(logging.WARNING, logger="video_emotion.scale.batch"):
        np.testing.assert_array_equal(remote.predict_inputs(inputs), local)
    assert "model actor 1 of 1 is down" in caplog.text  # the call did fail, and waited
    assert ray_local.get(actor.where.remote())[0] != pid  # answered by the restarted actor

    late = dataclasses.replace(remote, deadline=time.time() - 1)
    with pytest.raises(WorkerLost, match="before the job's deadline"):
        late.predict_inputs(inputs)
    ray_local.kill(actor, no_restart=True)
    t0 = time.perf_counter()
    with pytest.raises(WorkerLost, match="every model actor of the job is gone"):
        remote.predict_inputs(inputs)
    assert time.perf_counter() - t0 < 10


def test_videos_not_analysed_by_the_deadline_are_lost_and_say_why(ray_local, setup, tmp_path):
    """At the job's deadline the job ends: what was not analysed by then is `lost` (the next run redoes it)."""
    from video_emotion.config import load_params
    from video_emotion.data.library import list_videos
    from video_emotion.inference.batch import BatchOptions, run_batch
    from video_emotion.inference.batch_store import BatchStore
    from video_emotion.scale.batch import RayEngine, resolve_model

    opts = BatchOptions(transcribe="off")
    folder, info = resolve_model(str(setup["bundle"]), load_params(setup["params"]))
    engine = RayEngine(folder, info, opts, workers=2, actors=1, deadline_s=0.01)  # over before the first video
    sources = list_videos(str(setup["lib"] / "real"))
    counts = run_batch(sources, BatchStore(tmp_path / "out", opts.job(info)), engine, progress=False)
    assert counts["lost"] == len(sources) == 3 and counts["ok"] == 0
    df = read_summary(tmp_path / "out")
    assert (df["error"] == "lost: not started before the job's deadline (0.01 s)").all()


def test_ray_reads_audio_files_with_their_voice_as_analyze_does(ray_local, setup, fer_model, tmp_path):
    """A folder of calls (a WAV and an MP3 of English speech, a silent WAV) and a video through the Ray engine with a
    bundle carrying a voice model (the shipped one): each recording is read as sound, its row carries the
    voice's emotion, and its voice timeline is the one `analyze_video` gives here; silence is a row without one."""
    from tests.speech_media import POSITIVE, require_whisper, silence_wav, speak
    from tests.voice_media import audio_as, shipped_voice_model
    from video_emotion.config import load_params
    from video_emotion.data.library import list_videos
    from video_emotion.inference.analyze import analyze_video
    from video_emotion.inference.batch import BatchOptions, run_batch
    from video_emotion.inference.batch_store import BatchStore
    from video_emotion.inference.bundle import ModelBundle
    from video_emotion.scale.batch import RayEngine, resolve_model

    bundle = fer_bundle(fer_model, tmp_path / "voice-bundle")
    shipped_voice_model(bundle / "voice")
    lib = tmp_path / "calls"
    lib.mkdir()
    wav = speak(POSITIVE, lib / "call.wav", lead_s=1.0)
    audio_as(wav, ".mp3", lib)
    silence_wav(lib / "hold.wav", 2.0)
    shutil.copy(setup["lib"] / "real" / "single_face.mp4", lib / "face.mp4")
    whisper = str(require_whisper())
    opts = BatchOptions(transcribe="off", speech_model=whisper)
    folder, info = resolve_model(str(bundle), load_params(setup["params"]))
    engine = RayEngine(folder, info, opts, workers=2, actors=1)
    out = tmp_path / "out"
    counts = run_batch(list_videos(str(lib)), BatchStore(out, opts.job(info)), engine, progress=False)
    assert counts["ok"] == 4 and counts["error"] == counts["lost"] == 0
    df, results = read_summary(out).set_index("path"), read_results(out)
    local = ModelBundle.load(bundle)
    for name in ("call.wav", "call.mp3"):
        row, res = df.loc[str(lib / name)], results[str(lib / name)]
        ref = analyze_video(lib / name, local, transcribe="off", speech_model=whisper)
        assert res["media"] == "audio" and not row["faces_detected"] and res["timeline"] == []
        assert row["voice_emotion"] == res["voice"]["summary"]["dominant_emotion"] == \
            ref["voice"]["summary"]["dominant_emotion"] is not None
        got, want = res["voice"]["timeline"], ref["voice"]["timeline"]
        assert [(w["start_s"], w["speech"], w["emotion"]) for w in got] == \
            [(w["start_s"], w["speech"], w["emotion"]) for w in want]
        assert all(abs(g["confidence"] - w["confidence"]) < 0.01 for g, w in zip(got, want, strict=True) if w["speech"])
    hold = df.loc[str(lib / "hold.wav")]
    assert hold["status"] == "ok" and pd.isna(hold["voice_emotion"])
    assert results[str(lib / "hold.wav")]["voice"]["status"] == "no_speech"
    assert df.loc[str(lib / "face.mp4"), "faces_detected"]
