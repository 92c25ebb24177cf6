"""What a batch job reads (folder, glob, list, CSV, URL) and how its output folder keeps rows: one row per
path, atomic numbered parts, resumable planning, refusal to mix another job's rows."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from video_emotion.data.library import LibraryError, Source, list_videos, open_source, sha256_source
from video_emotion.inference.batch import BatchOptions, Progress, plan, run_batch
from video_emotion.inference.batch_store import BatchStore, BatchStoreError, read_results, read_summary, summary_row


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    root = tmp_path / "lib"
    (root / "a" / "b").mkdir(parents=True)
    for rel in ("one.mp4", "a/two.MOV", "a/b/three.webm", "a/notes.txt"):
        (root / rel).write_bytes(rel.encode() * 10)
    return root


def test_folder_is_searched_recursively_for_videos_only(lib):
    got = [Path(s.path).relative_to(lib).as_posix() for s in list_videos(str(lib))]
    assert got == ["a/b/three.webm", "a/two.MOV", "one.mp4"]
    assert all(s.size > 0 and s.mtime > 0 for s in list_videos(str(lib)))


def test_glob_list_csv_and_file_url(lib, tmp_path):
    assert [Path(s.path).name for s in list_videos(f"{lib}/**/*.webm")] == ["three.webm"]
    listing = lib / "videos.txt"
    listing.write_text("# the clips\none.mp4\n\na/two.MOV  # relative to the list\none.mp4\nmissing.mp4\n")
    got = list_videos(str(listing))
    assert [Path(s.path).name for s in got] == ["one.mp4", "two.MOV", "missing.mp4"]  # duplicates once
    assert got[-1].size == -1  # listed but absent: it will be a row with its error, not a failed job
    table = tmp_path / "videos.csv"
    table.write_text(f"label,path\nhappy,lib/one.mp4\nsad,{lib / 'a' / 'b' / 'three.webm'}\n")
    assert [Path(s.path).name for s in list_videos(str(table))] == ["one.mp4", "three.webm"]
    assert [Path(s.path).name for s in list_videos(f"file://{lib}/a")] == ["three.webm", "two.MOV"]
    with pytest.raises(LibraryError, match="no such"):
        list_videos(str(tmp_path / "nowhere"))
    with pytest.raises(LibraryError, match="matches no file"):
        list_videos(f"{lib}/*.mkv")


def test_fsspec_url_is_copied_privately_under_its_own_name_and_hashed():
    import fsspec

    data = b"\x00video bytes\x01" * 1000
    with fsspec.open("memory://bucket/clips/x.mp4", "wb") as fh:
        fh.write(data)
    (src,) = list_videos("memory://bucket/clips/")
    assert src.path.startswith("memory://") and src.path.endswith("/bucket/clips/x.mp4") and src.size == len(data)
    with open_source(src) as (path, sha):
        assert path.name == "x.mp4" and path.read_bytes() == data and (path.stat().st_mode & 0o077) == 0
        assert sha == hashlib.sha256(data).hexdigest()
    assert not path.exists()


def _fake_result(emotion: str) -> dict:
    return {"duration_s": 2.0, "fps": 12.0, "frames_analysed": 24, "faces_detected": True,
            "model": {"name": "m", "version": "3"},
            "summary": {"dominant_emotion": emotion, "sentiment": "positive", "sentiment_score": 0.5,
                        "distribution": {"happy": 0.9, "sad": 0.1}, "tags": [emotion]}}


def test_store_parts_resume_and_job_guard(lib, tmp_path):
    sources = list_videos(str(lib))
    job = BatchOptions().job({"name": "m", "version": "3"})
    calls: list[str] = []

    def engine(todo):
        for s in todo:
            calls.append(s.path)
            if s.path.endswith(".webm"):
                row = summary_row(s.path, sha256_source(s), s.size, s.mtime, None, "not a readable video", "t", 0.1)
                yield row, None
            else:
                res = _fake_result("happy")
                yield summary_row(s.path, sha256_source(s), s.size, s.mtime, res, None, "t", 0.1), json.dumps(res)

    out = tmp_path / "out"
    counts = run_batch(sources, BatchStore(out, job, rows_per_part=2), engine, progress=False)
    assert counts["ok"] == 2 and counts["error"] == 1 and len(calls) == 3
    assert sorted(p.name for p in (out / "summary").iterdir()) == ["part-000001.parquet", "part-000002.parquet"]
    assert not [p for p in out.rglob(".*")]  # no temporary leftovers
    df = read_summary(out)
    assert len(df) == 3 and df.set_index("path").loc[sources[1].path, "distribution"] == {"happy": 0.9, "sad": 0.1}
    assert set(read_results(out)) == {sources[1].path, sources[2].path}

    calls.clear()
    assert run_batch(sources, BatchStore(out, job), engine, progress=False)["skipped"] == 3 and calls == []
    # --retry-errors redoes the error row only; a touched file with the same bytes is not redone.
    Path(sources[2].path).touch()
    todo, skipped = plan(list_videos(str(lib)), BatchStore(out, job), retry_errors=True)
    assert [s.path for s in todo] == [sources[0].path] and skipped == 2
    assert len(read_summary(out)) == 2  # its old row is gone until it is redone

    with pytest.raises(BatchStoreError, match="other settings"):
        BatchStore(out, {**job, "model_version": "4"})


def test_orphan_timelines_of_an_uncommitted_part_are_dropped(tmp_path):
    store = BatchStore(tmp_path / "o", BatchOptions().job({"name": "m", "version": "1"}))
    (store.timeline_dir / "part-000007.jsonl").write_text('{"path": "x"}\n')
    BatchStore(tmp_path / "o", BatchOptions().job({"name": "m", "version": "1"}))
    assert not (store.timeline_dir / "part-000007.jsonl").exists()


def test_rows_name_their_node_and_parts_from_before_the_column_still_read(tmp_path):
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from video_emotion.inference.batch_store import SCHEMA

    store = BatchStore(tmp_path / "o", BatchOptions().job({"name": "m", "version": "1"}))
    old = summary_row("a.mp4", None, 1, 1.0, None, "bad", "local", 0.1)
    del old["node"], old["host"]  # a part written before rows said where they ran
    schema = pa.schema([f for f in SCHEMA if f.name not in ("node", "host")])
    pq.write_table(pa.Table.from_pylist([old], schema=schema), store.summary_dir / "part-000001.parquet")
    store = BatchStore(tmp_path / "o", BatchOptions().job({"name": "m", "version": "1"}))
    store.add(summary_row("b.mp4", None, 1, 1.0, None, "bad", "ray", 0.1, node="abc123", host="h1"), None)
    store.flush()
    df = read_summary(tmp_path / "o").set_index("path")
    assert df.loc["b.mp4", "node"] == "abc123" and df.loc["b.mp4", "host"] == "h1"
    assert pd.isna(df.loc["a.mp4", "node"]) and set(store.index()) == {"a.mp4", "b.mp4"}


def test_progress_line_says_done_total_rate_and_eta(capsys):
    import sys

    p = Progress(10, 4, stream=sys.stdout)
    for _ in range(3):
        p.update({"status": "ok"})
    p.update({"status": "error"})
    p.close()
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("[batch] 8/10 videos (4 already done, 1 errors, 0 lost)")
    assert "videos/s, ETA" in line


def test_source_name_of_urls():
    assert Source("s3://b/x/clip.mp4").name == "clip.mp4" and Source("/a/b.mp4").name == "b.mp4"


def _with_part_before(out: Path, column: str) -> BatchStore:
    """A store whose folder holds a part written before `column` existed (old.mp4, read sad), opened again."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from video_emotion.inference.batch_store import SCHEMA

    store = BatchStore(out, BatchOptions().job({"name": "m", "version": "1"}))
    old = summary_row("old.mp4", None, 1, 1.0, _fake_result("sad"), None, "local", 0.1)
    del old[column]
    pq.write_table(pa.Table.from_pylist([{**old, "distribution": list(old["distribution"].items())}],
                                        schema=pa.schema([f for f in SCHEMA if f.name != column])),
                   store.summary_dir / "part-000001.parquet")
    return BatchStore(out, BatchOptions().job({"name": "m", "version": "1"}))


def test_a_row_says_whether_its_video_ended_early_and_older_parts_read_as_unknown(tmp_path):
    import pandas as pd

    store = _with_part_before(tmp_path / "o", "ends_early")
    cut = {**_fake_result("happy"), "ends_early": {"header_duration_s": 19.7, "decoded_duration_s": 3.3, "note": "."}}
    store.add(summary_row("cut.mp4", None, 1, 1.0, cut, None, "local", 0.1), None)
    store.add(summary_row("whole.mp4", None, 1, 1.0, {**_fake_result("happy"), "ends_early": None}, None, "local", 0.1),
              None)
    store.add(summary_row("bad.mp4", None, 1, 1.0, None, "bad", "local", 0.1), None)
    store.flush()
    df = read_summary(tmp_path / "o").set_index("path")
    assert df.loc["cut.mp4", "ends_early"] == True and df.loc["whole.mp4", "ends_early"] == False  # noqa: E712
    assert pd.isna(df.loc["old.mp4", "ends_early"]) and pd.isna(df.loc["bad.mp4", "ends_early"])


def test_a_folder_gives_its_audio_files_too(tmp_path):
    root = tmp_path / "calls"
    (root / "memos").mkdir(parents=True)
    for rel in ("call.MP3", "memos/memo.m4a", "memos/take.wav", "podcast.ogg", "song.flac", "cover.jpg", "x.txt"):
        (root / rel).write_bytes(b"sound" * 10)
    got = [Path(s.path).relative_to(root).as_posix() for s in list_videos(str(root))]
    assert got == ["call.MP3", "memos/memo.m4a", "memos/take.wav", "podcast.ogg", "song.flac"]
    (root / "empty").mkdir()
    with pytest.raises(LibraryError, match="no video or audio file"):
        list_videos(str(root / "empty"))


def test_a_row_carries_the_voices_emotion_and_older_parts_read_as_null(tmp_path):
    import pandas as pd


    heard = {**_fake_result("happy"), "voice": {"status": "read", "summary": {"dominant_emotion": "angry"}}}
    silent = {**_fake_result("happy"), "voice": {"status": "no_speech", "summary": {"dominant_emotion": None}}}
    store = _with_part_before(tmp_path / "o", "voice_emotion")
    for name, res in (("heard.wav", heard), ("silent.mp4", silent), ("face_only.mp4", _fake_result("sad"))):
        store.add(summary_row(name, None, 1, 1.0, res, None, "local", 0.1), None)
    store.add(summary_row("bad.mp3", None, 1, 1.0, None, "bad", "local", 0.1), None)
    store.flush()
    df = read_summary(tmp_path / "o").set_index("path")
    assert df.loc["heard.wav", "voice_emotion"] == "angry" and df.loc["heard.wav", "dominant_emotion"] == "happy"
    for name in ("old.mp4", "silent.mp4", "face_only.mp4", "bad.mp3"):
        assert pd.isna(df.loc[name, "voice_emotion"]), name
    assert set(store.index()) == {"old.mp4", "heard.wav", "silent.mp4", "face_only.mp4", "bad.mp3"}


def test_the_voice_option_is_part_of_the_job_but_folders_from_before_it_resume(tmp_path):
    model = {"name": "m", "version": "1"}
    on, off = BatchOptions().job(model), BatchOptions(voice="off").job(model)
    assert on["voice"] == "auto" and off["voice"] == "off"
    BatchStore(tmp_path / "new", on)
    with pytest.raises(BatchStoreError, match="voice: 'auto' there, 'off' now"):
        BatchStore(tmp_path / "new", off)
    before = tmp_path / "before"  # a folder whose job.json was written before the voice option existed
    before.mkdir()
    (before / "job.json").write_text(json.dumps({k: v for k, v in on.items() if k != "voice"}))
    BatchStore(before, on)
    with pytest.raises(BatchStoreError, match="model_version"):
        BatchStore(before, {**on, "model_version": "2"})
