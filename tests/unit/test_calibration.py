"""Calibration: ECE and the temperature on constructed data with known answers; the temperature travels with
the bundle and is applied on the exported (LiteRT) analysis path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from video_emotion.config import ModelConfig
from video_emotion.modeling.calibration import apply_temperature, ece, fit_temperature, nll, reliability


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def confident(conf: float, n: int, n_right: int, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """n rows whose top class (0) has probability `conf`; the first n_right are labelled 0, the rest 1."""
    p = np.full((n, k), (1 - conf) / (k - 1))
    p[:, 0] = conf
    return p, np.array([0] * n_right + [1] * (n - n_right))


def test_ece_is_zero_when_confidence_equals_accuracy_and_the_gap_otherwise():
    p, y = confident(0.8, 10, 8)
    assert ece(p, y) == pytest.approx(0.0, abs=1e-12)
    p, y = confident(0.9, 10, 5)
    assert ece(p, y) == pytest.approx(0.4)
    # two bins, each off by its own gap, weighted by its share: 0.25 * |1.0 - 0.55| + 0.75 * |0.0 - 0.95|
    p1, y1 = confident(0.55, 4, 4)
    p2, y2 = confident(0.95, 12, 0)
    assert ece(np.vstack([p1, p2]), np.concatenate([y1, y2])) == pytest.approx(0.25 * 0.45 + 0.75 * 0.95)
    r = reliability(np.vstack([p1, p2]), np.concatenate([y1, y2]), bins=10)
    assert r["count"].tolist() == [0, 0, 0, 0, 0, 4, 0, 0, 0, 12]
    assert r["accuracy"][5] == 1.0 and r["accuracy"][9] == 0.0 and np.isnan(r["accuracy"][0])


def test_temperature_is_logit_scaling_and_never_changes_the_top_class():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (50, 7))
    p = softmax(z)
    np.testing.assert_allclose(apply_temperature(p, 2.5), softmax(z / 2.5), atol=1e-9)
    np.testing.assert_allclose(apply_temperature(p, 1.0), p)
    assert (apply_temperature(p, 4.0).argmax(1) == p.argmax(1)).all()
    assert (apply_temperature(p, 4.0).max(1) < p.max(1) + 1e-12).all()  # T > 1 only ever softens
    np.testing.assert_allclose(apply_temperature(p, 1e4), np.full_like(p, 1 / 7), atol=1e-3)
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(p, 0.0)


@pytest.mark.parametrize("true_t", [0.5, 2.5])
def test_fitted_temperature_recovers_the_one_that_made_the_labels(true_t):
    """Labels drawn from softmax(z / T*) while the network says softmax(z): the NLL fit finds T* (over- and
    under-confident networks alike), and calibrating lowers both NLL and ECE."""
    rng = np.random.default_rng(1)
    z = rng.normal(0, 3, (20000, 7))
    truth = softmax(z / true_t)
    y = (truth.cumsum(1) > rng.random((len(z), 1))).argmax(1)
    p = softmax(z)
    t = fit_temperature(p, y)
    assert t == pytest.approx(true_t, rel=0.05)
    calibrated = apply_temperature(p, t)
    assert nll(calibrated, y) < nll(p, y)
    assert ece(calibrated, y) < 0.02 < ece(p, y)


def test_model_config_rejects_a_non_positive_temperature():
    assert ModelConfig(temperature=2.0).temperature == 2.0
    with pytest.raises(ValueError, match="temperature"):
        ModelConfig(temperature=0)


@pytest.fixture(scope="module")
def raw_bundle(tmp_path_factory):
    from tests.unit.test_export import make_bundle

    return make_bundle(tmp_path_factory.mktemp("calibration") / "raw")  # no design settings: model.tflite


def with_temperature(raw, folder, t: float):
    shutil.copytree(raw, folder)
    settings = json.loads((folder / "preprocessing.json").read_text())
    settings["model"]["temperature"] = t
    (folder / "preprocessing.json").write_text(json.dumps(settings))
    return folder


def test_the_temperature_travels_with_the_bundle_and_every_runtime_applies_it(raw_bundle, tmp_path):
    from tests.unit.test_export import inputs
    from video_emotion.inference.bundle import ModelBundle

    hot = with_temperature(raw_bundle, tmp_path / "calibrated", 3.0)
    x = inputs(5)
    raw = ModelBundle.load(raw_bundle)
    assert raw.runtime == "litert" and raw.temperature == 1.0  # a bundle without the setting reads as before
    expected = apply_temperature(raw.predict_inputs(x), 3.0)
    for runtime in ("litert", "keras"):
        b = ModelBundle.load(hot, runtime=runtime)
        assert b.temperature == 3.0
        got = b.predict_inputs(x)
        np.testing.assert_allclose(got, expected, atol=1e-5)
        np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)


def test_the_exported_path_applies_the_temperature_without_tensorflow(raw_bundle, tmp_path):
    hot = with_temperature(raw_bundle, tmp_path / "calibrated", 3.0)
    code = (
        "import sys, json, numpy as np\n"
        "from video_emotion.inference.bundle import ModelBundle\n"
        "from tests.unit.test_export import inputs\n"
        f"raw, hot = ModelBundle.load({str(raw_bundle)!r}), ModelBundle.load({str(hot)!r})\n"
        "x = inputs(3)\n"
        "p, q = raw.predict_inputs(x), hot.predict_inputs(x)\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras'})\n"
        "print(json.dumps({'runtime': hot.runtime, 'p': p.tolist(), 'q': q.tolist(), 'heavy': heavy}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
                         env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["runtime"] == "litert" and res["heavy"] == []
    p, q = np.array(res["p"]), np.array(res["q"])
    assert np.abs(q - p).max() > 0.01  # the temperature visibly moved the probabilities
    np.testing.assert_allclose(q, apply_temperature(p, 3.0), atol=1e-5)
    assert (q.argmax(1) == p.argmax(1)).all() and (q.max(1) <= p.max(1) + 1e-6).all()


def test_a_window_shows_calibrated_confidence_but_reads_as_the_network_does():
    """The temperature changes how sure a reading says it is, never its emotion, valence or sentiment: an
    uncertain neutral face softened towards the label mix (mean valence negative) must not turn negative."""
    from video_emotion.inference.summary import segment
    from video_emotion.inference.windows import Window
    from video_emotion.labels import LABELS, VALENCE, polarity

    w = Window(0.0, 2.0, np.zeros((4, 8, 8), np.uint8), np.ones(4, bool))
    raw = np.array([0.04, 0.03, 0.05, 0.02, 0.08, 0.03, 0.75])  # neutral, fairly sure
    calibrated = apply_temperature(raw[None], 3.0)[0]
    plain, hot = segment(w, raw, list(LABELS), "en"), segment(w, calibrated, list(LABELS), "en", temperature=3.0)
    assert hot["emotion"] == plain["emotion"] == "neutral"
    assert hot["confidence"] == pytest.approx(calibrated.max(), abs=1e-4) and hot["confidence"] < plain["confidence"]
    assert hot["valence"] == pytest.approx(plain["valence"], abs=1e-4)
    assert hot["arousal"] == pytest.approx(plain["arousal"], abs=1e-4)
    assert hot["sentiment"] == plain["sentiment"] == "neutral"
    # what reading the calibrated probabilities as they stand would have said
    assert polarity(sum(c * VALENCE[lab] for c, lab in zip(calibrated, LABELS, strict=True))) == "negative"


def test_real_face_reports_carry_the_calibration_error():
    """`evaluate-faces` / the evaluate stage: ECE per dataset for the model and the network alone, faces not found
    left out of it (they have no confidence) but counted wrong in accuracy."""
    from video_emotion.inference.face_eval import flat_metrics, format_table, report
    from video_emotion.labels import LABELS

    sure, _ = confident(0.9, 4, 4, k=7)  # four readings of class 0 at 0.9
    model_p = np.vstack([sure, np.full((1, 7), np.nan)])  # the fifth face was not found
    y = np.array([0, 0, 0, 1, 0])  # one of the four found is wrong: accuracy 3/5, ECE |0.75 - 0.9|
    rep = report(y, model_p, model_p, np.array([True] * 4 + [False]), np.array(["a"] * 5), list(LABELS))
    assert rep["overall"]["model"]["accuracy"] == 0.6
    assert rep["overall"]["model"]["ece"] == pytest.approx(0.15)
    assert rep["a"]["pretrained"]["ece"] == pytest.approx(0.15)
    flat = flat_metrics(rep)
    assert flat["realfaces_ece"] == pytest.approx(0.15) and flat["realfaces_a_pretrained_ece"] == pytest.approx(0.15)
    assert "| ECE |" in format_table(rep, list(LABELS), "m") and "| 0.150 |" in format_table(rep, list(LABELS), "m")
    none = report(y[:1], model_p[4:], model_p[4:], np.array([False]), np.array(["a"]), list(LABELS))
    assert none["overall"]["model"]["ece"] is None and "realfaces_ece" not in flat_metrics(none)
