"""pyproject.toml, environment.yml and binder/environment.yml must name the same packages."""

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONDA_TO_PIP = {"pytorch": "torch", "matplotlib-base": "matplotlib"}


def _split(spec: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:>=\s*([0-9][0-9.]*))?", spec)
    name = m.group(1).lower()
    return CONDA_TO_PIP.get(name, name), m.group(2) or ""


def _conda(path: Path) -> dict[str, str]:
    deps = {}
    text = path.read_text().split("dependencies:", 1)[1]
    for line in text.splitlines():
        m = re.match(r"^\s*-\s+([^#:\s][^#]*)$", line)
        if m and not line.strip().startswith("- pip:"):
            name, low = _split(m.group(1))
            if name not in ("python", "pip"):
                deps[name] = low
    return deps


def _pyproject() -> tuple[dict[str, str], dict[str, str]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = dict(_split(d) for d in project["dependencies"])
    dev = dict(_split(d) for d in project["optional-dependencies"]["dev"])
    return runtime, dev


def test_root_environment_matches_pyproject():
    runtime, dev = _pyproject()
    assert _conda(REPO / "environment.yml") == {**runtime, **dev}


def test_binder_environment_has_the_runtime_and_notebook_tools():
    runtime, dev = _pyproject()
    binder = _conda(REPO / "binder" / "environment.yml")
    notebook_tools = {k: dev[k] for k in ("jupytext", "jupyterlab", "ipykernel")}
    assert binder == {**runtime, **notebook_tools}
    assert "cpu" in (REPO / "binder" / "environment.yml").read_text().split("pytorch", 1)[1].splitlines()[0]
    assert "pip install --no-deps -e ." in (REPO / "binder" / "postBuild").read_text()


def test_colab_compatible_bounds():
    runtime, _ = _pyproject()
    assert runtime["ipywidgets"] == "7.6"  # Colab ships ipywidgets 7.7
    text = (REPO / "pyproject.toml").read_text()
    assert "torch==" not in text and "<" not in tomllib.loads(text)["project"]["requires-python"]
