from pathlib import Path

import pytest

from video_emotion.config import load_params


def test_repository_params_load_and_resolve_paths():
    root = Path(__file__).resolve().parents[2]
    params = load_params(root / "params.yaml")
    assert params.preprocess.n_frames > 0
    assert params.path("manifest") == (root / "data" / "manifest.csv").resolve()
    flat = params.to_flat_dict()
    assert flat["train.epochs"] == params.train.epochs and "root" not in flat


def test_mistyped_key_fails_loudly(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("train:\n  epoch: 3\n")
    with pytest.raises(ValueError, match="unknown key.*epoch"):
        load_params(p)


def test_wrong_type_and_bad_choice_fail(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("train:\n  epochs: three\n")
    with pytest.raises(ValueError, match="train.epochs must be int"):
        load_params(p)
    p.write_text("model:\n  head: transformer\n")
    with pytest.raises(ValueError, match="model.head"):
        load_params(p)


def test_overrides_apply_like_dvc_set(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("train:\n  epochs: 15\n")
    params = load_params(p, {"train.epochs": 3, "model.bidirectional": False})
    assert params.train.epochs == 3 and params.model.bidirectional is False
    assert params.train.learning_rate == 0.003  # an int-valued float param would also be coerced
