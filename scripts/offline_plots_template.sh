#!/usr/bin/env bash
# Builds .dvc/plots/offline.html: DVC's plots page with the Vega, Vega-Lite and Vega-Embed
# builds inlined (the versions DVC's own page loads from a CDN), so `dvc plots show` renders
# without internet. The result is committed; run this again only to change versions.
# Needs npm (the npm registry). The three libraries are BSD-3-Clause; their licences are
# copied into the page.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
packages=(vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2)
(cd "$work" && for p in "${packages[@]}"; do npm pack --silent "$p" >/dev/null; done)
out=.dvc/plots/offline.html
mkdir -p "$(dirname "$out")"
{
  echo '<!DOCTYPE html>'
  echo '<html>'
  echo '<head>'
  echo '    {refresh_tag}'
  echo '    <title>DVC Plot (offline)</title>'
  for p in "${packages[@]}"; do
    name=${p%@*}; version=${p#*@}
    dir="$work/$name"; mkdir -p "$dir"; tar xzf "$work/$name-$version.tgz" -C "$dir"
    echo "<!-- $p, $(cat "$dir/package/LICENSE" | tr -d '\r' | sed 's/--/- -/g') -->"
    echo '<script type="text/javascript">'
    cat "$dir/package/build/$name.min.js"
    echo '</script>'
  done
  echo '    <style>table { border-spacing: 15px; }</style>'
  echo '</head>'
  echo '<body>'
  echo '    {plot_divs}'
  echo '</body>'
  echo '</html>'
} > "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out ($(wc -c < "$out") bytes)"
