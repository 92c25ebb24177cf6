import json
import shutil

import pytest
import yaml

from video_emotion.data.manifest import COLUMNS, actor_disjoint_splits, read_manifest
from video_emotion.stages import ingest, validate
from video_emotion.stages.runner import StageError


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The tiny corpus, ingested once for the module (ingest is seeded: the same clips every time)."""
    from tests.conftest import tiny_params_dict
    from video_emotion.config import load_params

    tmp = tmp_path_factory.mktemp("corpus")
    (tmp / "params.yaml").write_text(yaml.safe_dump(tiny_params_dict(tmp)))
    params = load_params(tmp / "params.yaml")
    summary = ingest.run(params.ingest, params.path("raw_dir"), params.path("manifest"), progress=False)
    return summary, params.path("manifest").parent


@pytest.fixture
def ingested(corpus, tiny_params):
    """A copy of the ingested corpus (clips and manifest) where `tiny_params` expects it: a test may change it."""
    summary, data = corpus
    shutil.copytree(data, tiny_params.path("manifest").parent)
    return summary, read_manifest(tiny_params.path("manifest"))


def test_ingest_writes_an_actor_disjoint_manifest(ingested, tiny_params):
    summary, df = ingested
    assert list(df.columns) == COLUMNS
    assert len(df) == 5 * 7 and summary["clips"] == 35 and summary["rejected"] == 0
    assert (df.groupby("actor")["split"].nunique() == 1).all()
    assert set(df["split"]) == {"train", "val", "test"}
    assert df["sha256"].is_unique
    assert (df["n_frames"] == 8).all() and (df["width"] == 160).all() and df["has_audio"].all()
    for rel in df["path"]:
        assert (tiny_params.path("manifest").parent / rel).is_file()


def test_ingest_failure_leaves_no_partial_outputs(tiny_params, monkeypatch):
    from video_emotion.data import synthetic

    real = synthetic.write_clip
    calls = {"n": 0}

    def boom(*a, **k):  # the disk fills up half-way through the corpus
        calls["n"] += 1
        if calls["n"] == 10:
            raise OSError("disk full")
        return real(*a, **k)

    monkeypatch.setattr(synthetic, "write_clip", boom)
    with pytest.raises(OSError):
        ingest.run(tiny_params.ingest, tiny_params.path("raw_dir"), tiny_params.path("manifest"), progress=False)
    assert not tiny_params.path("raw_dir").exists() and not tiny_params.path("manifest").exists()
    assert not any(p.name.startswith(".raw") for p in tiny_params.path("raw_dir").parent.iterdir())


def test_encrypted_split_is_never_plaintext(tiny_params):
    from video_emotion import security as ss
    from video_emotion.features.video import VideoError, probe

    ring = ss.load_keyring(None)
    ingest.run(tiny_params.ingest, tiny_params.path("raw_dir"), tiny_params.path("manifest"), ["test"], ring,
               progress=False)
    df = read_manifest(tiny_params.path("manifest"))
    test = df[df["split"] == "test"]
    assert len(test) == 7 and test["encrypted"].all() and not df.loc[df["split"] != "test", "encrypted"].any()
    root = tiny_params.path("manifest").parent
    for rel, audio, sha in zip(test["path"], test["audio_path"], test["sha256"], strict=False):
        assert rel.endswith(".enc") and audio.endswith(".wav.enc")
        assert not (root / rel[:-4]).exists()
        with pytest.raises(VideoError):
            probe(root / rel)  # ciphertext is not a video
        with ss.plaintext_path(root / rel, ring, rel[:-4], ".mp4") as clear:
            from video_emotion.io_utils import sha256_file

            assert sha256_file(clear) == sha and probe(clear).n_frames == 8


def test_splits_need_enough_actors():
    with pytest.raises(ValueError, match="cannot fill"):
        actor_disjoint_splits(["a", "b"], 1, 1, seed=0)


def test_validate_passes_on_good_data(ingested, tiny_params, tmp_path):
    out = validate.run(tiny_params.validate, tiny_params.path("manifest"), tmp_path / "report")
    assert out["success"] and out["failed"] == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["success"] and (tmp_path / "report" / "report.html").is_file()


def _broken(tiny_params, tmp_path, mutate):
    df = read_manifest(tiny_params.path("manifest"))
    mutate(df)
    path = tmp_path / "broken.csv"
    df.to_csv(path, index=False)
    with pytest.raises(StageError, match="expectations failed") as err:
        validate.run(tiny_params.validate, path, tmp_path / "bad-report")
    report = json.loads((tmp_path / "bad-report" / "report.json").read_text())
    return str(err.value), [r for r in report["results"] if not r["success"]]


def test_wrong_label_is_named(ingested, tiny_params, tmp_path):
    def mutate(df):
        df.loc[3, "label"] = "joy"

    _, failed = _broken(tiny_params, tmp_path, mutate)
    assert [(f["expectation"], f["column"]) for f in failed] == [("expect_column_values_to_be_in_set", "label")]
    assert failed[0]["unexpected_examples"] == ["joy"]


def test_leaked_actor_is_named(ingested, tiny_params, tmp_path):
    def mutate(df):
        test_actor = df.loc[df["split"] == "test", "actor"].iloc[0]
        df.loc[df.index[df["split"] == "train"][0], "actor"] = test_actor

    _, failed = _broken(tiny_params, tmp_path, mutate)
    assert any(f["column"] == "n_splits" and f["check"] == "actor-disjoint splits" for f in failed)


def test_duplicated_clip_is_named(ingested, tiny_params, tmp_path):
    def mutate(df):
        df.loc[1, "sha256"] = df.loc[0, "sha256"]

    _, failed = _broken(tiny_params, tmp_path, mutate)
    assert [(f["expectation"], f["column"]) for f in failed] == [("expect_column_values_to_be_unique", "sha256")]
    assert len(failed[0]["rows"]) == 2


def test_missing_column_and_cli_exit_code(ingested, tiny_params, tmp_path, tiny_params_file, capsys):
    df = read_manifest(tiny_params.path("manifest")).drop(columns=["sha256"])
    bad = tmp_path / "nosha.csv"
    df.to_csv(bad, index=False)
    rc = validate.main(["--params", str(tiny_params_file), "--manifest", str(bad), "--report", str(tmp_path / "r")])
    assert rc == 1
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    failed = [r for r in report["results"] if not r["success"]]
    schema = [f for f in failed if f["expectation"] == "expect_table_columns_to_match_set"]
    assert schema and schema[0]["unexpected_examples"] == ["sha256"]


def test_unreadable_manifest_is_a_clear_error(tmp_path, tiny_params):
    path = tmp_path / "m.csv"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError):
        validate.run(tiny_params.validate, path, tmp_path / "r")
