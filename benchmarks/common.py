"""What several benchmarks share: the environment their commands run in, the clips and cases of the
whole-process comparison and the separate environment of `fer` (bench.py, whole_process.py, speed_floor.py),
the machine's description, a real `bentoml serve` on a free local port, the p95 of latencies, and their own
section of RESULTS.md. Imported by the scripts in this folder (run as `python benchmarks/x.py`); it imports
none of them, so that no two of them import each other."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `tests.servers` (scripts here run as `python benchmarks/x.py`)
    sys.path.append(str(ROOT))
BENCH = ROOT / ".bench"
FER_REQ = "fer==25.10.3"
ENV = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "3", "BENTOML_DO_NOT_TRACK": "true"}


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def make_clips(source: Path) -> dict[str, Path]:
    """The real 640x360 clip (~20 s), a 200 s clip made of it 10 times, and its first 10 s."""
    import cv2

    out = BENCH / "clips"
    out.mkdir(parents=True, exist_ok=True)
    cap = cv2.VideoCapture(str(source))
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    h, w = frames[0].shape[:2]
    clips = {"20s": source}
    for name, seq in (("200s", frames * 10), ("10s", frames[: int(10 * fps)])):
        path = out / f"clip_{name}.mp4"
        if not path.is_file():
            wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            for f in seq:
                wr.write(f)
            wr.release()
        clips[name] = path
    return clips


def whole_cases(clips: dict[str, Path]) -> list[dict]:
    """The whole-process comparisons: a short clip at the model's rate, and ~4 fps on 20 s and 197 s."""
    short = ROOT / "data" / "external" / "real_faces" / "single_face.mp4"
    return [
        {"label": "2.4 s clip (ours: model rate 8 fps; fer: every 4th frame, 7.5 fps)", "clip": short,
         "sample_fps": None, "fer_frequency": 4},
        {"label": "20 s 640x360 clip, ~4 fps (ours 4 fps; fer every 6th frame)", "clip": clips["20s"],
         "sample_fps": 4.0, "fer_frequency": 6},
        {"label": "197 s 640x360 clip, ~4 fps (ours 4 fps; fer every 6th frame)", "clip": clips["200s"],
         "sample_fps": 4.0, "fer_frequency": 6},
    ]


def fer_python() -> Path:
    """A separate environment for fer: its own venv that sees this project's TensorFlow and OpenCV
    (so no second TensorFlow is downloaded), plus `fer` itself without dependencies."""
    env_dir = BENCH / "fer-venv"
    py = env_dir / "bin" / "python"
    if not (env_dir / ".ready").is_file():
        log(f"creating the fer environment in {env_dir}")
        venv.create(env_dir, with_pip=True, clear=True)
        site = next(Path(sys.prefix).glob("lib/python*/site-packages"))
        target = next(env_dir.glob("lib/python*/site-packages"))
        (target / "_video_emotion_stack.pth").write_text(str(site) + "\n")
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--no-deps", FER_REQ, "setuptools<81"], check=True)
        (env_dir / ".ready").touch()
    return py


def machine() -> str:
    """The machine and the versions a figure was measured with."""
    import cv2

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import version

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} cores, {mem:.0f} GiB; "
            f"Python {platform.python_version()}, tensorflow-cpu {version('tensorflow-cpu')}, "
            f"opencv {cv2.__version__}, {FER_REQ.replace('==', ' ')}, bentoml {version('bentoml')}")




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
