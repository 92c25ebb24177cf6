"""What several benchmarks share: a real `bentoml serve` on a free local port, the p95 of latencies, and
their own section of RESULTS.md. Imported by the scripts in this folder (run as `python benchmarks/x.py`)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `tests.servers` (scripts here run as `python benchmarks/x.py`)
    sys.path.append(str(ROOT))


@contextlib.contextmanager
def bentoml_service(model: str | Path, env: dict[str, str], log_path: Path | None = None,
                    timeout_s: float = 240) -> Iterator[tuple[subprocess.Popen, str]]:
    """`video-emotion bento-import --model MODEL`, then `bentoml serve` on 127.0.0.1 at a free port, ready
    (`/readyz` answers 200); yields the server process and its URL and stops the server afterwards."""
    from tests import servers  # the tests' own server helper: one readiness loop for both

    subprocess.run([sys.executable, "-m", "video_emotion.cli", "bento-import", "--model", str(model)], env=env,
                   cwd=ROOT, check=True, capture_output=True)
    proc, url, log = servers.start_bentoml(env, log_path, timeout_s)
    try:
        yield proc, url
    finally:
        servers.stop(proc, log, timeout_s=60)


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
