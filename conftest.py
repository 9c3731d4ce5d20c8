"""Root pytest configuration for the notebook run: `pytest --nbval notebooks/`, exactly as typed.

Under nbval the notebooks run in the `ci` profile (minutes on 2 CPU cores) while their committed
outputs come from a `cpu`-profile run: cells whose output depends on the profile, on randomness or on
timing carry the `nbval-ignore-output` tag, and every other cell's output is compared. The sanitizer
(tests/nbval_sanitize.cfg: memory addresses, progress-bar timings, figure sizes) and the current
environment's kernel are the defaults, so no other flag is needed.
"""

import os
import time
from collections import defaultdict
from pathlib import Path

SANITIZE = Path(__file__).resolve().parent / "tests" / "nbval_sanitize.cfg"


def _run_cells_like_jupyter() -> None:
    """nbval executes cells with store_history=False, so IPython cannot see a trailing `;` and shows the
    value a learner's Jupyter hides (`ax.legend();`, `check(...);`). Execute them as Jupyter does."""
    from nbval import kernel

    def execute_cell_input(self, cell_input, allow_stdin=None):
        return self.kc.execute(cell_input, store_history=True, allow_stdin=allow_stdin, stop_on_error=False)

    kernel.RunningKernel.execute_cell_input = execute_cell_input


def pytest_configure(config):
    if config.getoption("nbval", default=False) or config.getoption("nbval_lax", default=False):
        _run_cells_like_jupyter()
        os.environ.setdefault("PEGASUS_PROFILE", "ci")
        os.environ.setdefault("TQDM_DISABLE", "1")
        os.environ.pop("MPLBACKEND", None)  # Agg in the kernel would hide figures
        if getattr(config.option, "nbval_sanitize_with", None) is None:
            config.option.nbval_sanitize_with = str(SANITIZE)
        if hasattr(config.option, "nbval_current_env"):
            config.option.nbval_current_env = True  # the kernel of the Python that runs pytest


def pytest_collectstart(collector):
    # warning texts on stderr drift between library versions: compare stdout only
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("stderr",)


_NOTEBOOK_SECONDS: dict[str, float] = defaultdict(float)


def pytest_runtest_setup(item):
    """Time every notebook cell (kernel start included), so the summary shows what each notebook costs."""
    if str(item.fspath).endswith(".ipynb"):
        item._pegasus_start = time.perf_counter()


def pytest_runtest_teardown(item):
    start = getattr(item, "_pegasus_start", None)
    if start is not None:
        _NOTEBOOK_SECONDS[Path(str(item.fspath)).name] += time.perf_counter() - start


def pytest_terminal_summary(terminalreporter):
    if _NOTEBOOK_SECONDS:
        terminalreporter.write_sep("-", "notebook wall time (this machine, this profile)")
        for name, seconds in sorted(_NOTEBOOK_SECONDS.items()):
            terminalreporter.write_line(f"{name:32s} {seconds:7.1f} s")
