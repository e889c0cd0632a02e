#!/usr/bin/env bash
# Helpers for the libvirt PXE lab in this folder (see README.md). Same numbering as the Vagrantfile:
# machine i is pxe<i>, boot MAC 52:54:00:99:00:<i in hex>, SMBIOS UUID 00000000-0000-4000-8000-5254009900<i>.
#
#   lab.sh network        define and start the libvirt network slipway-pxe (before the engine starts)
#   lab.sh engine         run the engine on the host as the network's DHCP/TFTP/HTTP boot server (root)
#   lab.sh reserve        reserve 10.99.0.<10+i> for machine i (engine in DHCP mode full)
#   lab.sh status         the engine's machines and DHCP leases
#   lab.sh clean          after vagrant destroy: remove what it left (network, NVRAM files, stray machines)
#
# Environment: TOKEN (the admin token; `engine` registers it when set), SLIPWAY_URL (default
# http://10.99.0.1:8080), and the SLIPWAY_LAB_* variables the Vagrantfile reads.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
NETWORK=slipway-pxe
HOST_IP=10.99.0.1
SUBNET=10.99.0.0/24
URL=${SLIPWAY_URL:-http://$HOST_IP:8080}
MACHINES=${SLIPWAY_LAB_MACHINES:-4}
VIRSH=(virsh -c "${LIBVIRT_DEFAULT_URI:-qemu:///system}")

die() { echo "lab.sh: $*" >&2; exit 1; }
if ! [[ $MACHINES =~ ^[0-9]+$ ]] || ((MACHINES < 1 || MACHINES > 89)); then die "SLIPWAY_LAB_MACHINES=$MACHINES must be 1..89"; fi
mac_of() { printf '52:54:00:99:00:%02x' "$1"; }
need_token() { [[ -n ${TOKEN:-} ]] || die 'set TOKEN to the admin token (export TOKEN=...)'; }
api() { # api METHOD PATH [JSON]
  local args=(-sS --fail-with-body -X "$1" -H "Authorization: Bearer $TOKEN")
  if [[ $# -ge 3 ]]; then args+=(-H 'Content-Type: application/json' --data "$3"); fi
  curl "${args[@]}" "$URL$2"
}

network_xml() {
  local forward='<forward mode="nat"/>' dhcp=''
  if [[ ${SLIPWAY_LAB_FORWARD_MODE:-nat} == none ]]; then forward=''; fi
  if [[ ${SLIPWAY_LAB_LIBVIRT_DHCP:-false} == true ]]; then
    dhcp='<dhcp><range start="10.99.0.100" end="10.99.0.199"/></dhcp>'
  fi
  # What vagrant-libvirt defines for the Vagrantfile's private network, so that it adopts this one.
  cat <<EOF
<network ipv6="yes">
  <name>$NETWORK</name>
  <bridge stp="on" delay="0"/>
  $forward
  <ip address="$HOST_IP" netmask="255.255.255.0">$dhcp</ip>
  <ip family="ipv6" address="fd00:99::1" prefix="64"/>
</network>
EOF
}

cmd_network() {
  if "${VIRSH[@]}" net-info "$NETWORK" >/dev/null 2>&1; then
    echo "network $NETWORK exists"
  else
    local xml
    xml=$(mktemp)
    network_xml >"$xml"
    "${VIRSH[@]}" net-define "$xml" && rm -f "$xml"
  fi
  "${VIRSH[@]}" net-info "$NETWORK" | grep -q '^Active: *yes' || "${VIRSH[@]}" net-start "$NETWORK"
  "${VIRSH[@]}" net-info "$NETWORK"
}

cmd_clean() {
  # What `vagrant destroy -f` can leave behind: the network (removed only when the last machine using it
  # goes), UEFI NVRAM files (vagrant-libvirt undefines with KEEP_NVRAM), and whole machines when destroy
  # ran with other SLIPWAY_LAB_* values than up (fewer machines, or bios for a uefi machine, which
  # libvirt refuses to undefine: "cannot undefine domain with nvram").
  local domain volume pool=${SLIPWAY_LAB_STORAGE_POOL:-default}
  for domain in $("${VIRSH[@]}" list --all --name | grep -E '^slipway-pxe[0-9]+$' || true); do
    "${VIRSH[@]}" destroy "$domain" >/dev/null 2>&1 || true
    "${VIRSH[@]}" undefine "$domain" --nvram
  done
  for volume in $("${VIRSH[@]}" vol-list "$pool" 2>/dev/null | awk '{print $1}' | grep -E '^slipway-pxe[0-9]+-vd[a-z]+\.qcow2$' || true); do
    "${VIRSH[@]}" vol-delete "$volume" --pool "$pool"
  done
  if "${VIRSH[@]}" net-info "$NETWORK" >/dev/null 2>&1; then
    "${VIRSH[@]}" net-destroy "$NETWORK" >/dev/null 2>&1 || true
    "${VIRSH[@]}" net-undefine "$NETWORK"
  fi
  # /var/lib/libvirt/qemu is readable by root only: as another user, ask sudo when the lab ran UEFI.
  local remove='rm -fv /var/lib/libvirt/qemu/nvram/slipway-pxe*_VARS.fd'
  if [[ $(id -u) == 0 ]]; then
    sh -c "$remove"
  elif [[ ${SLIPWAY_LAB_FIRMWARE:-bios} == uefi ]]; then
    sudo sh -c "$remove"
  fi
}

cmd_engine() {
  ip -4 -o addr show | grep -q " $HOST_IP/" || die "$HOST_IP is not on this host: run '$0 network' (or vagrant up) first"
  local node
  node=$(command -v node) || die 'node is not in PATH'
  if [[ $(id -u) != 0 ]]; then
    # Ports 67 and 69 need root. sudo resets PATH (node may live in ~/.nvm) and the environment:
    # pass node's folder, TOKEN and every SLIPWAY_* variable along.
    local keep=("PATH=$(dirname "$node"):/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") line
    while IFS= read -r line; do keep+=("$line"); done < <(env | grep -E '^(TOKEN|SLIPWAY_[A-Z0-9_]+)=' || true)
    exec sudo env "${keep[@]}" "$0" engine
  fi
  local env=(
    SLIPWAY_DATA_DIR="${SLIPWAY_DATA_DIR:-$REPO/var/vagrant-lab}"
    SLIPWAY_HTTP_HOST=0.0.0.0
    SLIPWAY_HTTP_PUBLIC_URL="http://$HOST_IP:8080"
    SLIPWAY_DHCP_SERVER_ADDRESS="$HOST_IP"
    SLIPWAY_TFTP_ENABLED=true
    SLIPWAY_TFTP_IPXE_DIR="${SLIPWAY_TFTP_IPXE_DIR:-/usr/lib/ipxe}"
  )
  if [[ ${SLIPWAY_LAB_LIBVIRT_DHCP:-false} == true ]]; then
    env+=(SLIPWAY_DHCP_MODE=proxy)
  else
    env+=(SLIPWAY_DHCP_MODE=full SLIPWAY_DHCP_SUBNET="$SUBNET"
      SLIPWAY_DHCP_RANGE_START=10.99.0.100 SLIPWAY_DHCP_RANGE_END=10.99.0.199)
    # libvirt's dnsmasq answers DNS on the bridge address; with forward mode nat the host routes too.
    if [[ ${SLIPWAY_LAB_FORWARD_MODE:-nat} == nat ]]; then
      env+=(SLIPWAY_DHCP_ROUTER="$HOST_IP" SLIPWAY_DHCP_DNS_SERVERS="$HOST_IP")
    fi
  fi
  if [[ -n ${TOKEN:-} ]]; then env+=(SLIPWAY_AUTH_ADMIN_TOKEN="$TOKEN"); fi
  printf '%s\n' "${env[@]}" | grep -v '^SLIPWAY_AUTH_ADMIN_TOKEN=' >&2
  cd "$REPO"
  exec env "${env[@]}" node --import tsx src/main.ts
}

cmd_reserve() {
  need_token
  local i
  for ((i = 1; i <= MACHINES; i++)); do
    api PUT "/api/v1/dhcp/reservations/$(mac_of "$i")" "{\"ip\":\"10.99.0.$((10 + i))\",\"hostname\":\"pxe$i\"}"
    echo
  done
}

cmd_status() {
  need_token
  local machines leases
  machines=$(api GET /api/v1/machines)
  leases=$(api GET /api/v1/dhcp/leases)
  MACHINES_JSON=$machines LEASES_JSON=$leases node --input-type=module - <<'EOF'
const machines = JSON.parse(process.env.MACHINES_JSON)
const leases = JSON.parse(process.env.LEASES_JSON)
console.log(`machines (${machines.length}):`)
for (const m of machines) console.log(`  ${m.uuid}  ${m.boot_mac}  ${m.state}`)
console.log(`DHCP leases (${leases.length}):`)
for (const l of leases) console.log(`  ${l.mac}  ${l.ip}  ${l.state}  until ${l.expiresAt}`)
EOF
}

case ${1:-} in
network) cmd_network ;;
clean) cmd_clean ;;
engine) cmd_engine ;;
reserve) cmd_reserve ;;
status) cmd_status ;;
*) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
