#!/usr/bin/env python3
"""Point the course's Colab and Binder links at another GitHub repository (a fork), in one command.

The repository is written once, in pyproject.toml ([project.urls] Repository). This script changes it
there and rewrites every place that must spell it out literally because it runs or renders before the
package exists: each notebook's Colab install cell and Colab badge (both the .py and the .ipynb of
each pair) and the README's Colab and Binder badges. tests/test_repository_links.py checks that they
all agree.

    python tools/set_repository.py https://github.com/OWNER/NAME
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
URL_RE = re.compile(r"^https://github\.com/([A-Za-z0-9_.\-]+)/([A-Za-z0-9_.\-]+?)/?$")


def current_url() -> str:
    """The repository URL written in pyproject.toml."""
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"]["Repository"]


def slug(url: str) -> str:
    m = URL_RE.match(url)
    if not m:
        raise SystemExit(f"not a GitHub repository URL: {url!r} (expected https://github.com/OWNER/NAME)")
    return f"{m.group(1)}/{m.group(2)}"


def files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py")),
            *sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    old, new = slug(current_url()), slug(argv[0])
    changed = []
    for path in [REPO / "pyproject.toml", *files()]:
        text = path.read_text()
        updated = text.replace(f"github.com/{old}", f"github.com/{new}").replace(f"/gh/{old}/", f"/gh/{new}/") \
            .replace(f"/github/{old}/", f"/github/{new}/")
        if updated != text:
            path.write_text(updated)
            changed.append(path.relative_to(REPO))
    print(f"{old} -> {new}: rewrote {len(changed)} files ({', '.join(map(str, changed))})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
