#!/usr/bin/env bash
# Sets up the project on a fresh machine: a project-local virtual environment (.venv) with
# every dependency at the version pinned in requirements.lock, the package installed in
# editable mode, and the raw Chattogram data restored from the in-repo DVC remote.
# Safe to run again: it reinstalls only when pyproject.toml or requirements.lock changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PYTHON=$candidate; break
    fi
  done
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || { echo "bootstrap: Python 3.11 is required (found $("$PYTHON" --version 2>&1))" >&2; exit 1; }

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv

# `--gpu` adds TensorFlow's CUDA libraries (the `gpu` extra, pinned in requirements-gpu.lock)
# for an NVIDIA GPU; `benchmarks/gpu_check.py` then says whether TensorFlow uses it.
UV_VERSION=0.13.9  # the installer, pinned like what it installs
extras=dev; locks=(requirements.lock)
if [ "${1:-}" = "--gpu" ]; then extras=dev,gpu; locks+=(requirements-gpu.lock); fi
stamp=.venv/.installed-$( (cat pyproject.toml "${locks[@]}"; [ "$extras" = dev ] || echo "$extras") \
  | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  # uv installs the same pinned versions as pip, in parallel, and compiles the bytecode as
  # pip does (without it, where PYTHONDONTWRITEBYTECODE is set, every stage would compile
  # TensorFlow's sources anew: 10 s more each); benchmarks/install_speed.sh compares the two.
  # pip stays in the venv, pinned, for users.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
  .venv/bin/uv pip install --quiet --compile-bytecode --python .venv/bin/python "pip==25.3" \
    "${locks[@]/#/-c}" -e ".[$extras]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# The raw rasters and vectors live in the in-repo DVC remote (dvc-storage/).
.venv/bin/dvc pull --quiet data/raw/chattogram.dvc
