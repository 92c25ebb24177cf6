"""Training the voice head end to end (stage `train_voice`): RAVDESS in, the voice model folder out.

Every utterance read once through the product's own path (cached), the actor-disjoint 5-fold protocol, the
temperature fitted on the out-of-fold readings, the head that ships trained on every actor, and the folder
(`voice.json`, `voice_weights.npz`, `voice_figures.json`, MODEL_CARD.md) written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from video_emotion.config import Params
from video_emotion.io_utils import atomic_path, write_json, write_text

SOURCE = {"name": "ravdess-speech", "licence": "CC BY-NC-SA 4.0 (Livingstone & Russo 2018, PLoS ONE 13(5):e0196391)",
          "what": "RAVDESS speech, audio-only: 1,440 utterances of 24 actors (12 female, 12 male), 8 emotions"}


def train_voice(params: Params, root: Path, whisper_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Cross-validate, calibrate, train on every actor and write the voice model folder; the figures."""
    from video_emotion.labels import LABELS
    from video_emotion.modeling import lineage, packaging
    from video_emotion.modeling.calibration import apply_temperature, ece, fit_temperature
    from video_emotion.modeling.voice import crossval, fit_head, stats
    from video_emotion.modeling.voice_data import (
        CLASSES,
        FOLDS,
        TO_LABELS,
        protocol_figures,
        ravdess_speech,
        to_labels,
        utterance_states,
    )
    from video_emotion.text.voice_states import VOICE_LAYERS, VoiceEncoder

    cfg = params.voice
    items = ravdess_speech(root)
    states = utterance_states(items, VoiceEncoder(whisper_dir), params.root / cfg.cache)
    feats = np.stack([stats(s) for s in states])
    y = np.array([it.cls for it in items])
    actors = np.array([it.actor for it in items])
    oof, per_fold = crossval(cfg, feats, y, actors, list(FOLDS), len(CLASSES))
    figures = protocol_figures(oof, y)
    y7 = np.array([LABELS.index(TO_LABELS[CLASSES[c]]) for c in y])
    oof7 = to_labels(oof)
    temperature = fit_temperature(oof7, y7)
    figures["ece7_calibrated"] = round(ece(apply_temperature(oof7, temperature), y7), 4)
    weights, history = fit_head(cfg, feats, y, len(CLASSES))
    settings = {"classes": list(CLASSES), "to_labels": TO_LABELS, "temperature": round(float(temperature), 4),
                "encoder": {"model": "whisper-base", "layers": list(VOICE_LAYERS), "pooling": "mean and std over time"},
                "info": {"name": "voice-ravdess", "trained_on": SOURCE["name"], "licence": SOURCE["licence"],
                         "utterances": len(items), "actors": int(len(set(actors)))}}
    result = {"figures": figures, "per_fold": per_fold, "temperature": settings["temperature"],
              "settings": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__ if k not in ("root", "cache")},
              "commit": lineage.git_commit(packaging.package_dir()), "source": SOURCE,
              "final_loss": round(history["loss"][-1], 4)}
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        np.savez(tmp / "voice_weights.npz", **weights)
        write_json(tmp / "voice.json", settings)
        write_json(tmp / "voice_figures.json", result)
        write_text(tmp / "MODEL_CARD.md", model_card(result))
    return result


def model_card(result: dict[str, Any]) -> str:
    f = result["figures"]
    folds = "\n".join(f"| {p['fold']} | {', '.join(p['test_actors'])} | {p['test_files']} | {p['accuracy']:.3f} |"
                      for p in result["per_fold"])
    recall = ", ".join(f"{k} {v:.2f}" for k, v in f["recall7"].items())
    return f"""# Voice model: voice-ravdess

How something is said -> one of the product's seven labels (`inference.voice`). Made by the pipeline's own
stage `train_voice` (`dvc exp run -S voice.root=DIR`), commit `{result['commit']}`.

- **Reads**: Whisper base's encoder layers 2 and 3 (OpenAI Whisper, MIT; the pinned model of `make assets`) over
  each stretch of speech; their mean and standard deviation over time, standardised, into a softmax read-out
  with an L2 penalty (Keras). Settings: `{json.dumps(result['settings'])}`.
- **Data**: {result['source']['what']}. Calm is read as neutral.
- **Licence**: the weights are learned from RAVDESS, {result['source']['licence']}: credit it, no commercial
  use, and these weights are shared under the same terms.
- **Calibration**: temperature {result['temperature']} fitted on the out-of-fold readings (ECE over the 7 labels
  {f['ece7']:.3f} -> {f['ece7_calibrated']:.3f}, on those same readings: an in-sample figure for the fit).

## Actor-disjoint 5-fold figures (Luna-Jimenez et al. 2022's folds; each fold's actors unheard in training)

accuracy8 **{f['accuracy8']:.3f}**, UAR8 **{f['uar8']:.3f}**, accuracy7 {f['accuracy7']:.3f}, macro-F1 (7)
{f['macro_f1_7']:.3f}, UAR7 {f['uar7']:.3f} over {f['files']} utterances. Chosen on these folds (the layers, the
read-out, its penalty): they are the figures the choice was made on, not a held-out test. Other speakers,
recordings and languages are not measured here.

| fold | test actors | files | accuracy8 |
|---|---|---|---|
{folds}

Recall over the 7 labels: {recall}.
"""


__all__ = ["SOURCE", "model_card", "train_voice"]
