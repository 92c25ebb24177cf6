"""What several benchmarks share: a real `bentoml serve` on a free local port, the p95 of latencies, and
their own section of RESULTS.md. Imported by the scripts in this folder (run as `python benchmarks/x.py`)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def bentoml_service(model: str | Path, env: dict[str, str], log_path: Path | None = None,
                    timeout_s: float = 240) -> Iterator[tuple[subprocess.Popen, str]]:
    """`video-emotion bento-import --model MODEL`, then `bentoml serve` on 127.0.0.1 at a free port, ready
    (`/readyz` answers 200); yields the server process and its URL and stops the server afterwards."""
    import requests

    subprocess.run([sys.executable, "-m", "video_emotion.cli", "bento-import", "--model", str(model)], env=env,
                   cwd=ROOT, check=True, capture_output=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(log_path, "wb") if log_path else None  # closed when the server stops
    proc = subprocess.Popen([str(Path(sys.executable).parent / "bentoml"), "serve", "--host", "127.0.0.1",
                             "--port", str(port)], cwd=ROOT, env=env, stdout=log or subprocess.DEVNULL,
                            stderr=subprocess.STDOUT if log else subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"bentoml serve exited (log: {log_path or 'not kept'})")
            if time.time() > deadline:
                raise RuntimeError(f"bentoml serve was not ready within {timeout_s:.0f} s")
            try:
                if requests.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(1)
        yield proc, url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        if log:
            log.close()


def p95(latencies: list[float]) -> float:
    """The 95th percentile of sorted latencies (nearest rank)."""
    return latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))]


def write_section(path: Path, section: str, lines: list[str]) -> None:
    """Replace the RESULTS.md section that starts with `section` (the first of `lines`) where it stands,
    keeping every other section as it is, or append it."""
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmark results\n"
    head, sep, tail = text.partition(section)
    rest = ""
    if sep:
        nxt = tail.find("\n## ")
        rest = tail[nxt + 1:] if nxt >= 0 else ""
    out = head.rstrip("\n") + "\n\n" + "\n".join(lines) + ("\n" + rest if rest else "")
    path.write_text(out.rstrip("\n") + "\n", encoding="utf-8")
