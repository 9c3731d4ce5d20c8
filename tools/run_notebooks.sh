#!/usr/bin/env bash
# Regenerate the committed notebook outputs from a real run (default profile: cpu).
#   PEGASUS_PROFILE=cpu tools/run_notebooks.sh [notebooks/NN_name.ipynb ...]
set -euo pipefail
cd "$(dirname "$0")/.."
export PEGASUS_PROFILE="${PEGASUS_PROFILE:-cpu}" PEGASUS_TEXT_PROGRESS=1  # finished bars stay in the saved outputs
unset TQDM_DISABLE                                 # a CI setting would hide every bar
if [ $# -gt 0 ]; then nbs=("$@"); else nbs=(notebooks/[0-9][0-9]_*.ipynb); fi
jupytext --sync "${nbs[@]}"                       # the newer side of each pair wins
# each notebook from a fresh kernel and an empty sample cache, in place, then a re-run from a copy with the
# cache warm; their times and peak memory go to notebooks/times.json and from there into the README,
# notebook 00 and each notebook's first cell
python tools/cell_times.py run "${nbs[@]}"
# each text bar's updates ('\r'-separated) collapse to the finished bar: how long that step took
jupyter nbconvert --to notebook --inplace --CoalesceStreamsPreprocessor.enabled=True "${nbs[@]}"
python tools/tidy_outputs.py "${nbs[@]}"          # a bar's closing newline, printed after the cell's lines, goes
python tools/cell_times.py "${nbs[@]}"            # every cell over 20 s, with or without a bar
nbstripout --keep-output --keep-count --extra-keys "metadata.language_info.version metadata.colab \
  cell.metadata.colab cell.metadata.id cell.metadata.outputId metadata.widgets" "${nbs[@]}"
jupytext --sync "${nbs[@]}"                       # .py unchanged; refreshes timestamps
