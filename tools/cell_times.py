"""How long each notebook takes, and how much memory: the one source (``notebooks/times.json``) that the
README, notebook 00, each notebook's first cell and the book read.

    python tools/cell_times.py run notebooks/05_sampling.ipynb [...]   # execute, measure, record, write
    python tools/cell_times.py write                                   # copy the record into the documents
    python tools/cell_times.py check                                   # exit 1 where a document disagrees
    python tools/cell_times.py notebooks/05_sampling.ipynb [...] [--long 20] [--json FILE]  # report only

``run`` (called by ``tools/run_notebooks.sh``) executes each notebook in place from a fresh kernel with an
empty sample cache, then once more from a copy with the cache as the first run left it (a learner's re-run),
and records per notebook: the Run All time (the sum of the cells' times, the kernel's start not counted),
the re-run's time and the peak resident memory of its largest process (the kernel). The cold run empties
the sample cache first (it is a cache: the next run of a notebook fills it again). ``write`` puts the
record into the table of the README and of notebook 00 and into the line of every notebook's first cell,
between markers; ``check`` is what the tests run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from datetime import date, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECORD = REPO / "notebooks" / "times.json"
TABLE = ("<!-- notebook-times:start -->", "<!-- notebook-times:end -->")
LINE = ("<!-- time:start -->", "<!-- time:end -->")


# ---------------------------------------------------------------- reading an executed notebook
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


def report(path: Path, long: float = 20.0) -> float | None:
    """Print the notebook's time and every cell over ``long`` seconds (with or without a bar); its total."""
    nb = json.loads(path.read_text())
    cells = [(i, c, _seconds(c)) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]
    timed = [t for _, _, t in cells if t is not None]
    if not timed:
        print(f"{path}: no timings (run it with nbconvert first)")
        return None
    print(f"{path}: {sum(timed):.0f} s in {len(timed)} cells")
    for i, c, t in cells:
        if t is not None and t >= long:
            first = next((line for line in "".join(c["source"]).splitlines() if line.strip()
                          and not line.startswith("#")), "")
            print(f"  cell {i:3d}: {t:6.0f} s  {'bar' if _has_bar(c) else 'NO BAR'}  {first[:70]}")
    return round(sum(timed), 1)


# ---------------------------------------------------------------- running and measuring
def _execute(src: Path, out: Path) -> float:
    """Run ``src`` into ``out`` in a child process; the peak resident memory (GB) of its largest process.

    ``getrusage(RUSAGE_CHILDREN)`` is the largest peak of any single waited-for descendant (the kernel, in
    practice), and it only grows: each measurement runs in its own process for that reason.
    """
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    cmd = [sys.executable, "-c", code, sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook",
           "--execute", "--ExecutePreprocessor.kernel_name=python3", "--ExecutePreprocessor.timeout=3600",
           "--output", str(out.resolve()), str(src.resolve())]
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=src.parent)
    if done.returncode != 0:
        raise SystemExit(f"{src} failed to run (exit {done.returncode}): see the error above")
    return int(done.stdout.strip().splitlines()[-1]) / 1024**2  # kB -> GB


def _sample_cache() -> Path:
    sys.path.insert(0, str(REPO))
    from pegasus_course.sample_cache import SampleCache

    return SampleCache().root


def run(paths: list[Path]) -> None:
    """Execute each notebook cold (empty sample cache) in place, then re-run a copy warm; record both."""
    record = load_record()
    profile = os.environ.get("PEGASUS_PROFILE", "cpu")
    if profile != "cpu":
        raise SystemExit(f"the record holds `cpu` times; PEGASUS_PROFILE is {profile!r}: run it under cpu")
    for path in paths:
        print(f"{path}: emptying the sample cache {_sample_cache()} for a cold run")
        shutil.rmtree(_sample_cache(), ignore_errors=True)  # cold: nothing computed before this notebook
        peak = _execute(path, path)
        cold = report(path)
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / path.name
            peak = max(peak, _execute(path, copy))
            warm = report(copy)
        if cold is None or warm is None:
            raise SystemExit(f"{path}: nbconvert recorded no cell times; nothing is written to {RECORD.name}")
        entry = record["notebooks"].setdefault(path.stem[:2], {"title": path.stem[3:].replace("_", " ")})
        entry.update(cpu_s=cold, cpu_rerun_s=warm, peak_gb=round(peak, 2))
        print(f"  re-run with the cache warm: {warm:.0f} s; peak memory {peak:.2f} GB")
    record["cpu"]["date"] = date.today().isoformat()
    record["cpu"]["cores"] = os.cpu_count()
    import torch

    record["cpu"]["torch"] = torch.__version__.split("+")[0]
    RECORD.write_text(json.dumps(record, indent=1) + "\n")
    write()


# ---------------------------------------------------------------- the record and the documents
def load_record() -> dict:
    return json.loads(RECORD.read_text())


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s:02d} s"


def cpu_heading(record: dict) -> str:
    c = record["cpu"]
    return f"`cpu` profile, {c['cores']}-core x86-64 CPU (**measured** {c['date']}, torch {c['torch']})"


def table(record: dict) -> str:
    """The markdown table of every notebook's times (README and notebook 00)."""
    rows = [f"| notebook | {cpu_heading(record)}: Run All, cold sample cache | re-run | peak memory | "
            f"{record['gpu']['how']} |", "|---|---|---|---|---|"]
    for num, e in sorted(record["notebooks"].items()):
        rows.append(f"| {num} {e['title']} | {_duration(e['cpu_s'])} | {_duration(e['cpu_rerun_s'])} | "
                    f"{e['peak_gb']:.1f} GB | {e['gpu']} |")
    return "\n".join(rows)


def line(record: dict, num: str) -> str:
    """The sentence of notebook ``num``'s first cell."""
    e, c = record["notebooks"][num], record["cpu"]
    return (f"*Run All takes {_duration(e['cpu_s'])} under the `cpu` profile on a {c['cores']}-core CPU "
            f"(measured {c['date']}; {_duration(e['cpu_rerun_s'])} on a re-run, which reuses the sample cache; "
            f"peak memory {e['peak_gb']:.1f} GB) and {e['gpu']} under `gpu` on {record['gpu']['device']} "
            "(estimate). Notebook 00 lists every notebook's times.*")


def _replace(text: str, markers: tuple[str, str], body: str, prefix: str = "") -> str:
    start, end = (re.escape(m) for m in markers)
    pattern = re.compile(rf"({re.escape(prefix)}{start}\n)(?:.*?\n)?({re.escape(prefix)}{end})", re.S)
    if not pattern.search(text):
        raise SystemExit(f"no {markers[0]} ... {markers[1]} block found: add the two marker lines")
    block = "\n".join(prefix + ln if ln else prefix.rstrip() for ln in body.splitlines())
    return pattern.sub(lambda m: m.group(1) + block + "\n" + m.group(2), text, count=1)


def _documents(record: dict) -> dict[Path, str]:
    """Every document's text as it should read, keyed by path."""
    want = {REPO / "README.md": _replace((REPO / "README.md").read_text(), TABLE, table(record))}
    for py in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py")):
        num, text = py.stem[:2], py.read_text()
        text = _replace(text, LINE, line(record, num), prefix="# ")
        if num == "00":
            text = _replace(text, TABLE, table(record), prefix="# ")
        want[py] = text
        ipynb = py.with_suffix(".ipynb")
        nb = json.loads(ipynb.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] != "markdown":
                continue
            src = "".join(cell["source"])
            new = _replace(src, LINE, line(record, num)) if LINE[0] in src else src
            new = _replace(new, TABLE, table(record)) if TABLE[0] in new else new
            cell["source"] = new.splitlines(keepends=True)
        want[ipynb] = json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"  # as nbformat writes it
    return want


def write() -> None:
    for path, text in _documents(load_record()).items():
        if path.read_text() != text:
            path.write_text(text)
            print(f"wrote the times into {path.relative_to(REPO)}")


def check() -> list[str]:
    """The documents that do not say what the record says."""
    return [str(p.relative_to(REPO)) for p, text in _documents(load_record()).items() if p.read_text() != text]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("run", "write", "check"):
        cmd, rest = sys.argv[1], sys.argv[2:]
        if cmd == "run":
            run([Path(p) for p in rest])
        elif cmd == "write":
            write()
        else:
            stale = check()
            if stale:
                raise SystemExit("these disagree with notebooks/times.json: " + ", ".join(stale) +
                                 "; run `python tools/cell_times.py write`")
            print("README, notebook 00 and every notebook's first cell say what notebooks/times.json says")
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="+")
    ap.add_argument("--long", type=float, default=20.0, help="seconds from which a cell counts as long")
    ap.add_argument("--json", default=None, help="also write {notebook: total seconds} here")
    args = ap.parse_args()
    totals = {Path(p).name: t for p in args.notebooks if (t := report(Path(p), args.long)) is not None}
    if args.json:
        Path(args.json).write_text(json.dumps(totals, indent=1) + "\n")


if __name__ == "__main__":
    main()
