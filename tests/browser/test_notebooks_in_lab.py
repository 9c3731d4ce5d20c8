"""Every notebook, opened in JupyterLab under the ci profile: Run All finishes, no traceback, figures rendered."""

from __future__ import annotations

import pytest

from tests.browser import lab as L
from tests.browser.conftest import NB_DIR

pytestmark = pytest.mark.browser

# notebook 06 is run once by test_explorer_in_lab.py, with the same checks, before its explorer is used
NOTEBOOKS = sorted(p.name for p in NB_DIR.glob("[0-9][0-9]_*.ipynb") if not p.name.startswith("06_"))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_run_all_in_jupyterlab(lab, page, name):
    L.run_notebook_and_check(page, lab[0], name)
