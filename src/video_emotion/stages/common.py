"""Shared plumbing of the stage entry points: argument parsing, logging, clean failure."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import yaml

from video_emotion.config import Params, load_params

log = logging.getLogger("video_emotion")


class StageError(RuntimeError):
    """An expected failure (bad data, bad input): reported in one line, exit code 1."""


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    p.add_argument("-S", "--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a parameter for this run (YAML value), e.g. -S train.epochs=3")
    return p


def setup_env() -> None:
    """Quiet, offline-friendly defaults for the libraries the stages load."""
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # some CPU Keras CNNs segfault with oneDNN on
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")


def load(args: argparse.Namespace) -> Params:
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise StageError(f"--set expects SECTION.KEY=VALUE, got {item!r}")
        overrides[key.strip()] = yaml.safe_load(value)
    return load_params(args.params, overrides)


def run_main(name: str, body: Callable[[], Any]) -> int:
    """Run a stage body with logging configured; expected failures exit 1 with one clear line."""
    setup_env()
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(message)s", stream=sys.stderr)
    for noisy in ("great_expectations", "alembic", "mlflow", "absl", "urllib3", "numexpr", "tensorflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        body()
    except (StageError, ValueError, OSError) as exc:
        log.error("FAILED: %s", exc)
        return 1
    return 0
