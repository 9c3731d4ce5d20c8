"""How long each notebook and each long cell took in the last run (tools/run_notebooks.sh calls it
before the timings are stripped), and whether each long cell shows a progress bar.

    python tools/cell_times.py notebooks/05_sampling.ipynb [...] [--long 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path


def _seconds(cell: dict) -> float | None:
    ex = cell.get("metadata", {}).get("execution", {})
    start, end = ex.get("iopub.execute_input"), ex.get("shell.execute_reply")
    if not (start and end):
        return None
    parse = lambda t: datetime.fromisoformat(t.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def _has_bar(cell: dict) -> bool:
    """A finished tqdm bar in the saved output: '100%|' in a stream (text bars) or a widget bar."""
    for out in cell.get("outputs", []):
        text = "".join(out.get("text", "")) if out.get("output_type") == "stream" else ""
        if "100%|" in text or "application/vnd.jupyter.widget-view+json" in out.get("data", {}):
            return True
    return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="+")
    ap.add_argument("--long", type=float, default=20.0, help="seconds from which a cell counts as long")
    ap.add_argument("--json", default=None, help="also write {notebook: total seconds} here")
    args = ap.parse_args()
    totals = {}
    for path in args.notebooks:
        nb = json.loads(Path(path).read_text())
        cells = [(i, c, _seconds(c)) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]
        timed = [t for _, _, t in cells if t is not None]
        if not timed:
            print(f"{path}: no timings (run it with nbconvert first)")
            continue
        totals[Path(path).name] = round(sum(timed), 1)
        print(f"{path}: {sum(timed):.0f} s in {len(timed)} cells")
        for i, c, t in cells:
            if t is not None and t >= args.long:
                first = next((line for line in "".join(c["source"]).splitlines() if line.strip()
                              and not line.startswith("#")), "")
                print(f"  cell {i:3d}: {t:6.0f} s  {'bar' if _has_bar(c) else 'NO BAR'}  {first[:70]}")
    if args.json:
        Path(args.json).write_text(json.dumps(totals, indent=1) + "\n")


if __name__ == "__main__":
    main()
