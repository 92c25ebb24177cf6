"""The one stage runner: every DVC stage declares the paths it reads and writes; parameters, paths,
logging, the data key and clean failure are set up here once.

Paths come from `params.yaml` (`paths:`), the same place `dvc.yaml` templates them from, so code and
pipeline cannot disagree; each declared path can still be overridden on the command line
(`--raw-dir ...`), which is what tests and one-off runs use.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from video_emotion.config import Params, load_params

log = logging.getLogger("video_emotion")

PathRule = Callable[[Params], Path]


class StageError(RuntimeError):
    """An expected failure (bad data, bad input): reported in one line, exit code 1."""


def param_path(key: str, child: str | None = None) -> PathRule:
    """The path `paths.<key>` of params.yaml (optionally a file `child` inside it)."""
    return lambda params: params.path(key) / child if child else params.path(key)


def setup_env() -> None:
    """Quiet, offline-friendly defaults for the libraries the stages load."""
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # some CPU Keras CNNs segfault with oneDNN on
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    # FFmpeg's own lines inside OpenCV ("Invalid NAL unit size" on a damaged packet, "moov atom not found"): a bad
    # file is reported in one line of the project's own; OPENCV_FFMPEG_LOGLEVEL=16 shows FFmpeg's errors again.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`-S section.key=value` items (YAML values) -> {"section.key": value}."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise StageError(f"--set expects SECTION.KEY=VALUE, got {item!r}")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


@dataclass
class Context:
    """What a stage body gets: parameters, its resolved paths, its arguments and the data key."""

    params: Params
    paths: dict[str, Path]
    args: argparse.Namespace

    def path(self, name: str) -> Path:
        return self.paths[name]

    @functools.cached_property
    def ring(self):
        """The data key ring (loaded on first use: stages that encrypt nothing never need a key)."""
        from video_emotion import security

        return security.load_keyring(self.params.secure.key_file)

    @property
    def encrypted_splits(self) -> list[str]:
        return list(self.params.secure.encrypted_splits)

    def ring_if(self, needed: bool):
        return self.ring if needed else None


@dataclass
class Stage:
    """A DVC stage's entry point: its name, what it reads and writes, and extra options."""

    name: str
    description: str
    reads: dict[str, PathRule] = field(default_factory=dict)
    writes: dict[str, PathRule] = field(default_factory=dict)
    options: Callable[[argparse.ArgumentParser], None] | None = None

    def parser(self) -> argparse.ArgumentParser:
        p = argparse.ArgumentParser(prog=f"python -m video_emotion.stages.{self.name}", description=self.description)
        p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
        p.add_argument("-S", "--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="override a parameter for this run (YAML value), e.g. -S train.epochs=3")
        for name in (*self.reads, *self.writes):
            p.add_argument(f"--{name.replace('_', '-')}", dest=f"path_{name}", default=None,
                           help=f"{'read' if name in self.reads else 'write'} here instead of the params.yaml path")
        if self.options:
            self.options(p)
        return p

    def main(self, body: Callable[[Context], Any], argv: list[str] | None = None) -> int:
        """Parse, set up, run `body(ctx)`; expected failures exit 1 with one clear line."""
        args = self.parser().parse_args(argv)
        setup_env()
        logging.basicConfig(level=logging.INFO, format=f"[{self.name}] %(message)s", stream=sys.stderr)
        for noisy in ("great_expectations", "alembic", "mlflow", "absl", "urllib3", "numexpr", "tensorflow"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        try:
            params = load_params(args.params, parse_overrides(args.set))
            rules = {**self.reads, **self.writes}
            paths = {name: Path(getattr(args, f"path_{name}") or rule(params)) for name, rule in rules.items()}
            body(Context(params=params, paths=paths, args=args))
        except (StageError, ValueError, OSError) as exc:
            log.error("FAILED: %s", exc)
            return 1
        return 0
