#!/usr/bin/env bash
# The course's two commands (see README.md):
#   ./course.sh          set everything up, make a first pegasus grid, open JupyterLab on the notebooks
#   ./course.sh test     set everything up and run every test (unit tests, the notebooks under `ci`, then
#                        the same notebooks in JupyterLab and the book, driven by Chromium)
#   ./course.sh browser  only the browser tests, book included (needs Debian's chromium: apt-get install chromium)
#   ./course.sh book     the course as a website in outputs/book/, from the committed notebooks (not run);
#                        its tools, the [book] extra, are installed only then (and by `test`, which builds it)
#   ./course.sh test-colab  the unit tests and every notebook again, with Colab's package versions
#                        (requirements/constraints-colab.txt) in a second environment, .venv-colab
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
    # seeds 8 and 3: a horse and a bird of the shipped model, chosen by its horse/bird classifier
    # (`pegasus-course pegasus --auto` picks them among seeds 0-15)
    "$VENV/bin/pegasus-course" pegasus --seeds 8 3 --n 7 \
      --out outputs/first-pegasus
  fi
}

book_setup() {
  # The book's tools (Sphinx, MyST-NB, sphinx-book-theme, MathJax) at the exact versions of their constraints.
  local stamp=$VENV/.pegasus-book-installed
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements/constraints-book.txt -nt "$stamp" ]; then
    echo "==> installing the book's tools (the [book] extra)"
    local pins=(-c requirements/constraints-book.txt)
    if [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ]; then
      pins+=(-c requirements/constraints-linux-x86_64.txt)
    fi
    "$PY" -m pip install -q "${pins[@]}" -e ".[book]"
    touch "$stamp"
  fi
}

build_book() {
  book_setup
  echo "==> the book: outputs/book/ from the committed notebooks, not run (their outputs are its figures)"
  "$PY" tools/build_book.py
}

browser_tests() {
  # Every notebook and the explorer in JupyterLab, then every page of the book, driven by Chromium (skipped,
  # with the reason, without it).
  echo "==> the notebooks in JupyterLab and the book, in Chromium (screenshots in outputs/browser/)"
  local start=$SECONDS
  "$PY" -m pytest -q -rs -p no:cacheprovider -m browser tests/browser/
  echo "==> browser tests took $((SECONDS - start)) s"
}

colab_setup() {
  # A second environment with Colab's versions (torch 2.11, torchvision 0.26, ipywidgets 7.7, numpy 2.0, ...).
  local venv=${PEGASUS_COLAB_VENV:-.venv-colab} want=3.12 py
  for py in "$(command -v "python$want" || true)" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/$want*/bin/python$want ""; do
    [ -n "$py" ] && [ -x "$py" ] && "$py" -c 'import venv, ensurepip' >/dev/null 2>&1 && break
  done
  if [ -z "$py" ]; then
    py=$(command -v python3)
    echo "==> note: Colab runs Python $want, which this machine lacks: using the nearest one, $("$py" -V 2>&1)"
  fi
  if [ ! -x "$venv/bin/python" ]; then
    echo "==> creating $venv with $("$py" -V 2>&1) for Colab's versions"
    "$py" -m venv "$venv"
  fi
  local stamp=$venv/.pegasus-installed
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements/constraints-colab.txt -nt "$stamp" ]; then
    echo "==> installing Colab's versions into $venv (first time: a few minutes, torch 2.11 is downloaded)"
    "$venv/bin/python" -m pip install -q --upgrade pip
    local c=(-c requirements/constraints-colab.txt)
    if ! "$venv/bin/python" -m pip install -q "${c[@]}" torch torchvision; then
      echo "==> note: Colab's torch/torchvision cannot be installed here; using the nearest that can"
      "$venv/bin/python" -m pip install -q "torch<2.12" "torchvision<0.27"
    fi
    # The course as Colab installs it (runtime dependencies only) and the test tools; no JupyterLab.
    "$venv/bin/python" -m pip install -q "${c[@]}" -e . pytest nbval jupytext ipykernel
    "$venv/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null
    touch "$stamp"
  fi
  "$venv/bin/python" - <<'PY'
import importlib.metadata as md, platform
names = ["torch", "torchvision", "numpy", "matplotlib", "ipywidgets", "tqdm", "safetensors", "ipykernel"]
print("==> Colab phase versions: Python " + platform.python_version() + ", "
      + ", ".join(f"{n} {md.version(n)}" for n in names))
PY
}

notebook_tests() {
  # Every notebook under the ci profile, outputs compared (strict nbval), then the solution runs.
  local py=$1
  # (`pytest --nbval notebooks/` as a learner types it: conftest.py sets the ci profile, the sanitizer and
  # the kernel; cells whose output depends on the profile or on chance carry nbval-ignore-output.)
  "$py" -m pytest -q -p no:cacheprovider --nbval --nbval-cell-timeout=600 notebooks/ tests/notebook_runs/
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
    notebook_tests "$PY"
    build_book
    browser_tests
    ;;
  test-colab)
    colab_setup
    CPY=${PEGASUS_COLAB_VENV:-.venv-colab}/bin/python
    export PYDEVD_DISABLE_FILE_VALIDATION=1  # Python 3.12 kernels: silence the debugger's frozen-modules note
    echo "==> unit tests with Colab's versions"
    MPLBACKEND=Agg "$CPY" -m pytest -q -p no:cacheprovider tests/ --ignore=tests/notebook_runs --ignore=tests/browser
    echo "==> notebooks under the ci profile with Colab's versions"
    notebook_tests "$CPY"
    ;;
  browser)
    setup
    build_book
    browser_tests
    ;;
  book)
    setup
    build_book
    ;;
  setup)
    setup
    ;;
  *)
    echo "usage: ./course.sh [lab|test|browser|book|test-colab|setup]" >&2
    exit 2
    ;;
esac
