"""Every Colab install cell and badge, in every notebook and the README, names the repository of pyproject.toml."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import set_repository  # noqa: E402

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _source(nb: Path) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(nb.read_text())["cells"]]


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_install_cell_and_badge_use_the_repository(nb):
    slug = set_repository.slug(set_repository.current_url())
    cells = _source(nb)
    install = [c for c in cells if "google.colab" in c and "git" in c]
    assert len(install) == 1, "each notebook has one Colab install cell"
    assert f'"https://github.com/{slug}"' in install[0]
    badge = f"https://colab.research.google.com/github/{slug}/blob/main/notebooks/{nb.name}"
    assert any(badge in c for c in cells), f"{nb.name}: no Colab badge pointing at {badge}"
    for text in [*cells, nb.with_suffix(".py").read_text()]:  # no other repository named anywhere
        for other in re.findall(r"github(?:\.com)?/([\w.\-]+/[\w.\-]+?)(?:/blob|\"|/HEAD|\)|$)", text):
            assert other == slug, f"{nb.name} names {other}, not {slug}"


def test_readme_badges_use_the_repository():
    slug = set_repository.slug(set_repository.current_url())
    text = (REPO / "README.md").read_text()
    assert f"colab.research.google.com/github/{slug}/blob/main/notebooks/00_welcome.ipynb" in text
    assert f"mybinder.org/v2/gh/{slug}/HEAD" in text


def test_a_fork_changes_every_link_with_one_command(tmp_path):
    copy = tmp_path / "repo"
    copy.mkdir()
    for name in ("pyproject.toml", "README.md", "tools", "notebooks"):
        src = REPO / name
        (subprocess.run(["cp", "-r", str(src), str(copy / name)], check=True))
    res = subprocess.run([sys.executable, str(copy / "tools" / "set_repository.py"), "https://github.com/someone/fork"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    text = "".join(p.read_text() for p in [copy / "README.md", *sorted((copy / "notebooks").glob("*.*"))])
    assert "pegasus-course/pegasus-course" not in text and text.count("someone/fork") >= 4 * len(NOTEBOOKS)
    assert 'Repository = "https://github.com/someone/fork"' in (copy / "pyproject.toml").read_text()
