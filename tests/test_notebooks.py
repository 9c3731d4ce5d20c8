"""The committed notebooks: paired with their py:percent scripts, executed, small, Colab-ready."""

import json
import re
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NBS = sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb"))
EXPECTED = ["00_welcome", "01_score_matching", "02_noise_scales", "03_unet", "04_training", "05_sampling",
            "06_pegasus", "07_beyond_the_paper"]


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
