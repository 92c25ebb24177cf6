import wave

import numpy as np

from video_emotion.data import synthetic
from video_emotion.io_utils import sha256_file
from video_emotion.labels import LABELS


def test_actors_are_distinct_and_deterministic():
    a, b = synthetic.make_actors(12, seed=5), synthetic.make_actors(12, seed=5)
    assert a == b
    assert len({x.actor_id for x in a}) == 12
    assert len({(x.skin, x.hair, x.hair_style, round(x.eye_spacing, 3)) for x in a}) == 12
    assert synthetic.make_actors(12, seed=6) != a


def test_intensity_has_onset_apex_offset():
    curve = synthetic.intensity_curve(24, np.random.default_rng(0))
    peak = int(np.argmax(curve))
    assert curve[0] < 0.2 and curve.max() > 0.7
    assert 0 < peak < 23 and curve[-1] < curve.max()


def test_generate_is_deterministic_real_video_and_audio(tmp_path):
    kw = dict(n_actors=2, clips_per_label=1, fps=8, duration_s=1.0, width=128, height=96, audio=True, seed=4,
              progress=False)
    recs = synthetic.generate(tmp_path / "a", **kw)
    recs2 = synthetic.generate(tmp_path / "b", **kw)
    assert len(recs) == 2 * len(LABELS)
    assert {r["label"] for r in recs} == set(LABELS)
    for r, r2 in zip(recs, recs2, strict=False):
        assert sha256_file(tmp_path / "a" / r["path"]) == sha256_file(tmp_path / "b" / r2["path"])
        with wave.open(str(tmp_path / "a" / r["audio_path"])) as wf:
            assert wf.getframerate() == 16000 and wf.getnframes() == 16000


def test_prosody_depends_on_emotion():
    actor = synthetic.make_actors(1, seed=0)[0]
    rms = {lab: float(np.sqrt(np.mean(synthetic.synth_audio(actor, lab, 2.0, np.random.default_rng(1)) ** 2)))
           for lab in ("angry", "sad")}
    assert rms["angry"] > 2 * rms["sad"]
