"""Run every notebook with the exercise solutions pasted over the stubs, as a learner who solved them would.

Each stub cell gets the reference solution as the learner's ``my_*`` function (``exercises.solution_source``),
so the checkers see only what stands in the stub cells, and every cell that runs the learner's function
(``exercises.use``) must say that it uses it. The regular notebook run (nbval) covers the other case: the
stubs untouched, the reference used, and the notebook still running to the end.
Run in the notebook phase of `./course.sh test` (it executes whole notebooks under the ci profile).
"""

import os
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NB_DIR = Path(__file__).resolve().parents[2] / "notebooks"
EXERCISE_NBS = [p for p in sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb")) if '"exercise"' in p.read_text()]


def _function_name(source: str) -> str:
    return re.search(r"^def (\w+)\(", source, re.M).group(1)


def substitute_solutions(nb):
    """A copy of ``nb`` whose exercise cells hold the reference solutions, written as the learner's functions."""
    from pegasus_course import exercises

    cells = []
    for c in nb.cells:
        if "exercise" in c.metadata.get("tags", []):
            c = nbformat.from_dict(dict(c))
            c.source = exercises.solution_source(_function_name(c.source).removeprefix("my_"))
        cells.append(c)
    out = nbformat.from_dict(dict(nb))
    out.cells = cells
    return out


def test_every_exercise_has_a_solution_and_a_checker():
    assert len(EXERCISE_NBS) == 7  # notebooks 01-07
    for path in EXERCISE_NBS:
        nb = nbformat.read(path, as_version=4)
        stubs = [c for c in nb.cells if "exercise" in c.metadata.get("tags", [])]
        solutions = [c for c in nb.cells if "solution" in c.metadata.get("tags", [])]
        assert 1 <= len(stubs) <= 3 and len(stubs) == len(solutions), path.name
        for stub, sol in zip(stubs, solutions):
            assert "raise NotImplementedError" in stub.source
            name = _function_name(stub.source).removeprefix("my_")
            assert f'solution_{name} = exercises.solution("{name}")' in sol.source, path.name
            assert f"def {name}(" not in sol.source, f"{path.name}: the solution is loaded on demand, not shown"


@pytest.mark.parametrize("path", EXERCISE_NBS, ids=lambda p: p.stem)
def test_notebook_runs_with_solutions_in_the_stubs(path, monkeypatch):
    monkeypatch.setenv("PEGASUS_PROFILE", "ci")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    nb = substitute_solutions(nbformat.read(path, as_version=4))
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NB_DIR)}})
    client.execute()
    verdicts = [out.get("text", "") for c in nb.cells if c.cell_type == "code" and "exercises.check_" in c.source
                and "exercises.use(" not in c.source for out in c.outputs if out.get("output_type") == "stream"]
    assert verdicts and all("] correct:" in v for v in verdicts), verdicts
    used = [line for c in nb.cells if c.cell_type == "code" and "exercises.use(" in c.source
            for out in c.outputs if out.get("output_type") == "stream"
            for line in out.get("text", "").splitlines() if "using" in line]
    assert used and all("using your my_" in line for line in used), used
