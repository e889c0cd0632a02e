# The lab OS's disk layout, shared by /init and /opt/slipway/bin/apply-config (sourced, busybox sh).
# No partition table, no file system: the lab's stand-in for an installed OS image.
#
#   0              "SLIPWAY-LAB-DISK 1 <size> <sha256>\n", zero-padded to 512 bytes
#   4096           the Ignition config, <size> bytes
#                  (both as generic/discovery-agent.sh's install_lab_raw writes them)
#   8 MiB          "SLIPWAY-LAB-HOSTKEY 1 <size> <sha256>\n", zero-padded to 512 bytes
#   8 MiB + 512    the SSH host key (Dropbear's format), <size> bytes
#   32 MiB         the machine's state: an ext2 file system to the end of the disk, mounted at
#                  /var/lib/etcd (a control-plane member's etcd data lives there across reboots)
#
# The host key is generated at the first installed boot and kept across reboots and config changes
# (the engine pins it on first use); a new install by the discovery agent leaves it alone. The
# state file system is kept across reboots and config changes too, but a new install erases it
# (install_lab_raw zeroes its first MiB), as an OS installer formats the disk it installs to.

LAB_DISK=/dev/vda
LAB_CONFIG_OFFSET=4096
LAB_HOSTKEY_OFFSET=$((8 * 1024 * 1024))
LAB_CONFIG_MAX=$((LAB_HOSTKEY_OFFSET - LAB_CONFIG_OFFSET))
LAB_STATE_OFFSET=$((32 * 1024 * 1024))

# The first line of a 512-byte sector, without its zero padding.
lab_sector_line() { # disk sector
  dd if="$1" bs=512 skip="$2" count=1 2>/dev/null | head -n 1 | tr -d '\000'
}

# Copies the Ignition config on the disk to a file; fails (saying why on stderr) if there is none or
# it does not match its header's SHA-256.
lab_read_config() { # disk out-file
  set -- "$1" "$2" $(lab_sector_line "$1" 0)
  [ "${3:-}" = SLIPWAY-LAB-DISK ] && [ "${4:-}" = 1 ] && [ -n "${5:-}" ] || { echo "no lab install header on $1" >&2; return 1; }
  [ "$5" -le "$LAB_CONFIG_MAX" ] 2>/dev/null || { echo "the header on $1 gives an impossible size ($5)" >&2; return 1; }
  dd if="$1" bs=4096 skip=1 count=$(($5 / 4096 + 1)) 2>/dev/null | head -c "$5" > "$2"
  actual="$(sha256sum "$2" | cut -d ' ' -f 1)"
  [ "$actual" = "$6" ] || { echo "sha256 $actual, header says $6" >&2; return 1; }
}

# Writes an Ignition config to the disk, in install_lab_raw's format byte for byte.
lab_write_config() { # disk ignition-file
  size="$(wc -c < "$2" | tr -d ' ')"
  [ "$size" -le "$LAB_CONFIG_MAX" ] || { echo "$2 is $size bytes: the lab disk holds at most $LAB_CONFIG_MAX" >&2; return 1; }
  sum="$(sha256sum "$2" | cut -d ' ' -f 1)"
  printf 'SLIPWAY-LAB-DISK 1 %s %s\n' "$size" "$sum" | dd of="$1" bs=512 count=1 conv=sync,notrunc 2>/dev/null &&
    dd if="$2" of="$1" bs=4096 seek=1 conv=notrunc 2>/dev/null && sync
}

# Copies the host key kept on the disk to a file; fails if there is none (or it is damaged).
lab_read_hostkey() { # disk out-file
  sector=$((LAB_HOSTKEY_OFFSET / 512))
  set -- "$1" "$2" $(lab_sector_line "$1" "$sector")
  [ "${3:-}" = SLIPWAY-LAB-HOSTKEY ] && [ "${4:-}" = 1 ] && [ "${5:-0}" -gt 0 ] 2>/dev/null && [ "$5" -le 65536 ] || return 1
  dd if="$1" bs=512 skip=$((sector + 1)) count=$(($5 / 512 + 1)) 2>/dev/null | head -c "$5" > "$2"
  [ "$(sha256sum "$2" | cut -d ' ' -f 1)" = "${6:-}" ] || { echo "the host key on $1 is damaged" >&2; rm -f "$2"; return 1; }
  chmod 600 "$2"
}

lab_write_hostkey() { # disk key-file
  sector=$((LAB_HOSTKEY_OFFSET / 512))
  printf 'SLIPWAY-LAB-HOSTKEY 1 %s %s\n' "$(wc -c < "$2" | tr -d ' ')" "$(sha256sum "$2" | cut -d ' ' -f 1)" |
    dd of="$1" bs=512 seek="$sector" count=1 conv=sync,notrunc 2>/dev/null &&
    dd if="$2" of="$1" bs=512 seek=$((sector + 1)) conv=notrunc 2>/dev/null && sync
}

# Mounts the state file system (the disk from LAB_STATE_OFFSET on, through a loop device) at a
# folder, creating the file system first when there is none (a new install). Fails saying why.
lab_mount_state() { # disk mount-point
  insmod /lib/modules/loop.ko 2>/dev/null
  device="$(losetup -f 2>/dev/null)" || { echo "no free loop device" >&2; return 1; }
  [ -b "$device" ] || mknod "$device" b 7 "${device#/dev/loop}" || return 1
  losetup -o "$LAB_STATE_OFFSET" "$device" "$1" || { echo "losetup $device on $1 failed" >&2; return 1; }
  mkdir -p "$2"
  if ! mount -t ext2 "$device" "$2" 2>/dev/null; then
    mke2fs -q -L slipway-state "$device" >/dev/null 2>&1 || { echo "mke2fs on $device failed" >&2; return 1; }
    mount -t ext2 "$device" "$2" || { echo "mounting the new state file system failed" >&2; return 1; }
    echo "created"
    return 0
  fi
  echo "kept"
}
