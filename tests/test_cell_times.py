import json
import subprocess
import sys
from pathlib import Path

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
