"""Engine and strategy parameters: validated at load time, and the DVC stages depend on every parameter
that changes what they make, but not on `preprocess.engine`, which only changes where clips are cropped."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from tests.conftest import ROOT
from video_emotion.config import PreprocessConfig, TrainConfig, load_params


def test_preprocess_stage_params_are_every_key_but_the_engine():
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["preprocess"]
    listed = {p.split(".", 1)[1] for p in stage["params"] if isinstance(p, str) and p.startswith("preprocess.")}
    fields = {f.name for f in dataclasses.fields(PreprocessConfig)}
    assert listed == fields - {"engine"}, "list a new preprocess key in dvc.yaml (or the cache goes stale)"


def test_engine_and_strategy_values_fail_loudly(tmp_path):
    (tmp_path / "params.yaml").write_text("preprocess:\n  engine: spark\n")
    with pytest.raises(ValueError, match="preprocess.engine"):
        load_params(tmp_path / "params.yaml")
    assert PreprocessConfig().engine == "local" and TrainConfig().strategy == "single"
    with pytest.raises(ValueError, match="train.strategy"):
        TrainConfig(strategy="horovod")
    with pytest.raises(ValueError, match="train.workers"):
        TrainConfig(strategy="multiworker", workers=1)
