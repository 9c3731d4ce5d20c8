#!/usr/bin/env python3
"""Build the course as a static website, outputs/book/, from the committed notebooks, without running them.

    python tools/build_book.py [--out outputs/book]

The committed outputs are the book's figures. The pages are prepared in outputs/book-src/ (the README's
front matter as the landing page, one page per notebook in order, the shipped model and the benchmark
results as an appendix) and Sphinx builds them with book/conf.py (MyST-NB, sphinx-book-theme: Jupyter
Book 1's stack). Each notebook page gets Colab and Binder launch links for that notebook (the repository
of pyproject.toml, as tools/set_repository.py writes it), a download of the committed .ipynb and its
Run All times from notebooks/times.json (tools/cell_times.py). Notebook 06's explorer, a live widget, is shown as its committed
static strip. The site needs no network: MathJax is served from the site itself, and the build fails if a
page loads a script, style, font or image from elsewhere.
"""

from __future__ import annotations

import argparse
import base64
import copy
import html
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import cell_times  # noqa: E402  (the one source of the notebooks' times)
import set_repository  # noqa: E402  (the one reader and writer of the repository URL)

CONF_DIR = REPO / "book"
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
APPENDIX = ["checkpoints/README.md", "benchmarks/RESULTS.md"]  # shown after the notebooks, in this order
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
# The cell of notebook 06 whose figure is the explorer's static strip (its markdown says so; the browser
# test of the committed notebook finds it by the same text).
STRIP_CELL_MARKER = "middle = interp(sampling.with_progress(score"
COPY_LIMIT = 2 * 2**20  # a linked repository file up to this size is copied into the book, a larger one linked


# ----- what a page links to
def launch_links(slug: str, name: str) -> dict[str, str]:
    """Colab and Binder links that open notebooks/``name`` of the GitHub repository ``slug`` (OWNER/NAME),
    written as the README's badges write them."""
    return {"colab": f"https://colab.research.google.com/github/{slug}/blob/main/notebooks/{name}",
            "binder": f"https://mybinder.org/v2/gh/{slug}/HEAD?labpath={quote(f'notebooks/{name}', safe='')}"}


def notebook_times(record: dict, name: str) -> str:
    """The sentence of notebooks/times.json for notebook ``name`` (its first cell says the same)."""
    if name[:2] not in record["notebooks"]:
        raise SystemExit(f"notebooks/times.json has no entry for {name}: run tools/run_notebooks.sh {name}")
    return cell_times.line(record, name[:2]).strip("*")


def inline_markdown(text: str) -> str:
    """The little markdown of a table cell (`code`, **bold**) as HTML, for the raw-HTML launch bar."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def launch_bar(slug: str, name: str, times: str | None = None,
               download: bool = True) -> str:
    """The raw-HTML bar of a notebook page: Colab, Binder, the .ipynb download and the Run All times."""
    links = launch_links(slug, name)
    parts = ['<div class="launch-bar">',
             f'<a class="launch launch-colab" href="{html.escape(links["colab"])}">Open in Colab</a>',
             f'<a class="launch launch-binder" href="{html.escape(links["binder"])}">Launch on Binder</a>']
    if download:
        parts.append(f'<a class="launch launch-download" href="{name}" download="{name}">Download {name}</a>')
    if times is not None:
        parts.append(f'<p class="run-times">{inline_markdown(times)}</p>')
    return "\n".join(parts + ["</div>"])


def front_matter(readme: str) -> str:
    """The README from its title through the course map (the map's own sub-sections included)."""
    lines = readme.splitlines()
    try:
        start = lines.index("## The course map")
    except ValueError:
        raise SystemExit("README.md has no '## The course map' section: the book's landing page ends with it")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[:end]).rstrip() + "\n"


LINK_RE = re.compile(r"(!?\[(?:[^\[\]]|\[[^\]]*\])*\]\()([^)\s]+)(\))")


def local_links(text: str, source_rel: str, repo_url: str, pages: set[str],
                copies: set[str] | None = None) -> str:
    """Rewrite the relative links of a markdown file at ``source_rel`` for the book, whose pages keep the
    repository's layout: a link to a page stays (MyST turns it into the page's link); a repository file of
    at most COPY_LIMIT bytes is added to ``copies`` (copied beside the page, so the link works offline); a
    folder or a larger file becomes a link to the repository on GitHub."""
    base = Path(source_rel).parent

    def fix(m: re.Match) -> str:
        target = m.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target):  # a URL, an anchor or a site path: as it is
            return m.group(0)
        path, _, anchor = target.partition("#")
        rel = os.path.normpath((base / path).as_posix())
        src = REPO / rel
        if rel in pages:
            return m.group(0)
        if rel.startswith(".."):  # outside the repository: never copied into the published site
            raise SystemExit(f"{source_rel} links to {target}, which is not in the repository (outside it): fix the link")
        if src.is_file() and src.stat().st_size <= COPY_LIMIT:
            if copies is not None:
                copies.add(rel)
            return m.group(0)
        if src.exists():
            kind = "tree" if src.is_dir() else "blob"
            url = f"{repo_url.rstrip('/')}/{kind}/main/{rel}" + (f"#{anchor}" if anchor else "")
            return f"{m.group(1)}{url}{m.group(3)}"
        raise SystemExit(f"{source_rel} links to {target}, which is not in the repository: fix the link")

    return LINK_RE.sub(fix, text)


# ----- the notebook pages
def _find_strip(cells: list[dict]) -> str:
    """The PNG (base64) of the static strip that stands for the explorer."""
    for cell in cells:
        if cell["cell_type"] == "code" and STRIP_CELL_MARKER in "".join(cell["source"]):
            pngs = [o["data"]["image/png"] for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
            if len(pngs) == 1:
                return pngs[0]
    raise SystemExit(f"a notebook shows a widget, but no cell containing {STRIP_CELL_MARKER!r} with one figure "
                     "was found: the book shows that static strip in the widget's place")


def prepare_notebook(nb: dict, name: str, slug: str, times: str,
                     repo_url: str, pages: set[str], copies: set[str]) -> tuple[dict, dict[str, bytes]]:
    """A copy of a committed notebook as the book shows it, and the image files it needs beside it.

    The Colab set-up cell is hidden (it does nothing outside Colab); the Colab badge (an image from the
    network) gives way to the launch bar; a widget's output (it needs a kernel and scripts from the network)
    is replaced by a note with the static strip and the launch links. Exercises stay the stubs they are in
    the notebooks, and the solutions, kept in the package, never enter the book."""
    nb = copy.deepcopy(nb)
    nb["metadata"].pop("widgets", None)
    files: dict[str, bytes] = {}
    cells = []
    title_done = False
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if cell["cell_type"] == "markdown":
            source = re.sub(r"^\[!\[[^\]]*\]\(https?://[^)]*\)\]\([^)]*\)\s*\n?", "", source, flags=re.M)
            source = local_links(source, f"notebooks/{name}", repo_url, pages, copies)
            if not title_done:
                m = re.search(r"^# .*$", source, flags=re.M)
                if m:
                    bar = launch_bar(slug, name, times)
                    source = f"{source[:m.end()]}\n\n{bar}\n\n{source[m.end():].lstrip()}"
                    title_done = True
        elif "google.colab" in source and "git" in source:
            tags.append("remove-cell")
        cell["source"] = source
        cells.append(cell)
        widget = [o for o in cell.get("outputs", []) if WIDGET_MIME in o.get("data", {})]
        if widget:
            cell["outputs"] = [o for o in cell["outputs"] if o not in widget]
            strip = f"{Path(name).stem}_explorer_strip.png"
            files[strip] = base64.b64decode(_find_strip(nb["cells"]))
            cells.append({"cell_type": "markdown", "id": "explorer-static", "metadata": {"tags": ["explorer-static"]}, "source": (
                "```{admonition} The explorer in the book\n:class: note explorer-note\n"
                "The explorer is a live widget: it needs a running notebook, so the book shows its starting row, "
                "the static strip of section 5, below. To pick the ends and drag $k$ yourself, open this "
                "notebook on Colab or Binder.\n\n"
                f"{launch_bar(slug, name, download=False)}\n"
                "```\n\n"
                f"![The explorer's starting row: from the horse to the bird, as computed in section 5]({strip})\n")})
    if not title_done:
        raise SystemExit(f"{name} has no '# ' title in a markdown cell: the book needs one per page")
    nb["cells"] = cells
    return nb, files


# ----- the whole site
def mathjax_dir() -> Path:
    """MathJax 2.7, shipped by the jupyter-server-mathjax package (the [book] extra)."""
    spec = importlib.util.find_spec("jupyter_server_mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("jupyter-server-mathjax is not installed: pip install -e '.[book]' "
                         "-c requirements/constraints-book.txt (./course.sh book does it)")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


BUILT_MARK = ".pegasus-course-book"  # written into every folder this tool builds, so it empties only those


def empty_built(folder: Path) -> None:
    """Empty ``folder`` for a new build: only an earlier build's folder (it holds BUILT_MARK) or an empty one,
    never a folder of other files (``--out .`` would otherwise delete the repository)."""
    ours = (folder / BUILT_MARK).is_file() or folder.resolve().parent == REPO / "outputs"  # the default folders
    if folder.exists() and any(folder.iterdir()) and not ours:
        raise SystemExit(f"{folder} holds files this tool did not build: choose an empty or new folder (the book "
                         "empties its folder before each build)")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / BUILT_MARK).write_text("built by tools/build_book.py; emptied by the next build\n")


def prepare(src: Path) -> list[str]:
    """Write the book's pages into ``src`` (emptied first); returns the notebook names in order."""
    empty_built(src)
    repo_url = set_repository.current_url()
    slug = set_repository.slug(repo_url)
    notebooks = sorted(p.name for p in (REPO / "notebooks").glob(NOTEBOOK_GLOB))
    if not notebooks:
        raise SystemExit("no notebooks/NN_*.ipynb found")
    pages = {f"notebooks/{n}" for n in notebooks} | set(APPENDIX)
    copies: set[str] = set()
    record = cell_times.load_record()
    for name in notebooks:
        nb, files = prepare_notebook(json.loads((REPO / "notebooks" / name).read_text()), name, slug,
                                     notebook_times(record, name), repo_url, pages, copies)
        (src / "notebooks").mkdir(exist_ok=True)
        (src / "notebooks" / name).write_text(json.dumps(nb, indent=1, ensure_ascii=False))
        for fname, data in files.items():
            (src / "notebooks" / fname).write_bytes(data)
    toc = ["", "```{toctree}", ":hidden:", ":caption: The course", ""]
    toc += [f"notebooks/{n[:-6]}" for n in notebooks] + ["```", "", "```{toctree}", ":hidden:",
                                                         ":caption: Appendix", ""]
    toc += [a[:-3] for a in APPENDIX] + ["```", ""]
    landing = local_links(front_matter((REPO / "README.md").read_text()), "README.md", repo_url, pages, copies)
    (src / "index.md").write_text(landing + "\n".join(toc))
    for rel in APPENDIX:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(local_links((REPO / rel).read_text(), rel, repo_url, pages, copies))
    for rel in sorted(copies):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, src / rel)
    return notebooks


RESOURCE_RE = re.compile(r"<(script|link|img|iframe|source|video|audio|embed|object|image)\b[^>]*?"
                         r"\b(src|href|data|srcset|poster)\s*=\s*[\"']?\s*((?:https?:)?//[^\"'\s>]+)", re.I)
CSS_URL_RE = re.compile(r"(?:url\(\s*[\"']?|@import\s+[\"'])\s*((?:https?:)?//[^\"')\s]+)", re.I)


def external_resources(site: Path) -> list[str]:
    """Every script, style, font or image a page or style sheet of ``site`` would load from another host
    ("file: tag -> URL"); plain <a> links (the launch links) are not loads and are not listed."""
    found = []
    for path in sorted(site.rglob("*.html")):
        text = path.read_text(errors="replace")
        found += [f"{path.relative_to(site)}: <{m.group(1)}> {m.group(3)}" for m in RESOURCE_RE.finditer(text)]
        found += [f"{path.relative_to(site)}: style {m.group(1)}" for m in CSS_URL_RE.finditer(text)]
    for path in sorted(site.rglob("*.css")):
        found += [f"{path.relative_to(site)}: {m.group(1)}" for m in CSS_URL_RE.finditer(path.read_text(errors="replace"))]
    return found


def build(out: Path, src: Path) -> float:
    """Prepare the pages, run Sphinx, add MathJax and the notebooks' downloads; returns the seconds taken."""
    t0 = time.time()
    notebooks = prepare(src)
    empty_built(out)
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-W", "--keep-going", "-j", "auto",
           "-c", str(CONF_DIR), "-d", str(src.parent / f"{src.name}-doctrees"), str(src), str(out)]
    if subprocess.run(cmd).returncode != 0:
        raise SystemExit("sphinx-build failed (above); the book was not built")
    shutil.copytree(mathjax_dir(), out / "_static" / "mathjax")
    for name in notebooks:  # the download of each page: the committed notebook itself
        shutil.copy2(REPO / "notebooks" / name, out / "notebooks" / name)
    (out / ".nojekyll").write_text("")  # GitHub Pages serves the _static/ folders as they are
    loads = external_resources(out)
    if loads:
        raise SystemExit("the book would load from the network:\n  " + "\n  ".join(loads[:20]))
    missing = [n for n in ["index.html", *(f"notebooks/{n[:-6]}.html" for n in notebooks)] if not (out / n).is_file()]
    if missing:
        raise SystemExit(f"the build wrote no {', '.join(missing)}")
    return time.time() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(REPO / "outputs" / "book"), help="the site's folder (emptied first)")
    ap.add_argument("--src", default=str(REPO / "outputs" / "book-src"), help="where the pages are prepared")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    seconds = build(out, Path(args.src).resolve())
    pages = len(list(out.rglob("*.html")))
    print(f"==> the book: {out / 'index.html'} ({pages} pages) built in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
