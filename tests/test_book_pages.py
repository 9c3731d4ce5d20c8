"""How tools/build_book.py prepares the book's pages (no Sphinx needed): launch links, times, the landing page,
links to repository files, the notebook pages, and the check that nothing is loaded from the network.
tests/browser/test_book_in_chromium.py reads the built site itself."""

import base64
import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import build_book  # noqa: E402
import set_repository  # noqa: E402

NOTEBOOKS = sorted(p.name for p in (REPO / "notebooks").glob(build_book.NOTEBOOK_GLOB))
SLUG = set_repository.slug(set_repository.current_url())


def _nb(name: str) -> dict:
    return json.loads((REPO / "notebooks" / name).read_text())


@pytest.mark.parametrize("slug, name, colab, binder", [
    ("someone/fork", "06_pegasus.ipynb",
     "https://colab.research.google.com/github/someone/fork/blob/main/notebooks/06_pegasus.ipynb",
     "https://mybinder.org/v2/gh/someone/fork/HEAD?labpath=notebooks%2F06_pegasus.ipynb"),
    ("a-b/c.d", "00_welcome.ipynb",
     "https://colab.research.google.com/github/a-b/c.d/blob/main/notebooks/00_welcome.ipynb",
     "https://mybinder.org/v2/gh/a-b/c.d/HEAD?labpath=notebooks%2F00_welcome.ipynb"),
])
def test_launch_links(slug, name, colab, binder):
    assert build_book.launch_links(slug, name) == {"colab": colab, "binder": binder}


def test_launch_links_are_the_readme_badges():
    links = build_book.launch_links(SLUG, "00_welcome.ipynb")
    readme = (REPO / "README.md").read_text()
    assert f"({links['colab']})" in readme and f"({links['binder']})" in readme


def test_every_notebook_gets_the_sentence_of_the_record():
    record = build_book.cell_times.load_record()
    for name in NOTEBOOKS:
        sentence = build_book.notebook_times(record, name)
        e = record["notebooks"][name[:2]]
        assert sentence.startswith("Run All takes") and e["gpu"] in sentence and "measured" in sentence
        assert build_book.cell_times._duration(e["cpu_s"]) in sentence


def test_a_notebook_missing_from_the_record_is_refused():
    with pytest.raises(SystemExit, match="no entry for 42_new.ipynb"):
        build_book.notebook_times({"notebooks": {}}, "42_new.ipynb")


def test_inline_markdown():
    assert build_book.inline_markdown("`cpu` <2 cores> (**measured**)") == \
        "<code>cpu</code> &lt;2 cores&gt; (<strong>measured</strong>)"


def test_front_matter_ends_with_the_course_map():
    readme = "# T\n\nintro\n\n## Quickstart\n\nq\n\n## The course map\n\n| a |\n\n### Where\n\nw\n\n## Open it elsewhere\n\nx\n"
    assert build_book.front_matter(readme) == "# T\n\nintro\n\n## Quickstart\n\nq\n\n## The course map\n\n| a |\n\n### Where\n\nw\n"
    with pytest.raises(SystemExit, match="course map"):
        build_book.front_matter("# T\n\n## Something else\n")
    real = build_book.front_matter((REPO / "README.md").read_text())
    assert real.startswith("# ") and "## Open it elsewhere" not in real
    assert all(f"(notebooks/{n})" in real for n in NOTEBOOKS)


PAGES = {f"notebooks/{n}" for n in NOTEBOOKS} | set(build_book.APPENDIX)
URL = "https://github.com/o/n"


@pytest.mark.parametrize("source, text, expected, copied", [
    ("README.md", "[welcome](notebooks/00_welcome.ipynb)", "[welcome](notebooks/00_welcome.ipynb)", set()),
    ("README.md", "see [the model](checkpoints/README.md).", "see [the model](checkpoints/README.md).", set()),
    ("README.md", "![rows](checkpoints/pegasus_rows.png)", "![rows](checkpoints/pegasus_rows.png)",
     {"checkpoints/pegasus_rows.png"}),
    ("checkpoints/README.md", "![64 samples](samples.png)", "![64 samples](samples.png)", {"checkpoints/samples.png"}),
    ("notebooks/00_welcome.ipynb", "[results](../benchmarks/RESULTS.md)", "[results](../benchmarks/RESULTS.md)", set()),
    ("README.md", "[w](checkpoints/cifar10-horse-bird-32.safetensors)",
     f"[w]({URL}/blob/main/checkpoints/cifar10-horse-bird-32.safetensors)", set()),
    ("README.md", "[logs](benchmarks/logs)", f"[logs]({URL}/tree/main/benchmarks/logs)", set()),
    ("README.md", "[a](https://example.org/x) [b](#the-course-map) [c](mailto:a@b.c)",
     "[a](https://example.org/x) [b](#the-course-map) [c](mailto:a@b.c)", set()),
])
def test_local_links(source, text, expected, copied):
    copies: set[str] = set()
    assert build_book.local_links(text, source, URL, PAGES, copies) == expected
    assert copies == copied


@pytest.mark.parametrize("text", ["[gone](no_such_file.md)", "[up](../outside.md)"])
def test_local_links_refuses_a_broken_link(text):
    with pytest.raises(SystemExit, match="not in the repository"):
        build_book.local_links(text, "README.md", URL, PAGES, set())


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_page_keeps_the_notebook_and_adds_the_launch_bar(name):
    nb = _nb(name)
    times = "Run All takes 4 s under `cpu` (measured) and seconds under `gpu` (estimate)"
    page, files = build_book.prepare_notebook(nb, name, "someone/fork", times, URL, PAGES, set())
    links = build_book.launch_links("someone/fork", name)
    first = page["cells"][0]["source"]
    title = re.search(r"^# .*$", first, flags=re.M).group(0)
    bar = first.split(title, 1)[1].lstrip()
    assert bar.startswith('<div class="launch-bar">'), "the launch bar follows the title"
    assert f'href="{links["colab"]}"' in bar and f'href="{links["binder"]}"' in bar and f'href="{name}"' in bar
    assert "Run All takes 4 s under <code>cpu</code>" in bar and "seconds under" in bar
    text = "".join(c["source"] for c in page["cells"])
    assert not re.search(r"!\[[^\]]*\]\(https?://", text), "an image from the network is left (the Colab badge)"

    colab = [c for c in page["cells"] if "remove-cell" in c["metadata"]["tags"]]
    assert len(colab) == 1 and "google.colab" in colab[0]["source"]
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    shown = [c for c in page["cells"] if c["cell_type"] == "code"]
    assert ["".join(c["source"]) for c in code] == [c["source"] for c in shown], "code cells are shown as committed"
    for a, b in zip(code, shown):
        kept = [o for o in a.get("outputs", []) if build_book.WIDGET_MIME not in o.get("data", {})]
        assert b.get("outputs", []) == kept
    exercises = [c for c in shown if "exercise" in c["metadata"]["tags"]]
    assert all("raise NotImplementedError" in c["source"] for c in exercises), "an exercise is shown as its stub"

    widgets = sum(build_book.WIDGET_MIME in o.get("data", {}) for c in code for o in c.get("outputs", []))
    notes = [c for c in page["cells"] if "explorer-static" in c["metadata"]["tags"]]
    assert len(notes) == widgets and len(files) == widgets
    if widgets:
        strip = next(c for c in code if build_book.STRIP_CELL_MARKER in "".join(c["source"]))
        png = next(o["data"]["image/png"] for o in strip["outputs"] if "image/png" in o.get("data", {}))
        assert list(files.values()) == [base64.b64decode(png)], "the note shows the committed static strip"
        assert f"]({next(iter(files))})" in notes[0]["source"] and f'href="{links["binder"]}"' in notes[0]["source"]
    assert nb == _nb(name), "the committed notebook is not changed"


def test_a_widget_without_its_strip_is_refused():
    nb = {"metadata": {}, "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "# 06 · x\n"},
        {"cell_type": "code", "metadata": {}, "source": "w", "outputs": [
            {"output_type": "display_data", "data": {build_book.WIDGET_MIME: {"model_id": "1"}}, "metadata": {}}]}]}
    with pytest.raises(SystemExit, match="static strip"):
        build_book.prepare_notebook(nb, "06_x.ipynb", "o/n", "Run All takes 1 s", URL, PAGES, set())


def test_external_resources_lists_every_load_from_elsewhere(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "page.html").write_text(
        '<script src="https://cdn.example/x.js"></script><script src="../_static/local.js"></script>\n'
        '<link rel="stylesheet" href="//fonts.example/css"><link href="_static/a.css" rel="stylesheet">\n'
        '<img alt="x" src="http://img.example/y.png"><img src="y.png">\n'
        '<a href="https://colab.research.google.com/github/o/n/blob/main/notebooks/x.ipynb">Colab</a>\n'
        '<style>@font-face { src: url("https://fonts.example/f.woff2") }</style>')
    (tmp_path / "a.css").write_text('@import "https://x.example/y.css"; .a { background: url(img/local.png) }')
    found = build_book.external_resources(tmp_path)
    assert found == ["sub/page.html: <script> https://cdn.example/x.js",
                     "sub/page.html: <link> //fonts.example/css",
                     "sub/page.html: <img> http://img.example/y.png",
                     "sub/page.html: style https://fonts.example/f.woff2",
                     "a.css: https://x.example/y.css"]


def test_publishing_runs_the_book_command_and_nothing_else():
    workflow = (REPO / ".github" / "workflows" / "pages.yml").read_text()
    assert re.findall(r"^\s*run:\s*(.+)$", workflow, flags=re.M) == ["./course.sh book"]
    assert re.search(r"^\s*path:\s*outputs/book\s*$", workflow, flags=re.M)
    assert "actions/upload-pages-artifact@" in workflow and "actions/deploy-pages@" in workflow


def test_a_folder_of_other_files_is_never_emptied_for_a_build(tmp_path):
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("not the book's")
    with pytest.raises(SystemExit, match="holds files this tool did not build"):
        build_book.empty_built(keep)
    assert (keep / "notes.txt").read_text() == "not the book's"
    built = tmp_path / "site"
    build_book.empty_built(built)  # a new folder: made and marked
    (built / "index.html").write_text("old page")
    build_book.empty_built(built)  # an earlier build: emptied
    assert sorted(p.name for p in built.iterdir()) == [build_book.BUILT_MARK]
