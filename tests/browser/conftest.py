"""JupyterLab + Chromium fixtures for the browser tests (marker ``browser``).

A JupyterLab server runs on a free port bound to 127.0.0.1 (token disabled, which is safe only
there) over a *copy* of notebooks/, so nothing a test runs is ever saved over the committed
notebooks. Playwright drives Debian's Chromium (/usr/bin/chromium, or PEGASUS_CHROMIUM); no
browser is downloaded. Without Chromium or Playwright the tests skip and say why.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NB_DIR = REPO / "notebooks"
SCREENSHOTS = REPO / "outputs" / "browser"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")

# JupyterLab settings for the test server: no autosave, every cell kept in the page, no news checks.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
}


def chromium_path() -> str | None:
    env = os.environ.get("PEGASUS_CHROMIUM")
    for c in ([env] if env else []) + list(CHROMIUM_CANDIDATES):
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium: install Debian's package (apt-get install chromium) or set PEGASUS_CHROMIUM")
    pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    return path


@pytest.fixture(scope="session")
def lab(chromium, cifar_root, tmp_path_factory):
    """A running JupyterLab over a copy of notebooks/, reading the offline CIFAR-10 image folder:
    yields (base_url, root folder)."""
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "notebooks"
    shutil.copytree(NB_DIR, root, ignore=shutil.ignore_patterns("*.py", "jupytext.toml", ".ipynb_checkpoints",
                                                                "outputs"))
    settings = tmp / "settings"
    for rel, value in LAB_SETTINGS.items():
        (settings / rel).parent.mkdir(parents=True, exist_ok=True)
        (settings / rel).write_text(json.dumps(value))
    port = _free_port()
    env = dict(os.environ, PEGASUS_PROFILE="ci", TQDM_DISABLE="1", JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               PEGASUS_DATA_SOURCE="folder", PEGASUS_DATA_ROOT=str(cifar_root), PEGASUS_DOWNLOAD="0")
    env.pop("MPLBACKEND", None)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=", "--ServerApp.password=",
           f"--ServerApp.root_dir={root}", f"--LabApp.user_settings_dir={settings}",
           f"--LabApp.workspaces_dir={tmp / 'workspaces'}", "--ServerApp.allow_root=True"]
    log = open(tmp / "jupyterlab.log", "w")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError(f"JupyterLab did not start; see {tmp / 'jupyterlab.log'}:\n"
                                   + (tmp / "jupyterlab.log").read_text()[-2000:])
            time.sleep(0.5)
    yield url, root
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture
def page(browser, lab):
    """A fresh browser page; afterwards the kernels it started are shut down."""
    from tests.browser.lab import shutdown_kernels

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    yield pg
    try:
        shutdown_kernels(pg)
    finally:
        context.close()
