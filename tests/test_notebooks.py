"""The committed notebooks: paired with their py:percent scripts, executed, small, Colab-ready."""

import ast
import json
import re
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NBS = sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb"))
EXPECTED = ["00_welcome", "01_score_matching", "02_noise_scales", "03_unet", "04_training", "05_sampling",
            "06_pegasus", "07_beyond_the_paper", "08_your_own_images"]


def _inputs(nb):
    return [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in nb.cells]


def test_the_course_notebooks_exist():
    assert [p.stem for p in NBS] == EXPECTED


@pytest.mark.parametrize("ipynb", NBS, ids=lambda p: p.stem)
def test_pair_in_sync(ipynb):
    py = ipynb.with_suffix(".py")
    assert py.is_file(), f"{py.name} missing: run jupytext --sync {ipynb}"
    assert _inputs(jupytext.read(ipynb)) == _inputs(jupytext.read(py, fmt="py:percent"))


@pytest.mark.parametrize("ipynb", NBS, ids=lambda p: p.stem)
def test_committed_from_a_fresh_run(ipynb):
    nb = json.loads(ipynb.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    counts = [c["execution_count"] for c in code]
    assert counts == list(range(1, len(code) + 1)), "regenerate with tools/run_notebooks.sh"
    assert any(c["outputs"] for c in code), "commit the notebook with its outputs"
    assert "widgets" not in nb["metadata"], "strip widget state (tools/run_notebooks.sh does)"
    assert ipynb.stat().st_size < 1_500_000
    for c in code:
        for out in c["outputs"]:
            png = out.get("data", {}).get("image/png", "")
            assert len(png) < 400_000, f"a figure in {ipynb.name} is too large"
    assert not any("Traceback" in json.dumps(c["outputs"]) for c in code)


@pytest.mark.parametrize("ipynb", NBS, ids=lambda p: p.stem)
def test_colab_badge_points_at_itself_and_first_cell_installs(ipynb):
    nb = jupytext.read(ipynb)
    text = nb.cells[0].source
    links = re.findall(r"colab\.research\.google\.com/github/[^)]+", text)
    assert links and all(link.endswith(f"notebooks/{ipynb.name}") for link in links)
    first_code = next(c for c in nb.cells if c.cell_type == "code").source
    assert '"google.colab" in sys.modules' in first_code and "pip" in first_code


def test_shows_real_horses_and_birds():
    nb = json.loads((NB_DIR / "00_welcome.ipynb").read_text())
    images = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]
              if "image/png" in o.get("data", {})]
    assert images, "notebook 00 must show its grid of horses and birds"


# ----- the learner's function is the one that runs (issue 25, item 1)

def _code_cells(ipynb):
    return [c for c in jupytext.read(ipynb).cells if c.cell_type == "code"]


def _bound_names(source: str) -> set[str]:
    """Every name a cell binds: assignments, loop and with targets, functions, classes, imports."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _uses_beyond_checking(source: str, name: str) -> list[ast.Call | ast.Name]:
    """The places a cell reads ``name`` other than as the argument of an ``exercises.check_*`` call."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Load):
            call = parents.get(node)
            checked = (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                       and call.func.attr.startswith("check_"))
            if not checked:
                uses.append(call if isinstance(call, ast.Call) else node)
    return uses


EXERCISE_NBS = [p for p in NBS if any("exercise" in c.metadata.get("tags", []) for c in _code_cells(p))]


def test_notebooks_01_to_07_have_exercises():
    assert [p.stem[:2] for p in EXERCISE_NBS] == ["01", "02", "03", "04", "05", "06", "07"]


@pytest.mark.parametrize("ipynb", EXERCISE_NBS, ids=lambda p: p.stem)
def test_no_solution_cell_binds_a_learners_function(ipynb):
    for cell in _code_cells(ipynb):
        if "solution" in cell.metadata.get("tags", []):
            bound = _bound_names(cell.source)
            assert not [n for n in bound if n.startswith("my_")], f"{ipynb.name}: a solution cell binds {bound}"
            assert "exercises.solution(" in cell.source, f"{ipynb.name}: load the solution on demand"


@pytest.mark.parametrize("ipynb", EXERCISE_NBS, ids=lambda p: p.stem)
def test_every_learners_function_is_used_by_a_later_cell_through_exercises_use(ipynb):
    cells = _code_cells(ipynb)
    stubs = [(i, c) for i, c in enumerate(cells) if "exercise" in c.metadata.get("tags", [])]
    assert stubs
    for i, stub in stubs:
        (name,) = [n for n in _bound_names(stub.source) if n.startswith("my_")]
        exercise = name.removeprefix("my_")
        later = [u for c in cells[i + 1:] for u in _uses_beyond_checking(c.source, name)]
        assert later, f"{ipynb.name}: {name} is only ever checked, never used"
        use_calls = [u for u in later if isinstance(u, ast.Call) and ast.unparse(u.func) == "exercises.use"]
        assert use_calls, f"{ipynb.name}: run {name} through exercises.use(...) so the notebook says whose function runs"
        for call in use_calls:
            assert [ast.unparse(a) for a in call.args] == [name, f"exercises.check_{exercise}",
                                                           f"solution_{exercise}"], ast.unparse(call)
        assert any(f"solution_{exercise} = exercises.solution(\"{exercise}\")" in c.source for c in cells[i + 1:]
                   if "solution" in c.metadata.get("tags", [])), f"{ipynb.name}: no solution cell for {exercise}"
