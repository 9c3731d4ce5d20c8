#!/usr/bin/env bash
# Regenerate the committed notebook outputs from a real run (default profile: cpu).
#   PEGASUS_PROFILE=cpu tools/run_notebooks.sh [notebooks/NN_name.ipynb ...]
set -euo pipefail
cd "$(dirname "$0")/.."
export PEGASUS_PROFILE="${PEGASUS_PROFILE:-cpu}" TQDM_DISABLE=1
if [ $# -gt 0 ]; then nbs=("$@"); else nbs=(notebooks/[0-9][0-9]_*.ipynb); fi
jupytext --sync "${nbs[@]}"                       # the newer side of each pair wins
jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.kernel_name=python3 \
  --ExecutePreprocessor.timeout=3600 "${nbs[@]}"
nbstripout --keep-output --keep-count --extra-keys "metadata.language_info.version metadata.colab \
  cell.metadata.colab cell.metadata.id cell.metadata.outputId metadata.widgets" "${nbs[@]}"
jupytext --sync "${nbs[@]}"                       # .py unchanged; refreshes timestamps
