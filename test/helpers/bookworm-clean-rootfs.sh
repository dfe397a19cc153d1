#!/usr/bin/env bash
# Prints the path of a cached, clean Debian bookworm rootfs that boots with systemd but has NO
# Node.js, so that installing the .deb makes apt pull nodejs from Debian the way a user's machine
# would. Built once with debootstrap (about a minute) and reused; the packaging e2e test mounts an
# overlay over it, so the cached tree is never changed.
# Usage: bookworm-clean-rootfs.sh [cache-dir]   (default /var/cache/podman-swarm-dns)
set -euo pipefail
cache=${1:-/var/cache/podman-swarm-dns}
# Bump the suffix when the package list changes, so stale caches are not reused.
dir=$cache/bookworm-clean-v1
if [ -f "$dir/.complete" ]; then echo "$dir"; exit 0; fi
mkdir -p "$cache"
# One builder at a time: a concurrent run waits for the first one's result.
exec 9>"$cache/.bookworm-clean.lock"
flock 9
if [ -f "$dir/.complete" ]; then echo "$dir"; exit 0; fi
tmp=$(mktemp -d "$cache/.bookworm-clean.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,systemd-resolved,dbus,iproute2,libnss-resolve,ca-certificates \
  bookworm "$tmp/root" http://deb.debian.org/debian >&2
# debootstrap leaves the package lists it used; the test runs apt-get update before installing.
echo bookworm-clean > "$tmp/root/etc/hostname"
test ! -e "$tmp/root/usr/bin/node"
touch "$tmp/root/.complete"
mv "$tmp/root" "$dir"
echo "$dir"
