"""The package's shape: layers a reader can follow (STYLE: one module per concept, each held in mind).

* No import circle, lazy imports (inside functions) included: a module's imports are read from its source.
* Nothing below set-up imports ``workflow``: only the command line, above it, may.
* No module over 500 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pegasus_course"
MAX_LINES = 500


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = PACKAGE.parent / Path(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: Path) -> set[str]:
    """Every course module ``path`` imports, at the top or inside a function, relative or absolute."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "pegasus_course":
                target = node.module
            else:
                continue
            for alias in node.names:  # `from . import data` imports the module pegasus_course.data
                found.add(f"{target}.{alias.name}" if is_module(f"{target}.{alias.name}") else target)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "pegasus_course"}
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` as a path [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep in graph and dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_planted_circle_and_accepts_layers():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_imports_are_read_inside_functions_too():
    graph = import_graph()
    # a lazy import inside a function body: evaluation -> formatting (the duration of a recorded run)
    assert "pegasus_course.formatting" in graph["pegasus_course.evaluation"]
    assert "pegasus_course.checkpoints" in graph["pegasus_course.training"] or \
        "pegasus_course.checkpoints" in graph["pegasus_course.train_state"]


def test_no_import_circle_lazy_imports_included():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_nothing_below_set_up_imports_workflow():
    above = ("pegasus_course.cli",)
    users = sorted(m for m, deps in import_graph().items()
                   if "pegasus_course.workflow" in deps and not m.startswith(above))
    assert users == [], f"{users} import workflow (set-up); move what they need to a lower module"


def test_the_checkpoint_format_knows_no_classifier():
    assert "pegasus_course.classifier" not in import_graph()["pegasus_course.checkpoints"]


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_over_500_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines: split it along its seams"


SAMPLERS = {"generate", "pegasus_rows", "pegasus_batch", "early_row"}  # the calls that read the sample cache


def uncached_sampler_calls(source: str) -> list[int]:
    """Lines of ``source`` that call a caching sampler without ``cache=False``."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name in SAMPLERS and not any(k.arg == "cache" and isinstance(k.value, ast.Constant)
                                            and k.value.value is False for k in node.keywords):
                bad.append(node.lineno)
    return bad


def test_the_cache_call_finder_finds_a_cached_call():
    assert uncached_sampler_calls("x = generate(m, s, sch)\ny = g.pegasus_batch(m, p, cache=False)\n") == [1]
    assert uncached_sampler_calls("x = generate(m, s, sch, cache=None)") == [1]


@pytest.mark.parametrize("path", sorted((PACKAGE.parent / "benchmarks").glob("*.py")), ids=lambda p: p.name)
def test_benchmarks_time_sampling_not_the_sample_cache(path):
    """A benchmark times its samplers: a re-run must compute the images, never read them from disk."""
    assert uncached_sampler_calls(path.read_text()) == [], f"{path.name}: pass cache=False to these calls"
