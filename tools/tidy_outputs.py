"""Tidy a regenerated notebook's saved outputs: drop stream outputs that hold only whitespace (a progress
bar's closing newline, written after the cell's printed lines, would show as an empty box).

    python tools/tidy_outputs.py notebooks/05_sampling.ipynb [...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def tidy(nb: dict) -> int:
    """Remove whitespace-only stream outputs in place; returns how many were removed."""
    removed = 0
    for cell in nb.get("cells", []):
        outputs = cell.get("outputs")
        if not outputs:
            continue
        kept = [o for o in outputs if not (o.get("output_type") == "stream" and not "".join(o.get("text", "")).strip())]
        removed += len(outputs) - len(kept)
        cell["outputs"] = kept
    return removed


def main(paths: list[str]) -> None:
    for path in paths:
        nb = json.loads(Path(path).read_text())
        if tidy(nb):
            Path(path).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
