#!/usr/bin/env bash
# Builds the local images the tests, the example and the benchmark use. No
# registry is needed: each image is a rootfs imported with `docker import`.
#   light-runner-busybox:latest  static busybox + one symlink per applet
#   light-runner-node:latest     the host's node binary + the libraries ldd lists
set -euo pipefail

build_busybox() {
  local tag=light-runner-busybox:latest
  docker image inspect "$tag" >/dev/null 2>&1 && return 0
  local root; root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/app"
  cp "$(command -v busybox)" "$root/bin/busybox"
  for applet in $(busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  chmod 1777 "$root/tmp"
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
  echo 'nobody:x:65534:65534:nobody:/:/bin/sh' >>"$root/etc/passwd"
  echo 'root:x:0:' >"$root/etc/group"
  echo 'nobody:x:65534:' >>"$root/etc/group"
  tar -C "$root" -c . | docker import -c 'ENV PATH=/bin' -c 'CMD ["sh"]' - "$tag" >/dev/null
  rm -rf "$root"
  echo "built $tag"
}

build_node() {
  local tag=light-runner-node:latest
  docker image inspect "$tag" >/dev/null 2>&1 && return 0
  local root; root=$(mktemp -d)
  local node; node=$(readlink -f "$(command -v node)")
  mkdir -p "$root/bin" "$root/usr/bin" "$root/tmp" "$root/etc" "$root/app"
  cp "$(command -v busybox)" "$root/bin/busybox"
  for applet in $(busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  cp "$node" "$root/usr/bin/node"
  # Copy every shared library node needs, keeping its absolute path.
  for lib in $(ldd "$node" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  chmod 1777 "$root/tmp"
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
  echo 'root:x:0:' >"$root/etc/group"
  tar -C "$root" -c . | docker import -c 'ENV PATH=/usr/bin:/bin' -c 'CMD ["node"]' - "$tag" >/dev/null
  rm -rf "$root"
  echo "built $tag"
}

build_busybox
build_node
