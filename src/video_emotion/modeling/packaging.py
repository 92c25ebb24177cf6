"""What a logged model needs to run anywhere: the package code and exact pins of what that code imports.

The requirements are derived, not listed by hand: every module the analysis path can reach (module-level
and function-level imports, followed through the package) is read, its third-party imports are mapped
to the installed distributions that provide them, and each is pinned to the installed version. A new
import in the analysis path therefore lands in the next logged model's requirements by itself.
"""

from __future__ import annotations

import ast
import sys
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path

import video_emotion

PACKAGE = "video_emotion"
# The logged model's code: a file MLflow executes to build the pyfunc (a path, never imported here).
MODEL_CODE = "inference/pyfunc_model.py"
# What the logged pyfunc model runs: its wrapper (MODEL_CODE) and the analysis it calls.
ENTRY_MODULES = ("video_emotion.inference.pyfunc_model", "video_emotion.inference.analyze",
                 "video_emotion.inference.bundle", "video_emotion.modeling.model")
# Needed by MLflow's pyfunc loader itself rather than imported by name (it imports cloudpickle) and its input.
ALWAYS = ("cloudpickle", "pandas")


def package_dir() -> Path:
    """The folder of the installed `video_emotion` package (attached to the logged model as code)."""
    return Path(video_emotion.__file__).resolve().parent


def model_code() -> Path:
    """The file the logged model is built from (`python_model` of `mlflow.pyfunc.log_model`)."""
    return package_dir() / MODEL_CODE


def _file_of(module: str, root: Path) -> Path | None:
    base = root.parent / module.replace(".", "/")
    for f in (base / "__init__.py", base.with_suffix(".py")):
        if f.is_file():
            return f
    return None


def _imports(path: Path, module: str) -> set[str]:
    """Absolute names of everything a file imports (relative imports resolved), at any depth."""
    out: set[str] = set()
    pkg = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names}  # `from pkg import submodule`
    return out


def imported_modules(entries: tuple[str, ...] = ENTRY_MODULES) -> tuple[set[str], set[str]]:
    """(package modules reachable from `entries`, top-level names of the third-party modules they import)."""
    root = package_dir()
    seen: set[str] = set()
    external: set[str] = set()
    todo = list(entries)
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        f = _file_of(m, root)
        if f is None:
            continue
        seen.add(m)
        parts = m.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parents' __init__ run first
        for name in _imports(f, m):
            top = name.split(".")[0]
            if top == PACKAGE:
                todo.append(name)
            elif top and top not in sys.stdlib_module_names and top != "__future__":
                external.add(top)
    return seen, external


def runtime_requirements(entries: tuple[str, ...] = ENTRY_MODULES) -> list[str]:
    """Exact `dist==version` pins of every installed distribution the analysis path imports."""
    _, external = imported_modules(entries)
    providers = packages_distributions()
    dists: set[str] = set(ALWAYS)
    for top in external:
        dists |= set(providers.get(top, ()))
    pins = {}
    for dist in dists:
        try:
            pins[dist.lower().replace("_", "-")] = version(dist)
        except PackageNotFoundError:
            continue
    return [f"{d}=={v}" for d, v in sorted(pins.items())]
