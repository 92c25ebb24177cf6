"""`preprocess.engine: ray` on a real local Ray (2 CPUs, started and stopped here) writes the same arrays,
in the same order, as the local engine, for every split (the encrypted test split included)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import yaml

from tests.conftest import tiny_params_dict

pytestmark = pytest.mark.slow


def test_ray_engine_writes_the_same_arrays_in_the_same_order(ray_local, tmp_path):
    from video_emotion import security
    from video_emotion.config import load_params
    from video_emotion.data.processed import load_split
    from video_emotion.stages import ingest, preprocess

    d = tiny_params_dict(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(d))
    assert ingest.main(["--params", str(tmp_path / "params.yaml")]) == 0
    params = load_params(tmp_path / "params.yaml")
    ring = security.load_keyring(params.secure.key_file)
    manifest = params.path("manifest")
    local = preprocess.run(params.preprocess, manifest, tmp_path / "local", ["test"], ring)
    on_ray = preprocess.run(dataclasses.replace(params.preprocess, engine="ray"), manifest, tmp_path / "ray",
                            ["test"], ring)
    assert local["splits"] == on_ray["splits"]
    for split in ("train", "val", "test"):
        a, b = load_split(tmp_path / "local", split, ring), load_split(tmp_path / "ray", split, ring)
        assert sorted(a) == sorted(b)
        for key in a:
            assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), (split, key)
        assert a["face"].any()  # real crops were compared, not two empty arrays
    for name in ("preprocessing.json", "summary.json"):
        assert json.loads((tmp_path / "local" / name).read_text()) == json.loads((tmp_path / "ray" / name).read_text())
    assert "engine" not in json.loads((tmp_path / "ray" / "preprocessing.json").read_text())
