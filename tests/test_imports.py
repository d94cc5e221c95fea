"""The stages import one way (data -> preprocess -> ... -> cli) and no module imports itself
back through a circle, lazy imports inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "microexpr"

# Lowest first: a module may import its own stage or an earlier one, never a later one.
STAGES = (
    ("errors", "plain", "progress", "parallel"),  # shared plumbing, used by every stage
    ("data",),
    ("preprocess",),
    ("features",),
    ("representations",),
    ("synth",),  # writes databases; nothing in the pipeline imports it
    ("models",),
    ("training",),
    ("evaluation",),
    ("video",),
    ("demo", "cli", "__main__"),
)
RANK = {name: rank for rank, names in enumerate(STAGES) for name in names}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, name: str) -> set[str]:
    """Every microexpr module `path` imports, at the top or inside functions."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("microexpr")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target == "microexpr":
                # `from microexpr import errors` imports the module errors; any other name
                # but __version__ is the top-level API, which no stage may use
                found |= {f"microexpr.{a.name}" if a.name != "__version__" else "microexpr"
                          for a in node.names}
                found.discard("microexpr")
                found |= {"microexpr" for a in node.names
                          if a.name != "__version__" and not _is_module(a.name)}
            elif target.startswith("microexpr"):
                found.add(target)
                # `from microexpr.models import ststnet` imports a submodule
                found |= {f"{target}.{a.name}" for a in node.names}
    return found


def _is_module(name: str) -> bool:
    return (PACKAGE / f"{name}.py").exists() or (PACKAGE / name / "__init__.py").exists()


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        edges[name] = {m for m in imports_of(path, name) if m in modules and m != name}
    return edges


def stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_belongs_to_a_stage():
    unknown = sorted({stage(m) for m in graph()} - set(RANK) - {"__init__"})
    assert not unknown, f"packages without a stage in STAGES: {unknown}"


def test_no_stage_imports_a_later_stage():
    upward = []
    for module, targets in graph().items():
        if stage(module) == "__init__":  # the top-level API re-exports everything, lazily
            continue
        for target in targets:
            if stage(target) != "__init__" and RANK[stage(target)] > RANK[stage(module)]:
                upward.append(f"{module} -> {target}")
            elif stage(target) == "__init__":
                upward.append(f"{module} -> {target} (the top-level API)")
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle among `edges` (module -> modules it imports), or None."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_circles():
    # A module reaching for its own package (the registries list their package's modules
    # to import them) is left out: the package is already being imported at that point.
    edges = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph().items()}
    circle = _cycle(edges)
    assert circle is None, "import circle: " + " -> ".join(circle)


@pytest.mark.parametrize("edges, expected", [
    ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
])
def test_the_circle_finder_finds_circles(edges, expected):
    assert _cycle(edges) == expected
