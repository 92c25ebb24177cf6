"""The package's shape: layers import only downward, no module imports itself round a cycle, modules and
functions stay small, and every DVC stage depends on every module it imports (so a code change can never
leave `dvc repro` wrongly "up to date")."""

import ast
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "src" / "video_emotion"

# Floors, bottom to top: a module may import its own floor and the floors below.
FLOORS = {
    "config": 0, "config_learned": 0, "labels": 0, "io_utils": 0, "security": 0,
    "data": 1, "features": 1, "text": 1,
    "modeling": 2,
    "inference": 3,
    "serving": 4, "stages": 4, "scale": 4, "cli": 4, "commands": 4,
}
MAX_FUNCTION_LINES = 60


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every video_emotion module a file imports, at module level or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("video_emotion")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("video_emotion"):
            out.add(node.module)
            for a in node.names:  # `from video_emotion.x import y` may import the submodule y
                if (PKG.parent / (node.module.replace(".", "/") + f"/{a.name}.py")).is_file() or \
                        (PKG.parent / (node.module.replace(".", "/") + f"/{a.name}")).is_dir():
                    out.add(f"{node.module}.{a.name}")
    return out


def _file_of(module: str) -> Path:
    base = PKG.parent / module.replace(".", "/")
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _floor(module: str) -> int:
    parts = module.split(".")
    return FLOORS[parts[1]] if len(parts) > 1 else 0


def test_every_module_has_a_floor():
    for f in PKG.rglob("*.py"):
        name = _module_name(f)
        if name != "video_emotion":
            assert name.split(".")[1] in FLOORS, f"{name}: not in a known layer; add it to FLOORS"


def test_no_import_runs_upward():
    upward = []
    for f in PKG.rglob("*.py"):
        me = _module_name(f)
        if me == "video_emotion":
            continue
        for imp in _imports(f):
            if imp != "video_emotion" and _floor(imp) > _floor(me):
                upward.append(f"{me} imports {imp}")
    assert not upward, "imports that run up the layers:\n" + "\n".join(sorted(upward))


def _import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (module- and function-level)."""
    graph = {}
    for f in PKG.rglob("*.py"):
        me = _module_name(f)
        graph[me] = {m for m in _imports(f) if m != me and _file_of(m).is_file()}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    cycles.append(sorted(group))
    return cycles


def test_the_cycle_finder_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e2"}, "e2": {"e"}, "f": set()}
    assert sorted(import_cycles(graph)) == [["a", "b", "c"], ["e", "e2"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    """Not even through function-level imports: a cycle means two modules that cannot be understood apart."""
    cycles = import_cycles(_import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_no_import_cycle_among_the_benchmarks():
    """The scripts in benchmarks/ import one another by their bare names (each runs as `python benchmarks/x.py`);
    what two of them need goes to a third (common.py), never round a circle (bench.py and whole_process.py were one)."""
    scripts = {f.stem: f for f in (ROOT / "benchmarks").glob("*.py")}
    graph = {}
    for name, f in scripts.items():
        names = set()
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
        graph[name] = {n for n in names if n in scripts and n != name}
    assert graph["bench"] >= {"common", "whole_process"}  # the graph is really read
    assert not import_cycles(graph), import_cycles(graph)


def test_functions_fit_on_a_screen():
    long = []
    for f in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{f.relative_to(PKG)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(sorted(long))


def test_modules_stay_small():
    sizes = {_module_name(f): len(f.read_text(encoding="utf-8").splitlines()) for f in PKG.rglob("*.py")}
    assert not {m: n for m, n in sizes.items() if n > 300}, "modules over 300 lines"
    assert sizes["video_emotion.cli"] < 150
    stages = {m: n for m, n in sizes.items()
              if m.startswith("video_emotion.stages.") and m != "video_emotion.stages.runner"}
    assert not {m: n for m, n in stages.items() if n >= 120}, "stage modules of 120 lines or more"


def _closure(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        m = todo.pop()
        if m in seen or not _file_of(m).is_file():
            continue
        seen.add(m)
        todo += _imports(_file_of(m))
        parts = m.split(".")  # importing a.b.c runs a/__init__ and a/b/__init__ too
        todo += [".".join(parts[:i]) for i in range(2, len(parts))]
    return seen


def test_dvc_stages_depend_on_every_module_they_import():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        deps = [ROOT / d for d in stage["deps"] if d.startswith("src/")]
        missing = []
        for m in _closure(f"video_emotion.stages.{name}"):
            f = _file_of(m)
            if f.name == "__init__.py" and not _imports(f):
                continue  # a package docstring: nothing that could change what a stage computes
            if m != "video_emotion" and not any(f == d or d in f.parents for d in deps):
                missing.append(str(f.relative_to(ROOT)))
        assert not missing, f"stage {name} imports modules dvc.yaml does not list as deps: {sorted(missing)}"
