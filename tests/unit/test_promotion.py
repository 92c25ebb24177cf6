"""The alias decision, branch by branch, with controlled inputs (no registry, no model)."""

from __future__ import annotations

import pytest

from video_emotion.modeling.promotion import (
    CHALLENGER,
    CHAMPION,
    Candidate,
    Champion,
    Gate,
    Selection,
    candidate_from,
    decide,
    describe,
    score_key,
    selection_from,
)

SET_A, SET_B = "a" * 32, "b" * 32
PASS = {"real_face_check": Gate(True, "crying sad 0.80"), "test_floor": Gate(True, "0.61 vs 0.15")}


def cand(value=0.60, digest=SET_A, baseline=0.55, gates=None, metric="realfaces_macro_f1") -> Candidate:
    return Candidate(Selection(metric, value, digest, baseline), PASS if gates is None else gates)


def champ(version="3", **scores_by_digest) -> Champion:
    return Champion(version, {score_key("realfaces_macro_f1", d): v for d, v in scores_by_digest.items()})


def test_first_version_that_passes_becomes_champion():
    d = decide(cand(), None)
    assert d.alias == CHAMPION and "first version" in d.reason and "0.6000" in d.reason and "0.5500" in d.reason


def test_beats_the_champion_on_the_same_set():
    d = decide(cand(0.60), champ(**{SET_A: 0.58}))
    assert d.alias == CHAMPION and d.compared_with == "3" and "0.6000 > 0.5800" in d.reason


def test_a_tie_keeps_the_champion_even_below_tag_precision():
    assert decide(cand(0.58), champ(**{SET_A: 0.58})).alias == CHALLENGER
    d = decide(cand(0.5800001), champ(**{SET_A: 0.58}))  # stored at 6 decimals: a re-evaluation is a tie
    assert d.alias == CHALLENGER and "tie" in d.reason


def test_loses_to_the_champion():
    d = decide(cand(0.56), champ(**{SET_A: 0.58}))
    assert d.alias == CHALLENGER and "below champion v3: realfaces_macro_f1 0.5600 < 0.5800" in d.reason


def test_a_failed_gate_never_becomes_champion_whatever_the_score():
    gates = {**PASS, "real_face_check": Gate(False, "crying sad 0.20")}
    for champion in (None, champ(**{SET_A: 0.10})):
        d = decide(cand(0.99, gates=gates), champion)
        assert d.alias == CHALLENGER and "failed gate: real_face_check (crying sad 0.20)" in d.reason
    d = decide(cand(0.99, gates={**PASS, "test_floor": Gate(False, "0.05 vs 0.15")}), None)
    assert d.alias == CHALLENGER and "test_floor" in d.reason


def test_a_gate_that_did_not_run_never_becomes_champion():
    d = decide(cand(0.99, gates={**PASS, "real_face_check": Gate(None, "needs a face (video) model")}), None)
    assert d.alias == CHALLENGER and d.reason.startswith("gate not run: real_face_check")


def test_different_data_is_not_compared():
    # The champion scored 0.10 on another set: a 0.90 here proves nothing against it.
    d = decide(cand(0.90, digest=SET_A), champ(**{SET_B: 0.10}))
    assert d.alias == CHALLENGER and "different data" in d.reason and "not compared" in d.reason
    # An old champion selected by another rule (no real-face score at all) is not compared either.
    assert decide(cand(0.90), Champion("1", {})).alias == CHALLENGER


def test_the_same_champion_scored_on_several_sets_is_compared_on_the_candidates_set():
    c = champ(**{SET_A: 0.70, SET_B: 0.40})
    assert decide(cand(0.60, digest=SET_B), c).alias == CHAMPION
    assert decide(cand(0.60, digest=SET_A), c).alias == CHALLENGER


def test_below_the_pretrained_network_alone_never_becomes_champion():
    d = decide(cand(0.50, baseline=0.55), None)
    assert d.alias == CHALLENGER and "below the pretrained network alone (0.5500)" in d.reason
    assert decide(cand(0.55, baseline=0.55), None).alias == CHAMPION  # "at least" the baseline
    assert decide(cand(0.50, baseline=None), None).alias == CHAMPION  # no baseline measured


def test_no_selection_score_never_becomes_champion():
    d = decide(cand(None), None)
    assert d.alias == CHALLENGER and "nothing to select it by" in d.reason


def test_champion_tags_are_read_leniently():
    c = Champion.from_tags("4", {score_key("m", SET_A): "0.5", score_key("m", SET_B): "n/a", "other": "x"})
    assert c.scores == {score_key("m", SET_A): 0.5}


def test_candidate_from_the_labelled_real_face_evaluation():
    real = {"realfaces_macro_f1": 0.61, "realfaces_pretrained_macro_f1": 0.60, "realfaces_digest": SET_B}
    c = candidate_from({"macro_f1": 0.4}, real, SET_A, "dev", 0.15)
    assert c.selection == Selection("realfaces_macro_f1", 0.61, SET_B, 0.60, "dev")
    assert set(c.gates) == {"test_floor"} and c.gates["test_floor"].passed


def test_candidate_from_the_embedded_check_until_then():
    real = {"realface_pass": 1.0, "realface_photo_accuracy": 0.75, "realface_crying_sad_share": 0.8}
    c = candidate_from({"macro_f1": 0.10}, real, SET_A, "data/external/real_faces", 0.15)
    assert c.selection.metric == "realface_photo_accuracy" and c.selection.value == 0.75
    assert c.selection.data_digest == SET_A and c.selection.baseline is None
    assert c.gates["real_face_check"].passed is True and "crying sad 0.80" in c.gates["real_face_check"].detail
    assert c.gates["test_floor"].passed is False  # synthetic macro-F1 0.10 under the floor 0.15
    assert decide(c, None).alias == CHALLENGER


@pytest.mark.parametrize("enabled, why", [(True, "needs a face"), (False, "disabled")])
def test_candidate_without_a_real_face_result(enabled, why):
    c = candidate_from({"macro_f1": 0.9}, {}, SET_A, "x", 0.15, check_enabled=enabled)
    assert c.selection.value is None and c.gates["real_face_check"].passed is None
    assert why in c.gates["real_face_check"].detail


def test_selection_from_keeps_the_set_digest():
    assert selection_from({}, SET_A).value is None
    assert selection_from({"realface_photo_accuracy": 0.5}, SET_A).data_digest == SET_A


def test_the_description_says_why_with_numbers_and_data():
    from video_emotion.modeling.lineage import DataRef

    c = cand(0.60)
    d = decide(c, champ(**{SET_A: 0.58}))
    ref = DataRef("test", "testing", "f" * 32, {"path": "data/processed/test.npz.enc"},
                  {"clips": 42, "encrypted": True})
    text = describe(d, c, {"metrics": {"test_macro_f1": 0.7}, "datasets": [ref]}, "RUN1", "abc123", "exp-x")
    assert text.startswith("**@champion**: beats champion v3")
    for part in ("realfaces_macro_f1 = 0.6000", "pretrained network alone 0.5500", "Gate real_face_check: pass",
                 "test_macro_f1 0.7000", "data/processed/test.npz.enc", "f" * 32, "clips 42", "RUN1", "abc123",
                 "exp-x"):
        assert part in text, part
