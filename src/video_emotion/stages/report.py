"""`video-emotion report`: the latest pipeline results in a few lines, from the stages' own outputs."""

from __future__ import annotations

import json

from video_emotion.config import Params


def pipeline_report(params: Params) -> str | None:
    """The test metrics, the real-face check and the registry decision (None: nothing evaluated yet)."""
    path = params.path("metrics_dir") / "eval.json"
    if not path.is_file():
        return None
    m = json.loads(path.read_text())
    corpus = "synthetic corpus" if params.ingest.source == "synthetic" else f"{params.ingest.source} corpus"
    lines = [f"Test metrics ({corpus}, actor-disjoint test split):",
             f"  accuracy (WAR) {m['accuracy']:.3f}   macro-F1 {m['macro_f1']:.3f}   UAR {m['uar']:.3f}   "
             f"clips {m['test_clips']}"]
    if "realface_pass" in m:
        lines.append(f"  real-face check: {'PASS' if m['realface_pass'] else 'FAIL'} (crying windows read sad "
                     f"{m['realface_crying_sad_share']:.2f}, laughing windows read happy "
                     f"{m['realface_laughing_happy_share']:.2f}, posed photos {m['realface_photo_accuracy']:.2f})")
    reg = params.root / "reports" / "registry.json"
    if reg.is_file():
        r = json.loads(reg.read_text())
        lines.append(f"  registered {r['name']} v{r['version']} as @{r['alias']} ({r['reason']})")
        if r.get("blocker"):  # not only a log line: this stops every later version too
            lines += [f"  PROMOTION BLOCKED: {r['blocker']}.",
                      "  Make that version load again, or move (or remove) its @champion alias: MLflow UI, Models, "
                      f"{r['name']}, or MlflowClient().set_registered_model_alias({r['name']!r}, 'champion', VERSION)."]
    lines += ["Open the MLflow UI with:",
              f"  .venv/bin/mlflow ui --backend-store-uri {params.tracking.uri} --port 5000"]
    return "\n".join(lines)
