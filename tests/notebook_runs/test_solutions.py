"""Run every notebook with the exercise solutions pasted over the stubs, as a learner who solved them would.

The solution cells themselves are dropped, so the checkers see only what stands in the stub cells.
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
    """A copy of ``nb`` whose exercise cells hold the solutions and whose solution cells are gone."""
    solutions = {_function_name(c.source): c.source for c in nb.cells if "solution" in c.metadata.get("tags", [])}
    cells = []
    for c in nb.cells:
        tags = c.metadata.get("tags", [])
        if "solution" in tags:
            continue
        if "exercise" in tags:
            c = nbformat.from_dict(dict(c))
            c.source = solutions[_function_name(c.source)]
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
        for stub in stubs:
            assert "raise NotImplementedError" in stub.source
        for sol in solutions:
            assert sol.metadata.get("jupyter", {}).get("source_hidden"), f"{path.name}: collapse the solution"


@pytest.mark.parametrize("path", EXERCISE_NBS, ids=lambda p: p.stem)
def test_notebook_runs_with_solutions_in_the_stubs(path, monkeypatch):
    monkeypatch.setenv("PEGASUS_PROFILE", "ci")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    nb = substitute_solutions(nbformat.read(path, as_version=4))
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NB_DIR)}})
    client.execute()
    verdicts = [out.get("text", "") for c in nb.cells if c.cell_type == "code" and "exercises.check_" in c.source
                for out in c.outputs if out.get("output_type") == "stream"]
    assert verdicts and all("] correct:" in v for v in verdicts), verdicts
