#!/usr/bin/env bash
# `npm run clippy:all [-- <triple> ...]`: `cargo clippy --all-targets -D
# warnings` for every target of package.json napi.targets (or those named),
# through cargo-zigbuild so ring's C code compiles for the target (plain
# `cargo clippy --target` needs a C cross compiler). Checks, never links.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then targets=("$@"); else
  mapfile -t targets < <(node -p "require('./package.json').napi.targets.join('\n')")
fi
installed=$(rustup target list --installed)
for t in "${targets[@]}"; do
  grep -qx "$t" <<<"$installed" || rustup target add "$t"
  echo "== clippy $t"
  nice -n 10 cargo-zigbuild clippy --all-targets --target "$t" -- -D warnings
done
