"""The alias decision, branch by branch, with controlled inputs (no registry, no model)."""

from __future__ import annotations

import pytest

from video_emotion.modeling.promotion import (
    CHALLENGER,
    CHAMPION,
    LABELLED_GATE,
    TIE_METRIC,
    Candidate,
    Champion,
    Decision,
    Gate,
    Selection,
    candidate_from,
    decide,
    describe,
    missing_scores,
    score_key,
    scores_of,
    selection_from,
    version_tags,
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


def test_a_tie_is_a_tie_even_below_tag_precision():
    d = decide(cand(0.5800001), champ(**{SET_A: 0.58}))  # stored at 6 decimals: a re-evaluation is a tie
    assert "ties champion v3: realfaces_macro_f1 0.5800" in d.reason  # then broken as the tests below say


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


# --- A tie on the selection score: the real-face log-loss decides, then recency -----------------------------------

def tied(loss_candidate, loss_champion, value=0.58) -> Decision:
    c = Candidate(Selection("realfaces_macro_f1", value, SET_A, 0.55, tie_break=loss_candidate), PASS)
    scores = {score_key("realfaces_macro_f1", SET_A): 0.58}
    if loss_champion is not None:
        scores[score_key(TIE_METRIC, SET_A)] = loss_champion
    return decide(c, Champion("3", scores))


def test_a_tie_is_broken_by_the_lower_real_face_log_loss():
    d = tied(0.91, 0.95)
    assert d.alias == CHAMPION and d.compared_with == "3"
    assert "ties champion v3" in d.reason and f"{TIE_METRIC} 0.9100 < 0.9500" in d.reason
    d = tied(0.97, 0.95)
    assert d.alias == CHALLENGER and f"{TIE_METRIC} 0.9700 > 0.9500" in d.reason


def test_a_full_tie_goes_to_the_newer_version():
    # The same model retrained on new code: same readings, same confidence. The newer version wins.
    d = tied(0.95, 0.95)
    assert d.alias == CHAMPION and "newer" in d.reason
    d = tied(0.9500001, 0.95)  # stored at 6 decimals: a re-evaluation is a full tie
    assert d.alias == CHAMPION and "newer" in d.reason
    # Without the second criterion on one side (an older champion), recency decides alone.
    for cand_loss, champ_loss in ((0.5, None), (None, 0.5), (None, None)):
        d = tied(cand_loss, champ_loss)
        assert d.alias == CHAMPION and "newer" in d.reason and "not measured" in d.reason


def test_the_second_criterion_never_overrides_the_first():
    assert tied(0.10, 0.95, value=0.57).alias == CHALLENGER  # lower macro-F1 loses whatever its log-loss
    assert tied(2.00, 0.95, value=0.59).alias == CHAMPION    # higher macro-F1 wins whatever its log-loss


def test_selection_carries_the_real_face_log_loss():
    real = {"realfaces_macro_f1": 0.61, "realfaces_pretrained_macro_f1": 0.60, "realfaces_log_loss": 0.93}
    assert selection_from(real, SET_A).tie_break == 0.93
    assert selection_from({"realface_photo_accuracy": 0.5}, SET_A).tie_break is None


def test_log_loss_counts_a_face_not_found_as_the_uniform_reading():
    import numpy as np

    from video_emotion.inference.face_eval import log_loss

    p = np.array([[0.5, 0.25, 0.25], [np.nan, np.nan, np.nan]])
    assert log_loss(np.array([0, 1]), p) == pytest.approx((np.log(2) + np.log(3)) / 2)
    assert log_loss(np.array([1]), np.array([[1.0, 0.0, 0.0]])) == pytest.approx(-np.log(1e-7))  # clipped, finite
    assert log_loss(np.array([], int), np.zeros((0, 3))) is None


# --- Real-face check disabled: the labelled folder is the gate ----------------------------------------------------

LABELLED = {"realfaces_macro_f1": 0.61, "realfaces_pretrained_macro_f1": 0.60, "realfaces_accuracy": 0.70,
            "realfaces_pretrained_accuracy": 0.69, "realfaces_digest": SET_B}


def test_check_disabled_with_a_labelled_folder_gates_on_the_folder():
    c = candidate_from({"macro_f1": 0.4}, LABELLED, SET_A, "dev", 0.15, check_enabled=False)
    gate = c.gates[LABELLED_GATE]
    assert gate.passed is True and "macro-F1 0.6100 vs 0.6000" in gate.detail
    assert "accuracy 0.7000 vs 0.6900" in gate.detail
    assert "real_face_check" not in c.gates and decide(c, None).alias == CHAMPION
    worse = {**LABELLED, "realfaces_accuracy": 0.60}  # macro-F1 above the pretrained network, accuracy below
    c = candidate_from({"macro_f1": 0.4}, worse, SET_A, "dev", 0.15, check_enabled=False)
    assert c.gates[LABELLED_GATE].passed is False
    d = decide(c, None)
    assert d.alias == CHALLENGER and d.reason.startswith(f"failed gate: {LABELLED_GATE}")


def test_check_disabled_with_a_labelled_folder_but_no_baseline_is_not_a_pass():
    alone = {"realfaces_macro_f1": 0.61, "realfaces_accuracy": 0.70, "realfaces_digest": SET_B}
    c = candidate_from({"macro_f1": 0.4}, alone, SET_A, "dev", 0.15, check_enabled=False)
    assert c.gates[LABELLED_GATE].passed is None and decide(c, None).alias == CHALLENGER


def test_check_enabled_keeps_the_check_as_the_gate():
    real = {**LABELLED, "realface_pass": 1.0, "realface_photo_accuracy": 0.75}
    c = candidate_from({"macro_f1": 0.4}, real, SET_A, "dev", 0.15, check_enabled=True)
    assert set(c.gates) == {"test_floor", "real_face_check"}


# --- What the registry must measure on the champion, and what it writes on a version ------------------------------

def test_the_champion_is_measured_only_where_the_decision_needs_it():
    sel = Selection("realfaces_macro_f1", 0.58, SET_A, 0.55, tie_break=0.9)
    key, tie = score_key("realfaces_macro_f1", SET_A), score_key(TIE_METRIC, SET_A)
    assert missing_scores({}, sel) == [key, tie]                      # never measured on this set
    assert missing_scores({tie: "0.8"}, sel) == [key]
    assert missing_scores({key: "0.580000"}, sel) == [tie]            # tied, and no tie-break yet: measure it
    assert missing_scores({key: "0.570000"}, sel) == []               # not tied: the tie-break is not needed
    assert missing_scores({key: "0.580000", tie: "0.8"}, sel) == []
    assert missing_scores({key: "0.580000"}, Selection("realfaces_macro_f1", 0.58, SET_A)) == []  # none to compare


def test_version_tags_keep_both_scores_and_every_gate():
    c = Candidate(Selection("realfaces_macro_f1", 0.58, SET_A, 0.55, tie_break=0.9), {**PASS, "x": Gate(None)})
    tags = version_tags(decide(c, None), c)
    assert tags[score_key("realfaces_macro_f1", SET_A)] == "0.580000"
    assert tags[score_key(TIE_METRIC, SET_A)] == "0.900000"
    assert tags["gate.real_face_check"] == "pass" and tags["gate.x"] == "not run"
    assert tags["alias_decision"].startswith("gate not run: x")
    assert scores_of(c.selection) == {score_key("realfaces_macro_f1", SET_A): 0.58, score_key(TIE_METRIC, SET_A): 0.9}


def test_a_voice_learned_from_generated_voices_never_displaces_one_learned_from_real_speech():
    """Whatever its faces score, a candidate whose voice is its own audio branch trained on the synthetic corpus (or
    that has no voice) stays challenger where the champion's voice was learned from real speech; a real voice is
    compared as usual, and the voice's source is recorded on the version."""
    from dataclasses import replace

    from video_emotion.modeling.promotion import version_tags, voice_source

    assert voice_source({"model": {"modalities": ["video", "audio"]}}, None, "synthetic") == "generated:synthetic"
    assert voice_source({"model": {"modalities": ["video"]}}, None, "synthetic") == "none"
    real = voice_source({"model": {"modalities": ["video"]}}, {"info": {"trained_on": "ravdess-speech"}}, "synthetic")
    assert real == "real:ravdess-speech"
    held = Champion.from_tags("3", {**{k: str(v) for k, v in scores_of(cand(0.50).selection).items()},
                                    "voice_source": real})
    for weaker in ("generated:synthetic", "none"):
        d = decide(replace(cand(0.90), voice=weaker), held)
        assert d.alias == CHALLENGER and "not learned from real speech" in d.reason and d.compared_with == "3"
    better = replace(cand(0.90), voice=real)
    d = decide(better, held)
    assert d.alias == CHAMPION
    assert version_tags(d, better)["voice_source"] == real
