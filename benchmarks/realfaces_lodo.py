"""Calibration and reading choices on real faces, judged leave-one-database-out (LODO).

    .venv/bin/python benchmarks/realfaces_lodo.py [FOLDER] [--cache FILE.npz] [--plot docs/img/x.png]

FOLDER: labelled photos (`labels.csv`: file,label,dataset,subject), at least two datasets; default
../shared/realfaces-dev. Each photo is placed in a video frame as `benchmarks/realfaces_dev.py` does,
BlazeFace (auto) finds the largest face, and each network reads it with its own crop:
- face-api.js's expression net (the default, 112 px, margin 0.05, eyes level), plain and mirror-averaged,
  and averaged over three margins (0, 0.05, 0.1: a test-time augmentation);
- the FER-2013 mini-Xception (64 px, margin 0.10, offset -0.10, eyes level), plain and mirror-averaged.

Every choice is made on one dataset and scored on the other (both ways), never on the set it is scored on:
- calibration: expected calibration error (ECE, 10 bins) and NLL before and after one temperature fitted
  (NLL) on the other dataset; a reliability plot of the default network before and after (`--plot`);
- the two networks averaged (arithmetic and geometric mean), the weight chosen on the other dataset;
- mirror averaging and multi-margin averaging;
- class priors: a per-class log-bias fitted (NLL) on the other dataset.

`--cache FILE.npz` keeps the networks' probabilities between runs (derived from the photos: keep it out of
the repository, delete it afterwards). The script prints Markdown tables and writes nothing else.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from realfaces_dev import LABELS, load_photos, metrics  # noqa: E402

from video_emotion.modeling.calibration import apply_temperature, ece, fit_temperature, nll, reliability  # noqa: E402

FACEAPI = ROOT / "models" / "pretrained" / "face_expression"
FER = ROOT / "models" / "pretrained" / "fer2013_mini_xception.hdf5"


def read_networks(folder: Path) -> dict[str, np.ndarray]:
    """Per photo: each network's probabilities on its own crop (NaN rows: no face), labels, datasets."""
    from video_emotion.features.align import CropSpec, face_crop, mirrored
    from video_emotion.features.blazeface import BlazeFaceDetector
    from video_emotion.modeling.backbones import pretrained_backbone, probabilities

    photos = load_photos(folder, "grey")
    det = BlazeFaceDetector("auto", ROOT / "models" / "pretrained")
    dets = [(d[0] if d else None) for d in (det.detections(p.frame) for p in photos)]
    found = np.array([d is not None for d in dets])
    out = {"y": np.array([p.label for p in photos]), "dataset": np.array([p.dataset for p in photos]),
           "subject": np.array([p.subject for p in photos]), "found": found}
    nets = {"faceapi": (pretrained_backbone(FACEAPI), [CropSpec(112, m, 0.0) for m in (0.05, 0.0, 0.1)]),
            "fer": (pretrained_backbone(FER), [CropSpec(64, 0.10, -0.10)])}
    for name, (net, specs) in nets.items():
        for k, spec in enumerate(specs):
            crops = np.stack([face_crop(photos[i].frame, dets[i], spec) for i in np.flatnonzero(found)])
            for flip in (False, True):
                p = np.full((len(photos), len(LABELS)), np.nan)
                p[found] = probabilities(net, mirrored(crops) if flip else crops)
                out[f"{name}_m{k}{'_mirror' if flip else ''}"] = p
    return out


def _scores(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    pred = np.where(np.isnan(p).any(1), -1, np.nan_to_num(p).argmax(1))
    m = metrics(y, pred)
    ok = ~np.isnan(p).any(1)
    sure_wrong = int(((p[ok].argmax(1) != y[ok]) & (p[ok].max(1) >= 0.9)).sum())
    return {"acc": m["acc"], "f1": m["f1"], "recall": m["recall"], "sure_wrong": sure_wrong,
            "ece": ece(p[ok], y[ok]), "nll": nll(p[ok], y[ok]), "conf": float(np.nanmax(p[ok], 1).mean())}


def systems(P: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Candidate readings per photo, from the cached network outputs."""
    fa, fam = P["faceapi_m0"], P["faceapi_m0_mirror"]
    fer, ferm = P["fer_m0"], P["fer_m0_mirror"]
    return {"face-api.js (default)": fa, "face-api.js + mirror": (fa + fam) / 2,
            "face-api.js, margins 0/0.05/0.1 averaged": (fa + P["faceapi_m1"] + P["faceapi_m2"]) / 3,
            "FER-2013 (its crop)": fer, "FER-2013 + mirror": (fer + ferm) / 2}


def mix(a: np.ndarray, b: np.ndarray, w: float, geometric: bool) -> np.ndarray:
    """w * a + (1 - w) * b, or the normalised geometric mean with those weights."""
    if not geometric:
        return w * a + (1 - w) * b
    z = w * np.log(np.clip(a, 1e-12, None)) + (1 - w) * np.log(np.clip(b, 1e-12, None))
    e = np.exp(z - np.nanmax(z, 1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def fit_bias(p: np.ndarray, y: np.ndarray, l2: float = 0.01, steps: int = 500) -> np.ndarray:
    """Per-class log-bias b maximising the likelihood of softmax(log p + b) (L2 on b; classes absent: 0)."""
    present = np.bincount(y, minlength=p.shape[1]) > 0
    b, logp = np.zeros(p.shape[1]), np.log(np.clip(p, 1e-12, None))
    onehot = np.eye(p.shape[1])[y]
    for _ in range(steps):
        q = np.exp(logp + b - (logp + b).max(1, keepdims=True))
        q /= q.sum(1, keepdims=True)
        grad = (q - onehot).mean(0) + l2 * b
        b -= 1.0 * np.where(present, grad, 0.0)
    return b


def with_bias(p: np.ndarray, b: np.ndarray) -> np.ndarray:
    q = p * np.exp(b)
    return q / q.sum(1, keepdims=True)


def folds(ds: np.ndarray) -> list[tuple[str, np.ndarray, str, np.ndarray]]:
    """(fitted on, its mask, held out, its mask): each dataset held out once, the choice made on all the others."""
    names = list(dict.fromkeys(ds.tolist()))
    return [(" + ".join(n for n in names if n != b), ds != b, b, ds == b) for b in names] if len(names) > 1 else []


def row(name: str, per: dict[str, dict[str, float]], note: str = "") -> str:
    cells = " | ".join(f"{r['acc']:.3f} / {r['f1']:.3f}" for r in per.values())
    ne = per["overall"]["recall"][LABELS.index("neutral")]
    return f"| {name} | {cells} | {ne:.2f} | {note} |"


def lodo_tables(P: dict[str, np.ndarray]) -> dict[str, float]:
    y, ds = P["y"], P["dataset"]
    names = list(dict.fromkeys(ds.tolist()))
    masks = {d: ds == d for d in names} | {"overall": np.ones(len(y), bool)}
    S = systems(P)
    head = " | ".join(names)
    print("\n### Each reading as is (accuracy / macro-F1; neutral recall overall)\n")
    print(f"| reading | {head} | overall | neutral | ECE {' / '.join(names)} |\n|---|" + "---|" * (len(names) + 3))
    for name, p in S.items():
        per = {d: _scores(p[m], y[m]) for d, m in masks.items()}
        print(row(name, per, " / ".join(f"{per[d]['ece']:.3f}" for d in names)))

    print("\n### Ensembles: the weight on face-api.js chosen (macro-F1) on one dataset, scored on the other\n")
    print("| ensemble | chosen on | weight | held-out dataset | held out: acc / F1 | face-api.js alone there |")
    print("|---|---|---|---|---|---|")
    grid = np.round(np.linspace(0, 1, 11), 2)
    fa_key, fer_key = "face-api.js (default)", "FER-2013 + mirror"
    for geometric in (False, True):
        for fer_name in ("FER-2013 (its crop)", fer_key):
            for a, ma, b, mb in folds(ds):
                f1 = {w: _scores(mix(S[fa_key], S[fer_name], w, geometric)[ma], y[ma])["f1"] for w in grid}
                w = max(grid, key=lambda k: (round(f1[k], 4), k))
                held = _scores(mix(S[fa_key], S[fer_name], w, geometric)[mb], y[mb])
                alone = _scores(S[fa_key][mb], y[mb])
                kind = "geometric" if geometric else "arithmetic"
                print(f"| {kind}, face-api.js + {fer_name} | {a} | {w:.1f} | {b} | {held['acc']:.3f} / "
                      f"{held['f1']:.3f} | {alone['acc']:.3f} / {alone['f1']:.3f} |")
    print("\nfixed weights (no choice on labels), accuracy / macro-F1:\n")
    print(f"| ensemble | {head} | overall | neutral | |\n|---|" + "---|" * (len(names) + 3))
    for geometric in (False, True):
        for w in (0.5, 0.6, 0.7, 0.8):
            p = mix(S[fa_key], S[fer_key], w, geometric)
            per = {d: _scores(p[m], y[m]) for d, m in masks.items()}
            print(row(f"{'geometric' if geometric else 'arithmetic'} {w:.1f} face-api.js + {1 - w:.1f} FER+mirror",
                      per))

    print("\n### Class priors: per-class log-bias fitted on one dataset, applied to the other\n")
    print("| reading | fitted on | held out | acc / F1 before | acc / F1 after |\n|---|---|---|---|---|")
    for name in (fa_key, fer_key):
        for a, ma, b, mb in folds(ds):
            bias = fit_bias(S[name][ma], y[ma])
            before, after = _scores(S[name][mb], y[mb]), _scores(with_bias(S[name][mb], bias), y[mb])
            print(f"| {name} | {a} | {b} | {before['acc']:.3f} / {before['f1']:.3f} | "
                  f"{after['acc']:.3f} / {after['f1']:.3f} |")
    return calibration_table(S, y, ds)


def calibration_table(S: dict[str, np.ndarray], y: np.ndarray, ds: np.ndarray) -> dict[str, float]:
    print("\n### Calibration: one temperature fitted (NLL) on one dataset, ECE / NLL measured on the other\n")
    print("| reading | fitted on | T | held out | mean confidence | accuracy | ECE before | ECE after | "
          "NLL before | NLL after | wrong at >= 0.9 |\n|---|---|---|---|---|---|---|---|---|---|---|")
    temps = {}
    for name, p in S.items():
        for a, ma, b, mb in folds(ds):
            t = fit_temperature(p[ma], y[ma])
            temps[name, a] = t
            before, after = _scores(p[mb], y[mb]), _scores(apply_temperature(p[mb], t), y[mb])
            print(f"| {name} | {a} | {t:.2f} | {b} | {before['conf']:.3f} -> {after['conf']:.3f} | {before['acc']:.3f}"
                  f" | {before['ece']:.3f} | {after['ece']:.3f} | {before['nll']:.3f} | {after['nll']:.3f} | "
                  f"{before['sure_wrong']} -> {after['sure_wrong']} of {int((1 - before['acc']) * mb.sum() + 0.5)} |")
    sentiment_check(S["face-api.js (default)"], y, (temps["face-api.js (default)", a] for a, *_ in folds(ds)))
    return {f"{n}@{a}": t for (n, a), t in temps.items()}


def sentiment_check(p: np.ndarray, y: np.ndarray, temps) -> None:
    """How often the sentiment (polarity of the expected valence) matches the polarity of the photo's label,
    with the valence taken from the raw reading (what analysis does) or from the calibrated probabilities."""
    from video_emotion.labels import VALENCE, polarity

    v = np.array([VALENCE[lab] for lab in LABELS])
    truth = np.array([polarity(v[c]) for c in y])
    neutral = y == LABELS.index("neutral")

    def agree(q: np.ndarray, m: np.ndarray | None = None) -> float:
        hit = np.array([polarity(x) for x in q @ v]) == truth
        return float(np.mean(hit if m is None else hit[m]))

    print("\nsentiment agreement with the label's polarity, all photos (neutral photos):")
    print(f"- valence of the raw reading (analysis): {agree(p):.3f} ({agree(p, neutral):.2f})")
    for t in temps:
        q = apply_temperature(p, t)
        print(f"- valence of the probabilities calibrated with T = {t:.2f}: {agree(q):.3f} ({agree(q, neutral):.2f})")


def plot(P: dict[str, np.ndarray], temps: dict[str, float], out: Path, name: str = "face-api.js (default)") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p, y, ds = systems(P)[name], P["y"], P["dataset"]
    splits = folds(ds)
    fig, axes = plt.subplots(1, len(splits), figsize=(4.5 * len(splits), 4.2), sharey=True, squeeze=False)
    axes = axes[0]
    for ax, (a, _, b, m) in zip(axes, splits, strict=True):
        t = temps[f"{name}@{a}"]
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
        for probs, label, c in ((p[m], f"raw (ECE {ece(p[m], y[m]):.3f})", "tab:red"),
                                (apply_temperature(p[m], t), f"T = {t:.2f} fitted on {a} (ECE "
                                 f"{ece(apply_temperature(p[m], t), y[m]):.3f})", "tab:blue")):
            r = reliability(probs, y[m])
            seen = r["count"] > 0
            ax.plot(r["confidence"][seen], r["accuracy"][seen], "o-", color=c, label=label)
            for cx, ay, n in zip(r["confidence"][seen], r["accuracy"][seen], r["count"][seen], strict=True):
                ax.annotate(str(int(n)), (cx, ay), fontsize=6, color=c, xytext=(2, -8), textcoords="offset points")
        ax.set_title(f"held out: {b} (n={int(m.sum())})")
        ax.set_xlabel("confidence (top class)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylabel("accuracy")
    fig.suptitle(f"Reliability of {name} on real faces, before and after one temperature (10 bins; counts beside)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"\nwrote {out}")


def main(argv: list[str] | None = None) -> int:
    default = ROOT.parent / "shared" / "realfaces-dev"
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", nargs="?", type=Path, default=default)
    ap.add_argument("--cache", type=Path, default=None, help="npz of the networks' probabilities (kept out of git)")
    ap.add_argument("--plot", type=Path, default=None, help="write the reliability plot (PNG) here")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    if args.cache and args.cache.is_file():
        P = dict(np.load(args.cache))
    else:
        P = read_networks(args.folder)
        if args.cache:
            np.savez(args.cache, **P)
    print(f"## {len(P['y'])} photos, faces found {P['found'].mean():.3f}; LABELS {', '.join(LABELS)}")
    temps = lodo_tables(P)
    if args.plot:
        plot(P, temps, args.plot)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s; load average {open('/proc/loadavg').read().split()[:3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
