"""Every notebook, opened in JupyterLab under the ci profile: Run All finishes, no traceback, figures rendered."""

from __future__ import annotations

import time

import pytest

from tests.browser import lab as L
from tests.browser.conftest import NB_DIR, SCREENSHOTS

pytestmark = pytest.mark.browser

NOTEBOOKS = sorted(p.name for p in NB_DIR.glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_run_all_in_jupyterlab(lab, page, name):
    url, root = lab
    t0 = time.time()
    L.open_notebook(page, url, name)
    seconds = L.run_all(page, timeout_s=600)
    shot = L.full_screenshot(page, SCREENSHOTS / f"{name[:-6]}.png")
    errors = L.error_texts(page)
    counts = L.execution_counts(page)
    assert not errors, f"{name}: an output shows a traceback:\n{errors[0][:2000]}"
    assert counts == sorted(counts) and None not in counts and counts[0] == 1, (
        f"{name}: not every cell ran in order in the fresh kernel: {counts}")
    expected = L.committed_figures(NB_DIR / name)
    shown = L.rendered_images(page)
    assert shown >= expected, f"{name}: {shown} figures rendered, the committed notebook shows {expected}"
    print(f"{name}: Run All {seconds:.1f} s ({time.time() - t0:.1f} s with opening), {shown} figures, "
          f"screenshot {shot.relative_to(SCREENSHOTS.parents[1])}")
