"""Live camera sessions (WebSocket /live) against a real `bentoml serve` (part of `make bench`).

A WebSocket client replays a real clip as a camera would film it: frames at 640x480 (the clip
letterboxed), JPEG quality 80, taken at the clip's position in wall-clock time (so frames the client
could not send in time are skipped, as a camera's are), one frame in flight at a time as the web page
does (the next frame leaves when the previous reading is back, at most `--max-fps` a second).
Measured: readings per second, round-trip lag (frame sent -> its reading received) p50/p95, the
server's own time per frame, and the reading of the face. A second run floods the server (every
frame of the clip at 30 fps without waiting for readings) to show that frames are dropped, not
queued: the lag of the newest frame stays bounded.

Writes (replaces) the "Live camera sessions" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import common
import cv2
import numpy as np
from load import BENCH, ENV, machine

ROOT = common.ROOT

SECTION = "## Live camera sessions (WebSocket /live)"
KEY = "load-key"


def frames_640x480(clip: Path, start_s: float, end_s: float | None) -> tuple[list[bytes], float]:
    """The clip's frames from `start_s` to `end_s`, letterboxed to 640x480, as JPEG bytes; and its frame rate."""
    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    out, i = [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        t = i / fps
        i += 1
        if t < start_s or (end_s is not None and t > end_s):
            continue
        h, w = frame.shape[:2]
        scale = min(640 / w, 480 / h)
        small = cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        canvas = np.zeros((480, 640, 3), np.uint8)
        y, x = (480 - small.shape[0]) // 2, (640 - small.shape[1]) // 2
        canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
        out.append(cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes())
    cap.release()
    return out, fps


def _connect(url: str):
    from httpx_ws import connect_ws

    return connect_ws(url.replace("http://", "ws://") + "/live", max_message_size_bytes=64 << 20,
                      keepalive_ping_interval_seconds=None)


def camera(url: str, frames: list[bytes], fps: float, seconds: float, max_fps: float) -> dict:
    """One session as the page runs it; the per-frame figures."""
    lags, server_ms, emotions, faces = [], [], [], []
    with _connect(url) as ws:
        ws.send_text(json.dumps({"key": KEY}))
        assert json.loads(ws.receive_text(timeout=30))["type"] == "ready"
        t0 = time.perf_counter()
        seq = 0
        while (now := time.perf_counter() - t0) < seconds:
            sent = time.perf_counter()
            ws.send_bytes(frames[int(now * fps) % len(frames)])
            seq += 1
            msg = json.loads(ws.receive_text(timeout=30))
            while msg.get("frame") != seq:
                msg = json.loads(ws.receive_text(timeout=30))
            lags.append(1000 * (time.perf_counter() - sent))
            server_ms.append(msg.get("server_ms", 0.0))
            faces.append(len(msg.get("faces", [])))
            if msg.get("state"):
                emotions.append(msg["state"]["emotion"])
            time.sleep(max(0.0, 1 / max_fps - (time.perf_counter() - sent)))
        wall = time.perf_counter() - t0
        ws.send_text(json.dumps({"type": "end"}))
        result = json.loads(ws.receive_text(timeout=60))
    return {"readings": len(lags), "wall_s": wall, "lags": lags, "server_ms": server_ms, "faces": faces,
            "emotions": emotions, "result": result}


def flood(url: str, frames: list[bytes], seconds: float, rate: float = 30.0) -> dict:
    """Frames at `rate` a second without waiting for readings: how many are read, dropped, and how old
    the newest frame's reading is when it arrives."""
    sent_at: dict[int, float] = {}
    got: list[tuple[int, float, int]] = []
    with _connect(url) as ws:
        ws.send_text(json.dumps({"key": KEY}))
        assert json.loads(ws.receive_text(timeout=30))["type"] == "ready"
        done = threading.Event()

        def listen() -> None:
            while not done.is_set():
                try:
                    msg = json.loads(ws.receive_text(timeout=0.5))
                except Exception:  # queue.Empty on a quiet half second, or the end of the session
                    continue
                if msg.get("type") == "reading":
                    got.append((msg["frame"], time.perf_counter(), msg["dropped"]))

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < seconds:
            n += 1
            sent_at[n] = time.perf_counter()
            ws.send_bytes(frames[n % len(frames)])
            time.sleep(max(0.0, t0 + n / rate - time.perf_counter()))
        time.sleep(2.0)
        done.set()
        listener.join()
    lags = [1000 * (t - sent_at[f]) for f, t, _ in got]
    return {"sent": n, "read": len(got), "dropped": got[-1][2] if got else 0, "lags": lags,
            "last_frame_read": got[-1][0] if got else 0}


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def section(args, cam: dict, fl: dict, loads: list[float]) -> list[str]:
    lags, res = cam["lags"], cam["result"]
    rate = cam["readings"] / cam["wall_s"]
    share = {k: round(v / max(1, len(cam["emotions"])), 2) for k, v in
             sorted(((e, cam["emotions"].count(e)) for e in set(cam["emotions"])), key=lambda kv: -kv[1])}
    one_face = sum(1 for f in cam["faces"] if f == 1) / max(1, len(cam["faces"]))
    return [SECTION, "",
            f"Machine: {machine()}.", "",
            f"Command: `make bench` (runs `.venv/bin/python benchmarks/live.py`), "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: a real `bentoml serve` on 127.0.0.1 "
            f"(model `{args.model_shown}`), one WebSocket client replaying `{Path(args.clip).name}` from "
            f"{args.start:g} s (a real person {args.what}) at 640x480 (letterboxed), JPEG quality 80, frames taken "
            "at the clip's position in wall-clock time, one frame in flight at a time (as the page does), at most "
            f"{args.max_fps:g} frames a second, for {args.seconds:g} s after a 5 s warm-up session.", "",
            f"Load average during the runs (1 min): {min(loads):.1f} to {max(loads):.1f} on 2 cores "
            "(the machine is shared with other work: the lag grows with it).", "",
            "| measure | value | goal |", "|---|---|---|",
            f"| readings per second (one face) | **{rate:.1f}** | at least 5 |",
            f"| round-trip lag p50 / p95 / max (ms) | {pct(lags, 50):.0f} / **{pct(lags, 95):.0f}** / "
            f"{max(lags):.0f} | p95 at most 250 |",
            f"| server time per frame p50 / p95 (ms: decode, face path, model) | {pct(cam['server_ms'], 50):.0f} / "
            f"{pct(cam['server_ms'], 95):.0f} | |",
            f"| readings with exactly one face | {100 * one_face:.0f}% | |",
            f"| smoothed state over the run | {', '.join(f'{k} {v:.0%}' for k, v in share.items())} | |",
            f"| session result (same contract as /analyze) | {len(res.get('timeline', []))} timeline segments, "
            f"dominant `{res.get('summary', {}).get('dominant_emotion')}` | |", "",
            f"Flood ({args.flood_s:g} s, a client sending 30 frames a second without waiting): {fl['sent']} frames "
            f"sent, {fl['read']} read, {fl['dropped']} dropped by the server (never queued); lag of the frames "
            f"read p50 {pct(fl['lags'], 50):.0f} ms, p95 {pct(fl['lags'], 95):.0f} ms (bounded by one reading, "
            "not by the backlog).", ""]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "video_emotion"))
    ap.add_argument("--clip", default=str(ROOT / "data" / "external" / "real_faces" / "cry_then_laugh.mp4"))
    ap.add_argument("--start", type=float, default=9.0, help="where the replayed part starts (s)")
    ap.add_argument("--what", default="laughing")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--flood-s", type=float, default=10.0)
    ap.add_argument("--max-fps", type=float, default=10.0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    args = ap.parse_args()
    model = Path(args.model)
    args.model_shown = model.relative_to(ROOT) if model.is_absolute() and model.is_relative_to(ROOT) else args.model
    frames, fps = frames_640x480(Path(args.clip), args.start, None)
    tmpdir = BENCH / "live-tmp"
    tmpdir.mkdir(parents=True, exist_ok=True)
    env = {**ENV, "BENTOML_HOME": str(BENCH / "live-bentoml"), "VIDEO_EMOTION_API_KEYS": KEY,
           "VIDEO_EMOTION_API_KEY_FILE": str(BENCH / "no-keys"), "TMPDIR": str(tmpdir)}
    with common.bentoml_service(args.model, env, BENCH / "live-serve.log") as (_, url):
        camera(url, frames, fps, 5.0, args.max_fps)  # warm-up: first-call costs are not a camera's steady state
        loads = [os.getloadavg()[0]]
        cam = camera(url, frames, fps, args.seconds, args.max_fps)
        loads.append(os.getloadavg()[0])
        fl = flood(url, frames, args.flood_s)
        loads.append(os.getloadavg()[0])
    lines = section(args, cam, fl, loads)
    common.write_section(Path(args.out), SECTION, lines)
    print("\n".join(lines))
    print(f"[live] readings/s {cam['readings'] / cam['wall_s']:.2f}, p95 {pct(cam['lags'], 95):.0f} ms, "
          f"median {statistics.median(cam['lags']):.0f} ms", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
