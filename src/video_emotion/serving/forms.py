"""The /analyze request: multipart form, fields and the uploaded video, checked before any work.

Everything here judges what a client sent, so every failure is an *input* error (`BadRequest`, a
4xx with a message meant for the client). Failures of the server itself (disk, bugs) are not caught
here: the service answers them with 500 and a request id.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from video_emotion.features.audio import AUDIO_SUFFIXES
from video_emotion.features.video import VIDEO_SUFFIXES

MAX_TRANSCRIPT_BYTES = 1 << 20


class BadRequest(Exception):
    """The client's request cannot be served as sent: `status` (4xx) and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class ClientGone(Exception):
    """The client disconnected: nobody is waiting for an answer any more."""


@dataclass
class AnalyzeRequest:
    """The checked fields of one /analyze request (the video itself is saved separately)."""

    upload: Any
    filename: str
    lang: str = "en"
    sample_fps: float | None = None
    transcript: str | None = None
    transcript_lang: str | None = None
    transcribe: str = "auto"
    speech_lang: str | None = None
    voice: str = "auto"


async def read_form(request: Any) -> Any:
    """Parse the multipart body; every parse failure is the client's (400), a disconnect is ClientGone."""
    from starlette.exceptions import HTTPException
    from starlette.formparsers import MultiPartException
    from starlette.requests import ClientDisconnect

    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise BadRequest(415, "send multipart/form-data with the video in the field `video`")
    try:
        return await request.form(max_files=2, max_fields=10)
    except ClientDisconnect:
        raise ClientGone() from None
    except HTTPException as exc:  # starlette's wrapper of MultiPartException
        raise BadRequest(400, f"malformed multipart body: {exc.detail}") from None
    # The parser meets bytes chosen by the client: a missing boundary (KeyError), bad headers
    # (ValueError, UnicodeDecodeError) are all malformed input, never a server fault.
    except (MultiPartException, KeyError, ValueError, UnicodeError) as exc:
        raise BadRequest(400, f"malformed multipart body ({type(exc).__name__})") from None


def float_field(form: Any, name: str, low: float = 0.0, high: float = 60.0) -> float | None:
    raw = form.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if not isinstance(raw, str):
        raise BadRequest(400, f"`{name}` must be a number, not a file")
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(400, f"`{name}` must be a number, got {raw[:40]!r}") from None
    if not (low < value <= high):
        raise BadRequest(400, f"`{name}` must be in ({low:g}, {high:g}] frames per second, got {value}")
    return value


def choice_field(form: Any, name: str, choices: tuple[str, ...], default: str | None) -> str | None:
    raw = form.get(name)
    if raw is None or raw == "":
        return default
    if not isinstance(raw, str) or raw not in choices:
        shown = str(raw)[:20] if isinstance(raw, str) else "a file"
        raise BadRequest(400, f"`{name}` must be {' or '.join(choices)}, got {shown!r}")
    return raw


def speech_lang_field(form: Any, name: str = "speech_lang") -> str | None:
    """A language Whisper knows (`en`, `zh`, `zh-TW`, `fr`, ...), or None: detected."""
    from video_emotion.text.speech import whisper_language

    raw = form.get(name)
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise BadRequest(400, f"`{name}` must be a language code such as en or zh, not a file")
    try:
        whisper_language(raw)
    except ValueError:
        raise BadRequest(400, f"`{name}` must be a language code such as en or zh, got {raw[:20]!r}") from None
    return raw


async def text_field(form: Any, name: str) -> str | None:
    raw = form.get(name)
    if raw is None:
        return None
    data = raw.encode("utf-8") if isinstance(raw, str) else await raw.read(MAX_TRANSCRIPT_BYTES + 1)
    if len(data) > MAX_TRANSCRIPT_BYTES:
        raise BadRequest(413, f"`{name}` over the {MAX_TRANSCRIPT_BYTES >> 10} KiB limit")
    if not data.strip():
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRequest(400, f"`{name}` must be UTF-8 text (plain, .srt or .vtt)") from None


async def parse_fields(form: Any) -> AnalyzeRequest:
    """The checked fields of an /analyze form (400 on the first bad one)."""
    upload = form.get("video")
    if upload is None or isinstance(upload, str):
        raise BadRequest(400, "no file in the field `video`")
    return AnalyzeRequest(
        upload=upload, filename=Path(upload.filename or "upload").name,
        lang=choice_field(form, "lang", ("en", "zh"), "en"),
        sample_fps=float_field(form, "sample_fps"),
        transcript=await text_field(form, "transcript"),
        transcript_lang=choice_field(form, "transcript_lang", ("en", "zh"), None),
        transcribe=choice_field(form, "transcribe", ("auto", "off"), "auto"),
        speech_lang=speech_lang_field(form),
        voice=choice_field(form, "voice", ("auto", "off"), "auto"),
    )


async def save_upload(upload: Any) -> Path:
    """Copy the uploaded video (or audio file) to a private (0600) temp file; the caller removes it. 400 if empty."""
    suffix = Path(upload.filename or "").suffix.lower()
    known = suffix in VIDEO_SUFFIXES or suffix in AUDIO_SUFFIXES  # an audio file is told by its name, then its streams
    fd, name = tempfile.mkstemp(prefix="video-emotion-upload-", suffix=suffix if known else ".bin")
    path = Path(name)
    try:
        size = 0
        with os.fdopen(fd, "wb") as out:
            while chunk := await upload.read(1 << 20):
                size += len(chunk)
                out.write(chunk)
        if size == 0:
            raise BadRequest(400, "the uploaded video is empty (0 bytes)")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path
