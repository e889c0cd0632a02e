#!/bin/bash
# Builds the lab OS: the Debian cloud kernel and a busybox initramfs, both from Debian packages
# (`apt-get download`, unpacked with dpkg-deb; nothing is installed on this machine).
#
#   lab/build-os.sh [OUT_DIR]        (default: var/lab-os)
#
# Writes OUT_DIR/vmlinuz and OUT_DIR/initramfs.cpio.gz, which the lab serves at /assets/. Downloaded
# packages are kept in OUT_DIR/cache: a second build takes a second. The initramfs holds busybox,
# the virtio modules (Debian builds them as modules and there is no depmod in the image, so /init
# loads them in dependency order), /init (lab/os/init), a udhcpc script, and for the installed boot
# an SSH server: Dropbear (dropbear-bin) with just the shared libraries it loads, taken from their
# own Debian packages (never from this machine's /lib), etcd (etcd-server: a control-plane member
# runs it from the config the engine rendered; it needs libc only), the loop module (the machine's
# state file system lives on the lab disk past the config) and /opt/slipway/bin/apply-config. The
# discovery agent itself is not baked in: /init fetches it from the engine like a real live image
# would.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(realpath -m "${1:-$repo/var/lab-os}")"
cache="$out/cache"
mkdir -p "$cache"
# One build at a time per folder: two labs starting together (two test files) would download into
# the same cache and write the same files; the second waits and finds the cache warm.
exec 9>"$out/.build.lock"
flock 9

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
dropbear_deb="$(download dropbear-bin)"
etcd_deb="$(download etcd-server)"
# What bookworm's dropbear and dropbearkey load (libtomcrypt needs libgmp and libtommath). A package
# missing here fails the build below, naming the library no package provided.
library_packages=(libc6 libcrypt1 zlib1g libtomcrypt1 libtommath1 libgmp10)
library_debs=()
for package in "${library_packages[@]}"; do library_debs+=("$(download "$package")"); done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$kernel_deb" "$work/kernel"
dpkg-deb -x "$busybox_deb" "$work/busybox"
dpkg-deb -x "$dropbear_deb" "$work/dropbear"
dpkg-deb -x "$etcd_deb" "$work/etcd"
for deb in "${library_debs[@]}"; do dpkg-deb -x "$deb" "$work/libs"; done
version="$(ls "$work/kernel/lib/modules")"

root="$work/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,etc,lib/modules}
cp "$work/busybox/bin/busybox" "$root/bin/busybox"
for module in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net virtio_blk loop; do
  file="$(find "$work/kernel/lib/modules/$version" -name "$module.ko*" | head -n 1)"
  [ -n "$file" ] || { echo "build-os: module $module not found in $kernel_package" >&2; exit 1; }
  cp "$file" "$root/lib/modules/"
done
install -m 0755 "$repo/lab/os/init" "$root/init"
install -m 0755 "$repo/lab/os/udhcpc.script" "$root/etc/udhcpc.script"

# Dropbear for the installed boot: the two programs it needs (no client), the libraries they load
# (their DT_NEEDED closure, resolved in the downloaded packages only) and the dynamic loader. The
# lab OS has no ld.so.cache: the loader finds /lib/x86_64-linux-gnu among its built-in directories.
install -D -m 0755 "$work/dropbear/usr/sbin/dropbear" "$root/usr/sbin/dropbear"
install -D -m 0755 "$work/dropbear/usr/bin/dropbearkey" "$root/usr/bin/dropbearkey"
install -D -m 0755 "$work/etcd/usr/bin/etcd" "$root/usr/bin/etcd"
needed_of() { # elf -> the sonames it needs, one a line
  if command -v readelf >/dev/null; then
    readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'
  else # no binutils: ask the downloaded loader, confined to the downloaded libraries
    "$work/libs/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --library-path "$work/libs/lib/x86_64-linux-gnu:$work/libs/usr/lib/x86_64-linux-gnu" \
      --list "$1" | sed -n 's/^[[:space:]]*\([^ ]*\.so[^ ]*\) => .*/\1/p' | sed 's|.*/||'
  fi
}
from_packages() { # a file in the unpacked library packages -> the regular file it is, in them too
  local file="$1" target
  # Symbolic links are followed inside the unpacked tree: an absolute target (libc6's /lib64 link)
  # must not lead to this machine's own files.
  while [ -L "$file" ]; do
    target="$(readlink "$file")"
    case "$target" in /*) file="$work/libs$target" ;; *) file="$(dirname "$file")/$target" ;; esac
  done
  [ -f "$file" ] || { echo "build-os: $1 leads to $file, which the packages do not hold" >&2; exit 1; }
  echo "$file"
}
lib_dir="$root/lib/x86_64-linux-gnu"
mkdir -p "$lib_dir" "$root/lib64"
pending=("$root/usr/sbin/dropbear" "$root/usr/bin/dropbearkey" "$root/usr/bin/etcd")
while [ "${#pending[@]}" -gt 0 ]; do
  elf="${pending[0]}"
  pending=("${pending[@]:1}")
  needed="$(needed_of "$elf")" # (a failure here stops the build, as it would not in the for list)
  for soname in $needed; do
    # The loader is copied to /lib64 below; libc names it but it is loaded already.
    [ -e "$lib_dir/$soname" ] || [ "$soname" = ld-linux-x86-64.so.2 ] && continue
    file="$(find "$work/libs/lib" "$work/libs/usr/lib" -name "$soname" 2>/dev/null | head -n 1)"
    [ -n "$file" ] || { echo "build-os: ${elf#"$root"} needs $soname, which none of ${library_packages[*]} provides" >&2; exit 1; }
    cp "$(from_packages "$file")" "$lib_dir/$soname"
    pending+=("$lib_dir/$soname")
  done
done
cp "$(from_packages "$work/libs/lib64/ld-linux-x86-64.so.2")" "$root/lib64/ld-linux-x86-64.so.2"
install -D -m 0755 "$repo/lab/os/apply-config" "$root/opt/slipway/bin/apply-config"
install -D -m 0644 "$repo/lab/os/lab-disk.sh" "$root/lib/slipway/lab-disk.sh"
# Dropbear gives sessions PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin: no /opt/slipway/bin.
ln -s /opt/slipway/bin/apply-config "$root/usr/sbin/apply-config"
mkdir -p "$root/root" "$root/var/lib/slipway" "$root/var/lib/etcd" "$root/var/log" "$root/etc/dropbear" "$root/etc/slipway"
chmod 0700 "$root/root"
ln -s /run "$root/var/run"
# root, and core (the user Flatcar's templates and the engine's rolling updates log in as) as an
# alias of root: the lab OS has no sudo and apply-config writes the disk and reboots.
printf 'root:x:0:0:root:/root:/bin/sh\ncore:x:0:0:core (root alias):/home/core:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\n' > "$root/etc/group"
printf '/bin/sh\n' > "$root/etc/shells"
printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' > "$root/etc/nsswitch.conf"
printf 'export PATH=/opt/slipway/bin:/sbin:/bin:/usr/sbin:/usr/bin\n' > "$root/etc/profile"
# Without a console node /init would run with no stdin/stdout until devtmpfs is mounted.
mknod -m 600 "$root/dev/console" c 5 1
mknod -m 666 "$root/dev/null" c 1 3

(cd "$root" && find . -print0 | sort -z | cpio --null --create --format=newc --quiet --owner=0:0) | gzip -9 > "$out/initramfs.cpio.gz.tmp"
cp "$work/kernel/boot/vmlinuz-$version" "$out/vmlinuz.tmp"
mv "$out/initramfs.cpio.gz.tmp" "$out/initramfs.cpio.gz"
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
echo "$kernel_package $(dpkg-deb -f "$kernel_deb" Version); busybox-static $(dpkg-deb -f "$busybox_deb" Version); dropbear-bin $(dpkg-deb -f "$dropbear_deb" Version); etcd-server $(dpkg-deb -f "$etcd_deb" Version)" > "$out/VERSION"
echo "build-os: $out/vmlinuz ($(du -h "$out/vmlinuz" | cut -f 1)), $out/initramfs.cpio.gz ($(du -h "$out/initramfs.cpio.gz" | cut -f 1)): $(cat "$out/VERSION")"
