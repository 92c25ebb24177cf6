"""`video-emotion` console script: analyse videos, fetch assets, show the pipeline's results."""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
from pathlib import Path
from typing import Any

from video_emotion.stages.common import setup_env


def _cmd_assets(args: argparse.Namespace) -> int:
    from video_emotion.assets import fetch
    from video_emotion.config import load_params

    params = load_params(args.params)
    files = fetch({"pretrained": params.path("pretrained"), "real_faces_dir": params.path("real_faces_dir")},
                  params.root / ".cache" / "wheels")
    print(f"{len(files)} asset file(s) in place")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from video_emotion.config import load_params

    params = load_params(args.params)
    path = params.path("metrics_dir") / "eval.json"
    if not path.is_file():
        print(f"no evaluation yet ({path} missing): run `make run`", file=sys.stderr)
        return 1
    m = json.loads(path.read_text())
    print("Test metrics (synthetic corpus, actor-disjoint test split):")
    print(f"  accuracy (WAR) {m['accuracy']:.3f}   macro-F1 {m['macro_f1']:.3f}   UAR {m['uar']:.3f}   "
          f"clips {m['test_clips']}")
    if "realface_pass" in m:
        print(f"  real-face check: {'PASS' if m['realface_pass'] else 'FAIL'} (crying windows read sad "
              f"{m['realface_crying_sad_share']:.2f}, laughing windows read happy "
              f"{m['realface_laughing_happy_share']:.2f}, posed photos {m['realface_photo_accuracy']:.2f})")
    reg = params.root / "reports" / "registry.json"
    if reg.is_file():
        r = json.loads(reg.read_text())
        print(f"  registered {r['name']} v{r['version']} as @{r['alias']} ({r['reason']})")
    print("Open the MLflow UI with:")
    print(f"  .venv/bin/mlflow ui --backend-store-uri {params.tracking.uri} --port 5000")
    return 0


def _cmd_keys(args: argparse.Namespace) -> int:
    import os

    from video_emotion import secure_store as ss
    from video_emotion.config import load_params

    params = load_params(args.params)
    key_file = Path(params.secure.key_file).expanduser()
    if args.action in ("init", "ensure"):
        if os.environ.get(ss.ENV_KEY):
            print(f"data key comes from ${ss.ENV_KEY}; nothing to create")
            return 0
        if key_file.is_file() and not getattr(args, "force", False):
            if args.action == "ensure":
                return 0
            print(f"error: {key_file} already exists (use --force to replace it: data encrypted "
                  "with the old key becomes unreadable)", file=sys.stderr)
            return 1
        ring = ss.KeyRing(source=str(key_file))
        kid = ring.add(ss.new_key())
        ss.save_keyring(ring, key_file)
        print(f"created a new data key (id {kid.hex()}) in {key_file} (permissions 0600). It encrypts the "
              "test split at rest; keep it out of the repository and back it up.")
        return 0
    if args.action == "status":
        ring = ss.load_keyring(key_file)
        print(f"data key id {ring.current.hex()} from {ring.source}" +
              (f" ({len(ring.keys) - 1} previous key(s): a rotation is unfinished)" if len(ring.keys) > 1 else ""))
        return 0
    # rotate: every encrypted file the pipeline wrote, then tell DVC about the new ciphertext.
    from video_emotion.corpora.manifest import logical_name, read_manifest, resolve
    from video_emotion.stages.preprocess import split_name

    files: list[tuple[Path, str]] = []
    manifest = params.path("manifest")
    if manifest.is_file():
        df = read_manifest(manifest)
        for col in ("path", "audio_path"):
            for rel in df[col]:
                if isinstance(rel, str) and rel.endswith(ss.SUFFIX):
                    files.append((resolve(manifest, rel), logical_name(rel)))
    processed = params.path("processed_dir")
    for enc in sorted(processed.glob(f"*.npz{ss.SUFFIX}")):
        files.append((enc, split_name(processed, enc.name[: -len(".npz" + ss.SUFFIX)])))
    try:
        out = ss.rotate(files, key_file)
    except ss.SecureStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    ring = ss.load_keyring(key_file)
    print(f"rotated to key id {ring.current.hex()}: {out['reencrypted']} file(s) re-encrypted, "
          f"{out['already_current']} already under the new key")
    if (params.root / "dvc.lock").is_file() and not args.no_dvc_commit:
        import subprocess

        subprocess.run(["dvc", "commit", "--force", "--quiet", "ingest", "preprocess"], cwd=params.root, check=False)
        print("recorded the new ciphertext in dvc.lock (dvc commit ingest preprocess)")
    return 0


def _cmd_bento_import(args: argparse.Namespace) -> int:
    from video_emotion.bento_store import import_bundle

    p = Path(args.model)
    try:
        if p.is_dir():
            tag = import_bundle(p, {"name": "video-emotion", "version": "local", "source": str(p)})
        else:
            from video_emotion import tracking
            from video_emotion.config import load_params

            import tempfile

            params = load_params(args.params)
            with tempfile.TemporaryDirectory(prefix="video-emotion-model-") as tmp:
                folder, info = tracking.download_model(args.model, params.tracking, params.root, Path(tmp))
                tag = import_bundle(folder, {**info, "source": f"mlflow:{args.model}"})
    except Exception as exc:
        print(f"error: cannot import model {args.model!r}: {exc}", file=sys.stderr)
        return 1
    print(f"imported {args.model} into the BentoML model store as {tag}; serve it with `bentoml serve`")
    return 0


def _cmd_apikey(args: argparse.Namespace) -> int:
    from video_emotion.auth import create_key, key_file_path

    path = Path(args.key_file).expanduser() if args.key_file else key_file_path()
    key = create_key(args.name, path)
    print(key)
    print(f"(shown once; only its SHA-256 hash was stored in {path})", file=sys.stderr)
    return 0


def _magic(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(4)


def _cmd_audit(args: argparse.Namespace) -> int:
    """Scan the project tree (DVC cache and MLflow artifacts included) for plaintext test data."""
    import numpy as np

    from video_emotion.config import load_params
    from video_emotion.corpora.manifest import read_manifest
    from video_emotion.io_utils import sha256_file

    params = load_params(args.params)
    df = read_manifest(params.path("manifest"))
    secret = set(df.loc[df["split"].isin(params.secure.encrypted_splits), "sha256"])
    found, scanned = [], 0
    for f in params.root.rglob("*"):
        if not f.is_file() or ".venv" in f.parts or ".git" in f.parts:
            continue
        scanned += 1
        if f.stat().st_size > 64 and sha256_file(f) in secret:
            found.append(f"{f}: a test clip in plaintext")
        elif f.suffix == ".npz" or _magic(f) == b"PK\x03\x04":
            try:
                with np.load(f, allow_pickle=False) as d:
                    if "sha256" in d.files and set(d["sha256"].tolist()) & secret:
                        found.append(f"{f}: test frames in plaintext")
            except Exception:
                continue
    for line in found:
        print(line)
    print(f"scanned {scanned} files for {len(secret)} encrypted-split clips: "
          f"{'NO plaintext test data found' if not found else f'{len(found)} plaintext file(s)'}")
    return 1 if found else 0


def _load_bundle(ref: str, params_path: str):
    from video_emotion.analyze import ModelBundle
    from video_emotion.config import load_params

    p = Path(ref)
    if p.is_dir():
        return ModelBundle.load(p, {"name": p.name, "version": "local"})
    import tempfile

    from video_emotion import tracking

    params = load_params(params_path)
    with tempfile.TemporaryDirectory(prefix="video-emotion-model-") as tmp:
        folder, info = tracking.download_model(ref, params.tracking, params.root, Path(tmp))
        return ModelBundle.load(folder, info)  # loaded into memory; the download can go


def _csv_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    labels = result["model"]["labels"]
    rows = []
    for s in result["timeline"]:
        rows.append({"video": result["video"], "start_s": s["start_s"], "end_s": s["end_s"], "emotion": s["emotion"],
                     "confidence": s["confidence"], "valence": s["valence"], "arousal": s["arousal"],
                     "sentiment": s["sentiment"], **{f"p_{k}": s["probabilities"][k] for k in labels}})
    return rows


def _cmd_analyze(args: argparse.Namespace) -> int:
    from video_emotion.analyze import analyze_video
    from video_emotion.video import VideoError

    try:
        bundle = _load_bundle(args.model, args.params)
    except Exception as exc:  # a missing model is one clear line, not a traceback
        print(f"error: cannot load model {args.model!r}: {exc}", file=sys.stderr)
        return 2
    transcript = None
    if args.transcript:
        try:
            transcript = Path(args.transcript).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            print(f"error: transcript {args.transcript}: {exc}", file=sys.stderr)
            return 2
    results, failed = [], 0
    for path in args.paths:
        try:
            results.append(analyze_video(path, bundle, sample_fps=args.sample_fps, lang=args.lang,
                                         progress=sys.stderr.isatty(), transcript=transcript,
                                         transcript_lang=args.transcript_lang))
        except (VideoError, ValueError, OSError) as exc:
            failed += 1
            print(f"error: {path}: {exc}", file=sys.stderr)
    if args.format == "json":
        text = json.dumps(results[0] if len(results) == 1 and len(args.paths) == 1 else results,
                          ensure_ascii=False, indent=2) + "\n"
    else:
        buf = io.StringIO()
        rows = [r for res in results for r in _csv_rows(res)]
        if rows:
            writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        text = buf.getvalue()
    if args.out:
        from video_emotion.io_utils import write_text

        write_text(args.out, text)
    else:
        sys.stdout.write(text)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    setup_env()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for noisy in ("mlflow", "alembic", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    p = argparse.ArgumentParser(prog="video-emotion", description=__doc__)
    p.add_argument("--params", default="params.yaml")
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("analyze", help="emotion timeline + summary of one or more videos")
    a.add_argument("paths", nargs="+")
    a.add_argument("--model", default="video-emotion@champion",
                   help="registry reference (name@alias, name/version) or a local bundle folder")
    a.add_argument("--sample-fps", type=float, default=None, help="frames analysed per second (default: the model's rate)")
    a.add_argument("--lang", choices=["en", "zh"], default="en", help="language of the label names in the result")
    a.add_argument("--transcript", default=None, help="transcript (plain text, .srt or .vtt) of the video")
    a.add_argument("--transcript-lang", choices=["en", "zh"], default=None, help="transcript language (default: detected)")
    a.add_argument("--format", choices=["json", "csv"], default="json")
    a.add_argument("--out", default=None, help="write here instead of stdout")
    a.set_defaults(func=_cmd_analyze)
    s = sub.add_parser("assets", help="fetch pinned pretrained weights and real test footage (offline-safe)")
    s.set_defaults(func=_cmd_assets)
    k = sub.add_parser("keys", help="data key for the encrypted test split: init | ensure | status | rotate")
    k.add_argument("action", choices=["init", "ensure", "status", "rotate"])
    k.add_argument("--force", action="store_true", help="init: replace an existing key")
    k.add_argument("--no-dvc-commit", action="store_true", help="rotate: do not update dvc.lock")
    k.set_defaults(func=_cmd_keys)
    b = sub.add_parser("bento-import", help="import a registered model (or a bundle folder) into the BentoML store")
    b.add_argument("--model", default="video-emotion@champion")
    b.set_defaults(func=_cmd_bento_import)
    ak = sub.add_parser("apikey", help="create an API key for the service (prints it once, stores its hash)")
    ak.add_argument("action", choices=["create"])
    ak.add_argument("--name", default="default")
    ak.add_argument("--key-file", default=None, help="default: $VIDEO_EMOTION_API_KEY_FILE or ~/.config/video-emotion/api_keys")
    ak.set_defaults(func=_cmd_apikey)
    au = sub.add_parser("audit", help="scan the project (DVC cache, MLflow artifacts) for plaintext test data")
    au.set_defaults(func=_cmd_audit)
    r = sub.add_parser("report", help="print the latest test metrics and how to open the MLflow UI")
    r.set_defaults(func=_cmd_report)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
