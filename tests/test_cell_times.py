import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _cell(source, start, end, outputs=()):
    return {"cell_type": "code", "source": source, "outputs": list(outputs),
            "metadata": {"execution": {"iopub.execute_input": start, "shell.execute_reply": end}}}


def test_cell_times_reports_long_cells_and_their_bars(tmp_path):
    bar = {"output_type": "stream", "name": "stderr", "text": "annealed Langevin: 100%|##| 232/232 [01:00<00:00]"}
    nb = {"cells": [_cell("x = 1", "2026-12-01T10:00:00.000Z", "2026-12-01T10:00:01.000Z"),
                    _cell("# comment\nsamples = generate(...)", "2026-12-01T10:00:01Z", "2026-12-01T10:01:31Z", [bar]),
                    _cell("rows = slow()", "2026-12-01T10:01:31Z", "2026-12-01T10:02:01Z"),
                    {"cell_type": "markdown", "source": "text", "metadata": {}}]}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "cell_times.py"), str(path), "--json",
                          str(tmp_path / "t.json")], capture_output=True, text=True, check=True).stdout
    assert "121 s in 3 cells" in out
    assert "cell   1:     90 s  bar  samples = generate(...)" in out
    assert "cell   2:     30 s  NO BAR  rows = slow()" in out
    assert "x = 1" not in out
    assert json.loads((tmp_path / "t.json").read_text()) == {"nb.ipynb": 121.0}


import importlib.util  # noqa: E402

_spec = importlib.util.spec_from_file_location("cell_times", ROOT / "tools" / "cell_times.py")
cell_times = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cell_times)


def test_the_documents_say_what_the_record_says():
    """README, notebook 00 (both sides of the pair) and every notebook's first cell agree with times.json."""
    assert cell_times.check() == [], "run `python tools/cell_times.py write`"


def test_every_notebook_has_its_entry_and_its_line():
    record = cell_times.load_record()
    names = sorted(p.stem[:2] for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(record["notebooks"]) == names
    for num in names:
        e = record["notebooks"][num]
        assert e["cpu_s"] > 0 and e["cpu_rerun_s"] > 0 and e["peak_gb"] > 0, num
        text = (ROOT / "notebooks").glob(f"{num}_*.py").__next__().read_text()
        first = text.split("# %%", 2)[1]
        assert cell_times.line(record, num) in first.replace("\n# ", "\n"), f"notebook {num}'s first cell"


@pytest.mark.parametrize("seconds, text", [(4, "4 s"), (89.4, "89 s"), (90, "1 min 30 s"), (355, "5 min 55 s"),
                                           (3601, "60 min 01 s")])
def test_durations_read_at_a_glance(seconds, text):
    assert cell_times._duration(seconds) == text


def test_an_empty_block_is_filled():
    text = "<!-- time:start -->\n<!-- time:end -->"
    assert cell_times._replace(text, cell_times.LINE, "x") == "<!-- time:start -->\nx\n<!-- time:end -->"


def test_a_document_without_markers_is_named(tmp_path):
    with pytest.raises(SystemExit, match="no <!-- time:start -->"):
        cell_times._replace("no markers here", cell_times.LINE, "x")


def test_replace_keeps_the_text_around_the_block():
    text = "# a\n# <!-- time:start -->\n# old\n# <!-- time:end -->\n# b\n"
    assert cell_times._replace(text, cell_times.LINE, "new\nline", prefix="# ") == (
        "# a\n# <!-- time:start -->\n# new\n# line\n# <!-- time:end -->\n# b\n")
