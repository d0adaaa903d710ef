#!/usr/bin/env bash
# The set-up's install, side by side: the project's pinned dependencies into two new virtual
# environments, one with pip and one with uv, each with an empty cache (what a fresh machine
# has), both compiling the bytecode (pip does by default), then the two environments'
# package lists compared, and the time to import the package in each. Prints the ratios.
# Usage: bash benchmarks/install_speed.sh   (about 4 minutes; needs the package registry)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
UV_VERSION=$(sed -n "s/^UV_VERSION=\([^ ]*\).*/\1/p" scripts/bootstrap.sh)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
# seconds a command took; its output only where it fails
seconds() {
  local start=$SECONDS
  "$@" >"$work/log" 2>&1 || { cat "$work/log" >&2; echo "install_speed: failed: $*" >&2; exit 1; }
  echo $((SECONDS - start))
}

"$PYTHON" -m venv "$work/pip"
pip_s=$(seconds env PIP_NO_CACHE_DIR=1 "$work/pip/bin/python" -m pip install --quiet \
  --disable-pip-version-check "pip==25.3" -c requirements.lock -e ".[dev]")

"$PYTHON" -m venv "$work/uv"
uv_s=$(seconds bash -c "PIP_NO_CACHE_DIR=1 '$work/uv/bin/python' -m pip install --quiet \
  --disable-pip-version-check 'uv==$UV_VERSION' && UV_NO_CACHE=1 '$work/uv/bin/uv' pip install \
  --quiet --compile-bytecode --python '$work/uv/bin/python' pip==25.3 -c requirements.lock -e '.[dev]'")

freeze() { "$1/bin/python" -m pip list --format=freeze --exclude-editable | grep -v -i -E '^(pip|setuptools|uv)==' | sort; }
if diff <(freeze "$work/pip") <(freeze "$work/uv") >"$work/diff"; then same="same packages and versions"
else same="DIFFERENT packages: $(grep -c '^[<>]' "$work/diff") lines differ"; fi
# a stage's start: importing the training code, bytecode read rather than compiled
imported() {
  local best=999 t
  for _ in 1 2; do
    /usr/bin/time -o "$work/seconds" -f %e env PYTHONDONTWRITEBYTECODE=1 "$1/bin/python" -c \
      'import landslide_ssgan.stages.train' >/dev/null 2>&1
    t=$(cat "$work/seconds"); best=$(python3 -c "print(min($best, $t))")
  done
  echo "$best"
}
pip_import=$(imported "$work/pip"); uv_import=$(imported "$work/uv")
echo "import of the training code (a stage's start): pip's environment ${pip_import} s, uv's ${uv_import} s"
echo "install of the pinned dependencies, empty caches: pip ${pip_s} s, uv ${uv_s} s (uv included), $(python3 -c "print(f'{$pip_s/max($uv_s,1):.1f}')") times faster; $same"
