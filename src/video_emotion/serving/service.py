"""BentoML service: POST /analyze (a video or an audio file -> emotion timeline + summary), GET /model, behind API keys.

Serves the model imported into the BentoML store by `video-emotion bento-import` (the MLflow
champion by default). Every request goes through the same `analyze_video` as the CLI; labels and
preprocessing come from the model bundle. Bad input gets a 4xx JSON error and never takes the
service down; uploads are written to a private temp file that is always removed.

Errors: only input errors get a 4xx with a message (`forms.BadRequest`, `VideoError` and
`AudioError` 422, `TranscriptError` 400); anything else is a server fault, logged in full with a request id and
answered `500 {"error": ..., "request_id": ...}` without internals. Every answer carries the id in
`X-Request-ID`. An analysis stops at its next window when its client disconnects, and its slot is
freed only when the work has stopped (see slots.py).

Settings (environment): VIDEO_EMOTION_BENTO_MODEL (default video-emotion:latest),
VIDEO_EMOTION_MAX_UPLOAD_MB (200), VIDEO_EMOTION_MAX_DURATION_S (600), VIDEO_EMOTION_MAX_ANALYSIS_S
(time budget of one analysis, 600), VIDEO_EMOTION_CONCURRENCY (analyses at once; default one per
core), VIDEO_EMOTION_API_KEYS / VIDEO_EMOTION_API_KEY_FILE (see keystore.py), VIDEO_EMOTION_RATE_LIMIT,
VIDEO_EMOTION_TRUSTED_PROXIES (gate.py), VIDEO_EMOTION_AUDIT_LOG (audit.py), VIDEO_EMOTION_WHISPER_DIR
(the speech recognition model folder; default: the project's models/pretrained/whisper-base, which
`make serve` takes from params.yaml). Live camera sessions (WebSocket /live, see live.py):
VIDEO_EMOTION_MAX_LIVE (sessions at once, 2), VIDEO_EMOTION_MAX_LIVE_PER_KEY (of them with one key, 1),
VIDEO_EMOTION_LIVE_IDLE_S (30), VIDEO_EMOTION_LIVE_MAX_S (3600), VIDEO_EMOTION_LIVE_KEY_WAIT_S (5).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import bentoml
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse

from video_emotion.serving.auth import KEY_NAME, OVER_LIMIT, REQUEST_ID, GuardMiddleware
from video_emotion.serving.forms import AnalyzeRequest, BadRequest, ClientGone, parse_fields, read_form, save_upload
from video_emotion.serving.live import LiveLimits, LiveSlots, serve_live
from video_emotion.serving.slots import Slots, Stop, watch_disconnect

log = logging.getLogger("video_emotion.serving.service")

MODEL_TAG = os.environ.get("VIDEO_EMOTION_BENTO_MODEL", "video-emotion:latest")
MAX_UPLOAD_BYTES = int(float(os.environ.get("VIDEO_EMOTION_MAX_UPLOAD_MB", "200")) * (1 << 20))
MAX_DURATION_S = float(os.environ.get("VIDEO_EMOTION_MAX_DURATION_S", "600"))
MAX_ANALYSIS_S = float(os.environ.get("VIDEO_EMOTION_MAX_ANALYSIS_S", "600"))
MIN_FRAMES = 3
LIVE = LiveLimits(sessions=int(os.environ.get("VIDEO_EMOTION_MAX_LIVE", "2")),
                  idle_s=float(os.environ.get("VIDEO_EMOTION_LIVE_IDLE_S", "30")),
                  max_s=float(os.environ.get("VIDEO_EMOTION_LIVE_MAX_S", "3600")),
                  per_key=int(os.environ.get("VIDEO_EMOTION_MAX_LIVE_PER_KEY", "1")),
                  key_wait_s=float(os.environ.get("VIDEO_EMOTION_LIVE_KEY_WAIT_S", "5")))
WEB_DIR = Path(__file__).parent / "web"
WEB_FILES = {"index.html": "text/html", "app.js": "text/javascript", "live.js": "text/javascript",
             "style.css": "text/css"}
# The page runs only its own files: no inline script or style, no other origin; blob: plays the chosen clip;
# connect-src 'self' covers the live WebSocket (same origin, ws: or wss:).
PAGE_HEADERS = {"content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                "media-src 'self' blob:; connect-src 'self'; object-src 'none'; "
                "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
                "x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}
# Beside the package source (an editable install: the repository), unless the environment says otherwise.
DEFAULT_WHISPER_DIR = Path(__file__).resolve().parents[3] / "models" / "pretrained" / "whisper-base"

app = FastAPI(title="video-emotion", docs_url=None, redoc_url=None, openapi_url=None)


def _error(status: int, message: str, request_id: str | None = None) -> JSONResponse:
    if request_id is None:
        return JSONResponse({"error": message}, status_code=status)
    return JSONResponse({"error": message, "request_id": request_id}, status_code=status,
                        headers={"x-request-id": request_id})


@bentoml.service(name="video_emotion", traffic={"timeout": 900, "max_concurrency": 16}, workers=1)
@bentoml.asgi_app(app, path="/")
class VideoEmotion:
    bento_model = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        from video_emotion.inference.bundle import ModelBundle

        # BentoML's handlers print the package's INFO lines (request ids, reloads, stops) in the server log.
        logging.getLogger("video_emotion").setLevel(logging.INFO)

        folder = Path(self.bento_model.path)
        info = json.loads((folder / "registry.json").read_text()) if (folder / "registry.json").is_file() else {}
        info.setdefault("name", "video-emotion")
        self.bundle = ModelBundle.load(folder, info)
        self.bundle.warm_up()  # trace the model graph before the first request
        self.model_tag = str(self.bento_model.tag)
        # One analysis per core at a time (VIDEO_EMOTION_CONCURRENCY overrides): decoding and face
        # search of one request overlap the CNN of another (measured on 2 cores: p95 at
        # concurrency 4 1.76 s with one slot, 1.37 s with two); more requests queue here.
        self.speech, self.speech_status = _speech_model()
        self.slots = Slots(int(os.environ.get("VIDEO_EMOTION_CONCURRENCY", "0")) or (os.cpu_count() or 2))
        self.live_slots = LiveSlots(LIVE.sessions, LIVE.per_key)  # camera sessions: their own limits
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
        return FileResponse(WEB_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)

    @app.get("/ui/{name}")
    async def page_asset(self, name: str):
        if name not in WEB_FILES:  # a fixed set of files: no path ever reaches the file system
            return _error(404, "not found")
        return FileResponse(WEB_DIR / name, media_type=WEB_FILES[name], headers=PAGE_HEADERS)

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
            "load": {"analyses_running": self.slots.busy, "slots": self.slots.n,
                     "live_sessions": self.live_slots.busy, "max_live": self.live_slots.n},
            "speech_recognition": self.speech_status,
            "voice": _voice_status(self.bundle),
        })

    @app.websocket("/live")
    async def live(self, websocket: WebSocket) -> None:
        """A camera session: frames in, readings out (protocol in live.py; the key in the first message)."""
        await serve_live(websocket, self.bundle, self.live_slots, LIVE)

    @app.post("/analyze")
    async def analyze(self, request: Request) -> JSONResponse:
        from video_emotion.features.audio import AudioError
        from video_emotion.features.video import VideoError
        from video_emotion.inference.analyze import AnalysisStopped
        from video_emotion.text.sentiment import TranscriptError

        state = request.scope.get("state", {})
        rid = state.get(REQUEST_ID) or uuid.uuid4().hex[:16]  # the guard's id: the audit log has it too
        tmp_path: Path | None = None
        form = None
        stop = Stop(MAX_ANALYSIS_S)
        try:
            form = await read_form(request)
            fields = await parse_fields(form)
            tmp_path = await save_upload(fields.upload)
            await form.close()  # the parser's spooled copy is no longer needed
            watcher = asyncio.ensure_future(watch_disconnect(request.receive, stop))
            try:
                log.info("request %s (key %s): analysing %s (%d bytes)", rid, state.get(KEY_NAME, "-"),
                         json.dumps(fields.filename), tmp_path.stat().st_size)  # the client's text, escaped
                result = await self.slots.run(partial(self._run, tmp_path, fields, stop), stop)
            finally:
                watcher.cancel()
            result["video"] = fields.filename
            return JSONResponse(result, headers={"x-request-id": rid})
        except BadRequest as exc:
            return _error(exc.status, exc.message, rid)
        except TranscriptError as exc:
            return _error(400, f"transcript: {exc}", rid)
        except (VideoError, AudioError) as exc:  # the file's streams, not the server, are at fault
            return _error(422, f"cannot analyse the video: {str(exc).replace(str(tmp_path), 'upload')}", rid)
        except (ClientGone, AnalysisStopped) as exc:
            if request.scope.get("state", {}).get(OVER_LIMIT):
                log.info("request %s: body over the upload limit: 413", rid)
                return _error(413, "request body over the upload limit", rid)  # the guard answers this
            if isinstance(exc, ClientGone):
                log.info("request %s: client disconnected before its analysis started", rid)
                return _error(499, "client closed the request", rid)
            if stop.gone.is_set():
                log.info("request %s: client disconnected; analysis stopped (%s), slot freed", rid, exc)
                return _error(499, "client closed the request", rid)
            log.warning("request %s: analysis stopped after the %.0f s budget", rid, MAX_ANALYSIS_S)
            return _error(503, f"the analysis took longer than {MAX_ANALYSIS_S:.0f} s; try a lower sample_fps", rid)
        except Exception:  # a server fault, not bad input: logged in full, answered without internals
            log.exception("request %s: internal error", rid)
            return _error(500, f"internal error (request id {rid}); the server log has the details", rid)
        finally:
            if form is not None:
                await form.close()
            if tmp_path is not None:
                tmp_path.unlink(missing_ok=True)

    def _run(self, path: Path, fields: AnalyzeRequest, stop: Stop) -> dict[str, Any]:
        import cv2

        from video_emotion.features.video import VideoError
        from video_emotion.inference.analyze import analyze_video
        from video_emotion.inference.audio_file import media_duration_s

        try:
            duration = media_duration_s(path)  # a video, or an audio file (its voice and words, no face)
            if duration > MAX_DURATION_S:
                raise BadRequest(413, f"the file is {duration:.0f} s long; the limit is {MAX_DURATION_S:.0f} s")
            return analyze_video(path, self.bundle, sample_fps=fields.sample_fps, lang=fields.lang,
                                 transcript=fields.transcript, transcript_lang=fields.transcript_lang,
                                 min_frames=MIN_FRAMES, should_stop=stop, transcribe=fields.transcribe,
                                 speech_lang=fields.speech_lang, speech_model=self.speech, voice=fields.voice)
        except cv2.error as exc:  # a stream OpenCV opens but cannot decode
            raise VideoError(f"undecodable video stream ({exc.err or 'OpenCV error'})") from None


def _voice_status(bundle) -> dict[str, Any]:
    """What /model says about the voice: whether this model reads it, with which voice model."""
    voice = bundle.voice_model()
    if voice is None:
        return {"available": False, "reason": "this model carries no voice model"}
    return {"available": True, "name": voice.info.get("name", "voice"), "trained_on": voice.info.get("trained_on"),
            "classes": voice.classes}


def _speech_model() -> tuple[Any, dict[str, Any]]:
    """The process-wide transcriber, loaded now when its model is in place (so that the first request
    with speech does not wait for it), and what /model says about it."""
    from video_emotion.text.speech import get_transcriber
    from video_emotion.text.whisper_model import MODEL_NAME, is_installed

    folder = Path(os.environ.get("VIDEO_EMOTION_WHISPER_DIR") or DEFAULT_WHISPER_DIR)
    status: dict[str, Any] = {"available": is_installed(folder), "model": MODEL_NAME,
                              "sentiment_languages": ["en", "zh"]}
    if not status["available"]:
        status["reason"] = "the Whisper model is missing: run `make assets` (or set VIDEO_EMOTION_WHISPER_DIR)"
        log.warning("speech recognition unavailable: no Whisper model in %s", folder)
        return None, status
    transcriber = get_transcriber(folder)
    try:
        transcriber.model()
    except OSError:  # a damaged model: analyses still answer, without words
        log.exception("speech recognition unavailable")
        status.update(available=False, reason="the Whisper model cannot be loaded (see the server log); "
                                              "`make assets` verifies and repairs it")
        return None, status
    log.info("speech recognition: %s loaded in %.1f s", MODEL_NAME, transcriber.load_seconds or 0.0)
    return transcriber, status


# The page itself (/ui) is static and public; everything it does goes through the keyed API.
# The guard limits failed keys per socket peer: uvicorn must not swap in X-Forwarded-For on its own (by
# default it believes it from 127.0.0.1); VIDEO_EMOTION_TRUSTED_PROXIES names the proxies to believe.
os.environ.setdefault("FORWARDED_ALLOW_IPS", "")
VideoEmotion.add_asgi_middleware(GuardMiddleware, max_body_bytes=MAX_UPLOAD_BYTES + (1 << 20),
                                 public_prefixes=("/ui", "/favicon.ico"), socket_paths=("/live",))
