"""A bounded hostile load test of the service (part of `make bench`).

Serves a model (default: the pipeline's bundle in models/video_emotion) with a real `bentoml serve` on
127.0.0.1, warms it up, then sends 200 requests at concurrency 8 mixing good clips with every kind of
bad input the service meets in the wild: empty upload, junk bytes, a truncated mp4, an oversize body
sent chunked (no Content-Length), a wrong key, no key, a malformed multipart body, OPTIONS, and
clients that disconnect while their clip is being analysed.

Pass criteria: no 5xx answer, every answer the expected status, no growth of the server's open files
(/proc/<pid>/fd of every server process) or of its temp files, server RSS flat (within 5%) over the second half
of the requests (the first half brings it to its steady state).
Writes (replaces) the "Service under hostile load" section of benchmarks/RESULTS.md; exit 1 on failure.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import itertools
import os
import random
import socket
import statistics
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import common
import requests

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / ".bench"
ENV = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "3", "BENTOML_DO_NOT_TRACK": "true",
       "MLFLOW_DISABLE_TELEMETRY": "true"}
KEY = "load-key"
MAX_UPLOAD_MB = 8  # small, so that oversize bodies stay cheap to send; limits scale, behaviour does not
SECTION = "## Service under hostile load"
EXPECTED = {"good": 200, "empty": 400, "junk": 422, "truncated": 422, "oversize_chunked": 413, "wrong_key": 401,
            "no_key": 401, "malformed_multipart": 400, "options": 401, "disconnect": None}
# Out of 200: a quarter good clips, the rest spread over the hostile kinds.
MIX = {"good": 48, "empty": 16, "junk": 16, "truncated": 16, "oversize_chunked": 16, "wrong_key": 16, "no_key": 16,
       "malformed_multipart": 16, "options": 16, "disconnect": 24}


def log(msg: str) -> None:
    print(f"[load] {msg}", file=sys.stderr, flush=True)


def machine() -> str:
    import platform
    from importlib.metadata import version

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} cores, {mem:.0f} GiB; "
            f"Python {platform.python_version()}, bentoml {version('bentoml')}, uvicorn {version('uvicorn')}")


def ten_seconds(source: Path) -> Path:
    """The first 10 s of the real clip (mp4v), made once."""
    import cv2

    out = BENCH / "load-clip-10s.mp4"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        cap = cv2.VideoCapture(str(source))
        fps = cap.get(cv2.CAP_PROP_FPS)
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        for _ in range(int(10 * fps)):
            ok, frame = cap.read()
            if not ok:
                break
            writer.write(frame)
        writer.release()
        cap.release()
    return out


def _tree(pid: int) -> list[int]:
    """`pid` and all its descendants (BentoML runs a supervisor and worker processes)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def snapshot(pid: int, tmpdir: Path) -> dict:
    fds = rss = 0
    for p in _tree(pid):
        try:
            fds += len(os.listdir(f"/proc/{p}/fd"))
            status = Path(f"/proc/{p}/status").read_text()
            rss += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
        except (OSError, StopIteration):
            continue
    temp = sum(1 for f in tmpdir.rglob("*") if f.is_file())
    shm = sum(1 for f in Path("/dev/shm").glob("video-emotion-*")) if Path("/dev/shm").is_dir() else 0
    return {"fds": fds, "rss_mb": rss / 1024, "temp_files": temp + shm, "processes": len(_tree(pid))}


def _multipart(name: str, data: bytes) -> tuple[bytes, str]:
    b = "b" + uuid.uuid4().hex
    body = (f'--{b}\r\nContent-Disposition: form-data; name="video"; filename="{name}"\r\n'
            "Content-Type: video/mp4\r\n\r\n").encode() + data + f"\r\n--{b}--\r\n".encode()
    return body, b


WRONG_KEY_TURN = itertools.count()


class Client:
    def __init__(self, url: str, clip: bytes) -> None:
        self.url, self.clip = url, clip
        self.port = int(url.rsplit(":", 1)[1])
        self.auth = {"Authorization": f"Bearer {KEY}"}

    def _post(self, files=None, data=None, headers=None) -> int:
        return requests.post(f"{self.url}/analyze", files=files, data=data,
                             headers=self.auth if headers is None else headers, timeout=300).status_code

    def send(self, kind: str) -> tuple[str, int | None, float]:
        t0 = time.perf_counter()
        status = getattr(self, kind)()
        return kind, status, time.perf_counter() - t0

    def good(self) -> int:
        return self._post(files={"video": ("clip.mp4", self.clip)})

    def empty(self) -> int:
        return self._post(files={"video": ("e.mp4", b"")})

    def junk(self) -> int:
        return self._post(files={"video": ("junk.mp4", os.urandom(256 << 10))})

    def truncated(self) -> int:
        return self._post(files={"video": ("t.mp4", self.clip[: len(self.clip) // 3])})

    def oversize_chunked(self) -> int:
        def body():
            yield b'--bnd\r\nContent-Disposition: form-data; name="video"; filename="big.mp4"\r\n\r\n'
            for _ in range(2 * MAX_UPLOAD_MB + 4):  # past the cap (limit + 1 MiB of form overhead)
                yield os.urandom(1 << 19)
            yield b"\r\n--bnd--\r\n"

        return self._post(data=body(), headers={**self.auth, "Content-Type": "multipart/form-data; boundary=bnd"})

    def wrong_key(self) -> int:
        """A wrong key from one of 8 other loopback addresses in turn: 2 each, under the 10 failed keys a
        minute after which an address is refused (429) for a while (that limit has its own test)."""
        address = f"127.0.0.{2 + next(WRONG_KEY_TURN) % 8}"
        from tests import servers  # importable once `common` is: it puts the checkout on sys.path

        with servers.session_from(address) as session:
            return session.post(f"{self.url}/analyze", files={"video": ("clip.mp4", self.clip)}, timeout=300,
                                headers={"Authorization": "Bearer not-a-key"}).status_code

    def no_key(self) -> int:
        return self._post(files={"video": ("clip.mp4", self.clip)}, headers={})

    def malformed_multipart(self) -> int:
        ctype = random.choice(["multipart/form-data; boundary=zzz", "multipart/form-data"])
        return self._post(data=b"--zzz\r\nContent-Disposition: form-da" + os.urandom(512),
                          headers={**self.auth, "Content-Type": ctype})

    def options(self) -> int:
        return requests.options(f"{self.url}/analyze", timeout=30,
                                headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"}
                                ).status_code

    def disconnect(self) -> None:
        """A whole good request, then the client goes away while the analysis runs."""
        body, b = _multipart("clip.mp4", self.clip)
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as s:
            s.sendall(f"POST /analyze HTTP/1.1\r\nHost: load\r\nAuthorization: Bearer {KEY}\r\n"
                      f"Content-Type: multipart/form-data; boundary={b}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                      + body)
            time.sleep(random.uniform(0.05, 3.0))  # some leave while queued, some mid-analysis
        return None


def serve(model: str, home: Path, tmpdir: Path):
    """The service under test (a context manager yielding the server process and its URL)."""
    env = {**ENV, "BENTOML_HOME": str(home), "VIDEO_EMOTION_API_KEYS": KEY,
           "VIDEO_EMOTION_API_KEY_FILE": str(BENCH / "no-keys"), "VIDEO_EMOTION_MAX_UPLOAD_MB": str(MAX_UPLOAD_MB),
           "TMPDIR": str(tmpdir), "VIDEO_EMOTION_RATE_LIMIT": "0"}  # one key sends all 200: no per-key limit
    return common.bentoml_service(model, env, BENCH / "load-serve.log")


def settle(url: str, timeout: float = 60) -> None:
    """Wait until no analysis runs (disconnected clients' work has stopped)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        info = requests.get(f"{url}/model", headers={"Authorization": f"Bearer {KEY}"}, timeout=10).json()
        if info.get("load", {}).get("analyses_running", 0) == 0:
            return
        time.sleep(0.2)


def run(args: argparse.Namespace) -> tuple[dict, list[str]]:
    random.seed(args.seed)
    clip = ten_seconds(Path(args.clip))
    home, tmpdir = BENCH / "load-bentoml", BENCH / "load-tmp"
    tmpdir.mkdir(parents=True, exist_ok=True)
    with serve(args.model, home, tmpdir) as (proc, url):
        client = Client(url, clip.read_bytes())
        plan = [k for k, n in MIX.items() for _ in range(round(n * args.requests / 200))]
        random.shuffle(plan)
        log(f"warm-up: every kind once, then {args.concurrency} good requests at once")
        for kind in EXPECTED:
            client.send(kind)
        with cf.ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(lambda _: client.send("good"), range(args.concurrency)))
        settle(url)
        time.sleep(1)
        before = snapshot(proc.pid, tmpdir)
        mark = (BENCH / "load-serve.log").stat().st_size
        log(f"before: {before}; sending {len(plan)} requests at concurrency {args.concurrency}")
        load_avg, wall = os.getloadavg()[0], 0.0
        half = len(plan) // 2  # two halves: the first reaches the steady state, the second must not grow it
        results, snaps = [], []
        for part in (plan[:half], plan[half:]):
            t0 = time.perf_counter()
            with cf.ThreadPoolExecutor(args.concurrency) as pool:
                results += pool.map(client.send, part)
            wall += time.perf_counter() - t0
            settle(url)
            time.sleep(2)
            snaps.append(snapshot(proc.pid, tmpdir))
        mid, after = snaps
        alive = requests.get(f"{url}/readyz", timeout=5).status_code == 200
        with open(BENCH / "load-serve.log", "rb") as fh:
            fh.seek(mark)
            server_log = fh.read().decode(errors="replace")
        log(f"after: {after}")
    by_kind = {k: Counter(s for kk, s, _ in results if kk == k) for k in MIX}
    server_errors = sum(1 for _, s, _ in results if s is not None and s >= 500)
    unexpected = sum(1 for k, s, _ in results if s != EXPECTED[k])
    good_lat = sorted(t for k, s, t in results if k == "good")
    summary = {"requests": len(results), "wall_s": wall, "load_avg": load_avg, "server_errors": server_errors,
               "unexpected": unexpected, "before": before, "mid": mid, "after": after, "alive": alive,
               "by_kind": by_kind,
               "stopped_running": server_log.count("client disconnected; analysis stopped"),
               "left_queued": server_log.count("client disconnected before its analysis started"),
               "tracebacks": server_log.count("Traceback"),
               "good_p50_s": statistics.median(good_lat),
               "good_p95_s": common.p95(good_lat)}
    checks = {
        "no 5xx": server_errors == 0,
        "every answer as expected": unexpected == 0,
        "open files did not grow": after["fds"] <= before["fds"],
        "temp files did not grow": after["temp_files"] <= before["temp_files"],
        "RSS flat over the second half (within 5%)": after["rss_mb"] <= 1.05 * mid["rss_mb"],
        "server still ready": alive,
        "no traceback in the server log": summary["tracebacks"] == 0,
    }
    summary["checks"] = checks
    return summary, _section(summary, args)


def _section(s: dict, args: argparse.Namespace) -> list[str]:
    b, m, a = s["before"], s["mid"], s["after"]
    model = Path(args.model)
    shown = model.relative_to(ROOT) if model.is_absolute() and model.is_relative_to(ROOT) else args.model
    lines = [SECTION, "",
             f"Machine: {machine()}.", "",
             f"Command: `make bench` (runs `.venv/bin/python benchmarks/load.py`), {time.strftime('%Y-%m-%d')}: "
             f"{s['requests']} requests at concurrency {args.concurrency} against a real `bentoml serve` on 127.0.0.1 "
             f"(model `{shown}`, upload limit {MAX_UPLOAD_MB} MiB, good clip: the real 640x360 footage cut "
             "to 10 s), after a warm-up of every kind once and one round of good requests.", "",
             "| kind | requests | expected | answers |", "|---|---|---|---|"]
    for kind, counts in s["by_kind"].items():
        answers = ", ".join(f"{'none (client gone)' if st is None else st} x{n}" for st, n in sorted(
            counts.items(), key=lambda x: -1 if x[0] is None else x[0]))
        exp = "client leaves mid-analysis" if EXPECTED[kind] is None else str(EXPECTED[kind])
        lines.append(f"| {kind.replace('_', ' ')} | {sum(counts.values())} | {exp} | {answers} |")
    lines += ["", "| measure | before | after half the requests | after all |", "|---|---|---|---|",
              f"| open files (all {b['processes']} server processes) | {b['fds']} | {m['fds']} | {a['fds']} |",
              f"| temp files (server TMPDIR + /dev/shm) | {b['temp_files']} | {m['temp_files']} | {a['temp_files']} |",
              f"| RSS of the server processes (MB) | {b['rss_mb']:.0f} | {m['rss_mb']:.0f} | {a['rss_mb']:.0f} "
              f"({(a['rss_mb'] / m['rss_mb'] - 1) * 100:+.1f}% over the second half) |", "",
              "RSS grows during the first half while concurrent analyses' threads take their own allocator "
              "arenas and buffers, up to a steady state; a leak would grow it again over the second half.", "",
              f"5xx answers: **{s['server_errors']}**; answers other than expected: **{s['unexpected']}**; "
              f"good clips p50 {s['good_p50_s']:.2f} s, p95 {s['good_p95_s']:.2f} s; wall {s['wall_s']:.0f} s "
              f"(load average {s['load_avg']:.1f} at the start: latencies depend on what else the machine runs).", "",
              f"Clients that left (server log): {s['stopped_running']} analyses stopped part-way, {s['left_queued']} "
              "left while queued or uploading (their work never started).", "",
              "Checks: " + "; ".join(f"{k}: {'PASS' if v else 'FAIL'}" for k, v in s["checks"].items()) + ".", ""]
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "video_emotion"),
                    help="what `video-emotion bento-import --model` takes: a bundle folder or video-emotion@champion")
    ap.add_argument("--clip", default=str(ROOT / "data" / "external" / "real_faces" / "cry_then_laugh.mp4"))
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    args = ap.parse_args()
    summary, lines = run(args)
    common.write_section(Path(args.out), SECTION, lines)  # bench.py rewrites the rest
    print("\n".join(lines))
    return 0 if all(summary["checks"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
