"""The voice head on RAVDESS speech, actor-disjoint 5-fold protocol, from scratch.

    .venv/bin/python benchmarks/voice_ravdess.py DIR [--cache FOLDER] [--json OUT]

DIR is an extracted RAVDESS speech download (`Actor_NN/03-01-EE-II-SS-RR-AA.wav`, 1,440 files). Each file's
encoder readings are computed through the product's own path (ffmpeg decode, voice activity detection,
Whisper base's layers 2 and 3) and cached under --cache (default .cache/voice-ravdess): a second run reads
them back. Each fold's head is trained on the other 19-20 actors with params.yaml's `voice` settings and reads
its 4-5 actors, whom it has never heard (Luna-Jimenez et al. 2022's folds). Prints per-fold accuracy, the
figures over all 1,440 out-of-fold readings, and last:

    accuracy8=... uar8=... accuracy7=... macro_f1_7=...

(8: RAVDESS's classes; 7: the product's labels, calm read as neutral.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402

from video_emotion.config import load_params  # noqa: E402
from video_emotion.modeling.voice import crossval, stats  # noqa: E402
from video_emotion.modeling.voice_data import FOLDS, protocol_figures, ravdess_speech, utterance_states  # noqa: E402
from video_emotion.text.voice_states import VoiceEncoder  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path, help="extracted RAVDESS speech folder")
    ap.add_argument("--cache", type=Path, default=ROOT / ".cache" / "voice-ravdess", help="encoder readings cache")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    params = load_params(ROOT / "params.yaml")
    cfg = params.voice
    items = ravdess_speech(args.dir)
    t0 = time.perf_counter()
    states = utterance_states(items, VoiceEncoder(params.path("whisper_dir")), args.cache)
    t_read = time.perf_counter() - t0
    feats = np.stack([stats(s) for s in states])
    y = np.array([it.cls for it in items])
    actors = np.array([it.actor for it in items])
    t0 = time.perf_counter()
    oof, per_fold = crossval(cfg, feats, y, actors, list(FOLDS), 8)
    t_fit = time.perf_counter() - t0
    fig = protocol_figures(oof, y)
    for f in per_fold:
        print(f"fold {f['fold']}: actors {','.join(f['test_actors'])}: {f['test_files']} files, "
              f"accuracy8 {f['accuracy']:.3f}")
    print(f"{len(items)} files; readings {t_read:.0f} s (cached after the first run), 5 folds fitted in {t_fit:.0f} s")
    print("recall8: " + ", ".join(f"{k} {v:.2f}" for k, v in fig["recall8"].items()))
    print(f"uar7={fig['uar7']:.4f} ece7={fig['ece7']:.4f} (uncalibrated, out of fold)")
    if args.json:
        args.json.write_text(json.dumps({**fig, "per_fold": per_fold}, indent=1) + "\n")
    print(f"accuracy8={fig['accuracy8']:.4f} uar8={fig['uar8']:.4f} accuracy7={fig['accuracy7']:.4f} "
          f"macro_f1_7={fig['macro_f1_7']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
