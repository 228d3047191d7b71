#!/usr/bin/env bash
# Lets this x86_64 Linux machine run aarch64 Linux programs (qemu-user), for
# `npm run test:platforms`: Debian's qemu-user-static (its binfmt entry has
# the F flag, so aarch64 programs also start inside containers), binfmt-support
# and the arm64 glibc/libstdc++/libgcc that the arm64 Node needs (under
# /usr/aarch64-linux-gnu, given to qemu as QEMU_LD_PREFIX). Root; installs
# only what is missing; idempotent.
set -euo pipefail
# (+ binutils: readelf, for the ELF checks of test:platforms)
pkgs=(qemu-user-static binfmt-support libc6-arm64-cross libstdc++6-arm64-cross libgcc-s1-arm64-cross binutils)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  update-binfmts --enable qemu-aarch64
fi
grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64
grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 || {
  echo 'qemu-aarch64 binfmt entry lacks the F flag: aarch64 programs will not start in containers' >&2
  exit 1
}
