"""What a learner does in JupyterLab, as Playwright steps: open a notebook, Run All, wait, look."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

PROMPT_DONE = re.compile(r"^\[\d+\]:$")


def open_notebook(page, base_url: str, name: str, timeout_s: float = 60) -> None:
    """Open ``name`` (relative to the server's root) and wait until its kernel is idle."""
    page.goto(f"{base_url}/lab/tree/{name}?reset", wait_until="domcontentloaded")  # reset: no restored tabs
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell").first.wait_for(timeout=timeout_s * 1000)
    wait_kernel_idle(page, timeout_s)
    page.wait_for_timeout(3000)  # "idle" shows before the session is wired to the panel; let it settle
    wait_kernel_idle(page, timeout_s)


def kernel_status(page) -> str | None:
    ind = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator").first
    return ind.get_attribute("data-status") if ind.count() else None


def wait_kernel_idle(page, timeout_s: float) -> None:
    deadline = time.time() + timeout_s
    while kernel_status(page) != "idle":
        if time.time() > deadline:
            raise TimeoutError(f"the kernel is not idle after {timeout_s} s (status {kernel_status(page)!r})")
        page.wait_for_timeout(250)


def menu(page, top: str, item: str) -> None:
    """Click a main-menu entry, as a learner would (e.g. Run > Run All Cells)."""
    page.locator("#jp-MainMenu").get_by_role("menuitem", name=top, exact=True).click()
    page.locator(".lm-Menu .lm-Menu-item", has_text=item).first.click()


def code_prompts(page) -> list[str]:
    """The execution prompts of the code cells ("[3]:", "[*]:", "[ ]:"); collapsed inputs (the exercise
    solutions) show none and are left out."""
    texts = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt").all_inner_texts()
    return [t.strip() for t in texts if t.strip()]


def accept_kernel_dialog(page) -> bool:
    """If JupyterLab asks which kernel to use, keep its proposal (the notebook's own kernel)."""
    dialog = page.locator(".jp-Dialog")
    if dialog.count() and "Select Kernel" in dialog.first.inner_text():
        dialog.locator("button.jp-mod-accept").click()
        dialog.first.wait_for(state="detached", timeout=30_000)
        return True
    return False


def run_all(page, timeout_s: float = 600) -> float:
    """Run > Run All Cells, then wait until the run has started (cells queued as [*]) and finished:
    every code cell numbered, the kernel idle. Returns the seconds it took."""
    t0 = time.time()
    menu(page, "Run", "Run All Cells")
    started = False
    while True:
        if not started and accept_kernel_dialog(page):  # the kernel started only now: ask again
            wait_kernel_idle(page, 60)
            page.wait_for_timeout(3000)
            menu(page, "Run", "Run All Cells")
        prompts = [p.strip() for p in code_prompts(page)]
        started = started or any("*" in p for p in prompts)
        if started and all(PROMPT_DONE.match(p) for p in prompts) and kernel_status(page) == "idle":
            return time.time() - t0
        if started and error_texts(page):  # Run All stops at the first error: no need to wait for the rest
            return time.time() - t0
        if time.time() - t0 > timeout_s:
            raise TimeoutError(f"Run All did not finish in {timeout_s} s (started: {started}); prompts: {prompts}")
        if not started and time.time() - t0 > 60:
            raise TimeoutError("Run All did not start within 60 s: no cell was queued")
        page.wait_for_timeout(200)


def execution_counts(page) -> list[int | None]:
    out = []
    for p in code_prompts(page):
        m = re.match(r"^\[(\d+)\]:$", p.strip())
        out.append(int(m.group(1)) if m else None)
    return out


def error_texts(page) -> list[str]:
    """Texts of output areas that show an exception (a traceback)."""
    outs = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output").all_inner_texts()
    return [t for t in outs if "Traceback" in t or re.search(r"^\w+Error\b.*Traceback", t, re.M)]


def rendered_images(page) -> int:
    """Figures shown as images in output areas (matplotlib PNGs), widgets not counted."""
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-RenderedImage img").count()


def committed_figures(path: Path) -> int:
    """How many PNG figures the committed notebook shows: what a run must render again."""
    nb = json.loads(Path(path).read_text())
    return sum("image/png" in o.get("data", {}) for c in nb["cells"] if c["cell_type"] == "code"
               for o in c.get("outputs", []))


def full_screenshot(page, path: Path) -> Path:
    """The whole notebook as one PNG: grow the viewport to the notebook's height, then shoot."""
    height = page.evaluate("""() => {
        const el = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer')
                   || document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
        return el ? el.scrollHeight + 200 : 1000; }""")
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": min(int(height), 30000)})
    page.evaluate("""() => document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer')
                           .forEach(el => { el.scrollTop = 0; })""")
    page.wait_for_timeout(500)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)
    return path



def shutdown_kernels(page) -> None:
    """Kernel > Shut Down All Kernels..., confirmed: each notebook's test leaves no kernel behind."""
    menu(page, "Kernel", "Shut Down All Kernels")
    dialog = page.locator(".jp-Dialog")
    dialog.locator("button.jp-mod-accept").click(timeout=10_000)
    dialog.first.wait_for(state="detached", timeout=30_000)


def run_notebook_and_check(page, base_url: str, name: str) -> None:
    """Open ``name``, Run All in a fresh kernel and check what a learner would see: every cell ran in
    order, no output shows a traceback, at least the committed notebook's figures are rendered; a
    full-page screenshot goes to outputs/browser/ for a person to look at."""
    from tests.browser.conftest import NB_DIR, SCREENSHOTS

    t0 = time.time()
    open_notebook(page, base_url, name)
    seconds = run_all(page, timeout_s=600)
    shot = full_screenshot(page, SCREENSHOTS / f"{name[:-6]}.png")
    errors = error_texts(page)
    assert not errors, f"{name}: an output shows a traceback:\n{errors[0][:2000]}"
    counts = execution_counts(page)
    assert counts == sorted(counts) and None not in counts and counts[0] == 1, (
        f"{name}: not every cell ran in order in the fresh kernel: {counts}")
    expected = committed_figures(NB_DIR / name)
    shown = rendered_images(page)
    assert shown >= expected, f"{name}: {shown} figures rendered, the committed notebook shows {expected}"
    print(f"{name}: Run All {seconds:.1f} s ({time.time() - t0:.1f} s with opening), {shown} figures, "
          f"screenshot {shot.relative_to(SCREENSHOTS.parents[1])}")
