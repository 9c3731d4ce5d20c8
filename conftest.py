"""Root pytest configuration for the notebook run (pytest --nbval-lax notebooks/)."""

import os


def pytest_configure(config):
    if config.getoption("nbval", default=False) or config.getoption("nbval_lax", default=False):
        os.environ.setdefault("PEGASUS_PROFILE", "ci")
        os.environ.setdefault("TQDM_DISABLE", "1")
        os.environ.pop("MPLBACKEND", None)  # Agg in the kernel would hide figures


def pytest_collectstart(collector):
    # warning texts on stderr drift between library versions: compare stdout only
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("stderr",)
