"""The interpolation explorer of notebook 06, used with the mouse in JupyterLab (ci profile)."""

from __future__ import annotations

import base64
import io
import re

import pytest
import torch

from tests.browser import lab as L
from tests.browser.conftest import NB_DIR, SCREENSHOTS

pytestmark = pytest.mark.browser
NB = "06_pegasus.ipynb"


def image_pixels(page, selector: str) -> torch.Tensor:
    """The bytes an <img> of a widget shows, decoded to (3, 32, 32) uint8 (the widgets upscale by 2 or 4)."""
    from PIL import Image

    b64 = page.evaluate("""async (sel) => {
        const img = document.querySelector(sel);
        const buf = await (await fetch(img.src)).arrayBuffer();
        let s = ''; new Uint8Array(buf).forEach(b => s += String.fromCharCode(b)); return btoa(s); }""", selector)
    with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
        arr = torch.frombuffer(bytearray(im.convert("RGB").tobytes()), dtype=torch.uint8).view(im.size[1], im.size[0], 3)
    step = arr.shape[0] // 32
    return arr[::step, ::step].permute(2, 0, 1).clone()


def readout(page) -> str:
    return page.locator(".pegasus-readout").inner_text()


def drag_slider_to(page, side: str) -> None:
    """Press the slider's handle and drag it past one end of its track with the mouse."""
    handle = page.locator(".pegasus-slider .noUi-handle").first
    track = page.locator(".pegasus-slider .noUi-base, .pegasus-slider .noUi-target").first
    h, t = handle.bounding_box(), track.bounding_box()
    y = h["y"] + h["height"] / 2
    page.mouse.move(h["x"] + h["width"] / 2, y)
    page.mouse.down()
    target = t["x"] + t["width"] + 20 if side == "right" else t["x"] - 20
    page.mouse.move(target, y, steps=12)
    page.mouse.up()


def wait_readout(page, pattern: str, timeout_ms: int = 20_000) -> str:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function("""([sel, pat]) => new RegExp(pat).test(document.querySelector(sel)?.innerText ?? '')""",
                               arg=[".pegasus-readout", pattern], timeout=timeout_ms)
    except PlaywrightTimeout:
        raise AssertionError(f"after dragging the slider the readout should match {pattern!r}; it still says "
                             f"{readout(page)!r}") from None
    return readout(page)


@pytest.fixture(scope="module")
def explorer(lab, browser):
    """Notebook 06 run once in one page; the tests below use its explorer in turn, as a learner would."""
    url, root = lab
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    L.run_notebook_and_check(page, url, NB)  # the checks every notebook gets, then the explorer's own
    page.locator(".pegasus-explorer").wait_for(timeout=30_000)
    page.locator(".pegasus-explorer").scroll_into_view_if_needed()
    status = page.locator(".pegasus-status").inner_text()
    m = re.search(r"drag k from 0 \(seed (\d+)\) to (\d+) \(seed (\d+)\)", status)
    assert m, f"the explorer does not say which row it shows: {status!r}"
    yield page, root, int(m.group(1)), int(m.group(2)), int(m.group(3))
    try:
        L.shutdown_kernels(page)
    finally:
        context.close()


def test_dragging_k_changes_the_readout_and_the_picture(explorer):
    page, root, seed1, last, seed2 = explorer
    thumbs = {int(t.inner_text().split()[-1]): i for i, t in enumerate(page.locator(".pegasus-thumb button").all())}

    drag_slider_to(page, "left")
    text0 = wait_readout(page, r"^k = 0 of")
    page.wait_for_timeout(500)  # the image follows the readout in the same update
    img0 = image_pixels(page, "img.pegasus-image")
    drag_slider_to(page, "right")
    text1 = wait_readout(page, rf"^k = {last} of")
    page.wait_for_timeout(500)
    img1 = image_pixels(page, "img.pegasus-image")
    page.locator(".pegasus-explorer").screenshot(path=str(SCREENSHOTS / "explorer-dragged.png"))

    assert text0 != text1 and f"seed {seed1}" in text0
    assert not torch.equal(img0, img1), "the displayed image did not change when k went from 0 to the end"
    # both ends reproduce the two chosen samples, shown as thumbnails (8-bit rounding aside)
    end1 = image_pixels(page, f".pegasus-thumb:nth-child({thumbs[seed1] + 1}) img")
    end2 = image_pixels(page, f".pegasus-thumb:nth-child({thumbs[seed2] + 1}) img")
    assert (img0.int() - end1.int()).abs().max() <= 2, "k = 0 is not the left end's sample"
    assert (img1.int() - end2.int()).abs().max() <= 2, "k = N + 1 is not the right end's sample"


def test_save_button_writes_the_file_it_reports(explorer):
    page, root, *_ = explorer
    page.locator(".pegasus-save button, button.pegasus-save").first.click()
    page.wait_for_function("() => /saved /.test(document.querySelector('.pegasus-status')?.innerText ?? '')",
                           timeout=20_000)
    path = re.search(r"saved (\S+\.png)", page.locator(".pegasus-status").inner_text()).group(1)
    written = root / path
    assert written.is_file() and written.stat().st_size > 100, f"{written} was reported but not written"


def test_controls_are_disabled_while_a_row_is_computed(explorer):
    page, *_ = explorer
    compute = page.locator("button.pegasus-compute, .pegasus-compute button").first
    slider_disabled = "() => document.querySelector('.pegasus-slider .noUi-target')?.hasAttribute('disabled')"
    compute.click()
    page.wait_for_function("() => /busy/.test(document.querySelector('.pegasus-status')?.innerText ?? '')",
                           timeout=20_000, polling=50)
    assert compute.is_disabled(), "the compute button stays enabled while computing"
    assert page.evaluate(slider_disabled), "the k slider stays enabled while computing"
    assert "computing the row" in page.locator(".pegasus-status").inner_text()
    page.wait_for_function("() => /row ready/.test(document.querySelector('.pegasus-status')?.innerText ?? '')",
                           timeout=120_000)
    assert compute.is_enabled() and not page.evaluate(slider_disabled)


def test_committed_notebook_shows_the_static_strip(lab, page):
    url, root = lab
    L.open_notebook(page, url, NB)  # opened, not run
    expected = L.committed_figures(NB_DIR / NB)
    assert L.rendered_images(page) == expected, "the committed figures (static strip included) are not all shown"
    strip_cell = page.locator(".jp-CodeCell", has_text="middle = interp(sampling.with_progress(score")
    assert strip_cell.locator(".jp-RenderedImage img").count() == 1, "the static interpolation strip is missing"
    L.full_screenshot(page, SCREENSHOTS / "06_pegasus-static.png")
