#!/usr/bin/env bash
# Prints the path of a Debian bookworm root filesystem with systemd, systemd-resolved, D-Bus and
# Node.js 18 (Debian's), building it with debootstrap the first time (about a minute, ~300 MB).
# Tests boot it with systemd-nspawn --volatile=overlay, so the cached tree is never modified and
# is shared between test runs and between the systemd and packaging suites.
#
#   usage: test/helpers/bookworm-rootfs.sh            -> prints the rootfs directory
#   env:   PSD_ROOTFS_CACHE (default /var/cache/podman-swarm-dns-test)
#          PSD_DEBIAN_MIRROR (default http://deb.debian.org/debian)
#
# Bump VERSION when the package list changes: a new directory is built next to the old one.
set -euo pipefail

VERSION=1
CACHE=${PSD_ROOTFS_CACHE:-/var/cache/podman-swarm-dns-test}
MIRROR=${PSD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
DIR="$CACHE/bookworm-systemd-v$VERSION"
# nodejs: the daemon (Debian's 18, the oldest Node the project supports); iproute2: the daemon
# creates its link with ip; libnss-resolve: getent through resolved; curl: the HTTP API;
# procps: ps/pgrep for debugging; bind9-dnsutils: dig.
PACKAGES=systemd,systemd-sysv,systemd-resolved,dbus,iproute2,libnss-resolve,nodejs,curl,procps,bind9-dnsutils,ca-certificates

if [ -e "$DIR/.complete" ]; then echo "$DIR"; exit 0; fi
[ "$(id -u)" = 0 ] || { echo "bookworm-rootfs.sh: needs root (debootstrap)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "bookworm-rootfs.sh: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
mkdir -p "$CACHE"

# One builder at a time: concurrent test suites wait for the first one's result.
exec 9>"$CACHE/.lock"
flock 9
if [ -e "$DIR/.complete" ]; then echo "$DIR"; exit 0; fi

tmp="$DIR.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
echo "bookworm-rootfs.sh: debootstrapping $DIR (one-time, about a minute)" >&2
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$tmp" "$MIRROR" >&2

# resolved answers for the host: its stub resolver in resolv.conf, nss-resolve in nsswitch.
ln -sf ../run/systemd/resolve/stub-resolv.conf "$tmp/etc/resolv.conf"
grep -q resolve "$tmp/etc/nsswitch.conf" ||
  sed -i 's/^hosts:.*/hosts:          files resolve [!UNAVAIL=return] dns/' "$tmp/etc/nsswitch.conf"
chroot "$tmp" systemctl enable systemd-resolved.service >/dev/null 2>&1 || true
# No login prompt on the console: tests talk to it through nsenter.
chroot "$tmp" systemctl mask console-getty.service getty@.service >/dev/null 2>&1 || true
echo "podman-swarm-dns-test" >"$tmp/etc/hostname"
rm -rf "$tmp/var/cache/apt/archives"/*.deb
touch "$tmp/.complete"
rm -rf "$DIR"
mv "$tmp" "$DIR"
trap - EXIT
echo "$DIR"
