#!/usr/bin/env bash
# A distroless-like root file system for the compiled binary (issue #6, SPEC §6 Delivery):
# the binary at /sidecar-proxy, the shared libraries `ldd` lists (copied to the same paths, as
# gcr.io/distroless/base-debian12 has them), an empty /tmp and a mounted /proc (every container
# runtime mounts one; Bun reads /proc/self/* at start-up). Nothing else: no /etc/hosts, no
# /etc/resolv.conf, no shell, no /dev.
#
#   deploy/rootfs.sh make DIR [BINARY]   DIR must not exist; BINARY defaults to dist/sidecar-proxy-linux-x64
#   chroot DIR /sidecar-proxy ...         (as root)
#   deploy/rootfs.sh clean DIR           unmounts DIR/proc and removes DIR; safe to repeat
#
# `make` cleans up after itself when it fails half-way. Needs root (mount, chroot).
set -Eeuo pipefail

usage() {
  echo "usage: $0 make DIR [BINARY] | clean DIR" >&2
  exit 2
}

clean() {
  local dir=$1
  # Unmount before removing, or rm -r would walk into the live /proc.
  if mountpoint -q "$dir/proc" 2>/dev/null; then
    umount "$dir/proc" 2>/dev/null || umount -l "$dir/proc"
  fi
  if mountpoint -q "$dir/proc" 2>/dev/null; then
    echo "rootfs: $dir/proc is still mounted; not removing $dir" >&2
    return 1
  fi
  rm -rf --one-file-system "$dir"
}

make_rootfs() {
  local dir=$1 bin=$2
  [ -x "$bin" ] || { echo "rootfs: $bin is not an executable (build it: bun build.ts linux-x64)" >&2; return 1; }
  [ ! -e "$dir" ] || { echo "rootfs: $dir already exists" >&2; return 1; }
  mkdir -p "$dir/proc" "$dir/tmp"
  chmod 1777 "$dir/tmp"
  trap 'clean "$dir"' ERR
  cp "$bin" "$dir/sidecar-proxy"
  # `ldd` prints `name => /path (addr)` and `/lib64/ld-linux-x86-64.so.2 (addr)`; vdso has no path.
  local libs
  libs=$(ldd "$bin" | grep -o '/[^ ]*' || true)
  [ -n "$libs" ] || { echo "rootfs: ldd lists no libraries for $bin (static, or not for this machine?)" >&2; false; }
  local lib
  for lib in $libs; do
    # --parents keeps the path (/lib/x86_64-linux-gnu/libc.so.6), -L copies the file a symlink names.
    cp -L --parents "$lib" "$dir/"
  done
  mount -t proc proc "$dir/proc"
  trap - ERR
}

[ $# -ge 2 ] || usage
case $1 in
  make) make_rootfs "$2" "${3:-$(dirname "$0")/../dist/sidecar-proxy-linux-x64}" ;;
  clean) clean "$2" ;;
  *) usage ;;
esac
