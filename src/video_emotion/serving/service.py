"""BentoML service: POST /analyze (a video -> emotion timeline + summary), GET /model, behind API keys.

Serves the model imported into the BentoML store by `video-emotion bento-import` (the MLflow
champion by default). Every request goes through the same `analyze_video` as the CLI; labels and
preprocessing come from the model bundle. Bad input gets a 4xx JSON error and never takes the
service down; uploads are written to a private temp file that is always removed.

Settings (environment): VIDEO_EMOTION_BENTO_MODEL (default video-emotion:latest),
VIDEO_EMOTION_MAX_UPLOAD_MB (200), VIDEO_EMOTION_MAX_DURATION_S (600), VIDEO_EMOTION_CONCURRENCY
(analyses at once; default one per core), VIDEO_EMOTION_API_KEYS /
VIDEO_EMOTION_API_KEY_FILE (see auth.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import bentoml
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse

from video_emotion.features.video import VIDEO_SUFFIXES
from video_emotion.serving.auth import GuardMiddleware

log = logging.getLogger("video_emotion.serving.service")

MODEL_TAG = os.environ.get("VIDEO_EMOTION_BENTO_MODEL", "video-emotion:latest")
MAX_UPLOAD_BYTES = int(float(os.environ.get("VIDEO_EMOTION_MAX_UPLOAD_MB", "200")) * (1 << 20))
MAX_DURATION_S = float(os.environ.get("VIDEO_EMOTION_MAX_DURATION_S", "600"))
MAX_TRANSCRIPT_BYTES = 1 << 20
MIN_FRAMES = 3
WEB_DIR = Path(__file__).parent / "web"
WEB_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}

app = FastAPI(title="video-emotion", docs_url=None, redoc_url=None, openapi_url=None)


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _float_field(form: Any, name: str) -> float | None:
    raw = form.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if not isinstance(raw, str):
        raise BadRequest(400, f"`{name}` must be a number, not a file")
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(400, f"`{name}` must be a number, got {raw[:40]!r}") from None
    if not (0 < value <= 60):
        raise BadRequest(400, f"`{name}` must be in (0, 60] frames per second, got {value}")
    return value


async def _text_field(form: Any, name: str) -> str | None:
    raw = form.get(name)
    if raw is None:
        return None
    if isinstance(raw, str):
        data = raw.encode("utf-8")
    else:
        data = await raw.read(MAX_TRANSCRIPT_BYTES + 1)
    if len(data) > MAX_TRANSCRIPT_BYTES:
        raise BadRequest(413, f"`{name}` over the {MAX_TRANSCRIPT_BYTES >> 10} KiB limit")
    if not data.strip():
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRequest(400, f"`{name}` must be UTF-8 text (plain, .srt or .vtt)") from None


@bentoml.service(name="video_emotion", traffic={"timeout": 900, "max_concurrency": 16}, workers=1)
@bentoml.asgi_app(app, path="/")
class VideoEmotion:
    bento_model = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        from video_emotion.inference.bundle import ModelBundle

        folder = Path(self.bento_model.path)
        info = json.loads((folder / "registry.json").read_text()) if (folder / "registry.json").is_file() else {}
        info.setdefault("name", "video-emotion")
        self.bundle = ModelBundle.load(folder, info)
        self.bundle.warm_up()  # trace the model graph before the first request
        self.model_tag = str(self.bento_model.tag)
        # One analysis per core at a time (VIDEO_EMOTION_CONCURRENCY overrides): decoding and face
        # search of one request overlap the CNN of another (measured on 2 cores: p95 at
        # concurrency 4 1.76 s with one slot, 1.37 s with two); more requests queue here.
        self.slots = asyncio.Semaphore(int(os.environ.get("VIDEO_EMOTION_CONCURRENCY", "0")) or (os.cpu_count() or 2))
        log.info("serving %s (registry version %s)", self.model_tag, info.get("version", "?"))

    @app.get("/favicon.ico")
    async def favicon(self):
        from fastapi import Response

        return Response(status_code=204)

    @app.get("/ui")
    async def page_root(self) -> RedirectResponse:
        return RedirectResponse("/ui/")

    @app.get("/ui/")
    async def page(self) -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", media_type="text/html")

    @app.get("/ui/{name}")
    async def page_asset(self, name: str):
        if name not in WEB_FILES:  # a fixed set of files: no path ever reaches the file system
            return _error(404, "not found")
        return FileResponse(WEB_DIR / name, media_type=WEB_FILES[name])

    @app.get("/model")
    async def model_info(self) -> JSONResponse:
        info = self.bundle.info
        metrics = {k: info[k] for k in ("test_macro_f1", "real_face_check", "alias_decision") if k in info}
        return JSONResponse({
            "name": info.get("name", "video-emotion"), "version": str(info.get("version", "local")),
            "bento_model": self.model_tag, "labels": self.bundle.labels, "metrics": metrics,
            "modalities": self.bundle.modalities,
            "preprocessing": {"n_frames": self.bundle.n_frames, "image_size": self.bundle.preprocess.image_size,
                              "window_s": self.bundle.window_s},
            "limits": {"max_upload_mb": MAX_UPLOAD_BYTES >> 20, "max_duration_s": MAX_DURATION_S,
                       "min_frames": MIN_FRAMES},
        })

    @app.post("/analyze")
    async def analyze(self, request: Request) -> JSONResponse:
        from video_emotion.features.video import VideoError
        from video_emotion.text.sentiment import TranscriptError

        tmp_path: Path | None = None
        form = None
        try:
            ctype = request.headers.get("content-type", "")
            if not ctype.startswith("multipart/form-data"):
                raise BadRequest(415, "send multipart/form-data with the video in the field `video`")
            try:
                form = await request.form(max_files=2, max_fields=10)
            except Exception as exc:  # malformed multipart bodies
                raise BadRequest(400, f"malformed multipart body: {exc}") from None
            upload = form.get("video")
            if upload is None or isinstance(upload, str):
                raise BadRequest(400, "no file in the field `video`")
            lang = form.get("lang") or "en"
            if lang not in ("en", "zh"):
                raise BadRequest(400, f"`lang` must be en or zh, got {str(lang)[:20]!r}")
            sample_fps = _float_field(form, "sample_fps")
            transcript = await _text_field(form, "transcript")
            transcript_lang = form.get("transcript_lang") or None
            if transcript_lang not in (None, "en", "zh"):
                raise BadRequest(400, f"`transcript_lang` must be en or zh, got {str(transcript_lang)[:20]!r}")
            suffix = Path(upload.filename or "").suffix.lower()
            fd, name = tempfile.mkstemp(prefix="video-emotion-upload-", suffix=suffix if suffix in VIDEO_SUFFIXES else ".bin")
            tmp_path = Path(name)
            size = 0
            with os.fdopen(fd, "wb") as out:
                while chunk := await upload.read(1 << 20):
                    size += len(chunk)
                    out.write(chunk)
            if size == 0:
                raise BadRequest(400, "the uploaded video is empty (0 bytes)")
            async with self.slots:
                result = await asyncio.to_thread(self._run, tmp_path, sample_fps, lang, transcript, transcript_lang)
            result["video"] = Path(upload.filename or "upload").name
            return JSONResponse(result)
        except BadRequest as exc:
            return _error(exc.status, exc.message)
        except TranscriptError as exc:
            return _error(400, f"transcript: {exc}")
        except VideoError as exc:
            return _error(422, f"cannot analyse the video: {str(exc).replace(str(tmp_path), 'upload')}")
        except ValueError as exc:
            return _error(400, str(exc))
        except Exception:  # a bug, not bad input: logged in full, answered without internals
            log.exception("analysis failed")
            return _error(500, "internal error while analysing the video; see the server log")
        finally:
            if form is not None:
                await form.close()
            if tmp_path is not None:
                tmp_path.unlink(missing_ok=True)

    def _run(self, path: Path, sample_fps: float | None, lang: str, transcript: str | None,
             transcript_lang: str | None = None) -> dict[str, Any]:
        import cv2

        from video_emotion.features.video import VideoError, probe
        from video_emotion.inference.analyze import analyze_video

        info = probe(path)
        if info.duration_s > MAX_DURATION_S:
            raise BadRequest(413, f"video is {info.duration_s:.0f} s long; the limit is {MAX_DURATION_S:.0f} s")
        try:
            return analyze_video(path, self.bundle, sample_fps=sample_fps, lang=lang, transcript=transcript,
                                 transcript_lang=transcript_lang, min_frames=MIN_FRAMES)
        except cv2.error as exc:  # a stream OpenCV opens but cannot decode
            raise VideoError(f"undecodable video stream ({exc.err or 'OpenCV error'})") from None


# The page itself (/ui) is static and public; everything it does goes through the keyed API.
VideoEmotion.add_asgi_middleware(GuardMiddleware, max_body_bytes=MAX_UPLOAD_BYTES + (1 << 20),
                                 public_prefixes=("/ui", "/favicon.ico"))
