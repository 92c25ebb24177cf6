"""`video-emotion` console script: analyse videos, fetch assets, manage keys, show the pipeline's results.

Argument parsing only; what each command does is in `commands` (which calls the library).
"""

from __future__ import annotations

import argparse
import logging
import sys

from video_emotion import commands
from video_emotion.stages.runner import setup_env


def _add_apikey(sub) -> None:
    """`apikey create|list|revoke` (see commands.cmd_apikey)."""
    ak = sub.add_parser("apikey", help="API keys of the service: create (printed once), list, revoke NAME")
    ak.add_argument("action", choices=["create", "list", "revoke"])
    ak.add_argument("key_name", nargs="?", metavar="NAME", help="the key to revoke (or to create)")
    ak.add_argument("--name", help="create: the key's name (default: default)")
    ak.add_argument("--key-file", help="default: $VIDEO_EMOTION_API_KEY_FILE or ~/.config/video-emotion/api_keys")
    ak.set_defaults(func=commands.cmd_apikey)


def _add_analyze(sub) -> None:
    a = sub.add_parser("analyze", help="emotion timeline + summary of one or more videos or audio files")
    a.add_argument("paths", nargs="+")
    a.add_argument("--model", default="video-emotion@champion",
                   help="registry reference (name@alias, name/version) or a local bundle folder")
    a.add_argument("--sample-fps", type=float, default=None,
                   help="frames analysed per second (default: the model's rate)")
    a.add_argument("--lang", choices=["en", "zh"], default="en", help="language of the label names in the result")
    a.add_argument("--transcript", default=None, help="transcript (plain text, .srt or .vtt) of the video")
    a.add_argument("--transcript-lang", choices=["en", "zh"], default=None,
                   help="transcript language (default: detected)")
    a.add_argument("--transcribe", choices=["auto", "off"], default="auto",
                   help="recognise the speech of videos without --transcript (offline Whisper base; default auto)")
    a.add_argument("--speech-lang", default=None, help="language spoken (en, zh, ...; default: detected)")
    a.add_argument("--voice", choices=["auto", "off"], default="auto",
                   help="read the emotion in the voice with the model's voice model (default auto)")
    a.add_argument("--format", choices=["json", "csv"], default="json")
    a.add_argument("--out", default=None, help="write here instead of stdout")
    a.set_defaults(func=commands.cmd_analyze)


def _add_batch(sub) -> None:
    bt = sub.add_parser("batch", help="analyse a video library into a Parquet table, locally or on Ray (resumable)")
    bt.add_argument("input", help="folder (recursive), glob, .txt/.csv list of paths, or an fsspec URL of these")
    bt.add_argument("--out", required=True,
                    help="output folder (summary/*.parquet, timelines/*.jsonl); a rerun resumes")
    bt.add_argument("--engine", choices=["auto", "local", "ray"], default="auto",
                    help="local: one video after the other here; ray: RAY_ADDRESS's cluster, else a local Ray; "
                         "auto (default): ray when RAY_ADDRESS is set, else local")
    bt.add_argument("--model", default="video-emotion@champion", help="as for analyze")
    bt.add_argument("--sample-fps", type=float, default=None, help="as for analyze")
    bt.add_argument("--lang", choices=["en", "zh"], default="en")
    bt.add_argument("--transcribe", choices=["auto", "off"], default="auto", help="as for analyze")
    bt.add_argument("--speech-lang", default=None)
    bt.add_argument("--voice", choices=["auto", "off"], default="auto", help="as for analyze")
    bt.add_argument("--workers", type=int, default=None,
                    help="ray: parallel decode tasks (default: the cluster's CPUs)")
    bt.add_argument("--actors", type=int, default=None, help="ray: model actors (default: one per 5 workers)")
    bt.add_argument("--batch-windows", type=int, default=8, help="windows per model call (default 8)")
    bt.add_argument("--ship-model", action="store_true",
                    help="ray: copy the model to each node through the cluster even when all share this machine")
    bt.add_argument("--deadline", type=float, default=24 * 3600.0, metavar="SECONDS",
                    help="ray: the job's time limit (default a day); a video waits for a live node or model actor "
                         "until then, and only what is not analysed by then comes back lost")
    bt.add_argument("--retry-errors", action="store_true", help="analyse again the videos whose row has an error")
    bt.set_defaults(func=commands.cmd_batch)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="video-emotion", description=__doc__.split("\n\n")[0])
    p.add_argument("--params", default="params.yaml")
    sub = p.add_subparsers(dest="cmd", required=True)
    _add_analyze(sub)
    _add_batch(sub)
    ef = sub.add_parser("evaluate-faces", help="how well a model reads a labelled folder of real faces (photos, clips)")
    ef.add_argument("folder",
                    help="labels.csv (file,label[,dataset][,subject]) with the files, or one folder per label")
    ef.add_argument("--model", default="video-emotion@champion", help="as for analyze")
    ef.add_argument("--out", default=None, help="also write the full report as JSON here")
    ef.set_defaults(func=commands.cmd_evaluate_faces)
    sub.add_parser("assets",
                   help="fetch pinned pretrained weights, face detectors, real test footage and the speech model"
                   ).set_defaults(func=commands.cmd_assets)
    k = sub.add_parser("keys", help="data key for the encrypted test split: init | ensure | status | rotate")
    k.add_argument("action", choices=["init", "ensure", "status", "rotate"])
    k.add_argument("--force", action="store_true", help="init: replace an existing key")
    k.add_argument("--no-dvc-commit", action="store_true", help="rotate: do not update dvc.lock")
    k.set_defaults(func=commands.cmd_keys)
    b = sub.add_parser("bento-import", help="import a registered model (or a bundle folder) into the BentoML store")
    b.add_argument("--model", default="video-emotion@champion")
    b.set_defaults(func=commands.cmd_bento_import)
    _add_apikey(sub)
    sub.add_parser("audit", help="scan the project (DVC cache, MLflow artifacts) for plaintext test data"
                   ).set_defaults(func=commands.cmd_audit)
    sub.add_parser("report", help="print the latest test metrics and how to open the MLflow UI"
                   ).set_defaults(func=commands.cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    setup_env()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for noisy in ("mlflow", "alembic", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
