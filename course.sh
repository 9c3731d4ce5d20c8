#!/usr/bin/env bash
# The course's two commands (see README.md):
#   ./course.sh          set everything up, make a first pegasus grid, open JupyterLab on the notebooks
#   ./course.sh test     set everything up and run every test (unit tests, the notebooks under `ci`, then
#                        the same notebooks in JupyterLab driven by Chromium)
#   ./course.sh browser  only the browser tests (needs Debian's chromium: apt-get install chromium)
# Both create or update a virtual environment in .venv (PEGASUS_VENV to change it).
set -euo pipefail
cd "$(dirname "$0")"
VENV=${PEGASUS_VENV:-.venv}
PY=$VENV/bin/python

setup() {
  if [ ! -x "$PY" ]; then
    echo "==> creating the virtual environment $VENV"
    python3 -m venv "$VENV"
  fi
  local stamp=$VENV/.pegasus-installed
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements/constraints-linux-x86_64.txt -nt "$stamp" ]; then
    echo "==> installing the course and its tools (first time: a few minutes)"
    "$PY" -m pip install -q --upgrade pip
    local pins=()
    if [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ]; then
      pins=(-c requirements/constraints-linux-x86_64.txt)
      "$PY" -m pip install -q "${pins[@]}" torch torchvision
    fi
    "$PY" -m pip install -q "${pins[@]}" -e ".[dev]"
    "$PY" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (pegasus-course)" >/dev/null
    touch "$stamp"
  fi
}

first_pegasus() {
  # A first look at winged horses from the shipped model, on whatever device is here.
  if [ -f checkpoints/cifar10-horse-bird-32.safetensors ] && [ ! -f outputs/first-pegasus/rows.png ]; then
    echo "==> sampling a first pegasus row from the shipped model (a few minutes on a CPU)"
    "$VENV/bin/pegasus-course" pegasus --seeds 1 2 --n 7 \
      --out outputs/first-pegasus
  fi
}

browser_tests() {
  # Every notebook and the explorer in JupyterLab, driven by Chromium (skipped, with the reason, without it).
  echo "==> the notebooks in JupyterLab + Chromium (screenshots in outputs/browser/)"
  local start=$SECONDS
  "$PY" -m pytest -q -rs -p no:cacheprovider -m browser tests/browser/
  echo "==> browser tests took $((SECONDS - start)) s"
}

case "${1:-lab}" in
  lab)
    setup
    first_pegasus
    echo "==> opening JupyterLab on notebooks/ (profile: ${PEGASUS_PROFILE:-auto}; set PEGASUS_PROFILE=gpu|cpu|ci)"
    extra=()
    [ "$(id -u)" = 0 ] && extra=(--allow-root)  # containers often run as root
    exec "$VENV/bin/jupyter" lab "${extra[@]}" notebooks/00_welcome.ipynb
    ;;
  test)
    setup
    echo "==> unit tests"
    MPLBACKEND=Agg "$PY" -m pytest -q tests/ --ignore=tests/notebook_runs --ignore=tests/browser
    echo "==> notebooks under the ci profile"
    PEGASUS_PROFILE=ci TQDM_DISABLE=1 "$PY" -m pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env \
      --nbval-cell-timeout=600 --nbval-sanitize-with tests/nbval_sanitize.cfg notebooks/ tests/notebook_runs/
    browser_tests
    ;;
  browser)
    setup
    browser_tests
    ;;
  setup)
    setup
    ;;
  *)
    echo "usage: ./course.sh [lab|test|browser|setup]" >&2
    exit 2
    ;;
esac
