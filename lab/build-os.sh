#!/bin/bash
# Builds the lab OS: the Debian cloud kernel and a busybox initramfs, both from Debian packages
# (`apt-get download`, unpacked with dpkg-deb; nothing is installed on this machine).
#
#   lab/build-os.sh [OUT_DIR]        (default: var/lab-os)
#
# Writes OUT_DIR/vmlinuz and OUT_DIR/initramfs.cpio.gz, which the lab serves at /assets/. Downloaded
# packages are kept in OUT_DIR/cache: a second build takes a second. The initramfs holds busybox,
# the virtio modules (Debian builds them as modules and there is no depmod in the image, so /init
# loads them in dependency order), /init (lab/os/init) and a udhcpc script. The discovery agent
# itself is not baked in: /init fetches it from the engine like a real live image would.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(realpath -m "${1:-$repo/var/lab-os}")"
cache="$out/cache"
mkdir -p "$cache"

need() { command -v "$1" >/dev/null || { echo "build-os: $1 is missing ($2)" >&2; exit 1; }; }
need apt-get 'a Debian or Ubuntu machine'
need dpkg-deb 'dpkg'
need cpio 'apt-get install cpio'
need gzip 'gzip'

# The metapackage names the current kernel package; resolving it here keeps the lab on Debian's
# latest security update without editing this script.
kernel_package="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p' | head -n 1)"
if [ -z "$kernel_package" ]; then
  echo "build-os: apt-cache does not know linux-image-cloud-amd64; run apt-get update first" >&2
  exit 1
fi

download() { # package -> path of its .deb in the cache
  local deb
  deb="$(ls "$cache/$1"_*.deb 2>/dev/null | head -n 1 || true)"
  if [ -z "$deb" ]; then
    (cd "$cache" && apt-get download -q "$1" >&2 2> >(grep -v 'unsandboxed as root' >&2))
    deb="$(ls "$cache/$1"_*.deb | head -n 1)"
  fi
  echo "$deb"
}

kernel_deb="$(download "$kernel_package")"
busybox_deb="$(download busybox-static)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$kernel_deb" "$work/kernel"
dpkg-deb -x "$busybox_deb" "$work/busybox"
version="$(ls "$work/kernel/lib/modules")"

root="$work/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,etc,lib/modules}
cp "$work/busybox/bin/busybox" "$root/bin/busybox"
for module in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net virtio_blk; do
  file="$(find "$work/kernel/lib/modules/$version" -name "$module.ko*" | head -n 1)"
  [ -n "$file" ] || { echo "build-os: module $module not found in $kernel_package" >&2; exit 1; }
  cp "$file" "$root/lib/modules/"
done
install -m 0755 "$repo/lab/os/init" "$root/init"
install -m 0755 "$repo/lab/os/udhcpc.script" "$root/etc/udhcpc.script"
# Without a console node /init would run with no stdin/stdout until devtmpfs is mounted.
mknod -m 600 "$root/dev/console" c 5 1
mknod -m 666 "$root/dev/null" c 1 3

(cd "$root" && find . -print0 | sort -z | cpio --null --create --format=newc --quiet --owner=0:0) | gzip -9 > "$out/initramfs.cpio.gz.tmp"
cp "$work/kernel/boot/vmlinuz-$version" "$out/vmlinuz.tmp"
mv "$out/initramfs.cpio.gz.tmp" "$out/initramfs.cpio.gz"
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
echo "$kernel_package $(dpkg-deb -f "$kernel_deb" Version); busybox-static $(dpkg-deb -f "$busybox_deb" Version)" > "$out/VERSION"
echo "build-os: $out/vmlinuz ($(du -h "$out/vmlinuz" | cut -f 1)), $out/initramfs.cpio.gz ($(du -h "$out/initramfs.cpio.gz" | cut -f 1)): $(cat "$out/VERSION")"
