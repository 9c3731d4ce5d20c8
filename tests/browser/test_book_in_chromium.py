"""The course as a book (outputs/book/, `./course.sh book`) read in Chromium with no network.

The site is served from 127.0.0.1 on a free port; every request for anything else is refused and fails
the test. Each page is checked as a reader sees it: its title, every figure loaded (as many as the
notebook has), the math rendered by the site's own MathJax, every internal link resolving, well-formed
Colab and Binder links for that page's notebook (never followed), and no console error. Full-page
screenshots go to outputs/browser/book/.
"""

from __future__ import annotations

import ast
import functools
import html
import importlib.util
import json
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.browser.conftest import NB_DIR, REPO, SCREENSHOTS
from tests.browser.lab import committed_figures

sys.path.insert(0, str(REPO / "tools"))
import build_book  # noqa: E402
import set_repository  # noqa: E402

pytestmark = pytest.mark.browser
BOOK = REPO / "outputs" / "book"
SHOTS = SCREENSHOTS / "book"
NOTEBOOKS = sorted(p.name for p in NB_DIR.glob(build_book.NOTEBOOK_GLOB))
APPENDIX = [a[:-3] + ".html" for a in build_book.APPENDIX]
REBUILD = "rebuild it with ./course.sh book"
SPHINX_MATH = ".math.notranslate"  # where Sphinx writes a formula (MathJax's own output reuses the class "math")


def _notebook(name: str) -> dict:
    return json.loads((NB_DIR / name).read_text())


def _title(markdown: str) -> str:
    return re.search(r"^# (.+)$", markdown, flags=re.M).group(1).strip()


def _same(text: str) -> str:
    """Titles as compared: Sphinx writes typographic quotes, and a page's <title> escapes nothing else."""
    return text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"').strip()


@pytest.fixture(scope="session")
def book() -> Path:
    """The built book; built here when it is missing and its tools are installed."""
    if not (BOOK / "index.html").is_file():
        if importlib.util.find_spec("sphinx") is None or importlib.util.find_spec("myst_nb") is None:
            pytest.skip("the book is not built and its tools are not installed: run ./course.sh book")
        subprocess.run([sys.executable, str(REPO / "tools" / "build_book.py")], check=True)
    return BOOK


@pytest.fixture(scope="session")
def site(book):
    """The book served over HTTP from 127.0.0.1 on a free port: yields its base URL."""

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(book), **kwargs)

        def log_message(self, *args):  # keep the test's output to what fails
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(10)


@functools.lru_cache(maxsize=None)
def _fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""


class Reader:
    """One page opened in a fresh context that lets through requests to the local server only."""

    def __init__(self, browser, base: str):
        self.base = base
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _route(self, route):
        url = route.request.url
        if url.startswith(self.base + "/"):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()

    def open(self, path: str):
        page = self.page
        page.goto(f"{self.base}/{path}", wait_until="load")
        page.wait_for_function("() => Array.from(document.images).every(i => i.complete)", timeout=30_000)
        if page.evaluate(f"() => !!document.querySelector('{SPHINX_MATH}')"):  # typeset after the load event
            page.wait_for_function("() => window.MathJax && MathJax.isReady === true", timeout=30_000)
            page.evaluate("() => new Promise(done => MathJax.Hub.Queue(() => done(true)))")
        return page

    def close(self):
        self.context.close()


@pytest.fixture
def reader(browser, site):
    r = Reader(browser, site)
    yield r
    r.close()


def check_common(reader: Reader, page, shot: str) -> None:
    """What every page must do: figures loaded, math rendered, internal links resolving, no console error,
    no request off the site; then a full-page screenshot."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{shot}.png"), full_page=True)
    broken = page.evaluate("() => Array.from(document.images).filter(i => !(i.naturalWidth > 0)).map(i => i.src)")
    assert not broken, f"{shot}: images that did not load: {broken}"
    math = page.evaluate("""(selector) => {
        const all = Array.from(document.querySelectorAll(selector));
        const bare = all.filter(m => !m.querySelector('.MathJax, .MathJax_Display'));
        const wrong = n => !!n && (n.type === 'merror' || (n.data || []).some(wrong));  // TeX MathJax could not read
        const failed = window.MathJax ? MathJax.Hub.getAllJax().filter(j => wrong(j.root)).map(j => j.originalText) : [];
        const body = document.querySelector('article').cloneNode(true);
        body.querySelectorAll('pre, code, script, .cell_output, .MathJax_Preview').forEach(e => e.remove());
        return {n: all.length, bare: bare.map(m => m.textContent.slice(0, 80)), failed, text: body.textContent}; }""",
                         SPHINX_MATH)
    assert not math["bare"], f"{shot}: math left unrendered: {math['bare'][:5]}"
    assert not math["failed"], f"{shot}: MathJax could not typeset: {math['failed'][:5]}"
    raw = re.findall(r"\$[^$\n]{1,80}\$|\\\(|\\\[", math["text"])
    assert not raw, f"{shot}: raw TeX in the text: {raw[:5]}"
    links = page.evaluate("() => Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
    for link in links:
        if not link.startswith(reader.base + "/"):
            continue
        url, _, anchor = link.partition("#")
        status, body = _fetch(url)
        assert status == 200, f"{shot}: the link {link} answers {status}"
        if anchor and url.endswith(".html"):
            assert re.search(rf'id="{re.escape(anchor)}"', body.decode()), f"{shot}: {link} names no anchor there"
    assert not reader.errors, f"{shot}: console errors: {reader.errors[:5]}"
    assert not reader.blocked, f"{shot}: requests off the site (blocked): {reader.blocked[:5]}"


def test_the_built_pages_load_nothing_from_the_network(book):
    assert build_book.external_resources(book) == []
    for name in NOTEBOOKS:
        assert (book / "notebooks" / name).read_bytes() == (NB_DIR / name).read_bytes(), f"{name}: stale download; {REBUILD}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_page(reader, name):
    nb = _notebook(name)
    page = reader.open(f"notebooks/{name[:-6]}.html")
    title = _title("".join(nb["cells"][0]["source"]))
    assert _same(page.title()).startswith(_same(title)), f"{name}: page title {page.title()!r}, expected {title!r}"
    assert _same(page.locator("article h1").first.inner_text()).startswith(_same(title))

    figures = page.evaluate("() => Array.from(document.querySelectorAll('.cell_output img')).map(i => i.naturalWidth)")
    assert len(figures) == committed_figures(NB_DIR / name), (
        f"{name}: {len(figures)} figures in the page, the notebook has {committed_figures(NB_DIR / name)}; {REBUILD}")
    assert all(w > 0 for w in figures)
    has_math = any(c["cell_type"] == "markdown" and "$" in "".join(c["source"]) for c in nb["cells"])
    if has_math:
        assert page.locator(f"{SPHINX_MATH} .MathJax").count() > 0, f"{name}: its math was not typeset"

    slug = set_repository.slug(set_repository.current_url())
    colab = page.eval_on_selector_all("a.launch-colab", "els => els.map(a => a.getAttribute('href'))")
    binder = page.eval_on_selector_all("a.launch-binder", "els => els.map(a => a.getAttribute('href'))")
    assert colab and binder, f"{name}: no Colab or Binder link"
    for href in colab:
        assert re.fullmatch(rf"https://colab\.research\.google\.com/github/{re.escape(slug)}/blob/main/notebooks/"
                            rf"{re.escape(name)}", href), f"{name}: malformed Colab link {href}"
    for href in binder:
        assert re.fullmatch(rf"https://mybinder\.org/v2/gh/{re.escape(slug)}/HEAD\?labpath=notebooks%2F"
                            rf"{re.escape(name)}", href), f"{name}: malformed Binder link {href}"
    download = page.locator("a.launch-download").get_attribute("href")
    status, body = _fetch(f"{reader.base}/notebooks/{download}")
    assert status == 200 and body == (NB_DIR / name).read_bytes(), f"{name}: the download is not the committed notebook"
    times = page.locator(".run-times").inner_text()
    assert "cpu" in times and "gpu" in times and "measured" in times and "estimate" in times, times

    exercises = [c for c in nb["cells"] if "exercise" in c["metadata"].get("tags", [])]
    shown = page.locator("div.cell.tag_exercise").all_inner_texts()
    assert len(shown) == len(exercises), f"{name}: {len(shown)} exercise cells shown, the notebook has {len(exercises)}"
    assert all("NotImplementedError" in s for s in shown), f"{name}: an exercise is not shown as its stub"
    assert page.locator("text=google.colab").count() == 0, f"{name}: the Colab set-up cell is shown"
    if any(build_book.WIDGET_MIME in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", [])):
        note = page.locator(".explorer-note")
        assert note.count() == 1, f"{name}: the explorer's note is missing"
        strip = page.locator("img[src*='explorer_strip']")
        assert strip.count() == 1 and strip.evaluate("i => i.naturalWidth") > 0, f"{name}: no static strip"
        assert note.locator("a.launch-colab").count() == 1 and note.locator("a.launch-binder").count() == 1
        assert "VBox(" not in page.locator("article").inner_text(), f"{name}: the widget's text stands in the page"
    check_common(reader, page, name[:-6])


def test_landing_page_is_the_readme_with_the_course_map(reader):
    page = reader.open("index.html")
    title = _title((REPO / "README.md").read_text())
    assert _same(page.title()).startswith(_same(title))
    mapped = page.eval_on_selector_all("table a.reference.internal", "els => els.map(a => a.getAttribute('href'))")
    assert mapped == [f"notebooks/{n[:-6]}.html" for n in NOTEBOOKS], f"the course map links {mapped}"
    nav = page.eval_on_selector_all("nav.bd-links a.reference.internal", "els => els.map(a => a.getAttribute('href'))")
    assert nav == ["#", *(f"notebooks/{n[:-6]}.html" for n in NOTEBOOKS), *APPENDIX], f"the navigation is {nav}"
    assert page.locator("article img").count() >= 1  # the pegasus rows at the top
    check_common(reader, page, "index")


@pytest.mark.parametrize("path", APPENDIX)
def test_appendix_page(reader, path):
    page = reader.open(path)
    title = _title((REPO / (path[:-5] + ".md")).read_text())
    assert _same(page.title()).startswith(_same(title))
    check_common(reader, page, path[:-5].replace("/", "-"))


def solution_lines() -> dict[str, list[str]]:
    """The code lines of each reference solution (comments, docstrings and short generic lines left out)."""
    source = (REPO / "pegasus_course" / "exercises" / "solutions.py").read_text()
    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef):
            lines = []
            for stmt in node.body:
                for line in ast.get_source_segment(source, stmt, padded=True).splitlines():
                    code = re.sub(r"\s+#.*$", "", line).strip()
                    if len(code) >= 24:
                        lines.append(code)
            out[node.name] = lines
    return out


def _page_text(path: Path) -> str:
    text = re.sub(r"<[^>]+>", "", path.read_text())
    return re.sub(r"\s+", " ", html.unescape(text))


def test_no_solution_reaches_the_book(book):
    """The book shows no line of a reference solution that the notebooks do not show themselves (a stub's
    docstring may give a line away as a hint, e.g. how the DSM exercise draws its noise)."""
    notebooks = " ".join(re.sub(r"\s+", " ", "".join(c["source"])) for n in NOTEBOOKS for c in _notebook(n)["cells"])
    solutions = {name: [line for line in lines if re.sub(r"\s+", " ", line) not in notebooks]
                 for name, lines in solution_lines().items()}
    assert solutions and all(solutions.values()), f"every solution should have lines to look for: {solutions}"
    own = re.sub(r"\s+", " ", (REPO / "pegasus_course" / "exercises" / "solutions.py").read_text())
    assert all(line in own for lines in solutions.values() for line in lines)  # the search finds what is there
    pages = {p.relative_to(book): _page_text(p) for p in book.rglob("*.html")}
    leaks = [f"{page}: {name}: {line}" for name, lines in solutions.items() for line in lines
             for page, text in pages.items() if re.sub(r"\s+", " ", line) in text]
    assert not leaks, "solution code in the book:\n" + "\n".join(leaks[:10])
