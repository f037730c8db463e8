#!/usr/bin/env bash
# Create the virtual environment ($VENV, default .venv) and install the project into it
# (used by `make`, CI and the Dockerfile). PyTorch is pinned to the CPU build 2.13.0.
set -euo pipefail
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
EXTRAS="${EXTRAS-dev,ns3,ray}"
EDITABLE="${EDITABLE--e}"   # EDITABLE= (empty): a regular install
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "torch==2.13.0"
TARGET="."
if [ -n "$EXTRAS" ]; then TARGET=".[${EXTRAS}]"; fi
# shellcheck disable=SC2086
"$VENV/bin/python" -m pip install -q $EDITABLE "$TARGET"
