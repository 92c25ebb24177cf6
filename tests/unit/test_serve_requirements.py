"""The Bento ships runtime dependencies only, pinned exactly as the development lock pins them."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEV_ONLY = {"pytest", "playwright", "dvc", "great-expectations", "mlflow", "mlflow-skinny", "ray", "uv", "matplotlib"}


def _pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==(\S+)", line)
        if m:
            out[re.sub(r"[-_.]+", "-", m.group(1).lower())] = m.group(2)
    return out


def test_the_bento_uses_the_runtime_lock_pinned_like_the_development_lock():
    bentofile = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    assert bentofile["python"]["requirements_txt"] == "requirements-serve.lock"
    assert bentofile["python"]["lock_packages"] is False  # `bentoml build` stays offline
    serve, dev = _pins(ROOT / "requirements-serve.lock"), _pins(ROOT / "requirements.lock")
    assert {"bentoml", "fastapi", "python-multipart", "tensorflow-cpu", "keras", "opencv-python-headless"} <= set(serve)
    assert not set(serve) & DEV_ONLY
    assert {k: v for k, v in serve.items() if dev.get(k) != v} == {}, "run `make lock`: the two locks disagree"
    direct = {re.sub(r"[-_.]+", "-", re.split(r"[=<>\[ #]", line.strip(), maxsplit=1)[0].lower())
              for line in (ROOT / "requirements-serve.in").read_text().splitlines() if line.strip() and line[0] != "#"}
    assert direct <= set(serve)
