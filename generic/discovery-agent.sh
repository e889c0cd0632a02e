#!/bin/sh
# Slipway discovery agent (rendered by the engine from generic/discovery-agent.sh for group
# {{group.id}}). POSIX sh: it runs on the Flatcar / Fedora CoreOS live images (bash, curl) and on
# the lab's busybox initramfs (ash, wget) alike. It reports the machine's facts to POST /discovery
# (with its BMC's address, where ipmitool reads one), asks for an install slot until the scheduler has
# given it a role and a slot is free, fetches the role's Ignition, installs it to disk, reports, and
# reboots.
#
# Settings come from the group's metadata: `installer` (flatcar | coreos | lab-raw) and
# `install_disk` (empty: the largest non-removable disk).
set -u

# What the engine rendered in; the SLIPWAY_* environment overrides it (for trying the agent by hand).
RENDERED_URL='{{engine.url}}'
RENDERED_INSTALLER='{{installer}}'
RENDERED_INSTALL_DISK='{{install_disk}}'
ENGINE_URL="${SLIPWAY_URL:-$RENDERED_URL}"
INSTALLER="${SLIPWAY_INSTALLER:-$RENDERED_INSTALLER}"
INSTALL_DISK="${SLIPWAY_INSTALL_DISK:-$RENDERED_INSTALL_DISK}"
# Flatcar comes from the engine's /assets by default (images.* settings): installs need no internet.
RENDERED_FLATCAR_CHANNEL='{{images.flatcar_channel}}'
RENDERED_FLATCAR_BASE_URL='{{images.flatcar_base_url}}'
RENDERED_FLATCAR_VERSION='{{images.flatcar_version}}'
FLATCAR_CHANNEL="${SLIPWAY_FLATCAR_CHANNEL:-$RENDERED_FLATCAR_CHANNEL}"
FLATCAR_BASE_URL="${SLIPWAY_FLATCAR_BASE_URL:-$RENDERED_FLATCAR_BASE_URL}"
FLATCAR_VERSION="${SLIPWAY_FLATCAR_VERSION:-$RENDERED_FLATCAR_VERSION}"
WORK="${SLIPWAY_WORK_DIR:-/tmp/slipway}"
mkdir -p "$WORK"

say() { echo "slipway-agent: $*"; }

# --- HTTP, with curl when there is one and busybox wget otherwise ----------------------------------
# Both print the body to stdout and fail on any non-2xx answer. (`timeout` rather than wget's own
# -T: Debian's static busybox 1.35 wget crashes with -T.)
http_get() {
  if command -v curl >/dev/null 2>&1; then curl --fail --silent --show-error --max-time 30 "$1"
  else timeout 60 wget -q -O - "$1"; fi
}
http_post_json() { # url file
  if command -v curl >/dev/null 2>&1; then curl --fail --silent --show-error --max-time 30 -H 'Content-Type: application/json' --data-binary "@$2" "$1"
  else timeout 60 wget -q -O - --header 'Content-Type: application/json' --post-file "$2" "$1"; fi
}

# --- Facts ----------------------------------------------------------------------------------------
cmdline_value() { tr ' ' '\n' < /proc/cmdline 2>/dev/null | sed -n "s/^$1=//p" | head -n 1; }
read_first() { [ -r "$1" ] && head -n 1 "$1" 2>/dev/null | tr -d '"\\\000-\037'; }
json_string() { printf '"%s"' "$(printf '%s' "$1" | tr -d '"\\\000-\037')"; }

# SLIPWAY_UUID and SLIPWAY_BOOT_MAC stand in for the firmware's answers when the agent is tried by hand.
UUID="${SLIPWAY_UUID:-$(read_first /sys/class/dmi/id/product_uuid)}"
UUID="$(printf '%s' "$UUID" | tr 'A-F' 'a-f')"
# iPXE passes the MAC it booted from (slipway.mac=${mac}); without it, the NIC of the default route.
BOOT_MAC="$(printf '%s' "${SLIPWAY_BOOT_MAC:-$(cmdline_value slipway.mac)}" | tr 'A-F-' 'a-f:')"
if [ -z "$BOOT_MAC" ]; then
  default_nic="$(ip route show default 2>/dev/null | sed -n 's/.* dev \([^ ]*\).*/\1/p' | head -n 1)"
  [ -n "$default_nic" ] && BOOT_MAC="$(read_first "/sys/class/net/$default_nic/address")"
fi
LABELS="uuid=$UUID&mac=$(printf '%s' "$BOOT_MAC" | tr ':' '-')"

interfaces_json() {
  gateway="$(ip route show default 2>/dev/null | sed -n 's/^default via \([0-9.]*\).*/\1/p' | head -n 1)"
  first=1
  for path in /sys/class/net/*; do
    name="${path##*/}"
    [ "$name" = lo ] && continue
    [ -r "$path/address" ] || continue
    mac="$(read_first "$path/address")"
    [ "$mac" = "00:00:00:00:00:00" ] && continue
    cidr="$(ip -4 addr show dev "$name" 2>/dev/null | sed -n 's/.*inet \([0-9.]*\/[0-9]*\).*/\1/p' | head -n 1)"
    [ $first -eq 1 ] || printf ','
    first=0
    printf '{"name":%s,"mac":%s' "$(json_string "$name")" "$(json_string "$mac")"
    if [ -n "$cidr" ]; then
      printf ',"ipv4":%s,"cidrv4":%s' "$(json_string "${cidr%/*}")" "$(json_string "$cidr")"
      [ -n "$gateway" ] && printf ',"gateway":%s' "$(json_string "$gateway")"
      fqdn="$(hostname -f 2>/dev/null || hostname)"
      [ -n "$fqdn" ] && [ "$fqdn" != "(none)" ] && printf ',"fqdn":[%s]' "$(json_string "$fqdn")"
    fi
    printf '}'
  done
}

disks_json() {
  first=1
  for path in /sys/block/*; do
    name="${path##*/}"
    case "$name" in loop*|ram*|sr*|fd*|zram*|dm-*|md*) continue ;; esac
    [ "$(read_first "$path/removable")" = 1 ] && continue
    sectors="$(read_first "$path/size")"
    [ -n "$sectors" ] || continue
    [ $first -eq 1 ] || printf ','
    first=0
    printf '{"path":"/dev/%s","size-bytes":%s' "$name" "$((sectors * 512))"
    model="$(read_first "$path/device/model")"
    serial="$(read_first "$path/serial")"
    [ -n "$serial" ] || serial="$(read_first "$path/device/serial")"
    [ -n "$model" ] && printf ',"model":%s' "$(json_string "$model")"
    [ -n "$serial" ] && printf ',"serial":%s' "$(json_string "$serial")"
    printf '}'
  done
}

# --- The BMC: its address on the LAN, so that enrolling it takes only its credentials -------------
# Where the live image has ipmitool and the machine a BMC, the BMC's LAN settings are read through the
# local interface (/dev/ipmi0). `ipmitool lan print <channel>` prints "Name : value" lines, names padded
# to 24 columns (22 in older versions), so a line is split at its first colon. Every value is checked
# as the engine checks it: odd output is left out of the report, never a reason for the engine to
# refuse it. Each call has a time limit, a BMC that does not answer one is not asked again, and the
# whole has a deadline: the report is never held up for long.
BMC_CALL_SECONDS="${SLIPWAY_BMC_CALL_SECONDS:-10}"
BMC_TOTAL_SECONDS=30
BMC_MEMBERS=''

ipmitool_read() { # args...: output in $WORK/ipmitool.out and .err; 124 when ipmitool did not answer in time
  timeout "$BMC_CALL_SECONDS" ipmitool "$@" > "$WORK/ipmitool.out" 2> "$WORK/ipmitool.err"
  status=$?
  # GNU timeout exits 124; busybox's leaves the signal's 143.
  if [ "$status" -eq 124 ] || [ "$status" -ge 128 ]; then return 124; fi
  return "$status"
}

lan_value() { sed -n "s/^$1[[:space:]]*:[[:space:]]*//p" "$WORK/ipmitool.out" | head -n 1 | sed 's/[[:space:]]*$//'; }
# The engine's dotted quad (no leading zeros); 0.0.0.0 is ipmitool's "no address".
is_ipv4() { [ "$1" != 0.0.0.0 ] && printf '%s\n' "$1" | grep -Eqx '((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])'; }
is_mac() { [ "$1" != 00:00:00:00:00:00 ] && printf '%s\n' "$1" | grep -Eqx '[0-9a-f]{2}(:[0-9a-f]{2}){5}'; }

# `ipmitool lan6 print <channel> dynamic_addr|static_addr` (ipmitool 1.8.19, lib/ipmi_lanp6.c) prints a
# block per address slot: "IPv6 Dynamic Address 0:", "    Address:        2001:db8::5/64",
# "    Status:         active" (static slots say "Enabled: yes|no" first). Prints the first active
# address that is none of unset (::), loopback and link-local (useless without its interface's zone).
bmc_ipv6() { # channel
  for slots in dynamic_addr static_addr; do
    ipmitool_read lan6 print "$1" "$slots"
    [ $? -eq 124 ] && return 124
    address="$(awk '
      function usable(a,   n, part, i, groups) {
        if (a !~ /^[0-9a-f:]+$/ || length(a) > 39 || a ~ /:::/ || a ~ /^:[^:]/ || a ~ /[^:]:$/) return 0
        if (gsub(/::/, "::", a) > 1) return 0
        n = split(a, part, ":")
        groups = 0
        for (i = 1; i <= n; i++) { if (length(part[i]) > 4) return 0; if (part[i] != "") groups++ }
        if (a ~ /::/ ? groups > 7 : groups != 8) return 0
        return a !~ /^[0:]+$/ && a !~ /^[0:]+:0*1$/ && a !~ /^fe[89ab][0-9a-f]:/
      }
      /^IPv6 (Dynamic|Static) Address [0-9]+:/ { enabled = 1; address = ""; next }
      $1 == "Enabled:" { enabled = ($2 == "yes") }
      $1 == "Address:" { address = tolower($2); sub(/\/[0-9]+$/, "", address) }
      $1 == "Status:" && $2 == "active" && enabled && usable(address) { print address; exit }
    ' "$WORK/ipmitool.out")"
    [ -n "$address" ] && { echo "$address"; return 0; }
  done
}

# Sets BMC_MEMBERS to the members of the report's "bmc" object: the first LAN channel with an address,
# else the first with a MAC (a DHCP reservation can be made for it), else nothing.
read_bmc() {
  command -v ipmitool > /dev/null 2>&1 || return 0
  # /dev/ipmi0 is ipmi_devintf's, which nothing loads by itself (OpenStack's ironic-python-agent loads the same three).
  if [ ! -e /dev/ipmi0 ] && [ ! -e /dev/ipmi/0 ] && [ ! -e /dev/ipmidev/0 ]; then
    for module in ipmi_msghandler ipmi_devintf ipmi_si; do timeout 10 modprobe "$module" > /dev/null 2>&1; done
  fi
  deadline=$(($(date +%s) + BMC_TOTAL_SECONDS))
  channel=1
  # LAN channels are 1 to 11: 0 is the BMC's IPMB, 12 and 13 are reserved, 14 and 15 are no LAN.
  while [ "$channel" -le 11 ] && [ "$(date +%s)" -lt "$deadline" ]; do
    ipmitool_read lan print "$channel"
    [ $? -eq 124 ] && { say "ipmitool did not answer within $BMC_CALL_SECONDS s: no BMC address reported"; return 0; }
    # No /dev/ipmi0 (no BMC, or no driver for it): no other channel will open either.
    grep -q 'Could not open device' "$WORK/ipmitool.err" && return 0
    mac="$(lan_value 'MAC Address' | tr 'A-F' 'a-f')"
    if is_mac "$mac"; then
      ipv4="$(lan_value 'IP Address')"
      is_ipv4 "$ipv4" || ipv4=''
      case "$(lan_value 'IP Address Source')" in
        'Static Address') assignment=static ;;
        'DHCP Address') assignment=dhcp ;;
        'BIOS Assigned Address') assignment=bios ;;
        Other) assignment=other ;;
        Unspecified) assignment=unspecified ;;
        *) assignment='' ;;
      esac
      ipv6="$(bmc_ipv6 "$channel")"
      [ $? -eq 124 ] && { say "ipmitool did not answer within $BMC_CALL_SECONDS s: no BMC IPv6 address reported"; ipv6=''; }
      members="\"mac\":\"$mac\""
      [ -n "$ipv4" ] && members="$members,\"ipv4\":\"$ipv4\""
      [ -n "$ipv6" ] && members="$members,\"ipv6\":\"$ipv6\""
      [ -n "$assignment" ] && members="$members,\"ipv4-assignment\":\"$assignment\""
      members="$members,\"channel\":$channel,\"source\":\"ipmitool lan print\""
      if [ -n "$ipv4$ipv6" ]; then
        BMC_MEMBERS="$members"
        say "BMC at $(echo $ipv4 $ipv6) (channel $channel, MAC $mac)"
        return 0
      fi
      [ -n "$BMC_MEMBERS" ] || { BMC_MEMBERS="$members"; say "BMC with MAC $mac on channel $channel has no address yet"; }
    fi
    channel=$((channel + 1))
  done
}

discovery_json() {
  cores="$(grep -c '^processor' /proc/cpuinfo)"
  cpu_model="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
  memory_kib="$(sed -n 's/^MemTotal:[[:space:]]*\([0-9]*\).*/\1/p' /proc/meminfo)"
  firmware=bios
  [ -d /sys/firmware/efi ] && firmware=uefi
  printf '{"boot-info":{"uuid":%s,"mac":%s,"random-id":%s},' "$(json_string "$UUID")" "$(json_string "$BOOT_MAC")" "$(json_string "$(read_first /proc/sys/kernel/random/boot_id)")"
  printf '"interfaces":[%s],"disks":[%s],' "$(interfaces_json)" "$(disks_json)"
  printf '"cpu":{"model":%s,"cores":%s,"threads":%s},' "$(json_string "$cpu_model")" "$cores" "$cores"
  printf '"memory":{"total-bytes":%s},"firmware":"%s",' "$((memory_kib * 1024))" "$firmware"
  [ -n "$BMC_MEMBERS" ] && printf '"bmc":{%s},' "$BMC_MEMBERS"
  printf '"dmi":{"vendor":%s,"product":%s,"serial":%s}}' \
    "$(json_string "$(read_first /sys/class/dmi/id/sys_vendor)")" \
    "$(json_string "$(read_first /sys/class/dmi/id/product_name)")" \
    "$(json_string "$(read_first /sys/class/dmi/id/product_serial)")"
}

# --- Install --------------------------------------------------------------------------------------
largest_disk() {
  best=''
  best_size=0
  for path in /sys/block/*; do
    name="${path##*/}"
    case "$name" in loop*|ram*|sr*|fd*|zram*|dm-*|md*) continue ;; esac
    [ "$(read_first "$path/removable")" = 1 ] && continue
    size="$(read_first "$path/size")"
    [ -n "$size" ] && [ "$size" -gt "$best_size" ] && best="/dev/$name" && best_size="$size"
  done
  echo "$best"
}

# The lab's stand-in for an OS image: the Ignition config and a header, written raw to the disk.
# The lab OS reads them back on the next boot, as an installed OS reads the config it was given.
install_lab_raw() { # disk ignition-file
  size="$(wc -c < "$2" | tr -d ' ')"
  sum="$(sha256sum "$2" | cut -d ' ' -f 1)"
  printf 'SLIPWAY-LAB-DISK 1 %s %s\n' "$size" "$sum" | dd of="$1" bs=512 count=1 conv=sync,notrunc 2>/dev/null &&
    dd if="$2" of="$1" bs=4096 seek=1 conv=notrunc 2>/dev/null || return 1
  # A new install starts with no state: the lab OS's state file system (from 32 MiB on, on a disk
  # large enough to hold one) is formatted anew at its next boot.
  if [ -b "$1" ]; then disk_bytes=$(($(read_first "/sys/class/block/${1##*/}/size") * 512)); else disk_bytes="$(wc -c < "$1" | tr -d ' ')"; fi
  if [ "$disk_bytes" -gt $((33 * 1048576)) ]; then dd if=/dev/zero of="$1" bs=1048576 seek=32 count=1 conv=notrunc 2>/dev/null || return 1; fi
  sync
}

install_to_disk() { # ignition-file
  disk="$INSTALL_DISK"
  [ -n "$disk" ] || disk="$(largest_disk)"
  [ -n "$disk" ] || { echo "no disk to install to"; return 1; }
  say "installing with $INSTALLER to $disk"
  case "$INSTALLER" in
    flatcar) flatcar-install -d "$disk" -C "$FLATCAR_CHANNEL" -b "$FLATCAR_BASE_URL" -V "$FLATCAR_VERSION" -i "$1" ;;
    coreos) coreos-installer install "$disk" --ignition-file "$1" ;;
    lab-raw) install_lab_raw "$disk" "$1" ;;
    *) echo "unknown installer '$INSTALLER' (group metadata 'installer': flatcar, coreos or lab-raw)"; return 1 ;;
  esac
}

# --- The loop -------------------------------------------------------------------------------------
[ -n "$UUID" ] || { say "no SMBIOS uuid in /sys/class/dmi/id/product_uuid: cannot report"; exit 1; }
[ -n "$BOOT_MAC" ] || { say "cannot tell the boot MAC (no slipway.mac= and no default route)"; exit 1; }

read_bmc
discovery_json > "$WORK/discovery.json"
until answer="$(http_post_json "$ENGINE_URL/discovery" "$WORK/discovery.json")"; do
  say "POST /discovery failed; retrying in 5 s"
  sleep 5
done
say "discovered uuid=$UUID mac=$BOOT_MAC: $answer"

# --- Deprovision: a machine being taken out of service is told so in the answer to its report ------
# It erases what makes its disks bootable or readable as before (the metadata: partition tables at
# both ends, file system, RAID and LVM signatures, and the first 16 MiB, which also hold a boot loader
# and the lab's install header), reports, and waits for the engine to power it off through its BMC.
# Erasing every block of a large disk takes hours; that is a hardware secure erase's job.
wipe_disk() { # disk
  sectors="$(read_first "/sys/block/${1##*/}/size")"
  [ -n "$sectors" ] && [ "$sectors" -gt 0 ] || { echo "$1: size unknown"; return 1; }
  if command -v wipefs >/dev/null 2>&1; then wipefs --all --force "$1" || return 1; fi
  dd if=/dev/zero of="$1" bs=1048576 count=16 conv=notrunc 2>/dev/null || { echo "$1: writing its start failed"; return 1; }
  # The GPT's backup header and table sit in the last 33 sectors; 2048 covers any alignment.
  [ "$sectors" -gt 4096 ] && { dd if=/dev/zero of="$1" bs=512 seek=$((sectors - 2048)) count=2048 conv=notrunc 2>/dev/null || { echo "$1: writing its end failed"; return 1; }; }
  echo "$1: wiped"
}

wipe_disks() {
  wiped=0
  for path in /sys/block/*; do
    name="${path##*/}"
    case "$name" in loop*|ram*|sr*|fd*|zram*|dm-*|md*) continue ;; esac
    [ "$(read_first "$path/removable")" = 1 ] && continue
    wipe_disk "/dev/$name" || return 1
    wiped=$((wiped + 1))
  done
  sync
  echo "$wiped disk(s) wiped"
}

case "$answer" in
  *'"wipe":true'*)
    say "this machine is being deprovisioned: wiping its disks"
    if wipe_disks > "$WORK/wipe.log" 2>&1; then outcome=success; else outcome=fail; fi
    printf '{"message":%s}' "$(json_string "$(tail -c 1000 "$WORK/wipe.log" | tr '\n' ' ')")" > "$WORK/report.json"
    tries=0
    until http_post_json "$ENGINE_URL/lifecycle/wipe/$outcome?$LABELS" "$WORK/report.json" > /dev/null; do
      tries=$((tries + 1))
      [ "$tries" -ge "${SLIPWAY_REPORT_TRIES:-60}" ] && break
      sleep "${SLIPWAY_REPORT_RETRY_SECONDS:-5}"
    done
    say "wipe $outcome: $(tr '\n' ' ' < "$WORK/wipe.log")"
    [ "$outcome" = success ] || exit 1
    # The engine powers the machine off; a machine whose BMC does not answer halts itself in the end.
    sleep "${SLIPWAY_WIPED_HALT_SECONDS:-600}"
    poweroff -f 2>/dev/null || poweroff
    exit 0
    ;;
esac

# Ask for an install slot until one is granted: refused (409) while the scheduler has not given this
# machine a role, 403 while every slot is taken. The role config carries the cluster's secrets and is
# served only while this machine holds its slot, so it is fetched after the grant.
printf '{}' > "$WORK/empty.json"
waited=0
until http_post_json "$ENGINE_URL/install-authorization?$LABELS" "$WORK/empty.json" > /dev/null 2>&1; do
  [ $((waited % 6)) -eq 0 ] && say "waiting for a role and an install slot (POST /install-authorization not granted yet)"
  waited=$((waited + 1))
  sleep 5
done
say "install authorized"

until http_get "$ENGINE_URL/ignition?$LABELS&os=installed" > "$WORK/installed.ign" 2>/dev/null; do
  say "GET /ignition?...&os=installed failed; retrying in 5 s"
  sleep 5
done
say "role config received ($(wc -c < "$WORK/installed.ign" | tr -d ' ') bytes, sha256 $(sha256sum "$WORK/installed.ign" | cut -d ' ' -f 1))"

if install_to_disk "$WORK/installed.ign" > "$WORK/install.log" 2>&1; then
  printf '{"message":"installed with %s"}' "$INSTALLER" > "$WORK/report.json"
  # The report frees the install slot and marks the machine installed: a network blip must not lose
  # it (the slot would time out as install_failed). Retried for up to 5 minutes before rebooting anyway.
  tries=0
  until http_post_json "$ENGINE_URL/lifecycle/install/success?$LABELS" "$WORK/report.json" > /dev/null; do
    tries=$((tries + 1))
    [ "$tries" -ge "${SLIPWAY_REPORT_TRIES:-60}" ] && { say "could not report the install; rebooting anyway"; break; }
    say "POST /lifecycle/install/success failed; retrying in 5 s"
    sleep "${SLIPWAY_REPORT_RETRY_SECONDS:-5}"
  done
  say "installed; rebooting"
  sync
  reboot -f 2>/dev/null || reboot
else
  printf '{"message":%s}' "$(json_string "$(tail -c 2000 "$WORK/install.log" | tr '\n' ' ')")" > "$WORK/report.json"
  http_post_json "$ENGINE_URL/lifecycle/install/fail?$LABELS" "$WORK/report.json" > /dev/null
  say "install failed: $(tail -n 5 "$WORK/install.log")"
  exit 1
fi
