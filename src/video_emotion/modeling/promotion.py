"""Which alias a newly registered version gets: one pure decision, tested branch by branch.

The champion is selected by real faces. A version can become `champion` only if
- every gate ran and passed (the behavioural real-face check, or with that check disabled the labelled
  real-face folder; the synthetic test floor: pipeline health),
- it has a selection score (a real-face metric) on a known set of real faces, at least the baseline
  (the pretrained network alone on the same set) when one was measured, and
- it beats the current champion's score on the SAME set (same metric, same set digest). A tie is broken by
  the real-face log-loss on that set (lower wins: the same readings held with more honest confidence), and
  a tie on that too (or a side without it) goes to the newer version, the candidate: the same model
  retrained on new code replaces the old one. A champion without a score on that set is not compared
  (different data): the alias stays. One that the registry could not measure on that set (it no longer
  loads, its files are gone) blocks every promotion the same way: the decision says so (`blocker`), and
  `video-emotion report` (the end of `make run`) prints it.
Everything else becomes `challenger`. The synthetic test score is reported and gated, never compared.

No I/O here: the registry reads the champion's version tags, calls `decide`, and writes the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CHAMPION, CHALLENGER = "champion", "challenger"
PRECISION = 6  # scores are stored in tags at this precision; comparing at it makes a re-evaluation a tie
SCORE_TAG = "selection."  # version tag `selection.<metric>.<set digest>` = score on that set
TIE_METRIC = "realfaces_log_loss"  # the second criterion, on the same set: lower is better
GATE_TAG = {True: "pass", False: "fail", None: "not run"}  # a gate's outcome as a model-version tag
LABELLED_GATE = "labelled_real_faces"  # the gate when the real-face check is disabled and a labelled folder is given


@dataclass(frozen=True)
class Selection:
    """The score that picks the champion: `metric` on the real-face set with digest `data_digest`."""

    metric: str
    value: float | None          # None: not measured (the version cannot become champion)
    data_digest: str             # digest of the set the value was measured on
    baseline: float | None = None  # the pretrained network alone on the same set; None: not measured
    data_name: str = "real faces"
    tie_break: float | None = None  # TIE_METRIC on the same set; None: not measured


@dataclass(frozen=True)
class Gate:
    """A pass/fail condition: `passed` None means it did not run."""

    passed: bool | None
    detail: str = ""


@dataclass(frozen=True)
class Candidate:
    selection: Selection
    gates: dict[str, Gate] = field(default_factory=dict)
    voice: str = "none"  # where its voice was learned: "real:<corpus>", "generated:<corpus>" or "none" (voice_source)


@dataclass(frozen=True)
class Champion:
    """The current champion as its version tags describe it."""

    version: str
    scores: dict[str, float] = field(default_factory=dict)  # score_key(metric, digest) -> value
    unmeasured: str = ""  # why it could not be measured on the candidate's set ("": it was, or it need not be)
    voice: str = "none"   # its version tag voice_source

    @classmethod
    def from_tags(cls, version: str, tags: dict[str, str], unmeasured: str = "") -> Champion:
        scores = {}
        for key, value in tags.items():
            if key.startswith(SCORE_TAG):
                try:
                    scores[key] = float(value)
                except ValueError:
                    continue
        return cls(version=str(version), scores=scores, unmeasured=unmeasured, voice=tags.get("voice_source", "none"))


@dataclass(frozen=True)
class Decision:
    alias: str
    reason: str
    compared_with: str | None = None  # the champion version it was compared with
    blocker: str = ""  # what stops every version from being promoted until someone acts ("": nothing)


def score_key(metric: str, digest: str) -> str:
    """The version tag that holds `metric` measured on the set with this digest."""
    return f"{SCORE_TAG}{metric}.{digest[:16]}"


def scores_of(sel: Selection) -> dict[str, float]:
    """The version tags a selection's measured scores are kept under: {score_key: value}."""
    pairs = ((sel.metric, sel.value), (TIE_METRIC, sel.tie_break))
    return {score_key(m, sel.data_digest): float(v) for m, v in pairs if v is not None}


def missing_scores(tags: dict[str, str], sel: Selection) -> list[str]:
    """The champion's score tags the decision needs and its version lacks: its score on the candidate's set
    (then its tie-break too), or only the tie-break where the two scores tie. Empty: nothing to measure."""
    key, tie_key = score_key(sel.metric, sel.data_digest), score_key(TIE_METRIC, sel.data_digest)
    if key not in tags:
        return [key, tie_key] if tie_key not in tags else [key]
    try:
        tied = sel.value is not None and round(float(tags[key]), PRECISION) == round(sel.value, PRECISION)
    except ValueError:
        tied = False
    return [tie_key] if tied and sel.tie_break is not None and tie_key not in tags else []


def version_tags(decision: Decision, candidate: Candidate) -> dict[str, str]:
    """The decision as model-version tags: alias reason, selection metric, set digest, scores and gates."""
    sel = candidate.selection
    return {"alias_decision": decision.reason, "selection_metric": sel.metric, "selection_data_digest": sel.data_digest,
            "voice_source": candidate.voice,
            **{k: f"{v:.6f}" for k, v in scores_of(sel).items()},
            **{f"gate.{g}": GATE_TAG[v.passed] for g, v in candidate.gates.items()}}


def _fmt(x: float) -> str:
    return f"{x:.4f}"


def decide(candidate: Candidate, champion: Champion | None) -> Decision:
    """(candidate's scores, data digests and gates; the champion's tags) -> (alias, reason)."""
    sel = candidate.selection
    failed = [f"{name} ({g.detail})" if g.detail else name for name, g in candidate.gates.items() if g.passed is False]
    if failed:
        return Decision(CHALLENGER, "failed gate: " + "; ".join(failed))
    not_run = [f"{name} ({g.detail})" if g.detail else name for name, g in candidate.gates.items() if g.passed is None]
    if not_run:
        return Decision(CHALLENGER, "gate not run: " + "; ".join(not_run))
    if sel.value is None:
        return Decision(CHALLENGER, f"no {sel.metric} on {sel.data_name}: nothing to select it by")
    value = round(sel.value, PRECISION)
    where = f"on {sel.data_name} (set {sel.data_digest[:12]})"
    if sel.baseline is not None and value < round(sel.baseline, PRECISION):
        return Decision(CHALLENGER, f"{sel.metric} {_fmt(value)} is below the pretrained network alone "
                                    f"({_fmt(sel.baseline)}) {where}")
    base = f"; pretrained network alone {_fmt(sel.baseline)}" if sel.baseline is not None else ""
    if champion is None:
        return Decision(CHAMPION, f"first version to pass the gates: {sel.metric} {_fmt(value)} {where}{base}")
    if champion.voice.startswith("real:") and not candidate.voice.startswith("real:"):
        why = f"its voice ({candidate.voice}) was not learned from real speech; champion v{champion.version}'s was"
        return Decision(CHALLENGER, f"{why} ({champion.voice}): the champion stays", champion.version)
    held = champion.scores.get(score_key(sel.metric, sel.data_digest))
    if held is None and champion.unmeasured:  # it would block every candidate the same way: say so
        why = f"champion v{champion.version} could not be measured {where} ({champion.unmeasured})"
        return Decision(CHALLENGER, f"{why}: not compared, the champion stays", champion.version,
                        blocker=f"{why}; no version can be promoted until it is measured there or @champion moves")
    if held is None:
        return Decision(CHALLENGER, f"champion v{champion.version} has no {sel.metric} {where} (different data): "
                                    "not compared, the champion stays", champion.version)
    held = round(held, PRECISION)
    if value > held:
        return Decision(CHAMPION, f"beats champion v{champion.version}: {sel.metric} {_fmt(value)} > "
                                  f"{_fmt(held)} {where}{base}", champion.version)
    if value == held:
        return _break_tie(sel, champion, f"ties champion v{champion.version}: {sel.metric} {_fmt(value)} {where}")
    return Decision(CHALLENGER, f"below champion v{champion.version}: {sel.metric} {_fmt(value)} < "
                                f"{_fmt(held)} {where}", champion.version)


def _break_tie(sel: Selection, champion: Champion, tied: str) -> Decision:
    """Equal selection scores: the lower real-face log-loss on the same set wins; equal or unmeasured on either
    side, the newer version (the candidate) wins."""
    mine, held = sel.tie_break, champion.scores.get(score_key(TIE_METRIC, sel.data_digest))
    if mine is not None and held is not None:
        mine, held = round(mine, PRECISION), round(held, PRECISION)
        if mine != held:
            sign, alias = ("<", CHAMPION) if mine < held else (">", CHALLENGER)
            return Decision(alias, f"{tied}; {TIE_METRIC} {_fmt(mine)} {sign} {_fmt(held)}", champion.version)
        second = f"{TIE_METRIC} {_fmt(mine)} on both"
    else:
        second = f"{TIE_METRIC} not measured on " + ("either" if mine is None and held is None else
                                                     "this version" if mine is None else "the champion")
    return Decision(CHAMPION, f"{tied}; {second}: the newer version wins", champion.version)


def selection_from(real: dict[str, Any], set_digest: str, set_name: str = "real faces") -> Selection:
    """The selection score in a real-face result.

    With the labelled real-face evaluation (`realfaces_macro_f1`, `realfaces_pretrained_macro_f1`, optionally
    `realfaces_digest`) it is the macro-F1 against the pretrained network alone; otherwise the embedded
    footage's check (`realface_photo_accuracy`). An empty result (check disabled, audio-only model) has none.
    """
    digest = str(real.get("realfaces_digest") or set_digest)
    if "realfaces_macro_f1" in real:
        base = real.get("realfaces_pretrained_macro_f1")
        loss = real.get(TIE_METRIC)
        return Selection("realfaces_macro_f1", float(real["realfaces_macro_f1"]), digest,
                         None if base is None else float(base), set_name, None if loss is None else float(loss))
    value = real.get("realface_photo_accuracy")
    return Selection("realface_photo_accuracy", None if value is None else float(value), digest, None, set_name)


def candidate_from(metrics: dict[str, Any], real: dict[str, Any], set_digest: str, set_name: str,
                   min_test_macro_f1: float, check_enabled: bool = True, voice: str = "none") -> Candidate:
    """The candidate as the evaluate stage measured it: the real-face selection score and the gates."""
    f1 = float(metrics["macro_f1"])
    gates = {"test_floor": Gate(f1 >= min_test_macro_f1,
                                f"synthetic test macro-F1 {f1:.4f} vs floor {min_test_macro_f1:.4f}")}
    if "realface_pass" in real:
        gates["real_face_check"] = Gate(bool(real["realface_pass"]), _check_detail(real))
    elif not check_enabled and real.get("realfaces_digest"):  # check disabled: the labelled folder is the gate
        gates[LABELLED_GATE] = _labelled_gate(real)
    elif not real or not check_enabled:
        why = "disabled (evaluate.real_face_check)" if not check_enabled else "needs a face (video) model"
        gates["real_face_check"] = Gate(None, why)
    return Candidate(selection_from(real, set_digest, set_name), gates, voice)


def voice_source(bundle_settings: dict[str, Any], voice_settings: dict[str, Any] | None, corpus: str) -> str:
    """Where a bundle's voice was learned: its voice model's corpus (`real:`: the stage train_voice learns only
    from real speech), else its own audio branch's training corpus (`generated:` for the synthetic one)."""
    if voice_settings is not None:
        return f"real:{voice_settings.get('info', {}).get('trained_on', 'unknown')}"
    if "audio" in bundle_settings.get("model", {}).get("modalities", []):
        return f"{'generated' if corpus == 'synthetic' else 'real'}:{corpus}"
    return "none"


def _labelled_gate(real: dict[str, Any]) -> Gate:
    """The labelled folder as a gate: macro-F1 and accuracy each at least the pretrained network alone's on the
    same crops (the trained model must read these real faces no worse than the network it starts from)."""
    pairs = [(name, real.get(f"realfaces_{name}"), real.get(f"realfaces_pretrained_{name}"))
             for name in ("macro_f1", "accuracy")]
    if any(v is None or b is None for _, v, b in pairs):
        return Gate(None, "no pretrained-network baseline on the labelled folder")
    detail = ", ".join(f"{name.replace('_f1', '-F1')} {float(v):.4f} vs {float(b):.4f}" for name, v, b in pairs)
    ok = all(round(float(v), PRECISION) >= round(float(b), PRECISION) for _, v, b in pairs)
    return Gate(ok, detail + " (pretrained network alone)")


def _check_detail(real: dict[str, Any]) -> str:
    parts = [("crying sad", "realface_crying_sad_share"), ("laughing happy", "realface_laughing_happy_share"),
             ("photos", "realface_photo_accuracy")]
    return ", ".join(f"{label} {float(real[k]):.2f}" for label, k in parts if k in real)


RULE = ("Versions of the video emotion model. Each evaluation registers one. The alias `champion` moves to a "
        "version only if it passes every gate (the real-face check on real footage, or with that check disabled "
        "the labelled real-face folder; the synthetic test macro-F1 floor, a pipeline-health check), its "
        "real-face score is at least the pretrained network alone's, and it beats the current champion's score "
        "on the same real-face set (same digest). A tie goes to the lower real-face log-loss on that set, then to "
        "the newer version. Otherwise it becomes `challenger`. Each version's description says why, and where "
        "the model came from.")


def describe(decision: Decision, candidate: Candidate, report: dict[str, Any], run_id: str, commit: str,
             experiment: str) -> str:
    """The version description (Markdown): the alias and why, the gates' numbers, the data it was evaluated on."""
    sel = candidate.selection
    lines = [f"**@{decision.alias}**: {decision.reason}.", "",
             f"- Selection: {sel.metric} = {'not measured' if sel.value is None else _fmt(sel.value)} on "
             f"{sel.data_name} (digest `{sel.data_digest}`)"
             + (f"; pretrained network alone {_fmt(sel.baseline)}" if sel.baseline is not None else "")
             + (f"; tie-break {TIE_METRIC} {_fmt(sel.tie_break)}" if sel.tie_break is not None else "")]
    for name, g in candidate.gates.items():
        state = {True: "pass", False: "FAIL", None: "not run"}[g.passed]
        lines.append(f"- Gate {name}: {state}" + (f" ({g.detail})" if g.detail else ""))
    m = report.get("metrics", {})
    if m:
        lines.append("- Synthetic test (pipeline health): " + ", ".join(f"{k} {float(v):.4f}" for k, v in m.items()))
    for ref in report.get("datasets", []):
        counts = ", ".join(f"{k} {v}" for k, v in ref.profile.items() if isinstance(v, int) and not isinstance(v, bool))
        lines.append(f"- Data `{ref.name}` ({ref.context}): `{ref.source.get('path', '?')}`, digest `{ref.digest}`"
                     + (f", {counts}" if counts else ""))
    lines.append(f"- Run `{run_id}`, git `{commit}`, DVC experiment `{experiment}`")
    if report.get("tags", {}).get("model_provenance"):  # a model whose training run is not in this store
        lines.append(f"- Model: {report['tags']['model_provenance']}")
    return "\n".join(lines)
